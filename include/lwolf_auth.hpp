// lwolf_auth.hpp: the C++ API of lwolf-auth, header-only, C++17, over the C ABI of
// lwolf_auth.h (link with -llwolf_auth, or the CMake target lwolf_auth::lwolf_auth).
//
//     lwolf::Client client(lwolf::Config::from_env());
//     lwolf::Response r = client.send(lwolf::Request("GET", "/v1/transactions")
//                                         .query("$top", "10")
//                                         .header("If-None-Match", etag));
//     if (r.status() == 200) use(r.body());
//
// Failures throw lwolf::Error (a std::runtime_error with the C status); every HTTP status is
// a Response, not an Error. No exception crosses into the C library, and no destructor
// throws. A Client is thread-safe and cheap to copy: copies share one handle, so one token.
// Config and Request are for one thread at a time; Response is read-only and thread-safe.
#ifndef LWOLF_AUTH_HPP
#define LWOLF_AUTH_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <atomic>
#include <mutex>
#include <optional>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lwolf_auth.h"

namespace lwolf {

// A failure of the library: status() is the C status (LWOLF_ERR_*), what() its message.
class Error : public std::runtime_error {
public:
    Error(lwolf_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}

    lwolf_status status() const noexcept { return status_; }
    // "LWOLF_ERR_INVALID_CREDENTIALS"...
    const char *status_name() const noexcept { return lwolf_status_name(status_); }

private:
    lwolf_status status_;
};

namespace detail {

// Throws the calling thread's last error when `status` is a failure.
inline void check(lwolf_status status) {
    if (status != LWOLF_OK) {
        throw Error(status, lwolf_last_error_message());
    }
}

// A NUL-terminated copy is what C takes: a string holding a NUL would be cut short there.
inline const char *c_str(const std::string &s, const char *what) {
    if (s.find('\0') != std::string::npos) {
        throw Error(LWOLF_ERR_INVALID_ARGUMENT, std::string(what) + " contains a NUL byte");
    }
    return s.c_str();
}

struct ConfigFree {
    void operator()(lwolf_config *p) const noexcept { lwolf_config_free(p); }
};
struct ClientFree {
    void operator()(lwolf_client *p) const noexcept { lwolf_client_free(p); }
};
struct RequestFree {
    void operator()(lwolf_request *p) const noexcept { lwolf_request_free(p); }
};
struct ResponseFree {
    void operator()(lwolf_response *p) const noexcept { lwolf_response_free(p); }
};

} // namespace detail

// Settings: keys and values as in the README's table (client_id, client_secret, audience,
// token_url, api_base_url, timeout_ms, ...). Move-only.
class Config {
public:
    // Every key at its default.
    Config() {
        lwolf_config *cfg = nullptr;
        detail::check(lwolf_config_new(&cfg));
        cfg_.reset(cfg);
    }

    // The LWOLF_* environment variables (LWOLF_CLIENT_ID, LWOLF_CLIENT_SECRET, ...).
    static Config from_env() {
        lwolf_config *cfg = nullptr;
        detail::check(lwolf_config_from_env(&cfg));
        return Config(cfg);
    }

    // Sets one key; an unknown key or a bad value throws, and changes nothing.
    Config &set(const std::string &key, const std::string &value) & {
        detail::check(lwolf_config_set(cfg_.get(), detail::c_str(key, "key"),
                                       detail::c_str(value, "value")));
        return *this;
    }
    Config &&set(const std::string &key, const std::string &value) && {
        return std::move(set(key, value));
    }

    const lwolf_config *get() const noexcept { return cfg_.get(); }

private:
    explicit Config(lwolf_config *cfg) : cfg_(cfg) {}
    std::unique_ptr<lwolf_config, detail::ConfigFree> cfg_;
};

// One API request: Request("PATCH", "/v1/transactions/42").header(...).body(...). Each
// setter checks what it is given at once (a header name that is not a token throws there).
// Move-only; send it as many times as you like.
class Request {
public:
    Request(const std::string &method, const std::string &path) {
        lwolf_request *req = nullptr;
        detail::check(lwolf_request_new(detail::c_str(method, "method"),
                                        detail::c_str(path, "path"), &req));
        req_.reset(req);
    }

