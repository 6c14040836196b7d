/*
 * wine_linux.c: the same measurements built for Linux and for Windows (run under Wine), so
 * that benches/windows.py can put them side by side: the cached token through the C ABI
 * (ns/call) and authenticated GETs over keep-alive (requests/s). Plain C, no POSIX: the
 * timer is the platform's own. Prints "token_ns N" and "get_rps N".
 *
 *     env $(compare serve) ./wine_linux [ROUNDS_MS]
 */
#ifndef _WIN32
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#endif
#include <stdio.h>
#include <stdlib.h>

#ifdef _WIN32
#include <windows.h>
static double now_s(void) {
    LARGE_INTEGER t, f;
    QueryPerformanceCounter(&t);
    QueryPerformanceFrequency(&f);
    return (double)t.QuadPart / (double)f.QuadPart;
}
#else
#include <time.h>
static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
#endif

#include "lwolf_auth.h"

static int fail(const char *what, lwolf_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, lwolf_status_name(st), lwolf_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    double window = (argc > 1 ? atof(argv[1]) : 300.0) / 1000.0;
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    char token[4096];
    size_t len = 0;
    unsigned long n = 0;
    double start;
    lwolf_status st = lwolf_config_from_env(&cfg);
    if (st == LWOLF_OK) st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) return fail("client", st);
    if ((st = lwolf_client_token(client, token, sizeof token, &len)) != LWOLF_OK)
        return fail("token", st);

    start = now_s();
    do {
        for (int i = 0; i < 1000; i++) {
            if (lwolf_client_token(client, token, sizeof token, &len) != LWOLF_OK)
                return fail("token", LWOLF_ERR_INTERNAL);
        }
        n += 1000;
    } while (now_s() - start < window);
    printf("token_ns %.1f\n", (now_s() - start) * 1e9 / (double)n);

    /* Warm the connection, then count. */
    for (int i = 0; i < 20; i++) {
        lwolf_response *r = NULL;
        if ((st = lwolf_client_request(client, "GET", "/v1/transactions", NULL, 0, &r)) != LWOLF_OK)
            return fail("GET", st);
        lwolf_response_free(r);
    }
    n = 0;
    start = now_s();
    do {
        lwolf_response *r = NULL;
        if ((st = lwolf_client_request(client, "GET", "/v1/transactions", NULL, 0, &r)) != LWOLF_OK)
            return fail("GET", st);
        if (lwolf_response_status(r) != 200) return fail("GET status", LWOLF_ERR_SERVER);
        lwolf_response_free(r);
        n++;
    } while (now_s() - start < window);
    printf("get_rps %.0f\n", (double)n / (now_s() - start));
    lwolf_client_free(client);
    return 0;
}
