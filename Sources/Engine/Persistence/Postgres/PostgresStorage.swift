import Foundation

/// Players shared by several servers, in PostgreSQL (`--database
/// postgresql://…`), through libpq on libuv's worker threads.
///
/// Layout 1 (docs/SCALING.md; readable with `psql`):
///
///     hotswap_layout (version)
///     players (key TEXT PRIMARY KEY, owner, epoch, lease_expires, written, "score:int" BIGINT, ...)
///     globals (server TEXT PRIMARY KEY, "logins:int" BIGINT, ...)
///     fields  (position, kind, name, type, is_unique, default_int, default_bytes, added_ms, declared)
///     timers  (server, owner_kind, owner_key, event, payload, due_unix_ms, period_ms, fired)
///
/// As in the SQLite file, a field is a column named `name:type` (int is
/// BIGINT, string is BYTEA: a player's string comes back byte for byte),
/// and a retyped or dropped field keeps its column. Unlike it:
///
/// - players are not read at start: `claim` reads one at LOGIN, under a
///   lease (`SharedPlayerStorage`), and every write is fenced by it;
/// - the global row and the durable timers are each server's own
///   (`--server-name`): globals are per process on a fleet, as rooms are.
///
/// Two connections, each used by one thread at a time: the write-behind's
/// and the logins' (two: `AuthDesk` runs two checks at once). A LOGIN never
/// waits behind a large flush, nor behind one other claim.
final class PostgresStorage: SharedPlayerStorage, @unchecked Sendable {
    static let layoutVersion = 1

    let location: String
    let owner: String
    let leaseSeconds: Int
    /// This server's global row and timers.
    let serverName: String
    private let writer: PGSlot
    /// The logins' connections, taken in turn.
    private let logins: [PGSlot]
    private let nextLogin = NSLock()
    private var loginTurn = 0

    init(url: String, owner: String, serverName: String, leaseSeconds: Int, writer: PGConnection?, logins: PGConnection?) {
        location = PGConnection.redacted(url)
        self.owner = owner
        self.serverName = serverName
        self.leaseSeconds = leaseSeconds
        self.writer = PGSlot(url: url, connection: writer)
        self.logins = [PGSlot(url: url, connection: logins), PGSlot(url: url, connection: nil)]
    }

    /// Whether `--database` names a PostgreSQL database rather than a file.
    static func isURL(_ database: String) -> Bool {
        database.hasPrefix("postgresql://") || database.hasPrefix("postgres://")
    }

    /// Connects twice and prepares the layout; refuses a database whose
    /// tables are another program's or a newer layout's, and one that
    /// cannot be reached, with the reason.
    static func open(url: String, owner: String, serverName: String, leaseSeconds: Int) throws(StorageError) -> PostgresStorage {
        let writer = try PGConnection.connect(url)
        let logins = try PGConnection.connect(url)
        try prepareLayout(writer)
        let storage = PostgresStorage(url: url, owner: owner, serverName: serverName, leaseSeconds: leaseSeconds,
                                      writer: writer, logins: logins)
        try storage.claimName()
        return storage
    }

    /// Takes `--server-name` for this process, under a lease like a
    /// player's (renewed with the held leases, given back at a clean
    /// exit): two live servers under one name would share a global row
    /// and rewrite each other's durable timers. A name whose server was
    /// killed is free once its lease expires: a restart under the same
    /// name (a pod's container restarted) waits for that, at most
    /// `leaseSeconds`, before it refuses. Before serving, on the main
    /// thread.
    private func claimName() throws(StorageError) {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(leaseSeconds + 1) * 1_000_000_000
        while true {
            let holder: (owner: String, left: Int64)? = try writer.use { (db: PGConnection) throws(StorageError) in
                let taken = try db.execute("""
                    INSERT INTO servers AS s (name, owner, lease_expires) VALUES ($1, $2, now() + make_interval(secs => $3))
                    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_expires = excluded.lease_expires
                    WHERE s.owner = excluded.owner OR s.lease_expires < now()
                    RETURNING name
                    """, [.text(serverName), .text(owner), .int(Int64(leaseSeconds))])
                if taken.rowCount == 1 { return nil }
                let row = try db.execute("SELECT owner, ceil(extract(epoch FROM lease_expires - now()))::bigint FROM servers WHERE name = $1",
                                         [.text(serverName)])
                return (row.text(0, 0) ?? "?", row.int(0, 1) ?? 0)
            }
            guard let holder else { return }
            if DispatchTime.now().uptimeNanoseconds >= deadline {
                throw StorageError("server name \(serverName) is in use by a live server (\(holder.owner), its lease runs \(holder.left) s more) in \(location): give each server its own --server-name")
            }
            usleep(250_000)
        }
    }

