import Foundation
import Testing

/// The throwaway PostgreSQL cluster's own promises (TestPostgres,
/// tools/pg-throwaway.sh): databases apart, psql answers, and a stopped
/// cluster leaves no process and no directory behind, however its owner
/// ended. The tests that store players in PostgreSQL rely on all three.
@Suite struct TestPostgresTests {
    @Test func eachTestGetsADatabaseOfItsOwn() throws {
        let postgres = try TestPostgres.shared()
        let first = try postgres.makeDatabase()
        let second = try postgres.makeDatabase()
        #expect(first != second)
        try postgres.psql("CREATE TABLE players (name text)", database: first)
        try postgres.psql("INSERT INTO players VALUES ('alice')", database: first)
        #expect(try postgres.psql("SELECT name FROM players", database: first) == "alice")
        #expect(try postgres.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'players'", database: second) == "0")
        #expect(try postgres.psql("SELECT current_database()", database: second) == String(second.split(separator: "/").last!))
    }

    @Test func psqlReturnsRowsAndThrowsErrors() throws {
        let postgres = try TestPostgres.shared()
        let database = try postgres.makeDatabase()
        #expect(try postgres.psql("SELECT n, 'row ' || n FROM generate_series(1, 3) AS n", database: database)
            == "1|row 1\n2|row 2\n3|row 3")
        #expect(throws: TestFailure.self) { try postgres.psql("SELECT * FROM no_such_table", database: database) }
        #expect(postgres.adminURL.hasPrefix("postgresql://postgres@127.0.0.1:\(postgres.port)/"))
    }

    /// `stop()`, which the shared cluster's atexit handler calls.
    @Test func aStoppedClusterLeavesNothingBehind() throws {
        let postgres = try TestPostgres.start()
        let shared = try TestPostgres.shared()
        #expect(postgres.port != shared.port)
        #expect(postgres.directory != shared.directory)
        #expect(try postgres.psql("SELECT 1", database: "postgres") == "1")
        let postmaster = try #require(postgres.postmasterPID)
        postgres.stop()
        try expectGone(postgres, postmaster: postmaster)
    }

    /// The test runner crashing or killed with SIGKILL: the script's
    /// parent disappears without a word.
    @Test func theScriptStopsTheClusterWhenItsParentDies() throws {
        let postgres = try TestPostgres.start(shell: "\"$0\" & wait")
        let postmaster = try #require(postgres.postmasterPID)
        #expect(try postgres.psql("SELECT 1", database: "postgres") == "1")
        kill(postgres.watchdog.processIdentifier, SIGKILL)
        try expectGone(postgres, postmaster: postmaster)
    }

    /// The script itself killed with SIGKILL: its guard process stops the cluster.
    @Test func theGuardStopsTheClusterWhenTheScriptIsKilled() throws {
        let postgres = try TestPostgres.start()
        let postmaster = try #require(postgres.postmasterPID)
        kill(postgres.watchdog.processIdentifier, SIGKILL)
        try expectGone(postgres, postmaster: postmaster)
    }

    /// Waits until the postmaster has exited (a zombie not yet reaped by
    /// init counts as exited), no process of the cluster is left
    /// and the directory is gone.
    private func expectGone(_ postgres: TestPostgres, postmaster: pid_t) throws {
        let gone = waitUntil(30) {
            !isRunning(postmaster) && processes(in: postgres.directory).isEmpty
                && !FileManager.default.fileExists(atPath: postgres.directory)
        }
        #expect(gone, """
            left behind: postmaster \(postmaster) running \(isRunning(postmaster)), \
            processes \(processes(in: postgres.directory)), \
            directory exists \(FileManager.default.fileExists(atPath: postgres.directory))
            """)
    }
}

/// Whether `pid` is a live process (not gone, not a zombie).
private func isRunning(_ pid: pid_t) -> Bool {
    guard let stat = try? procFile("/proc/\(pid)/stat"), let end = stat.lastIndex(of: ")") else { return false }
    return !stat[stat.index(after: end)...].hasPrefix(" Z")
}

/// Live processes of a cluster in `directory`, as "pid: command": the
/// postmaster names it (`-D`), and every postgres process works in its
/// data directory (a backend renames itself, `postgres: checkpointer`).
private func processes(in directory: String) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry in
        guard let pid = pid_t(entry), pid != getpid(), isRunning(pid),
            let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline")
        else { return nil }
        let command = String(decoding: data.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
        let workingDirectory = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/cwd")) ?? ""
        return command.contains(directory) || workingDirectory.hasPrefix(directory + "/")
            ? "\(pid): \(command)" : nil
    }
}
