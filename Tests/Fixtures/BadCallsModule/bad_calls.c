// Test fixture: a logic module with bugs on purpose. Each request makes
// state-table calls a broken module could make and reports the status codes
// the engine returned, so a test can check every call was refused cleanly.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "game_abi.h"

enum { F_SCORE, F_NAME, F_GEMS,  /* session int, session string, room int */
       F_HOOK_RUNS, F_HOOK_READ, F_HOOK_REPLY };  /* global ints: what the close hook saw */

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "bad-calls", version[] = "0.0.1";
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_INT, 0, (const uint8_t *)"score", 5, 0, 0, 0) != F_SCORE) return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, 0, (const uint8_t *)"name", 4, 0, 0, 0) != F_NAME) return -1;
    if (d->field(d, GAME_KIND_ROOM, GAME_TYPE_INT, 0, (const uint8_t *)"gems", 4, 0, 0, 0) != F_GEMS) return -1;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"hook_runs", 9, 0, 0, 0) != F_HOOK_RUNS) return -1;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"hook_read", 9, 99, 0, 0) != F_HOOK_READ) return -1;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"hook_reply", 10, 99, 0, 0) != F_HOOK_REPLY) return -1;
    return GAME_OK;
}

static int is(const game_message *m, const char *verb) {
    size_t n = strlen(verb);
    return m->length >= n && memcmp(m->line, verb, n) == 0 && (m->length == n || m->line[n] == ' ');
}

static int32_t say(const game_state_table *t, const char *text) {
    return t->reply(t, (const uint8_t *)text, strlen(text));
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    const game_id self = m->session;
    const game_id forged_session = ((game_id)GAME_KIND_SESSION << 56) | ((game_id)77 << 32) | 4242;
    const game_id forged_room = ((game_id)GAME_KIND_ROOM << 56) | ((game_id)77 << 32) | 4242;
    char out[1024];

    if (is(m, "CHECK")) {
        int64_t value = 0;
        uint8_t buffer[8];
        size_t length = 0, count = 0;
        game_id ids[4];
        int32_t codes[] = {
            t->get_int(t, forged_session, F_SCORE, &value),                  /* stale/forged session */
            t->get_int(t, self, 99, &value),                                  /* unknown field */
            t->get_int(t, self, -1, &value),                                  /* negative field */
            t->get_int(t, self, F_NAME, &value),                              /* int read of a string */
            t->set_string(t, self, F_SCORE, (const uint8_t *)"x", 1),         /* string write of an int */
            t->get_int(t, self, F_GEMS, &value),                              /* room field on a session */
            t->get_int(t, GAME_GLOBAL_ID, F_SCORE, &value),                   /* session field on global */
            t->get_int(t, 0, F_SCORE, &value),                                /* id 0 */
            t->set_string(t, self, F_NAME, (const uint8_t *)out, GAME_MAX_STRING + 1), /* too long */
            t->set_string(t, self, F_NAME, NULL, 5),                          /* NULL bytes */
            t->get_string(t, self, F_NAME, NULL, SIZE_MAX, &length),          /* absurd capacity */
            t->get_int(t, self, F_SCORE, NULL),                               /* NULL out */
            t->send(t, self, (const uint8_t *)"no marker", 9),                /* event without '>' */
            t->send(t, self, (const uint8_t *)">a\r\n+FORGED", 12),           /* injected line */
            t->send(t, forged_session, (const uint8_t *)">hi", 3),            /* send to nobody */
            t->close_session(t, forged_session),
            t->room_members(t, forged_room, ids, 4, &count),
            t->room_members(t, forged_room, NULL, 5, &count),
            t->room_broadcast(t, 0, 0, (const uint8_t *)">x", 2),
            t->room_join(t, forged_room, self),
            t->room_join(t, self, self),                                      /* session id as room */
            t->find_by_string(t, F_NAME, (const uint8_t *)"x", 1, ids),       /* not a unique field */
            t->room_name(t, forged_room, buffer, sizeof buffer, &length),
            t->room_create(t, (const uint8_t *)"r", SIZE_MAX, ids),           /* absurd length */
        };
        int used = snprintf(out, sizeof out, "+CODES");
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
            used += snprintf(out + used, sizeof out - (size_t)used, " %d", codes[i]);
        return say(t, out);
    }
    if (is(m, "TWICE")) {
        say(t, "+ONE");
        int32_t second = say(t, "+TWO");
        t->log(t, GAME_LOG_INFO, (const uint8_t *)(second == GAME_ERR_STATE ? "second reply refused" : "second reply ACCEPTED"), second == GAME_ERR_STATE ? 20 : 21);
        return GAME_OK;
    }
    if (is(m, "BADREPLY")) {
        int32_t status = say(t, "+line\r\n+FORGED");
        snprintf(out, sizeof out, "+CODE %d", status);
        return say(t, out);
    }
    if (is(m, "NOREPLY")) return GAME_OK;
    if (is(m, "FAIL")) return GAME_ERR_LIMIT;
    if (is(m, "FAILAFTERREPLY")) { say(t, "+REPLIED"); return GAME_ERR_LIMIT; }
    if (is(m, "ID")) {
        snprintf(out, sizeof out, "+ID %llu", (unsigned long long)self);
        return say(t, out);
    }
    if (is(m, "SENDTO") && m->length > 7) {
        game_id target = strtoull((const char *)m->line + 7, NULL, 10);
        snprintf(out, sizeof out, "+CODE %d %d %d", t->send(t, target, (const uint8_t *)">hello", 6),
                 t->set_int(t, target, F_SCORE, 1), t->close_session(t, target));
        return say(t, out);
    }
    if (is(m, "HOOK")) {
        int64_t runs = -1, read = -1, reply = -1;
        t->get_int(t, GAME_GLOBAL_ID, F_HOOK_RUNS, &runs);
        t->get_int(t, GAME_GLOBAL_ID, F_HOOK_READ, &read);
        t->get_int(t, GAME_GLOBAL_ID, F_HOOK_REPLY, &reply);
        snprintf(out, sizeof out, "+HOOK runs=%lld read=%lld reply=%lld", (long long)runs, (long long)read, (long long)reply);
        return say(t, out);
    }
    if (is(m, "PING")) return say(t, "+PONG");
    return say(t, "-ERR UNKNOWN_COMMAND");
}

/* A careless close hook: closes the session again and writes to it. It
 * records how often it ran, whether the session's fields could still be
 * read, and what its reply (there is no request) got. */
void hotswap_session_closed(game_id session, const game_state_table *t) {
    int64_t runs = 0, score = 0;
    t->get_int(t, GAME_GLOBAL_ID, F_HOOK_RUNS, &runs);
    t->set_int(t, GAME_GLOBAL_ID, F_HOOK_RUNS, runs + 1);
    t->set_int(t, GAME_GLOBAL_ID, F_HOOK_READ, t->get_int(t, session, F_SCORE, &score));
    t->close_session(t, session);
    t->send(t, session, (const uint8_t *)">bye", 4);
    t->set_int(t, GAME_GLOBAL_ID, F_HOOK_REPLY, t->reply(t, (const uint8_t *)"+not a request", 14));
}
