// Test fixture: a module that drives the engine's timers and room ticks
// (ABI 1.3) on request and reports every timer and tick it is handed, so
// tests can check what the engine fires, when, with what, and through
// which module version. Built three times: as is (version 1), with
// PROBE_VERSION "2" (TimeProbeModuleV2: a reload hands it version 1's
// timers), and with PROBE_NO_TIMER (TimeProbeNoTimerModule: no
// hotswap_timer or hotswap_tick, which a reload must refuse while timers
// are pending or rooms tick).
//
// Requests (one reply each):
//   WATCH                      this session hears of global and player timers
//   LOGIN key                  attaches the player `key`
//   JOIN room                  creates or joins a room
//   TIMER owner delay period event [payload]
//                              owner: me | room | global | player; replies +TIMER id
//   TIMERS n delay event [cancel]
//                              sets n one-shot timers on me (and cancels each
//                              at once with `cancel`); +TIMERS set=k status=s
//   CANCEL id                  +OK or -ERR status
//   TICK hz [echo|crash|hang]  the room ticks; each tick is announced to it
//                              with `echo`; `crash`/`hang` make the tick fault
//   BATCH on|off               the room's events wait for its tick
//   SAY text                   >SAID text to the room, +OK
//   PING                       +PONG
// Timer events: >TIMER v<version> <event> <payload|-> late=<ms> fired=<n>
//   to the owner session, the owner room's members, or the watcher.
//   Event `crash` faults, `hang` loops, `setcrash` sets a timer then faults,
//   `quiet...` does nothing at all.
// Tick events: >TICK v<version> n=<tick> skipped=<k> step=<ms>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "game_abi.h"

#ifndef PROBE_VERSION
#define PROBE_VERSION "1"
#endif

enum { F_TICK_MODE, F_WATCHER };
enum { MODE_QUIET = 0, MODE_ECHO = 1, MODE_CRASH = 2, MODE_HANG = 3 };

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "timeprobe", version[] = PROBE_VERSION;
    if (d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1)) return GAME_ERR_STATE;
    if (d->field(d, GAME_KIND_ROOM, GAME_TYPE_INT, 0, (const uint8_t *)"tick_mode", 9, 0, 0, 0) != F_TICK_MODE) return GAME_ERR_STATE;
    if (d->field(d, GAME_KIND_GLOBAL, GAME_TYPE_INT, 0, (const uint8_t *)"watcher", 7, 0, 0, 0) != F_WATCHER) return GAME_ERR_STATE;
    return GAME_OK;
}

static int32_t replyf(const game_state_table *t, const char *format, ...) __attribute__((format(printf, 2, 3)));
static int32_t replyf(const game_state_table *t, const char *format, ...) {
    char line[512];
    va_list args;
    va_start(args, format);
    int length = vsnprintf(line, sizeof line, format, args);
    va_end(args);
    t->reply(t, (const uint8_t *)line, (size_t)length);
    return GAME_OK;
}

/* The n-th space-separated word of `line` (copied, NUL-terminated). */
static const char *word(const char *line, int n, char *out, size_t capacity) {
    const char *p = line;
    for (int i = 0; i < n; i++) {
        p = strchr(p, ' ');
        if (!p) { out[0] = 0; return out; }
        p++;
    }
    size_t length = strcspn(p, " ");
    if (length >= capacity) length = capacity - 1;
    memcpy(out, p, length);
    out[length] = 0;
    return out;
}

