import Foundation
import Testing

/// Durable players over real sockets, with the real default game and real
/// SQLite files: what a player earns survives logout, restart, SIGTERM and
/// kill -9; reloads that add, drop, bring back and retype player fields
/// keep every stored player's values; the database refuses what it must.
@Suite struct PersistenceTests {
    /// A fresh database path in a directory of its own (removed by `done`).
    final class Scratch: @unchecked Sendable {
        let directory: URL
        var database: URL { directory.appendingPathComponent("game.sqlite") }

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("hotswap-persist-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: directory) }
    }

    static func module(_ name: String) -> String { Products.library(name).path }

    /// One value (or rows, one per line) from the `sqlite3` shell: the file
    /// as an operator would read it, while the server runs.
    static func sql(_ database: String, _ query: String) throws -> String {
        let (status, output) = try runProgram("/usr/bin/sqlite3", [database, query])
        guard status == 0 else { throw TestFailure("sqlite3 \(query): \(output)") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Waits until every change has been written: nothing dirty and
    /// nothing in flight. (Counting flushes instead raced the write-behind:
    /// at a 50 ms interval the flush this waits for can end before the
    /// first STATUS, and then no further one ever comes.)
    static func waitForFlush(_ server: TestServer) throws {
        let flushed = try waitUntil(10) {
            let status = try server.statusFields()
            return status["dirty"] == "0" && status["in_flight"] == "0" && status["flush"] == "idle"
        }
        guard flushed else { throw TestFailure("no flush: \(try server.statusFields())") }
    }

    @Test func aScoreSurvivesLogoutAndLogin() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        #expect(try alice.call("QUIT") == "+BYE")
        // Names are keys ignoring case, like the login itself.
        let again = try server.connect()
        #expect(try again.call("LOGIN ALICE") == "+WELCOME ALICE login 3 score 6")
        #expect(try again.call("SCORE") == "+SCORE ALICE:6")
        #expect(try bob.call("SCORE") == "+SCORE bob:1")
        let status = try server.statusFields()
        #expect(status["players_stored"] == "2")
    }

    @Test func scoresAndTheLoginCounterSurviveKillDashNineAfterAFlush() throws {
        let scratch = try Scratch()
        let arguments = ["--database", scratch.database.path, "--flush-interval", "50"]
        do {
            let server = try TestServer(arguments: arguments)
            _ = try playedRoom(server)
            try Self.waitForFlush(server)
            kill(server.process.processIdentifier, SIGKILL)
            server.process.waitUntilExit()
            #expect(server.process.terminationReason == .uncaughtSignal)
        }
        let server = try TestServer(arguments: arguments)
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+WELCOME alice login 3 score 6")
        #expect(try server.connect().call("LOGIN bob") == "+WELCOME bob login 4 score 1")
        #expect(try server.statusFields()["players_stored"] == "2")
    }

    /// SIGTERM and SIGINT flush what is dirty before exit: no need to wait
    /// for an interval (here a minute, so only the final flush can have
    /// written).
    @Test(arguments: [SIGTERM, SIGINT])
    func aStopSignalWritesEverythingWithoutWaiting(signal: Int32) throws {
        let scratch = try Scratch()
        let arguments = ["--database", scratch.database.path, "--flush-interval", "60000"]
        do {
            let server = try TestServer(arguments: arguments)
            let (alice, bob) = try playedRoom(server)
            _ = try alice.collectGem(as: "alice", watchers: [bob])
            kill(server.process.processIdentifier, signal)
            #expect(server.waitForExit() == 0)
            #expect(server.logContains("final flush wrote"))
        }
        #expect(try Self.sql(scratch.database.path, "SELECT \"score:int\" FROM players WHERE key = 'alice'") == "7")
        let server = try TestServer(arguments: arguments)
        #expect(try server.connect().call("LOGIN Alice") == "+WELCOME Alice login 3 score 7")
    }

    /// One player, one live session: the name is taken while alice plays,
    /// free again (with her score) once she leaves.
    @Test func twoSessionsCannotHoldOnePlayer() throws {
        let server = try TestServer()
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        #expect(try server.connect().call("LOGIN alice").hasPrefix("-ERR NAME_TAKEN"))
        #expect(try server.connect().call("LOGIN Alice").hasPrefix("-ERR NAME_TAKEN"))
        alice.reset()
        let back = try server.connect()
        #expect(try waitUntil { try back.call("LOGIN alice").hasPrefix("+WELCOME alice") })
    }

    /// A reload adds a player field (every stored player, online or not,
    /// gets its default), drops one (kept, hidden, in memory and in the
    /// file) and a rollback or a later reload brings it back, across a
    /// restart too.
    @Test func addedDroppedAndReturningPlayerFieldsKeepEveryStoredValue() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let arguments = ["--database", database, "--flush-interval", "50"]
        do {
            let server = try TestServer(arguments: arguments)
            let (alice, bob) = try playedRoom(server)
            #expect(try bob.call("QUIT") == "+BYE")  // bob is offline from here on
            let admin = try server.connectAdmin()
            #expect(try admin.call("RELOAD \(Self.module("PlayerFieldsModule"))").hasPrefix("+OK gems 1.2.0 -> titles 1.0"))
            #expect(try alice.call("ME") == "+ME alice rookie")
            #expect(try alice.call("TITLE champion") == "+OK")
            try Self.waitForFlush(server)
            // The file: the new column with its default for offline bob, the
            // dropped one still holding both scores.
            #expect(try Self.sql(database, "SELECT key, \"title:string\", \"score:int\" FROM players ORDER BY key")
                == "alice|champion|6\nbob|rookie|1")
            #expect(try admin.call("ROLLBACK").hasPrefix("+OK titles 1.0 -> gems 1.2.0"))
            #expect(try alice.call("SCORE") == "+SCORE alice:6")
            #expect(server.stop() == 0)
        }
        // A new server reads every column back, the hidden one too.
        let server = try TestServer(arguments: arguments)
        let bob = try server.connect()
        #expect(try bob.call("LOGIN bob") == "+WELCOME bob login 3 score 1")
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        #expect(try server.connectAdmin().call("RELOAD \(Self.module("PlayerFieldsModule"))").hasPrefix("+OK"))
        #expect(try alice.call("ME") == "+ME alice champion")
        #expect(try bob.call("ME") == "+ME bob rookie")
    }

