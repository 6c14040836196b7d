// The C side of streaming (Client.SendTo): lwolf_client_send_to with a write callback that
// calls back into Go. In a file of its own: cgo allows only declarations in the preamble of
// a file with //export.
#include <stdint.h>
#include "lwolf_auth.h"

extern int lwolfGoWrite(uintptr_t handle, uint8_t *data, size_t len);

static int lwolf_go_write(void *userdata, const uint8_t *data, size_t len) {
    return lwolfGoWrite((uintptr_t)userdata, (uint8_t *)data, len);
}

lwolf_status lwolf_go_send_to(const lwolf_client *client, const lwolf_request *req,
                              uintptr_t handle, lwolf_response **out) {
    return lwolf_client_send_to(client, req, lwolf_go_write, (void *)handle, out);
}
