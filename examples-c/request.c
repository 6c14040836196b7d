/*
 * request.c: send one API request with the settings in the LWOLF_* environment variables,
 * and print the HTTP status and the body.
 *
 *     ./request GET /v1/transactions
 *     ./request POST /v1/transactions '{"address":"1 Main St"}'
 */
#include <stdio.h>
#include <string.h>

#include "lwolf_auth.h"

int main(int argc, char **argv) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    lwolf_response *response = NULL;
    const uint8_t *body;
    const char *content_type;
    const char *req_body = NULL;
    size_t body_len = 0;
    lwolf_status st;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s METHOD PATH [JSON-BODY]\n", argv[0]);
        return 2;
    }
    if (argc == 4) req_body = argv[3];

    st = lwolf_config_from_env(&cfg);
    if (st == LWOLF_OK) {
        st = lwolf_client_new(cfg, &client);
        lwolf_config_free(cfg);
    }
    if (st == LWOLF_OK) {
        st = lwolf_client_request(client, argv[1], argv[2], (const uint8_t *)req_body,
                                  req_body ? strlen(req_body) : 0, &response);
    }
    if (st != LWOLF_OK) {
        fprintf(stderr, "error: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
        lwolf_client_free(client);
        return 1;
    }

    printf("status: %u\n", (unsigned)lwolf_response_status(response));
    content_type = lwolf_response_header(response, "Content-Type");
    printf("content-type: %s\n", content_type ? content_type : "(none)");
    body = lwolf_response_body(response, &body_len);
    fwrite(body, 1, body_len, stdout);
    printf("\n");

    lwolf_response_free(response);
    lwolf_client_free(client);
    return 0;
}
