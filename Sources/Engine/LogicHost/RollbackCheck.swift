/// Whether a ROLLBACK may bind the previous module's fields back as they
/// are, or needs the serving module's `hotswap_migrate_down` (ABI 1.5).
///
/// Fields are bound by name and type, and columns are never dropped. A
/// field the serving module dropped was kept hidden and comes back with
/// its value, one it added stays behind, hidden: neither needs a hook. A
/// field it RETYPED is the problem: the previous module's column of the
/// old type was last written before the upgrade, while every other field
/// moved on, so binding it back would mix two points in time (a game in
/// progress would come back inconsistent, and ROLLBACK would say OK). A
/// field it computed in its `hotswap_migrate` (GAME_FIELD_MIGRATED) under
/// a name and type the previous module declares is the same column, but
/// now holds values in the newer module's terms.
///
/// Only the newer module knows how to turn its values back, so such a
/// rollback goes through its `hotswap_migrate_down` or is refused, with
/// the field named. The fault policy's automatic rollback asks here too.
enum RollbackCheck {
    /// A field a rollback would bring back from another point in time.
    struct Mixed: Sendable, Equatable, CustomStringConvertible {
        enum Change: Sendable, Equatable {
            /// The serving module declares it with another type.
            case retyped
            /// The serving module computes it (GAME_FIELD_MIGRATED).
            case migrated
        }

        let servingName: String
        let servingVersion: String
        let previousName: String
        let previousVersion: String
        let field: String
        let change: Change
        /// The serving module has hotswap_migrate_down, which declined.
        var hookDeclined = false

        func declined() -> Mixed {
            var copy = self
            copy.hookDeclined = true
            return copy
        }

        var description: String {
            let serving = "\(servingName) \(servingVersion)"
            let previous = "\(previousName) \(previousVersion)"
            let why: String
            let noHook = hookDeclined
                ? "its hotswap_migrate_down has no way back to \(previous)"
                : "exports no hotswap_migrate_down"
            switch change {
            case .retyped:
                why = "\(serving) retyped field '\(field)' and \(noHook); going back would mix "
                    + "the \(field) from before the upgrade with everything written since"
            case .migrated:
                why = "\(serving) computes field '\(field)' in its hotswap_migrate (GAME_FIELD_MIGRATED) and \(noHook); "
                    + "going back would hand \(previous) the \(field) in \(serving)'s terms"
            }
            return "cannot roll back \(serving) -> \(previous): \(why)"
        }
    }

    /// The first field `previous` declares (in its order) that `serving`
    /// retyped or migrated, or nil when going back mixes nothing. Whether
    /// `serving` exports `hotswap_migrate_down` is the caller's question.
    static func mixedField(serving: LoadedModule, previous: LoadedModule) -> Mixed? {
        for field in previous.fields {
            guard let newer = serving.fields.first(where: { $0.kind == field.kind && $0.name == field.name }) else {
                continue  // dropped by the newer module: kept, hidden, with its value
            }
            let change: Mixed.Change
            if newer.type != field.type {
                change = .retyped
            } else if newer.migrated {
                change = .migrated
            } else {
                continue
            }
            return Mixed(servingName: serving.name, servingVersion: serving.version, previousName: previous.name,
                         previousVersion: previous.version, field: field.name, change: change)
        }
        return nil
    }
}
