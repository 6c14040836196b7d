/*
 * hot_path.c: the cached token through the C ABI, lwolf_client_token(), against the least a
 * hand-written C cache must do: pthread_mutex_lock, clock_gettime(CLOCK_MONOTONIC) to check
 * the expiry, memcpy of the token (and its NUL) into the caller's buffer, unlock. On 1 and
 * 2 threads, in interleaved rounds; prints one JSON line per row (see benches/report.py).
 *
 * Two reference points run in the same rounds: the same cache reading both clocks the
 * contract asks for (CLOCK_MONOTONIC and CLOCK_REALTIME) under the lock, as the library
 * does; and reading coarse clocks (CLOCK_MONOTONIC_COARSE, CLOCK_REALTIME_COARSE) before
 * taking the lock, the fix proposed in BENCHMARKS.md.
 *
 * Then, with the client still alive and one API request made, the number of threads in the
 * process (from /proc/self/status): the library starts none of its own.
 *
 *     env $(compare serve) ./hot_path [--quick]
 *     env $(compare serve) ./hot_path --only ours|base N   (N calls on one thread, for
 *                                                          profilers)
 */
#include "bench.h" /* first: feature macros */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lwolf_auth.h"

/* The hand-written cache. */
struct cache {
    pthread_mutex_t mu;
    struct timespec expires;
    size_t len;
    char token[4096];
};

static lwolf_client *client;
static struct cache cache = {PTHREAD_MUTEX_INITIALIZER, {0, 0}, 0, {0}};

static int cache_get(char *buf, size_t buf_len, size_t *len) {
    struct timespec now;
    int ok = 0;
    pthread_mutex_lock(&cache.mu);
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec < cache.expires.tv_sec ||
         (now.tv_sec == cache.expires.tv_sec && now.tv_nsec < cache.expires.tv_nsec)) &&
        cache.len < buf_len) {
        memcpy(buf, cache.token, cache.len + 1);
        *len = cache.len;
        ok = 1;
    }
    pthread_mutex_unlock(&cache.mu);
    return ok;
}

static int before(const struct timespec *a, const struct timespec *b) {
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static struct timespec expires_wall;

/* Lock, both precise clocks, copy, unlock: what the library's hot path does. */
static int cache_get_two_clocks(char *buf, size_t buf_len, size_t *len) {
    struct timespec mono, wall;
    int ok = 0;
    pthread_mutex_lock(&cache.mu);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &wall);
    if (before(&mono, &cache.expires) && before(&wall, &expires_wall) && cache.len < buf_len) {
        memcpy(buf, cache.token, cache.len + 1);
        *len = cache.len;
        ok = 1;
    }
    pthread_mutex_unlock(&cache.mu);
    return ok;
}

/* Both clocks, coarse, read before the lock; then lock, copy, unlock. */
static int cache_get_coarse(char *buf, size_t buf_len, size_t *len) {
    struct timespec mono, wall;
    int ok = 0;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &mono);
    clock_gettime(CLOCK_REALTIME_COARSE, &wall);
    pthread_mutex_lock(&cache.mu);
    if (before(&mono, &cache.expires) && before(&wall, &expires_wall) && cache.len < buf_len) {
        memcpy(buf, cache.token, cache.len + 1);
        *len = cache.len;
        ok = 1;
    }
    pthread_mutex_unlock(&cache.mu);
    return ok;
}

static void op_two_clocks(void) {
    char buf[4096];
    size_t len;
    if (!cache_get_two_clocks(buf, sizeof buf, &len)) exit(1);
    SINK(buf);
}

static void op_coarse(void) {
    char buf[4096];
    size_t len;
    if (!cache_get_coarse(buf, sizeof buf, &len)) exit(1);
    SINK(buf);
}

static void clk_mono(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); SINK(&t); }
static void clk_real(void) { struct timespec t; clock_gettime(CLOCK_REALTIME, &t); SINK(&t); }
static void clk_mono_coarse(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    SINK(&t);
}
static void clk_real_coarse(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME_COARSE, &t);
    SINK(&t);
}

/* The price of reading each clock on this machine: the floor under any cache that checks
   expiry. */
static void clock_row(int rounds, double sample) {
    void (*ops[4])(void) = {clk_mono, clk_real, clk_mono_coarse, clk_real_coarse};
    double v[4][64];
    long iters[4];
    char ours[128], base[128];
    int i, k;
    for (k = 0; k < 4; k++) iters[k] = calibrate(sample, ops[k]);
    for (i = 0; i < rounds; i++)
        for (k = 0; k < 4; k++) {
            int s = (i + k) % 4;
            v[s][i] = ns_per_call(1, iters[s], ops[s]);
        }
    snprintf(ours, sizeof ours, "precise: MONOTONIC %.1f ns, REALTIME %.1f ns", median(v[0], rounds),
             median(v[1], rounds));
    snprintf(base, sizeof base, "coarse: MONOTONIC_COARSE %.1f ns, REALTIME_COARSE %.1f ns",
             median(v[2], rounds), median(v[3], rounds));
    emit_row("1.0-clocks", "Physical floor: one `clock_gettime()` (vDSO) on this machine", ours,
             base, -1, "-", -1, "median of interleaved rounds, one thread; the baselines below read one "
             "precise clock per call, the library two coarse ones (src/clock.rs)");
}

