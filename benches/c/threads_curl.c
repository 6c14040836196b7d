/*
 * threads_curl.c: what examples-c/threads.c does, written the way a C user would without
 * this library: libcurl (one easy handle per thread, as libcurl requires) and a hand-written
 * token cache (a mutex held across the fetch). 16 threads each read the token 200 times and
 * send 3 API requests. Only here to be measured beside threads.c (peak RSS, thread count);
 * it prints "token requests: 1" like threads.c when all went well.
 *
 *     eval "$(compare serve --sandbox)" ./threads_curl
 */
#include "bench.h" /* first: feature macros */

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define THREADS 16
#define TOKENS_PER_THREAD 200
#define REQUESTS_PER_THREAD 3

struct buffer {
    char data[16384];
    size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata) {
    struct buffer *b = (struct buffer *)userdata;
    size_t len = size * n;
    if (b->len + len >= sizeof b->data) return 0;
    memcpy(b->data + b->len, ptr, len);
    b->len += len;
    b->data[b->len] = 0;
    return len;
}

static struct {
    pthread_mutex_t mu;
    char token[4096];
    size_t len;
    time_t expires;
    int requests;
} cache = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0, 0};

/* POSTs the client credentials and stores the access_token. Called with the lock held. */
static int fetch_token(CURL *curl) {
    struct buffer body = {{0}, 0};
    char json[1024], url[1024];
    const char *start, *end;
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    long code = 0;
    CURLcode rc;
    snprintf(url, sizeof url, "%s", getenv("LWOLF_TOKEN_URL"));
    snprintf(json, sizeof json,
             "{\"grant_type\":\"client_credentials\",\"client_id\":\"%s\",\"client_secret\":"
             "\"%s\",\"audience\":\"https://api.lwolf.com\"}",
             getenv("LWOLF_CLIENT_ID"), getenv("LWOLF_CLIENT_SECRET"));
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
    rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(headers);
    cache.requests++;
    if (rc != CURLE_OK || code != 200) return -1;
    start = strstr(body.data, "\"access_token\":\"");
    if (!start) return -1;
    start += strlen("\"access_token\":\"");
    end = strchr(start, '"');
    if (!end || (size_t)(end - start) >= sizeof cache.token) return -1;
    cache.len = (size_t)(end - start);
    memcpy(cache.token, start, cache.len);
    cache.token[cache.len] = 0;
    cache.expires = time(NULL) + 3000;
    return 0;
}

static int get_token(CURL *curl, char *buf, size_t buf_len) {
    int rc = 0;
    pthread_mutex_lock(&cache.mu);
    if (cache.len == 0 || time(NULL) >= cache.expires) rc = fetch_token(curl);
    if (rc == 0 && cache.len < buf_len) memcpy(buf, cache.token, cache.len + 1);
    pthread_mutex_unlock(&cache.mu);
    return rc;
}

static void *work(void *arg) {
    int *failures = (int *)arg, i;
    char token[4096], header[4200], url[1024];
    CURL *curl = curl_easy_init();
    for (i = 0; i < TOKENS_PER_THREAD; i++)
        if (get_token(curl, token, sizeof token) != 0) (*failures)++;
    for (i = 0; i < REQUESTS_PER_THREAD; i++) {
        struct buffer body = {{0}, 0};
        struct curl_slist *headers = NULL;
        long code = 0;
        if (get_token(curl, token, sizeof token) != 0) {
            (*failures)++;
            continue;
        }
        snprintf(header, sizeof header, "Authorization: Bearer %s", token);
        headers = curl_slist_append(headers, header);
        headers = curl_slist_append(headers, "Accept: application/json");
        snprintf(url, sizeof url, "%s/v1/transactions", getenv("LWOLF_API_BASE_URL"));
        curl_easy_reset(curl);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
        curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
        if (curl_easy_perform(curl) != CURLE_OK) (*failures)++;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
        if (code != 200) (*failures)++;
        curl_slist_free_all(headers);
    }
    curl_easy_cleanup(curl);
    return NULL;
}

int main(void) {
    pthread_t threads[THREADS];
    int failures[THREADS] = {0}, total = 0, i;
    if (!getenv("LWOLF_TOKEN_URL") || !getenv("LWOLF_API_BASE_URL") ||
        !getenv("LWOLF_CLIENT_ID") || !getenv("LWOLF_CLIENT_SECRET")) {
        fprintf(stderr, "set LWOLF_TOKEN_URL, LWOLF_API_BASE_URL, LWOLF_CLIENT_ID, "
                        "LWOLF_CLIENT_SECRET\n");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, work, &failures[i]);
    for (i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        total += failures[i];
    }
    curl_global_cleanup();
    printf("threads: %d\nfailures: %d\ntoken requests: %d\n", THREADS, total, cache.requests);
    return total == 0 ? 0 : 1;
}
