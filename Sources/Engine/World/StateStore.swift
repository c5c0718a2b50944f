import GameABI

/// Every game field, owned by the engine so that it outlives any module.
///
/// Fields are stored column-wise per entity kind, one row per arena slot:
///
///     session table     name      x    y    score
///     row 0 (slot 0)   "alice"    3    4    2
///     row 1 (slot 1)   "bob"      0    7    0
///
/// A module never sees rows or columns: it names an entity by id and a field
/// by the index it declared, and the engine maps both (see `FieldBinding`).
/// Columns are found by (kind, name, type), so a module loaded later finds
/// the values an earlier one wrote. Columns are never dropped: a field a
/// newer module no longer declares stays, hidden, with its values, so a
/// rollback finds it again; a field that changes type gets a new column
/// beside the old one. A row is reset to the defaults when its entity is
/// removed, so a reused slot starts clean.
///
/// The store is a value: a reload binds and migrates a copy and keeps it
/// only if every step succeeds (copy-on-write copies just the columns the
/// migration touches).
struct StateStore: Equatable {
    /// One field's values, a row per entity slot.
    struct Column: Equatable {
        var spec: FieldSpec
        var ints: [Int64] = []
        var strings: [[UInt8]] = []
        /// value -> row, for unique string fields only.
        var index: [[UInt8]: Int]? = nil
    }

    /// One kind's columns, declared and hidden alike.
    struct Table: Equatable {
        var rows = 0
        var columns: [Column] = []
    }

    /// Indexed by `EntityKind.rawValue` (0 is unused). Readable for an
    /// engine upgrade, which hands every column over (World+Handoff.swift);
    /// only this file changes them.
    private(set) var tables: [Table] = Array(repeating: Table(), count: EntityKind.allCases.count + 1)

    init() {}

    /// A store exactly as a previous engine left it (an engine upgrade),
    /// hidden columns included, so the modules bind to the same columns and
    /// a rollback still finds dropped fields. The unique indexes are rebuilt
    /// from the values. Throws when a table contradicts itself.
    init(tables restored: [Table]) throws(HandoffError) {
        guard restored.count == tables.count else { throw .invalid("the store has \(restored.count) tables") }
        for (kind, table) in restored.enumerated() {
            guard kind > 0 || (table.rows == 0 && table.columns.isEmpty) else { throw .invalid("store table 0 is used") }
            for var column in table.columns {
                let name = "\(column.spec.kind).\(column.spec.name)"
                guard column.spec.kind.rawValue == UInt32(kind) else { throw .invalid("\(name) is in table \(kind)") }
                let rows = column.spec.type == .int ? column.ints.count : column.strings.count
                let other = column.spec.type == .int ? column.strings.count : column.ints.count
                guard rows == table.rows, other == 0 else { throw .invalid("\(name) has \(rows) rows of \(table.rows)") }
                guard !column.spec.unique || column.spec.type == .string else { throw .invalid("\(name) is unique but not a string") }
                if column.spec.unique {
                    var index: [[UInt8]: Int] = [:]
                    for (row, value) in column.strings.enumerated() where value != column.spec.defaultString {
                        guard index.updateValue(row, forKey: value) == nil else { throw .invalid("\(name) holds a value twice") }
                    }
                    column.index = index
                }
                tables[kind].columns.append(column)
            }
            tables[kind].rows = table.rows
        }
    }

    /// Resolves a module's declared fields against the store, adding the
    /// columns that do not exist yet. Nothing changes when it throws.
    ///
    /// `live` is what the serving module declares: a field it declares with
    /// another type may change type only if the new module migrates it, or
    /// on a rollback (which returns to the old column as it was).
    mutating func bind(_ specs: [FieldSpec], live: [FieldSpec] = [], rollback: Bool = false)
        throws(SchemaError) -> [FieldBinding]
    {
        var planned: [(spec: FieldSpec, column: Int?)] = []
        var seen = Set<String>()
        for spec in specs {
            guard seen.insert("\(spec.kind.rawValue):\(spec.name)").inserted else {
                throw .duplicate(kind: spec.kind, name: spec.name)
            }
            if spec.unique && spec.type != .string { throw .uniqueOnInt(spec.name) }
            let columns = tables[Int(spec.kind.rawValue)].columns
            let existing = columns.firstIndex { $0.spec.name == spec.name && $0.spec.type == spec.type }
            if let existing {
                if columns[existing].spec.unique != spec.unique {
                    throw .uniqueChanged(kind: spec.kind, name: spec.name)
                }
            }
            if !spec.migrated && !rollback,
                let serving = live.first(where: { $0.kind == spec.kind && $0.name == spec.name }),
                serving.type != spec.type
            {
                throw .typeChanged(kind: spec.kind, name: spec.name, from: serving.type, to: spec.type)
            }
            if existing == nil && !spec.migrated && !rollback,
                let other = columns.first(where: { $0.spec.name == spec.name })
            {
                // Only a hidden column of another type has this name: taking
                // it over without a migration would mean silently new values.
                throw .typeChanged(kind: spec.kind, name: spec.name, from: other.spec.type, to: spec.type)
            }
            planned.append((spec, existing))
        }
        return planned.map { spec, existing in
            let kind = Int(spec.kind.rawValue)
            let column: Int
            if let existing {
                column = existing
            } else {
                column = tables[kind].columns.count
                var fresh = Column(spec: spec)
                if spec.unique { fresh.index = [:] }
                switch spec.type {
                case .int: fresh.ints = Array(repeating: spec.defaultInt, count: tables[kind].rows)
                case .string: fresh.strings = Array(repeating: spec.defaultString, count: tables[kind].rows)
                }
                tables[kind].columns.append(fresh)
            }
            return FieldBinding(kind: spec.kind, type: spec.type, column: column)
        }
    }

