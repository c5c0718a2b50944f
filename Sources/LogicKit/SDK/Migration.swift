import GameABI
import Protocol

/// A change to the game's fields between two versions, written in Swift
/// and reversible, after Erlang's `code_change` (up, and `{down, Vsn}`).
///
///     static let migrations: [Migration<Gems>] = [
///         .rename("points", to: \.score),
///         .retype(\.board, from: Int.self, up: { old in String(old) }, down: { new in Int(new) ?? 0 }),
///         .drop("legacy"),
///     ]
///
/// Each step says what it changes, so the list may keep the game's history
/// (within limits: steps are typed by this version's fields, so a field
/// renamed or retyped twice keeps only its latest step).
///
/// - **RELOAD** (`hotswap_migrate`) runs, once per entity of the field's
///   kind, each step whose old shape the outgoing module declares (ABI 1.5
///   `old_field_type`: a field by that name and type, not a column kept
///   hidden from an older version). Fields that kept their name and type
///   are carried by the engine; a retyped field is flagged for it
///   automatically.
/// - **ROLLBACK** from this version (`hotswap_migrate_down`) runs backwards
///   each step whose old shape the version being restored declares. When a
///   field this version declares with another type than the restored one
///   is not converted back by such a step (a retype without `down:`, or the
///   second of two ROLLBACKs, which goes forward again), the hook declines
///   (GAME_ERR_NOT_FOUND, ABI 1.5) and the engine decides as for a module
///   without one: it refuses, naming the field. Otherwise it answers
///   GAME_OK, and the engine binds the rest by name and type: a field the
///   restored version declares and this one neither declares nor renames
///   comes back with the value it was left with (a `.drop`ped field, but
///   also, going forward again, a field the newer version renamed).
// Immutable after it is made: closures over key paths (immutable class
// instances the compiler cannot prove Sendable), so a game can keep its
// migrations in a `static let`.
public struct Migration<G: Game>: @unchecked Sendable {
    public typealias Hook = (UnsafePointer<game_migration>, game_id, Context<G>) -> Int32
    @usableFromInline let kind: Int32
    /// The field (index in this version's schema) a retype computes.
    @usableFromInline let computes: (G.Fields) -> Int32?
    @usableFromInline let up: Hook
    /// Whether the schema being restored has this step's old shape.
    @usableFromInline let appliesDown: (Context<G>) -> Bool
    @usableFromInline let down: Hook?

    @usableFromInline init(kind: Int32, computes: @escaping (G.Fields) -> Int32?, up: @escaping Hook,
                           appliesDown: @escaping (Context<G>) -> Bool, down: Hook?) {
        self.kind = kind
        self.computes = computes
        self.up = up
        self.appliesDown = appliesDown
        self.down = down
    }

    /// The field called `old` (same kind and type) is now `field`.
    @inlinable public static func rename<K, V: FieldValue>(_ old: StaticString, to field: KeyPath<G.Fields, Field<K, V>>)
        -> Migration
    {
        Migration(
            kind: K.raw, computes: { _ in nil },
            up: { m, entity, c in
                // Only from a version that declared `old` and not yet the new
                // name (old_get_* would also read a column kept hidden).
                let name = c.fields[keyPath: field].name
                guard oldFieldType(m, K.raw, old) == V.abiType, oldFieldType(m, K.raw, name) == nil,
                    let value = V.readOld(m, entity, old) else { return GAME_OK }
                return V.write(c.host, entity, c.fields[keyPath: field].index, value)
            },
            appliesDown: { c in
                c.host.fieldIndex(kind: K.raw, old)?.type == V.abiType
                    && c.host.fieldIndex(kind: K.raw, c.fields[keyPath: field].name) == nil
            },
            down: { m, entity, c in
                let name = c.fields[keyPath: field].name
                guard let value = V.readOld(m, entity, name), let target = c.host.fieldIndex(kind: K.raw, old) else {
                    return GAME_OK
                }
                return V.write(c.host, entity, target.index, value)
            })
    }

