/*
 * test_misuse.c: every way a C caller can get the ABI wrong, and what must happen then.
 *
 * NULL for every pointer parameter of every function, strings that are not UTF-8, unknown
 * keys, bad values, too-small buffers, freeing NULL, out-parameters left alone on failure,
 * and the last-error message ("" after a success, never NULL, never holding a secret).
 *
 * Needs a sandbox (or any server) described by the LWOLF_* environment variables for the
 * parts that fetch a token. With LWOLF_EXPECT_TEST_PANIC=1 (a library built with the
 * `ffi-test-panic` feature) it also checks that a panic inside the library comes back as
 * LWOLF_ERR_INTERNAL.
 *
 * Prints "test_misuse: N passed, N failed" and exits non-zero if anything failed.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwolf_auth.h"

static int passed, failed;
static const char *secret; /* LWOLF_CLIENT_SECRET: must never show in a message */
static char seen_token[4096]; /* the token: must never show in a message either */

static void check(int ok, const char *what, int line) {
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "FAILED line %d: %s (last error: \"%s\")\n", line, what,
                lwolf_last_error_message());
    }
}
#define CHECK(cond) check((cond) ? 1 : 0, #cond, __LINE__)

/* The last error after a failure: never NULL, not empty, no secret, no token. */
static int error_set(void) {
    const char *msg = lwolf_last_error_message();
    if (msg == NULL || msg[0] == '\0') return 0;
    if (secret != NULL && secret[0] != '\0' && strstr(msg, secret) != NULL) return 0;
    if (seen_token[0] != '\0' && strstr(msg, seen_token) != NULL) return 0;
    return 1;
}

/* The last error after a success: "" (and not NULL). */
static int error_clear(void) {
    const char *msg = lwolf_last_error_message();
    return msg != NULL && msg[0] == '\0';
}

