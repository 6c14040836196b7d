// client.cpp: the C++ API (include/lwolf_auth.hpp) in a few lines. Settings come from the
// LWOLF_* environment variables (the sandbox prints them).
//
//     ./client                      # GET /v1/transactions, then the same body streamed
#include "lwolf_auth.hpp"

#include <iostream>
#include <sstream>

int main() {
    try {
        // Warnings and up on stderr: token fetches, retries, refresh failures (no secrets).
        lwolf::set_log_handler(
            [](std::uint32_t level, std::string_view message) {
                std::cerr << "lwolf-auth[" << level << "]: " << message << '\n';
            },
            LWOLF_LOG_WARN);

        lwolf::Client client(lwolf::Config::from_env());
        std::cout << "token " << client.token_info().fingerprint << '\n';

        lwolf::Response r = client.send(lwolf::Request("GET", "/v1/transactions")
                                            .query("$top", "2")
                                            .header("Accept", "application/json"));
        std::cout << "status: " << r.status() << '\n'
                  << "content-type: " << r.header("content-type").value_or("(none)") << '\n'
                  << "body bytes: " << r.body().size() << '\n';

        std::ostringstream streamed;
        lwolf::Response head = client.send_to(lwolf::Request("GET", "/v1/transactions"), streamed);
        std::cout << "streamed: " << head.status() << ", " << streamed.str().size() << " bytes\n";
        return r.ok() ? 0 : 1;
    } catch (const lwolf::Error &e) {
        std::cerr << e.status_name() << ": " << e.what() << '\n';
        return 1;
    }
}
