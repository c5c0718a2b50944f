import Protocol
import GameABI

/// A session, room, player or the global entity, with its fields as
/// properties: `me.x += 1`, `room.round`, `player.score`.
///
/// A handle is an id plus the call's table: valid only during the call
/// that made it, like everything else a module sees (keep ids in fields or
/// timer payloads, never handles in globals). Field reads of a vanished
/// entity give the type's zero and writes are refused by the engine; use
/// `set(_:_:)` where a write can be refused (a unique field, a string over
/// GAME_MAX_STRING bytes) and the refusal matters.
@dynamicMemberLookup
public struct Entity<Kind: EntityKind, Fields: FieldSet>: Equatable {
    /// The engine's generational id.
    public let id: game_id
    @usableFromInline let host: Host
    @usableFromInline let fields: UnsafePointer<Fields>

    @inlinable init(_ id: game_id, _ host: Host, _ fields: UnsafePointer<Fields>) {
        self.id = id
        self.host = host
        self.fields = fields
    }

    @inlinable public static func == (lhs: Self, rhs: Self) -> Bool { lhs.id == rhs.id }

    /// The field's value (the type's zero if the entity is gone).
    
    ///
    /// Always inlined: the key path is then a literal where it is applied,
    /// and the compiler folds it to the field's index (not inlined, every
    /// access projected a key path at run time: metadata lookups and
    /// reference counting, about 300 instructions).
    @inlinable public subscript<Value: FieldValue>(dynamicMember path: KeyPath<Fields, Field<Kind, Value>>) -> Value {
        @inline(__always) get { Value.read(host, id, fields.pointee[keyPath: path].index) }
        @inline(__always) nonmutating set { _ = Value.write(host, id, fields.pointee[keyPath: path].index, newValue) }
    }

    /// Writes a field, throwing `refusal` when the engine refuses (a
    /// unique value another entity holds, a string too long).
    
    @inlinable @inline(__always) public func set<Value: FieldValue>(_ path: KeyPath<Fields, Field<Kind, Value>>, _ value: Value,
                                       or refusal: Refusal) throws(Refusal) {
        guard Value.write(host, id, fields.pointee[keyPath: path].index, value) == GAME_OK else { throw refusal }
    }

    /// Writes borrowed text into a string field without making a `String`.
    @discardableResult
    @inlinable @inline(__always) public func set(_ path: KeyPath<Fields, Field<Kind, String>>, text: Text) -> Int32 {
        host.setString(id, fields.pointee[keyPath: path].index, text.bytes)
    }

    /// A string field, for a `Line` to copy straight from the engine.
    
    @inlinable @inline(__always) public func text(_ path: KeyPath<Fields, Field<Kind, String>>) -> FieldText {
        FieldText(host: host, entity: id, index: fields.pointee[keyPath: path].index)
    }

    /// Calls `body` with a string field's bytes (no `String` made).
    
    @inlinable @inline(__always) public func withText<R>(_ path: KeyPath<Fields, Field<Kind, String>>, _ body: (Text) -> R) -> R {
        withScratch(Int(GAME_MAX_STRING)) { buffer in
            body(Text(host.string(id, fields.pointee[keyPath: path].index, into: buffer)
                ?? UnsafeRawBufferPointer(start: nil, count: 0)))
        }
    }
}

/// A string field's value, read when a `Line` appends it (no `String`).
public struct FieldText {
    @usableFromInline let host: Host
    @usableFromInline let entity: game_id
    @usableFromInline let index: Int32

    @inlinable init(host: Host, entity: game_id, index: Int32) {
        self.host = host
        self.entity = entity
        self.index = index
    }

    @inlinable func append(to line: inout Line) {
        withScratch(Int(GAME_MAX_STRING)) { buffer in
            if let bytes = host.string(entity, index, into: buffer) { line.append(text: bytes) }
        }
    }
}

// MARK: Sessions

extension Entity where Kind == SessionKind {
    /// The room the session is in.
    @inlinable public var room: Entity<RoomKind, Fields>? { host.room(of: id).map { Entity<RoomKind, Fields>($0, host, fields) } }

    /// The durable player the session is logged in as.
    @inlinable public var player: Entity<PlayerKind, Fields>? {
        host.player(of: id).map { Entity<PlayerKind, Fields>($0, host, fields) }
    }

