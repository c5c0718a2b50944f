// Test fixture: a module that is valid in every way but its name, which
// carries a space-separated fake field and a CR LF with a fake reply after
// it. Loaded, it would plant `version=9.9.9 sha256=deadbeef` in STATUS and
// split an admin reply in two. The engine must refuse it by its name.
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "gems version=9.9.9 sha256=deadbeef\r\n+OK injected";
    static const char version[] = "1.0.0";
    return d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+INJECTING_NAME_MODULE_RAN";
    return t->reply(t, (const uint8_t *)line, sizeof line - 1);
}
