/*
 * game_abi.h: the stable binary contract between the Hotswap engine and a
 * game logic module.
 *
 * This header is the ONLY thing the engine (Sources/Server) and a logic
 * module (Sources/GameLogic, or any shared library written in Swift or C)
 * share at run time. No Swift type crosses the boundary: both sides see
 * plain C integers, pointers and structs of function pointers, so a module
 * built from different Swift sources, or in another language, can be loaded
 * into a running engine.
 *
 * Shape (after SQLite's loadable extensions, sqlite3ext.h): the engine hands
 * the module one versioned struct of function pointers, the state table.
 * Every struct that crosses the boundary starts with its `size` and the ABI
 * version it was built against, so a newer engine can append members and an
 * older module keeps working (it never reads past the size it knows).
 *
 * Versioning: GAME_ABI_VERSION = major << 16 | minor. A module is loaded
 * only when its major equals the engine's major and its minor is not newer
 * than the engine's. Minor versions only append members at the end.
 *
 * The module contract:
 *   - A module owns NO state between calls. Every game field lives in the
 *     engine's state store and is read and written through the table. This
 *     is what lets the engine swap modules between two messages.
 *   - Module-level constants (tables, strings) are fine; mutable globals are
 *     not: they would be lost on every reload.
 *   - All ids passed to and returned by the table are generational: an id
 *     kept after its entity went away is refused with GAME_ERR_BAD_SESSION,
 *     GAME_ERR_BAD_ROOM or GAME_ERR_BAD_PLAYER, never dereferenced.
 *   - Strings are UTF-8 byte ranges (pointer + length), not NUL-terminated.
 *     The engine copies everything it keeps; the module may pass stack
 *     buffers.
 *
 * Building a module (the engine contains faults and hangs in module code by
 * jumping out of the call, see docs/ADMIN.md "When game logic crashes or
 * hangs"):
 *   - Swift: build with `-enforce-exclusivity=unchecked` (SwiftPM:
 *     `swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]`,
 *     as Package.swift's `moduleSettings` does for every Swift module here).
 *     With run-time exclusivity checks on, each dynamic access links a
 *     record on the caller's stack into a per-thread list; a contained
 *     fault abandons those frames without ending the access, and the
 *     engine's next access on the loop thread walks into dead stack. A
 *     module built without the flag may corrupt the engine after its first
 *     contained fault.
 *   - C: nothing special; `-fPIC -shared`, and no mutable globals.
 *   - Any language: link it as a shared library (`.so`) for the engine's
 *     architecture; ELF constructors run inside dlopen on the loader's
 *     worker, where no guard reaches, so keep them trivial or absent.
 *
 * Exports a module provides (plain C symbols, e.g. Swift's @_cdecl):
 *   uint32_t hotswap_abi_version(void);                               required
 *   int32_t  hotswap_describe(const game_describer *d);                required
 *   int32_t  hotswap_handle(const game_message *m,
 *                           const game_state_table *t);                required
 *   void     hotswap_session_closed(game_id session,
 *                                   const game_state_table *t);        optional
 *   int32_t  hotswap_migrate(const game_migration *m, game_id entity,
 *                            const game_state_table *t);               optional
 *   int32_t  hotswap_load(const game_state_table *t,
 *                         const uint8_t *from_version, size_t length); optional
 *   int32_t  hotswap_timer(const game_timer_event *e,
 *                          const game_state_table *t);                 optional (1.3)
 *   int32_t  hotswap_tick(const game_tick *k,
 *                         const game_state_table *t);                  optional (1.3)
 *   int32_t  hotswap_auth(const game_auth_result *r,
 *                         const game_state_table *t);                  optional (1.4)
 *   void     hotswap_session_away(game_id session,
 *                                 const game_state_table *t);          optional (1.4)
 *   void     hotswap_session_back(game_id session,
 *                                 const game_state_table *t);          optional (1.4)
 *   int32_t  hotswap_migrate_down(const game_migration *m, game_id entity,
 *                                 const game_state_table *t);          optional (1.5)
 *
 * Authentication (ABI 1.4; see "Authentication" below): the engine checks
 * who a player is (a per-player secret kept as a salted scrypt hash, or a
 * token signed by the studio's login service) on a worker thread, off the
 * loop, and then calls hotswap_auth of the module loaded THEN with the
 * answer, which the module turns into the reply to the login request.
 *
 * Resume (ABI 1.4; see "ABI 1.4: resume" in the state table): a session
 * holding a resume token outlives a dropped connection for --resume-grace
 * seconds, and a new connection that presents the token takes it over.
 *
 * Time (ABI 1.3; see "Timers and ticks" below): a timer or a room's tick is
 * data the engine keeps, never a pointer into a module. When one comes due
 * the engine calls hotswap_timer or hotswap_tick of the module loaded THEN:
 * a timer set by version 1 is handled by version 2 after a RELOAD (Erlang's
 * send_after, not skynet's stored closure). A module without hotswap_timer
 * is refused by RELOAD while timers are pending, and one without
 * hotswap_tick while rooms tick.
 *
 * Reload (see docs/ARCHITECTURE.md): the engine maps the new module, reads
 * its schema, binds it to a staged copy of the store (fields matched by
 * name and type; new ones get their default; dropped ones are kept hidden
 * for a rollback), calls hotswap_migrate once per live entity (the global
 * entity, every session and room, and, for a module that declares player
 * fields, every stored player, online or not), then
 * hotswap_load; only if every step returned GAME_OK does the new module
 * replace the old one, between two messages. Otherwise nothing changed.
 *
 * Stored players are migrated first, in slices of about 2 ms between
 * messages while the old module still serves (there may be a million of
 * them); a player the game changes meanwhile is migrated again, from its
 * new values, in the swap itself, with the global entity, sessions and
 * rooms. So hotswap_migrate may be called more than once for a player,
 * and while it migrates a stored player it may write only that player
 * (other writes get GAME_ERR_STATE). Players come before the global
 * entity, sessions and rooms: a player's migration reads what other
 * entities held before the reload through old_get_int/old_get_string,
 * not through the table, where their new fields still hold defaults.
 */