    /// A retyped player field is migrated for every stored player, offline
    /// ones included, and the file holds the new column whole.
    @Test func aRetypedPlayerFieldMigratesOfflinePlayers() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"])
        let (alice, bob) = try playedRoom(server)
        #expect(try bob.call("QUIT") == "+BYE")
        let carol = try server.connect()
        _ = try carol.call("LOGIN carol")
        #expect(try carol.call("QUIT") == "+BYE")
        let reply = try server.connectAdmin().call("RELOAD \(Self.module("GameLogicV3"))")
        // The global entity, alice's session, her room and three players.
        #expect(reply.hasPrefix("+OK gems 1.2.0 -> gems 3.0.0"))
        #expect(statusFields(reply)["migrated"] == "6")
        #expect(try alice.call("SCORE") == "+SCORE alice 6 gems")
        try Self.waitForFlush(server)
        #expect(try Self.sql(database, "SELECT key, \"score:string\", \"score:int\" FROM players ORDER BY key")
            == "alice|6 gems|6\nbob|1 gems|1\ncarol|0 gems|0")
    }

    /// SAVE writes what changed now, whatever the interval, and answers
    /// once it is in the file; with nothing changed it writes nothing, and
    /// with persistence off it says so.
    @Test func saveWritesEverythingNowAndAnswersOnceItIsInTheFile() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000"])
        _ = try playedRoom(server)
        let admin = try server.connectAdmin()
        let reply = try admin.call("SAVE")
        #expect(reply.hasPrefix("+OK saved records=3 write_ms="), "\(reply)")  // alice, bob, the login counter
        #expect(try Self.sql(database, "SELECT key, \"score:int\" FROM players ORDER BY key") == "alice|6\nbob|1")
        #expect(try admin.call("SAVE") == "+OK saved records=0 write_ms=0.00")
        #expect(try server.statusFields()["flushes"] == "1")
        let memory = try TestServer(arguments: ["--database", ":memory:"])
        #expect(try memory.connectAdmin().call("SAVE") == "-ERR SAVE_FAILED persistence is off (--database :memory:)")
    }

    /// FORGET deletes a stored player for good, for an erasure request:
    /// refused while the player plays, gone from memory at once and from
    /// the file at the next flush, across a restart; the name then starts
    /// from nothing. The audit log names whom.
    @Test func forgetDeletesAStoredPlayerForGood() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let audit = scratch.directory.appendingPathComponent("audit.jsonl").path
        let arguments = ["--database", database, "--flush-interval", "60000", "--audit-log", audit]
        do {
            let server = try TestServer(arguments: arguments)
            let (alice, _) = try playedRoom(server)
            let admin = try server.connectAdmin()
            #expect(try admin.call("FORGET alice").hasPrefix("-ERR FORGET_FAILED alice is playing"))
            #expect(try admin.call("FORGET nobody") == "-ERR FORGET_FAILED no stored player has the key nobody")
            #expect(try admin.call("SAVE").hasPrefix("+OK saved records=3 "))
            #expect(try alice.call("QUIT") == "+BYE")
            // Her session ends after its reply: FORGET succeeds once it has.
            #expect(try waitUntil(10) { try admin.call("FORGET alice") == "+OK forgot alice" })
            #expect(try server.statusFields()["players_stored"] == "1")
            #expect(try admin.call("SAVE").hasPrefix("+OK saved records=1 "))
            #expect(try Self.sql(database, "SELECT key FROM players ORDER BY key") == "bob")
            #expect(server.stop() == 0)
        }
        let server = try TestServer(arguments: arguments)
        #expect(try server.connect().call("LOGIN alice").hasSuffix(" score 0"))
        #expect(try waitUntil(10) {
            (try? String(contentsOfFile: audit, encoding: .utf8))?.contains(#""action":"FORGET","#) == true
        })
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.contains(#""action":"FORGET""#) && $0.contains(#""result":"ok""#) && $0.contains(#""subject":"alice""#) })
    }

    /// Thousands of stored players: the file the tests below start from
    /// (a player `seed` with score 0, and `p1`…`pN` with scores 1…N).
    static func seedPlayers(_ database: String, _ count: Int) throws {
        do {
            let server = try TestServer(arguments: ["--database", database])
            _ = try server.connect().call("LOGIN seed")
            #expect(server.stop() == 0)
        }
        _ = try sql(database, """
            WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < \(count))
            INSERT INTO players (key, "score:int") SELECT 'p' || i, i FROM n
            """)
    }

    /// A retype with thousands of stored players migrates them between
    /// messages before it commits: the game is served meanwhile (STATUS
    /// says how far the migration got), a score won meanwhile is migrated
    /// from its new value, a player created meanwhile is migrated too, and
    /// the file then holds the new column whole.
    @Test func aRetypeOfManyStoredPlayersMigratesThemBetweenMessages() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let stored = 4_000
        try Self.seedPlayers(database, stored)
        // The migration does not commit while the gate file exists (a test
        // knob): the test plays against it as long as it needs.
        let gate = try StagingGate()
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"], shell: gate.shell)
        let (alice, bob) = try playedRoom(server)
        let admin = try server.connectAdmin()
        // SlowRetypeModule spends 250 µs on each player: a second of slices.
        try admin.send("RELOAD \(Self.module("SlowRetypeModule"))")
        #expect(try waitUntil(10) { try server.statusFields()["migrating"] != nil })
        let gem = try bob.collectGem(as: "bob", watchers: [alice])
        #expect(gem.score == 2)
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol"))
        let progress = try server.statusFields()["migrating"] ?? ""
        // Still migrating after all that play: it was served between slices.
        #expect(progress.hasPrefix("gems@3.1.0-slow:") && progress.hasSuffix("/\(stored + 3)"), "\(progress)")
        #expect(try server.statusFields()["reload"] == "staging")
        gate.open()
        let reply = try admin.reply()
        #expect(reply.hasPrefix("+OK gems 1.2.0 -> gems 3.1.0-slow "), "\(reply)")
        let fields = statusFields(reply)
        #expect(fields["staged"] == "\(stored + 3)")  // seed, p1…pN, alice and bob
        let remigrated = Int(fields["remigrated"] ?? "") ?? 0
        #expect(remigrated >= 2)  // bob's gem, carol's arrival
        // Only migrations in the swap itself could count themselves in the
        // global field: in a slice, a write to anything but the player
        // migrated is refused.
        #expect(try alice.call("COUNT") == "+COUNT \(remigrated)")
        #expect(Int(fields["slices"] ?? "") ?? 0 > 1)
        #expect(Int(fields["slice_max_us"] ?? "") ?? .max < 500_000)
        #expect(try bob.call("SCORE") == "+SCORE 2 gems")
        #expect(try carol.call("SCORE") == "+SCORE 0 gems")
        #expect(try alice.call("SCORE") == "+SCORE 6 gems")
        #expect(try server.statusFields()["migrating"] == nil)
        try Self.waitForFlush(server)
        #expect(try Self.sql(database, "SELECT count(*) FROM players") == "\(stored + 4)")
        #expect(try Self.sql(database, """
            SELECT count(*) FROM players WHERE "score:string" = coalesce("score:int", 0) || ' gems'
            """) == "\(stored + 4)")
        #expect(try Self.sql(database, "SELECT \"score:string\" FROM players WHERE key IN ('p17', 'bob') ORDER BY key")
            == "2 gems\n17 gems")
    }

    /// A server stopped while a reload migrates its stored players refuses
    /// the reload and writes what the game changed; the file never holds
    /// the new column.
    @Test func aStopDuringAStagedMigrationRefusesTheReloadAndKeepsTheFile() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        try Self.seedPlayers(database, 4_000)
        let gate = try StagingGate()
        defer { gate.open() }
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000"], shell: gate.shell)
        let (alice, bob) = try playedRoom(server)
        let admin = try server.connectAdmin()
        try admin.send("RELOAD \(Self.module("SlowRetypeModule"))")
        #expect(try waitUntil(10) { try server.statusFields()["migrating"] != nil })
        _ = try bob.collectGem(as: "bob", watchers: [alice])
        // Still staging, whatever the machine's speed: the gate holds the commit.
        #expect(try server.statusFields()["reload"] == "staging")
        kill(server.process.processIdentifier, SIGTERM)
        #expect(try admin.reply() == "-ERR RELOAD_FAILED the server is shutting down")
        #expect(server.waitForExit() == 0)
        #expect(try Self.sql(database, "SELECT count(*) FROM pragma_table_info('players') WHERE name = 'score:string'") == "0")
        #expect(try Self.sql(database, "SELECT key, \"score:int\" FROM players WHERE key IN ('alice', 'bob', 'p17') ORDER BY key")
            == "alice|6\nbob|2\np17|17")
    }

    /// A migration runs on a reload, never at start: a start whose module
    /// declares a stored field with another type than the module that last
    /// served the file is refused with what to do, and doing it works.
    @Test func aStartThatWouldRetypeAStoredFieldIsRefusedAndAReloadMigrates() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let arguments = ["--database", database, "--flush-interval", "50"]
        do {
            let server = try TestServer(arguments: arguments)
            _ = try playedRoom(server)
            #expect(server.stop() == 0)
        }
        let (status, log) = try runServerExpectingExit(["--database", database, "--module", Self.module("GameLogicV3")])
        #expect(status == 2)
        #expect(log.contains("holds player.score as int"))
        #expect(log.contains("start with the module that wrote the database, then RELOAD this one"))
        // The file is untouched, and the advice works.
        #expect(try Self.sql(database, "SELECT key, \"score:int\" FROM players ORDER BY key") == "alice|6\nbob|1")
        let server = try TestServer(arguments: arguments)
        #expect(statusFields(try server.connectAdmin().call("RELOAD \(Self.module("GameLogicV3"))"))["migrated"] == "3")
        try Self.waitForFlush(server)
        #expect(try Self.sql(database, "SELECT key, \"score:string\" FROM players ORDER BY key") == "alice|6 gems\nbob|1 gems")
        #expect(try Self.sql(database, "SELECT name || ':' || type FROM fields WHERE declared = 1 AND kind = 'player'")
            == "score:string")
    }

    /// Past --max-players a new player is refused, and the name it asked
    /// for stays free.
    @Test func thePlayerLimitRefusesNewPlayersAndLeavesTheNameFree() throws {
        let server = try TestServer(arguments: ["--max-players", "1"])
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        let bob = try server.connect()
        #expect(try bob.call("LOGIN bob").hasPrefix("-ERR PLAYER_LIMIT"))
        #expect(try server.connect().call("LOGIN bob").hasPrefix("-ERR PLAYER_LIMIT"))
        #expect(try alice.call("QUIT") == "+BYE")
        #expect(try bob.call("LOGIN alice").hasPrefix("+WELCOME alice"))
    }

    /// `--database :memory:` keeps nothing and tracks nothing.
    @Test func memoryModeKeepsNothing() throws {
        let server = try TestServer(arguments: ["--database", ":memory:"])
        _ = try playedRoom(server)
        let status = try server.statusFields()
        #expect(status["database"] == ":memory:")
        #expect(status["dirty"] == "0")
        #expect(status["players_stored"] == "2")
        #expect(server.stop() == 0)
        let next = try TestServer(arguments: ["--database", ":memory:"])
        #expect(try next.connect().call("LOGIN alice") == "+WELCOME alice login 1 score 0")
    }

    @Test func aSecondServerOnTheSameDatabaseRefusesToStart() throws {
        let scratch = try Scratch()
        let server = try TestServer(arguments: ["--database", scratch.database.path])
        _ = try server.connect().call("LOGIN alice")
        let (status, log) = try runServerExpectingExit(["--database", scratch.database.path])
        #expect(status == 2)
        #expect(log.contains("database \(scratch.database.path) is held by another process"), "\(log)")
        #expect(log.contains("is bound by pid \(server.process.processIdentifier) (gameserver"), "\(log)")
        // The first one is untouched.
        #expect(try server.connect().call("PING") == "+PONG")
    }

    @Test func unusableDatabasesRefuseToStartWithTheReason() throws {
        let scratch = try Scratch()
        // A path that cannot be created.
        let missing = scratch.directory.appendingPathComponent("no/such/dir/game.sqlite").path
        var (status, log) = try runServerExpectingExit(["--database", missing])
        #expect(status == 2)
        #expect(log.contains("cannot open database \(missing): No such file or directory"))
        // A file that is not a database.
        let garbage = scratch.directory.appendingPathComponent("garbage.sqlite")
        try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }).write(to: garbage)
        (status, log) = try runServerExpectingExit(["--database", garbage.path])
        #expect(status == 2)
        #expect(log.contains("database \(garbage.path): file is not a database"))
        // A newer layout than this server knows.
        let newer = scratch.directory.appendingPathComponent("newer.sqlite").path
        _ = try Self.sql(newer, "PRAGMA application_id = 1213421392; PRAGMA user_version = 99; CREATE TABLE players (key TEXT)")
        (status, log) = try runServerExpectingExit(["--database", newer])
        #expect(status == 2)
        #expect(log.contains("has layout 99, newer than this server knows (1)"))
        // Another program's database is left alone.
        let foreign = scratch.directory.appendingPathComponent("foreign.sqlite").path
        _ = try Self.sql(foreign, "CREATE TABLE invoices (id INTEGER)")
        (status, log) = try runServerExpectingExit(["--database", foreign])
        #expect(status == 2)
        #expect(log.contains("holds tables of another program"))
        #expect(try Self.sql(foreign, "SELECT count(*) FROM sqlite_master") == "1")
    }

    /// The documented backup works while the server runs and writes.
    @Test func sqliteBackupWorksWhileTheServerRuns() throws {
        let scratch = try Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "20"])
        let (alice, bob) = try playedRoom(server)
        try Self.waitForFlush(server)
        let backup = scratch.directory.appendingPathComponent("backup.sqlite").path
        // Writes keep going while the backup reads.
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        _ = try Self.sql(database, ".backup '\(backup)'")
        #expect(try ["alice|6\nbob|1", "alice|7\nbob|1"].contains(
            Self.sql(backup, "SELECT key, \"score:int\" FROM players ORDER BY key")))
        #expect(try Self.sql(backup, "PRAGMA integrity_check") == "ok")
        #expect(try alice.call("PING") == "+PONG")
    }

    /// A disk that fills up during flushes: the records stay dirty in
    /// memory, db_errors counts each failed try, the game goes on, and once
    /// there is room again the retry writes everything. The database lives
    /// on a 1 MiB tmpfs in the server's own mount namespace (root only).
    @Test(.enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare"),
                   "needs root and unshare(1) to mount a small tmpfs for the server"))
    func aFullDiskIsCountedRetriedAndRecoveredFrom() throws {
        let scratch = try Scratch()
        let mount = scratch.directory.path
        let database = "\(mount)/game.sqlite"
        let server = try TestServer(
            arguments: ["--database", database, "--flush-interval", "20", "--log-level", "notice"],
            shell: "mount -t tmpfs -o size=1m tmpfs '\(mount)'", launcher: ["/usr/bin/unshare", "-m"])
        // The server's view of its tmpfs, from outside its namespace.
        let inside = "/proc/\(server.process.processIdentifier)/root\(mount)"
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        try Self.waitForFlush(server)
        // Fill the disk to the last byte.
        let filler = "\(inside)/filler"
        _ = try runProgram("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=4096"])
        // New players until a flush fails (each one is a new row).
        var players: [LineClient] = []
        var failed = false
        for index in 0..<400 where !failed {
            let client = try server.connect()
            #expect(try client.call("LOGIN player\(index)").hasPrefix("+WELCOME"))
            players.append(client)
            if index % 20 == 19 {
                failed = try waitUntil(0.5) { Int(try server.statusFields()["db_errors"] ?? "0") ?? 0 > 0 }
            }
        }
        #expect(failed, "no flush failed with the disk full")
        let status = try server.statusFields()
        // Not written: dirty, or taken again by the retry on the worker.
        let unwritten = try #require(Int(status["dirty"] ?? "")) + (try #require(Int(status["in_flight"] ?? "")))
        #expect(unwritten > 0, "\(status)")
        #expect(status["last_db_error"]?.contains("full") == true)
        #expect(server.logContains("records stay dirty in memory"))
        // The game goes on, and the failed flush is retried (errors grow).
        #expect(try alice.call("PING") == "+PONG")
        let errors = Int(status["db_errors"] ?? "0") ?? 0
        #expect(try waitUntil { Int(try server.statusFields()["db_errors"] ?? "0") ?? 0 > errors })
        // Room again: the retry writes every player.
        try FileManager.default.removeItem(atPath: filler)
        #expect(try waitUntil { try server.statusFields()["dirty"] == "0" })
        #expect(server.logContains("database writes work again"))
        // Read in the server's namespace (SQLite resolves /proc/PID/root, a
        // symlink to "/", back into ours).
        let (code, count) = try runProgram("/usr/bin/nsenter", [
            "-t", "\(server.process.processIdentifier)", "-m", "/usr/bin/sqlite3", database, "SELECT count(*) FROM players",
        ])
        #expect(code == 0)
        #expect(count.trimmingCharacters(in: .whitespacesAndNewlines) == "\(players.count + 1)")
    }
}
