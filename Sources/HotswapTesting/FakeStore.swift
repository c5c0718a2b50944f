import GameABI

/// A field as a module declares it in `hotswap_describe`.
struct FakeFieldSpec: Equatable {
    var kind: UInt32
    var name: String
    var type: UInt32
    var unique: Bool
    var migrated: Bool
    var defaultInt: Int64
    var defaultString: [UInt8]
}

/// Where a module's field index points in the store.
struct FakeBinding: Equatable {
    let kind: UInt32
    let type: UInt32
    let column: Int
}

/// Every game field, column-wise per entity kind with a row per arena slot,
/// like the engine's StateStore: columns are found by (kind, name, type) and
/// never dropped (a field a newer module no longer declares stays hidden
/// with its values for a rollback; a retyped field gets a new column beside
/// the old one). A value type: a snapshot is a copy.
struct FakeStore: Equatable {
    struct Column: Equatable {
        var spec: FakeFieldSpec
        var ints: [Int64] = []
        var strings: [[UInt8]] = []
        /// value -> row, unique string fields only (the default is not indexed).
        var index: [[UInt8]: Int]? = nil
    }

    struct Table: Equatable {
        var rows = 0
        var columns: [Column] = []
    }

    /// By GAME_KIND_* (0 unused).
    var tables: [Table] = Array(repeating: Table(), count: 5)

    /// Resolves declared fields against the store, adding missing columns;
    /// `live` is what the serving module declares (a retyped field needs
    /// GAME_FIELD_MIGRATED, except on a rollback). Nothing changes when it throws.
    mutating func bind(_ specs: [FakeFieldSpec], live: [FakeFieldSpec], rollback: Bool) throws(FakeHostError) -> [FakeBinding] {
        var planned: [(FakeFieldSpec, Int?)] = []
        var seen = Set<String>()
        for spec in specs {
            guard seen.insert("\(spec.kind):\(spec.name)").inserted else {
                throw FakeHostError("field '\(spec.name)' is declared twice for kind \(spec.kind)")
            }
            if spec.unique && spec.type != UInt32(GAME_TYPE_STRING) { throw FakeHostError("field '\(spec.name)' is unique but not a string") }
            let columns = tables[Int(spec.kind)].columns
            let existing = columns.firstIndex { $0.spec.name == spec.name && $0.spec.type == spec.type }
            if let existing, columns[existing].spec.unique != spec.unique {
                throw FakeHostError("field '\(spec.name)' changes whether it is unique; declare a new field instead")
            }
            if !spec.migrated && !rollback,
                let serving = live.first(where: { $0.kind == spec.kind && $0.name == spec.name }), serving.type != spec.type
            {
                throw FakeHostError("field '\(spec.name)' changes type and the module does not migrate it (GAME_FIELD_MIGRATED and hotswap_migrate)")
            }
            if existing == nil && !spec.migrated && !rollback, columns.contains(where: { $0.spec.name == spec.name }) {
                throw FakeHostError("field '\(spec.name)' takes over a hidden column of another type without migrating it")
            }
            planned.append((spec, existing))
        }
        return planned.map { spec, existing in
            let kind = Int(spec.kind)
            if let existing { return FakeBinding(kind: spec.kind, type: spec.type, column: existing) }
            var fresh = Column(spec: spec)
            if spec.unique { fresh.index = [:] }
            if spec.type == UInt32(GAME_TYPE_INT) {
                fresh.ints = Array(repeating: spec.defaultInt, count: tables[kind].rows)
            } else {
                fresh.strings = Array(repeating: spec.defaultString, count: tables[kind].rows)
            }
            tables[kind].columns.append(fresh)
            return FakeBinding(kind: spec.kind, type: spec.type, column: tables[kind].columns.count - 1)
        }
    }

    /// The column of a field by kind, name and type (declared or hidden).
    func binding(kind: UInt32, name: String, type: UInt32) -> FakeBinding? {
        tables[Int(kind)].columns.firstIndex { $0.spec.name == name && $0.spec.type == type }
            .map { FakeBinding(kind: kind, type: type, column: $0) }
    }

    func rowCount(_ kind: UInt32) -> Int { tables[Int(kind)].rows }

    mutating func ensureRows(_ kind: UInt32, _ rows: Int) {
        let k = Int(kind)
        let missing = rows - tables[k].rows
        guard missing > 0 else { return }
        for c in tables[k].columns.indices {
            let spec = tables[k].columns[c].spec
            if spec.type == UInt32(GAME_TYPE_INT) {
                tables[k].columns[c].ints += repeatElement(spec.defaultInt, count: missing)
            } else {
                tables[k].columns[c].strings += repeatElement(spec.defaultString, count: missing)
            }
        }
        tables[k].rows = rows
    }

    /// Back to the defaults: the row's entity is gone.
    mutating func resetRow(_ kind: UInt32, _ row: Int) {
        let k = Int(kind)
        guard row < tables[k].rows else { return }
        for c in tables[k].columns.indices {
            let spec = tables[k].columns[c].spec
            if spec.type == UInt32(GAME_TYPE_INT) {
                tables[k].columns[c].ints[row] = spec.defaultInt
            } else {
                let old = tables[k].columns[c].strings[row]
                if tables[k].columns[c].index?[old] == row { tables[k].columns[c].index?[old] = nil }
                tables[k].columns[c].strings[row] = spec.defaultString
            }
        }
    }

    /// Drops every row of a kind (a restart: sessions and rooms are not kept).
    mutating func clearRows(_ kind: UInt32) {
        let k = Int(kind)
        for c in tables[k].columns.indices {
            tables[k].columns[c].ints.removeAll()
            tables[k].columns[c].strings.removeAll()
            if tables[k].columns[c].index != nil { tables[k].columns[c].index = [:] }
        }
        tables[k].rows = 0
    }

    func int(_ b: FakeBinding, row: Int) -> Int64 { tables[Int(b.kind)].columns[b.column].ints[row] }

    mutating func setInt(_ b: FakeBinding, row: Int, _ value: Int64) {
        tables[Int(b.kind)].columns[b.column].ints[row] = value
    }

    func string(_ b: FakeBinding, row: Int) -> [UInt8] { tables[Int(b.kind)].columns[b.column].strings[row] }

    /// False, changing nothing, when the field is unique and another row holds `value`.
    mutating func setString(_ b: FakeBinding, row: Int, _ value: [UInt8]) -> Bool {
        let k = Int(b.kind)
        if tables[k].columns[b.column].index != nil {
            if let owner = tables[k].columns[b.column].index?[value], owner != row { return false }
            let old = tables[k].columns[b.column].strings[row]
            if tables[k].columns[b.column].index?[old] == row { tables[k].columns[b.column].index?[old] = nil }
            if value != tables[k].columns[b.column].spec.defaultString { tables[k].columns[b.column].index?[value] = row }
        }
        tables[k].columns[b.column].strings[row] = value
        return true
    }

    func isUnique(_ b: FakeBinding) -> Bool { tables[Int(b.kind)].columns[b.column].index != nil }

    func row(_ b: FakeBinding, holding value: [UInt8]) -> Int? { tables[Int(b.kind)].columns[b.column].index?[value] }
}