#ifndef HOTSWAP_GAME_ABI_H
#define HOTSWAP_GAME_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Versions ---------------------------------------------------------- */

#define GAME_ABI_MAJOR 1
#define GAME_ABI_MINOR 5
/* GAME_ABI_MAJOR << 16 | GAME_ABI_MINOR, spelled out so Swift imports it. */
#define GAME_ABI_VERSION 0x00010005

/* ---- Status codes: every table call returns one ------------------------ */

#define GAME_OK 0
#define GAME_ERR_BAD_SESSION (-1)   /* unknown, stale or closed session id   */
#define GAME_ERR_BAD_ROOM (-2)      /* unknown or stale room id              */
#define GAME_ERR_BAD_FIELD (-3)     /* field index out of range, or the field
                                       belongs to another entity kind        */
#define GAME_ERR_BAD_TYPE (-4)      /* int accessor on a string field, ...    */
#define GAME_ERR_BAD_ARGUMENT (-5)  /* NULL pointer, bad length, bad bytes    */
#define GAME_ERR_NOT_FOUND (-6)     /* lookup found nothing                   */
#define GAME_ERR_EXISTS (-7)        /* name taken, already in a room, ...     */
#define GAME_ERR_LIMIT (-8)         /* an engine limit was reached            */
#define GAME_ERR_STATE (-9)         /* call not allowed now (reply outside a
                                       request, second reply, ...)           */
#define GAME_ERR_BAD_PLAYER (-10)   /* unknown player id (ABI 1.2)            */
/* ABI 1.4, in game_auth_result.status (and from player_attach): */
#define GAME_ERR_BAD_SECRET (-11)   /* wrong secret; a forged, expired or
                                       unusable token; a login without a
                                       secret to a player who set one        */
#define GAME_ERR_THROTTLED (-12)    /* too many failed logins from this
                                       address or for this player, or too
                                       many new players from this address:
                                       retry_after_ms says when to retry     */
#define GAME_ERR_SECRET_REQUIRED (-13) /* --require-secret: guests refused   */
#define GAME_ERR_BUSY (-14)         /* the verification queue is full        */

/* ---- Entity ids -------------------------------------------------------- */

/*
 * A 64-bit generational id:
 *
 *   63      56 55                32 31                             0
 *   +---------+--------------------+--------------------------------+
 *   |  kind   |  generation (24)   |          slot index            |
 *   +---------+--------------------+--------------------------------+
 *
 * The generation changes every time a slot is reused, so an old id never
 * names a new entity. The kind makes a room id passed as a session id an
 * error instead of a silent mix-up. 0 is never a valid id.
 */
typedef uint64_t game_id;

#define GAME_KIND_GLOBAL 1
#define GAME_KIND_SESSION 2
#define GAME_KIND_ROOM 3
/* ABI 1.2: a durable player record, keyed by a stable key the module
 * chooses (the default game: the lower-cased login name). Player fields and
 * global fields are persisted by the engine (write-behind to its database);
 * session and room fields live only as long as their entity. A player's id
 * is valid for the life of the process only (ids are handed out again at
 * start): to refer to a player in a persistent field, store its key. */
#define GAME_KIND_PLAYER 4
/* ABI 1.3: a pending timer (timer_set's id). */
#define GAME_KIND_TIMER 5

/* The one global entity: kind 1, generation 1, slot 0. */
#define GAME_GLOBAL_ID 0x0100000100000000ULL

/* ---- Schema: the fields a module declares ------------------------------ */

#define GAME_TYPE_INT 1      /* int64_t                                      */
#define GAME_TYPE_STRING 2   /* UTF-8 bytes, at most GAME_MAX_STRING bytes   */

