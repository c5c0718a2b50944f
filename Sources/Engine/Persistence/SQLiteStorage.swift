import Foundation
import GRDB
import GRDBSQLite
import Synchronization

/// The default storage: one SQLite file in WAL mode, through GRDB.
///
/// Layout 1 (docs/PERSISTENCE.md; readable with the `sqlite3` shell):
///
///     players (key TEXT PRIMARY KEY, "score:int" INTEGER, ...)
///     globals (id INTEGER PRIMARY KEY CHECK (id = 1), "logins:int" INTEGER, ...)
///     fields  (kind, name, type, is_unique, default_value, added_ms, declared)
///
/// A field is a column named `name:type`, so a field a module retypes gets
/// a new column beside the old one and a dropped field keeps its column
/// (hidden until a rollback declares it again). `PRAGMA application_id`
/// marks the file as ours and `PRAGMA user_version` holds the layout: a
/// file from another program, or from a newer server, is refused.
///
/// Durability: WAL with `synchronous=NORMAL`. A commit survives the
/// process being killed at any point; only a power loss may roll back the
/// last commits (SQLite's documented guarantee), and the file is never
/// left corrupt. Readers (a backup, the `sqlite3` shell) never block the
/// writer, nor it them.
///
/// The file tells the truth: every write checks, before and after its
/// transaction, that the path still names the file SQLite has open
/// (`DatabaseFileIdentity`), and a start reads every stored value as it is
/// and refuses one that does not fit its column (`StoredCell`), rather
/// than reading it as a default.
final class SQLiteStorage: PlayerStorage {
    static let layoutVersion = 1
    /// "HSWP" in `PRAGMA application_id`.
    static let applicationID: Int32 = 0x4853_5750

    let location: String
    private let queue: DatabaseQueue
    private let lock: DatabaseLock
    /// What the path must keep naming.
    private let files: DatabaseFileIdentity
    /// False once `close` has begun. A file check queued on a worker (an
    /// idle tick's, a SAVE's, one queued as the server stopped) may run
    /// after the loop stopped, while `close` releases the lock: its
    /// `fstat` would then look at a closed descriptor, or at whatever
    /// reused the number. `verifyIdentity` checks under this lock and not
    /// at all once closed; `close` takes it, so it waits for a check under
    /// way (it runs after the loop stopped, where waiting is fine; no check
    /// runs on the loop).
    private let isOpen = Mutex(true)

    private init(location: String, queue: DatabaseQueue, lock: DatabaseLock, files: DatabaseFileIdentity) {
        self.location = location
        self.queue = queue
        self.lock = lock
        self.files = files
    }

