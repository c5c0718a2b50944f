/*
 * keep_game_timers.h: for fixture modules the tests swap in while the
 * default game serves (included by path, not a target of its own).
 *
 * ABI 1.3: the default game's timers (round_end, gem_respawn, afk) come
 * due here while such a module serves. It cannot play them, but keeps
 * them: each is set again, same owner, event and payload, after the delay
 * the game would use (its --game-setting, else its default), so the game
 * finds them after a ROLLBACK. Any other event is dropped. Needs
 * <string.h> and game_abi.h.
 */
#ifndef HOTSWAP_KEEP_GAME_TIMERS_H
#define HOTSWAP_KEEP_GAME_TIMERS_H

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

#endif