/* A string field whose values are unique among live entities of its kind;
 * the engine keeps an index and offers find_by_string on it. */
#define GAME_FIELD_UNIQUE 1u

/* The field's values are computed by hotswap_migrate from the outgoing
 * module's data. Required when a field keeps its name but changes type: a
 * retyped field without it (or without a migrate export) is refused. */
#define GAME_FIELD_MIGRATED 2u

/* ---- Limits a module must respect (the engine refuses what exceeds them) */

#define GAME_MAX_STRING 1024        /* bytes in a string field's value       */
#define GAME_MAX_FIELD_NAME 32      /* bytes in a field name                 */
#define GAME_MAX_FIELDS 256         /* fields one module may declare         */
#define GAME_MAX_MODULE_NAME 64     /* bytes in a module's name or version   */
#define GAME_MAX_ROOM_NAME 64       /* bytes in a room name                  */
#define GAME_MAX_OUTPUT_LINE 65536  /* bytes in one reply or pushed line     */
#define GAME_MAX_PLAYER_KEY 64      /* bytes in a player key (UTF-8, no NUL) */
#define GAME_MAX_TIMER_EVENT 32     /* bytes in a timer's event name (1.3)   */
#define GAME_MAX_TIMER_PAYLOAD 256  /* bytes in a timer's payload (1.3)      */
#define GAME_MAX_TIMER_DELAY_MS 2592000000ULL /* 30 days: delay and period  */
#define GAME_MIN_TICK_RATE 1        /* ticks per second a room may run at   */
#define GAME_MAX_TICK_RATE 60
#define GAME_MAX_SETTING_KEY 64     /* bytes in a --game-setting key (1.3)  */
#define GAME_RESUME_TOKEN_LENGTH 22 /* bytes in a resume token (1.4): 128
                                       random bits, base64url, no padding    */

/* What session_status reports (ABI 1.4). */
#define GAME_SESSION_CONNECTED 1    /* a connection serves it                */
#define GAME_SESSION_AWAY 2         /* its connection dropped; it waits for a
                                       RESUME until --resume-grace runs out  */

typedef struct game_describer game_describer;

/*
 * Passed to hotswap_describe at load time. The module calls `module` once
 * and `field` once per field. Fields are numbered in the order they are
 * declared, from 0: that number is the `field` argument of every field call
 * on the state table, so the module can use compile-time constants and the
 * engine resolves names to storage once, at load, not per message.
 */
struct game_describer {
    uint32_t size;
    uint32_t abi_version;
    void *engine;

    /* The module's name and version: each 1..GAME_MAX_MODULE_NAME bytes of
     * printable ASCII without spaces ('!' through '~'), as they go into
     * replies, STATUS, events and logs as one token. Anything else refuses
     * the module (GAME_ERR_BAD_ARGUMENT) with the offending text escaped. */
    int32_t (*module)(const game_describer *d,
                      const uint8_t *name, size_t name_length,
                      const uint8_t *version, size_t version_length);

    /* Returns the field's index (>= 0) or a GAME_ERR_* code. `name` is
     * [a-z0-9_], 1..GAME_MAX_FIELD_NAME bytes, unique within its kind. */
    int32_t (*field)(const game_describer *d,
                     uint32_t kind, uint32_t type, uint32_t flags,
                     const uint8_t *name, size_t name_length,
                     int64_t default_int,
                     const uint8_t *default_string, size_t default_string_length);
};

/* ---- Messages ---------------------------------------------------------- */

/* One protocol line, without its LF or CRLF terminator. The bytes are valid
 * only during the hotswap_handle call. */
typedef struct game_message {
    game_id session;
    const uint8_t *line;
    size_t length;
} game_message;

/* ---- The state table --------------------------------------------------- */

#define GAME_LOG_DEBUG 0
#define GAME_LOG_INFO 1
#define GAME_LOG_WARNING 2
#define GAME_LOG_ERROR 3

typedef struct game_state_table game_state_table;

/*
 * Output rules, enforced by the engine:
 *   - Lines carry no terminator; the engine appends CRLF. A line holding CR,
 *     LF or NUL is refused (GAME_ERR_BAD_ARGUMENT): no protocol injection.
 *   - `reply` answers the request being handled; it must begin with '+' or
 *     '-' and may be called exactly once per request. If the module sends
 *     none, the engine answers "-ERR INTERNAL" itself.
 *   - `send` and `room_broadcast` push unasked lines, which begin with '>'.
 *   - Output is buffered and written once per loop turn.
 *
 * Out-parameters for lists and strings: the engine writes at most
 * `capacity` items and always stores the full count or length, so a caller
 * can tell when its buffer was too small.
 */
struct game_state_table {
    uint32_t size;          /* sizeof(game_state_table) in the engine   */
    uint32_t abi_version;   /* GAME_ABI_VERSION the engine implements    */
    void *engine;           /* opaque; the engine finds itself through it */