    /// This server's name, for another `leaseSeconds`.
    /// Returns who holds it instead, when this server lost it (it expired
    /// while this one was cut off, and another server took it); taken
    /// back when it is free again.
    private func renewName(_ db: PGConnection) throws(StorageError) -> String? {
        let renewed = try db.execute("""
            INSERT INTO servers AS s (name, owner, lease_expires) VALUES ($1, $2, now() + make_interval(secs => $3))
            ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_expires = excluded.lease_expires
            WHERE s.owner = excluded.owner OR s.lease_expires < now()
            RETURNING name
            """, [.text(serverName), .text(owner), .int(Int64(leaseSeconds))])
        guard renewed.rowCount == 0 else { return nil }
        return try db.execute("SELECT owner FROM servers WHERE name = $1", [.text(serverName)]).text(0, 0) ?? "?"
    }

    /// Creates the tables in an empty database, under a transaction-level
    /// advisory lock so that servers starting together do not race.
    private static func prepareLayout(_ db: PGConnection) throws(StorageError) {
        try db.transaction { () throws(StorageError) in
            try db.execute("SELECT pg_advisory_xact_lock(1213421392)")  // "HSWP"
            let marked = try db.execute("SELECT to_regclass('hotswap_layout') IS NOT NULL")
            if marked.int(0, 0) == 1 {
                let version = try db.execute("SELECT max(version) FROM hotswap_layout").int(0, 0) ?? 0
                if version > Int64(layoutVersion) {
                    throw StorageError("database \(db.shown) has layout \(version), newer than this server knows (\(layoutVersion)); upgrade the server")
                }
                return
            }
            let taken = try db.execute("""
                SELECT count(*) FROM information_schema.tables
                WHERE table_schema = current_schema() AND table_name IN ('players', 'globals', 'fields', 'timers')
                """).int(0, 0) ?? 0
            if taken > 0 {
                throw StorageError("database \(db.shown) holds tables named players, globals, fields or timers of another program; not a Hotswap database")
            }
            try db.executeScript("""
                CREATE TABLE hotswap_layout (version INTEGER NOT NULL);
                INSERT INTO hotswap_layout VALUES (\(layoutVersion));
                CREATE TABLE players (
                    key TEXT PRIMARY KEY,
                    owner TEXT,
                    epoch BIGINT NOT NULL DEFAULT 0,
                    lease_expires TIMESTAMPTZ,
                    written BOOLEAN NOT NULL DEFAULT false);
                CREATE INDEX players_owner ON players (owner) WHERE owner IS NOT NULL;
                CREATE TABLE globals (server TEXT PRIMARY KEY);
                CREATE TABLE fields (
                    position BIGSERIAL, kind TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
                    is_unique BOOLEAN NOT NULL, default_int BIGINT, default_bytes BYTEA,
                    added_ms BIGINT NOT NULL, declared BOOLEAN NOT NULL DEFAULT false,
                    PRIMARY KEY (kind, name, type));
                CREATE TABLE timers (
                    server TEXT NOT NULL, owner_kind TEXT NOT NULL, owner_key TEXT NOT NULL,
                    event BYTEA NOT NULL, payload BYTEA NOT NULL, due_unix_ms BIGINT NOT NULL,
                    period_ms BIGINT NOT NULL, fired BIGINT NOT NULL);
                CREATE INDEX timers_server ON timers (server);
                CREATE TABLE servers (name TEXT PRIMARY KEY, owner TEXT NOT NULL, lease_expires TIMESTAMPTZ NOT NULL);
                """)
        }
    }

