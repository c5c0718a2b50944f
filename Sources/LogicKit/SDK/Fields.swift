import Protocol
import GameABI

/// Which entity a field belongs to, as a type, so a session field cannot be
/// read from a room by mistake: it does not compile.
public protocol EntityKind { static var raw: Int32 { get } }
/// Lives while the connection's session does (or a RESUME brings it back).
public enum SessionKind: EntityKind { public static var raw: Int32 { GAME_KIND_SESSION } }
/// Lives while the room has members.
public enum RoomKind: EntityKind { public static var raw: Int32 { GAME_KIND_ROOM } }
/// Durable: stored by the engine under the player's key, kept across
/// logouts, restarts and kill -9.
public enum PlayerKind: EntityKind { public static var raw: Int32 { GAME_KIND_PLAYER } }
/// One per server (`GAME_GLOBAL_ID`).
public enum GlobalKind: EntityKind { public static var raw: Int32 { GAME_KIND_GLOBAL } }

/// A typed handle on one declared field: where its value lives in the
/// engine (its index in the declaration order) and its name.
public struct Field<Kind: EntityKind, Value: FieldValue>: Sendable {
    public let index: Int32
    public let name: StaticString

    @usableFromInline init(index: Int32, name: StaticString) {
        self.index = index
        self.name = name
    }
}

/// A field of every session.
public typealias SessionField<Value: FieldValue> = Field<SessionKind, Value>
/// A field of every room.
public typealias RoomField<Value: FieldValue> = Field<RoomKind, Value>
/// A field of every durable player (stored by the engine).
public typealias PlayerField<Value: FieldValue> = Field<PlayerKind, Value>
/// A field of the one global entity (stored by the engine).
public typealias GlobalField<Value: FieldValue> = Field<GlobalKind, Value>

/// A type a field can hold: `Int` and `Bool` (stored as int64) or `String`.
public protocol FieldValue {
    @inlinable static var abiType: UInt32 { get }
    /// The value read from the engine (the type's zero when it cannot be).
    @inlinable static func read(_ host: Host, _ entity: game_id, _ index: Int32) -> Self
    @inlinable static func write(_ host: Host, _ entity: game_id, _ index: Int32, _ value: Self) -> Int32
    /// Through a migration's view of the outgoing module (by field name).
    @inlinable static func readOld(_ migration: UnsafePointer<game_migration>, _ entity: game_id, _ name: StaticString) -> Self?
}

extension Int: FieldValue {
    @inlinable public static var abiType: UInt32 { UInt32(GAME_TYPE_INT) }
    @inlinable public static func read(_ host: Host, _ entity: game_id, _ index: Int32) -> Int {
        Int(host.int(entity, index) ?? 0)
    }
    @inlinable public static func write(_ host: Host, _ entity: game_id, _ index: Int32, _ value: Int) -> Int32 {
        host.setInt(entity, index, Int64(value))
    }
    @inlinable public static func readOld(_ m: UnsafePointer<game_migration>, _ entity: game_id, _ name: StaticString) -> Int? {
        var value: Int64 = 0
        let status = m.pointee.old_get_int(m, entity, name.utf8Start, name.utf8CodeUnitCount, &value)
        return status == GAME_OK ? Int(value) : nil
    }
}

extension Bool: FieldValue {
    @inlinable public static var abiType: UInt32 { UInt32(GAME_TYPE_INT) }
    @inlinable public static func read(_ host: Host, _ entity: game_id, _ index: Int32) -> Bool {
        (host.int(entity, index) ?? 0) != 0
    }
    @inlinable public static func write(_ host: Host, _ entity: game_id, _ index: Int32, _ value: Bool) -> Int32 {
        host.setInt(entity, index, value ? 1 : 0)
    }
    @inlinable public static func readOld(_ m: UnsafePointer<game_migration>, _ entity: game_id, _ name: StaticString) -> Bool? {
        Int.readOld(m, entity, name).map { $0 != 0 }
    }
}

extension String: FieldValue {
    @inlinable public static var abiType: UInt32 { UInt32(GAME_TYPE_STRING) }
    /// Allocates past 15 bytes; `FieldText` (`me.text(\.name)`) reads into a
    /// line without a `String`.
    @inlinable public static func read(_ host: Host, _ entity: game_id, _ index: Int32) -> String {
        withScratch(Int(GAME_MAX_STRING)) { buffer in
            host.string(entity, index, into: buffer).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }
    @inlinable public static func write(_ host: Host, _ entity: game_id, _ index: Int32, _ value: String) -> Int32 {
        var copy = value
        return copy.withUTF8 { host.setString(entity, index, UnsafeRawBufferPointer($0)) }
    }
    @inlinable public static func readOld(_ m: UnsafePointer<game_migration>, _ entity: game_id, _ name: StaticString) -> String? {
        withScratch(Int(GAME_MAX_STRING)) { buffer in
            var length = 0
            let status = m.pointee.old_get_string(
                m, entity, name.utf8Start, name.utf8CodeUnitCount,
                buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), buffer.count, &length)
            guard status == GAME_OK else { return nil }
            return String(decoding: UnsafeRawBufferPointer(rebasing: buffer[0..<Swift.min(length, buffer.count)]), as: UTF8.self)
        }
    }
}

