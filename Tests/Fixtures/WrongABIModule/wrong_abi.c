// Test fixture: a logic module built against a future major version of the
// ABI. The engine must refuse it at load time with a clear reason.
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return (uint32_t)(GAME_ABI_MAJOR + 1) << 16; }

int32_t hotswap_describe(const game_describer *d) { (void)d; return GAME_OK; }

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+WRONG_ABI_MODULE_RAN";
    return t->reply(t, (const uint8_t *)line, sizeof line - 1);
}
