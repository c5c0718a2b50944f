import Foundation
import Testing

/// The signals that stop or upgrade the server, around an engine upgrade:
/// none is taken by a worker thread (where an exec would lose it), none
/// that arrives at start or during the exec kills the process or is lost.
@Suite struct UpgradeSignalTests {
    /// Threads of `pid` that do not block SIGINT, SIGUSR2 or SIGTERM, by
    /// thread id and name; and how many threads there are.
    private func threadsTakingStopSignals(_ pid: Int32) throws -> (takers: [Int32: String], threads: Int) {
        let stopBits: UInt64 = (1 << (UInt64(SIGINT) - 1)) | (1 << (UInt64(SIGUSR2) - 1)) | (1 << (UInt64(SIGTERM) - 1))
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task").compactMap { Int32($0) }
        var takers: [Int32: String] = [:]
        for tid in tasks {
            guard let status = try? procFile("/proc/\(pid)/task/\(tid)/status"),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
                let blocked = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16)
            else { continue }  // ended meanwhile
            if blocked & stopBits != stopBits {
                takers[tid] = (try? procFile("/proc/\(pid)/task/\(tid)/comm"))?.trimmingCharacters(in: .whitespacesAndNewlines)
            }
        }
        return (takers, tasks.count)
    }

    /// After a reload (its load runs on a libuv worker, so the pool exists)
    /// and after an upgrade (a fresh program, a fresh pool), only the loop
    /// thread, the main thread, takes SIGINT, SIGTERM and SIGUSR2.
    @Test func onlyTheLoopThreadTakesTheStopSignals() throws {
        let server = try TestServer()
        let pid = server.process.processIdentifier
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Products.library("GameLogicV2").path)").hasPrefix("+OK gems 1.2.0 -> gems 2.0.0"))
        for moment in ["after a reload", "after an upgrade"] {
            // The new engine answers before its loop runs, and unblocks
            // them on the loop thread only then: wait for that.
            var seen: (takers: [Int32: String], threads: Int) = ([:], 0)
            let settled = try waitUntil {
                seen = try threadsTakingStopSignals(pid)
                return !seen.takers.isEmpty
            }
            #expect(settled, "\(moment): no thread takes them")
            #expect(seen.threads >= 5, "\(moment): \(seen.threads) threads (the loop, libuv's pool of 4, ...)")
            #expect(seen.takers.keys.sorted() == [pid], "\(moment): \(seen.takers)")
            if moment == "after a reload" { #expect(try admin.call("UPGRADE").hasPrefix("+OK engine")) }
        }
    }

    /// Where the SIGTERM lands, sent once the operator's UPGRADE is written.
    enum Moment: String, CaseIterable {
        /// At once: before, during or after the old engine reads it.
        case written
        /// While the candidate's check runs (the upgrade is refused).
        case checking
        /// Once the old engine logged its exec: across the exec, the new
        /// engine's start-up and restore, or just after (pending until the
        /// new engine's handlers are in place).
        case exec
    }

    /// Whenever it comes, a SIGTERM around an upgrade ends in a clean
    /// shutdown: the players are told, the last records are written, the
    /// process exits 0. Never killed by the signal, never ignoring it.
    @Test(arguments: Moment.allCases) func aSigtermAroundAnUpgradeEndsInACleanShutdown(moment: Moment) throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        let admin = try server.connectAdmin()
        // A reload first: libuv's worker threads exist, as on a server that
        // has run a while.
        #expect(try admin.call("RELOAD \(Products.library("GameLogicV2").path)").hasPrefix("+OK gems"))
        try admin.send("UPGRADE")
        switch moment {
        case .written: break
        case .checking: #expect(server.logContains("upgrade: checking "))
        case .exec: #expect(server.logContains("upgrade: exec "))
        }
        kill(server.process.processIdentifier, SIGTERM)
        try expectShutdown(server, alice, bob)
        // The admin heard how its upgrade ended, or was let go with the rest.
        if let answer = try admin.readLine() {
            #expect(answer.hasPrefix("+OK engine") || answer.hasPrefix("-ERR UPGRADE_FAILED "), "\(answer)")
        }
    }

    /// A SIGUSR2 that arrives while the server starts, before its handlers
    /// are in place (here: once the database file exists, which the server
    /// creates after `main` blocked the signal and before the handlers),
    /// waits for them: the server is not killed, and upgrades once it runs.
    /// The server starts with no signal blocked, as from a shell (the test
    /// runner's children inherit a mask that blocks SIGUSR2, which would
    /// hide the window).
    @Test func aSigusr2BeforeTheHandlersWaitsForThem() throws {
        let scratch = try PersistenceTests.Scratch()
        let database = scratch.database.path
        let unblocked = ["/usr/bin/python3", "-c",
                         "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])"]
        let server = try TestServer(arguments: ["--database", database], shell: "true", launcher: unblocked) { process in
            // Polled every 0.1 ms: the window until the handlers is a few
            // milliseconds (waitUntil's backoff would mostly miss it).
            let deadline = Date().addingTimeInterval(20)
            while access(database, F_OK) != 0 {
                guard Date() < deadline, process.isRunning else { throw TestFailure("the server did not create its database") }
                usleep(100)
            }
            kill(process.processIdentifier, SIGUSR2)
        }
        #expect(try waitUntil { try server.statusFields()["upgrades"] == "1" })
        #expect(server.process.isRunning)
        #expect(try server.connect().call("PING") == "+PONG")
    }
}