static void op_ours(void) {
    char buf[4096];
    size_t len;
    if (lwolf_client_token(client, buf, sizeof buf, &len) != LWOLF_OK) {
        fprintf(stderr, "lwolf_client_token: %s\n", lwolf_last_error_message());
        exit(1);
    }
    SINK(buf);
}

static void op_base(void) {
    char buf[4096];
    size_t len;
    if (!cache_get(buf, sizeof buf, &len)) {
        fprintf(stderr, "the hand-written cache has no token\n");
        exit(1);
    }
    SINK(buf);
}

static int process_threads(void) {
    char line[256];
    int n = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1) break;
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int rounds = quick ? 6 : 25;
    double sample = quick ? 0.005 : 0.02;
    lwolf_config *cfg = NULL;
    lwolf_response *resp = NULL;
    lwolf_status st;
    size_t len;
    int threads;

    st = lwolf_config_from_env(&cfg);
    if (st == LWOLF_OK) st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st == LWOLF_OK)
        st = lwolf_client_token(client, cache.token, sizeof cache.token, &len);
    if (st != LWOLF_OK) {
        fprintf(stderr, "setup: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
        return 1;
    }
    cache.len = len;
    clock_gettime(CLOCK_MONOTONIC, &cache.expires);
    cache.expires.tv_sec += 3600;
    clock_gettime(CLOCK_REALTIME, &expires_wall);
    expires_wall.tv_sec += 3600;

    if (argc == 4 && strcmp(argv[1], "--only") == 0) {
        void (*op)(void) = strcmp(argv[2], "base") == 0 ? op_base : op_ours;
        long n = atol(argv[3]), k;
        double start = now_s();
        for (k = 0; k < n; k++) op();
        fprintf(stderr, "%s: %.1f ns/call\n", argv[2], (now_s() - start) * 1e9 / (double)n);
        return 0;
    }

    clock_row(rounds, sample);
    {
        void (*ops[4])(void) = {op_ours, op_base, op_two_clocks, op_coarse};
        long iters[4];
        int k;
        for (k = 0; k < 4; k++) iters[k] = calibrate(sample, ops[k]);
        for (threads = 1; threads <= 2; threads++) {
            double v[4][64], r[64], two[64];
            char ours[128], base[256], id[64], what[128], note[512];
            int i;
            for (i = 0; i < rounds; i++) {
                for (k = 0; k < 4; k++) { /* rotate which side goes first */
                    int s = (i + k) % 4;
                    v[s][i] = ns_per_call(threads, iters[s], ops[s]);
                }
                r[i] = v[0][i] / v[1][i];
                two[i] = v[0][i] / v[2][i];
            }
            snprintf(id, sizeof id, "1.%d-hot-c-%dt", threads + 2, threads);
            snprintf(what, sizeof what,
                     "Cached token, C `lwolf_client_token()` (%zu-byte token), %d thread%s", len,
                     threads, threads > 1 ? "s" : "");
            snprintf(ours, sizeof ours, "%.1f ns/call", median(v[0], rounds));
            snprintf(base, sizeof base,
                     "%.1f ns/call (`pthread_mutex` lock, `clock_gettime`, `memcpy`, unlock)",
                     median(v[1], rounds));
            snprintf(note, sizeof note,
                     "median of %d interleaved rounds, per-round ratio p25-p75 %.2f-%.2f; in the "
                     "same rounds, that cache reading CLOCK_MONOTONIC and CLOCK_REALTIME under "
                     "the lock: %.1f ns (ours / that %.2fx); reading both coarse clocks before "
                     "the lock (as the library does): %.1f ns",
                     rounds, quantile(r, rounds, 0.25), quantile(r, rounds, 0.75),
                     median(v[2], rounds), median(two, rounds), median(v[3], rounds));
            emit_row(id, what, ours, base, median(r, rounds), "≤ 1.5x",
                     median(r, rounds) <= 1.5 ? 1 : 0, note);
        }
    }

    st = lwolf_client_request(client, "GET", "/v1/transactions", NULL, 0, &resp);
    if (st != LWOLF_OK) {
        fprintf(stderr, "request: %s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
        return 1;
    }
    lwolf_response_free(resp);
    {
        int n = process_threads();
        char ours[128], note[256];
        snprintf(ours, sizeof ours, "%d", n - 1);
        snprintf(note, sizeof note,
                 "Threads in /proc/self/status less the main thread, with a live client that has "
                 "a token and a pooled connection, after %d bench threads were joined", 2);
        emit_row("5.6-idle-threads", "Threads the library keeps while idle (C)", ours, "-", -1,
                 "0", n - 1 == 0 ? 1 : 0, note);
    }
    lwolf_client_free(client);
    return 0;
}
