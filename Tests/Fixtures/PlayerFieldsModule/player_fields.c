// Test fixture "titles": a later game that adds the player field "title"
// (default "rookie") and no longer declares the player field "score", which
// the engine must keep, hidden, in memory and in the database, so that a
// rollback or a later module finds every player's score again.
//   ME          -> +ME <player key> <title>
//   TITLE text  -> +OK (the player's title is now text)
//   DOUBLEFREE  frees one block twice: glibc aborts inside free(), a fault
//               no guard may contain (the crash-and-restart test)
//   SPIN        loops forever (with --call-timeout 0: a loop stall)
#include <stdio.h>
#include <stdlib.h>
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
    if (m->length == 10 && memcmp(m->line, "DOUBLEFREE", 10) == 0) {
        void *volatile block = malloc(24);
        free(block);
        free(block);
    }
    if (m->length == 4 && memcmp(m->line, "SPIN", 4) == 0) {
        for (volatile int spin = 1; spin;) {}
    }
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

/* ABI 1.3: the default game's timers are kept while this module serves. */
#include "../Shared/keep_game_timers.h"
