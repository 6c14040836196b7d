/*
 * fork.c: a client made before fork() keeps working in the parent and in the child.
 *
 *     ./fork pairs N      after one request, fork; parent and child each send N GETs to
 *                         /parent/<i> and /child/<i> at the same time, and check that every
 *                         answer is their own (the test server echoes the path in the body)
 *     ./fork in-flight    fork while another thread waits on the first token request; the
 *                         child's lwolf_client_token must return (it fetches its own)
 *     ./fork loop N       fork N times while 4 threads keep using the client; each child
 *                         gets a token and sends one GET, then exits
 *     ./fork log-child    fork while another thread is inside the log callback; the child
 *                         replaces the callback and exits: it must not wait on the parent's
 *                         thread (the parent gives it 5 s)
 *     ./fork lock-child   with LWOLF_CACHE_DIR set: fork while another thread holds the cache
 *                         directory's lock through a token request; once the parent's request
 *                         is done the lock must be free, though the child lives on
 *     ./fork jitter N     after a token, fork N children that each fetch their own: their
 *                         refresh times are drawn apart (each prints its refresh_at_unix)
 *
 * Settings come from the LWOLF_* variables. Every child runs under alarm(20): a hang is a
 * failure, never a stuck test. Exit status 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lwolf_auth.h"

static lwolf_client *client;

static int fail(const char *what, lwolf_status st) {
    fprintf(stderr, "[%ld] %s: %s: %s\n", (long)getpid(), what, lwolf_status_name(st),
            lwolf_last_error_message());
    return 1;
}

/* GET path; the answer must be 200 with the path as its body. Returns 0 when it is. */
static int get_own(const char *path) {
    lwolf_response *response = NULL;
    const uint8_t *body;
    size_t len = 0;
    int bad;
    lwolf_status st = lwolf_client_request(client, "GET", path, NULL, 0, &response);
    if (st != LWOLF_OK) {
        return fail(path, st);
    }
    body = lwolf_response_body(response, &len);
    bad = lwolf_response_status(response) != 200 || len != strlen(path) ||
          memcmp(body, path, len) != 0;
    if (bad) {
        fprintf(stderr, "[%ld] GET %s: HTTP %u, got someone else's answer: %.*s\n",
                (long)getpid(), path, (unsigned)lwolf_response_status(response), (int)len,
                (const char *)body);
    }
    lwolf_response_free(response);
    return bad;
}

static int get_token(void) {
    char token[4096];
    size_t len;
    lwolf_status st = lwolf_client_token(client, token, sizeof token, &len);
    return st == LWOLF_OK ? 0 : fail("token", st);
}

/* Waits for pid; 0 when it exited with 0. */
static int reap(pid_t pid, const char *what) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) {
        perror("waitpid");
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        return 0;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "%s: killed by signal %d%s\n", what, WTERMSIG(status),
                WTERMSIG(status) == SIGALRM ? " (it hung)" : "");
    } else {
        fprintf(stderr, "%s: exit %d\n", what, WEXITSTATUS(status));
    }
    return 1;
}

static int pairs(int n) {
    int go[2], failures = 0, i;
    char path[64], byte = 0;
    pid_t pid;
    /* One request first, so the pool holds a keep-alive connection when we fork. */
    if (get_own("/warm") != 0 || pipe(go) != 0) {
        return 1;
    }
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    /* Both start together, so their requests interleave. */
    if (pid == 0) {
        alarm(20);
        close(go[1]);
        if (read(go[0], &byte, 1) != 1) {
            _exit(1);
        }
        for (i = 0; i < n; i++) {
            snprintf(path, sizeof path, "/child/%d", i);
            failures += get_own(path);
        }
        printf("child: %d of %d answers were its own\n", n - failures, n);
        fflush(stdout);
        _exit(failures != 0);
    }
    close(go[0]);
    if (write(go[1], &byte, 1) != 1) {
        return 1;
    }
    close(go[1]);
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/parent/%d", i);
        failures += get_own(path);
    }
    printf("parent: %d of %d answers were its own\n", n - failures, n);
    fflush(stdout);
    return reap(pid, "child") + (failures != 0);
}

