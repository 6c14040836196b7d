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
 *
 * Settings come from the LWOLF_* variables. Every child runs under alarm(20): a hang is a
 * failure, never a stuck test. Exit status 0 when every check passed.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    } else {
        fprintf(stderr, "usage: fork pairs N | in-flight | loop N\n");
        rc = 2;
    }
    lwolf_client_free(client);
    return rc;
}
