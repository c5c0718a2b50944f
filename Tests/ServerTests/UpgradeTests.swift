import Foundation
import Testing

/// Engine upgrades over real sockets: another build takes over the same
/// process with its players, their state and their bytes in flight; a
/// build that is refused, or cannot restore, changes nothing they can see.
@Suite struct UpgradeTests {
    @Test func playersKeepTheirConnectionsAndStateAcrossAnUpgrade() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments)
        let (alice, bob) = try playedRoom(server, in: "lobby")
        let before = try RoomSnapshot([alice, bob])
        let status = try server.statusFields()
        let admin = try server.connectAdmin()

        let reply = try admin.call("UPGRADE \(next)")
        let match = try #require(reply.wholeMatch(of: /\+OK engine (\S+) -> next held_ms=(\d+) sessions=2/), "\(reply)")
        #expect(String(match.1) == status["engine"])
        // The same sockets see the same game: names, room, positions, scores, board.
        #expect(try RoomSnapshot([alice, bob]) == before)
        let after = try server.statusFields()
        #expect(after["engine"] == "next")
        #expect(after["upgrades"] == "1")
        #expect(after["pid"] == status["pid"] && after["pid"] == "\(server.process.processIdentifier)")
        #expect(server.process.isRunning)
        // The ready file names the engine that serves now (same pid, same ports).
        let ready = try String(contentsOf: server.readyFile, encoding: .utf8)
        #expect(ready.contains("\"engine\":\"next\",\"upgrades\":1"))
        #expect(ready.contains("\"port\":\(server.port)"))
        // The game goes on where it was: its timers came over (the room's
        // round_end, the players' afk, bob's gem_respawn; GameClockTests
        // watch one fire after an upgrade), scores count on.
        #expect(after["timers"] == status["timers"] && after["timers"] == "4", "\(status) \(after)")
        #expect(try alice.collectGem(as: "alice", watchers: [bob]).score == 7)
        // The unique name index came over too, and so did the login counter.
        let carol = try server.connect()
        #expect(try carol.call("LOGIN alice") == "-ERR NAME_TAKEN that name is in use")
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol login 3"))
        #expect(server.logContains("passing 2 listeners, 3 connections (2 players, 1 admin), 1 module images"))
        // The hold ends when the new engine has restored everything; its
        // loop's first poll (every socket registered, input read from
        // there) comes a little later, and STATUS says when.
        var fields: [String: String] = [:]
        #expect(try waitUntil {
            fields = try server.statusFields()
            return fields["last_upgrade_first_poll_us"] != nil
        })
        let held = try #require(Int(fields["last_upgrade_held_us"] ?? ""))
        let firstPoll = try #require(Int(fields["last_upgrade_first_poll_us"] ?? ""))
        #expect(firstPoll >= held, "held \(held) us, first poll \(firstPoll) us")
        #expect(server.logContains("upgrade: the new loop's first poll returned \(firstPoll) us after the hold started"))
    }

    @Test func requestsPipelinedAcrossAnUpgradeAreAllAnsweredInOrder() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments)
        let (alice, bob) = try server.aliceAndBob()
        let admin = try server.connectAdmin()
        try admin.send("UPGRADE \(next)")
        // A request, then up to a millisecond waiting for the admin's reply,
        // again and again: the check and the hold (tens of milliseconds)
        // fall among them, and 50 more go after the reply. Nobody reads.
        var sent = 0
        var afterReply = 0
        var upgraded: String?
        while afterReply < 50 && sent < 20_000 {
            sent += 1
            try alice.send("SAY \(sent)")
            if upgraded != nil {
                afterReply += 1
            } else if admin.hasInput(within: 0.001) {
                upgraded = try admin.reply()
            }
        }
        #expect(upgraded?.hasPrefix("+OK engine") == true, "\(upgraded ?? "no reply")")
        // Each request before the reply waited up to a millisecond for it:
        // the check alone (a process run to completion) takes longer than 10.
        #expect(sent - afterReply >= 10, "the upgrade was answered after \(sent - afterReply) requests")
        var replies: [String] = []
        var seen: [String] = []
        for _ in 1...sent {
            replies.append(try alice.reply())
            seen.append(try bob.event())
        }
        #expect(replies == Array(repeating: "+OK", count: sent))
        #expect(seen == (1...sent).map { ">SAY alice \($0)" })
        #expect(try alice.noEventsPending() && bob.noEventsPending())
    }

    @Test func aLineHalfSentBeforeAnUpgradeIsOneRequestAfterIt() throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        // One write: once PING is answered, the engine has read the rest,
        // an unfinished line, into its framer.
        try alice.write(Array("PING\r\nSAY hel".utf8))
        #expect(try alice.reply() == "+PONG")
        let admin = try server.connectAdmin()
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        try alice.write(Array("lo\r\n".utf8))
        #expect(try alice.reply() == "+OK")
        #expect(try bob.event() == ">SAY alice hello")
    }

    @Test func aClientThatIsNotReadingKeepsItsQueuedOutput() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0", "--max-output-bytes", "\(64 << 20)"])
        let slow = try server.connect(receiveBuffer: 4096)
        _ = try slow.call("LOGIN slow")
        // 80,000 requests whose replies (about 8 MB) are more than the
        // kernel's buffers take (a loopback send buffer grows to 4 MB): the
        // rest waits in the engine, unsent, while the client reads nothing.
        let group = Array("HELP\r\nHELP\r\nHELP\r\nPING\r\n".utf8)
        let batch = (0..<1000).flatMap { _ in group }
        for _ in 0..<20 { try slow.write(batch) }
        #expect(try waitUntil(60) { Int(try server.statusFields()["output_buffered"] ?? "") ?? 0 > 2_000_000 })
        let admin = try server.connectAdmin()
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        // The new engine holds what the old one could not write yet.
        #expect(Int(try server.statusFields()["output_buffered"] ?? "") ?? 0 > 1_000_000)
        // Every reply comes, in order, none twice.
        var wrong = 0
        for _ in 0..<20_000 {
            for _ in 0..<3 where try !slow.reply().hasPrefix("+HELP ") { wrong += 1 }
            if try slow.reply() != "+PONG" { wrong += 1 }
        }
        #expect(wrong == 0)
        #expect(try slow.call("PING") == "+PONG")
        #expect(try slow.noEventsPending())
    }

    @Test func theAdminThatAskedIsAnsweredByTheNewEngineAndOthersStayLoggedIn() throws {
        let token = "t0k-t0k-t0k-t0k-t0k"
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments + ["--admin-token", token])
        let other = try server.connectAdmin()
        #expect(try other.call("AUTH \(token)") == "+OK authenticated")
        let asker = try server.connectAdmin()
        #expect(try asker.call("AUTH \(token)") == "+OK authenticated")
        // UPGRADE and what follows it in one write: the lines behind it wait,
        // go over with the connection, and run after the reply, in order.
        try asker.write(Array("UPGRADE \(next)\r\nSTATUS\r\nPI".utf8))
        #expect(try asker.reply().hasPrefix("+OK engine "))
        let status = statusFields(try asker.reply())
        #expect(status["engine"] == "next")
        #expect(status["upgrades"] == "1")
        #expect(status["admin_connections"] == "2")
        try asker.write(Array("NG\r\n".utf8))
        #expect(try asker.reply() == "+PONG")
        #expect(try other.call("MODULES").hasPrefix("+MODULES gems@1.1.0:"))
        // A new connection still needs the token.
        #expect(try server.connectAdmin().call("STATUS").hasPrefix("-ERR AUTH_REQUIRED"))
    }

    /// `echo UPGRADE | nc`: the operator half-closes at once; the new
    /// engine answers, then ends the connection.
    @Test func anOperatorWhoHalfClosedGetsTheReplyThenTheEnd() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        try admin.send("UPGRADE")
        admin.halfClose()
        #expect(try admin.readLine()?.hasPrefix("+OK engine") == true)
        #expect(try admin.closedByServer())
        #expect(try server.statusFields()["upgrades"] == "1")
    }

    /// A load stuck on the reload's worker (its constructor never returns)
    /// refuses every later reload; the worker ends with the old program, so
    /// after an upgrade modules load again.
    @Test func anUpgradeClearsALoadStuckOnItsWorker() throws {
        let server = try TestServer(arguments: ["--load-timeout", "500", "--probe-timeout", "0"])
        let player = try server.connect()
        #expect(try player.call("LOGIN alice").hasPrefix("+WELCOME"))
        let admin = try server.connectAdmin()
        let v2 = Products.library("GameLogicV2").path
        #expect(try admin.call("RELOAD \(Products.library("HangingDescribeModule").path)").hasPrefix(
            "-ERR RELOAD_FAILED the load did not finish within 500 ms"))
        #expect(try admin.call("RELOAD \(v2)").hasPrefix("-ERR RELOAD_FAILED a previous load is stuck"))
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try admin.call("RELOAD \(v2)").hasPrefix("+OK gems 1.1.0 -> gems 2.0.0"))
        #expect(try player.call("PING") == "+PONG v2")
        #expect(server.stop() == 0)
    }

    @Test func rollbackAfterAnUpgradeReturnsThePreviousModule() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Products.library("GameLogicV2").path)").hasPrefix("+OK gems 1.1.0 -> gems 2.0.0"))
        #expect(try bob.call("TITLE champion") == "+OK")
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try alice.call("PING") == "+PONG v2")
        #expect(try bob.call("WHOAMI").hasSuffix(" 1 champion"))
        let status = try server.statusFields()
        #expect(status["images"] == "2")
        #expect(status["previous"] == "gems@1.1.0")
        let modules = try admin.call("MODULES")
        #expect(modules.hasPrefix("+MODULES gems@1.1.0:") && modules.hasSuffix("*") && modules.contains(" gems@2.0.0:"))

        #expect(try admin.call("ROLLBACK").hasPrefix("+OK gems 2.0.0 -> gems 1.1.0"))
        #expect(try alice.call("PING") == "+PONG")
        #expect(try alice.call("SCORE") == "+SCORE alice:6 bob:1")
        // v2's own field came over hidden, with its value.
        #expect(try admin.call("RELOAD \(Products.library("GameLogicV2").path)").hasPrefix("+OK gems 1.1.0 -> gems 2.0.0"))
        #expect(try bob.call("WHOAMI").hasSuffix(" 1 champion"))
    }

    @Test func twentyUpgradesInARowUnderLoadLoseNothing() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments + ["--rate-limit", "0"])
        // Chat: every message must reach every other member of its room
        // once and in order; every request must be answered.
        let run = try runTool("loadtest", [
            "chat", "--port", "\(server.port)", "--rooms", "2", "--members", "3", "--duration", "0.5",
            "--upgrade-at", "0.2", "--upgrades", "20", "--upgrade-path", next, "--admin-port", "\(server.adminPort)",
            "--quiet",
        ])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("lost 0  duplicated 0  out of order 0  unexpected 0  dropped connections 0"))
        #expect(run.output.contains("upgrades      20 of 20 ok"))
        #expect(try server.statusFields()["upgrades"] == "20")
    }

    @Test func refusedCandidatesLeaveTheEngineServingUntouched() throws {
        let builds = try EngineBuilds()
        let outside = try EngineBuilds()
        let server = try TestServer(arguments: builds.serverArguments + ["--upgrade-check-timeout", "300"])
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let status = try server.statusFields()
        let admin = try server.connectAdmin()
        let cases: [(String, String)] = [
            (try builds.script("wrong-format", "echo 'hotswap-engine other handoff 999'"),
             "(engine other) reads handoff formats 999, this one writes 4"),
            (try builds.script("newer-formats", "echo 'hotswap-engine newer handoff 5-9'"),
             "(engine newer) reads handoff formats 5-9, this one writes 4"),
            (try builds.script("says-hello", "echo hello"), "printed 'hello', not 'hotswap-engine VERSION handoff A-B'"),
            (try builds.script("crashes", "kill -SEGV $$"), "died from SIGSEGV"),
            (try builds.script("fails", "echo 'no such option' >&2; exit 3"), "exited with status 3: no such option"),
            (try builds.script("hangs", "exec sleep 30"), "did not finish within 300 ms"),
            (try builds.nonExecutableCopy(), "is not executable (permission denied)"),
            (try outside.engine("outside"), "outside the engines directory \(builds.directory.path)"),
            (builds.directory.appendingPathComponent("missing").path, "engine not found"),
        ]
        for (path, reason) in cases {
            let reply = try admin.call("UPGRADE \(path)")
            #expect(reply.hasPrefix("-ERR UPGRADE_FAILED "), "\(path)")
            #expect(reply.contains(reason), "\(reply)")
            #expect(try alice.call("PING") == "+PONG")
            #expect(try RoomSnapshot([alice, bob]) == before, "after \(path)")
        }
        let after = try server.statusFields()
        for key in ["engine", "pid"] { #expect(after[key] == status[key], "\(key)") }
        #expect(after["upgrades"] == "0")
        #expect(after["upgrades_refused"] == "\(cases.count)")
    }

    /// A check that hangs is ended with everything it started: nothing it
    /// left running outlives the refusal.
    @Test func aTimedOutCheckIsEndedWithItsWholeProcessGroup() throws {
        let builds = try EngineBuilds()
        let server = try TestServer(arguments: builds.serverArguments + ["--upgrade-check-timeout", "500"])
        let pidFile = builds.directory.appendingPathComponent("grandchild.pid")
        let hangs = try builds.script("hangs-with-a-child", "sleep 120 & echo $! > '\(pidFile.path)'; wait")
        let admin = try server.connectAdmin()
        let reply = try admin.call("UPGRADE \(hangs)")
        #expect(reply.contains("did not finish within 500 ms"), "\(reply)")
        let text = try String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let grandchild = try #require(pid_t(text))
        let deadline = Date().addingTimeInterval(NotAHang.seconds)
        // Gone once killed and reaped by whoever adopted it (a zombie
        // counts as gone: it no longer runs).
        func running(_ pid: pid_t) -> Bool {
            guard kill(pid, 0) == 0 else { return false }
            let state = (try? procFile("/proc/\(pid)/stat"))?.split(separator: " ").dropFirst(2).first
            return state != "Z"
        }
        while running(grandchild) && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        #expect(!running(grandchild), "the check's child \(grandchild) outlived it")
    }

    /// What runs is the file that was checked: one written to while it is
    /// checked is refused (the exec itself runs the checked file by its
    /// open descriptor, or a `#!` script by its path compared once more).
    @Test func aCandidateThatChangesWhileItIsCheckedIsRefused() throws {
        let builds = try EngineBuilds()
        let server = try TestServer(arguments: builds.serverArguments)
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let shifty = try builds.script("engine-shifty", """
            if [ "$1" = --check-upgrade ]; then echo '# changed' >> "$0"; fi
            HOTSWAP_ENGINE_VERSION=shifty exec '\(Products.server.path)' "$@"
            """)
        let admin = try server.connectAdmin()
        let reply = try admin.call("UPGRADE \(shifty)")
        #expect(reply == "-ERR UPGRADE_FAILED \(shifty) changed while it was being checked; run the upgrade again", "\(reply)")
        #expect(try RoomSnapshot([alice, bob]) == before)
        // Unchanged since, it goes through (by its path: a script).
        let next = try builds.engine("next")
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine"))
        #expect(try server.statusFields()["engine"] == "next")
    }

    @Test func anEngineThatCannotRestoreHandsEverythingBackToThePreviousOne() throws {
        let builds = try EngineBuilds()
        let liar = try builds.engineThatCannotRestore()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments)
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let version = try #require(try server.statusFields()["engine"])
        let admin = try server.connectAdmin()
        let name = try processName(server)

        let reply = try admin.call("UPGRADE \(liar)")
        #expect(reply.hasPrefix("-ERR UPGRADE_FAILED the new engine could not restore ("), "\(reply)")
        #expect(reply.contains("the handoff is in format 4, this engine reads formats 99"), "\(reply)")
        #expect(reply.contains("engine \(version) resumed held_ms="), "\(reply)")
        #expect(try RoomSnapshot([alice, bob]) == before)
        let status = try server.statusFields()
        #expect(status["engine"] == version)
        #expect(status["upgrades"] == "0")
        #expect(status["upgrades_refused"] == "1")
        #expect(status["pid"] == "\(server.process.processIdentifier)")
        #expect(server.logContains("handing everything back to the previous engine"))
        // Exec'd by descriptor (/proc/self/fd/N), and still named as before.
        #expect(try processName(server) == name)
        // The engine that came back can still be upgraded, for real.
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine \(version) -> next"))
        #expect(try RoomSnapshot([alice, bob]) == before)
    }

    /// What `ps -C`, `pgrep -x` and `pidof` match: /proc/PID/comm.
    private func processName(_ server: TestServer) throws -> String {
        try String(contentsOfFile: "/proc/\(server.process.processIdentifier)/comm", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Durable players are written by the final flush before the hold (the
    /// game served meanwhile), the one-server lock stays held throughout,
    /// and what changes after is the new engine's to write.
    @Test func durablePlayersAndTheDatabaseLockGoOverWithTheEngine() throws {
        let scratch = try PersistenceTests.Scratch()
        let database = scratch.database.path
        // A flush a minute away: only the final flushes (the upgrade's, the
        // new engine's at stop) can write.
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000"])
        let (alice, bob) = try playedRoom(server)
        let before = try server.statusFields()
        #expect(before["players_stored"] == "2" && before["dirty"] == "2")
        #expect(try PersistenceTests.sql(database, "SELECT count(*) FROM players") == "0")
        #expect(try processName(server) == "gameserver")
        #expect(try server.connectAdmin().call("UPGRADE").hasPrefix("+OK engine"))
        // The checked file was exec'd through /proc/self/fd/N: the process
        // is still named after the program, not "N".
        #expect(try processName(server) == "gameserver")
        // Written before the hold: in the file as soon as the upgrade is answered.
        #expect(try PersistenceTests.sql(database, "SELECT key, \"score:int\" FROM players ORDER BY key") == "alice|6\nbob|1")
        let after = try server.statusFields()
        #expect(after["players_stored"] == "2" && after["dirty"] == "0")
        #expect(Int(after["flushes"] ?? "") == (Int(before["flushes"] ?? "") ?? -1) + 1, "\(before) \(after)")
        #expect(server.logContains("upgrade: the final flush wrote 3 records in"))
        // Another server is refused the file: the lock went over held.
        let second = try runServerExpectingExit(["--database", database])
        #expect(second.status == 2)
        #expect(second.log.contains("is held by another process"), "\(second.log)")
        #expect(try alice.call("SCORE") == "+SCORE alice:6 bob:1")
        // More play after the upgrade: the new engine writes it at stop.
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        let score = try #require(try alice.call("SCORE").wholeMatch(of: /\+SCORE alice:(\d+) bob:1/)).1
        #expect(Int(score)! > 6)
        #expect(try server.statusFields()["dirty"] != "0")
        #expect(server.stop() == 0)
        #expect(server.logContains("final flush wrote 1 records"))
        #expect(try PersistenceTests.sql(database, "SELECT key, \"score:int\" FROM players ORDER BY key") == "alice|\(score)\nbob|1")
        withExtendedLifetime(bob) {}
    }

    /// A database that stops taking writes (here another program holds its
    /// write lock, so the final flush waits in SQLite's 5 s busy handler)
    /// refuses the upgrade at --upgrade-check-timeout with the reason;
    /// nothing changes, flushes go on, and the next upgrade goes through.
    @Test func aFinalFlushThatDoesNotFinishRefusesTheUpgradeInTime() throws {
        let scratch = try PersistenceTests.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000",
                                                "--upgrade-check-timeout", "2000"])
        let (alice, bob) = try playedRoom(server)
        #expect(try server.statusFields()["dirty"] == "2")
        let pid = try server.statusFields()["pid"]

        let lock = try SQLiteWriteLock(database)
        let admin = try server.connectAdmin()
        let reply = try admin.call("UPGRADE")
        #expect(reply == "-ERR UPGRADE_FAILED the final database flush did not finish within 2000 ms "
                + "(--upgrade-check-timeout); nothing was changed", "\(reply)")
        let refused = try server.statusFields()
        #expect(refused["upgrades"] == "0" && refused["upgrades_refused"] == "1" && refused["pid"] == pid)
        #expect(try alice.call("SCORE") == "+SCORE alice:6 bob:1")

        // The lock goes: the flush on the worker ends, the next upgrade works.
        try lock.release()
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try server.statusFields()["upgrades"] == "1")
        #expect(try PersistenceTests.sql(database, "SELECT key, \"score:int\" FROM players ORDER BY key") == "alice|6\nbob|1")
        withExtendedLifetime(bob) {}
    }

    /// What runs is the file that was checked, also when it changes after
    /// its check, while the final flush holds the upgrade (a flush waiting
    /// for SQLite's write lock, which another program holds): a build
    /// installed over the candidate's path meanwhile is not what runs (the
    /// checked file is exec'd by its descriptor), and a script written to
    /// meanwhile is refused at the exec.
    @Test func theCheckedFileRunsEvenIfItsPathChangesBeforeTheExec() throws {
        let scratch = try PersistenceTests.Scratch()
        let database = scratch.database.path
        let builds = try EngineBuilds()
        let server = try TestServer(arguments: builds.serverArguments + ["--database", database, "--flush-interval", "60000",
                                                                         "--upgrade-check-timeout", "20000"])
        let (alice, bob) = try playedRoom(server)
        let version = try #require(try server.statusFields()["engine"])
        let admin = try server.connectAdmin()
        var logins = 0
        /// Dirty rows for the final flush to wait on: a new player (and the login counter).
        func dirtyRows() throws {
            logins += 1
            let player = try server.connect()
            #expect(try player.call("LOGIN late\(logins)").hasPrefix("+WELCOME"))
        }

        // A script written to after its check: refused at the exec.
        let script = try builds.engine("edited")
        try dirtyRows()
        var lock = try SQLiteWriteLock(database)
        try admin.send("UPGRADE \(script)")
        #expect(server.logContains("upgrade: \(script) is engine edited", within: 20))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: script))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("# written after the check\n".utf8))
        try handle.close()
        try lock.release()
        #expect(try admin.reply() == "-ERR UPGRADE_FAILED \(script) changed after it was checked; run the upgrade again")
        #expect(try server.statusFields()["engine"] == version)

        // A real build (a copy of the server, run by descriptor) replaced
        // at its path by another engine after its check: the copy runs.
        let copy = builds.directory.appendingPathComponent("gameserver-copy").path
        try FileManager.default.copyItem(atPath: Products.server.path, toPath: copy)
        let other = try builds.engine("other")
        try dirtyRows()
        lock = try SQLiteWriteLock(database)
        try admin.send("UPGRADE \(copy)")
        #expect(server.logContains("upgrade: \(copy) is engine \(version)", within: 20))
        #expect(rename(other, copy) == 0)
        try lock.release()
        let reply = try admin.reply()
        #expect(reply.hasPrefix("+OK engine \(version) -> \(version) "), "\(reply)")
        #expect(try server.statusFields()["engine"] == version)
        #expect(try alice.call("PING") == "+PONG")
        withExtendedLifetime(bob) {}
    }

    /// The metrics port goes over like the others: the same port answers
    /// the new engine's metrics, whose counters go on from the old one's; a
    /// kept-alive scrape connection is closed once its answers are out.
    @Test func theMetricsPortAnswersAcrossAnUpgrade() throws {
        let server = try TestServer(arguments: ["--metrics-port", "0"])
        let (alice, bob) = try server.aliceAndBob()
        for _ in 0..<5 { #expect(try alice.call("PING") == "+PONG") }
        let kept = try server.connectMetrics()
        #expect(try kept.get("/healthz").status == 200)
        let before = try server.scrape()
        #expect(try server.connectAdmin().call("UPGRADE").hasPrefix("+OK engine"))
        let after = try server.scrape()
        #expect(after["hotswap_upgrades_total{result=\"ok\"}"] == 1)
        #expect(after["hotswap_sessions"] == 2)
        #expect((after["hotswap_requests_total"] ?? 0) >= (before["hotswap_requests_total"] ?? 1))
        #expect(try kept.closedByServer())
        #expect(try server.connectMetrics().get("/readyz", close: true).status == 200)
        withExtendedLifetime(bob) {}
    }

    @Test func anUpgradeShedsTheImagesReloadsLeftMapped() throws {
        let server = try TestServer()
        let player = try server.connect()
        _ = try player.call("LOGIN alice")
        let builds = try [paddedCopy(of: "GameLogic", padding: 1), paddedCopy(of: "GameLogic", padding: 2)]
        defer { for build in builds { try? FileManager.default.removeItem(at: build) } }
        let admin = try server.connectAdmin()
        let start = try server.residentKiB
        for index in 0..<100 {
            let reply = try admin.call("RELOAD \(builds[index % 2].path)")
            guard reply.hasPrefix("+OK gems") else { throw TestFailure("reload \(index): \(reply)") }
        }
        let reloaded = try server.residentKiB
        #expect(try server.statusFields()["images"] == "101")
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        let upgraded = try server.residentKiB
        #expect(try server.statusFields()["images"] == "2")
        // 100 reloads cost megabytes (their images stay mapped); the new
        // process maps two, and is back near where the first one started.
        #expect(reloaded - start > 4_000, "start \(start) KiB, after reloads \(reloaded) KiB")
        #expect(upgraded < start + (reloaded - start) / 4, "start \(start), reloads \(reloaded), upgrade \(upgraded) KiB")
        #expect(try player.call("PING") == "+PONG")
    }

    @Test func sigtermRightAfterAnUpgradeShutsDownCleanly() throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        #expect(try server.connectAdmin().call("UPGRADE").hasPrefix("+OK engine"))
        kill(server.process.processIdentifier, SIGTERM)
        try expectShutdown(server, alice, bob)
    }

    @Test func sigusr2UpgradesToTheServersOwnPath() throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        kill(server.process.processIdentifier, SIGUSR2)
        #expect(try waitUntil { try server.statusFields()["upgrades"] == "1" })
        #expect(try alice.call("SAY after") == "+OK")
        #expect(try bob.event() == ">SAY alice after")
        #expect(server.logContains("signal SIGUSR2: upgrading to the engine at \(Products.server.resolvingSymlinksInPath().path)"))
    }
}

