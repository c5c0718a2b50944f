import Foundation
import Testing

/// What the database and the fault policy promise, over real sockets with a
/// real server and real SQLite files: a kill -9 in the middle of a large
/// flush leaves the file whole and either all old or all new, the file is
/// in WAL mode, the fault window forgets old faults, and FORGET waits for a
/// reload's migration.
@Suite struct DurabilityTests {
    typealias Persistence = PersistenceTests

    /// 100,000 stored players made dirty at once (a reload that retypes
    /// their score: every one is migrated, so every row is dirty), then
    /// SIGKILL while their one flush is on the worker. The file passes
    /// SQLite's integrity check and holds every row as it was before the
    /// flush (no "score:string" column yet) or every row as the flush
    /// wrote it: the column's creation and all its values are one
    /// transaction, never part of it.
    @Test(.timeLimit(.minutes(5)))
    func aKillDashNineDuringALargeFlushLeavesEveryRowOldOrEveryRowNew() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let stored = 100_000
        let rows = stored + 1  // p1…pN and `seed`
        try Persistence.seedPlayers(database, stored)
        // A minute between flushes: the only flush is the one SAVE starts.
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000"])
        let admin = try server.connectAdmin()
        let reload = try admin.call("RELOAD \(Persistence.module("GameLogicV3"))")
        #expect(reload.hasPrefix("+OK gems 1.2.0 -> gems 3.0.0"), "\(reload)")
        let watcher = try server.connectAdmin()
        var status = statusFields(try watcher.call("STATUS"))
        #expect(status["dirty"] == "\(rows)", "every stored player is dirty after the migration: \(status)")
        #expect(status["flush"] == "idle", "\(status)")