    // MARK: - At start

    /// The columns, this server's global row and timers; no players (they
    /// are read at LOGIN: `claim`).
    func loadAll() throws(StorageError) -> StoredSnapshot {
        try writer.use { (db: PGConnection) throws(StorageError) -> StoredSnapshot in
            var snapshot = StoredSnapshot()
            snapshot.globalColumns = try Self.columns(db, kind: .global)
            snapshot.playerColumns = try Self.columns(db, kind: .player)
            snapshot.declared = try Self.columns(db, kind: .global, declaredOnly: true)
                + Self.columns(db, kind: .player, declaredOnly: true)
            let names = snapshot.globalColumns.map { Self.quoted(Self.columnName($0)) }
            let global = try db.execute("SELECT \((["server"] + names).joined(separator: ", ")) FROM globals WHERE server = $1",
                                        [.text(serverName)])
            if global.rowCount == 1 {
                snapshot.global = StoredRecord(key: [], values: snapshot.globalColumns.indices.map {
                    Self.value(global, 0, $0 + 1, snapshot.globalColumns[$0].type)
                })
            }
            snapshot.timers = try Self.loadTimers(db, server: serverName)
            return snapshot
        }
    }

    private static func columns(_ db: PGConnection, kind: EntityKind, declaredOnly: Bool = false) throws(StorageError) -> [FieldSpec] {
        let rows = try db.execute("SELECT name, type, is_unique, default_int, default_bytes FROM fields WHERE kind = $1"
                                  + (declaredOnly ? " AND declared" : "") + " ORDER BY position", [.text(kind.description)])
        var specs: [FieldSpec] = []
        for row in 0..<rows.rowCount {
            guard let name = rows.text(row, 0), let typeName = rows.text(row, 1),
                let type: FieldType = typeName == "int" ? .int : typeName == "string" ? .string : nil
            else { continue }
            specs.append(FieldSpec(kind: kind, name: name, type: type, unique: rows.int(row, 2) == 1,
                                   defaultInt: rows.int(row, 3) ?? 0, defaultString: rows.bytes(row, 4) ?? []))
        }
        return specs
    }

    private static func loadTimers(_ db: PGConnection, server: String) throws(StorageError) -> [StoredTimer] {
        let rows = try db.execute("""
            SELECT owner_kind, owner_key, event, payload, due_unix_ms, period_ms, fired FROM timers
            WHERE server = $1 ORDER BY due_unix_ms
            """, [.text(server)])
        return (0..<rows.rowCount).compactMap { row -> StoredTimer? in
            guard let kind = rows.text(row, 0), kind == "global" || kind == "player", let key = rows.bytes(row, 1),
                let event = rows.bytes(row, 2), let payload = rows.bytes(row, 3), let due = rows.int(row, 4),
                let period = rows.int(row, 5), period >= 0, let fired = rows.int(row, 6)
            else { return nil }
            return StoredTimer(ownerKey: key, global: kind == "global", event: event, payload: payload,
                               dueUnixMilliseconds: due, periodMilliseconds: period, fired: fired)
        }
    }

    /// A stored value as its field's type; NULL (the column's default) is nil.
    static func value(_ result: PGResult, _ row: Int, _ column: Int, _ type: FieldType) -> StoredValue? {
        switch type {
        case .int: result.int(row, column).map(StoredValue.int)
        case .string: result.bytes(row, column).map(StoredValue.string)
        }
    }

    // MARK: - Leases (a worker thread: AuthDesk's)