    /* Output */
    int32_t (*reply)(const game_state_table *t, const uint8_t *line, size_t length);
    int32_t (*send)(const game_state_table *t, game_id session,
                    const uint8_t *line, size_t length);
    /* Flushes what is pending for the session, then closes it. Takes effect
     * when the current call returns; hotswap_session_closed runs then. */
    int32_t (*close_session)(const game_state_table *t, game_id session);

    /* Rooms. A session is in at most one room. A room lives while it has
     * members: one left empty is destroyed with its fields when the current
     * call returns. */
    int32_t (*room_create)(const game_state_table *t, const uint8_t *name, size_t length,
                           game_id *out_room);
    int32_t (*room_find)(const game_state_table *t, const uint8_t *name, size_t length,
                         game_id *out_room);
    int32_t (*room_join)(const game_state_table *t, game_id room, game_id session);
    int32_t (*room_leave)(const game_state_table *t, game_id session);
    /* *out_room = 0 when the session is in no room. */
    int32_t (*room_of)(const game_state_table *t, game_id session, game_id *out_room);
    int32_t (*room_members)(const game_state_table *t, game_id room,
                            game_id *out, size_t capacity, size_t *out_count);
    /* `except` (a session id, or 0) does not receive the line. */
    int32_t (*room_broadcast)(const game_state_table *t, game_id room, game_id except,
                              const uint8_t *line, size_t length);
    int32_t (*room_list)(const game_state_table *t,
                         game_id *out, size_t capacity, size_t *out_count);
    int32_t (*room_name)(const game_state_table *t, game_id room,
                         uint8_t *buffer, size_t capacity, size_t *out_length);

    /* Fields, by the index the module declared them with. */
    int32_t (*get_int)(const game_state_table *t, game_id entity, int32_t field,
                       int64_t *out);
    int32_t (*set_int)(const game_state_table *t, game_id entity, int32_t field,
                       int64_t value);
    int32_t (*get_string)(const game_state_table *t, game_id entity, int32_t field,
                          uint8_t *buffer, size_t capacity, size_t *out_length);
    /* GAME_ERR_EXISTS when the field is unique and another entity has it. */
    int32_t (*set_string)(const game_state_table *t, game_id entity, int32_t field,
                          const uint8_t *bytes, size_t length);
    /* Unique string fields only. */
    int32_t (*find_by_string)(const game_state_table *t, int32_t field,
                              const uint8_t *bytes, size_t length, game_id *out_entity);

    /* Services */
    uint64_t (*now_ms)(const game_state_table *t);   /* monotonic milliseconds */
    void (*log)(const game_state_table *t, int32_t level, const uint8_t *text, size_t length);

    /* ---- ABI 1.1 ---- (check t->size before calling) */

    /* The session has identified itself (logged in): the engine moves it
     * from the short login timeout to the regular idle timeout. */
    int32_t (*session_identified)(const game_state_table *t, game_id session);

    /* ---- ABI 1.2 ---- (check t->size before calling) */

    /* Binds the player stored under `key` (1..GAME_MAX_PLAYER_KEY bytes of
     * UTF-8, no NUL) to the session, creating the record with the declared defaults
     * if it does not exist, and stores its id in *out_player. A player is
     * attached to at most one live session: GAME_ERR_EXISTS when another
     * session holds it, or when this session already holds a player (detach
     * first); GAME_ERR_LIMIT past the engine's --max-players; GAME_ERR_STATE
     * during migrate and load hooks (as for every change of who is where).
     * The record outlives the session: it is detached, not deleted, when
     * the session closes (after hotswap_session_closed), and its fields
     * persist. */
    int32_t (*player_attach)(const game_state_table *t, game_id session,
                             const uint8_t *key, size_t length, game_id *out_player);
    /* *out_player = the session's player, or 0 when none is attached. */
    int32_t (*player_of)(const game_state_table *t, game_id session, game_id *out_player);
    /* Unbinds the session's player (the record stays); GAME_ERR_NOT_FOUND
     * when none is attached. */
    int32_t (*player_detach)(const game_state_table *t, game_id session);
    /* The player's key, copied out like get_string; GAME_ERR_BAD_PLAYER for
     * an id that is not a stored player's. */
    int32_t (*player_key)(const game_state_table *t, game_id player,
                          uint8_t *buffer, size_t capacity, size_t *out_length);

    /* ---- ABI 1.3 ---- (check t->size before calling) */

