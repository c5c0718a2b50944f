/*
 * faulty_retyped.h: the body of "faulty 2.x", a newer FaultyModule
 * (faulty 1.0.0) that RETYPES the session field "score" from int to
 * string ("<n> points"), for the ABI 1.5 tests of ROLLBACK and undo
 * (included by path by MigrateDownModule and RetypeNoDownModule, which
 * define FAULTY_RETYPED_VERSION and, for the first, WITH_MIGRATE_DOWN).
 *
 * Protocol (one line per request):
 *   GET          the score string                          -> +VALUE 5 points
 *   SET n        score = "<n> points"                      -> +OK
 *   MODE n       what hotswap_migrate_down does (global)   -> +OK
 *                  0 converts back, 1 returns status 42, 2 writes through
 *                  NULL, 3 never returns, 4 declines (GAME_ERR_NOT_FOUND:
 *                  "no way back to that version")
 *   UNDOSTATUS   what t->undo returned in hotswap_migrate  -> +UNDOSTATUS -9
 *   UNDO         sets score "999 points", broadcasts ">SAY name before-undo",
 *                sends ">SELF before-undo", replies "+BEFORE"; then
 *                t->undo; then score = "42 points"         -> +UNDONE <status>
 *   UNDOFAULT    the same writes, t->undo, score = "222 points",
 *                ">SELF after-undo", then writes through NULL (SIGSEGV)
 *   FAULT        writes through NULL                       (SIGSEGV)
 *
 * hotswap_migrate (UP) converts faulty 1.0.0's int scores and checks the
 * migration's ABI 1.5 members (direction UP, to_version its own version);
 * hotswap_migrate_down (DOWN) turns "<n> points" back into faulty 1.0.0's
 * int score (its field 0) after checking from_version, to_version and the
 * direction. Both try t->undo, which must answer GAME_ERR_STATE there.
 */
#ifndef HOTSWAP_FAULTY_RETYPED_H
#define HOTSWAP_FAULTY_RETYPED_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "game_abi.h"

/* This module's fields. */
enum { F_SCORE, F_NAME, F_MODE, F_UNDO_IN_MIGRATE };
/* faulty 1.0.0's, which hotswap_migrate_down writes. */
enum { V1_SCORE = 0 };

#define KIND_OF(id) ((uint32_t)((id) >> 56))

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "faulty", version[] = FAULTY_RETYPED_VERSION;
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, GAME_FIELD_MIGRATED, (const uint8_t *)"score", 5, 0,
                 (const uint8_t *)"0 points", 8) != F_SCORE)
        return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, GAME_FIELD_UNIQUE, (const uint8_t *)"name", 4, 0, 0, 0) != F_NAME)
        return -1;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"down_mode", 9, 0, 0, 0) != F_MODE) return -1;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"undo_in_migrate", 15, 1, 0, 0)
        != F_UNDO_IN_MIGRATE)
        return -1;
    return GAME_OK;
}

static int same(const uint8_t *bytes, size_t length, const char *text) {
    return bytes && length == strlen(text) && memcmp(bytes, text, length) == 0;
}

/* The ABI 1.5 members are there and say what they should. */
static int migration_is(const game_migration *m, uint32_t direction, const char *from, const char *to) {
    if (m->size < offsetof(game_migration, direction) + sizeof m->direction) return 0;
    return m->direction == direction && same(m->from_version, m->from_version_length, from)
        && same(m->to_version, m->to_version_length, to);
}

static int32_t set_points(const game_state_table *t, game_id entity, int64_t n) {
    char text[32];
    int length = snprintf(text, sizeof text, "%lld points", (long long)n);
    return t->set_string(t, entity, F_SCORE, (const uint8_t *)text, (size_t)length);
}

int32_t hotswap_migrate(const game_migration *m, game_id entity, const game_state_table *t) {
    if (!migration_is(m, GAME_MIGRATE_UP, "1.0.0", FAULTY_RETYPED_VERSION)) return 40;
    if (entity == GAME_GLOBAL_ID) return t->set_int(t, entity, F_UNDO_IN_MIGRATE, t->undo(t));
    if (KIND_OF(entity) != GAME_KIND_SESSION) return GAME_OK;
    int64_t old = 0;
    int32_t status = m->old_get_int(m, entity, (const uint8_t *)"score", 5, &old);
    if (status != GAME_OK) return status;
    return set_points(t, entity, old);
}