    func claim(_ key: [UInt8], columns: [FieldSpec]) throws(StorageError) -> LeaseClaim {
        let text = String(decoding: key, as: UTF8.self)
        return try loginSlot().use { (db: PGConnection) throws(StorageError) -> LeaseClaim in
            // Held by another live server: said after a read, without a
            // write (a refused login costs no commit).
            let holder = try db.execute("""
                SELECT owner, ceil(extract(epoch FROM lease_expires - now()))::bigint FROM players
                WHERE key = $1 AND owner IS NOT NULL AND owner <> $2 AND lease_expires >= now()
                """, [.text(text), .text(owner)])
            if holder.rowCount == 1 {
                return .heldElsewhere(owner: holder.text(0, 0) ?? "?", secondsLeft: Int(max(holder.int(0, 1) ?? 0, 0)))
            }
            // Taken when free, ours already, or expired: the epoch moves on
            // either way, so nothing written under an earlier one lands.
            let taken = try db.execute("""
                INSERT INTO players AS p (key, owner, epoch, lease_expires)
                VALUES ($1, $2, 1, now() + make_interval(secs => $3))
                ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, epoch = p.epoch + 1,
                    lease_expires = excluded.lease_expires
                WHERE p.owner IS NULL OR p.owner = excluded.owner OR p.lease_expires < now()
                RETURNING *
                """, [.text(text), .text(owner), .int(Int64(leaseSeconds))])
            guard taken.rowCount == 1 else {
                let holder = try db.execute("""
                    SELECT owner, ceil(extract(epoch FROM lease_expires - now()))::bigint FROM players WHERE key = $1
                    """, [.text(text)])
                guard holder.rowCount == 1 else {
                    throw StorageError("player \(text) was deleted while it was claimed; try again", transient: true)
                }
                return .heldElsewhere(owner: holder.text(0, 0) ?? "?", secondsLeft: Int(max(holder.int(0, 1) ?? 0, 0)))
            }
            var byName: [String: Int] = [:]
            for column in 0..<taken.columnCount { byName[taken.columnName(column)] = column }
            guard let epochColumn = byName["epoch"], let epoch = taken.int(0, epochColumn) else {
                throw StorageError("database \(location): a claimed row has no epoch")
            }
            guard let writtenColumn = byName["written"], taken.int(0, writtenColumn) == 1 else {
                return .claimed(epoch: epoch, record: nil)
            }
            let values = columns.map { spec -> StoredValue? in
                byName[Self.columnName(spec)].flatMap { Self.value(taken, 0, $0, spec.type) }
            }
            return .claimed(epoch: epoch, record: StoredRecord(key: key, values: values))
        }
    }

    /// The next logins' connection (the second connects at its first use).
    private func loginSlot() -> PGSlot {
        nextLogin.lock()
        defer { nextLogin.unlock() }
        loginTurn &+= 1
        return logins[loginTurn % logins.count]
    }

    func heldLeases() throws(StorageError) -> [[UInt8]: Int64] {
        try writer.use { (db: PGConnection) throws(StorageError) -> [[UInt8]: Int64] in
            let rows = try db.execute("SELECT key, epoch FROM players WHERE owner = $1", [.text(owner)])
            var held: [[UInt8]: Int64] = [:]
            for row in 0..<rows.rowCount {
                if let key = rows.bytes(row, 0), let epoch = rows.int(row, 1) { held[key] = epoch }
            }
            return held
        }
    }

    // MARK: - Writing (the write-behind's worker)

    @discardableResult
    func write(_ batch: PersistBatch) throws(StorageError) -> WriteReceipt {
        try writer.use { (db: PGConnection) throws(StorageError) -> WriteReceipt in
            var receipt = WriteReceipt()
            // Renewal first, in a statement of its own: a batch the
            // database refuses (a poison row) must not let every lease
            // expire with it.
            if let held = batch.held { receipt.fenced = try renewHeld(db, held, &receipt) }
            var rest = batch
            rest.held = nil
            guard !rest.isEmpty else { return receipt }
            let lost = Set(receipt.fenced)
            try db.transaction { () throws(StorageError) in
                try ensureColumns(db, table: "globals", kind: .global, batch.globalColumns)
                try ensureColumns(db, table: "players", kind: .player, batch.playerColumns)
                for key in batch.deleted {
                    try db.execute("""
                        DELETE FROM players WHERE key = $1 AND (owner IS NULL OR owner = $2 OR lease_expires < now())
                        """, [.text(String(decoding: key, as: UTF8.self)), .text(owner)])
                }
                if let global = batch.global { try writeGlobal(db, global, batch.globalColumns) }
                receipt.fenced += try writePlayers(db, batch).filter { !lost.contains($0) }
                try release(db, batch.released)
                if let timers = batch.timers { try writeTimers(db, timers) }
                if let declared = batch.declared {
                    try db.execute("UPDATE fields SET declared = false WHERE declared")
                    for spec in declared {
                        try db.execute("UPDATE fields SET declared = true WHERE kind = $1 AND name = $2 AND type = $3",
                                       [.text(spec.kind.description), .text(spec.name), .text(spec.type.description)])
                    }
                }
            }
            return receipt
        }
    }