    /* Sets a timer on `owner` (a session, a room, a player or
     * GAME_GLOBAL_ID): after `delay_ms` the engine calls hotswap_timer with
     * `event` (1..GAME_MAX_TIMER_EVENT bytes of [a-z0-9_.:-]) and `payload`
     * (0..GAME_MAX_TIMER_PAYLOAD bytes, copied). With `period_ms` > 0 it
     * fires again every period, on the grid due + k * period (no drift; a
     * period missed by a stall is not fired twice: the next call's late_ms
     * says how late it is). Delay and period are at most
     * GAME_MAX_TIMER_DELAY_MS; a period is at least 1 ms. *out_timer gets
     * the timer's id, for timer_cancel.
     *
     * A timer ends with its owner: a session's when it closes, a room's when
     * it is destroyed, a player's when it is forgotten (FORGET). Player and
     * global timers are durable (stored with a wall-clock deadline; one
     * overdue at start fires once); session and room timers end with the
     * process (an engine upgrade hands them all over).
     *
     * Set or cancelled inside a call that faults or hangs, a timer is
     * undone with the rest of the call. GAME_ERR_LIMIT past the engine's
     * --max-timers; GAME_ERR_STATE during migrate and load hooks, and from
     * a module that does not export hotswap_timer (nothing could handle
     * it). */
    int32_t (*timer_set)(const game_state_table *t, game_id owner,
                         const uint8_t *event, size_t event_length,
                         const uint8_t *payload, size_t payload_length,
                         uint64_t delay_ms, uint64_t period_ms, game_id *out_timer);
    /* GAME_ERR_NOT_FOUND when it already fired (one-shot), was cancelled or
     * ended with its owner. Cancelling the timer being handled stops its
     * period. */
    int32_t (*timer_cancel)(const game_state_table *t, game_id timer);

    /* Makes the room tick `rate` times a second (GAME_MIN_TICK_RATE ..
     * GAME_MAX_TICK_RATE; 0 stops it): hotswap_tick is called with a fixed
     * step of 1000/rate ms. Rooms' phases are spread over the period. After
     * a stall the engine runs at most 3 catch-up ticks and skips (and
     * counts) the rest. The rate survives reloads and engine upgrades; it
     * ends with the room. GAME_ERR_STATE from a module without
     * hotswap_tick. */
    int32_t (*room_set_tick_rate)(const game_state_table *t, game_id room, uint32_t rate);
    /* Nonzero: events (send, room_broadcast) for this room's members are
     * held and written once per tick of the room, in one write per
     * connection (Colyseus' patch rate). Replies are never held: a reply
     * writes what is held before it too, in order. Needs a tick rate. */
    int32_t (*room_set_batching)(const game_state_table *t, game_id room, int32_t on);

    /* The value of `--game-setting key=value`, copied out like get_string;
     * GAME_ERR_NOT_FOUND when the operator gave none. Settings change only
     * with a restart or an engine upgrade. */
    int32_t (*setting)(const game_state_table *t, const uint8_t *key, size_t key_length,
                       uint8_t *buffer, size_t capacity, size_t *out_length);

    /* ---- ABI 1.4: authentication ---- (check t->size before calling) */

    /* How players prove who they are on this server, set by the operator:
     * GAME_AUTH_OPEN (a secret is optional: a player who never set one is
     * a guest whose name anyone may use), GAME_AUTH_SECRET
     * (--require-secret: every player has a secret) or GAME_AUTH_TOKEN
     * (--auth-jwt-key: a signed token is the only login). A game shapes
     * its login verb and help by it. */
    uint32_t (*auth_mode)(const game_state_table *t);

    /* Asks the engine to log the session in; only from hotswap_handle, for
     * the request being handled, and only when the module exports
     * hotswap_auth (GAME_ERR_STATE otherwise, and for a session that
     * already holds a player or has a login in progress).
     *
     * `identity` is the player's key (1..GAME_MAX_PLAYER_KEY bytes; the
     * module chooses it, e.g. the lower-cased name) and `secret` the
     * player's secret (0..GAME_MAX_SECRET bytes; 0 logs in as a guest); in
     * GAME_AUTH_TOKEN mode `identity` is the token (up to
     * GAME_MAX_AUTH_TOKEN bytes), whose subject becomes the key, and
     * `secret` must be empty.
     *
     * GAME_OK means the request's answer is deferred: the module must not
     * reply to it now (reply gets GAME_ERR_STATE); once the check is done,
     * after the current call returns and never inside it, the engine calls
     * hotswap_auth, where the module replies. Meanwhile the session's
     * later lines wait, in order. A new key with a secret creates the
     * player with that secret; an existing player with a secret needs it;
     * a guest's key with a secret claims it. On success the engine has
     * attached the player to the session (as player_attach) before
     * hotswap_auth runs. The secret is never kept, logged or shown: only
     * its salted hash is stored, in the player's record. */
    int32_t (*auth_login)(const game_state_table *t, game_id session,
                          const uint8_t *identity, size_t identity_length,
                          const uint8_t *secret, size_t secret_length);
    /* Sets or changes the secret of the player the session holds (a guest
     * claims its name this way). Deferred like auth_login: hotswap_auth
     * runs with GAME_AUTH_SECRET_SET in flags. GAME_ERR_NOT_FOUND when the
     * session holds no player; GAME_ERR_STATE in GAME_AUTH_TOKEN mode. */
    int32_t (*auth_set_secret)(const game_state_table *t, game_id session,
                               const uint8_t *secret, size_t secret_length);
    /* ---- ABI 1.4: resume ---- (check t->size before calling) */

