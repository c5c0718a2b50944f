import Foundation
import Testing

/// The database file tells the truth, against a careless or hostile
/// operator, over real sockets with a real server and real SQLite files:
/// a file deleted, moved or replaced under a running server is never
/// written to as if it were there (SAVE refused, `db_errors` and
/// `db_file_lost` in STATUS, a critical log line, records left dirty), the
/// path stays locked against a second server, a stop then exits non-zero,
/// a file moved back is written again, and a value edited by hand into
/// something its column's type cannot hold refuses the start, naming it.
@Suite struct DatabaseTruthTests {
    typealias Persistence = PersistenceTests

    /// What the operator does to the database under the running server.
    enum Vanishing: String, CaseIterable, CustomTestStringConvertible {
        /// `rm -rf` of the database's directory.
        case directoryRemoved
        /// `rm game.sqlite game.sqlite-wal game.sqlite-shm`: the directory stays.
        case filesRemoved
        /// Another SQLite file moved over the path.
        case replaced

        var testDescription: String { rawValue }

        /// What SAVE, STATUS and the log say happened.
        var said: String {
            switch self {
            case .directoryRemoved, .filesRemoved: "was deleted"
            case .replaced: "was replaced"
            }
        }

        func apply(to scratch: Persistence.Scratch) throws {
            let database = scratch.database.path
            switch self {
            case .directoryRemoved:
                try FileManager.default.removeItem(at: scratch.directory)
            case .filesRemoved:
                for suffix in ["", "-wal", "-shm"] { try FileManager.default.removeItem(atPath: database + suffix) }
            case .replaced:
                let other = scratch.directory.appendingPathComponent("other.sqlite").path
                _ = try Persistence.sql(other, "CREATE TABLE t (x INTEGER)")
                guard rename(other, database) == 0 else { throw TestFailure("rename: \(String(cString: strerror(errno)))") }
            }
        }
    }