    /// Grows a kind's table to at least `rows` rows, filled with defaults.
    mutating func ensureRows(_ kind: EntityKind, _ rows: Int) {
        let k = Int(kind.rawValue)
        let missing = rows - tables[k].rows
        guard missing > 0 else { return }
        for c in tables[k].columns.indices {
            let spec = tables[k].columns[c].spec
            switch spec.type {
            case .int: tables[k].columns[c].ints.append(contentsOf: repeatElement(spec.defaultInt, count: missing))
            case .string:
                tables[k].columns[c].strings.append(contentsOf: repeatElement(spec.defaultString, count: missing))
            }
        }
        tables[k].rows = rows
    }

    /// Puts every field of a row back to its default (the entity is gone).
    mutating func resetRow(_ kind: EntityKind, _ row: Int) {
        let k = Int(kind.rawValue)
        guard row < tables[k].rows else { return }
        for c in tables[k].columns.indices {
            let spec = tables[k].columns[c].spec
            switch spec.type {
            case .int: tables[k].columns[c].ints[row] = spec.defaultInt
            case .string:
                let old = tables[k].columns[c].strings[row]
                if tables[k].columns[c].index?[old] == row { tables[k].columns[c].index?[old] = nil }
                tables[k].columns[c].strings[row] = spec.defaultString
            }
        }
    }

    func int(_ field: FieldBinding, row: Int) -> Int64 {
        tables[Int(field.kind.rawValue)].columns[field.column].ints[row]
    }

    mutating func setInt(_ field: FieldBinding, row: Int, _ value: Int64) {
        tables[Int(field.kind.rawValue)].columns[field.column].ints[row] = value
    }

    /// Lends the stored bytes of a string field to `body` without copying.
    func withString<R>(_ field: FieldBinding, row: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        tables[Int(field.kind.rawValue)].columns[field.column].strings[row].withUnsafeBytes(body)
    }

    /// Stores a string; returns false when the field is unique and another
    /// row holds the same value.
    mutating func setString(_ field: FieldBinding, row: Int, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var replaced: [UInt8] = []
        return setString(field, row: row, [UInt8](bytes), replaced: &replaced)
    }

    /// Stores `value`, moving the value it replaces into `replaced` (for an
    /// undo journal: no copy); false, and nothing changed, when the field
    /// is unique and another row holds the same value.
    mutating func setString(_ field: FieldBinding, row: Int, _ value: [UInt8], replaced: inout [UInt8]) -> Bool {
        let k = Int(field.kind.rawValue)
        if tables[k].columns[field.column].index != nil {
            if let owner = tables[k].columns[field.column].index?[value], owner != row { return false }
            let old = tables[k].columns[field.column].strings[row]
            if tables[k].columns[field.column].index?[old] == row {
                tables[k].columns[field.column].index?[old] = nil
            }
            // The default (usually "") is shared by every fresh row: not indexed.
            if value != tables[k].columns[field.column].spec.defaultString {
                tables[k].columns[field.column].index?[value] = row
            }
        }
        swap(&tables[k].columns[field.column].strings[row], &replaced)
        tables[k].columns[field.column].strings[row] = value
        return true
    }

    /// The row holding `bytes` in a unique string field.
    func row(_ field: FieldBinding, holding bytes: UnsafeRawBufferPointer) -> Int? {
        tables[Int(field.kind.rawValue)].columns[field.column].index?[[UInt8](bytes)]
    }

    /// Whether the field is indexed for lookups.
    func isUnique(_ field: FieldBinding) -> Bool {
        tables[Int(field.kind.rawValue)].columns[field.column].index != nil
    }

    /// The declared field names per kind, for status output.
    func fieldNames(_ kind: EntityKind) -> [String] {
        tables[Int(kind.rawValue)].columns.map { "\($0.spec.name):\($0.spec.type)" }
    }