    /* A session outlives a dropped connection for the operator's
     * --resume-grace seconds ("away"), if it holds a resume token: a new
     * connection that presents the token takes it over, with its room,
     * fields, player and timers, and gets the lines sent to it meanwhile
     * (the newest ones, within the engine's bound, after a ">MISSED n"
     * line when older ones were dropped). The engine owns the tokens: it
     * makes them (128 bits from the OS, GAME_RESUME_TOKEN_LENGTH bytes of
     * base64url), keeps only their SHA-256, expires them with their
     * session, and checks them; a module parses its own verb and asks.
     *
     * hotswap_session_away is called when a session with a token loses its
     * connection, hotswap_session_back after a RESUME reattached it (both
     * like hotswap_session_closed: no reply; output to other sessions and
     * field writes are allowed; a fault undoes what the hook did). When the
     * grace runs out, hotswap_session_closed is called as for any close,
     * while session_status still says GAME_SESSION_AWAY. A session that
     * ends any other way (QUIT, close_session, an idle timeout, a flood,
     * shutdown) does not go away: only a dropped connection does. */

    /* Issues a resume token for the session and copies it out (capacity
     * at least GAME_RESUME_TOKEN_LENGTH, else GAME_ERR_BAD_ARGUMENT and
     * nothing is issued). Each call issues a new token and the previous
     * one stops working. The token is kept only if the current call
     * returns normally (a fault or hang undoes it with the call).
     * GAME_ERR_STATE when resume is off (--resume-grace 0), during
     * migrate and load hooks. */
    int32_t (*session_token)(const game_state_table *t, game_id session,
                             uint8_t *buffer, size_t capacity, size_t *out_length);
    /* From hotswap_handle only, for the session whose request is being
     * handled (a fresh connection: not identified, in no room, holding no
     * player): checks `token`. On GAME_OK *out_session is the session the
     * token names, and a new token (the old one is spent) is copied out
     * like session_token's. The module may read that session's fields,
     * room and player to build its reply. When the call returns normally,
     * the engine moves the requesting connection to that session: a
     * connection still serving it is sent ">REPLACED ..." and closed, the
     * requesting session ends (hotswap_session_closed is called for it),
     * the missed lines follow the reply, and hotswap_session_back is
     * called if the session was away. A fault undoes it all, and the old
     * token keeps working. GAME_ERR_NOT_FOUND for a token that is unknown,
     * spent, expired or malformed; GAME_ERR_LIMIT when the client's
     * address made too many failed attempts (--max-failed-resumes-per-ip);
     * GAME_ERR_STATE when resume is off, outside a request, or from a
     * session that is not fresh. */
    int32_t (*session_resume)(const game_state_table *t, game_id session,
                              const uint8_t *token, size_t token_length,
                              game_id *out_session,
                              uint8_t *buffer, size_t capacity, size_t *out_length);
    /* *out_status = GAME_SESSION_CONNECTED or GAME_SESSION_AWAY. */
    int32_t (*session_status)(const game_state_table *t, game_id session, uint32_t *out_status);
    /* ---- ABI 1.5: undo ---- (check t->size before calling) */

    /* Undoes everything the current call has done so far, exactly as a
     * contained fault would: field writes, rooms made, joined or left,
     * players attached or detached, timers set or cancelled, tick rates,
     * output (the reply included), closes asked for, resume tokens issued
     * and a login or RESUME asked for. The call then goes on, and may
     * reply (typically with an -ERR line): a request still gets exactly
     * one reply. This is how an SDK turns a handler's thrown error into
     * "nothing happened". Allowed in hotswap_handle, hotswap_timer,
     * hotswap_tick, hotswap_auth and the session hooks; GAME_ERR_STATE in
     * hotswap_migrate, hotswap_migrate_down and hotswap_load (return an
     * error there instead: the whole reload is undone). */
    int32_t (*undo)(const game_state_table *t);
    /* The index of the field called `name` of `kind` in the schema this
     * table writes, or GAME_ERR_NOT_FOUND; its GAME_TYPE_* in *out_type
     * when out_type is not NULL. A module knows its own indexes; this is
     * for code that writes another version's schema: in
     * hotswap_migrate_down, `t` writes the PREVIOUS module's fields, whose
     * order and types the newer module does not know. Allowed in every
     * call. */
    int32_t (*field_index)(const game_state_table *t, uint32_t kind,
                           const uint8_t *name, size_t name_length, uint32_t *out_type);
};

/* ---- Migration ----------------------------------------------------------- */

typedef struct game_migration game_migration;

/*
 * Passed to hotswap_migrate during a reload. The state table passed with it
 * writes to the staged store (the new schema); these read the values the
 * outgoing module stored, by field name, whatever their new shape. During a
 * migration the table refuses output and room changes (GAME_ERR_STATE):
 * a migration that fails must leave no trace.
 */