    /// Rows per statement: PostgreSQL takes at most 65,535 parameters.
    private static func rowsPerStatement(columns: Int) -> Int { max(1, min(1000, 60_000 / (columns + 2))) }

    /// The players, fenced: a row is written only while it still has the
    /// epoch this server loaded it under, and is this server's or nobody's
    /// (released by this server, not taken since: the epoch would have
    /// moved). Returns the keys that were not.
    private func writePlayers(_ db: PGConnection, _ batch: PersistBatch) throws(StorageError) -> [[UInt8]] {
        guard !batch.players.isEmpty else { return [] }
        let columns = batch.playerColumns
        let names = columns.map { Self.quoted(Self.columnName($0)) }
        var fenced: [[UInt8]] = []
        let chunk = Self.rowsPerStatement(columns: columns.count)
        var start = 0
        while start < batch.players.count {
            let end = min(start + chunk, batch.players.count)
            var parameters: [PGValue?] = [.text(owner), .int(Int64(leaseSeconds))]
            var tuples: [String] = []
            for index in start..<end {
                let record = batch.players[index]
                var placeholders = ["$\(parameters.count + 1)::text", "$\(parameters.count + 2)::bigint"]
                parameters.append(.text(String(decoding: record.key, as: UTF8.self)))
                parameters.append(.int(index < batch.epochs.count ? batch.epochs[index] : 0))
                for (column, spec) in columns.enumerated() {
                    placeholders.append("$\(parameters.count + 1)::\(spec.type == .int ? "bigint" : "bytea")")
                    parameters.append(column < record.values.count ? record.values[column].map(PGValue.init) : nil)
                }
                tuples.append("(" + placeholders.joined(separator: ", ") + ")")
            }
            let assignments = (["owner = $1", "lease_expires = now() + make_interval(secs => $2)", "written = true"]
                + names.map { "\($0) = COALESCE(v.\($0), p.\($0))" }).joined(separator: ", ")
            let result = try db.execute("""
                UPDATE players AS p SET \(assignments)
                FROM (VALUES \(tuples.joined(separator: ", "))) AS v(key, epoch\(names.isEmpty ? "" : ", " + names.joined(separator: ", ")))
                WHERE p.key = v.key AND p.epoch = v.epoch AND (p.owner = $1 OR p.owner IS NULL)
                RETURNING p.key
                """, parameters)
            if result.rowCount < end - start {
                var written = Set<[UInt8]>()
                for row in 0..<result.rowCount { if let key = result.bytes(row, 0) { written.insert(key) } }
                fenced += batch.players[start..<end].map(\.key).filter { !written.contains($0) }
            }
            start = end
        }
        return fenced
    }

    /// A list of leases as one JSON text (a key is any UTF-8 without NUL:
    /// no separator is safe), for `json_to_recordset`.
    private static func json(_ leases: [LeaseRelease]) throws(StorageError) -> PGValue {
        let list = leases.map { ["key": String(decoding: $0.key, as: UTF8.self), "epoch": $0.epoch] as [String: Any] }
        do {
            return .text(String(decoding: try JSONSerialization.data(withJSONObject: list), as: UTF8.self))
        } catch {
            throw StorageError("cannot encode a list of leases: \(error)")
        }
    }