    /// `field` keeps its name but changes type: `up` converts the old
    /// value, `down` (for ROLLBACK) converts back. Without `down`, a
    /// rollback to the version before is refused rather than bringing back
    /// the value from before the upgrade beside everything written since.
    @inlinable public static func retype<K, Old: FieldValue, New: FieldValue>(
        _ field: KeyPath<G.Fields, Field<K, New>>, from: Old.Type, up: @escaping (Old) -> New,
        down: ((New) -> Old)? = nil
    ) -> Migration {
        Migration(
            kind: K.raw, computes: { $0[keyPath: field].index },
            up: { m, entity, c in
                let name = c.fields[keyPath: field].name
                guard oldFieldType(m, K.raw, name) == Old.abiType, Old.abiType != New.abiType,
                    let old = Old.readOld(m, entity, name) else { return GAME_OK }
                return New.write(c.host, entity, c.fields[keyPath: field].index, up(old))
            },
            appliesDown: { c in
                Old.abiType != New.abiType
                    && c.host.fieldIndex(kind: K.raw, c.fields[keyPath: field].name)?.type == Old.abiType
            },
            down: down.map { down in
                { m, entity, c in
                    let name = c.fields[keyPath: field].name
                    guard let new = New.readOld(m, entity, name), let target = c.host.fieldIndex(kind: K.raw, name) else {
                        return GAME_OK
                    }
                    return Old.write(c.host, entity, target.index, down(new))
                }
            })
    }

    /// The field called `old` is no longer declared. Nothing to do either
    /// way: the engine keeps its values hidden, and a ROLLBACK brings them
    /// back. Listed so the history reads whole.
    @inlinable public static func drop(_ old: StaticString) -> Migration {
        Migration(kind: 0, computes: { _ in nil }, up: { _, _, _ in GAME_OK }, appliesDown: { _ in false },
                  down: { _, _, _ in GAME_OK })
    }

    /// The GAME_TYPE_* of a field the outgoing module declares (ABI 1.5
    /// `old_field_type`), or nil.
    @inlinable static func oldFieldType(_ m: UnsafePointer<game_migration>, _ kind: Int32, _ name: StaticString) -> UInt32? {
        let needed = MemoryLayout<game_migration>.offset(of: \.old_field_type)! + MemoryLayout<Int>.size
        guard Int(m.pointee.size) >= needed else { return nil }
        let type = m.pointee.old_field_type(m, UInt32(kind), name.utf8Start, name.utf8CodeUnitCount)
        return type > 0 ? UInt32(type) : nil
    }

    /// Runs every step that applies to `entity` (hotswap_migrate and
    /// hotswap_migrate_down; see the type's comment).
    @inlinable static func run(_ steps: [Migration], up: Bool, _ m: UnsafePointer<game_migration>, _ entity: game_id,
                               _ c: Context<G>) -> Int32 {
        let kind = Int32(truncatingIfNeeded: entity >> 56)
        if up {
            for step in steps where step.kind == kind {
                let status = step.up(m, entity, c)
                guard status == GAME_OK else { return status }
            }
            return GAME_OK
        }
        let applying = steps.filter { $0.appliesDown(c) }
        // Whether to go back at all is decided once, at the first call
        // (the global entity's), the only one whose GAME_ERR_NOT_FOUND the
        // engine takes as declining.
        if entity == GAME_GLOBAL_ID {
            guard applying.allSatisfy({ $0.down != nil }), coversEveryRetype(applying, c) else { return GAME_ERR_NOT_FOUND }
        }
        for step in applying.reversed() where step.kind == kind {
            guard let down = step.down else { return GAME_ERR_STATE }
            let status = down(m, entity, c)
            guard status == GAME_OK else { return status }
        }
        return GAME_OK
    }

    /// Whether every field of this version that the restored one declares
    /// with another type is converted by one of `applying` (otherwise the
    /// hook declines, and the engine refuses naming the field).
    @inlinable static func coversEveryRetype(_ applying: [Migration], _ c: Context<G>) -> Bool {
        var describing = Describing(describer: nil, computed: [])
        withUnsafeMutablePointer(to: &describing) { pointer in
            var schema = Schema(describing: pointer)
            _ = G.Fields(&schema)
        }
        let converted = Set(applying.compactMap { $0.computes(c.fields) })
        var index: Int32 = 0
        for field in describing.declared {
            defer { index += 1 }
            guard let target = c.host.fieldIndex(kind: field.kind, field.name), target.type != field.type else { continue }
            if !converted.contains(index) { return false }
        }
        return true
    }
}
