import GRDB
import GRDBSQLite
import GameABI

/// One value of a stored row exactly as SQLite holds it: its storage class
/// (`sqlite3_column_type`, read before anything converts it) and its bytes.
///
/// Why not GRDB's `DatabaseValue`: its storage class is right, but its
/// TEXT goes through a C string (a NUL cuts it short), and converting it
/// to a field's type is where a hand-edited `'abc'` in an int column used
/// to become 0 without a word. A cell is read as it is and then checked
/// against its column's type (`StoredCell.value(as:)`): one that does not
/// fit refuses the start (`StoredValueProblems`).
enum StoredCell {
    case null
    case integer(Int64)
    case real(Double)
    case text([UInt8])
    case blob([UInt8])

    /// Column `index` of the row `statement` is on.
    init(_ statement: SQLiteStatement, _ index: Int32) {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: self = .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: self = .real(sqlite3_column_double(statement, index))
        case SQLITE_TEXT: self = .text(StoredCell.bytes(statement, index))
        case SQLITE_BLOB: self = .blob(StoredCell.bytes(statement, index))
        default: self = .null
        }
    }

    /// TEXT or BLOB bytes as stored (for TEXT, `sqlite3_column_blob` is the
    /// text unconverted; the length is read after it, as SQLite asks).
    private static func bytes(_ statement: SQLiteStatement, _ index: Int32) -> [UInt8] {
        guard let start = sqlite3_column_blob(statement, index) else { return [] }
        return Array(UnsafeRawBufferPointer(start: start, count: Int(sqlite3_column_bytes(statement, index))))
    }

    /// The value a field of `type` reads, nil for NULL (the column's
    /// default, docs/PERSISTENCE.md); or what is wrong with it.
    ///
    /// - int: INTEGER; a REAL only when it is a whole number within Int64
    ///   (an INTEGER column stores any other number as REAL: 1.5, or an
    ///   integer typed past Int64, 1e20).
    /// - string: TEXT or BLOB (strings that are not UTF-8, or hold a NUL,
    ///   are written as BLOB), at most `GAME_MAX_STRING` bytes, what a
    ///   module can read back. A number cannot be there: a TEXT column
    ///   stores numbers as text.
    func value(as type: FieldType) -> Result<StoredValue?, StoredValueMismatch> {
        switch (type, self) {
        case (_, .null): return .success(nil)
        case (.int, .integer(let v)): return .success(.int(v))
        case (.int, .real(let v)):
            if let whole = Int64(exactly: v) { return .success(.int(whole)) }
            return .failure(StoredValueMismatch(cell: self, why: v.rounded() == v ? "out of the int range" : "not a whole number"))
        case (.int, _): return .failure(StoredValueMismatch(cell: self, why: "not an integer"))
        case (.string, .text(let bytes)), (.string, .blob(let bytes)):
            guard bytes.count <= Int(GAME_MAX_STRING) else {
                return .failure(StoredValueMismatch(cell: self, why: "longer than a string field holds (\(GAME_MAX_STRING) bytes)"))
            }
            return .success(.string(bytes))
        case (.string, _): return .failure(StoredValueMismatch(cell: self, why: "not a string"))
        }
    }

    /// A player's key: TEXT of 1 to `GAME_MAX_PLAYER_KEY` bytes of UTF-8
    /// without NUL (what `World.attachPlayer` accepts: a key that broke
    /// those rules could never log in, and a NUL would make two keys one
    /// row); or what is wrong with it.
    func key() -> Result<[UInt8], StoredValueMismatch> {
        guard case .text(let bytes) = self else { return .failure(StoredValueMismatch(cell: self, why: "not text")) }
        guard !bytes.isEmpty, bytes.count <= Int(GAME_MAX_PLAYER_KEY) else {
            return .failure(StoredValueMismatch(cell: self, why: "not 1 to \(GAME_MAX_PLAYER_KEY) bytes"))
        }
        guard !bytes.contains(0), String(validating: bytes, as: UTF8.self) != nil else {
            return .failure(StoredValueMismatch(cell: self, why: "not UTF-8 without NUL"))
        }
        return .success(bytes)
    }

    /// SQLite's name for the storage class, as `typeof()` says it (upper case).
    var typeName: String {
        switch self {
        case .null: "NULL"
        case .integer: "INTEGER"
        case .real: "REAL"
        case .text: "TEXT"
        case .blob: "BLOB"
        }
    }

    /// The cell for a message: its type and, shortened, its value
    /// (`TEXT 'abc'`, `REAL 1.5`, `BLOB of 3 bytes`).
    var shown: String {
        switch self {
        case .null: return "NULL"
        case .integer(let v): return "INTEGER \(v)"
        case .real(let v): return "REAL \(v)"
        case .blob(let bytes): return "BLOB of \(bytes.count) bytes"
        case .text(let bytes):
            let head = String(decoding: bytes.prefix(40), as: UTF8.self)
                .map { $0.isNewline || $0.asciiValue.map { $0 < 0x20 } == true ? "?" : $0 }
            return "TEXT '\(String(head))\(bytes.count > 40 ? "…" : "")' (\(bytes.count) bytes)"
        }
    }
}

