import GameABI

/// A change to the game's fields between two versions, written in Swift
/// and reversible, after Erlang's `code_change` (up, and `{down, Vsn}`).
///
///     static let migrations: [Migration<Gems>] = [
///         .rename("points", to: \.score),
///         .retype(\.board, from: Int.self, up: { old in String(old) }, down: { new in Int(new) ?? 0 }),
///         .drop("legacy"),
///     ]
///
/// RELOAD runs each step whose old shape the outgoing module had (a field
/// by that name and type), once per entity of the field's kind; fields
/// that kept their name and type are carried by the engine. ROLLBACK from
/// this version runs the steps backwards (`hotswap_migrate_down`); a step
/// without a way back (a retype without `down`) refuses the rollback, and
/// the operator reads why. A retyped field is flagged for the engine
/// automatically.
// Immutable after it is made: closures over key paths (immutable class
// instances the compiler cannot prove Sendable), so a game can keep its
// migrations in a `static let`.
public struct Migration<G: Game>: @unchecked Sendable {
    let kind: Int32
    /// The field (index in this version's schema) a retype computes.
    let computes: (G.Fields) -> Int32?
    let up: (UnsafePointer<game_migration>, game_id, Context<G>) -> Int32
    let down: ((UnsafePointer<game_migration>, game_id, Context<G>) -> Int32)?

    /// The field called `old` (same kind and type) is now `field`.
    public static func rename<K, V: FieldValue>(_ old: StaticString, to field: KeyPath<G.Fields, Field<K, V>>) -> Migration {
        Migration(
            kind: K.raw, computes: { _ in nil },
            up: { m, entity, c in
                guard let value = V.readOld(m, entity, old) else { return GAME_OK }
                return V.write(c.host, entity, c.fields[keyPath: field].index, value)
            },
            down: { m, entity, c in
                let name = c.fields[keyPath: field].name
                guard let value = V.readOld(m, entity, name) else { return GAME_OK }
                guard let index = c.host.fieldIndex(kind: K.raw, old) else { return GAME_OK }
                return V.write(c.host, entity, index, value)
            })
    }

    /// `field` keeps its name but changes type: `up` converts the old
    /// value, `down` (for ROLLBACK) converts back. Without `down`, a
    /// rollback from this version is refused rather than bringing back the
    /// value from before the upgrade beside everything written since.
    public static func retype<K, Old: FieldValue, New: FieldValue>(
        _ field: KeyPath<G.Fields, Field<K, New>>, from: Old.Type, up: @escaping (Old) -> New,
        down: ((New) -> Old)? = nil
    ) -> Migration {
        Migration(
            kind: K.raw, computes: { $0[keyPath: field].index },
            up: { m, entity, c in
                let name = c.fields[keyPath: field].name
                guard let old = Old.readOld(m, entity, name) else { return GAME_OK }
                return New.write(c.host, entity, c.fields[keyPath: field].index, up(old))
            },
            down: down.map { down in
                { m, entity, c in
                    let name = c.fields[keyPath: field].name
                    guard let new = New.readOld(m, entity, name),
                        let index = c.host.fieldIndex(kind: K.raw, name) else { return GAME_OK }
                    return Old.write(c.host, entity, index, down(new))
                }
            })
    }

    /// The field called `old` is no longer declared. Nothing to do either
    /// way: the engine keeps its values hidden, and a ROLLBACK brings them
    /// back. Listed so the history reads whole.
    public static func drop(_ old: StaticString) -> Migration {
        Migration(kind: 0, computes: { _ in nil }, up: { _, _, _ in GAME_OK }, down: { _, _, _ in GAME_OK })
    }

    /// Anything else, per entity of kind `K`: `up` and `down` read the
    /// other version's values through the migration (`old(...)`) and write
    /// through the context.
    public static func custom<K: EntityKind>(
        _ kind: K.Type, up: @escaping (MigrationStep<G>) -> Int32, down: ((MigrationStep<G>) -> Int32)? = nil
    ) -> Migration {
        Migration(
            kind: K.raw, computes: { _ in nil },
            up: { m, entity, c in up(MigrationStep(migration: m, entity: entity, context: c)) },
            down: down.map { down in { m, entity, c in down(MigrationStep(migration: m, entity: entity, context: c)) } })
    }

    /// Runs every step that applies to `entity` (hotswap_migrate and
    /// hotswap_migrate_down).
    static func run(_ steps: [Migration], up: Bool, _ m: UnsafePointer<game_migration>, _ entity: game_id,
                    _ c: Context<G>) -> Int32 {
        let kind = Int32(truncatingIfNeeded: entity >> 56)
        let ordered: [Migration] = up ? steps : steps.reversed()
        for step in ordered where step.kind == kind {
            if up {
                let status = step.up(m, entity, c)
                guard status == GAME_OK else { return status }
            } else {
                guard let down = step.down else {
                    c.host.log(GAME_LOG_ERROR, "a migration step has no way back (a retype without down:); refusing the rollback")
                    return GAME_ERR_STATE
                }
                let status = down(m, entity, c)
                guard status == GAME_OK else { return status }
            }
        }
        return GAME_OK
    }
}

/// One entity in a custom migration step.
public struct MigrationStep<G: Game> {
    let migration: UnsafePointer<game_migration>
    public let entity: game_id
    /// Writes go to the version being migrated to.
    public let context: Context<G>

    /// The other version's value of `name` (nil when it had no such field
    /// of that type).
    public func old<V: FieldValue>(_ name: StaticString, as type: V.Type = V.self) -> V? {
        V.readOld(migration, entity, name)
    }

    /// The version migrated from.
    public var fromVersion: String {
        String(decoding: UnsafeRawBufferPointer(start: migration.pointee.from_version,
                                                count: migration.pointee.from_version_length), as: UTF8.self)
    }
}