        _ = admin.takeEvents()  // >MIGRATING progress, before the reload's reply
        try admin.send("SAVE")
        // As fast as STATUS answers: the flush is copied out over a few
        // loop turns ("collecting"), then written on the worker ("writing").
        var seenWriting = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            status = statusFields(try watcher.call("STATUS"))
            if status["flush"] == "writing" {
                seenWriting = true
                break
            }
            // SAVE answered: the flush is over, and was never seen writing.
            if admin.hasInput(within: 0), try admin.readLine()?.hasPrefix(">") != true { break }
        }
        // While they are on the worker they are neither dirty nor written:
        // STATUS counts them in flight.
        if seenWriting { #expect(status["in_flight"] == "\(rows)" && status["dirty"] == "0", "\(status)") }
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
        #expect(server.process.terminationReason == .uncaughtSignal)
        #expect(seenWriting, "the flush of \(rows) rows was not seen on the worker; last STATUS: \(status)")

        #expect(try Persistence.sql(database, "PRAGMA integrity_check") == "ok")
        #expect(try Persistence.sql(database, "SELECT count(*) FROM players") == "\(rows)")
        // The old column is never touched by the migration: every value as seeded.
        #expect(try Persistence.sql(database, """
            SELECT count(*) FROM players
            WHERE coalesce("score:int", 0) = CASE key WHEN 'seed' THEN 0 ELSE CAST(substr(key, 2) AS INTEGER) END
            """) == "\(rows)")
        let column = try Persistence.sql(database,
                                         "SELECT count(*) FROM pragma_table_info('players') WHERE name = 'score:string'")
        let declared = try Persistence.sql(database,
                                           "SELECT count(*) FROM fields WHERE kind = 'player' AND name = 'score' AND type = 'string'")
        // The column and its row in `fields` come in the same transaction.
        #expect(declared == column, "fields has \(declared) rows for score:string, players \(column) such columns")
        if column == "1" {
            // All new: every row holds its migrated value (a row the
            // transaction did not reach would hold the column's default).
            let migrated = try Persistence.sql(database, """
                SELECT count(*) FROM players WHERE "score:string" = coalesce("score:int", 0) || ' gems'
                """)
            #expect(migrated == "\(rows)", "a mix: \(migrated) of \(rows) rows hold their migrated score")
        } else {
            // All old: the file as before the flush.
            #expect(column == "0")
        }
    }

    /// The file is in WAL mode while the server runs (readers, such as a
    /// backup or the `sqlite3` shell, never block the writer, nor it them).
    /// `synchronous` is per connection, so another process cannot read the
    /// server's: SQLiteDurabilitySettingsTests checks it in process.
    @Test func theDatabaseIsInWALModeWhileTheServerRuns() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"])
        #expect(try server.connect().call("LOGIN alice").hasPrefix("+WELCOME alice"))
        try Persistence.waitForFlush(server)
        #expect(try Persistence.sql(database, "PRAGMA journal_mode") == "wal")
        #expect(FileManager.default.fileExists(atPath: database + "-wal"))
        #expect(try Persistence.sql(database, "SELECT key FROM players") == "alice")
    }

    /// `--max-faults 2 --fault-window 1`: two faults more than a second
    /// apart keep the version serving; two within a second roll it back.
    @Test func faultsFurtherApartThanTheWindowDoNotRollBackAndTwoWithinItDo() throws {
        let server = try TestServer(arguments: [
            "--module", Products.library("FaultyModule").path, "--call-timeout", "200",
            "--max-faults", "2", "--fault-window", "1",
        ])
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        #expect(try alice.call("SET 5") == "+OK")
        let admin = try server.connectAdmin()
        // A previous version to roll back to.
        #expect(try admin.call("RELOAD \(Products.library("FaultySwiftModule").path)")
            .hasPrefix("+OK faulty 1.0.0 -> faulty-swift 1.0.0"))

        #expect(try alice.call("FAULT fatal").hasPrefix("-ERR INTERNAL"))
        // The one wait on time: the window has to pass between the two
        // faults (the policy counts loop time, in milliseconds).
        let faultWindowSeconds = 1.0
        Thread.sleep(forTimeInterval: faultWindowSeconds + 0.3)
        #expect(try alice.call("FAULT fatal").hasPrefix("-ERR INTERNAL"))
        var status = statusFields(try admin.call("STATUS"))
        #expect(status["faults"] == "2")
        #expect(status["auto_rollbacks"] == "0", "two faults 1.3 s apart rolled back: \(status)")
        #expect(status["module"] == "faulty-swift")

        // At once: this one and the last are within the window.
        #expect(try alice.call("FAULT fatal").hasPrefix("-ERR INTERNAL"))
        status = statusFields(try admin.call("STATUS"))
        #expect(status["faults"] == "3")
        #expect(status["auto_rollbacks"] == "1", "two faults within the window did not roll back: \(status)")
        #expect(status["module"] == "faulty")
        let events = admin.takeEvents().filter { $0.hasPrefix(">FAULT ") }
        #expect(events.count == 3)
        #expect(events.filter { $0.contains("rolled back") }.count == 1, "\(events)")
        #expect(events.last?.contains("rolled back to faulty@1.0.0 after 2 faults within 1 s") == true, "\(events)")
        #expect(server.logContains("faulted 2 times within 1 s: rolled back to faulty 1.0.0"))
        // Nothing the faults did is left, and the game goes on.
        #expect(try alice.call("GET") == "+VALUE 5")
    }

    /// FORGET is refused while a reload migrates the stored players
    /// between messages (a player deleted from under the staged migration
    /// could come back with the commit), and works once it is done.
    @Test func forgetIsRefusedWhileAReloadMigratesTheStoredPlayers() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let stored = 4_000
        try Persistence.seedPlayers(database, stored)
        // The commit waits for the gate: FORGET meets the migration in progress.
        let gate = try StagingGate()
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"], shell: gate.shell)
        let admin = try server.connectAdmin()
        // SlowRetypeModule spends 250 µs on each player: a second of slices.
        try admin.send("RELOAD \(Persistence.module("SlowRetypeModule"))")
        #expect(try waitUntil(10) { try server.statusFields()["migrating"] != nil })
        let other = try server.connectAdmin()
        #expect(try other.call("FORGET p17") == "-ERR FORGET_FAILED a reload is in progress; try again after it")
        #expect(try server.statusFields()["players_stored"] == "\(stored + 1)")
        gate.open()
        let reply = try admin.reply()
        #expect(reply.hasPrefix("+OK gems 1.2.0 -> gems 3.1.0-slow "), "\(reply)")
        // The same FORGET once the reload is done: it was the reload that refused it.
        #expect(try other.call("FORGET p17") == "+OK forgot p17")
        #expect(try other.call("SAVE").hasPrefix("+OK saved"))
        #expect(try Persistence.sql(database, "SELECT count(*) FROM players WHERE key = 'p17'") == "0")
        #expect(try Persistence.sql(database, "SELECT count(*) FROM players") == "\(stored)")
        #expect(try Persistence.sql(database, "SELECT \"score:string\" FROM players WHERE key = 'p18'") == "18 gems")
    }
}