#ifdef WITH_MIGRATE_DOWN
int32_t hotswap_migrate_down(const game_migration *m, game_id entity, const game_state_table *t) {
    if (!migration_is(m, GAME_MIGRATE_DOWN, FAULTY_RETYPED_VERSION, "1.0.0")) return 41;
    /* Nothing of its own to undo: a migration returns an error instead. */
    if (t->undo(t) != GAME_ERR_STATE) return 43;
    int64_t mode = 0;
    if (m->old_get_int(m, GAME_GLOBAL_ID, (const uint8_t *)"down_mode", 9, &mode) != GAME_OK) return 44;
    /* Declining is the first call's answer (the global entity's). */
    if (mode == 4) return entity == GAME_GLOBAL_ID ? GAME_ERR_NOT_FOUND : 45;
    if (KIND_OF(entity) != GAME_KIND_SESSION) return GAME_OK;
    if (mode == 1) return 42;
    if (mode == 2) {
        int *volatile nowhere = NULL;
        *nowhere = 2;
    }
    if (mode == 3) {
        volatile unsigned long spins = 0;
        for (;;) spins++;
    }
    uint8_t text[64];
    size_t length = 0;
    int32_t status = m->old_get_string(m, entity, (const uint8_t *)"score", 5, text, sizeof text - 1, &length);
    if (status != GAME_OK) return status;
    if (length >= sizeof text) return GAME_ERR_LIMIT;
    text[length] = 0;
    return t->set_int(t, entity, V1_SCORE, strtoll((const char *)text, NULL, 10));
}
#endif

/* The argument after `verb ` when the line starts with it, else NULL. */
static const uint8_t *verb(const game_message *m, const char *word, size_t *arg_length) {
    size_t n = strlen(word);
    if (m->length < n || memcmp(m->line, word, n) != 0) return NULL;
    if (m->length == n) { *arg_length = 0; return m->line + n; }
    if (m->line[n] != ' ') return NULL;
    *arg_length = m->length - n - 1;
    return m->line + n + 1;
}

static int32_t say(const game_state_table *t, const char *text) {
    return t->reply(t, (const uint8_t *)text, strlen(text));
}

static int64_t number(const uint8_t *arg, size_t length) {
    char digits[24];
    if (length >= sizeof digits) length = sizeof digits - 1;
    memcpy(digits, arg, length);
    digits[length] = 0;
    return strtoll(digits, NULL, 10);
}

/* What UNDO and UNDOFAULT do before their t->undo: a write, a line to the
 * room, a line to itself, a reply. */
static void before_undo(const game_state_table *t, game_id self) {
    set_points(t, self, 999);
    game_id room = 0;
    if (t->room_of(t, self, &room) == GAME_OK && room != 0) {
        uint8_t name[64];
        size_t name_length = 0;
        if (t->get_string(t, self, F_NAME, name, sizeof name, &name_length) != GAME_OK || name_length > sizeof name)
            name_length = 0;
        char line[128];
        int n = snprintf(line, sizeof line, ">SAY %.*s before-undo", (int)name_length, (const char *)name);
        t->room_broadcast(t, room, 0, (const uint8_t *)line, (size_t)n);
    }
    t->send(t, self, (const uint8_t *)">SELF before-undo", 17);
    say(t, "+BEFORE");
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    const game_id self = m->session;
    const uint8_t *arg;
    size_t length = 0;
    char out[128];

    if ((arg = verb(m, "GET", &length))) {
        uint8_t score[64];
        size_t score_length = 0;
        int32_t status = t->get_string(t, self, F_SCORE, score, sizeof score, &score_length);
        if (status != GAME_OK || score_length > sizeof score) return say(t, "-ERR NO_SCORE");
        int n = snprintf(out, sizeof out, "+VALUE %.*s", (int)score_length, (const char *)score);
        return t->reply(t, (const uint8_t *)out, (size_t)n);
    }
    if ((arg = verb(m, "SET", &length)) && length > 0) {
        set_points(t, self, number(arg, length));
        return say(t, "+OK");
    }
    if ((arg = verb(m, "MODE", &length)) && length > 0) {
        t->set_int(t, GAME_GLOBAL_ID, F_MODE, number(arg, length));
        return say(t, "+OK");
    }
    if ((arg = verb(m, "UNDOSTATUS", &length))) {
        int64_t status = 0;
        t->get_int(t, GAME_GLOBAL_ID, F_UNDO_IN_MIGRATE, &status);
        int n = snprintf(out, sizeof out, "+UNDOSTATUS %lld", (long long)status);
        return t->reply(t, (const uint8_t *)out, (size_t)n);
    }
    if ((arg = verb(m, "UNDOFAULT", &length))) {
        before_undo(t, self);
        t->undo(t);
        set_points(t, self, 222);
        t->send(t, self, (const uint8_t *)">SELF after-undo", 16);
        int *volatile nowhere = NULL;
        *nowhere = 1;
        return GAME_OK;
    }
    if ((arg = verb(m, "UNDO", &length))) {
        before_undo(t, self);
        int32_t status = t->undo(t);
        set_points(t, self, 42);
        int n = snprintf(out, sizeof out, "+UNDONE %d", (int)status);
        return t->reply(t, (const uint8_t *)out, (size_t)n);
    }
    if ((arg = verb(m, "FAULT", &length))) {
        int *volatile nowhere = NULL;
        *nowhere = 1;
    }
    return say(t, "-ERR UNKNOWN_COMMAND");
}

#endif