struct game_migration {
    uint32_t size;
    uint32_t abi_version;
    void *engine;
    const uint8_t *from_version;   /* the outgoing module's version string */
    size_t from_version_length;

    int32_t (*old_get_int)(const game_migration *m, game_id entity,
                           const uint8_t *name, size_t name_length, int64_t *out);
    int32_t (*old_get_string)(const game_migration *m, game_id entity,
                              const uint8_t *name, size_t name_length,
                              uint8_t *buffer, size_t capacity, size_t *out_length);
    /* ---- ABI 1.5 (check m->size) ---- */
    const uint8_t *to_version;     /* the version being migrated to          */
    size_t to_version_length;
    uint32_t direction;            /* GAME_MIGRATE_UP or GAME_MIGRATE_DOWN    */
    /* The GAME_TYPE_* of the field called `name` of `kind` that the
     * outgoing module DECLARES, or GAME_ERR_NOT_FOUND. old_get_* also read
     * columns kept hidden from older versions; this says whether the
     * outgoing module itself had the field, which is what decides whether
     * a rename or a retype applies. */
    int32_t (*old_field_type)(const game_migration *m, uint32_t kind,
                              const uint8_t *name, size_t name_length);
};

/* Which way a migration goes (game_migration.direction, ABI 1.5). */
#define GAME_MIGRATE_UP 1    /* hotswap_migrate, on RELOAD: old -> new      */
#define GAME_MIGRATE_DOWN 2  /* hotswap_migrate_down, on ROLLBACK           */

/*
 * Going back (ABI 1.5), after Erlang's code_change({down, Vsn}): ROLLBACK
 * swaps back to the module that served before the last swap. Fields are
 * bound by name and type as on a reload; a field the newer module dropped
 * comes back with its kept value. A field the newer module RETYPED (or
 * computed, GAME_FIELD_MIGRATED) is the problem: its old value is from
 * before the upgrade, while every other field moved on, so bringing it
 * back would mix two points in time.
 *
 * So when the module being rolled back from (the newer one) exports
 * hotswap_migrate_down, ROLLBACK runs it exactly like a reload's migration
 * in reverse: once per live entity and stored player, with `t` writing
 * the previous module's schema (staged; nothing is visible unless every
 * call returns GAME_OK), `old_get_int`/`old_get_string` reading the values
 * the newer module holds now, `from_version` the newer version and
 * `to_version` the one being restored, `direction` GAME_MIGRATE_DOWN.
 * Then the previous module's hotswap_load runs, if it has one. Any error,
 * fault or hang leaves the newer module serving with nothing changed.
 *
 * hotswap_migrate_down may DECLINE: GAME_ERR_NOT_FOUND from its FIRST
 * call (the global entity's; a later one is an error like any other) says "I have no way back to to_version" (a module that knows how to
 * go back from its own changes, asked to go somewhere else: the second of
 * two ROLLBACKs, which goes forward again; a retype it cannot undo). Nothing
 * it did is kept, and the rollback goes on as for a module without the
 * hook: refused if it would mix, as below, otherwise without migration.
 *
 * Without hotswap_migrate_down (or when it declines), a ROLLBACK past a
 * retyped or migrated field is refused with the field's name (an automatic rollback by the
 * fault policy too: the faulting module keeps serving, its faults
 * contained, and the operator is told why it was not rolled back). A
 * rollback past only added or dropped fields needs no hook, as before.
 */

/* ---- Timers and ticks (ABI 1.3) ------------------------------------------ */

/* Passed to hotswap_timer. The bytes are valid only during the call. The
 * call runs like a request without a reply: output, room changes and
 * closes are allowed; a fault or hang undoes it all (and the timer, if it
 * was one-shot, is spent). */
typedef struct game_timer_event {
    uint32_t size;
    uint32_t abi_version;
    game_id timer;
    game_id owner;
    const uint8_t *event;
    size_t event_length;
    const uint8_t *payload;
    size_t payload_length;
    uint64_t late_ms;      /* how long after its due time it fires            */
    uint64_t fired;        /* times it has fired, this one included           */
} game_timer_event;

/* Passed to hotswap_tick. */
typedef struct game_tick {
    uint32_t size;
    uint32_t abi_version;
    game_id room;
    uint64_t tick;         /* 1, 2, ...: skipped ticks are counted too        */
    uint32_t step_ms;      /* the fixed step, 1000 / rate                     */
    uint32_t skipped;      /* ticks skipped just before this one (a stall)    */
    uint64_t since_last_ms;/* wall time since the previous tick's call        */
} game_tick;

/* ---- Authentication (ABI 1.4) ------------------------------------------- */

#define GAME_AUTH_OPEN 0            /* auth_mode: secrets optional (guests)  */
#define GAME_AUTH_SECRET 1          /* --require-secret                      */
#define GAME_AUTH_TOKEN 2           /* --auth-jwt-key: signed tokens only    */

