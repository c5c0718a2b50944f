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

/* ABI 1.3: the default game's timers (round_end, gem_respawn, afk) come due
 * here while this module serves. It cannot play them, but keeps them: each
 * is set again, same owner, event and payload, after the delay the game
 * would use (its --game-setting, else its default), so the game finds them
 * after a ROLLBACK. Any other event is dropped. */
static uint64_t game_delay_ms(const game_state_table *t, const char *key, uint64_t scale, uint64_t fallback) {
    uint8_t value[24];
    size_t length = 0;
    if (t->setting(t, (const uint8_t *)key, strlen(key), value, sizeof value, &length) != GAME_OK || length == 0
        || length > sizeof value)
        return fallback;
    uint64_t n = 0;
    for (size_t i = 0; i < length; i++) {
        if (value[i] < '0' || value[i] > '9' || n > 100000000000ULL) return fallback;
        n = n * 10 + (uint64_t)(value[i] - '0');
    }
    n *= scale;
    return n == 0 || n > GAME_MAX_TIMER_DELAY_MS ? fallback : n;
}

int32_t hotswap_timer(const game_timer_event *e, const game_state_table *t) {
    uint64_t delay;
    if (e->event_length == 9 && memcmp(e->event, "round_end", 9) == 0)
        delay = game_delay_ms(t, "round_seconds", 1000, 120000);
    else if (e->event_length == 11 && memcmp(e->event, "gem_respawn", 11) == 0)
        delay = game_delay_ms(t, "gem_respawn_ms", 1, 5000);
    else if (e->event_length == 3 && memcmp(e->event, "afk", 3) == 0)
        delay = game_delay_ms(t, "afk_seconds", 1000, 300000);
    else
        return GAME_OK;
    game_id timer = 0;
    return t->timer_set(t, e->owner, e->event, e->event_length, e->payload, e->payload_length, delay, 0, &timer);
}
