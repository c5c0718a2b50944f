// Test fixture "v3": retypes the player field "score" from int to string
// ("<n> gems"), with a migration that converts every stored player's value,
// online or not.
// Written in C to show the ABI is language-neutral.
#include <stdio.h>
#include <string.h>
#include "game_abi.h"

enum { F_NAME, F_SCORE };

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "gems", version[] = "3.0.0", fname[] = "name", score[] = "score";
    int32_t status = d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
    if (status != GAME_OK) return status;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, 0, (const uint8_t *)fname, sizeof fname - 1, 0, 0, 0) != F_NAME)
        return GAME_ERR_STATE;
    if (d->field(d, GAME_KIND_PLAYER, GAME_TYPE_STRING, GAME_FIELD_MIGRATED, (const uint8_t *)score, sizeof score - 1,
                 0, (const uint8_t *)"0 gems", 6) != F_SCORE)
        return GAME_ERR_STATE;
    return GAME_OK;
}

int32_t hotswap_migrate(const game_migration *m, game_id entity, const game_state_table *t) {
    if ((entity >> 56) != GAME_KIND_PLAYER) return GAME_OK;
    int64_t old = 0;
    int32_t status = m->old_get_int(m, entity, (const uint8_t *)"score", 5, &old);
    if (status == GAME_ERR_BAD_TYPE) return GAME_OK;  /* already a string: from v3 itself */
    if (status == GAME_ERR_BAD_FIELD) old = 0;        /* coming from a version without it */
    else if (status != GAME_OK) return status;
    char text[32];
    int length = snprintf(text, sizeof text, "%lld gems", (long long)old);
    return t->set_string(t, entity, F_SCORE, (const uint8_t *)text, (size_t)length);
}

static int32_t reply(const game_state_table *t, const char *text, size_t length) {
    return t->reply(t, (const uint8_t *)text, length);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    if (m->length == 4 && memcmp(m->line, "PING", 4) == 0) return reply(t, "+PONG v3", 8);
    if (m->length == 5 && memcmp(m->line, "SCORE", 5) == 0) {
        uint8_t name[64], score[64];
        size_t name_length = 0, score_length = 0;
        game_id player = 0;
        int32_t status = t->get_string(t, m->session, F_NAME, name, sizeof name, &name_length);
        if (status == GAME_OK) status = t->player_of(t, m->session, &player);
        if (status == GAME_OK) status = t->get_string(t, player, F_SCORE, score, sizeof score, &score_length);
        if (status != GAME_OK) return status;
        if (name_length > sizeof name) name_length = sizeof name;
        if (score_length > sizeof score) score_length = sizeof score;
        char line[160];
        int length = snprintf(line, sizeof line, "+SCORE %.*s %.*s", (int)name_length, (const char *)name,
                              (int)score_length, (const char *)score);
        return reply(t, line, (size_t)length);
    }
    return reply(t, "-ERR UNKNOWN_COMMAND v3 knows PING and SCORE", 44);
}

/* ABI 1.3: the default game's timers are kept while this module serves. */
#include "../Shared/keep_game_timers.h"
