/*
 * stream.c: one request object with a header and an OData query, sent twice: read whole,
 * then streamed through a write callback; a transfer stopped by the callback; and a second
 * API base (lwolf_client_for_api) sharing the first one's token.
 *
 *     LWOLF_CLIENT_ID=... LWOLF_CLIENT_SECRET=... ./stream
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwolf_auth.h"

struct counter {
    size_t bytes;
    int calls;
    int stop_after; /* calls; 0: never stop */
};

static int count(void *userdata, const uint8_t *data, size_t len) {
    struct counter *c = (struct counter *)userdata;
    (void)data;
    c->bytes += len;
    c->calls += 1;
    return c->stop_after != 0 && c->calls >= c->stop_after;
}

static int fail(const char *what, lwolf_status status) {
    fprintf(stderr, "%s failed: %s: %s\n", what, lwolf_status_name(status),
            lwolf_last_error_message());
    return 1;
}

int main(void) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL, *other_api = NULL;
    lwolf_request *req = NULL;
    lwolf_response *whole = NULL, *streamed = NULL, *stopped = NULL;
    struct counter c = {0, 0, 0}, stopper = {0, 0, 1};
    lwolf_token_info a, b;
    const char *base;
    size_t len = 0;
    lwolf_status st;
    int rc = 1;

    st = lwolf_config_from_env(&cfg);
    if (st != LWOLF_OK) return fail("lwolf_config_from_env", st);
    st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) return fail("lwolf_client_new", st);

    if ((st = lwolf_request_new("GET", "/v1/transactions", &req)) != LWOLF_OK ||
        (st = lwolf_request_header(req, "X-Request-Id", "stream-example-1")) != LWOLF_OK ||
        (st = lwolf_request_query(req, "$filter", "statusCode eq 'A'")) != LWOLF_OK ||
        (st = lwolf_request_query(req, "$top", "25")) != LWOLF_OK) {
        rc = fail("building the request", st);
        goto out;
    }
    st = lwolf_client_send(client, req, &whole);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_send", st);
        goto out;
    }
    lwolf_response_body(whole, &len);
    printf("status: %u\nwhole: %zu bytes\n", lwolf_response_status(whole), len);

    st = lwolf_client_send_to(client, req, count, &c, &streamed);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_send_to", st);
        goto out;
    }
    lwolf_response_body(streamed, &len);
    printf("streamed: %zu bytes in %d pieces, %zu kept\n", c.bytes, c.calls, len);
    printf("same body: %s\n", c.bytes == strlen((const char *)lwolf_response_body(whole, &len))
                                  ? "yes" : "no");

    st = lwolf_client_send_to(client, req, count, &stopper, &stopped);
    printf("stopped: %s\n", lwolf_status_name(st));

    /* The same token for another API base. */
    base = getenv("LWOLF_API_BASE_URL");
    st = lwolf_client_for_api(client, base, &other_api);
    if (st != LWOLF_OK) {
        rc = fail("lwolf_client_for_api", st);
        goto out;
    }
    if (lwolf_client_token_info(client, &a) != LWOLF_OK ||
        lwolf_client_token_info(other_api, &b) != LWOLF_OK) {
        rc = fail("lwolf_client_token_info", LWOLF_ERR_INTERNAL);
        goto out;
    }
    printf("shared token: %s\n", strcmp(a.fingerprint, b.fingerprint) == 0 ? "yes" : "no");
    rc = 0;

out:
    lwolf_response_free(whole);
    lwolf_response_free(streamed);
    lwolf_response_free(stopped);
    lwolf_request_free(req);
    lwolf_client_free(other_api);
    lwolf_client_free(client);
    return rc;
}