/// A game's fields, declared once: each stored property is a typed handle,
/// made in `init(_:)` by the schema in declaration order.
///
///     struct Fields: FieldSet {
///         let name: SessionField<String>
///         let score: PlayerField<Int>
///         init(_ s: inout Schema) {
///             name = s.field("name", unique: true)
///             score = s.field("score")
///         }
///     }
///
/// The order of the `s.field` calls is the order the engine knows the
/// fields by: **append new fields at the end**; a field removed is simply
/// no longer declared (the engine keeps its values for a ROLLBACK). The set
/// is rebuilt for every call (a few integer increments, nothing allocated),
/// so no state is kept between calls.
public protocol FieldSet {
    @inlinable init(_ schema: inout Schema)
}

/// Hands out field handles in declaration order, and in `hotswap_describe`
/// also declares each field to the engine.
///
/// On every other call it only counts: one integer and no reference, so
/// building a game's `Fields` folds to constants in its module.
@frozen
public struct Schema {
    @usableFromInline var next: Int32 = 0
    /// Set only in `hotswap_describe`.
    @usableFromInline let describing: UnsafeMutablePointer<Describing>?

    @inlinable init(describing: UnsafeMutablePointer<Describing>?) {
        self.describing = describing
    }

    /// An int field (`Int` or `Bool`). `migrated`: its values are computed
    /// by a migration from the outgoing module's (a retype must say so).
    @inlinable @inline(__always) public mutating func field<Kind: EntityKind, Value: FieldValue>(
        _ name: StaticString, default value: Int = 0, migrated: Bool = false
    ) -> Field<Kind, Value> where Value: BinaryIntegerLikeFieldValue {
        let index = next
        next += 1
        if let describing {
            describing.pointee.declare(index, Kind.raw, UInt32(GAME_TYPE_INT), migrated ? GAME_FIELD_MIGRATED : 0, name,
                                       Int64(value), "")
        }
        return Field(index: index, name: name)
    }

    /// A string field. `unique`: no two live entities of its kind hold the
    /// same value (the engine refuses the second), and `find` looks it up.
    @inlinable @inline(__always) public mutating func field<Kind: EntityKind>(
        _ name: StaticString, default value: StaticString = "", unique: Bool = false, migrated: Bool = false
    ) -> Field<Kind, String> {
        let index = next
        next += 1
        if let describing {
            let flags = (unique ? GAME_FIELD_UNIQUE : 0) | (migrated ? GAME_FIELD_MIGRATED : 0)
            describing.pointee.declare(index, Kind.raw, UInt32(GAME_TYPE_STRING), flags, name, 0, value)
        }
        return Field(index: index, name: name)
    }
}

/// What `hotswap_describe` needs while the fields are declared.
@usableFromInline
struct Describing {
    /// Nil when the fields are only listed (`declared`), for a rollback.
    @usableFromInline let describer: UnsafePointer<game_describer>?
    /// Fields a migration computes (flagged GAME_FIELD_MIGRATED).
    @usableFromInline let computed: [Int32]
    /// The first error, if any.
    @usableFromInline var status: Int32 = GAME_OK
    /// Every field declared: kind, name, GAME_TYPE_*.
    @usableFromInline var declared: [(kind: Int32, name: StaticString, type: UInt32)] = []

    @inlinable init(describer: UnsafePointer<game_describer>?, computed: [Int32]) {
        self.describer = describer
        self.computed = computed
    }

    // Not inlinable: it runs once per load, and inlined it would keep
    // `field` too big to fold into the game's `Fields.init`.
    @usableFromInline mutating func declare(_ index: Int32, _ kind: Int32, _ type: UInt32, _ flags: UInt32,
                                     _ name: StaticString, _ defaultInt: Int64, _ defaultString: StaticString) {
        declared.append((kind, name, type))
        guard status == GAME_OK, let describer else { return }
        let flags = computed.contains(index) ? flags | GAME_FIELD_MIGRATED : flags
        let given = describer.pointee.field(describer, UInt32(kind), type, flags, name.utf8Start, name.utf8CodeUnitCount,
                                            defaultInt, defaultString.utf8Start, defaultString.utf8CodeUnitCount)
        if given < 0 { status = given } else if given != index { status = GAME_ERR_STATE }
    }
}

/// `Int` and `Bool`: the field values stored as int64.
public protocol BinaryIntegerLikeFieldValue: FieldValue {}
extension Int: BinaryIntegerLikeFieldValue {}
extension Bool: BinaryIntegerLikeFieldValue {}