    // Adds a header (Authorization and lw-subscription-key are the library's).
    Request &header(const std::string &name, const std::string &value) & {
        detail::check(lwolf_request_header(req_.get(), detail::c_str(name, "header name"),
                                           detail::c_str(value, "header value")));
        return *this;
    }
    Request &&header(const std::string &name, const std::string &value) && {
        return std::move(header(name, value));
    }

    // Appends name=value to the query, percent-encoded.
    Request &query(const std::string &name, const std::string &value) & {
        detail::check(lwolf_request_query(req_.get(), detail::c_str(name, "query name"),
                                          detail::c_str(value, "query value")));
        return *this;
    }
    Request &&query(const std::string &name, const std::string &value) && {
        return std::move(query(name, value));
    }

    // The body: any bytes, sent as `content_type` (empty: application/json).
    Request &body(std::string_view bytes, const std::string &content_type = std::string()) & {
        detail::check(lwolf_request_body(
            req_.get(), reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(),
            content_type.empty() ? nullptr : detail::c_str(content_type, "content type")));
        return *this;
    }
    Request &&body(std::string_view bytes, const std::string &content_type = std::string()) && {
        return std::move(body(bytes, content_type));
    }

    // Bounds each attempt of this request, instead of the client's timeout_ms (0: that one).
    Request &timeout_ms(std::uint64_t ms) & {
        detail::check(lwolf_request_timeout_ms(req_.get(), ms));
        return *this;
    }
    Request &&timeout_ms(std::uint64_t ms) && { return std::move(timeout_ms(ms)); }

    const lwolf_request *get() const noexcept { return req_.get(); }

private:
    std::unique_ptr<lwolf_request, detail::RequestFree> req_;
};

// An API response, whatever its status. Move-only.
class Response {
public:
    explicit Response(lwolf_response *response) : response_(response) {}

    std::uint16_t status() const noexcept { return lwolf_response_status(response_.get()); }
    bool ok() const noexcept { return status() < 400; }

    // The body, copied (empty for a streamed response: it went to the stream).
    std::string body() const { return std::string(body_view()); }
    // The body in place, valid while this Response lives.
    std::string_view body_view() const & noexcept {
        std::size_t len = 0;
        const std::uint8_t *data = lwolf_response_body(response_.get(), &len);
        return len == 0 ? std::string_view() : std::string_view(reinterpret_cast<const char *>(data), len);
    }
    std::string_view body_view() const && = delete; // it would outlive the response

    // The first value of header `name` (any case).
    std::optional<std::string> header(const std::string &name) const {
        const char *value = lwolf_response_header(response_.get(), detail::c_str(name, "header name"));
        if (value == nullptr) {
            return std::nullopt;
        }
        return std::string(value);
    }

    // Every header, names in lower case, in the order received.
    std::vector<std::pair<std::string, std::string>> headers() const {
        std::vector<std::pair<std::string, std::string>> all;
        std::size_t count = lwolf_response_header_count(response_.get());
        all.reserve(count);
        for (std::size_t i = 0; i < count; i++) {
            const char *name = nullptr;
            const char *value = nullptr;
            detail::check(lwolf_response_header_at(response_.get(), i, &name, &value));
            all.emplace_back(name, value);
        }
        return all;
    }

    // The request id the call carried (X-Request-ID by default); nullopt when ids are off.
    std::optional<std::string> request_id() const {
        const char *id = lwolf_response_request_id(response_.get());
        if (id == nullptr) {
            return std::nullopt;
        }
        return std::string(id);
    }

    const lwolf_response *get() const noexcept { return response_.get(); }

private:
    std::unique_ptr<lwolf_response, detail::ResponseFree> response_;
};

// What lwolf_client_token_info gives: times in UNIX seconds, and a loggable fingerprint.
struct TokenInfo {
    std::int64_t expires_at_unix;
    std::int64_t refresh_at_unix;
    std::int64_t usable_until_unix;
    std::uint64_t lifetime_secs;
    std::string fingerprint;
    // "Bearer", or "DPoP" for a token bound to the client's DPoP key.
    std::string token_type;
};

// What a request sent by other means must carry (secrets: send them, never log them).
struct AuthHeaders {
    std::string authorization; // "Bearer <token>" or "DPoP <token>"
    std::string dpop;          // the DPoP proof; empty for a bearer token
};

// A token client for one identity. Thread-safe; copies share the handle, so the token.
class Client {
public:
    // No network I/O here: the first token() or send() fetches.
    explicit Client(const Config &config) {
        lwolf_client *client = nullptr;
        detail::check(lwolf_client_new(config.get(), &client));
        client_.reset(client, detail::ClientFree());
    }

