// Test fixture: a module whose hotswap_migrate writes through a NULL pointer.
// "score" is declared GAME_FIELD_MIGRATED so the engine calls migrate for
// every live session when this module is swapped in.
#include <string.h>
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "faulty-migrate", version[] = "1.0.0";
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return -1;
    if (d->field(d, GAME_KIND_PLAYER, GAME_TYPE_INT, GAME_FIELD_MIGRATED, (const uint8_t *)"score", 5, 0, 0, 0) != 0)
        return -1;
    return GAME_OK;
}

int32_t hotswap_migrate(const game_migration *m, game_id entity, const game_state_table *t) {
    (void)m, (void)entity, (void)t;
    int *volatile nowhere = NULL;
    *nowhere = 1;
    return GAME_OK;
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    static const char line[] = "+FAULTY_MIGRATE";
    return t->reply(t, (const uint8_t *)line, sizeof line - 1);
}