    /// The column holding `kind.name` with `type`, if any module declared it.
    func binding(kind: EntityKind, name: UnsafeRawBufferPointer, type: FieldType) -> FieldBinding? {
        let columns = tables[Int(kind.rawValue)].columns
        guard let column = columns.firstIndex(where: {
            $0.spec.type == type && $0.spec.name.utf8.elementsEqual(name)
        }) else { return nil }
        return FieldBinding(kind: kind, type: type, column: column)
    }

    // MARK: - Staged migration (LogicHost/StagedMigration.swift)

    /// Rows in a kind's table.
    func rowCount(_ kind: EntityKind) -> Int { tables[Int(kind.rawValue)].rows }

    /// Whether a column of `kind` keeps a unique index. Such a table is not
    /// merged row by row (two rows could end up holding one value), so its
    /// migration is not staged.
    func hasUniqueColumn(_ kind: EntityKind) -> Bool {
        tables[Int(kind.rawValue)].columns.contains { $0.index != nil }
    }

    /// Takes `kind`'s table from `staged` (a copy of this store that a
    /// migration wrote while the game went on), except for the rows in
    /// `liveRows`, which the game changed meanwhile: those keep this
    /// store's values in the first `liveColumns` columns and get the
    /// defaults in the columns after them (the new ones), to be migrated
    /// again. Both stores must have the same columns (the caller checks),
    /// and `staged` no more rows than this one. Whole columns move, not
    /// values: the cost is the rows in `liveRows`, not the table.
    mutating func adoptTable(_ kind: EntityKind, from staged: inout StateStore, keeping liveRows: [Int], liveColumns: Int) {
        let k = Int(kind.rawValue)
        let live = tables[k]
        tables[k] = staged.tables[k]
        // Only this store holds the staged columns now: writing a row below
        // does not copy a whole column.
        staged = StateStore()
        ensureRows(kind, live.rows)
        for row in liveRows where row < live.rows {
            for c in tables[k].columns.indices {
                let spec = tables[k].columns[c].spec
                // Compared first: a column neither side wrote is still
                // shared with `live`, and writing an equal value would copy it.
                switch spec.type {
                case .int:
                    let value = c < liveColumns ? live.columns[c].ints[row] : spec.defaultInt
                    if tables[k].columns[c].ints[row] != value { tables[k].columns[c].ints[row] = value }
                case .string:
                    let value = c < liveColumns ? live.columns[c].strings[row] : spec.defaultString
                    if tables[k].columns[c].strings[row] != value { tables[k].columns[c].strings[row] = value }
                }
            }
        }
    }

    // MARK: - Persistence (see Persistence/)

    /// Every column of a kind, hidden ones included, in column order: the
    /// shape the database mirrors.
    func columnSpecs(_ kind: EntityKind) -> [FieldSpec] {
        tables[Int(kind.rawValue)].columns.map(\.spec)
    }

    /// One stored value, for a flush.
    func storedValue(_ kind: EntityKind, column: Int, row: Int) -> StoredValue {
        let c = tables[Int(kind.rawValue)].columns[column]
        switch c.spec.type {
        case .int: return .int(c.ints[row])
        case .string: return .string(c.strings[row])
        }
    }

    /// Adds a column read back from the database before any module binds
    /// (it may be hidden: a field an earlier module declared). Returns its
    /// index; an existing (name, type) column is reused.
    mutating func addStoredColumn(_ spec: FieldSpec) -> Int {
        let k = Int(spec.kind.rawValue)
        if let existing = tables[k].columns.firstIndex(where: { $0.spec.name == spec.name && $0.spec.type == spec.type }) {
            return existing
        }
        var fresh = Column(spec: spec)
        if spec.unique { fresh.index = [:] }
        switch spec.type {
        case .int: fresh.ints = Array(repeating: spec.defaultInt, count: tables[k].rows)
        case .string: fresh.strings = Array(repeating: spec.defaultString, count: tables[k].rows)
        }
        tables[k].columns.append(fresh)
        return tables[k].columns.count - 1
    }

    /// Puts a value read from the database into a row; a value of the wrong
    /// type (a file edited by hand) is ignored and the row keeps its default.
    mutating func setStoredValue(_ kind: EntityKind, column: Int, row: Int, _ value: StoredValue) {
        let k = Int(kind.rawValue)
        switch (tables[k].columns[column].spec.type, value) {
        case (.int, .int(let v)):
            tables[k].columns[column].ints[row] = v
        case (.string, .string(let bytes)):
            var replaced: [UInt8] = []
            _ = setString(FieldBinding(kind: kind, type: .string, column: column), row: row, bytes, replaced: &replaced)
        default:
            break
        }
    }
}
