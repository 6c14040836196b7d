/*
 * transact.c: call the Transact API (LWOLF_TRANSACT_BASE_URL, with LWOLF_SUBSCRIPTION_KEY)
 * COUNT times, printing each answer's status and request id, then the client's stats.
 *
 *     ./transact /v1/transactions 3
 *
 * A 401 renews the token (at most once per 30 s); a 403 is about the subscription key and
 * never costs a token: the stats show it as a renewal declined.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lwolf_auth.h"

static int fail(const char *what, lwolf_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, lwolf_status_name(status),
            lwolf_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    lwolf_client *transact = NULL;
    lwolf_stats stats;
    lwolf_status st;
    int i, count, rc = 1;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PATH [COUNT]\n", argv[0]);
        return 2;
    }
    count = argc == 3 ? atoi(argv[2]) : 1;

    st = lwolf_config_from_env(&cfg);
    if (st != LWOLF_OK) return fail("lwolf_config_from_env", st);
    st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) return fail("lwolf_client_new", st);
    /* The Transact handle shares the client's token and pool; free each on its own. */
    st = lwolf_client_transact(client, &transact);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_transact", st);
        goto out;
    }

    for (i = 0; i < count; i++) {
        lwolf_response *response = NULL;
        const char *id;
        st = lwolf_client_request(transact, "GET", argv[1], NULL, 0, &response);
        if (st != LWOLF_OK) {
            rc = fail("lwolf_client_request", st);
            goto out;
        }
        /* The id is the response's: copy it to keep it past lwolf_response_free. */
        id = lwolf_response_request_id(response);
        printf("status: %u request id: %s\n", (unsigned)lwolf_response_status(response),
               id ? id : "(off)");
        lwolf_response_free(response);
    }

    /* The caller says how big its lwolf_stats is; an older, shorter one works too. */
    stats.size = sizeof stats;
    st = lwolf_client_stats(client, &stats);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_stats", st);
        goto out;
    }
    printf("token_requests: %llu\n", (unsigned long long)stats.token_requests);
    printf("forced_renewals: %llu\n", (unsigned long long)stats.forced_renewals);
    printf("renewals_declined: %llu\n", (unsigned long long)stats.renewals_declined);
    printf("api_requests: %llu\n", (unsigned long long)stats.api_requests);
    printf("token_expires_at_ms: %lld\n", (long long)stats.token_expires_at_ms);
    rc = 0;

out:
    lwolf_client_free(transact);
    lwolf_client_free(client);
    return rc;
}
