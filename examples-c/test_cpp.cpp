// test_cpp.cpp: the C++ API's promises, against the sandbox (LWOLF_* variables set).
// Prints "cpp checks: N passed, M failed"; exits 0 only when none failed.
#include "lwolf_auth.hpp"

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <streambuf>
#include <string>

static int passed = 0, failed = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            passed++;                                                                \
        } else {                                                                     \
            failed++;                                                                \
            std::cout << "FAILED line " << __LINE__ << ": " #cond << std::endl;      \
        }                                                                            \
    } while (0)

// Runs `f`; true when it threw lwolf::Error with `status`.
template <typename F> static bool throws(lwolf_status status, F f) {
    try {
        f();
    } catch (const lwolf::Error &e) {
        return e.status() == status && std::string(e.what()).size() > 0;
    } catch (...) {
        return false;
    }
    return false;
}

// A stream buffer that refuses every write.
struct Refusing : std::streambuf {
    int_type overflow(int_type) override { return traits_type::eof(); }
    std::streamsize xsputn(const char *, std::streamsize) override { return 0; }
};

int main() {
    const char *base = std::getenv("LWOLF_API_BASE_URL");
    const char *secret = std::getenv("LWOLF_CLIENT_SECRET");
    if (base == nullptr || secret == nullptr) {
        std::cerr << "set the LWOLF_* variables (the sandbox prints them)\n";
        return 2;
    }
    std::string origin(base);
    origin = origin.substr(0, origin.rfind('/')); // .../backoffice -> the origin

    // Config: bad keys and values throw, and change nothing.
    lwolf::Config config = lwolf::Config::from_env();
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT, [&] { config.set("no_such_key", "x"); }));
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT,
                 [&] { config.set("audience", std::string("a\0b", 3)); }));
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT, [&] { config.set("timeout_ms", "soon"); }));
    CHECK(throws(LWOLF_ERR_CONFIG, [] { lwolf::Client client{lwolf::Config()}; }));

    // Client: copies share the token.
    lwolf::Client client(config);
    std::string token = client.token();
    CHECK(token.size() > 20);
    lwolf::Client copy = client;
    CHECK(copy.token() == token);
    CHECK(client.token_info().fingerprint.size() == 12);
    CHECK(client.token_info().token_type == "Bearer");
    lwolf::AuthHeaders auth = client.auth_headers("GET", origin + "/backoffice/v1/offices");
    CHECK(auth.authorization == "Bearer " + token && auth.dpop.empty());

    // Requests and responses.
    lwolf::Response list = client.send(lwolf::Request("GET", "/v1/transactions"));
    CHECK(list.status() == 200 && list.ok());
    CHECK(list.body().find("\"data\"") != std::string::npos);
    CHECK(list.body_view() == list.body());
    CHECK(list.header("Content-Type").value_or("").rfind("application/json", 0) == 0);
    CHECK(!list.header("X-No-Such-Header").has_value());
    CHECK(!list.headers().empty());
    lwolf::Response missing = client.send(lwolf::Request("GET", "/v1/transactions/nope"));
    CHECK(missing.status() == 404 && !missing.ok()); // a status, not an Error

    // A chain on a temporary, moved into a variable, sent twice.
    lwolf::Request echo = lwolf::Request("PATCH", origin + "/_sandbox/echo")
                              .header("X-One", "1")
                              .query("q", "a b&c")
                              .body("\x01\x02", "application/octet-stream")
                              .timeout_ms(5000);
    for (int i = 0; i < 2; i++) {
        std::string got = client.send(echo).body();
        CHECK(got.find("\"PATCH\"") != std::string::npos);
        CHECK(got.find("[\"x-one\",\"1\"]") != std::string::npos);
        CHECK(got.find("[\"q\",\"a b&c\"]") != std::string::npos);
        CHECK(got.find("\"body_len\":2") != std::string::npos);
    }
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT, [] { lwolf::Request("NOT A METHOD", "/x"); }));
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT,
                 [] { lwolf::Request("GET", "/x").header("bad name", "v"); }));
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT,
                 [&] { client.send(lwolf::Request("GET", "https://elsewhere.example/x")); }));

    // Streaming: the same body, none of it kept; a failing stream stops the transfer, and a
    // throwing one has its exception come back.
    std::ostringstream out;
    lwolf::Response head = client.send_to(lwolf::Request("GET", "/v1/transactions"), out);
    CHECK(head.status() == 200 && head.body().empty() && out.str() == list.body());
    Refusing refusing;
    std::ostream failing(&refusing);
    CHECK(throws(LWOLF_ERR_ABORTED,
                 [&] { client.send_to(lwolf::Request("GET", "/v1/transactions"), failing); }));
    std::ostream throwing(&refusing);
    throwing.exceptions(std::ios::badbit | std::ios::failbit);
    bool rethrown = false;
    try {
        client.send_to(lwolf::Request("GET", "/v1/transactions"), throwing);
    } catch (const std::ios_base::failure &) {
        rethrown = true;
    }
    CHECK(rethrown);

    // The Transact API's handle: the subscription key on every call, a request id on each.
    lwolf::Client transact = client.transact();
    lwolf::Response closed = transact.send(lwolf::Request("GET", "/v1/transactions"));
    CHECK(closed.status() == 200);
    CHECK(closed.request_id().value_or("").size() == 36);
    CHECK(closed.request_id() != list.request_id());
    lwolf_stats stats = client.stats();
    CHECK(stats.api_requests >= 2 && stats.renewals_declined == 0);
    CHECK(stats.token_requests == 1 && stats.token_expires_at_ms > 0);

    // Tenants get their own token; for_api shares this one.
    CHECK(client.for_tenant("customer-42").token() != token);
    CHECK(client.for_api(origin + "/transact-workflow").token() == token);
    CHECK(throws(LWOLF_ERR_INVALID_ARGUMENT, [&] { client.for_tenant(""); }));

    // A wrong secret: Error with the status, and the secret in no message.
    lwolf::Config wrong = lwolf::Config::from_env();
    wrong.set("client_secret", "wrong-secret-c0ffee");
    std::string message;
    try {
        lwolf::Client(wrong).token();
    } catch (const lwolf::Error &e) {
        message = e.what();
        CHECK(e.status() == LWOLF_ERR_INVALID_CREDENTIALS);
        CHECK(std::string(e.status_name()) == "LWOLF_ERR_INVALID_CREDENTIALS");
    }
    CHECK(!message.empty() && message.find("wrong-secret-c0ffee") == std::string::npos);

    // Log records: through the handler, never a token; a throwing handler is harmless; off.
    std::atomic<int> fetched{0}, leaked{0}, all{0};
    lwolf::set_log_handler(
        [&](std::uint32_t level, std::string_view m) {
            all++;
            fetched += level == LWOLF_LOG_INFO && m.find("fetched") != std::string_view::npos;
            leaked += m.find(token) != std::string_view::npos || m.find(secret) != std::string_view::npos;
        },
        LWOLF_LOG_TRACE);
    client.invalidate();
    std::string renewed = client.token();
    CHECK(fetched == 1 && leaked == 0 && all >= 2);
    lwolf::set_log_handler([](std::uint32_t, std::string_view) { throw std::runtime_error("no"); },
                           LWOLF_LOG_TRACE);
    client.invalidate();
    CHECK(client.token().size() > 20);
    lwolf::set_log_handler({});
    int before = all;
    client.invalidate();
    client.token();
    CHECK(all == before);
    CHECK(std::string(lwolf::version()).size() > 0);

    std::cout << "cpp checks: " << passed << " passed, " << failed << " failed" << std::endl;
    return failed == 0 ? 0 : 1;
}
