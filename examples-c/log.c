/*
 * log.c: the library's log records, through a callback of ours.
 *
 *     ./log [SECONDS]
 *
 * Sets a callback at LWOLF_LOG_TRACE that prints each record on stdout as "LEVEL message",
 * gets a token, sends GET /v1/transactions, then asks for the token every 100 ms for SECONDS
 * (default 0) so that a refresh falls in that time. Then it turns the records off, asks once
 * more, and prints how many records arrived after that: "records after off: 0".
 * Settings come from the LWOLF_* variables.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lwolf_auth.h"

struct records {
    pthread_mutex_t lock; /* the callback may run on several threads at once */
    unsigned long count;
};

static void on_record(void *userdata, uint32_t level, const char *message) {
    static const char *const names[] = {"?", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"};
    struct records *records = (struct records *)userdata;
    pthread_mutex_lock(&records->lock);
    records->count++;
    printf("%s %s\n", names[level <= LWOLF_LOG_TRACE ? level : 0], message);
    fflush(stdout);
    pthread_mutex_unlock(&records->lock);
}

static int fail(const char *what, lwolf_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, lwolf_status_name(st), lwolf_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    struct records records = {PTHREAD_MUTEX_INITIALIZER, 0};
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    lwolf_response *response = NULL;
    char token[4096];
    size_t len;
    unsigned long before_off;
    int rounds = argc > 1 ? atoi(argv[1]) * 10 : 0, i;
    struct timespec tenth = {0, 100 * 1000 * 1000};
    lwolf_status st;

    st = lwolf_set_log_callback(on_record, &records, LWOLF_LOG_TRACE);
    if (st != LWOLF_OK) {
        return fail("lwolf_set_log_callback", st);
    }
    if ((st = lwolf_config_from_env(&cfg)) != LWOLF_OK) {
        return fail("config", st);
    }
    st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) {
        return fail("client", st);
    }
    if ((st = lwolf_client_token(client, token, sizeof token, &len)) != LWOLF_OK) {
        return fail("token", st);
    }
    st = lwolf_client_request(client, "GET", "/v1/transactions", NULL, 0, &response);
    if (st != LWOLF_OK) {
        return fail("request", st);
    }
    lwolf_response_free(response);
    for (i = 0; i < rounds; i++) {
        nanosleep(&tenth, NULL);
        if ((st = lwolf_client_token(client, token, sizeof token, &len)) != LWOLF_OK) {
            return fail("token", st);
        }
    }

    /* Off: when this returns, the callback is not running anywhere and never runs again. */
    lwolf_set_log_callback(NULL, NULL, 0);
    pthread_mutex_lock(&records.lock);
    before_off = records.count;
    pthread_mutex_unlock(&records.lock);
    lwolf_client_invalidate(client);
    if ((st = lwolf_client_token(client, token, sizeof token, &len)) != LWOLF_OK) {
        return fail("token", st);
    }
    printf("records after off: %lu\n", records.count - before_off);
    lwolf_client_free(client);
    return 0;
}