    /// Whether the session's connection dropped and it waits for RESUME.
    @inlinable public var isAway: Bool { host.isAway(id) }

    /// Sends an event line (`>...`) to this session.
    @discardableResult
    @inlinable public func send(_ literal: StaticString) -> Int32 {
        host.table.pointee.send(host.table, id, literal.utf8Start, literal.utf8CodeUnitCount)
    }

    /// Sends an event line built at run time to this session.
    @discardableResult
    @_disfavoredOverload
    @inlinable public func send(_ line: Line) -> Int32 {
        line.withBytes { bytes in
            host.table.pointee.send(host.table, id, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
    }

    /// Closes the session after the current call (its reply is sent first).
    @discardableResult
    @inlinable public func close() -> Int32 { host.close(id) }
}

// MARK: Rooms

extension Entity where Kind == RoomKind {
    /// The room's name (allocates past 15 bytes; see `nameText`).
    @inlinable public var name: String {
        withScratch(Int(GAME_MAX_ROOM_NAME)) { buffer in
            host.name(of: id, into: buffer).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }

    /// Calls `body` with the room's name, borrowed.
    @inlinable public func withName<R>(_ body: (Text) -> R) -> R {
        withScratch(Int(GAME_MAX_ROOM_NAME)) { buffer in
            body(Text(host.name(of: id, into: buffer) ?? UnsafeRawBufferPointer(start: nil, count: 0)))
        }
    }

    /// How many sessions are in the room.
    @inlinable public var memberCount: Int { host.members(of: id, into: UnsafeMutableBufferPointer(start: nil, count: 0)) }

    /// Calls `body` once per member, in join order (one engine call; up to
    /// `limit` members, on the stack).
    @inlinable public func forEachMember(limit: Int = 1024, _ body: (Entity<SessionKind, Fields>) throws(Refusal) -> Void)
        throws(Refusal)
    {
        let count = memberCount
        guard count > 0 else { return }
        try withIDsThrowing(min(count, limit)) { (ids: UnsafeMutableBufferPointer<game_id>) throws(Refusal) in
            let filled = min(host.members(of: id, into: ids), ids.count)
            for member in ids[0..<filled] { try body(Entity<SessionKind, Fields>(member, host, fields)) }
        }
    }

    /// The members, in join order (allocates an array: `forEachMember`
    /// does not).
    @inlinable public var members: [Entity<SessionKind, Fields>] {
        var all: [Entity<SessionKind, Fields>] = []
        try? forEachMember { member throws(Refusal) in all.append(member) }
        return all
    }

    /// Sends an event line to every member but `except`.
    @discardableResult
    @inlinable public func broadcast(_ literal: StaticString, except: Entity<SessionKind, Fields>? = nil) -> Int32 {
        host.table.pointee.room_broadcast(host.table, id, except?.id ?? 0, literal.utf8Start, literal.utf8CodeUnitCount)
    }

    /// Sends an event line built at run time to every member but `except`.
    @discardableResult
    @_disfavoredOverload
    @inlinable public func broadcast(_ line: Line, except: Entity<SessionKind, Fields>? = nil) -> Int32 {
        line.withBytes { bytes in
            host.table.pointee.room_broadcast(
                host.table, id, except?.id ?? 0, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
    }

    /// Ticks per second (1–60) of `tick`, or 0 to stop ticking.
    @discardableResult
    @inlinable public func setTickRate(_ rate: Int) -> Int32 { host.setTickRate(id, UInt32(clamping: max(rate, 0))) }

    /// Holds the room's events until its next tick: one write per member
    /// per tick instead of one per event.
    @discardableResult
    @inlinable public func setBatching(_ on: Bool) -> Int32 { host.setBatching(id, on) }
}

/// A `withIDs` that lets its body throw a `Refusal`.

@usableFromInline func withIDsThrowing<R>(_ capacity: Int, _ body: (UnsafeMutableBufferPointer<game_id>) throws(Refusal) -> R) throws(Refusal) -> R {
    let result: Result<R, Refusal> = withIDs(capacity) { ids in
        do throws(Refusal) { return .success(try body(ids)) } catch { return .failure(error) }
    }
    return try result.get()
}
