// Test fixture: retypes the default game's player field "score" from int
// to string without declaring a migration. The engine must refuse it.
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "retype-no-migrate", version[] = "9.0", score[] = "score";
    int32_t status = d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
    if (status != GAME_OK) return status;
    status = d->field(d, GAME_KIND_PLAYER, GAME_TYPE_STRING, 0, (const uint8_t *)score, sizeof score - 1, 0, 0, 0);
    return status < 0 ? status : GAME_OK;
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+RETYPED";
    return t->reply(t, (const uint8_t *)line, sizeof line - 1);
}

/* ABI 1.3: a default game with rooms has timers pending, and a module
 * without this export is refused for that alone; with it, the refusal this
 * fixture exists for is the one the engine gives. It never serves, so it is
 * never called. */
int32_t hotswap_timer(const game_timer_event *e, const game_state_table *t) {
    (void)e;
    (void)t;
    return GAME_OK;
}
