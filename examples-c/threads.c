/*
 * threads.c: 16 threads share one client. Each fetches the token many times and sends a few
 * API requests; all of them must see the same token, fetched once. At the end the sandbox's
 * own count of token requests is read from GET /_sandbox/stats (an absolute URL on the API's
 * origin, which lwolf_client_request allows) and printed as "token requests: N".
 *
 *     eval "$(cargo run -q -p lwolf-sandbox -- --detach)" ... ./threads
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwolf_auth.h"

#define THREADS 16
#define TOKENS_PER_THREAD 200
#define REQUESTS_PER_THREAD 3

struct job {
    lwolf_client *client;
    int failures;
    char fingerprint[16];
};

static void *work(void *arg) {
    struct job *job = (struct job *)arg;
    char token[4096];
    size_t token_len;
    lwolf_token_info info;
    int i;

    for (i = 0; i < TOKENS_PER_THREAD; i++) {
        lwolf_status st = lwolf_client_token(job->client, token, sizeof token, &token_len);
        if (st != LWOLF_OK) {
            fprintf(stderr, "token: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
            job->failures++;
        }
    }
    for (i = 0; i < REQUESTS_PER_THREAD; i++) {
        lwolf_response *response = NULL;
        lwolf_status st =
            lwolf_client_request(job->client, "GET", "/v1/transactions", NULL, 0, &response);
        if (st != LWOLF_OK) {
            fprintf(stderr, "request: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
            job->failures++;
        } else if (lwolf_response_status(response) != 200) {
            fprintf(stderr, "request: HTTP %u\n", (unsigned)lwolf_response_status(response));
            job->failures++;
        }
        lwolf_response_free(response);
    }
    if (lwolf_client_token_info(job->client, &info) == LWOLF_OK) {
        memcpy(job->fingerprint, info.fingerprint, sizeof job->fingerprint);
    } else {
        job->failures++;
    }
    return NULL;
}

/* "http://127.0.0.1:8080/backoffice" -> "http://127.0.0.1:8080/_sandbox/stats" */
static int stats_url(char *out, size_t out_len) {
    const char *base = getenv("LWOLF_API_BASE_URL");
    const char *host, *slash;
    size_t origin_len;
    if (base == NULL || (host = strstr(base, "://")) == NULL) return -1;
    slash = strchr(host + 3, '/');
    origin_len = slash ? (size_t)(slash - base) : strlen(base);
    if (origin_len + sizeof "/_sandbox/stats" > out_len) return -1;
    memcpy(out, base, origin_len);
    strcpy(out + origin_len, "/_sandbox/stats");
    return 0;
}

int main(void) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    lwolf_response *response = NULL;
    pthread_t threads[THREADS];
    struct job jobs[THREADS];
    char url[1024];
    const char *body, *field;
    size_t body_len;
    int i, failures = 0, same = 1;
    lwolf_status st;

    st = lwolf_config_from_env(&cfg);
    if (st == LWOLF_OK) st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) {
        fprintf(stderr, "setup: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
        return 1;
    }

    memset(jobs, 0, sizeof jobs);
    for (i = 0; i < THREADS; i++) {
        jobs[i].client = client;
        if (pthread_create(&threads[i], NULL, work, &jobs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        failures += jobs[i].failures;
        if (strcmp(jobs[i].fingerprint, jobs[0].fingerprint) != 0) same = 0;
    }
    printf("threads: %d\n", THREADS);
    printf("failures: %d\n", failures);
    printf("same token everywhere: %s (%s)\n", same ? "yes" : "no", jobs[0].fingerprint);

    if (stats_url(url, sizeof url) != 0) {
        fprintf(stderr, "LWOLF_API_BASE_URL is not set to a URL\n");
        lwolf_client_free(client);
        return 1;
    }
    st = lwolf_client_request(client, "GET", url, NULL, 0, &response);
    if (st != LWOLF_OK) {
        fprintf(stderr, "stats: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
        lwolf_client_free(client);
        return 1;
    }
    body = (const char *)lwolf_response_body(response, &body_len); /* NUL-terminated */
    field = strstr(body, "\"token_requests\":");
    if (lwolf_response_status(response) != 200 || field == NULL) {
        fprintf(stderr, "stats: unexpected answer %u: %s\n",
                (unsigned)lwolf_response_status(response), body);
        failures++;
    } else {
        printf("token requests: %lu\n", strtoul(field + strlen("\"token_requests\":"), NULL, 10));
    }

    lwolf_response_free(response);
    lwolf_client_free(client);
    return failures == 0 && same ? 0 : 1;
}
