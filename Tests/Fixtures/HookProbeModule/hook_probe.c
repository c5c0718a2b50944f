// Test fixture: a module whose reload hooks report what the engine let
// them do. hotswap_migrate tries output and room changes on every session
// and stores the status codes it got in that session; hotswap_load does the
// same, stores its codes and the version it was told it replaces, and adds
// 100 to the default game's login counter: all of it must be committed with
// the swap. PROBE reads it back. Output or room changes must all be refused
// with GAME_ERR_STATE while a hook runs (game_abi.h), or a failed reload
// could leave a trace.
#include <stdio.h>
#include <string.h>
#include "game_abi.h"

enum { F_NAME, F_SCORE, F_MIGRATE_CODES, F_LOGINS, F_LOAD_CODES, F_LOADED_FROM, F_SOME_SESSION };

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

static int32_t field(const game_describer *d, uint32_t kind, uint32_t type, const char *name, int32_t expected) {
    int32_t index = d->field(d, kind, type, 0, (const uint8_t *)name, strlen(name), 0, 0, 0);
    return index == expected ? GAME_OK : GAME_ERR_STATE;
}

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "probe", version[] = "1.0";
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, "name", F_NAME)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_PLAYER, GAME_TYPE_INT, "score", F_SCORE)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, "migrate_codes", F_MIGRATE_CODES)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, "logins", F_LOGINS)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_GLOBAL, GAME_TYPE_STRING, "load_codes", F_LOAD_CODES)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_GLOBAL, GAME_TYPE_STRING, "loaded_from", F_LOADED_FROM)) return GAME_ERR_STATE;
    if (field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, "some_session", F_SOME_SESSION)) return GAME_ERR_STATE;
    return GAME_OK;
}

/* Every call that would reach a player or move one, on a live session;
 * writes "reply send broadcast leave close create" codes into `out`. */
static int probe(const game_state_table *t, game_id session, char *out, size_t capacity) {
    game_id room = 0, created = 0;
    t->room_of(t, session, &room);
    return snprintf(out, capacity, "%d,%d,%d,%d,%d,%d",
                    t->reply(t, (const uint8_t *)"+hook", 5),
                    t->send(t, session, (const uint8_t *)">hook", 5),
                    room ? t->room_broadcast(t, room, 0, (const uint8_t *)">hook", 5) : 1,
                    t->room_leave(t, session),
                    t->close_session(t, session),
                    t->room_create(t, (const uint8_t *)"hook", 4, &created));
}

int32_t hotswap_migrate(const game_migration *m, game_id entity, const game_state_table *t) {
    (void)m;
    if ((entity >> 56) != GAME_KIND_SESSION) return GAME_OK;
    char codes[96];
    int length = probe(t, entity, codes, sizeof codes);
    int32_t status = t->set_string(t, entity, F_MIGRATE_CODES, (const uint8_t *)codes, (size_t)length);
    if (status != GAME_OK) return status;
    return t->set_int(t, GAME_GLOBAL_ID, F_SOME_SESSION, (int64_t)entity);
}

int32_t hotswap_load(const game_state_table *t, const uint8_t *from, size_t length) {
    int64_t session = 0, logins = 0;
    t->get_int(t, GAME_GLOBAL_ID, F_SOME_SESSION, &session);
    char codes[96];
    int used = probe(t, (game_id)session, codes, sizeof codes);
    int32_t status = t->set_string(t, GAME_GLOBAL_ID, F_LOAD_CODES, (const uint8_t *)codes, (size_t)used);
    if (status == GAME_OK) status = t->set_string(t, GAME_GLOBAL_ID, F_LOADED_FROM, from, length);
    if (status == GAME_OK) status = t->get_int(t, GAME_GLOBAL_ID, F_LOGINS, &logins);
    if (status == GAME_OK) status = t->set_int(t, GAME_GLOBAL_ID, F_LOGINS, logins + 100);
    return status;
}

static size_t text(const game_state_table *t, game_id entity, int32_t field, char *buffer, size_t capacity) {
    size_t length = 0;
    if (t->get_string(t, entity, field, (uint8_t *)buffer, capacity, &length) != GAME_OK) return 0;
    return length < capacity ? length : capacity;
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    if (m->length == 4 && memcmp(m->line, "PING", 4) == 0) return t->reply(t, (const uint8_t *)"+PONG probe", 11);
    if (m->length == 5 && memcmp(m->line, "PROBE", 5) == 0) {
        char from[64], load[96], migrate[96], line[512];
        size_t from_length = text(t, GAME_GLOBAL_ID, F_LOADED_FROM, from, sizeof from);
        size_t load_length = text(t, GAME_GLOBAL_ID, F_LOAD_CODES, load, sizeof load);
        size_t migrate_length = text(t, m->session, F_MIGRATE_CODES, migrate, sizeof migrate);
        int64_t logins = -1, score = -1;
        t->get_int(t, GAME_GLOBAL_ID, F_LOGINS, &logins);
        game_id player = 0;
        t->player_of(t, m->session, &player);
        t->get_int(t, player, F_SCORE, &score);
        int length = snprintf(line, sizeof line, "+PROBE from=%.*s logins=%lld load=%.*s migrate=%.*s score=%lld",
                              (int)from_length, from, (long long)logins, (int)load_length, load,
                              (int)migrate_length, migrate, (long long)score);
        return t->reply(t, (const uint8_t *)line, (size_t)length);
    }
    static const char unknown[] = "-ERR UNKNOWN_COMMAND probe knows PING and PROBE";
    return t->reply(t, (const uint8_t *)unknown, sizeof unknown - 1);
}

/* ABI 1.3: the default game's timers are kept while this module serves. */
#include "../Shared/keep_game_timers.h"