static void *token_thread(void *arg) {
    (void)arg;
    return (void *)(size_t)get_token();
}

static int in_flight(void) {
    pthread_t t;
    void *result;
    pid_t pid;
    struct timespec wait = {0, 300 * 1000 * 1000};
    /* The test server holds the first token request for a while: fork while it waits. */
    if (pthread_create(&t, NULL, token_thread, NULL) != 0) {
        return 1;
    }
    nanosleep(&wait, NULL);
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(20);
        if (get_token() != 0) {
            _exit(1);
        }
        printf("child: token() returned\n");
        fflush(stdout);
        _exit(0);
    }
    pthread_join(t, &result);
    printf("parent: token() returned\n");
    return reap(pid, "child") + (result != NULL);
}

static volatile int running = 1;

static void *busy(void *arg) {
    size_t failures = 0;
    (void)arg;
    while (running) {
        failures += (size_t)get_token();
        failures += (size_t)get_own("/busy");
    }
    return (void *)failures;
}

static int loop(int n) {
    pthread_t threads[4];
    int i, failures = 0;
    if (get_token() != 0) {
        return 1;
    }
    for (i = 0; i < 4; i++) {
        if (pthread_create(&threads[i], NULL, busy, NULL) != 0) {
            return 1;
        }
    }
    for (i = 0; i < n; i++) {
        pid_t pid;
        fflush(stdout);
        pid = fork();
        if (pid < 0) {
            perror("fork");
            failures++;
            break;
        }
        if (pid == 0) {
            alarm(20);
            _exit(get_token() != 0 || get_own("/child") != 0);
        }
        failures += reap(pid, "child");
    }
    running = 0;
    for (i = 0; i < 4; i++) {
        void *result;
        pthread_join(threads[i], &result);
        failures += result != NULL;
    }
    printf("forks: %d, failures: %d\n", n, failures);
    return failures != 0;
}

/* -- log-child ------------------------------------------------------------------------ */

static volatile int in_callback = 0;

/* Holds the first record it gets on a thread other than main for 3 s. */
static pthread_t main_thread;
static void slow_callback(void *userdata, uint32_t level, const char *message) {
    struct timespec hold = {3, 0};
    (void)userdata;
    (void)level;
    (void)message;
    if (!pthread_equal(pthread_self(), main_thread) && !in_callback) {
        in_callback = 1;
        nanosleep(&hold, NULL);
    }
}

static void quiet_callback(void *userdata, uint32_t level, const char *message) {
    (void)userdata;
    (void)level;
    (void)message;
}

/* Waits at most `seconds` for pid; 0 when it exited with 0, else it is killed. */
static int reap_within(pid_t pid, int seconds, const char *what) {
    int i, status = 0;
    for (i = 0; i < seconds * 100; i++) {
        struct timespec tick = {0, 10 * 1000 * 1000};
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) {
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
                return 0;
            }
            fprintf(stderr, "%s: ended badly (status %d)\n", what, status);
            return 1;
        }
        nanosleep(&tick, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fprintf(stderr, "%s: still running after %d s: it hung\n", what, seconds);
    return 1;
}

