/*
 * stress.c: THREADS threads share one client and hammer it for a few seconds: each calls
 * lwolf_client_token() in a loop, and every REQUEST_EVERY-th call sends
 * GET /v1/x with lwolf_client_request(). Every token must be non-empty and fit the buffer;
 * every response is counted by status. At the end it prints what it did:
 *
 *     threads: 32
 *     token calls: 123456
 *     token errors: 0
 *     requests: 6172
 *     request errors: 0
 *     responses 200: 6172
 *     responses other: 0
 *
 * and exits 0 when every thread finished (the test that runs it checks the server's side:
 * no expired token ever arrived, at most one token request was ever in flight). Errors
 * and non-200 answers are counted, not fatal: the test's server injects faults.
 *
 *     LWOLF_... (from the environment) ./stress [SECONDS] [MAX_CALLS_PER_THREAD]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwolf_auth.h"

#define THREADS 32
#define REQUEST_EVERY 20

struct job {
    lwolf_client *client;
    double seconds;
    long max_calls;
    long token_calls, token_errors, requests, request_errors, ok, other, bad_tokens;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *work(void *arg) {
    struct job *job = (struct job *)arg;
    char token[8192];
    size_t token_len = 0;
    double end = now_seconds() + job->seconds;
    long i;

    for (i = 0; i < job->max_calls && now_seconds() < end; i++) {
        if (i % REQUEST_EVERY == REQUEST_EVERY - 1) {
            lwolf_response *response = NULL;
            lwolf_status st =
                lwolf_client_request(job->client, "GET", "/v1/x", NULL, 0, &response);
            job->requests++;
            if (st != LWOLF_OK) {
                job->request_errors++;
            } else if (lwolf_response_status(response) == 200) {
                job->ok++;
            } else {
                job->other++;
            }
            lwolf_response_free(response);
        } else {
            lwolf_status st = lwolf_client_token(job->client, token, sizeof token, &token_len);
            job->token_calls++;
            if (st != LWOLF_OK) {
                job->token_errors++;
            } else if (token_len == 0 || token_len >= sizeof token ||
                       strlen(token) != token_len) {
                job->bad_tokens++;
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    pthread_t threads[THREADS];
    struct job jobs[THREADS];
    struct job total;
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    long max_calls = argc > 2 ? atol(argv[2]) : 10000;
    int i, started = 0;
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
        jobs[i].seconds = seconds;
        jobs[i].max_calls = max_calls;
        if (pthread_create(&threads[i], NULL, work, &jobs[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            break;
        }
        started++;
    }
    memset(&total, 0, sizeof total);
    for (i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        total.token_calls += jobs[i].token_calls;
        total.token_errors += jobs[i].token_errors;
        total.bad_tokens += jobs[i].bad_tokens;
        total.requests += jobs[i].requests;
        total.request_errors += jobs[i].request_errors;
        total.ok += jobs[i].ok;
        total.other += jobs[i].other;
    }
    lwolf_client_free(client);

    printf("threads: %d\n", started);
    printf("token calls: %ld\n", total.token_calls);
    printf("token errors: %ld\n", total.token_errors);
    printf("bad tokens: %ld\n", total.bad_tokens);
    printf("requests: %ld\n", total.requests);
    printf("request errors: %ld\n", total.request_errors);
    printf("responses 200: %ld\n", total.ok);
    printf("responses other: %ld\n", total.other);
    return started == THREADS && total.bad_tokens == 0 ? 0 : 1;
}
