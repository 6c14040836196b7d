// header_cpp.cpp: the header compiles as C++ (extern "C", the enum's fixed underlying type)
// and links against the library. Built by `make` with -std=c++11 -Wall -Wextra -Werror.
#include "lwolf_auth.h"

#include <cstdio>
#include <cstring>
#include <type_traits>

static_assert(sizeof(lwolf_status) == 4, "lwolf_status is 32 bits");
static_assert(std::is_same<std::underlying_type<lwolf_status>::type, uint32_t>::value,
              "lwolf_status is a uint32_t enum");
static_assert(LWOLF_ERR_INTERNAL == 11, "fixed values");
static_assert(std::is_standard_layout<lwolf_token_info>::value, "plain C struct");

int main() {
    lwolf_config *cfg = nullptr;
    if (lwolf_config_new(&cfg) != LWOLF_OK) return 1;
    lwolf_status st = lwolf_config_set(cfg, "no_such_key", "x");
    std::printf("%s: %s\n", lwolf_status_name(st), lwolf_last_error_message());
    lwolf_config_free(cfg);
    return st == LWOLF_ERR_INVALID_ARGUMENT && std::strlen(lwolf_version()) > 0 ? 0 : 1;
}