static int log_child(void) {
    pthread_t t;
    void *result;
    pid_t pid;
    int i;
    main_thread = pthread_self();
    if (lwolf_set_log_callback(slow_callback, NULL, LWOLF_LOG_TRACE) != LWOLF_OK ||
        pthread_create(&t, NULL, token_thread, NULL) != 0) {
        return 1;
    }
    for (i = 0; i < 1000 && !in_callback; i++) {
        struct timespec tick = {0, 10 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    if (!in_callback) {
        fprintf(stderr, "no record reached the callback\n");
        return 1;
    }
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm(20);
        if (lwolf_set_log_callback(quiet_callback, NULL, LWOLF_LOG_INFO) != LWOLF_OK ||
            lwolf_set_log_callback(NULL, NULL, 0) != LWOLF_OK) {
            _exit(1);
        }
        printf("child: the log callback was replaced\n");
        fflush(stdout);
        _exit(0);
    }
    i = reap_within(pid, 5, "child");
    pthread_join(t, &result);
    lwolf_set_log_callback(NULL, NULL, 0);
    return i + (result != NULL);
}

/* -- lock-child ----------------------------------------------------------------------- */

/* The path of the one lock file in dir, or "" */
static void lock_file(const char *dir, char *out, size_t len) {
    DIR *d = opendir(dir);
    struct dirent *e;
    out[0] = 0;
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".lock") == 0) {
            snprintf(out, len, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
}

/* 1 when someone holds an exclusive lock on path (tried on a description of our own). */
static int is_locked(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK), held;
    if (fd < 0) {
        return 0;
    }
    held = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return held;
}

static int lock_child(void) {
    const char *dir = getenv("LWOLF_CACHE_DIR");
    char path[4096];
    pthread_t t;
    void *result;
    pid_t pid;
    int i, held;
    if (dir == NULL || pthread_create(&t, NULL, token_thread, NULL) != 0) {
        return 1;
    }
    /* The test server holds the token request: wait until the thread holds the lock. */
    for (i = 0; i < 1000; i++) {
        struct timespec tick = {0, 10 * 1000 * 1000};
        lock_file(dir, path, sizeof path);
        if (path[0] && is_locked(path)) {
            break;
        }
        nanosleep(&tick, NULL);
    }
    if (!path[0] || !is_locked(path)) {
        fprintf(stderr, "the lock was never taken\n");
        return 1;
    }
    fflush(stdout);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        /* A long-lived child that has nothing to do with the lock. */
        struct timespec nap = {8, 0};
        alarm(20);
        nanosleep(&nap, NULL);
        _exit(0);
    }
    pthread_join(t, &result);
    held = is_locked(path);
    printf("after the parent's request: the lock is %s\n", held ? "still held" : "free");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return held + (result != NULL);
}

/* -- jitter --------------------------------------------------------------------------- */

static int jitter(int n) {
    int i, failures = 0;
    if (get_token() != 0 || lwolf_client_invalidate(client) != LWOLF_OK) {
        return 1;
    }
    fflush(stdout);
    for (i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            lwolf_token_info info;
            alarm(20);
            if (get_token() != 0 || lwolf_client_token_info(client, &info) != LWOLF_OK) {
                _exit(1);
            }
            printf("refresh_at %lld\n", (long long)info.refresh_at_unix);
            fflush(stdout);
            _exit(0);
        }
        failures += reap(pid, "child");
    }
    return failures != 0;
}

int main(int argc, char **argv) {
    lwolf_config *cfg = NULL;
    lwolf_status st;
    int rc;
    const char *mode = argc > 1 ? argv[1] : "";
    int n = argc > 2 ? atoi(argv[2]) : 20;

    st = lwolf_config_from_env(&cfg);
    if (st != LWOLF_OK) {
        return fail("config", st);
    }
    st = lwolf_client_new(cfg, &client);
    lwolf_config_free(cfg);
    if (st != LWOLF_OK) {
        return fail("client", st);
    }
    if (strcmp(mode, "pairs") == 0) {
        rc = pairs(n);
    } else if (strcmp(mode, "in-flight") == 0) {
        rc = in_flight();
    } else if (strcmp(mode, "loop") == 0) {
        rc = loop(n);
    } else if (strcmp(mode, "log-child") == 0) {
        rc = log_child();
    } else if (strcmp(mode, "lock-child") == 0) {
        rc = lock_child();
    } else if (strcmp(mode, "jitter") == 0) {
        rc = jitter(n);
    } else {
        fprintf(stderr, "usage: fork pairs N | in-flight | loop N | log-child | lock-child | jitter N\n");
        rc = 2;
    }
    lwolf_client_free(client);
    return rc;
}
