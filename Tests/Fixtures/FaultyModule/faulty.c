// Test fixture: a logic module that faults on request, for the fault guard.
//
// Protocol (one line per request):
//   LOGIN name   sets the session's name, tells the engine it identified -> +OK
//   JOIN room    finds or creates the room and joins it           -> +JOINED room
//   SET n        score = n                                         -> +OK
//   GET          the score                                         -> +VALUE n
//   SAY text     broadcasts ">SAY name text" to the room           -> +OK
//   NOP          nothing at all, no reply (for overhead benchmarks)
//   FAULT kind   FIRST sets score = 999, broadcasts ">SAY name before-fault"
//                to the room and sends ">SELF before-fault kind" to itself,
//                THEN faults according to kind:
//       null              write through a NULL pointer             SIGSEGV
//       trap              __builtin_trap()                          SIGILL (x86) / SIGTRAP (arm64)
//       abort             abort()                                   SIGABRT
//       assert            a failed assert()                          SIGABRT (from libc's __assert_fail)
//       doublefree        frees one block twice: glibc's malloc     SIGABRT raised by libc: NOT contained
//       div0              integer division by a volatile zero       SIGFPE (x86)
//       recurse           unbounded recursion, not a tail call      SIGSEGV (stack overflow)
//       loop              infinite loop without calls               hang
//       loopcalls         infinite loop calling t->get_int          hang inside table calls
//       loopsleep         infinite loop calling usleep              hang mostly inside libc
//       segv-after-reply  replies +OK, then writes through NULL      SIGSEGV
//       flood             broadcasts 1 MiB to the room, then NULL    SIGSEGV (output limits)
//       badreply          replies with a pointer to unmapped memory SIGSEGV inside a table call
//     An unknown kind answers -ERR UNKNOWN_FAULT (after the same side effects).
// hotswap_session_closed writes through NULL when the session's score is 666.
#define _DEFAULT_SOURCE /* usleep */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "game_abi.h"

enum { F_SCORE, F_NAME };

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "faulty", version[] = "1.0.0";
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_INT, 0, (const uint8_t *)"score", 5, 0, 0, 0) != F_SCORE) return -1;
    if (d->field(d, GAME_KIND_SESSION, GAME_TYPE_STRING, GAME_FIELD_UNIQUE, (const uint8_t *)"name", 4, 0, 0, 0) != F_NAME)
        return -1;
    return GAME_OK;
}

/* The argument after `verb ` when the line starts with it, else NULL. */
static const uint8_t *verb(const game_message *m, const char *word, size_t *arg_length) {
    size_t n = strlen(word);
    if (m->length < n || memcmp(m->line, word, n) != 0) return NULL;
    if (m->length == n) { *arg_length = 0; return m->line + n; }
    if (m->line[n] != ' ') return NULL;
    *arg_length = m->length - n - 1;
    return m->line + n + 1;
}

static int is(const uint8_t *arg, size_t length, const char *word) {
    return length == strlen(word) && memcmp(arg, word, length) == 0;
}

static int32_t say(const game_state_table *t, const char *text) {
    return t->reply(t, (const uint8_t *)text, strlen(text));
}

/* "prefix" + name + "suffix" into out; returns the length. */
static size_t with_name(const game_state_table *t, game_id self, char *out, size_t capacity,
                        const char *prefix, const uint8_t *suffix, size_t suffix_length) {
    size_t used = strlen(prefix), name_length = 0;
    memcpy(out, prefix, used);
    uint8_t name[64];
    if (t->get_string(t, self, F_NAME, name, sizeof name, &name_length) != GAME_OK) name_length = 0;
    if (name_length > sizeof name) name_length = sizeof name;
    if (name_length == 0) { memcpy(name, "anonymous", 9); name_length = 9; }
    memcpy(out + used, name, name_length);
    used += name_length;
    if (suffix_length > capacity - used) suffix_length = capacity - used;
    memcpy(out + used, suffix, suffix_length);
    return used + suffix_length;
}

#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Winfinite-recursion"
__attribute__((noinline)) static int recurse(volatile char *previous, int depth) {
    volatile char frame[256];
    frame[0] = (char)depth;
    frame[255] = previous ? previous[0] : 0;
    /* The addition after the call keeps it from being a tail call. */
    return recurse(frame, depth + 1) + frame[depth & 255];
}
#pragma clang diagnostic pop

