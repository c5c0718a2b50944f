// Test fixture: a module whose hotswap_load traps (__builtin_trap).
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "faulty-load", version[] = "1.0.0";
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_INT, 0, (const uint8_t *)"score", 5, 0, 0, 0) != 0) return -1;
    return GAME_OK;
}

int32_t hotswap_load(const game_state_table *t, const uint8_t *from_version, size_t length) {
    (void)t, (void)from_version, (void)length;
    __builtin_trap();
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+FAULTY_LOAD";
    return t->reply(t, (const uint8_t *)line, sizeof line - 1);
}
