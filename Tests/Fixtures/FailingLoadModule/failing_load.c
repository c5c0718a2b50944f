// Test fixture: a valid module whose load hook changes a field and then
// refuses to start. The engine must keep the old module and the old value.
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "failing-load", version[] = "9.2", logins[] = "logins";
    int32_t status = d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
    if (status != GAME_OK) return status;
    return d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)logins, sizeof logins - 1, 0, 0, 0) == 0
        ? GAME_OK : GAME_ERR_STATE;
}

int32_t hotswap_load(const game_state_table *t, const uint8_t *from, size_t length) {
    (void)from; (void)length;
    t->set_int(t, GAME_GLOBAL_ID, 0, 999999);
    return GAME_ERR_LIMIT;
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+FAILING_LOAD_RAN";
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
