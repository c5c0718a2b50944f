import GameABI
import Protocol

/// A logic module's handle on the engine: thin, allocation-free wrappers over
/// the C state table handed to `hotswap_handle`.
///
/// This is a value that lives for one call; a module must not keep it (or
/// anything else) between calls. Errors come back as GAME_ERR_* codes or
/// `nil`, exactly as the engine reported them.
public struct Host {
    public let table: UnsafePointer<game_state_table>

    public init(_ table: UnsafePointer<game_state_table>) { self.table = table }

    // MARK: Output

    /// Answers the request being handled (once per request).
    @discardableResult
    public func reply(_ line: LineWriter) -> Int32 { reply(line.bytes) }

    @discardableResult
    public func reply(_ bytes: UnsafeRawBufferPointer) -> Int32 {
        table.pointee.reply(table, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// Answers with a literal such as "+PONG".
    @discardableResult
    public func reply(_ literal: StaticString) -> Int32 {
        table.pointee.reply(table, literal.utf8Start, literal.utf8CodeUnitCount)
    }

    /// Pushes an event line (starting with '>') to one session.
    @discardableResult
    public func send(_ session: game_id, _ line: LineWriter) -> Int32 {
        let bytes = line.bytes
        return table.pointee.send(table, session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// Pushes an event line to every member of `room` but `except`.
    @discardableResult
    public func broadcast(_ room: game_id, except: game_id = 0, _ line: LineWriter) -> Int32 {
        let bytes = line.bytes
        return table.pointee.room_broadcast(
            table, room, except, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    @discardableResult
    public func close(_ session: game_id) -> Int32 { table.pointee.close_session(table, session) }

    // MARK: Rooms

    /// The room the session is in, or nil.
    public func room(of session: game_id) -> game_id? {
        var room: game_id = 0
        guard table.pointee.room_of(table, session, &room) == GAME_OK, room != 0 else { return nil }
        return room
    }

    public func findRoom(_ name: UnsafeRawBufferPointer) -> game_id? {
        var room: game_id = 0
        let status = table.pointee.room_find(table, name.baseAddress?.assumingMemoryBound(to: UInt8.self), name.count, &room)
        return status == GAME_OK ? room : nil
    }

    /// Creates a room; the status is GAME_ERR_EXISTS when the name is taken.
    public func createRoom(_ name: UnsafeRawBufferPointer) -> (status: Int32, room: game_id) {
        var room: game_id = 0
        let status = table.pointee.room_create(
            table, name.baseAddress?.assumingMemoryBound(to: UInt8.self), name.count, &room)
        return (status, room)
    }

    @discardableResult
    public func join(_ room: game_id, _ session: game_id) -> Int32 { table.pointee.room_join(table, room, session) }

    @discardableResult
    public func leave(_ session: game_id) -> Int32 { table.pointee.room_leave(table, session) }

    /// Members of `room`, written into `buffer`; returns how many the room
    /// has (possibly more than fit).
    public func members(of room: game_id, into buffer: UnsafeMutableBufferPointer<game_id>) -> Int {
        var count = 0
        guard table.pointee.room_members(table, room, buffer.baseAddress, buffer.count, &count) == GAME_OK else { return 0 }
        return count
    }

    /// All rooms, written into `buffer`; returns how many exist.
    public func rooms(into buffer: UnsafeMutableBufferPointer<game_id>) -> Int {
        var count = 0
        guard table.pointee.room_list(table, buffer.baseAddress, buffer.count, &count) == GAME_OK else { return 0 }
        return count
    }

    /// The room's name, copied into `buffer` (cut to fit).
    public func name(of room: game_id, into buffer: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer? {
        var length = 0
        let status = table.pointee.room_name(
            table, room, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &length)
        guard status == GAME_OK else { return nil }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<min(length, buffer.count)])
    }

    // MARK: Fields

    public func int(_ entity: game_id, _ field: Int32) -> Int64? {
        var value: Int64 = 0
        return table.pointee.get_int(table, entity, field, &value) == GAME_OK ? value : nil
    }

    @discardableResult
    public func setInt(_ entity: game_id, _ field: Int32, _ value: Int64) -> Int32 {
        table.pointee.set_int(table, entity, field, value)
    }

    /// A string field copied into `buffer` (cut to fit), or nil on error.
    public func string(_ entity: game_id, _ field: Int32, into buffer: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer? {
        var length = 0
        let status = table.pointee.get_string(
            table, entity, field, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &length)
        guard status == GAME_OK else { return nil }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<min(length, buffer.count)])
    }

    @discardableResult
    public func setString(_ entity: game_id, _ field: Int32, _ bytes: UnsafeRawBufferPointer) -> Int32 {
        table.pointee.set_string(table, entity, field, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
    }

    /// The entity whose unique string field holds `bytes`.
    public func find(_ field: Int32, _ bytes: UnsafeRawBufferPointer) -> game_id? {
        var entity: game_id = 0
        let status = table.pointee.find_by_string(
            table, field, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, &entity)
        return status == GAME_OK ? entity : nil
    }

    // MARK: Services

    public func nowMilliseconds() -> UInt64 { table.pointee.now_ms(table) }

    /// Tells the engine the session logged in (longer idle timeout). Safe on
    /// an ABI 1.0 engine, which lacks the call: it is then a no-op.
    @discardableResult
    public func identified(_ session: game_id) -> Int32 {
        let needed = MemoryLayout<game_state_table>.offset(of: \.session_identified)! + MemoryLayout<Int>.size
        guard Int(table.pointee.size) >= needed else { return GAME_ERR_STATE }
        return table.pointee.session_identified(table, session)
    }

    // MARK: Players (ABI 1.2)

    /// Whether the engine offers durable players (ABI 1.2 or later).
    public var hasPlayers: Bool {
        Int(table.pointee.size) >= MemoryLayout<game_state_table>.offset(of: \.player_key)! + MemoryLayout<Int>.size
    }

    /// Binds the player stored under `key` to `session` (creating it with
    /// the declared defaults); GAME_ERR_EXISTS when another session holds
    /// it or this session already holds one.
    public func attachPlayer(_ session: game_id, key: UnsafeRawBufferPointer) -> (status: Int32, player: game_id) {
        guard hasPlayers else { return (GAME_ERR_STATE, 0) }
        var player: game_id = 0
        let status = table.pointee.player_attach(
            table, session, key.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count, &player)
        return (status, player)
    }

    /// The player attached to `session`, or nil.
    public func player(of session: game_id) -> game_id? {
        guard hasPlayers else { return nil }
        var player: game_id = 0
        guard table.pointee.player_of(table, session, &player) == GAME_OK, player != 0 else { return nil }
        return player
    }

    @discardableResult
    public func detachPlayer(_ session: game_id) -> Int32 {
        guard hasPlayers else { return GAME_ERR_STATE }
        return table.pointee.player_detach(table, session)
    }

    // MARK: Time (ABI 1.3)

    /// Whether the engine offers timers, ticks and settings (ABI 1.3).
    public var hasTime: Bool {
        Int(table.pointee.size) >= MemoryLayout<game_state_table>.offset(of: \.setting)! + MemoryLayout<Int>.size
    }

    /// Sets a timer on `owner` (a session, room, player or GAME_GLOBAL_ID):
    /// `hotswap_timer` gets `event` and `payload` after `delay` ms, and every
    /// `period` ms after that when `period` > 0. The timer is engine data,
    /// so the module loaded when it fires handles it.
    public func setTimer(on owner: game_id, _ event: StaticString, payload: UnsafeRawBufferPointer = .init(start: nil, count: 0),
                         delay: UInt64, period: UInt64 = 0) -> (status: Int32, timer: game_id)
    {
        guard hasTime else { return (GAME_ERR_STATE, 0) }
        var timer: game_id = 0
        let status = table.pointee.timer_set(
            table, owner, event.utf8Start, event.utf8CodeUnitCount,
            payload.baseAddress?.assumingMemoryBound(to: UInt8.self), payload.count, delay, period, &timer)
        return (status, timer)
    }

    @discardableResult
    public func cancelTimer(_ timer: game_id) -> Int32 {
        guard hasTime else { return GAME_ERR_STATE }
        return table.pointee.timer_cancel(table, timer)
    }

    /// Makes `room` tick `rate` times a second (0 stops it).
    @discardableResult
    public func setTickRate(_ room: game_id, _ rate: UInt32) -> Int32 {
        guard hasTime else { return GAME_ERR_STATE }
        return table.pointee.room_set_tick_rate(table, room, rate)
    }

    /// Holds the room's events until its next tick (one write per member).
    @discardableResult
    public func setBatching(_ room: game_id, _ on: Bool) -> Int32 {
        guard hasTime else { return GAME_ERR_STATE }
        return table.pointee.room_set_batching(table, room, on ? 1 : 0)
    }

    /// The operator's `--game-setting key=value`, copied into `buffer`.
    public func setting(_ key: StaticString, into buffer: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard hasTime else { return nil }
        var length = 0
        let status = table.pointee.setting(
            table, key.utf8Start, key.utf8CodeUnitCount,
            buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &length)
        guard status == GAME_OK, length <= buffer.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<length])
    }

    /// A whole-number setting, or `fallback` when it is absent or not a
    /// number in `range`.
    public func intSetting(_ key: StaticString, default fallback: Int64, in range: ClosedRange<Int64>) -> Int64 {
        withScratch(24) { buffer in
            guard let text = setting(key, into: buffer), !text.isEmpty else { return fallback }
            var value: Int64 = 0
            for byte in text {
                guard byte >= 0x30, byte <= 0x39, value < Int64.max / 10 - 9 else { return fallback }
                value = value * 10 + Int64(byte - 0x30)
            }
            return range.contains(value) ? value : fallback
        }
    }

    // MARK: Authentication (ABI 1.4)

    /// Whether the engine checks logins (ABI 1.4 or later).
    public var hasAuth: Bool {
        Int(table.pointee.size) >= MemoryLayout<game_state_table>.offset(of: \.auth_set_secret)! + MemoryLayout<Int>.size
    }

    /// How players log in on this server (GAME_AUTH_OPEN before ABI 1.4).
    public var authMode: UInt32 { hasAuth ? table.pointee.auth_mode(table) : UInt32(GAME_AUTH_OPEN) }

    /// Asks the engine to log `session` in as `identity` (a key, or a
    /// token in GAME_AUTH_TOKEN mode) with `secret` (empty: a guest). On
    /// GAME_OK the request's answer is deferred to `hotswap_auth`: do not
    /// reply now.
    public func login(_ session: game_id, identity: UnsafeRawBufferPointer, secret: UnsafeRawBufferPointer) -> Int32 {
        guard hasAuth else { return GAME_ERR_STATE }
        return table.pointee.auth_login(
            table, session, identity.baseAddress?.assumingMemoryBound(to: UInt8.self), identity.count,
            secret.baseAddress?.assumingMemoryBound(to: UInt8.self), secret.count)
    }

    /// Sets or changes the secret of the player `session` holds; deferred
    /// like `login`.
    public func setSecret(_ session: game_id, _ secret: UnsafeRawBufferPointer) -> Int32 {
        guard hasAuth else { return GAME_ERR_STATE }
        return table.pointee.auth_set_secret(table, session, secret.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                             secret.count)
    }

    // MARK: Resume (ABI 1.4)

    /// Whether the engine keeps sessions for a RESUME (ABI 1.4 or later).
    public var hasResume: Bool {
        Int(table.pointee.size) >= MemoryLayout<game_state_table>.offset(of: \.session_status)! + MemoryLayout<Int>.size
    }

    /// A fresh resume token for `session` (the previous one stops
    /// working), copied into `buffer`; nil when resume is off or the
    /// engine predates it.
    public func resumeToken(_ session: game_id, into buffer: UnsafeMutableRawBufferPointer) -> UnsafeRawBufferPointer? {
        guard hasResume else { return nil }
        var length = 0
        let status = table.pointee.session_token(
            table, session, buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &length)
        guard status == GAME_OK, length <= buffer.count else { return nil }
        return UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<length])
    }

    /// Asks the engine to give `session`'s connection the session `token`
    /// names: the status, that session, and its new token (in `buffer`).
    public func resume(_ session: game_id, token: UnsafeRawBufferPointer, newToken buffer: UnsafeMutableRawBufferPointer)
        -> (status: Int32, session: game_id, token: UnsafeRawBufferPointer)
    {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        guard hasResume else { return (GAME_ERR_STATE, 0, none) }
        var resumed: game_id = 0
        var length = 0
        let status = table.pointee.session_resume(
            table, session, token.baseAddress?.assumingMemoryBound(to: UInt8.self), token.count, &resumed,
            buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &length)
        guard status == GAME_OK, length <= buffer.count else { return (status, 0, none) }
        return (status, resumed, UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<length]))
    }

    /// Whether the session's connection dropped and it waits for a RESUME.
    public func isAway(_ session: game_id) -> Bool {
        guard hasResume else { return false }
        var status: UInt32 = 0
        return table.pointee.session_status(table, session, &status) == GAME_OK && status == UInt32(GAME_SESSION_AWAY)
    }

    public func log(_ level: Int32, _ message: StaticString) {
        table.pointee.log(table, level, message.utf8Start, message.utf8CodeUnitCount)
    }
}