    /// The real path a server shows (it names the file by its full path).
    private static func real(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The line of the log that says `text`.
    private static func line(_ server: TestServer, saying text: String) -> String? {
        server.log.split(separator: "\n").first { $0.contains(text) }.map(String.init)
    }

    /// Every way a file can vanish under a running server: SAVE is refused
    /// naming what happened, STATUS counts it (`db_errors`, `db_file_lost`,
    /// `last_db_error`), one critical log line names the path and what to
    /// do, what changes next stays dirty and is never counted as written,
    /// the game goes on, a second server on the path is refused (and
    /// creates no file there), and SIGTERM exits 1 saying the final flush
    /// failed.
    @Test(arguments: Vanishing.allCases)
    func aVanishedDatabaseIsRefusedCountedAndKeptLocked(_ how: Vanishing) throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let shown = Self.real(database)
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"])
        let (alice, bob) = try playedRoom(server)
        try Persistence.waitForFlush(server)
        let before = try server.statusFields()
        #expect(before["db_errors"] == "0" && before["db_file_lost"] == "0", "\(before)")

        try how.apply(to: scratch)
        let admin = try server.connectAdmin()
        let save = try admin.call("SAVE")
        #expect(save.hasPrefix("-ERR SAVE_FAILED database \(shown) \(how.said)"), "\(save)")
        var status = try server.statusFields()
        #expect(Int(status["db_errors"] ?? "") ?? 0 > 0, "\(status)")
        #expect(status["db_file_lost"] == "1", "\(status)")
        #expect(status["last_db_error"]?.contains(how.said.replacingOccurrences(of: " ", with: "_")) == true, "\(status)")
        #expect(server.logContains("\(how.said) ("))
        let critical = Self.line(server, saying: "database \(shown) \(how.said)")
        #expect(critical?.contains(" critical ") == true, "\(critical ?? server.log)")
        #expect(critical?.contains("/proc/\(server.process.processIdentifier)/fd/") == true, "\(critical ?? "")")
        #expect(critical?.contains("keeps the path locked") == true, "\(critical ?? "")")

        // The game goes on; what changes now stays dirty, written nowhere,
        // and checks keep failing (counted) while the file is gone.
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        let errors = Int(status["db_errors"] ?? "") ?? 0
        #expect(try waitUntil { Int(try server.statusFields()["db_errors"] ?? "") ?? 0 > errors })
        status = try server.statusFields()
        #expect(status["dirty"] != "0" && status["in_flight"] == "0", "\(status)")
        #expect(status["flushes"] == before["flushes"] && status["records_flushed"] == before["records_flushed"], "\(status)")
        #expect(try admin.call("SAVE").hasPrefix("-ERR SAVE_FAILED database \(shown) \(how.said)"))
        #expect(try alice.call("PING") == "+PONG")

        // A second server on the path is refused, before it creates a file:
        // with the directory gone, and once it is back.
        let holder = "database \(database) is held by another process (another server on this path, or someone squatting the name)"
        let named = "is bound by pid \(server.process.processIdentifier) (gameserver, uid \(getuid()))"
        var second = try runServerExpectingExit(["--database", database])
        #expect(second.status == 2)
        #expect(second.log.contains(holder) && second.log.contains(named), "\(second.log)")
        if how == .directoryRemoved {
            try FileManager.default.createDirectory(at: scratch.directory, withIntermediateDirectories: true)
            second = try runServerExpectingExit(["--database", database])
            #expect(second.status == 2)
            #expect(second.log.contains(holder) && second.log.contains(named), "\(second.log)")
        }
        if how != .replaced { #expect(!FileManager.default.fileExists(atPath: database)) }

        // A stop cannot write what is dirty: exit status 1, and why.
        #expect(server.stop() == 1)
        #expect(server.logContains("final flush failed"))
    }

    /// A stop with nothing dirty after the file was deleted still exits 1:
    /// everything the server wrote went with the file.
    @Test func aStopWithNothingDirtyAfterTheFileWasDeletedExitsNonZero() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000"])
        _ = try playedRoom(server)
        #expect(try server.connectAdmin().call("SAVE").hasPrefix("+OK saved records=3 "))
        try Vanishing.filesRemoved.apply(to: scratch)
        #expect(try server.statusFields()["dirty"] == "0")
        #expect(server.stop() == 1)
        let failed = Self.line(server, saying: "final flush failed")
        #expect(failed?.contains("was deleted") == true, "\(failed ?? server.log)")
        #expect(failed?.contains(" critical ") == true, "\(failed ?? "")")
    }