/* Everything after the n-th space. */
static const char *rest(const char *line, int n) {
    const char *p = line;
    for (int i = 0; i < n; i++) {
        p = strchr(p, ' ');
        if (!p) return "";
        p++;
    }
    return p;
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    char line[1024], verb[32], a[256], b[64], c[64], e[64];
    size_t length = m->length < sizeof line - 1 ? m->length : sizeof line - 1;
    memcpy(line, m->line, length);
    line[length] = 0;
    word(line, 0, verb, sizeof verb);
    game_id room = 0;
    t->room_of(t, m->session, &room);

    if (!strcmp(verb, "PING")) return replyf(t, "+PONG");
    if (!strcmp(verb, "WATCH")) {
        t->set_int(t, GAME_GLOBAL_ID, F_WATCHER, (int64_t)m->session);
        return replyf(t, "+OK");
    }
    if (!strcmp(verb, "LOGIN")) {
        word(line, 1, a, sizeof a);
        game_id player = 0;
        int32_t status = t->player_attach(t, m->session, (const uint8_t *)a, strlen(a), &player);
        return status == GAME_OK ? replyf(t, "+OK") : replyf(t, "-ERR %d", status);
    }
    if (!strcmp(verb, "JOIN")) {
        word(line, 1, a, sizeof a);
        game_id target = 0;
        if (t->room_find(t, (const uint8_t *)a, strlen(a), &target) != GAME_OK &&
            t->room_create(t, (const uint8_t *)a, strlen(a), &target) != GAME_OK)
            return replyf(t, "-ERR create");
        int32_t status = t->room_join(t, target, m->session);
        return status == GAME_OK ? replyf(t, "+JOINED") : replyf(t, "-ERR %d", status);
    }
    if (!strcmp(verb, "TIMER")) {
        word(line, 1, a, sizeof a);
        word(line, 2, b, sizeof b);
        word(line, 3, c, sizeof c);
        word(line, 4, e, sizeof e);
        const char *payload = rest(line, 5);
        game_id owner = m->session;
        if (!strcmp(a, "room")) owner = room;
        if (!strcmp(a, "global")) owner = GAME_GLOBAL_ID;
        if (!strcmp(a, "player")) t->player_of(t, m->session, &owner);
        game_id id = 0;
        int32_t status = t->timer_set(t, owner, (const uint8_t *)e, strlen(e), (const uint8_t *)payload, strlen(payload),
                                      strtoull(b, 0, 10), strtoull(c, 0, 10), &id);
        return status == GAME_OK ? replyf(t, "+TIMER %llu", (unsigned long long)id) : replyf(t, "-ERR %d", status);
    }
    if (!strcmp(verb, "TIMERS")) {
        int n = atoi(word(line, 1, a, sizeof a));
        uint64_t delay = strtoull(word(line, 2, b, sizeof b), 0, 10);
        word(line, 3, e, sizeof e);
        int cancel = !strcmp(word(line, 4, c, sizeof c), "cancel");
        int set = 0;
        int32_t status = GAME_OK;
        for (int i = 0; i < n; i++) {
            game_id id = 0;
            status = t->timer_set(t, m->session, (const uint8_t *)e, strlen(e), 0, 0, delay, 0, &id);
            if (status != GAME_OK) break;
            if (cancel && (status = t->timer_cancel(t, id)) != GAME_OK) break;
            set++;
        }
        return replyf(t, "+TIMERS set=%d status=%d", set, status);
    }
    if (!strcmp(verb, "CANCEL")) {
        uint64_t id = strtoull(word(line, 1, a, sizeof a), 0, 10);
        int32_t status = t->timer_cancel(t, id);
        return status == GAME_OK ? replyf(t, "+OK") : replyf(t, "-ERR %d", status);
    }
    if (!strcmp(verb, "TICK")) {
        uint32_t hz = (uint32_t)atoi(word(line, 1, a, sizeof a));
        word(line, 2, b, sizeof b);
        int64_t mode = !strcmp(b, "echo") ? MODE_ECHO : !strcmp(b, "crash") ? MODE_CRASH : !strcmp(b, "hang") ? MODE_HANG : MODE_QUIET;
        t->set_int(t, room, F_TICK_MODE, mode);
        int32_t status = t->room_set_tick_rate(t, room, hz);
        return status == GAME_OK ? replyf(t, "+OK") : replyf(t, "-ERR %d", status);
    }
    if (!strcmp(verb, "BATCH")) {
        word(line, 1, a, sizeof a);
        int32_t status = t->room_set_batching(t, room, !strcmp(a, "on"));
        return status == GAME_OK ? replyf(t, "+OK") : replyf(t, "-ERR %d", status);
    }
    if (!strcmp(verb, "SAY")) {
        char event[600];
        int n = snprintf(event, sizeof event, ">SAID %s", rest(line, 1));
        t->room_broadcast(t, room, 0, (const uint8_t *)event, (size_t)n);
        return replyf(t, "+OK");
    }
    return replyf(t, "-ERR unknown");
}

#ifndef PROBE_NO_TIMER
/* Where a timer's report goes: its owner session, its owner room's
 * members, or the watcher (global and player timers). */
static void report(const game_state_table *t, game_id owner, const char *text, size_t length) {
    uint64_t kind = owner >> 56;
    if (kind == GAME_KIND_SESSION) {
        t->send(t, owner, (const uint8_t *)text, length);
    } else if (kind == GAME_KIND_ROOM) {
        t->room_broadcast(t, owner, 0, (const uint8_t *)text, length);
    } else {
        int64_t watcher = 0;
        t->get_int(t, GAME_GLOBAL_ID, F_WATCHER, &watcher);
        if (watcher) t->send(t, (game_id)watcher, (const uint8_t *)text, length);
    }
}

int32_t hotswap_timer(const game_timer_event *e, const game_state_table *t) {
    char event[64], payload[300], text[512];
    /* `quiet...` timers do nothing: tools/alloc-check.py --time counts
     * what the engine alone allocates per fire. */
    if (e->event_length >= 5 && !memcmp(e->event, "quiet", 5)) return GAME_OK;
    size_t n = e->event_length < sizeof event - 1 ? e->event_length : sizeof event - 1;
    memcpy(event, e->event, n);
    event[n] = 0;
    size_t p = e->payload_length < sizeof payload - 1 ? e->payload_length : sizeof payload - 1;
    if (p) memcpy(payload, e->payload, p);
    payload[p] = 0;
    int length = snprintf(text, sizeof text, ">TIMER v%s %s %s late=%llu fired=%llu", PROBE_VERSION, event,
                          p ? payload : "-", (unsigned long long)e->late_ms, (unsigned long long)e->fired);
    report(t, e->owner, text, (size_t)length);
    if (!strcmp(event, "crash")) *(volatile int *)0 = 1;
    if (!strcmp(event, "hang")) for (;;) {}
    if (!strcmp(event, "setcrash")) {
        game_id id = 0;
        t->timer_set(t, e->owner, (const uint8_t *)"ghost", 5, 0, 0, 1, 0, &id);
        *(volatile int *)0 = 1;
    }
    return GAME_OK;
}

int32_t hotswap_tick(const game_tick *k, const game_state_table *t) {
    int64_t mode = 0;
    t->get_int(t, k->room, F_TICK_MODE, &mode);
    if (mode == MODE_CRASH) *(volatile int *)0 = 1;
    if (mode == MODE_HANG) for (;;) {}
    if (mode == MODE_ECHO) {
        char text[128];
        int length = snprintf(text, sizeof text, ">TICK v%s n=%llu skipped=%u step=%u", PROBE_VERSION,
                              (unsigned long long)k->tick, k->skipped, k->step_ms);
        t->room_broadcast(t, k->room, 0, (const uint8_t *)text, (size_t)length);
    }
    return GAME_OK;
}
#endif
