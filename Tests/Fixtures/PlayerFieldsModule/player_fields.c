// Test fixture "titles": a later game that adds the player field "title"
// (default "rookie") and no longer declares the player field "score", which
// the engine must keep, hidden, in memory and in the database, so that a
// rollback or a later module finds every player's score again.
//   ME          -> +ME <player key> <title>
//   TITLE text  -> +OK (the player's title is now text)
#include <stdio.h>
#include <string.h>
#include "game_abi.h"

enum { F_TITLE };

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "titles", version[] = "1.0", title[] = "title", rookie[] = "rookie";
    int32_t status = d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
    if (status != GAME_OK) return status;
    if (d->field(d, GAME_KIND_PLAYER, GAME_TYPE_STRING, 0, (const uint8_t *)title, sizeof title - 1, 0,
                 (const uint8_t *)rookie, sizeof rookie - 1) != F_TITLE)
        return GAME_ERR_STATE;
    return GAME_OK;
}

static int32_t reply(const game_state_table *t, const char *text, size_t length) {
    return t->reply(t, (const uint8_t *)text, length);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    game_id player = 0;
    if (t->player_of(t, m->session, &player) != GAME_OK || player == 0) return reply(t, "-ERR NO_PLAYER", 14);
    if (m->length == 2 && memcmp(m->line, "ME", 2) == 0) {
        uint8_t key[GAME_MAX_PLAYER_KEY], title[128];
        size_t key_length = 0, title_length = 0;
        int32_t status = t->player_key(t, player, key, sizeof key, &key_length);
        if (status == GAME_OK) status = t->get_string(t, player, F_TITLE, title, sizeof title, &title_length);
        if (status != GAME_OK) return status;
        if (title_length > sizeof title) title_length = sizeof title;
        char line[256];
        int length = snprintf(line, sizeof line, "+ME %.*s %.*s", (int)key_length, (const char *)key,
                              (int)title_length, (const char *)title);
        return reply(t, line, (size_t)length);
    }
    if (m->length > 6 && memcmp(m->line, "TITLE ", 6) == 0) {
        int32_t status = t->set_string(t, player, F_TITLE, m->line + 6, m->length - 6);
        return status == GAME_OK ? reply(t, "+OK", 3) : reply(t, "-ERR BAD_TITLE", 14);
    }
    return reply(t, "-ERR UNKNOWN_COMMAND titles knows ME and TITLE", 46);
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