    static Client from_env() { return Client(Config::from_env()); }

    // A usable bearer token: the cached one, or a new one. It is a secret: never log it.
    std::string token() const {
        char buf[2048];
        std::size_t len = 0;
        lwolf_status st = lwolf_client_token(client_.get(), buf, sizeof buf, &len);
        // A longer token: ask with room for it (it may be renewed meanwhile, hence the loop).
        while (st == LWOLF_ERR_BUFFER_TOO_SMALL) {
            std::string token(len + 1, '\0');
            st = lwolf_client_token(client_.get(), token.data(), token.size(), &len);
            if (st == LWOLF_OK) {
                token.resize(len);
                return token;
            }
        }
        detail::check(st);
        return std::string(buf, len);
    }

    TokenInfo token_info() const {
        lwolf_token_info info{};
        detail::check(lwolf_client_token_info(client_.get(), &info));
        return TokenInfo{info.expires_at_unix, info.refresh_at_unix, info.usable_until_unix,
                         info.lifetime_secs, std::string(info.fingerprint),
                         std::string(info.token_type)};
    }

    // The Authorization (and, for a DPoP-bound token, DPoP) values for a request of
    // `method` to `url` that the caller sends itself, with libcurl say.
    AuthHeaders auth_headers(const std::string &method, const std::string &url) const {
        std::size_t size = 2048;
        for (;;) {
            std::string auth(size, '\0'), proof(size, '\0');
            std::size_t auth_len = 0, proof_len = 0;
            lwolf_status st = lwolf_client_auth_headers(
                client_.get(), detail::c_str(method, "method"), detail::c_str(url, "url"),
                auth.data(), auth.size(), &auth_len, proof.data(), proof.size(), &proof_len);
            if (st == LWOLF_ERR_BUFFER_TOO_SMALL) {
                size = (auth_len > proof_len ? auth_len : proof_len) + 1;
                continue;
            }
            detail::check(st);
            auth.resize(auth_len);
            proof.resize(proof_len);
            return AuthHeaders{std::move(auth), std::move(proof)};
        }
    }

    // Keeps the DPoP-Nonce a server at `url` answered with, for the next proof there.
    void dpop_nonce(const std::string &url, const std::string &nonce) const {
        detail::check(lwolf_client_dpop_nonce(client_.get(), detail::c_str(url, "url"),
                                              detail::c_str(nonce, "nonce")));
    }

    // Drops the cached token: the next token() fetches a new one.
    void invalidate() const { detail::check(lwolf_client_invalidate(client_.get())); }

    // Sends `request` with the bearer token and reads the response whole.
    Response send(const Request &request) const {
        lwolf_response *response = nullptr;
        detail::check(lwolf_client_send(client_.get(), request.get(), &response));
        return Response(response);
    }

    // Sends `request`, writing the body of the response to `out` as it arrives (never held
    // whole); the Response has the status and headers. A stream that fails or throws stops
    // the transfer: the stream's exception is rethrown, else Error LWOLF_ERR_ABORTED.
    Response send_to(const Request &request, std::ostream &out) const {
        Sink sink{out, nullptr};
        lwolf_response *response = nullptr;
        lwolf_status st = lwolf_client_send_to(client_.get(), request.get(), &Sink::write,
                                               &sink, &response);
        if (sink.error) {
            std::rethrow_exception(sink.error);
        }
        detail::check(st);
        return Response(response);
    }

    // A client for another customer instance: the same settings and pool, its own token.
    Client for_tenant(const std::string &lwt_client_id) const {
        lwolf_client *client = nullptr;
        detail::check(lwolf_client_for_tenant(
            client_.get(), detail::c_str(lwt_client_id, "lwt_client_id"), &client));
        return Client(client);
    }

