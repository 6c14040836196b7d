/*
 * token.c: fetch a token with the settings in the LWOLF_* environment variables, and print
 * its fingerprint and timing (never the token itself).
 *
 *     LWOLF_CLIENT_ID=... LWOLF_CLIENT_SECRET=... ./token
 */
#include <stdio.h>
#include <stdlib.h>

#include "lwolf_auth.h"

static int fail(const char *what, lwolf_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, lwolf_status_name(status),
            lwolf_last_error_message());
    return 1;
}

int main(void) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    lwolf_token_info info;
    char *token = NULL;
    size_t token_len = 0;
    lwolf_status st;
    int rc = 1;

    st = lwolf_config_from_env(&cfg);
    if (st != LWOLF_OK) return fail("lwolf_config_from_env", st);
    st = lwolf_client_new(cfg, &client);
    /* The client keeps its own copy of the settings: the configuration can go now. */
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) return fail("lwolf_client_new", st);

    /* Ask for the length first (buf NULL, buf_len 0), then fetch into a buffer that fits. */
    st = lwolf_client_token(client, NULL, 0, &token_len);
    if (st != LWOLF_ERR_BUFFER_TOO_SMALL) {
        rc = fail("lwolf_client_token (length query)", st);
        goto out;
    }
    token = malloc(token_len + 1);
    if (token == NULL) goto out;
    st = lwolf_client_token(client, token, token_len + 1, &token_len);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_token", st);
        goto out;
    }

    st = lwolf_client_token_info(client, &info);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_token_info", st);
        goto out;
    }
    printf("lwolf_auth %s\n", lwolf_version());
    printf("fingerprint: %s\n", info.fingerprint);
    printf("token length: %lu\n", (unsigned long)token_len);
    printf("lifetime: %llu s\n", (unsigned long long)info.lifetime_secs);
    printf("expires at: %lld\n", (long long)info.expires_at_unix);
    printf("refresh at: %lld\n", (long long)info.refresh_at_unix);
    rc = 0;

out:
    free(token);
    lwolf_client_free(client);
    return rc;
}
