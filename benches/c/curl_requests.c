/*
 * curl_requests.c: the request object against libcurl, one thread, one keep-alive connection
 * each, on loopback (the minimal server of benches/compare/server.rs), interleaved windows.
 *
 *  4.4  a GET with two headers and an OData query: lwolf_client_send() of one prebuilt
 *       lwolf_request, against a reused libcurl easy handle with the same headers, the
 *       query already percent-encoded in its URL, and a fixed bearer header;
 *  4.5  a 16 MiB download streamed through a write callback: lwolf_client_send_to()
 *       against libcurl's CURLOPT_WRITEFUNCTION, both callbacks only counting bytes.
 *
 * Prints one JSON line per row (see benches/report.py).
 *
 *     env $(compare serve) ./curl_requests [--quick]
 */
#include "bench.h" /* first: feature macros */

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwolf_auth.h"

#define DOCUMENT_BYTES (16u * 1024u * 1024u)

static lwolf_client *client;
static lwolf_request *small, *document;
static CURL *curl_small, *curl_document;
static size_t received;

static size_t curl_count(char *ptr, size_t size, size_t n, void *userdata) {
    (void)ptr;
    (void)userdata;
    received += size * n;
    return size * n;
}

static int lwolf_count(void *userdata, const uint8_t *data, size_t len) {
    (void)userdata;
    (void)data;
    received += len;
    return 0;
}

static void fail(const char *what, lwolf_status st) {
    fprintf(stderr, "%s: %s: %s\n", what, lwolf_status_name(st), lwolf_last_error_message());
    exit(1);
}

static void op_ours_small(void) {
    lwolf_response *resp = NULL;
    size_t len;
    lwolf_status st = lwolf_client_send(client, small, &resp);
    if (st != LWOLF_OK || lwolf_response_status(resp) != 200) fail("lwolf_client_send", st);
    SINK(lwolf_response_body(resp, &len));
    lwolf_response_free(resp);
}

static void op_ours_document(void) {
    lwolf_response *resp = NULL;
    lwolf_status st;
    received = 0;
    st = lwolf_client_send_to(client, document, lwolf_count, NULL, &resp);
    if (st != LWOLF_OK || received != DOCUMENT_BYTES) fail("lwolf_client_send_to", st);
    lwolf_response_free(resp);
}

static void perform(CURL *curl, size_t expect) {
    long code = 0;
    CURLcode rc;
    received = 0;
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200 || (expect && received != expect)) {
        fprintf(stderr, "curl: %s, HTTP %ld, %zu bytes\n", curl_easy_strerror(rc), code, received);
        exit(1);
    }
}

static void op_curl_small(void) { perform(curl_small, 0); }
static void op_curl_document(void) { perform(curl_document, DOCUMENT_BYTES); }

static CURL *easy(const char *url, struct curl_slist *headers) {
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_count);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "lwolf-bench-curl");
    return c;
}

/* Interleaved rounds of `a` and `b`; the medians and the ratio's spread into the row. */
static void compare(const char *id, const char *what, void (*a_op)(void), void (*b_op)(void),
                    double scale, const char *unit, const char *baseline_what,
                    const char *target, double goal, int quick) {
    int rounds = quick ? 4 : 12, i;
    double window = quick ? 0.15 : 0.4;
    double a[64], b[64], r[64];
    char ours[64], base[200], note[200];
    for (i = 0; i < rounds; i++) {
        if (i % 2 == 0) {
            a[i] = rate(window, a_op) * scale;
            b[i] = rate(window, b_op) * scale;
        } else {
            b[i] = rate(window, b_op) * scale;
            a[i] = rate(window, a_op) * scale;
        }
        r[i] = a[i] / b[i];
    }
    snprintf(ours, sizeof ours, "%.0f %s", median(a, rounds), unit);
    snprintf(base, sizeof base, "%.0f %s (%s)", median(b, rounds), unit, baseline_what);
    snprintf(note, sizeof note, "median of %d interleaved pairs; per-pair ratio p25-p75 %.2f-%.2f",
             rounds, quantile(r, rounds, 0.25), quantile(r, rounds, 0.75));
    emit_row(id, what, ours, base, median(r, rounds), target, median(r, rounds) >= goal, note);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0, i;
    char token[4096], auth[4200], url_small[1024], url_document[1024], curl_name[100];
    const char *api = getenv("LWOLF_API_BASE_URL");
    struct curl_slist *h_small = NULL, *h_document = NULL;
    lwolf_status st;

    client = bench_client(token, sizeof token);

    /* The same request both ways: two headers and an OData query. */
    if ((st = lwolf_request_new("GET", "/v1/transactions", &small)) != LWOLF_OK ||
        (st = lwolf_request_header(small, "X-Request-Source", "bench")) != LWOLF_OK ||
        (st = lwolf_request_header(small, "If-None-Match", "\"v1\"")) != LWOLF_OK ||
        (st = lwolf_request_query(small, "$filter", "status eq 'closed'")) != LWOLF_OK ||
        (st = lwolf_request_query(small, "$top", "25")) != LWOLF_OK ||
        (st = lwolf_request_new("GET", "/v1/documents/d1", &document)) != LWOLF_OK)
        fail("building the requests", st);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    h_small = curl_slist_append(h_small, auth);
    h_small = curl_slist_append(h_small, "Accept: application/json");
    h_small = curl_slist_append(h_small, "X-Request-Source: bench");
    h_small = curl_slist_append(h_small, "If-None-Match: \"v1\"");
    h_document = curl_slist_append(h_document, auth);
    h_document = curl_slist_append(h_document, "Accept: application/json");
    snprintf(url_small, sizeof url_small,
             "%s/v1/transactions?$filter=status%%20eq%%20%%27closed%%27&$top=25", api);
    snprintf(url_document, sizeof url_document, "%s/v1/documents/d1", api);
    curl_small = easy(url_small, h_small);
    curl_document = easy(url_document, h_document);
    snprintf(curl_name, sizeof curl_name, "libcurl %s easy handle reused",
             curl_version_info(CURLVERSION_NOW)->version);

    for (i = 0; i < 200; i++) { /* warm both connections up */
        op_ours_small();
        op_curl_small();
    }
    op_ours_document();
    op_curl_document();

    compare("4.4-request-builder-c",
            "GET with two headers and an OData query, C `lwolf_client_send()` of one prebuilt "
            "`lwolf_request`",
            op_ours_small, op_curl_small, 1.0, "req/s", curl_name, "≥ 1.0x (curl's rate)", 1.0,
            quick);
    compare("4.5-streamed-download-c",
            "16 MiB download streamed to a write callback, C `lwolf_client_send_to()`",
            op_ours_document, op_curl_document, DOCUMENT_BYTES / 1048576.0, "MiB/s",
            "libcurl CURLOPT_WRITEFUNCTION", "≥ 0.9x (curl's throughput)", 0.9, quick);

    curl_slist_free_all(h_small);
    curl_slist_free_all(h_document);
    curl_easy_cleanup(curl_small);
    curl_easy_cleanup(curl_document);
    curl_global_cleanup();
    lwolf_request_free(small);
    lwolf_request_free(document);
    lwolf_client_free(client);
    return 0;
}
