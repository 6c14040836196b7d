/*
 * bench.h: what the C benches share: timing, medians, threads released together, and the
 * JSON rows that benches/report.py reads. Header-only; each bench is one .c file.
 */
#ifndef LWOLF_BENCH_H
#define LWOLF_BENCH_H

/* Include this first: pthread barriers and clock_gettime need POSIX 2008. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwolf_auth.h"

/* A client configured from the LWOLF_* environment, with its first token copied into
   `token` (`size` bytes); exits with the reason when there is none. */
static __attribute__((unused)) lwolf_client *bench_client(char *token, size_t size) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    size_t len;
    lwolf_status st = lwolf_config_from_env(&cfg);
    if (st == LWOLF_OK) st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st == LWOLF_OK) st = lwolf_client_token(client, token, size, &len);
    if (st != LWOLF_OK || getenv("LWOLF_API_BASE_URL") == NULL) {
        fprintf(stderr, "setup: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
        exit(1);
    }
    return client;
}

/* Keeps the compiler from dropping work whose result is otherwise unused. */
#define SINK(p) __asm__ volatile("" : : "r"(p) : "memory")

static __attribute__((unused)) double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q quantile (0..1) of v[0..n), by linear interpolation. */
static __attribute__((unused)) double quantile(const double *v, int n, double q) {
    double s[256], pos;
    int lo, hi;
    if (n > 256) n = 256;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    pos = q * (n - 1);
    lo = (int)pos;
    hi = lo + 1 < n ? lo + 1 : lo;
    return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}

static __attribute__((unused)) double median(const double *v, int n) { return quantile(v, n, 0.5); }

/* ---- ns per call of op() run iters times on each of n threads at once ---- */

struct run {
    pthread_barrier_t *barrier;
    void (*op)(void);
    long iters;
    double took;
};

static void *run_thread(void *arg) {
    struct run *r = (struct run *)arg;
    double start;
    long i;
    pthread_barrier_wait(r->barrier);
    start = now_s();
    for (i = 0; i < r->iters; i++) r->op();
    r->took = now_s() - start;
    return NULL;
}

/* The slowest thread's wall time / its calls, in ns. */
static __attribute__((unused)) double ns_per_call(int threads, long iters, void (*op)(void)) {
    pthread_t t[16];
    struct run r[16];
    pthread_barrier_t barrier;
    double worst = 0;
    int i;
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    for (i = 0; i < threads; i++) {
        r[i].barrier = &barrier;
        r[i].op = op;
        r[i].iters = iters;
        pthread_create(&t[i], NULL, run_thread, &r[i]);
    }
    for (i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (r[i].took > worst) worst = r[i].took;
    }
    pthread_barrier_destroy(&barrier);
    return worst * 1e9 / (double)iters;
}

/* Iterations of op() that take about `seconds` on one thread. */
static __attribute__((unused)) long calibrate(double seconds, void (*op)(void)) {
    long iters = 1000, i;
    for (;;) {
        double start = now_s(), took;
        for (i = 0; i < iters; i++) op();
        took = now_s() - start;
        if (took >= seconds / 4 || iters > (1L << 32)) {
            long n = (long)(seconds / (took / (double)iters));
            return n < 1000 ? 1000 : n;
        }
        iters *= 4;
    }
}

/* Calls of op() per second, run back to back for `seconds`. */
static __attribute__((unused)) double rate(double seconds, void (*op)(void)) {
    double start = now_s(), el;
    long n = 0;
    do {
        op();
        n++;
        el = now_s() - start;
    } while (el < seconds);
    return (double)n / el;
}

/* One row of the table as a JSON line on stdout. The strings must not need escaping
   beyond what is done here (quotes and backslashes). ratio < 0: none; met < 0: none. */
static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        putchar(*s);
    }
    putchar('"');
}

static __attribute__((unused)) void emit_row(const char *id, const char *what, const char *ours, const char *baseline,
                     double ratio, const char *target, int met, const char *note) {
    printf("{\"id\":");
    json_str(id);
    printf(",\"what\":");
    json_str(what);
    printf(",\"ours\":");
    json_str(ours);
    printf(",\"baseline\":");
    json_str(baseline);
    if (ratio >= 0)
        printf(",\"ratio\":%.4f", ratio);
    else
        printf(",\"ratio\":null");
    printf(",\"target\":");
    json_str(target);
    printf(",\"met\":%s", met < 0 ? "null" : met ? "true" : "false");
    printf(",\"note\":");
    json_str(note);
    printf("}\n");
    fflush(stdout);
    fprintf(stderr, "%-24s ours %-22s baseline %.40s ratio ", id, ours, baseline);
    if (ratio >= 0)
        fprintf(stderr, "%.3fx", ratio);
    else
        fprintf(stderr, "-");
    fprintf(stderr, " target %s %s\n", target, met < 0 ? "-" : met ? "met" : "MISSED");
}

#endif