/// Both players hear >SHUTDOWN first, then at most the other's departure,
/// then the end; the process exits with status 0, after its final flush.
func expectShutdown(_ server: TestServer, _ alice: LineClient, _ bob: LineClient) throws {
    for (client, other) in [(alice, "bob"), (bob, "alice")] {
        #expect(try client.readLine() == ">SHUTDOWN the server is shutting down", "\(server.log)")
        var rest: [String] = []
        while let line = try client.readLine() { rest.append(line) }
        #expect(rest.isEmpty || rest == [">LEAVE \(other)"], "\(rest)")
    }
    #expect(server.waitForExit() == 0)
    #expect(server.process.terminationReason == .exit)
    #expect(server.logContains("final flush wrote"))
    #expect(server.logContains("notice gameserver: [HotswapEngine] stopped"))
}

/// Another program (sqlite3) holding a database's write lock, as a backup
/// or a report might: the server's flushes wait in SQLite's busy handler
/// until `release`.
final class SQLiteWriteLock {
    private let holder = Process()
    private let input = Pipe()

    init(_ database: String) throws {
        let output = Pipe()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        holder.arguments = [database]
        holder.standardInput = input
        holder.standardOutput = output
        try holder.run()
        input.fileHandleForWriting.write(Data("BEGIN EXCLUSIVE;\nSELECT 'locked';\n".utf8))
        // sqlite3 answers once it holds the lock.
        let said = output.fileHandleForReading.availableData
        guard String(decoding: said, as: UTF8.self).contains("locked") else {
            holder.terminate()
            throw TestFailure("sqlite3 did not take the write lock: \(String(decoding: said, as: UTF8.self))")
        }
    }

    /// Ends sqlite3's input: it rolls back, lets the lock go and exits.
    func release() throws {
        guard holder.isRunning else { return }
        try input.fileHandleForWriting.close()
        holder.waitUntilExit()
    }

    deinit { if holder.isRunning { holder.terminate() } }
}