    /// Gives leases back, in one statement: only where the epoch is still
    /// the one given. A row never written (a name a login claimed and
    /// did not keep) is deleted instead: nothing of it is worth keeping.
    private func release(_ db: PGConnection, _ released: [LeaseRelease]) throws(StorageError) {
        guard !released.isEmpty else { return }
        try db.execute("""
            WITH h AS (SELECT * FROM json_to_recordset($1::json) AS h(key text, epoch bigint)),
            gone AS (DELETE FROM players p USING h
                     WHERE p.key = h.key AND p.epoch = h.epoch AND p.owner = $2 AND NOT p.written RETURNING p.key)
            UPDATE players p SET owner = NULL, lease_expires = NULL FROM h
            WHERE p.key = h.key AND p.epoch = h.epoch AND p.owner = $2 AND p.written
            """, [try Self.json(released), .text(owner)])
    }

    /// Every third of `leaseSeconds` (the write-behind's held-lease
    /// check): renews the leases this server holds, and this server's
    /// name, in one statement, and returns those it no longer holds
    /// (another server claimed the player after this one's lease expired:
    /// it was cut off, or stalled, past `leaseSeconds`). A row given back
    /// and not claimed since (owner NULL, same epoch) is still this
    /// server's to take back with its next write.
    private func renewHeld(_ db: PGConnection, _ held: [LeaseRelease], _ receipt: inout WriteReceipt) throws(StorageError) -> [[UInt8]] {
        receipt.nameHeldBy = try renewName(db)
        guard !held.isEmpty else { return [] }
        let rows = try db.execute("""
            WITH h AS (SELECT * FROM json_to_recordset($1::json) AS h(key text, epoch bigint)),
            renewed AS (UPDATE players p SET lease_expires = now() + make_interval(secs => $3) FROM h
                        WHERE p.key = h.key AND p.epoch = h.epoch AND p.owner = $2 RETURNING p.key)
            SELECT h.key FROM h LEFT JOIN players p
                ON p.key = h.key AND p.epoch = h.epoch AND (p.owner = $2 OR p.owner IS NULL)
            WHERE p.key IS NULL
            """, [try Self.json(held), .text(owner), .int(Int64(leaseSeconds))])
        var lost: [[UInt8]] = []
        for row in 0..<rows.rowCount {
            if let key = rows.bytes(row, 0) { lost.append(key) }
        }
        return lost
    }

    private func writeGlobal(_ db: PGConnection, _ global: StoredRecord, _ columns: [FieldSpec]) throws(StorageError) {
        let names = columns.map { Self.quoted(Self.columnName($0)) }
        var parameters: [PGValue?] = [.text(serverName)]
        var placeholders = ["$1"]
        for (index, spec) in columns.enumerated() {
            placeholders.append("$\(parameters.count + 1)::\(spec.type == .int ? "bigint" : "bytea")")
            parameters.append(index < global.values.count ? global.values[index].map(PGValue.init) : nil)
        }
        let updates = names.isEmpty ? "NOTHING" : "UPDATE SET " + names.map { "\($0) = excluded.\($0)" }.joined(separator: ", ")
        try db.execute("""
            INSERT INTO globals (\((["server"] + names).joined(separator: ", "))) VALUES (\(placeholders.joined(separator: ", ")))
            ON CONFLICT (server) DO \(updates)
            """, parameters)
    }

    private func writeTimers(_ db: PGConnection, _ timers: [StoredTimer]) throws(StorageError) {
        try db.execute("DELETE FROM timers WHERE server = $1", [.text(serverName)])
        for timer in timers {
            try db.execute("""
                INSERT INTO timers (server, owner_kind, owner_key, event, payload, due_unix_ms, period_ms, fired)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                """, [.text(serverName), .text(timer.global ? "global" : "player"),
                      .text(String(decoding: timer.ownerKey, as: UTF8.self)), .bytes(timer.event), .bytes(timer.payload),
                      .int(timer.dueUnixMilliseconds), .int(timer.periodMilliseconds), .int(timer.fired)])
        }
    }