/// Stack scratch memory for building lines and reading strings: the logic
/// equivalent of a reused buffer, without any state kept between calls.
///
/// `withUnsafeTemporaryAllocation` uses the stack only up to 1 KiB on Linux
/// and falls back to malloc above that, which would put an allocation on
/// every chat line; up to `maxStackScratch` bytes an `InlineArray` local
/// keeps it on the stack instead.
@inlinable @discardableResult
public func withScratch<R>(_ byteCount: Int, _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
    if byteCount <= 1024 {
        return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8, body)
    }
    if byteCount <= maxStackScratch {
        var storage = InlineArray<8192, UInt8>(repeating: 0)
        var span = storage.mutableSpan
        return span.withUnsafeMutableBytes { raw in
            body(UnsafeMutableRawBufferPointer(rebasing: raw[0..<byteCount]))
        }
    }
    return withUnsafeTemporaryAllocation(byteCount: byteCount, alignment: 8, body)
}

/// The largest scratch `withScratch` keeps on the stack.
public let maxStackScratch = 8192

/// Stack room for up to `capacity` ids (room members, room lists).
@inlinable @discardableResult
public func withIDs<R>(_ capacity: Int, _ body: (UnsafeMutableBufferPointer<game_id>) -> R) -> R {
    withScratch(capacity * MemoryLayout<game_id>.stride) { raw in
        raw.withMemoryRebound(to: game_id.self) { body($0) }
    }
}

// MARK: Undo and schema lookup (ABI 1.5)

extension Host {
    /// Whether the engine can undo a call halfway (ABI 1.5).
    public var hasUndo: Bool {
        Int(table.pointee.size) >= MemoryLayout<game_state_table>.offset(of: \.undo)! + MemoryLayout<Int>.size
    }

    /// Undoes everything the current call did so far (see game_abi.h).
    @discardableResult
    public func undo() -> Int32 {
        guard hasUndo else { return GAME_ERR_STATE }
        return table.pointee.undo(table)
    }
}

extension Host {
    /// The index of `kind`'s field called `name` in the schema the table
    /// writes (ABI 1.5): in a down migration, the previous module's.
    public func fieldIndex(kind: Int32, _ name: StaticString) -> (index: Int32, type: UInt32)? {
        let needed = MemoryLayout<game_state_table>.offset(of: \.field_index)! + MemoryLayout<Int>.size
        guard Int(table.pointee.size) >= needed else { return nil }
        var type: UInt32 = 0
        let index = table.pointee.field_index(table, UInt32(kind), name.utf8Start, name.utf8CodeUnitCount, &type)
        return index >= 0 ? (index, type) : nil
    }
}