static int32_t fault(const game_message *m, const game_state_table *t, const uint8_t *kind, size_t length) {
    const game_id self = m->session;
    char line[256];
    t->set_int(t, self, F_SCORE, 999);
    game_id room = 0;
    if (t->room_of(t, self, &room) == GAME_OK && room != 0) {
        size_t n = with_name(t, self, line, sizeof line, ">SAY ", (const uint8_t *)" before-fault", 13);
        t->room_broadcast(t, room, 0, (const uint8_t *)line, n);
    }
    size_t n = strlen(">SELF before-fault ");
    memcpy(line, ">SELF before-fault ", n);
    size_t copy = length < sizeof line - n ? length : sizeof line - n;
    memcpy(line + n, kind, copy);
    t->send(t, self, (const uint8_t *)line, n + copy);

    if (is(kind, length, "null")) {
        int *volatile nowhere = NULL;
        *nowhere = 1;
    } else if (is(kind, length, "trap")) {
        __builtin_trap();
    } else if (is(kind, length, "abort")) {
        abort();
    } else if (is(kind, length, "assert")) {
        volatile int never = 0;
        assert(never);
    } else if (is(kind, length, "doublefree")) {
        /* Opaque to the compiler (volatile pointer): glibc's tcache finds the
         * second free and aborts from inside free(). */
        void *volatile block = malloc(24);
        free(block);
        free(block);
    } else if (is(kind, length, "div0")) {
        /* Both operands volatile: with a constant 1 as dividend the
         * optimizer turns 1 / x into a compare (no idiv, no trap). */
        volatile int dividend = 1, zero = 0;
        volatile int quotient = dividend / zero;
        (void)quotient;
    } else if (is(kind, length, "recurse")) {
        return recurse(NULL, 0);
    } else if (is(kind, length, "loop")) {
        volatile unsigned long spins = 0;
        for (;;) spins++;
    } else if (is(kind, length, "loopcalls")) {
        for (;;) {
            int64_t score = 0;
            t->get_int(t, self, F_SCORE, &score);
        }
    } else if (is(kind, length, "loopsleep")) {
        for (;;) usleep(1000);
    } else if (is(kind, length, "flood")) {
        /* Fill every member's output past --max-output-bytes, then crash. */
        memset(line, 'x', sizeof line);
        line[0] = '>';
        for (int i = 0; i < 4096; i++) t->room_broadcast(t, room, 0, (const uint8_t *)line, sizeof line);
        int *volatile nowhere = NULL;
        *nowhere = 3;
    } else if (is(kind, length, "badreply")) {
        /* A line pointer into unmapped memory: the engine must not crash on it. */
        t->reply(t, (const uint8_t *)(uintptr_t)16, 20);
    } else if (is(kind, length, "segv-after-reply")) {
        say(t, "+OK");
        int *volatile nowhere = NULL;
        *nowhere = 2;
    }
    return say(t, "-ERR UNKNOWN_FAULT");
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    const game_id self = m->session;
    const uint8_t *arg;
    size_t length = 0;
    char out[256];

    if ((arg = verb(m, "NOP", &length))) return GAME_OK;
    if ((arg = verb(m, "LOGIN", &length)) && length > 0) {
        int32_t status = t->set_string(t, self, F_NAME, arg, length);
        if (status == GAME_ERR_EXISTS) return say(t, "-ERR NAME_TAKEN");
        if (status != GAME_OK) return say(t, "-ERR BAD_NAME");
        if (t->size >= offsetof(game_state_table, session_identified) + sizeof t->session_identified)
            t->session_identified(t, self);
        return say(t, "+OK");
    }
    if ((arg = verb(m, "JOIN", &length)) && length > 0 && length <= 64) {
        game_id room = 0;
        if (t->room_find(t, arg, length, &room) != GAME_OK && t->room_create(t, arg, length, &room) != GAME_OK)
            return say(t, "-ERR NO_ROOM");
        if (t->room_join(t, room, self) != GAME_OK) return say(t, "-ERR CANNOT_JOIN");
        memcpy(out, "+JOINED ", 8);
        memcpy(out + 8, arg, length);
        return t->reply(t, (const uint8_t *)out, 8 + length);
    }
    if ((arg = verb(m, "SET", &length)) && length > 0 && length < 24) {
        char digits[24];
        memcpy(digits, arg, length);
        digits[length] = 0;
        t->set_int(t, self, F_SCORE, strtoll(digits, NULL, 10));
        return say(t, "+OK");
    }
    if ((arg = verb(m, "GET", &length))) {
        int64_t score = 0;
        t->get_int(t, self, F_SCORE, &score);
        char digits[24];
        int n = 0;
        uint64_t v = score < 0 ? (uint64_t)0 - (uint64_t)score : (uint64_t)score;
        do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
        size_t used = 7;
        memcpy(out, "+VALUE ", used);
        if (score < 0) out[used++] = '-';
        while (n) out[used++] = digits[--n];
        return t->reply(t, (const uint8_t *)out, used);
    }
    if ((arg = verb(m, "SAY", &length))) {
        game_id room = 0;
        if (t->room_of(t, self, &room) != GAME_OK || room == 0) return say(t, "-ERR NOT_IN_ROOM");
        char text[256];
        text[0] = ' ';
        size_t copy = length < sizeof text - 1 ? length : sizeof text - 1;
        memcpy(text + 1, arg, copy);
        size_t n = with_name(t, self, out, sizeof out, ">SAY ", (const uint8_t *)text, copy + 1);
        t->room_broadcast(t, room, 0, (const uint8_t *)out, n);
        return say(t, "+OK");
    }
    if ((arg = verb(m, "FAULT", &length))) return fault(m, t, arg, length);
    return say(t, "-ERR UNKNOWN_COMMAND");
}

void hotswap_session_closed(game_id session, const game_state_table *t) {
    int64_t score = 0;
    if (t->get_int(t, session, F_SCORE, &score) == GAME_OK && score == 666) {
        int *volatile nowhere = NULL;
        *nowhere = 666;
    }
}