    // A client for another API that takes the same tokens (the Transact API): the same
    // token and pool, requests sent to `api_base_url`.
    Client for_api(const std::string &api_base_url) const {
        lwolf_client *client = nullptr;
        detail::check(lwolf_client_for_api(
            client_.get(), detail::c_str(api_base_url, "api_base_url"), &client));
        return Client(client);
    }

    // The Transact API: the same token and pool, lw-subscription-key on every call; a 403
    // is about the subscription key and never renews the token.
    Client transact() const {
        lwolf_client *client = nullptr;
        detail::check(lwolf_client_transact(client_.get(), &client));
        return Client(client);
    }

    // What this client and its handles have done (counters), and its token's expiry.
    lwolf_stats stats() const {
        lwolf_stats stats{};
        stats.size = sizeof stats;
        detail::check(lwolf_client_stats(client_.get(), &stats));
        return stats;
    }

    const lwolf_client *get() const noexcept { return client_.get(); }

private:
    explicit Client(lwolf_client *client) : client_(client, detail::ClientFree()) {}

    struct Sink {
        std::ostream &out;
        std::exception_ptr error;

        static int write(void *userdata, const std::uint8_t *data, std::size_t len) noexcept {
            Sink *sink = static_cast<Sink *>(userdata);
            try {
                sink->out.write(reinterpret_cast<const char *>(data),
                                static_cast<std::streamsize>(len));
                return sink->out ? 0 : 1;
            } catch (...) {
                sink->error = std::current_exception();
                return 1;
            }
        }
    };

    std::shared_ptr<lwolf_client> client_;
};

// Log records of the library (never a secret or a token), LWOLF_LOG_ERROR = 1 ...
// LWOLF_LOG_TRACE = 5.
using LogHandler = std::function<void(std::uint32_t level, std::string_view message)>;

namespace detail {

#if defined(__MINGW32__) && !defined(_GLIBCXX_HAS_GTHREADS)
// mingw-w64's g++ with the win32 thread model (Debian's default) has no std::mutex: a spin
// lock serialises the (rare) handler changes there.
class LogLock {
  public:
    void lock() noexcept {
        while (flag_.test_and_set(std::memory_order_acquire)) {
        }
    }
    void unlock() noexcept { flag_.clear(std::memory_order_release); }

  private:
    std::atomic_flag flag_ = ATOMIC_FLAG_INIT;
};
#else
using LogLock = std::mutex;
#endif

struct LogState {
    LogLock lock;
    // Handlers replaced from inside a handler: freed only at exit, as one may still run.
    std::vector<std::unique_ptr<LogHandler>> retired;
};

inline LogState &log_state() {
    static LogState state;
    return state;
}

inline thread_local int in_log_handler = 0;

inline void on_log_record(void *userdata, std::uint32_t level, const char *message) noexcept {
    in_log_handler++;
    try {
        (*static_cast<LogHandler *>(userdata))(level, message);
    } catch (...) {
        // A log handler's exception must not unwind into C: dropped.
    }
    in_log_handler--;
}

inline std::unique_ptr<LogHandler> &current_log_handler() {
    static std::unique_ptr<LogHandler> handler;
    return handler;
}

} // namespace detail

// Sends the library's records up to `max_level` to `handler`, in place of any set before;
// an empty handler turns them off. Process-wide. The handler runs on the thread that logs,
// possibly several at once; an exception it throws is dropped. When this returns, the old
// handler is not running on another thread and is not called again.
inline void set_log_handler(LogHandler handler, std::uint32_t max_level = LWOLF_LOG_INFO) {
    detail::LogState &state = detail::log_state();
    std::lock_guard<detail::LogLock> guard(state.lock);
    std::unique_ptr<LogHandler> next;
    if (handler) {
        next = std::make_unique<LogHandler>(std::move(handler));
        detail::check(lwolf_set_log_callback(&detail::on_log_record, next.get(), max_level));
    } else {
        detail::check(lwolf_set_log_callback(nullptr, nullptr, 0));
    }
    std::unique_ptr<LogHandler> old = std::move(detail::current_log_handler());
    detail::current_log_handler() = std::move(next);
    if (old && detail::in_log_handler > 0) {
        state.retired.push_back(std::move(old)); // this thread may be running it
    }
}

// This library's version, "0.1.0".
inline const char *version() noexcept { return lwolf_version(); }

} // namespace lwolf

#endif // LWOLF_AUTH_HPP
