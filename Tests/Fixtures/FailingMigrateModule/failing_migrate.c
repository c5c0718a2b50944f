// Test fixture: retypes "score" with a migration that writes a value and
// then reports failure on the first session. Nothing it wrote may survive.
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "failing-migrate", version[] = "9.1", score[] = "score", x[] = "x";
    int32_t status = d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
    if (status != GAME_OK) return status;
    if (d->field(d, GAME_KIND_PLAYER, GAME_TYPE_STRING, GAME_FIELD_MIGRATED, (const uint8_t *)score, sizeof score - 1, 0, 0, 0) != 0) return GAME_ERR_STATE;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_INT, 0, (const uint8_t *)x, sizeof x - 1, 0, 0, 0) != 1) return GAME_ERR_STATE;
    return GAME_OK;
}

int32_t hotswap_migrate(const game_migration *m, game_id entity, const game_state_table *t) {
    (void)m;
    if ((entity >> 56) != GAME_KIND_PLAYER) return GAME_OK;
    static const char junk[] = "corrupted";
    t->set_string(t, entity, 0, (const uint8_t *)junk, sizeof junk - 1);
    t->set_int(t, entity, 1, -12345);  /* an existing field, written in the staged store */
    return GAME_ERR_STATE;
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+FAILING_MIGRATE_RAN";
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