    /// Adds the columns a batch has that the database does not (another
    /// server may add the same one at the same moment: IF NOT EXISTS).
    private func ensureColumns(_ db: PGConnection, table: String, kind: EntityKind, _ columns: [FieldSpec]) throws(StorageError) {
        let known = try db.execute("SELECT name || ':' || type FROM fields WHERE kind = $1", [.text(kind.description)])
        var names = Set<String>()
        for row in 0..<known.rowCount { if let name = known.text(row, 0) { names.insert(name) } }
        for spec in columns where !names.contains(Self.columnName(spec)) {
            let type = spec.type == .int ? "BIGINT" : "BYTEA"
            let value: String = spec.type == .int
                ? String(spec.defaultInt)
                : "'\\x" + spec.defaultString.map { String(format: "%02x", $0) }.joined() + "'::bytea"
            try db.execute("ALTER TABLE \(table) ADD COLUMN IF NOT EXISTS \(Self.quoted(Self.columnName(spec))) \(type) DEFAULT \(value)")
            try db.execute("""
                INSERT INTO fields (kind, name, type, is_unique, default_int, default_bytes, added_ms)
                VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING
                """, [.text(kind.description), .text(spec.name), .text(spec.type.description), .bool(spec.unique),
                      spec.type == .int ? .int(spec.defaultInt) : nil,
                      spec.type == .string ? .bytes(spec.defaultString) : nil,
                      .int(Int64(Date().timeIntervalSince1970 * 1000))])
        }
    }

    // MARK: - Checks and closing

    /// An idle server's check (at most once a second): the database still
    /// answers. (Leases are renewed by the held-lease check, which a flush
    /// makes every third of `leaseSeconds` even with nothing to write.)
    func verifyIdentity() throws(StorageError) {
        try writer.use { (db: PGConnection) throws(StorageError) in try db.execute("SELECT 1") }
    }

    /// At a clean exit (after the final flush gave the players back): the
    /// name is free at once. Never after an upgrade's exec (no exit).
    func close() {
        _ = try? writer.use { (db: PGConnection) throws(StorageError) in
            try db.execute("DELETE FROM servers WHERE name = $1 AND owner = $2", [.text(serverName), .text(owner)])
        }
        writer.close()
        logins.forEach { $0.close() }
    }

    static func columnName(_ spec: FieldSpec) -> String { "\(spec.name):\(spec.type)" }

    static func quoted(_ identifier: String) -> String {
        "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A connection used by one thread at a time, connected again after it
/// broke: at most once per `retryMilliseconds` (doubling to 5 s while the
/// database stays away), so a flush or a LOGIN against a database that is
/// down fails at once instead of each waiting for a connect timeout.
final class PGSlot: @unchecked Sendable {
    private let url: String
    /// Guards everything below; held for a whole statement (one thread at
    /// a time per connection), on a worker, never on the loop.
    private let lock = NSLock()
    private var connection: PGConnection?
    private var closed = false
    private var nextAttempt: UInt64 = 0
    private var backoffMilliseconds: UInt64 = 100
    private var lastError: StorageError?

    init(url: String, connection: PGConnection?) {
        self.url = url
        self.connection = connection
    }

    func use<R>(_ body: (PGConnection) throws(StorageError) -> R) throws(StorageError) -> R {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { throw StorageError("database connection closed (the server is stopping)", transient: true) }
        if let connection, !connection.isBroken { return try body(connection) }
        connection?.close()
        connection = nil
        let now = DispatchTime.now().uptimeNanoseconds / 1_000_000
        if now < nextAttempt, let lastError {
            throw StorageError("\(lastError.description) (connecting again in \(nextAttempt - now) ms)", transient: true)
        }
        let fresh: PGConnection
        do throws(StorageError) {
            fresh = try PGConnection.connect(url)
        } catch {
            lastError = error
            nextAttempt = now + backoffMilliseconds
            backoffMilliseconds = min(backoffMilliseconds * 2, 5_000)
            throw error
        }
        backoffMilliseconds = 100
        lastError = nil
        connection = fresh
        return try body(fresh)
    }

    func close() {
        lock.lock()
        defer { lock.unlock() }
        closed = true
        connection?.close()
        connection = nil
    }
}

extension PGConnection {
    /// Runs `body` between BEGIN and COMMIT; a throw rolls back (a broken
    /// connection rolls back by itself).
    func transaction(_ body: () throws(StorageError) -> Void) throws(StorageError) {
        try execute("BEGIN")
        do {
            try body()
            try execute("COMMIT")
        } catch {
            _ = try? execute("ROLLBACK")
            throw error
        }
    }
}
