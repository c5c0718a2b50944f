// Test fixture: a module whose hotswap_abi_version traps. It is the first
// export the engine calls (on the reload's worker thread); the crash must
// refuse the reload, not take the server down.
#include "game_abi.h"

uint32_t hotswap_abi_version(void) {
    __builtin_trap();
}

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "faulty-abi-version", version[] = "1.0.0";
    return d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+FAULTY_ABI_VERSION";
    return t->reply(t, (const uint8_t *)line, sizeof line - 1);
}
