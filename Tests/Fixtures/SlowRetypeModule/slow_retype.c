// Test fixture "slow v3": v3 (the player field "score" retyped from int to
// string, "<n> gems") with a migration that spends 250 µs on every player,
// so that migrating a few thousand stored players takes the engine many
// slices and the game can be seen served between them. Each migration of a
// player also tries to count itself in the global "remigrations": refused
// in a slice (a staged migration may write only the player it migrates),
// allowed in the swap itself, where the players the game changed meanwhile
// are migrated again. COUNT tells the count.
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "game_abi.h"

enum { F_NAME, F_SCORE, F_REMIGRATIONS };

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "gems", version[] = "3.1.0-slow", fname[] = "name", score[] = "score";
    int32_t status = d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
    if (status != GAME_OK) return status;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, 0, (const uint8_t *)fname, sizeof fname - 1, 0, 0, 0) != F_NAME)
        return GAME_ERR_STATE;
    if (d->field(d, GAME_KIND_PLAYER, GAME_TYPE_STRING, GAME_FIELD_MIGRATED, (const uint8_t *)score, sizeof score - 1,
                 0, (const uint8_t *)"0 gems", 6) != F_SCORE)
        return GAME_ERR_STATE;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"remigrations", 12, 0, 0, 0) != F_REMIGRATIONS)
        return GAME_ERR_STATE;
    return GAME_OK;
}

static void spin(long microseconds) {
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    do clock_gettime(CLOCK_MONOTONIC, &now);
    while ((now.tv_sec - start.tv_sec) * 1000000L + (now.tv_nsec - start.tv_nsec) / 1000 < microseconds);
}

int32_t hotswap_migrate(const game_migration *m, game_id entity, const game_state_table *t) {
    if ((entity >> 56) != GAME_KIND_PLAYER) return GAME_OK;
    spin(250);
    int64_t old = 0;
    int32_t status = m->old_get_int(m, entity, (const uint8_t *)"score", 5, &old);
    if (status == GAME_ERR_BAD_TYPE) return GAME_OK;
    if (status == GAME_ERR_BAD_FIELD) old = 0;
    else if (status != GAME_OK) return status;
    char text[32];
    int length = snprintf(text, sizeof text, "%lld gems", (long long)old);
    int64_t count = 0;
    if (t->get_int(t, GAME_GLOBAL_ID, F_REMIGRATIONS, &count) == GAME_OK)
        (void)t->set_int(t, GAME_GLOBAL_ID, F_REMIGRATIONS, count + 1);
    return t->set_string(t, entity, F_SCORE, (const uint8_t *)text, (size_t)length);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    if (m->length == 4 && memcmp(m->line, "PING", 4) == 0) return t->reply(t, (const uint8_t *)"+PONG slow", 10);
    if (m->length == 5 && memcmp(m->line, "SCORE", 5) == 0) {
        uint8_t score[64];
        size_t score_length = 0;
        game_id player = 0;
        int32_t status = t->player_of(t, m->session, &player);
        if (status == GAME_OK) status = t->get_string(t, player, F_SCORE, score, sizeof score, &score_length);
        if (status != GAME_OK) return status;
        if (score_length > sizeof score) score_length = sizeof score;
        char line[96];
        int length = snprintf(line, sizeof line, "+SCORE %.*s", (int)score_length, (const char *)score);
        return t->reply(t, (const uint8_t *)line, (size_t)length);
    }
    if (m->length == 5 && memcmp(m->line, "COUNT", 5) == 0) {
        int64_t count = -1;
        t->get_int(t, GAME_GLOBAL_ID, F_REMIGRATIONS, &count);
        char line[48];
        int length = snprintf(line, sizeof line, "+COUNT %lld", (long long)count);
        return t->reply(t, (const uint8_t *)line, (size_t)length);
    }
    return t->reply(t, (const uint8_t *)"-ERR UNKNOWN_COMMAND", 20);
}

/* ABI 1.3: the default game's timers are kept while this module serves. */
#include "../Shared/keep_game_timers.h"
