import GameABI

/// Value type of a field. Raw values are the ABI's GAME_TYPE_*.
enum FieldType: UInt32, Sendable, CustomStringConvertible {
    case int = 1
    case string = 2

    var description: String { self == .int ? "int" : "string" }
}

/// A field as a module declares it in `hotswap_describe`.
struct FieldSpec: Equatable, Sendable {
    var kind: EntityKind
    var name: String
    var type: FieldType
    var unique: Bool
    var defaultInt: Int64
    var defaultString: [UInt8]
    /// Values come from the module's `hotswap_migrate` (GAME_FIELD_MIGRATED).
    var migrated = false
}

/// Where a module's field index points in the store, resolved once per
/// load so that a field access per message is two array lookups.
struct FieldBinding: Sendable {
    let kind: EntityKind
    let type: FieldType
    let column: Int
}

/// Why a module's schema cannot be bound to the live store.
enum SchemaError: Error, CustomStringConvertible, Equatable {
    case duplicate(kind: EntityKind, name: String)
    case typeChanged(kind: EntityKind, name: String, from: FieldType, to: FieldType)
    case uniqueChanged(kind: EntityKind, name: String)
    case uniqueOnInt(String)

    var description: String {
        switch self {
        case .duplicate(let kind, let name):
            "field '\(name)' is declared twice for \(kind)"
        case .typeChanged(let kind, let name, let from, let to):
            "field \(kind).\(name) is \(from) in the store but \(to) in the module, "
                + "and the module does not migrate it (GAME_FIELD_MIGRATED and hotswap_migrate)"
        case .uniqueChanged(let kind, let name):
            "field \(kind).\(name) changes whether it is unique; declare a new field instead"
        case .uniqueOnInt(let name):
            "field '\(name)' is unique but not a string"
        }
    }
}
