/*
 * curl_throughput.c: authenticated GETs over keep-alive on loopback through the C ABI
 * (lwolf_client_request, then the body, then lwolf_response_free) against a libcurl easy
 * handle reused across requests with a fixed "Authorization: Bearer ..." header, the body
 * collected into a buffer. One thread, one connection each, interleaved windows; prints one
 * JSON line (see benches/report.py).
 *
 *     env $(compare serve) ./curl_throughput [--quick]
 *     env $(compare serve) ./curl_throughput --only ours|curl N   (N requests of one side
 *                                                                  alone, for profilers)
 */
#include "bench.h" /* first: feature macros */

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwolf_auth.h"

static lwolf_client *client;
static CURL *curl;

struct buffer {
    char data[65536];
    size_t len;
};
static struct buffer body;

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata) {
    struct buffer *b = (struct buffer *)userdata;
    size_t len = size * n;
    if (b->len + len > sizeof b->data) return 0;
    memcpy(b->data + b->len, ptr, len);
    b->len += len;
    return len;
}

static void op_ours(void) {
    lwolf_response *resp = NULL;
    size_t len;
    const uint8_t *data;
    lwolf_status st = lwolf_client_request(client, "GET", "/v1/transactions", NULL, 0, &resp);
    if (st != LWOLF_OK || lwolf_response_status(resp) != 200) {
        fprintf(stderr, "lwolf_client_request: %s: %s\n", lwolf_status_name(st),
                lwolf_last_error_message());
        exit(1);
    }
    data = lwolf_response_body(resp, &len);
    SINK(data);
    lwolf_response_free(resp);
}

static void op_curl(void) {
    long code = 0;
    CURLcode rc;
    body.len = 0;
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
        fprintf(stderr, "curl: %s, HTTP %ld\n", curl_easy_strerror(rc), code);
        exit(1);
    }
    SINK(body.data);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int rounds = quick ? 4 : 16, i;
    double window = quick ? 0.1 : 0.3;
    double a[64], b[64], r[64];
    char token[4096], header[4200], url[1024], ours[64], base[160], note[256];
    const char *api = getenv("LWOLF_API_BASE_URL");
    struct curl_slist *headers = NULL;

    client = bench_client(token, sizeof token);

    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    snprintf(url, sizeof url, "%s/v1/transactions", api);
    snprintf(header, sizeof header, "Authorization: Bearer %s", token);
    headers = curl_slist_append(headers, header);
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "lwolf-bench-curl");

    if (argc == 4 && strcmp(argv[1], "--only") == 0) {
        void (*op)(void) = strcmp(argv[2], "curl") == 0 ? op_curl : op_ours;
        long n = atol(argv[3]), k;
        double start = now_s();
        for (k = 0; k < n; k++) op();
        fprintf(stderr, "%s: %.0f req/s\n", argv[2], (double)n / (now_s() - start));
        return 0;
    }
    for (i = 0; i < 200; i++) { /* warm both connections up */
        op_ours();
        op_curl();
    }
    for (i = 0; i < rounds; i++) {
        if (i % 2 == 0) {
            a[i] = rate(window, op_ours);
            b[i] = rate(window, op_curl);
        } else {
            b[i] = rate(window, op_curl);
            a[i] = rate(window, op_ours);
        }
        r[i] = a[i] / b[i];
    }
    snprintf(ours, sizeof ours, "%.0f req/s", median(a, rounds));
    snprintf(base, sizeof base, "%.0f req/s (libcurl %s easy handle reused, fixed header)",
             median(b, rounds), curl_version_info(CURLVERSION_NOW)->version);
    snprintf(note, sizeof note, "median of %d interleaved pairs; per-pair ratio p25-p75 %.2f-%.2f",
             rounds, quantile(r, rounds, 0.25), quantile(r, rounds, 0.75));
    emit_row("4.2-throughput-c",
             "Authenticated GETs, keep-alive, loopback (minimal server), C `lwolf_client_request()`",
             ours, base, median(r, rounds), "≥ 1.0x (curl's rate)", median(r, rounds) >= 1.0,
             note);

    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    lwolf_client_free(client);
    return 0;
}