    /// A file moved away is refused like a deleted one; moved back, the
    /// next check sees it, the log says so, and what changed meanwhile is
    /// written (SAVE answers +OK, the file holds it).
    @Test func aFileMovedAwayAndBackIsWrittenAgain() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"])
        let (alice, bob) = try playedRoom(server)
        try Persistence.waitForFlush(server)
        let aside = scratch.directory.appendingPathComponent("aside.sqlite").path
        #expect(rename(database, aside) == 0)
        let admin = try server.connectAdmin()
        #expect(try admin.call("SAVE").hasPrefix("-ERR SAVE_FAILED database \(Self.real(scratch.directory.path))/game.sqlite was moved or renamed"))
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        #expect(rename(aside, database) == 0)
        #expect(try waitUntil { try server.statusFields()["db_file_lost"] == "0" })
        #expect(server.logContains("names the open file again: flushes resume"))
        #expect(try admin.call("SAVE").hasPrefix("+OK saved"))
        #expect(try Persistence.sql(database, "SELECT \"score:int\" FROM players WHERE key = 'alice'") == "7")
        #expect(server.stop() == 0)
    }

    /// A path that cannot be checked is not a lost file (a symbolic link
    /// loop in it here, ELOOP; a `chmod` of the directory gives EACCES the
    /// same way, except to root): flushes and SAVE fail as a transient
    /// error, counted with the reason, `db_file_lost` stays 0, no copy-out
    /// advice is given, and once the path can be checked again flushes
    /// resume by themselves and a stop exits 0.
    @Test func aPathThatCannotBeCheckedIsRetriedNotLost() throws {
        let scratch = try Persistence.Scratch()
        let sub = scratch.directory.appendingPathComponent("sub").path
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        let database = sub + "/game.sqlite"
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"])
        let (alice, bob) = try playedRoom(server)
        try Persistence.waitForFlush(server)
        #expect(rename(sub, sub + ".aside") == 0)
        #expect(symlink("sub", sub) == 0)
        let admin = try server.connectAdmin()
        let save = try admin.call("SAVE")
        #expect(save.hasPrefix("-ERR SAVE_FAILED database \(Self.real(scratch.directory.path))/sub/game.sqlite cannot be checked (stat: "),
                "\(save)")
        let errors = Int(try server.statusFields()["db_errors"] ?? "") ?? 0
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        #expect(try waitUntil { Int(try server.statusFields()["db_errors"] ?? "") ?? 0 > errors })
        let status = try server.statusFields()
        #expect(status["db_file_lost"] == "0" && status["dirty"] != "0", "\(status)")
        #expect(status["last_db_error"]?.contains("cannot_be_checked") == true, "\(status)")
        #expect(!server.logContains("keeps the path locked"))

        #expect(unlink(sub) == 0 && rename(sub + ".aside", sub) == 0)
        #expect(try waitUntil { try server.statusFields()["dirty"] == "0" })
        #expect(try admin.call("SAVE").hasPrefix("+OK saved"))
        #expect(try Persistence.sql(database, "SELECT \"score:int\" FROM players WHERE key = 'alice'") == "7")
        #expect(server.stop() == 0)
    }

    /// An engine upgrade is refused while the file is gone: the next
    /// engine would open the path again and write its dirty rows into a
    /// new, empty file. The server serves on.
    @Test func anUpgradeIsRefusedWhileTheFileIsGone() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let scratch = try Persistence.Scratch()
        let server = try TestServer(arguments: builds.serverArguments + ["--database", scratch.database.path])
        let (alice, _) = try playedRoom(server)
        try Vanishing.directoryRemoved.apply(to: scratch)
        let reply = try server.connectAdmin().call("UPGRADE \(next)")
        #expect(reply.hasPrefix("-ERR UPGRADE_FAILED the database file is gone"), "\(reply)")
        #expect(try alice.call("PING") == "+PONG")
        #expect(try server.statusFields()["engine"] != "next")
    }

    /// The path lock goes over in engine upgrades (handed over beside the
    /// flock, used as it came) and in a fallback, as one socket, never
    /// two: after them, with the files deleted, a second server on the
    /// path is still refused, naming the server, and creates nothing.
    @Test func thePathLockGoesOverInEngineUpgradesAndAFallback() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let liar = try builds.engineThatCannotRestore()
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: builds.serverArguments + ["--database", database])
        let admin = try server.connectAdmin()
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine"))
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine"))
        #expect(try admin.call("UPGRADE \(liar)").hasPrefix("-ERR UPGRADE_FAILED the new engine could not restore"))
        #expect(try Self.pathLocks(of: server.process.processIdentifier) == 1)
        try Vanishing.filesRemoved.apply(to: scratch)
        let second = try runServerExpectingExit(["--database", database])
        #expect(second.status == 2)
        #expect(second.log.contains("database \(database) is held by another process"), "\(second.log)")
        #expect(second.log.contains("is bound by pid \(server.process.processIdentifier) ("), "\(second.log)")
        #expect(!FileManager.default.fileExists(atPath: database))
    }

    /// How many path-lock sockets (`@hotswap-db:…` in /proc/net/unix) the
    /// process holds.
    private static func pathLocks(of pid: Int32) throws -> Int {
        let inodes = Set(try procFile("/proc/net/unix").split(separator: "\n").compactMap { line -> Substring? in
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[7].hasPrefix("@hotswap-db:") else { return nil }
            return fields[6]
        })
        let descriptors = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")
        // A descriptor closed since the listing (the server settles after
        // an upgrade off the loop) is skipped: it holds nothing now.
        return descriptors.filter { fd in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)")
            else { return false }
            return target.hasPrefix("socket:[") && inodes.contains(target.dropFirst(8).dropLast())
        }.count
    }

    /// A value edited by hand that its column cannot hold.
    struct HandEdit: CustomTestStringConvertible, Sendable {
        let sql: String
        /// What the refusal must say.
        let says: [String]
        var testDescription: String { sql }
    }

    static let handEdits = [
        HandEdit(sql: #"UPDATE players SET "score:int" = 'abc' WHERE key = 'alice'"#,
                 says: [#"player 'alice' field score (column "score:int") holds TEXT 'abc' (3 bytes): not an integer"#,
                        #"UPDATE players SET "score:int" = NULL WHERE key = 'alice'"#]),
        HandEdit(sql: #"UPDATE players SET "score:int" = 1.5 WHERE key = 'bob'"#,
                 says: [#"player 'bob' field score (column "score:int") holds REAL 1.5: not a whole number"#]),
        HandEdit(sql: #"UPDATE players SET "score:int" = 99999999999999999999 WHERE key = 'bob'"#,
                 says: [#"player 'bob' field score (column "score:int") holds REAL 1e+20: out of the int range"#]),
        HandEdit(sql: #"UPDATE players SET "score:int" = X'0102' WHERE key = 'alice'"#,
                 says: [#"holds BLOB of 2 bytes: not an integer"#]),
        HandEdit(sql: #"UPDATE globals SET "logins:int" = 'many'"#,
                 says: [#"the global row field logins (column "logins:int") holds TEXT 'many' (4 bytes): not an integer"#]),
        HandEdit(sql: #"INSERT INTO players (key) VALUES (X'FF00')"#,
                 says: ["a player row has the key BLOB of 2 bytes: not text"]),
        HandEdit(sql: #"UPDATE fields SET default_value = 1.5 WHERE name = 'score'"#,
                 says: [#"the default of player field score (column "score:int", in table fields) holds REAL 1.5: not a whole number"#,
                        #"UPDATE fields SET default_value = NULL WHERE kind = 'player' AND name = 'score' AND type = 'int'"#]),
        HandEdit(sql: #"UPDATE players SET "score:int" = 'x'; UPDATE globals SET "logins:int" = 2.5"#,
                 says: ["3 stored values do not fit their column's type"]),
    ]

    /// The start is refused (exit status 2) naming the row, the field and
    /// the stored value's SQLite type, with an SQL statement to start from;
    /// nothing is read as 0 and the file is left as it is.
    @Test(arguments: handEdits)
    func aStoredValueThatDoesNotFitItsColumnRefusesTheStart(_ edit: HandEdit) throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        try Self.playAndStop(database)
        _ = try Persistence.sql(database, edit.sql)
        let before = try Persistence.sql(database, "SELECT key, typeof(\"score:int\"), \"score:int\" FROM players ORDER BY key")
        let (status, log) = try runServerExpectingExit(["--database", database])
        #expect(status == 2, "\(log)")
        #expect(log.contains("database \(Self.real(database)): "), "\(log)")
        for text in edit.says { #expect(log.contains(text), "\(text)\n\(log)") }
        #expect(log.contains("not read as"), "\(log)")
        #expect(try Persistence.sql(database, "SELECT key, typeof(\"score:int\"), \"score:int\" FROM players ORDER BY key") == before)
    }

    /// A played room (alice 6, bob 1) written to `database` by a clean stop.
    private static func playAndStop(_ database: String) throws {
        let server = try TestServer(arguments: ["--database", database])
        _ = try playedRoom(server)
        #expect(server.stop() == 0)
    }

    /// NULL is the column's default (docs/PERSISTENCE.md), not a value
    /// that does not fit: the start reads it as the default.
    @Test func aNullIsTheColumnsDefault() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        try Self.playAndStop(database)
        _ = try Persistence.sql(database, #"UPDATE players SET "score:int" = NULL WHERE key = 'alice'"#)
        let server = try TestServer(arguments: ["--database", database])
        #expect(try server.connect().call("LOGIN alice") == "+WELCOME alice login 3 score 0")
    }
}