#define EXPECT_FAIL(call, status) \
    do { \
        lwolf_status st_ = (call); \
        check(st_ == (status), #call " == " #status, __LINE__); \
        check(error_set(), "last error set, without secret, after " #call, __LINE__); \
    } while (0)

#define EXPECT_OK(call) \
    do { \
        lwolf_status st_ = (call); \
        check(st_ == LWOLF_OK, #call " == LWOLF_OK", __LINE__); \
        check(error_clear(), "last error \"\" after " #call, __LINE__); \
    } while (0)

/* A pointer value that must come back untouched from a failed call. */
#define SENTINEL ((void *)0x5a5a)

static void test_static_strings(void) {
    const char *v = lwolf_version();
    char from_macros[64];
    CHECK(v != NULL && strlen(v) > 0);
    /* The header's version macros are the library's version. */
    snprintf(from_macros, sizeof from_macros, "%d.%d.%d", LWOLF_VERSION_MAJOR,
             LWOLF_VERSION_MINOR, LWOLF_VERSION_PATCH);
    CHECK(strcmp(v, from_macros) == 0);
    CHECK(strcmp(lwolf_status_name(LWOLF_OK), "LWOLF_OK") == 0);
    CHECK(strcmp(lwolf_status_name(LWOLF_ERR_INVALID_CREDENTIALS),
                 "LWOLF_ERR_INVALID_CREDENTIALS") == 0);
    CHECK(strcmp(lwolf_status_name(LWOLF_ERR_INTERNAL), "LWOLF_ERR_INTERNAL") == 0);
    CHECK(strcmp(lwolf_status_name(12), "LWOLF_ERR_ABORTED") == 0);
    CHECK(strcmp(lwolf_status_name(13), "LWOLF_ERR_DEADLINE") == 0);
    CHECK(strcmp(lwolf_status_name(14), "LWOLF_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(lwolf_status_name(0xffffffffu), "LWOLF_UNKNOWN_STATUS") == 0);
    /* The fixed values of the contract. */
    CHECK(LWOLF_OK == 0 && LWOLF_ERR_INVALID_ARGUMENT == 1 && LWOLF_ERR_CONFIG == 2);
    CHECK(LWOLF_ERR_INVALID_CREDENTIALS == 3 && LWOLF_ERR_BAD_REQUEST == 4);
    CHECK(LWOLF_ERR_FORBIDDEN == 5 && LWOLF_ERR_RATE_LIMITED == 6 && LWOLF_ERR_SERVER == 7);
    CHECK(LWOLF_ERR_TRANSPORT == 8 && LWOLF_ERR_INVALID_RESPONSE == 9);
    CHECK(LWOLF_ERR_BUFFER_TOO_SMALL == 10 && LWOLF_ERR_INTERNAL == 11);
    CHECK(LWOLF_ERR_ABORTED == 12 && LWOLF_ERR_DEADLINE == 13);
    CHECK(sizeof(lwolf_status) == 4);
}

static void test_config(void) {
    lwolf_config *cfg = (lwolf_config *)SENTINEL;
    lwolf_client *client = (lwolf_client *)SENTINEL;

    CHECK(error_clear()); /* nothing failed yet on this thread */
    EXPECT_FAIL(lwolf_config_new(NULL), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(strstr(lwolf_last_error_message(), "out") != NULL);
    /* Reading the message, the version or a status name leaves it in place. */
    (void)lwolf_version();
    (void)lwolf_status_name(1);
    CHECK(strstr(lwolf_last_error_message(), "out") != NULL);
    EXPECT_FAIL(lwolf_config_from_env(NULL), LWOLF_ERR_INVALID_ARGUMENT);

    EXPECT_OK(lwolf_config_new(&cfg));
    CHECK(cfg != NULL && cfg != (lwolf_config *)SENTINEL);

    EXPECT_FAIL(lwolf_config_set(NULL, "client_id", "x"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, NULL, "x"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, "client_id", NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, "no_such_key", "x"), LWOLF_ERR_INVALID_ARGUMENT);
    /* Not shown: a key that is no near miss of a real one may be a pasted secret. */
    CHECK(strstr(lwolf_last_error_message(), "no_such_key") == NULL);
    EXPECT_FAIL(lwolf_config_set(cfg, "client_secert", "x"), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(strstr(lwolf_last_error_message(), "did you mean \"client_secret\"") != NULL);
    EXPECT_FAIL(lwolf_config_set(cfg, "client\xff", "x"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, "client_id", "bad \xc3\x28 utf8"),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, "timeout_ms", "soon"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, "refresh_ratio", "1.5"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_config_set(cfg, "token_format", "xml"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_config_set(cfg, "timeout_ms", "5000"));

    /* Incomplete: no client id, no secret. */
    EXPECT_FAIL(lwolf_client_new(cfg, &client), LWOLF_ERR_CONFIG);
    CHECK(client == (lwolf_client *)SENTINEL);
    EXPECT_OK(lwolf_config_set(cfg, "client_id", "id"));
    EXPECT_OK(lwolf_config_set(cfg, "client_secret", "misuse-secret-value"));
    /* http:// to a host that is not loopback is forbidden. */
    EXPECT_OK(lwolf_config_set(cfg, "token_url", "http://example.com/oauth/token"));
    EXPECT_FAIL(lwolf_client_new(cfg, &client), LWOLF_ERR_CONFIG);
    CHECK(strstr(lwolf_last_error_message(), "misuse-secret-value") == NULL);
    CHECK(client == (lwolf_client *)SENTINEL);
    EXPECT_OK(lwolf_config_set(cfg, "token_url", "https://example.com/oauth/token"));
    EXPECT_FAIL(lwolf_config_set(cfg, "client_secret_file", NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_config_set(cfg, "client_secret_file", "/nonexistent/secret"));
    EXPECT_FAIL(lwolf_client_new(cfg, &client), LWOLF_ERR_CONFIG);
    CHECK(client == (lwolf_client *)SENTINEL);
    EXPECT_OK(lwolf_config_set(cfg, "client_secret", "misuse-secret-value"));

    EXPECT_FAIL(lwolf_client_new(NULL, &client), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_new(cfg, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(client == (lwolf_client *)SENTINEL);
    EXPECT_OK(lwolf_client_new(cfg, &client)); /* no network I/O here */
    /* The client does not need the configuration any more. */
    lwolf_config_free(cfg);
    CHECK(error_clear());
    lwolf_client_free(client);

    lwolf_config_free(NULL);
    lwolf_client_free(NULL);
    lwolf_response_free(NULL);
    CHECK(error_clear());
}

static void test_panic(void) {
    lwolf_config *cfg = NULL;
    const char *expect = getenv("LWOLF_EXPECT_TEST_PANIC");
    EXPECT_OK(lwolf_config_new(&cfg));
    if (expect != NULL && strcmp(expect, "1") == 0) {
        EXPECT_FAIL(lwolf_config_set(cfg, "__lwolf_test_panic", "1"), LWOLF_ERR_INTERNAL);
        CHECK(strstr(lwolf_last_error_message(), "panic") != NULL);
        /* The library still works after a caught panic. */
        EXPECT_OK(lwolf_config_set(cfg, "client_id", "after-panic"));
    } else {
        /* Without the test feature the key is just unknown. */
        EXPECT_FAIL(lwolf_config_set(cfg, "__lwolf_test_panic", "1"),
                    LWOLF_ERR_INVALID_ARGUMENT);
    }
    lwolf_config_free(cfg);
}

static lwolf_client *env_client(void) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    EXPECT_OK(lwolf_config_from_env(&cfg));
    EXPECT_OK(lwolf_client_new(cfg, &client));
    lwolf_config_free(cfg);
    return client;
}

static void test_token(lwolf_client *client) {
    char buf[4096];
    char again[4096];
    size_t len = 12345, len2 = 0, i;
    lwolf_token_info info, info2;
    int untouched = 1;

    EXPECT_FAIL(lwolf_client_token(NULL, buf, sizeof buf, &len), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_token(client, buf, sizeof buf, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_token(client, NULL, 10, &len), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(len == 12345); /* not written on failure */

    /* A length query: buf NULL, buf_len 0. */
    EXPECT_FAIL(lwolf_client_token(client, NULL, 0, &len), LWOLF_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 0 && len < sizeof buf);
    CHECK(strstr(lwolf_last_error_message(), "buffer too small") != NULL);

    /* Exactly the length is one byte short (the NUL): nothing is written. */
    memset(buf, 'x', sizeof buf);
    EXPECT_FAIL(lwolf_client_token(client, buf, len, &len2), LWOLF_ERR_BUFFER_TOO_SMALL);
    CHECK(len2 == len);
    for (i = 0; i < sizeof buf; i++) {
        if (buf[i] != 'x') untouched = 0;
    }
    CHECK(untouched);

    EXPECT_OK(lwolf_client_token(client, buf, len + 1, &len2));
    CHECK(len2 == len && buf[len] == '\0' && strlen(buf) == len);
    memcpy(seen_token, buf, len + 1);

    /* The short buffers did not disturb the cache: the same token comes back. */
    EXPECT_OK(lwolf_client_token(client, again, sizeof again, &len2));
    CHECK(strcmp(buf, again) == 0);

    EXPECT_FAIL(lwolf_client_token_info(NULL, &info), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_token_info(client, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_client_token_info(client, &info));
    CHECK(strlen(info.fingerprint) == 12);
    CHECK(info.lifetime_secs > 0);
    CHECK(info.expires_at_unix > 1600000000);
    CHECK(info.refresh_at_unix <= info.usable_until_unix);
    CHECK(info.usable_until_unix <= info.expires_at_unix);
    EXPECT_OK(lwolf_client_token_info(client, &info2));
    CHECK(strcmp(info.fingerprint, info2.fingerprint) == 0);

    EXPECT_FAIL(lwolf_client_invalidate(NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_client_invalidate(client));
    EXPECT_OK(lwolf_client_token(client, buf, sizeof buf, &len2));
}

static void test_tenant(lwolf_client *client) {
    lwolf_client *tenant = (lwolf_client *)SENTINEL;
    lwolf_client *parent = NULL;
    char buf[4096];
    size_t len;

    EXPECT_FAIL(lwolf_client_for_tenant(NULL, "t", &tenant), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_for_tenant(client, NULL, &tenant), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_for_tenant(client, "t", NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_for_tenant(client, "", &tenant), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_for_tenant(client, "\xff\xfe", &tenant),
                LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(tenant == (lwolf_client *)SENTINEL);

    /* A tenant client outlives the client it was made from. */
    parent = env_client();
    EXPECT_OK(lwolf_client_for_tenant(parent, "tenant-42", &tenant));
    lwolf_client_free(parent);
    EXPECT_OK(lwolf_client_token(tenant, buf, sizeof buf, &len));
    lwolf_client_free(tenant);
}

static int never_called(void *userdata, const uint8_t *data, size_t len) {
    (void)userdata; (void)data; (void)len;
    return 1;
}

/* lwolf_request: every NULL and bad argument, and what the sends refuse. */
static void test_request_object(lwolf_client *client) {
    lwolf_request *req = (lwolf_request *)SENTINEL;
    lwolf_response *r = (lwolf_response *)SENTINEL;
    lwolf_client *other = (lwolf_client *)SENTINEL;

    EXPECT_FAIL(lwolf_request_new(NULL, "/v1/x", &req), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_new("GET", NULL, &req), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_new("GET", "/v1/x", NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_new("", "/v1/x", &req), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_new("GE T", "/v1/x", &req), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(req == (lwolf_request *)SENTINEL);
    EXPECT_OK(lwolf_request_new("PATCH", "/v1/offices", &req));

    EXPECT_FAIL(lwolf_request_header(NULL, "X-A", "1"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_header(req, NULL, "1"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_header(req, "X-A", NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_header(req, "Authorization", "Bearer mine"),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_header(req, "bad name", "1"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_header(req, "X-A", "a\r\nX-Evil: 1"), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(strstr(lwolf_last_error_message(), "Evil") == NULL);
    EXPECT_FAIL(lwolf_request_header(req, "X-A", "\xff"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_request_header(req, "If-Match", "\"v1\""));
    EXPECT_FAIL(lwolf_request_query(NULL, "a", "b"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_query(req, NULL, "b"), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_request_query(req, "$expand", "commissions"));
    EXPECT_FAIL(lwolf_request_body(NULL, NULL, 0, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_body(req, NULL, 3, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_request_body(req, (const uint8_t *)"{}", 2, "text/\x01"),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_request_body(req, (const uint8_t *)"{}", 2, NULL));
    EXPECT_OK(lwolf_request_body(req, NULL, 0, "application/merge-patch+json"));
    EXPECT_FAIL(lwolf_request_timeout_ms(NULL, 5), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_OK(lwolf_request_timeout_ms(req, 5000));
    EXPECT_OK(lwolf_request_timeout_ms(req, 0));

    EXPECT_FAIL(lwolf_client_send(NULL, req, &r), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_send(client, NULL, &r), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_send(client, req, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_send_to(client, req, NULL, NULL, &r), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_send_to(client, req, never_called, NULL, NULL),
                LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(r == (lwolf_response *)SENTINEL);
    /* The sandbox answers a PATCH of the office list 405: a response, not an error. */
    EXPECT_OK(lwolf_client_send(client, req, &r));
    CHECK(lwolf_response_status(r) == 405);
    lwolf_response_free(r);

    EXPECT_FAIL(lwolf_client_for_api(NULL, "https://gateway.lwolf.com/x", &other),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_for_api(client, NULL, &other), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_for_api(client, "http://example.com/x", &other), LWOLF_ERR_CONFIG);
    EXPECT_FAIL(lwolf_client_for_api(client, "https://gateway.lwolf.com/x", NULL),
                LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(other == (lwolf_client *)SENTINEL);

    lwolf_request_free(req);
    lwolf_request_free(NULL);
}

static void test_request(lwolf_client *client) {
    lwolf_response *r = (lwolf_response *)SENTINEL;
    const uint8_t *body;
    const char *name = (const char *)SENTINEL, *value = (const char *)SENTINEL;
    size_t len = 777, count, i;
    int found_ct = 0;
    static const uint8_t json[] = "{\"address\":\"1 Main St\"}";

    EXPECT_FAIL(lwolf_client_request(NULL, "GET", "/v1/offices", NULL, 0, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_request(client, NULL, "/v1/offices", NULL, 0, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_request(client, "GET", NULL, NULL, 0, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_request(client, "GET", "/v1/offices", NULL, 5, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_request(client, "GET", "/v1/offices", NULL, 0, NULL),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_request(client, "GET", "/v1/\xff", NULL, 0, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_client_request(client, "G\xc3", "/v1/offices", NULL, 0, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    /* The token is never sent to another origin. */
    EXPECT_FAIL(lwolf_client_request(client, "GET", "https://attacker.example/steal", NULL, 0, &r),
                LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(r == (lwolf_response *)SENTINEL);

    EXPECT_OK(lwolf_client_request(client, "GET", "/v1/offices", NULL, 0, &r));
    CHECK(r != NULL && r != (lwolf_response *)SENTINEL);
    CHECK(lwolf_response_status(r) == 200);
    CHECK(error_clear());

    CHECK(lwolf_response_status(NULL) == 0);
    CHECK(error_set());
    CHECK(lwolf_response_body(NULL, &len) == NULL && len == 777);
    CHECK(error_set());
    CHECK(lwolf_response_body(r, NULL) == NULL);
    CHECK(error_set());
    body = lwolf_response_body(r, &len);
    CHECK(body != NULL && len > 0 && body[len] == '\0');
    CHECK(error_clear());

    CHECK(lwolf_response_header(NULL, "content-type") == NULL);
    CHECK(error_set());
    CHECK(lwolf_response_header(r, NULL) == NULL);
    CHECK(error_set());
    CHECK(lwolf_response_header(r, "\xff") == NULL);
    CHECK(error_set());
    /* An absent header is NULL without an error. */
    CHECK(lwolf_response_header(r, "X-No-Such-Header") == NULL);
    CHECK(error_clear());
    /* Names are case-insensitive. */
    CHECK(lwolf_response_header(r, "CONTENT-TYPE") != NULL);
    CHECK(lwolf_response_header(r, "content-type") == lwolf_response_header(r, "Content-Type"));

    CHECK(lwolf_response_header_count(NULL) == 0);
    count = lwolf_response_header_count(r);
    CHECK(count > 0);
    EXPECT_FAIL(lwolf_response_header_at(NULL, 0, &name, &value), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_response_header_at(r, 0, NULL, &value), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_response_header_at(r, 0, &name, NULL), LWOLF_ERR_INVALID_ARGUMENT);
    EXPECT_FAIL(lwolf_response_header_at(r, count, &name, &value), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(name == (const char *)SENTINEL && value == (const char *)SENTINEL);
    for (i = 0; i < count; i++) {
        EXPECT_OK(lwolf_response_header_at(r, i, &name, &value));
        if (strcmp(name, "content-type") == 0) found_ct = 1;
    }
    CHECK(found_ct);
    lwolf_response_free(r);

    /* Every HTTP status is a response, not an error. */
    r = NULL;
    EXPECT_OK(lwolf_client_request(client, "GET", "/v1/no-such-thing", NULL, 0, &r));
    CHECK(lwolf_response_status(r) == 404);
    lwolf_response_free(r);

    /* A body, given with its length (no NUL needed). */
    r = NULL;
    EXPECT_OK(lwolf_client_request(client, "POST", "/v1/transactions", json, sizeof json - 1, &r));
    CHECK(lwolf_response_status(r) >= 200 && lwolf_response_status(r) < 300);
    lwolf_response_free(r);
}

static void test_wrong_secret(void) {
    lwolf_config *cfg = NULL;
    lwolf_client *client = NULL;
    char buf[256];
    size_t len = 99;
    EXPECT_OK(lwolf_config_from_env(&cfg));
    EXPECT_OK(lwolf_config_set(cfg, "client_secret", "wrong-secret-4f9a2c"));
    EXPECT_OK(lwolf_client_new(cfg, &client));
    lwolf_config_free(cfg);
    EXPECT_FAIL(lwolf_client_token(client, buf, sizeof buf, &len),
                LWOLF_ERR_INVALID_CREDENTIALS);
    CHECK(strstr(lwolf_last_error_message(), "wrong-secret-4f9a2c") == NULL);
    CHECK(strstr(lwolf_last_error_message(), "401") != NULL);
    CHECK(len == 99);
    lwolf_client_free(client);
}

/* The last error belongs to the thread. */
static void *other_thread(void *arg) {
    int *ok = (int *)arg;
    lwolf_config *cfg = NULL;
    *ok = error_clear() && lwolf_config_new(&cfg) == LWOLF_OK && error_clear();
    lwolf_config_free(cfg);
    return NULL;
}

static void test_thread_local_error(void) {
    pthread_t t;
    int ok = 0;
    EXPECT_FAIL(lwolf_config_new(NULL), LWOLF_ERR_INVALID_ARGUMENT);
    CHECK(pthread_create(&t, NULL, other_thread, &ok) == 0);
    pthread_join(t, NULL);
    CHECK(ok);
    CHECK(error_set()); /* still this thread's failure */
}

int main(void) {
    lwolf_client *client;
    secret = getenv("LWOLF_CLIENT_SECRET");
    if (secret == NULL || getenv("LWOLF_TOKEN_URL") == NULL) {
        fprintf(stderr, "test_misuse needs LWOLF_TOKEN_URL, LWOLF_API_BASE_URL, "
                        "LWOLF_CLIENT_ID and LWOLF_CLIENT_SECRET (a sandbox)\n");
        return 2;
    }
    test_static_strings();
    test_config();
    test_panic();
    client = env_client();
    test_token(client);
    test_tenant(client);
    test_request(client);
    test_request_object(client);
    test_wrong_secret();
    test_thread_local_error();
    lwolf_client_free(client);

    printf("test_misuse: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