/// A stored cell that does not fit what reads it.
struct StoredValueMismatch: Error {
    let cell: StoredCell
    let why: String
}

/// Every stored value a start found that does not fit its column, gathered
/// over the whole read and reported at once (the first few named), so that
/// an operator fixes them in one go rather than one start at a time.
struct StoredValueProblems {
    let database: String
    private(set) var count = 0
    private var named: [String] = []
    /// One SQL statement to start from, for the first bad value (NULL is
    /// the column's default).
    private var example: String?
    static let namedAtMost = 5

    init(database: String) { self.database = database }

    /// A value of `row` (`player 'alice'`, `the global row`) in the
    /// column of `spec`; `fix` is an SQL statement that would set it to
    /// the column's default.
    mutating func add(row: String, field spec: FieldSpec, _ mismatch: StoredValueMismatch, fix: String) {
        note("\(row) field \(spec.name) (column \"\(SQLiteStorage.columnName(spec))\") holds \(mismatch.cell.shown): \(mismatch.why)", fix: fix)
    }

    /// A field's default (`fields.default_value`) that its type cannot
    /// hold; `fix` sets it to NULL (the type's zero).
    mutating func addDefault(field spec: FieldSpec, _ mismatch: StoredValueMismatch, fix: String) {
        note("the default of \(spec.kind) field \(spec.name) (column \"\(SQLiteStorage.columnName(spec))\", in table fields) holds \(mismatch.cell.shown): \(mismatch.why)", fix: fix)
    }

    /// A player row whose key cannot be a key.
    mutating func addKey(_ mismatch: StoredValueMismatch) {
        note("a player row has the key \(mismatch.cell.shown): \(mismatch.why)",
             fix: "SELECT key, typeof(key) FROM players WHERE typeof(key) != 'text' OR length(CAST(key AS BLOB)) NOT BETWEEN 1 AND \(GAME_MAX_PLAYER_KEY) finds such rows")
    }

    private mutating func note(_ problem: String, fix: String) {
        count += 1
        if named.count < Self.namedAtMost { named.append(problem) }
        if example == nil { example = fix }
    }

    /// The refusal, or nil when every value fits.
    var error: StorageError? {
        guard count > 0 else { return nil }
        let more = count > named.count ? "; and \(count - named.count) more" : ""
        let head = count == 1
            ? "database \(database): a stored value does not fit its column's type, and is not read as a default: "
            : "database \(database): \(count) stored values do not fit their column's type, and are not read as defaults: "
        return StorageError(head + named.joined(separator: "; ") + more
                            + ". Correct or delete them with the sqlite3 shell while the server is stopped (for the first, \(example ?? "")), then start again")
    }
}