#define GAME_MAX_SECRET 256         /* bytes in a player's secret            */
#define GAME_MAX_AUTH_TOKEN 4096    /* bytes in a signed token               */

/* game_auth_result.flags */
#define GAME_AUTH_CREATED 1u        /* the player record is new              */
#define GAME_AUTH_GUEST 2u          /* logged in without a secret            */
#define GAME_AUTH_CLAIMED 4u        /* a guest's name now has a secret       */
#define GAME_AUTH_SECRET_SET 8u     /* the answer to auth_set_secret         */
#define GAME_AUTH_VIA_TOKEN 16u     /* the key is a signed token's subject   */
/* Added with shared storage (PostgreSQL, several servers); a module that
 * does not know them reads the status alone, as before. */
#define GAME_AUTH_ELSEWHERE 32u     /* with _EXISTS: another server holds the
                                       player (retry_after_ms: about when its
                                       hold ends unless that server renews it) */
#define GAME_AUTH_STORAGE 64u       /* with _BUSY: the player's record could
                                       not be read (the database is down)    */

/* Passed to hotswap_auth. It runs like a request, for the request that
 * asked: exactly one reply is expected (the engine answers -ERR INTERNAL
 * if none comes); a fault or hang undoes it all, the attach included. The
 * bytes are valid only during the call. */
typedef struct game_auth_result {
    uint32_t size;
    uint32_t abi_version;
    game_id session;
    game_id player;        /* attached to the session on GAME_OK; else 0      */
    int32_t status;        /* GAME_OK or GAME_ERR_BAD_SECRET, _THROTTLED,
                              _SECRET_REQUIRED, _BUSY, _EXISTS (held by
                              another session), _LIMIT (--max-players)       */
    uint32_t flags;        /* GAME_AUTH_*                                     */
    const uint8_t *key;    /* the player's key (a token's subject), or the   */
    size_t key_length;     /* identity asked for when no key is known        */
    uint64_t retry_after_ms; /* with GAME_ERR_THROTTLED or _BUSY (and _EXISTS
                                with GAME_AUTH_ELSEWHERE)                   */
} game_auth_result;

/* ---- Export signatures ------------------------------------------------- */

typedef uint32_t (*hotswap_abi_version_fn)(void);
typedef int32_t (*hotswap_describe_fn)(const game_describer *d);
typedef int32_t (*hotswap_handle_fn)(const game_message *m, const game_state_table *t);
typedef void (*hotswap_session_closed_fn)(game_id session, const game_state_table *t);
typedef int32_t (*hotswap_migrate_fn)(const game_migration *m, game_id entity,
                                      const game_state_table *t);
typedef int32_t (*hotswap_load_fn)(const game_state_table *t,
                                   const uint8_t *from_version, size_t length);
typedef int32_t (*hotswap_timer_fn)(const game_timer_event *e, const game_state_table *t);
typedef int32_t (*hotswap_tick_fn)(const game_tick *k, const game_state_table *t);
typedef int32_t (*hotswap_auth_fn)(const game_auth_result *r, const game_state_table *t);
typedef void (*hotswap_session_away_fn)(game_id session, const game_state_table *t);
typedef void (*hotswap_session_back_fn)(game_id session, const game_state_table *t);
typedef int32_t (*hotswap_migrate_down_fn)(const game_migration *m, game_id entity,
                                           const game_state_table *t);

/* ---- Layout checks: what both sides rely on ----------------------------- */

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(game_id) == 8, "game_id is 64 bits");
_Static_assert(offsetof(game_state_table, size) == 0, "size comes first");
_Static_assert(offsetof(game_state_table, abi_version) == 4, "then the version");
_Static_assert(offsetof(game_describer, abi_version) == 4, "describer: size, version");
_Static_assert(offsetof(game_migration, abi_version) == 4, "migration: size, version");
_Static_assert(GAME_ABI_VERSION == ((GAME_ABI_MAJOR << 16) | GAME_ABI_MINOR), "version parts agree");
_Static_assert(offsetof(game_state_table, player_attach) > offsetof(game_state_table, session_identified),
               "1.2 members come after 1.1's");
_Static_assert(offsetof(game_state_table, timer_set) > offsetof(game_state_table, player_key),
               "1.3 members come after 1.2's");
_Static_assert(offsetof(game_state_table, auth_mode) > offsetof(game_state_table, setting),
               "1.4 members come after 1.3's");
_Static_assert(offsetof(game_state_table, session_token) > offsetof(game_state_table, auth_set_secret),
               "1.4's resume members come after its authentication members");
_Static_assert(offsetof(game_state_table, undo) > offsetof(game_state_table, session_status),
               "1.5 members come after 1.4's");
_Static_assert(offsetof(game_migration, to_version) > offsetof(game_migration, old_get_string),
               "1.5 migration members come after 1.0's");
#endif

#ifdef __cplusplus
}
#endif

#endif /* HOTSWAP_GAME_ABI_H */