    /// Opens (or creates) the database at `path`, takes the one-server lock
    /// and checks the layout; every refusal names the file and the reason.
    ///
    /// An engine resumed by an upgrade passes the lock the previous engine
    /// held (`adopting`, its descriptor handed over): locking the file again
    /// on a new descriptor would conflict with that very lock. On a refusal
    /// that lock is left as it is, held: the engine falls back to the
    /// previous one, which still needs it. The path must still name the
    /// locked file, checked before SQLite opens it: SQLite would create a
    /// new, empty file where one was deleted, and the resumed engine, which
    /// reads nothing from the file, would write only its dirty rows there.
    static func open(path: String, adopting adopted: DatabaseLock? = nil) throws(StorageError) -> SQLiteStorage {
        let lock: DatabaseLock
        if let adopted { lock = try adopted.adopting(path: path) } else { lock = try DatabaseLock.acquire(path: path) }
        func giveUp() { if adopted == nil { lock.release() } }
        if let problem = DatabaseFileIdentity(path: path, shown: path, descriptor: lock.descriptor).problem() {
            giveUp()
            throw problem
        }
        do {
            var configuration = Configuration()
            configuration.label = "hotswap.database"
            configuration.journalMode = .wal
            // A reader (a backup) holding the file briefly must not fail a
            // flush; the worker may wait, the loop never does.
            configuration.busyMode = .timeout(5)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.write { db in try prepareLayout(db, path: path) }
            // The operator sees the file's full path, not one relative to a
            // working directory they may not know.
            let location = realpath(path, nil).map { real in
                defer { free(real) }
                return String(cString: real)
            } ?? path
            // SQLite's own descriptor and the lock's are one file: SQLite
            // says its file has not moved from the path, and the path still
            // names the lock's (DatabaseFileIdentity).
            try queue.inDatabase { db in
                var moved: Int32 = 0
                if sqlite3_file_control(db.sqliteConnection, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK, moved != 0 {
                    throw StorageError("database \(location) was moved or replaced while it was being opened; start again")
                }
            }
            let files = try DatabaseFileIdentity(path: path, shown: location, descriptor: lock.descriptor).bound()
            return SQLiteStorage(location: location, queue: queue, lock: lock, files: files)
        } catch let error as StorageError {
            giveUp()
            throw error
        } catch {
            giveUp()
            throw StorageError("database \(path): \(describe(error))")
        }
    }

    /// The one-server lock's descriptors: an engine upgrade hands them
    /// over, the flock first.
    var handedOverDescriptors: [Int32] { lock.descriptors }

    /// Creates the tables in a new file; refuses a file that is not ours or
    /// was written by a newer layout.
    private static func prepareLayout(_ db: Database, path: String) throws {
        let application = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
        if application != 0 && application != applicationID {
            throw StorageError("database \(path) belongs to another application (application_id \(application)); not a Hotswap database")
        }
        if version > layoutVersion {
            throw StorageError("database \(path) has layout \(version), newer than this server knows (\(layoutVersion)); upgrade the server")
        }
        if application == 0 {
            let tables = try Int.fetchOne(db, sql: "SELECT count(*) FROM sqlite_master") ?? 0
            if tables > 0 {
                throw StorageError("database \(path) holds tables of another program; not a Hotswap database")
            }
            try db.execute(sql: """
                CREATE TABLE players (key TEXT PRIMARY KEY NOT NULL) WITHOUT ROWID;
                CREATE TABLE globals (id INTEGER PRIMARY KEY CHECK (id = 1));
                CREATE TABLE fields (
                    kind TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
                    is_unique INTEGER NOT NULL, default_value, added_ms INTEGER NOT NULL,
                    declared INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (kind, name, type));
                PRAGMA application_id = \(applicationID);
                PRAGMA user_version = \(layoutVersion);
                """)
        }
        try ensureTimersTable(db)
    }

    // MARK: - Reading (once, at start)

    func loadAll() throws(StorageError) -> StoredSnapshot {
        do {
            return try queue.read { db in
                var snapshot = StoredSnapshot()
                var problems = StoredValueProblems(database: location)
                snapshot.globalColumns = try SQLiteStorage.columns(db, kind: .global, &problems)
                snapshot.playerColumns = try SQLiteStorage.columns(db, kind: .player, &problems)
                // The same rows again: their defaults were noted above.
                var again = StoredValueProblems(database: location)
                snapshot.declared = try SQLiteStorage.columns(db, kind: .global, declaredOnly: true, &again)
                    + SQLiteStorage.columns(db, kind: .player, declaredOnly: true, &again)
                let globalNames = snapshot.globalColumns.map(SQLiteStorage.columnName).map(SQLiteStorage.quoted)
                let global = try db.makeStatement(sql: "SELECT \((["id"] + globalNames).joined(separator: ", ")) FROM globals WHERE id = 1")
                // The cursor lives while its row is read: dropped, it resets
                // the statement (and the row reads as NULLs).
                let globalRows = try Row.fetchCursor(global)
                if try globalRows.next() != nil {
                    snapshot.global = StoredRecord(key: [], values: SQLiteStorage.values(
                        global.sqliteStatement, snapshot.globalColumns, &problems) { ("the global row", "globals", "id = 1") })
                }
                withExtendedLifetime(globalRows) {}
                let playerNames = snapshot.playerColumns.map(SQLiteStorage.columnName).map(SQLiteStorage.quoted)
                let players = try db.makeStatement(sql: "SELECT \((["key"] + playerNames).joined(separator: ", ")) FROM players")
                let rows = try Row.fetchCursor(players)
                while try rows.next() != nil {
                    // The row the statement is on, read cell by cell as stored.
                    switch StoredCell(players.sqliteStatement, 0).key() {
                    case .failure(let mismatch):
                        problems.addKey(mismatch)
                    case .success(let key):
                        snapshot.players.append(StoredRecord(key: key, values: SQLiteStorage.values(
                            players.sqliteStatement, snapshot.playerColumns, &problems) {
                                ("player '\(String(decoding: key, as: UTF8.self))'", "players",
                                 "key = \(SQLiteStorage.literal(.string(key)))")
                            }))
                    }
                }
                if let refusal = problems.error { throw refusal }
                snapshot.timers = try SQLiteStorage.loadTimers(db)
                return snapshot
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError("cannot read database \(location): \(SQLiteStorage.describe(error))")
        }
    }

    /// The values of the row `statement` is on, from its second column on,
    /// each checked against its column's type; one that does not fit is
    /// noted in `problems` (and read as nil: the start is refused anyway),
    /// with the row as `whose` names it (only then: a name per row would
    /// cost every start).
    private static func values(_ statement: SQLiteStatement, _ columns: [FieldSpec],
                               _ problems: inout StoredValueProblems,
                               whose: () -> (row: String, table: String, condition: String)) -> [StoredValue?]
    {
        columns.indices.map { index in
            switch StoredCell(statement, Int32(index + 1)).value(as: columns[index].type) {
            case .success(let value): return value
            case .failure(let mismatch):
                let (row, table, condition) = whose()
                problems.add(row: row, field: columns[index], mismatch,
                             fix: "UPDATE \(table) SET \(quoted(columnName(columns[index]))) = NULL WHERE \(condition)")
                return nil
            }
        }
    }

    /// The columns the file holds for a kind, in the order they were added
    /// (or only those the last serving module declared). A row edited into
    /// nonsense by hand (no name, an unknown type) is skipped, never
    /// trusted. A default is read as stored, by the rules of its field's
    /// values (`StoredCell`): one that does not fit (`1.5` for an int) is
    /// noted in `problems`, which refuses the start, rather than read as 0.
    private static func columns(_ db: Database, kind: EntityKind, declaredOnly: Bool = false,
                                _ problems: inout StoredValueProblems) throws -> [FieldSpec]
    {
        let statement = try db.makeStatement(sql: "SELECT name, type, is_unique, default_value FROM fields WHERE kind = ?"
                                                 + (declaredOnly ? " AND declared = 1" : "") + " ORDER BY rowid")
        // The cursor lives while its row is read (see `loadAll`).
        let rows = try Row.fetchCursor(statement, arguments: [kind.description])
        var specs: [FieldSpec] = []
        while let row = try rows.next() {
            guard let name = row[0] as String?, let typeName = row[1] as String?,
                let type: FieldType = typeName == "int" ? .int : typeName == "string" ? .string : nil
            else { continue }
            var spec = FieldSpec(kind: kind, name: name, type: type, unique: (row[2] as Int64? ?? 0) != 0,
                                 defaultInt: 0, defaultString: [])
            switch StoredCell(statement.sqliteStatement, 3).value(as: type) {
            case .success(.int(let v)?): spec.defaultInt = v
            case .success(.string(let bytes)?): spec.defaultString = bytes
            case .success(nil): break
            case .failure(let mismatch):
                problems.addDefault(field: spec, mismatch, fix: "UPDATE fields SET default_value = NULL WHERE kind = "
                    + "\(literal(.string(Array(kind.description.utf8)))) AND name = \(literal(.string(Array(name.utf8)))) "
                    + "AND type = \(literal(.string(Array(typeName.utf8))))")
            }
            specs.append(spec)
        }
        return specs
    }

    /// Durable timers (ABI 1.3): a table added without a layout bump (an
    /// older server ignores it), created when the file is opened.
    private static func ensureTimersTable(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS timers (
                owner_kind TEXT NOT NULL, owner_key TEXT NOT NULL, event TEXT NOT NULL, payload BLOB NOT NULL,
                due_unix_ms INTEGER NOT NULL, period_ms INTEGER NOT NULL, fired INTEGER NOT NULL)
            """)
    }

    /// The durable timers, oldest deadline first; rows edited into nonsense
    /// by hand are skipped.
    private static func loadTimers(_ db: Database) throws -> [StoredTimer] {
        guard try db.tableExists("timers") else { return [] }
        return try Row.fetchAll(db, sql: "SELECT owner_kind, owner_key, event, payload, due_unix_ms, period_ms, fired FROM timers ORDER BY due_unix_ms, rowid")
            .compactMap { row -> StoredTimer? in
                guard let kind = row[0] as String?, kind == "global" || kind == "player", let key = row[1] as String?,
                    let event = row[2] as String?, let payload = row[3] as Data?, let due = row[4] as Int64?,
                    let period = row[5] as Int64?, period >= 0, let fired = row[6] as Int64?
                else { return nil }
                return StoredTimer(ownerKey: Array(key.utf8), global: kind == "global", event: Array(event.utf8),
                                   payload: Array(payload), dueUnixMilliseconds: due, periodMilliseconds: period,
                                   fired: fired)
            }
    }

    // MARK: - Writing (a worker thread)

    /// Before the transaction and after it, the path must name the open
    /// file (`DatabaseFileIdentity`): nothing is written to a file that is
    /// gone, and a batch committed to one that went during the transaction
    /// is reported failed (its records stay dirty), not written.
    @discardableResult
    func write(_ batch: PersistBatch) throws(StorageError) -> WriteReceipt {
        do {
            try queue.writeWithoutTransaction { db in
                try checkIdentity(db)
                try db.inTransaction {
                    try SQLiteStorage.writeRows(db, batch)
                    return .commit
                }
                try checkIdentity(db)
            }
            return WriteReceipt()
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError("flush to \(location) failed: \(SQLiteStorage.describe(error))",
                               transient: SQLiteStorage.isTransient(error))
        }
    }

    /// The batch's rows, in the transaction `write` opened.
    private static func writeRows(_ db: Database, _ batch: PersistBatch) throws {
        try SQLiteStorage.ensureColumns(db, table: "globals", kind: .global, batch.globalColumns)
        try SQLiteStorage.ensureColumns(db, table: "players", kind: .player, batch.playerColumns)
        for key in batch.deleted {
            try db.execute(sql: "DELETE FROM players WHERE key = ?", arguments: [String(decoding: key, as: UTF8.self)])
        }
        if let global = batch.global {
            try SQLiteStorage.upsert(db, table: "globals", keyColumn: "id", columns: batch.globalColumns,
                                     records: [global], key: { _ in 1 })
        }
        if !batch.players.isEmpty {
            try SQLiteStorage.upsert(db, table: "players", keyColumn: "key", columns: batch.playerColumns,
                                     records: batch.players, key: { String(decoding: $0.key, as: UTF8.self) })
        }
        if let timers = batch.timers {
            try SQLiteStorage.ensureTimersTable(db)
            try db.execute(sql: "DELETE FROM timers")
            let insert = try db.makeStatement(sql: "INSERT INTO timers (owner_kind, owner_key, event, payload, due_unix_ms, period_ms, fired) VALUES (?, ?, ?, ?, ?, ?, ?)")
            for timer in timers {
                try insert.execute(arguments: [
                    timer.global ? "global" : "player", String(decoding: timer.ownerKey, as: UTF8.self),
                    String(decoding: timer.event, as: UTF8.self), Data(timer.payload),
                    timer.dueUnixMilliseconds, timer.periodMilliseconds, timer.fired])
            }
        }
        if let declared = batch.declared {
            try db.execute(sql: "UPDATE fields SET declared = 0 WHERE declared != 0")
            for spec in declared {
                try db.execute(sql: "UPDATE fields SET declared = 1 WHERE kind = ? AND name = ? AND type = ?",
                               arguments: [spec.kind.description, spec.name, spec.type.description])
            }
        }
    }

    // MARK: - The file's identity (a worker thread)

    /// Not at all once `close` has begun (`isOpen`): the lock's descriptor
    /// may be closed, its number reused.
    func verifyIdentity() throws(StorageError) {
        try isOpen.withLock { (open: inout Bool) throws(StorageError) in
            guard open else {
                throw StorageError("database \(location) is closed (the server is stopping): not checked", transient: true)
            }
            guard files.problem() != nil else { return }
            do {
                try queue.inDatabase { db in try checkIdentity(db) }
            } catch let error as StorageError {
                throw error
            } catch {
                throw StorageError("cannot check database \(location): \(SQLiteStorage.describe(error))", transient: true)
            }
        }
    }

    /// Throws when the path no longer names the open file (with what to
    /// copy out, after a passive checkpoint: `lostFileAdvice`), or cannot
    /// be checked (transient, no advice: nothing is known to be lost).
    private func checkIdentity(_ db: Database) throws(StorageError) {
        guard var problem = files.problem() else { return }
        guard problem.lostFile else { throw problem }
        problem.advice = lostFileAdvice(db)
        throw problem
    }

    /// What the log tells the operator to copy out of `/proc`, said by
    /// what a passive checkpoint just did, not assumed. The checkpoint
    /// writes only through SQLite's descriptors, never to whatever the path
    /// names now, and never waits for readers; but it copies a frame of the
    /// `-wal` into the file only when no reader still needs the file as it
    /// was before that frame (a backup, an `sqlite3` shell in a
    /// transaction). Its row says how far it got: `busy` (it could not run
    /// at all), `log` (frames in the `-wal`; -1 when not in WAL mode) and
    /// `checkpointed` (frames now in the file). Only when every frame is in
    /// the file does the file alone hold every flush; otherwise the `-wal`
    /// must be copied too (SQLite reads its frames when the copy is opened).
    private func lostFileAdvice(_ db: Database) -> String {
        let pid = getpid()
        let copy = "/proc/\(pid)/fd/\(lock.descriptor)"
        let head = "This server keeps the path locked: no other server starts on it. The file it wrote is still open, as \(copy)"
        let tail = "A stop now exits with status 1, and what is dirty is lost with the process"
        // The file and its `-wal`, both copied (the -wal by the descriptor
        // SQLite has open on it, when this process can find it).
        func both(_ why: String) -> String {
            let wal = files.openDescriptor(of: "-wal").map { "/proc/\(pid)/fd/\($0)" }
            let walCopy = wal.map { "`cp \($0) SAFE-COPY.sqlite-wal`" }
                ?? "a copy of its -wal, as SAFE-COPY.sqlite-wal (`ls -l /proc/\(pid)/fd | grep -- -wal` finds it)"
            return "\(head); \(why): `cp \(copy) SAFE-COPY.sqlite` and \(walCopy) keep both (SQLite reads the log's frames "
                + "when the copy is opened; copy both before the server stops). \(tail)"
        }
        let result: (busy: Int, log: Int, checkpointed: Int)
        do {
            guard let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)") else {
                return both("a checkpoint into it said nothing, so the last flushes may be only in its write-ahead log")
            }
            result = (row[0] as Int? ?? 1, row[1] as Int? ?? -1, row[2] as Int? ?? -1)
        } catch {
            return both("a checkpoint into it failed (\(SQLiteStorage.describe(error))), so the last flushes may be only in its write-ahead log")
        }
        if result.busy != 0 {
            return both("a checkpoint into it could not run just now (another connection was checkpointing), so the last flushes may be only in its write-ahead log")
        }
        if result.log < 0 || result.checkpointed >= result.log {
            let checkpointed = result.log > 0 ? " (its write-ahead log, \(result.log) frames, was checkpointed into it just now)" : ""
            return "\(head), and holds every flush that succeeded\(checkpointed): `cp \(copy) SAFE-COPY.sqlite` keeps it. \(tail)"
        }
        let missing = result.log - max(result.checkpointed, 0)
        return both("the last \(missing) of the \(result.log) frames of its write-ahead log, the last flushes, are not in it "
            + "(a reader, a backup or an sqlite3 shell in a transaction, still needs the file as it was before them)")
    }

    /// Errors that may go away by themselves: a full disk, an I/O error, a
    /// file busy or locked by a reader, memory.
    static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? DatabaseError else { return false }
        switch error.resultCode {
        case .SQLITE_FULL, .SQLITE_IOERR, .SQLITE_BUSY, .SQLITE_LOCKED, .SQLITE_NOMEM, .SQLITE_CANTOPEN,
             .SQLITE_PROTOCOL:
            return true
        default:
            return false
        }
    }

    /// Adds the columns a batch has that the file does not: a new field
    /// gets its default for every stored row (the column's DEFAULT).
    private static func ensureColumns(_ db: Database, table: String, kind: EntityKind, _ columns: [FieldSpec]) throws {
        let known = Set(try String.fetchAll(db, sql: "SELECT name || ':' || type FROM fields WHERE kind = ?",
                                            arguments: [kind.description]))
        for spec in columns where !known.contains(columnName(spec)) {
            let sqlType = spec.type == .int ? "INTEGER" : "TEXT"
            let defaultValue: StoredValue = spec.type == .int ? .int(spec.defaultInt) : .string(spec.defaultString)
            try db.execute(sql: "ALTER TABLE \(table) ADD COLUMN \(quoted(columnName(spec))) \(sqlType) DEFAULT \(literal(defaultValue))")
            try db.execute(sql: "INSERT INTO fields (kind, name, type, is_unique, default_value, added_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [kind.description, spec.name, spec.type.description, spec.unique ? 1 : 0,
                                       databaseValue(defaultValue), Int64(Date().timeIntervalSince1970 * 1000)])
        }
    }

    /// INSERT ... ON CONFLICT DO UPDATE, one prepared statement per batch.
    private static func upsert(_ db: Database, table: String, keyColumn: String, columns: [FieldSpec],
                               records: [StoredRecord], key: (StoredRecord) -> any DatabaseValueConvertible) throws
    {
        let names = columns.map(columnName).map(quoted)
        let placeholders = Array(repeating: "?", count: names.count + 1).joined(separator: ", ")
        let updates = names.isEmpty
            ? "NOTHING"
            : "UPDATE SET " + names.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        let statement = try db.cachedStatement(sql: """
            INSERT INTO \(table) (\(([keyColumn] + names).joined(separator: ", "))) VALUES (\(placeholders))
            ON CONFLICT(\(keyColumn)) DO \(updates)
            """)
        var arguments: [DatabaseValue] = []
        arguments.reserveCapacity(names.count + 1)
        for record in records {
            arguments.removeAll(keepingCapacity: true)
            arguments.append(key(record).databaseValue)
            for index in columns.indices {
                arguments.append(index < record.values.count ? record.values[index].map(databaseValue) ?? .null : .null)
            }
            try statement.execute(arguments: StatementArguments(arguments))
        }
    }

    /// Once: waits for a file check under way (`isOpen`), and a later
    /// check does nothing.
    func close() {
        isOpen.withLock { open in
            guard open else { return }
            open = false
            try? queue.close()
            lock.release()
        }
    }

    // MARK: - Values

    static func columnName(_ spec: FieldSpec) -> String { "\(spec.name):\(spec.type)" }

    static func quoted(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// Strings are TEXT when they are UTF-8 without NUL (what the `sqlite3`
    /// shell shows and queries best), BLOB otherwise: the bytes come back
    /// unchanged. (GRDB binds and reads TEXT as C strings, which a NUL
    /// would cut short.)
    static func databaseValue(_ value: StoredValue) -> DatabaseValue {
        switch value {
        case .int(let v): return v.databaseValue
        case .string(let bytes):
            if !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) { return text.databaseValue }
            return Data(bytes).databaseValue
        }
    }

    /// A default as an SQL literal for ALTER TABLE (which takes no bound
    /// parameters).
    static func literal(_ value: StoredValue) -> String {
        switch value {
        case .int(let v): return String(v)
        case .string(let bytes):
            if !bytes.contains(0), let text = String(validating: bytes, as: UTF8.self) {
                return "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
            }
            return "X'" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined() + "'"
        }
    }

    /// GRDB's error, reduced to SQLite's message.
    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return error.message ?? "\(error.resultCode)"
        }
        return "\(error)"
    }
}
