import Foundation
import Testing

/// Hot swap over the admin port, with real dylibs built by the package:
/// players stay connected, state stays, refused modules change nothing.
@Suite struct ReloadTests {
    static func module(_ name: String) -> String { Products.library(name).path }

    /// The serving module (name, version, file, SHA-256) is still the one
    /// in `before`, and no reload has succeeded.
    private func expectUnchanged(_ server: TestServer, _ before: [String: String], reloads: Int = 0) throws {
        let now = try server.statusFields()
        for key in ["module", "version", "sha256", "path"] { #expect(now[key] == before[key], "\(key)") }
        #expect(now["reloads"] == "\(reloads)")
    }

    @Test func reloadKeepsPlayersAndStateAndRollbackRestoresV1() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server, in: "lobby")
        let before = try RoomSnapshot([alice, bob])
        // The room's round_end, both players' afk and bob's gem_respawn.
        let timers = try server.statusFields()["timers"]
        #expect(timers == "4")
        let at = try Board(alice.call("LOOK")).position
        let bobAt = try Board(bob.call("LOOK")).position
        let admin = try server.connectAdmin()

        let reloaded = try admin.call("RELOAD \(Self.module("GameLogicV2"))")
        #expect(reloaded.hasPrefix("+OK gems 1.2.0 -> gems 2.0.0 held_us="))
        // The same sockets see the new code at once, with everything v1 stored.
        #expect(try alice.call("PING") == "+PONG v2")
        #expect(try alice.call("WHOAMI") == "+ME alice lobby \(at.x) \(at.y) 6 rookie")
        #expect(try bob.call("WHOAMI") == "+ME bob lobby \(bobAt.x) \(bobAt.y) 1 rookie")
        #expect(try bob.call("TITLE champion") == "+OK")

        #expect(try admin.call("ROLLBACK").hasPrefix("+OK gems 2.0.0 -> gems 1.2.0"))
        #expect(try alice.call("PING") == "+PONG")
        #expect(try RoomSnapshot([alice, bob]) == before)
        // v2 dropped the global login counter; it was kept hidden and is back.
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol login 3"))
        // And v2's own field survives a rollback too.
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV2"))").hasPrefix("+OK"))
        #expect(try bob.call("WHOAMI").hasSuffix(" 1 champion"))
        #expect(try carol.call("WHOAMI").hasSuffix(" rookie"))
        // Back to v1 by loading it afresh (a reload, not a rollback).
        #expect(try admin.call("RELOAD").hasPrefix("+OK gems 2.0.0 -> gems 1.2.0"))
        #expect(try RoomSnapshot([alice, bob]) == before)
        // The game goes on where it was: its timers are all still pending
        // (GameClockTests watch them fire across reloads), scores count on.
        #expect(try server.statusFields()["timers"] == timers)
        #expect(try alice.collectGem(as: "alice", watchers: [bob]).score == 7)
    }

    @Test func retypedFieldIsMigrated() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        let admin = try server.connectAdmin()
        let reply = try admin.call("RELOAD \(Self.module("GameLogicV3"))")
        #expect(reply.hasPrefix("+OK gems 1.2.0 -> gems 3.0.0"))
        #expect(statusFields(reply)["migrated"] == "6")  // the global entity, two sessions, one room, two players
        // Not the field's default ("0 gems"): each player's own score, converted.
        #expect(try alice.call("SCORE") == "+SCORE alice 6 gems")
        #expect(try bob.call("SCORE") == "+SCORE bob 1 gems")
        #expect(try alice.call("PING") == "+PONG v3")
    }

    @Test func refusedModulesChangeNothing() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let status = try server.statusFields()
        let admin = try server.connectAdmin()
        let junk = Products.directory.appendingPathComponent("not-a-module-\(UUID()).so")
        try Data("not an ELF file".utf8).write(to: junk)
        defer { try? FileManager.default.removeItem(at: junk) }

        let cases: [(String, String)] = [
            (junk.path, "cannot load module"),
            (Self.module("NoHandleModule"), "does not export hotswap_handle"),
            (Self.module("WrongABIModule"), "was built for ABI 2.0, this engine speaks ABI 1."),
            // Crashes in the probe process: the reload is refused, nobody is cut off.
            (Self.module("FaultyABIVersionModule"), "it crashed (SIGILL) in hotswap_abi_version in a probe process"),
            (Self.module("RetypeWithoutMigrateModule"), "field player.score is int in the store but string"),
            (Self.module("FailingMigrateModule"), "hotswap_migrate failed"),
            (Self.module("FailingLoadModule"), "hotswap_load failed"),
            // A name that would plant fields in STATUS and a line in replies.
            (Self.module("InjectingNameModule"),
             #"module name "gems\x20version=9.9.9\x20sha256=deadbeef\x0d\x0a+OK\x20injected" is not printable ASCII"#),
            (Products.directory.appendingPathComponent("missing.so").path, "module not found"),
        ]
        for (path, reason) in cases {
            let reply = try admin.call("RELOAD \(path)")
            #expect(reply.hasPrefix("-ERR RELOAD_FAILED"), "\(path)")
            #expect(reply.contains(reason), "\(reply)")
            // The old module still serves, and no field moved: not the
            // scores, positions and board (FailingMigrateModule wrote x and
            // score into its staged store).
            #expect(try alice.call("PING") == "+PONG")
            #expect(try RoomSnapshot([alice, bob]) == before, "after \(path)")
            try expectUnchanged(server, status)
            #expect(try server.statusFields()["timers"] == status["timers"], "after \(path)")
        }
        // The failed load hook had set the login counter: it must not show.
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol login 3"))
        #expect(try server.statusFields()["refused"] == "\(cases.count)")
        // Nor did the room's clock move (its timers were compared after each
        // refusal), and the game goes on: alice's next gem is her seventh.
        #expect(try alice.collectGem(as: "alice", watchers: [bob]).score == 7)
    }

    @Test func pathsOutsideTheModulesDirectoryAreRefused() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let status = try server.statusFields()
        let admin = try server.connectAdmin()
        // Every refused path leads to a real module, GameLogicV2, whose PING
        // would show had it been loaded.
        let outside = FileManager.default.temporaryDirectory.appendingPathComponent("outside-\(UUID()).so")
        try FileManager.default.copyItem(atPath: Self.module("GameLogicV2"), toPath: outside.path)
        let link = Products.directory.appendingPathComponent("link-\(UUID()).so")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: outside)
        defer {
            try? FileManager.default.removeItem(at: link)
            try? FileManager.default.removeItem(at: outside)
        }
        // A real module one level above the modules directory, reached by `..`.
        let above = Products.directory.deletingLastPathComponent().appendingPathComponent("above-\(UUID()).so")
        try FileManager.default.copyItem(atPath: Self.module("GameLogicV2"), toPath: above.path)
        defer { try? FileManager.default.removeItem(at: above) }
        let dotted = Products.directory.path + "/../" + above.lastPathComponent
        let paths = [outside.path, link.path, dotted, "/etc/passwd", "../" + above.lastPathComponent]
        for path in paths {
            let reply = try admin.call("RELOAD \(path)")
            #expect(reply.hasPrefix("-ERR RELOAD_FAILED"), "\(path)")
            #expect(reply.contains("outside the modules directory"), "\(reply)")
            #expect(try alice.call("PING") == "+PONG")
            #expect(try RoomSnapshot([alice, bob]) == before, "after \(path)")
            try expectUnchanged(server, status)
        }
        #expect(try server.statusFields()["refused"] == "\(paths.count)")
        // A relative path names a file inside the directory.
        #expect(try admin.call("RELOAD libGameLogicV2.so").hasPrefix("+OK gems 1.2.0 -> gems 2.0.0"))
        #expect(try alice.call("PING") == "+PONG v2")
    }

    @Test func tokenIsRequiredAndChecked() throws {
        let token = "correct-horse-battery"
        let server = try TestServer(arguments: ["--admin-token", token])
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let v2 = Self.module("GameLogicV2")
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(v2)").hasPrefix("-ERR AUTH_REQUIRED"))
        #expect(try admin.call("STATUS").hasPrefix("-ERR AUTH_REQUIRED"))
        #expect(try admin.call("AUTH").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try admin.call("AUTH \(token)!").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try admin.call("RELOAD \(v2)").hasPrefix("-ERR AUTH_REQUIRED"))
        // Three wrong tokens and the connection is closed; none of its
        // RELOADs ran.
        let guesser = try server.connectAdmin()
        #expect(try guesser.call("AUTH correct-horse-batter").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try guesser.call("RELOAD \(v2)").hasPrefix("-ERR AUTH_REQUIRED"))
        _ = try guesser.call("AUTH nope")
        #expect(try guesser.call("AUTH nope").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try guesser.closedByServer())
        #expect(try alice.call("PING") == "+PONG")
        #expect(try RoomSnapshot([alice, bob]) == before)

        #expect(try admin.call("AUTH \(token)") == "+OK authenticated")
        let status = statusFields(try admin.call("STATUS"))
        #expect(status["version"] == "1.2.0")
        #expect(status["path"] == Self.module("GameLogic"))
        #expect(status["sha256"] == (try sha256(of: Self.module("GameLogic"))))
        #expect(status["reloads"] == "0")
        #expect(status["refused"] == "0")
        #expect(try admin.call("RELOAD \(v2)").hasPrefix("+OK"))
        #expect(try alice.call("PING") == "+PONG v2")
        #expect(server.logContains("admin: AUTH refused"))
        #expect(server.logContains("admin: RELOAD"))
    }

    @Test func nonLoopbackAdminNeedsARealToken() throws {
        let result = try runServerExpectingExit(["--admin-host", "0.0.0.0"])
        #expect(result.status != 0)
        #expect(result.log.contains("is not loopback; set --admin-token"))
        let empty = try runServerExpectingExit(["--admin-host", "0.0.0.0", "--admin-token", ""])
        #expect(empty.status != 0)
        #expect(empty.log.contains("is not loopback; set --admin-token"))
        let short = try runServerExpectingExit(["--admin-token", "short"])
        #expect(short.status != 0)
        #expect(short.log.contains("the admin token must be at least 16 bytes"))
    }

    @Test func silentAdminConnectionsCannotLockTheOperatorOut() throws {
        let token = "correct-horse-battery-staple"
        let server = try TestServer(arguments: ["--admin-token", token])
        // 40 connections that never say anything, more than the 16 slots.
        var silent: [LineClient] = []
        for _ in 0..<40 { silent.append(try server.connectAdmin()) }
        let admin = try server.connectAdmin()
        #expect(try admin.call("AUTH \(token)") == "+OK authenticated")
        let status = try admin.call("STATUS")
        #expect(status.contains(" admin_connections=16 "), "\(status)")
        #expect(status.contains(" admin_evicted=25 "), "\(status)")
        // The stalest were told why they were closed.
        #expect(try silent[0].readLine()?.hasPrefix("-ERR EVICTED") == true)
        #expect(try silent[0].readLine() == nil)
        // An authenticated operator is never evicted for an unauthenticated one.
        for _ in 0..<20 { silent.append(try server.connectAdmin()) }
        #expect(try admin.call("PING") == "+PONG")
    }

    @Test func anUnauthenticatedAdminConnectionHasAShortDeadline() throws {
        let token = "correct-horse-battery-staple"
        let server = try TestServer(arguments: ["--admin-token", token, "--admin-auth-timeout", "1"])
        let silent = try server.connectAdmin()
        let pinging = try server.connectAdmin()
        let admin = try server.connectAdmin()
        #expect(try admin.call("AUTH \(token)") == "+OK authenticated")
        let started = Date()
        #expect(try pinging.call("PING") == "+PONG")  // PING does not authenticate
        #expect(try silent.readLine()?.hasPrefix("-ERR TIMEOUT") == true)
        #expect(try pinging.readLine()?.hasPrefix("-ERR TIMEOUT") == true)
        #expect(Date().timeIntervalSince(started) < NotAHang.seconds)
        #expect(try admin.call("PING") == "+PONG")
        #expect(try admin.call("STATUS").contains(" admin_timeouts=2"))
    }

    @Test func aFieldCannotChangeTypeBackWithoutMigrationNorRollBackWithoutMigrateDown() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV3"))").hasPrefix("+OK gems 1.2.0 -> gems 3.0.0"))
        #expect(try alice.call("SCORE") == "+SCORE alice 6 gems")
        // The same v3 file again is no swap at all (and ROLLBACK still means v1).
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV3"))").hasPrefix("+OK unchanged gems 3.0.0"))
        let back = try admin.call("RELOAD \(Self.module("GameLogic"))")
        #expect(back.hasPrefix("-ERR RELOAD_FAILED field player.score is string in the store but int"))
        #expect(try alice.call("PING") == "+PONG v3")
        // Nor can ROLLBACK (ABI 1.5): v1's int column holds the scores from
        // before the upgrade, and v3 exports no hotswap_migrate_down to turn
        // its strings back (RollbackDownTests has one that does).
        #expect(try admin.call("ROLLBACK") == "-ERR RELOAD_FAILED cannot roll back gems 3.0.0 -> gems 1.2.0: "
            + "gems 3.0.0 retyped field 'score' and exports no hotswap_migrate_down; going back would mix the score "
            + "from before the upgrade with everything written since")
        #expect(try alice.call("PING") == "+PONG v3")
        #expect(try alice.call("SCORE") == "+SCORE alice 6 gems")
        #expect(try server.statusFields()["refused"] == "2")
        // v3 over v3 finds the field already converted and keeps it.
        let rebuilt = try paddedCopy(of: "GameLogicV3")
        defer { try? FileManager.default.removeItem(at: rebuilt) }
        #expect(try admin.call("RELOAD \(rebuilt.path)").hasPrefix("+OK gems 3.0.0 -> gems 3.0.0"))
        #expect(try alice.call("SCORE") == "+SCORE alice 6 gems")
        #expect(try bob.call("SCORE") == "+SCORE bob 1 gems")
    }

    @Test func corruptELFHeadersAreRefusedNotTrapped() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        // A 64-byte ELF header whose section table offset is near 2^64.
        var header = [UInt8](repeating: 0, count: 64)
        header[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]  // 64-bit, little-endian
        header[16] = 3  // ET_DYN
        for index in 40..<48 { header[index] = 0xFF }  // e_shoff
        header[58] = 64; header[60] = 0xFF; header[61] = 0xFF  // e_shentsize, e_shnum
        let crafted = Products.directory.appendingPathComponent("crafted-\(UUID()).so")
        try Data(header).write(to: crafted)
        defer { try? FileManager.default.removeItem(at: crafted) }
        let reply = try admin.call("RELOAD \(crafted.path)")
        #expect(reply.hasPrefix("-ERR RELOAD_FAILED"))
        #expect(reply.contains("corrupt section header offsets"))
        #expect(try server.connect().call("PING") == "+PONG")
    }

    @Test func theSameBuildPathLoadsAFreshCopyEachTime() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        // A new build written at one path, twice: each is a fresh image.
        let build = try paddedCopy(of: "GameLogic")
        defer { try? FileManager.default.removeItem(at: build) }
        #expect(try admin.call("RELOAD \(build.path)").hasPrefix("+OK gems 1.2.0 -> gems 1.2.0"))
        let handle = try FileHandle(forWritingTo: build)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        #expect(try admin.call("RELOAD \(build.path)").hasPrefix("+OK gems 1.2.0 -> gems 1.2.0"))
        // The same file once more: nothing is loaded, and it says so.
        let unchanged = try admin.call("RELOAD \(build.path)")
        #expect(unchanged.hasPrefix("+OK unchanged gems 1.2.0 sha256="), "\(unchanged)")
        let modules = try admin.call("MODULES")
        #expect(modules.split(separator: " ").count == 4)  // +MODULES and three loads
        let status = try admin.call("STATUS")
        #expect(status.contains("images=3"))
        #expect(status.contains(" reloads=2 "))
        #expect(status.contains(" unchanged=1 "))
        let maps = try procFile("/proc/\(server.process.processIdentifier)/maps")
        for copy in ["/1-libGameLogic.so", "/2-", "/3-"] {
            #expect(maps.contains(copy), "\(copy) not mapped")
        }
        #expect(!maps.contains("/4-"), "the unchanged file was mapped")
    }

    /// The engine and each module link their own copy of Protocol; after a
    /// swap the module must run its copy, not the engine's.
    @Test func aSwappedModuleRunsItsOwnProtocolLibrary() throws {
        let variant = Products.variantV2.path
        guard FileManager.default.fileExists(atPath: variant) else {
            throw TestFailure("\(variant) is missing: `make test` builds it")
        }
        let server = try TestServer(arguments: ["--modules-dir", Products.packageRoot.path])
        #expect(server.logContains("protocol=base"))
        let player = try server.connect()
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV2"))").hasPrefix("+OK"))
        #expect(try player.call("BUILD") == "+BUILD protocol=base")
        #expect(try admin.call("RELOAD \(variant)").hasPrefix("+OK"))
        #expect(try player.call("BUILD") == "+BUILD protocol=variant")
    }

    /// A reload answers after its background load; commands sent behind it
    /// in the same write still get their replies in order.
    @Test func pipelinedAdminCommandsAreAnsweredInOrder() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        try admin.write(Array("RELOAD \(Self.module("GameLogicV2"))\nSTATUS\nRELOAD\nPING\n".utf8))
        #expect(try admin.readLine()?.hasPrefix("+OK gems 1.2.0 -> gems 2.0.0") == true)
        #expect(try admin.readLine()?.hasPrefix("+STATUS module=gems version=2.0.0") == true)
        #expect(try admin.readLine()?.hasPrefix("+OK gems 2.0.0 -> gems 1.2.0") == true)
        #expect(try admin.readLine() == "+PONG")
    }

    /// Two operators reload at once: the second may be told the first is
    /// running; either way both connections keep answering.
    @Test func concurrentReloadsNeverWedgeAnAdminConnection() throws {
        let server = try TestServer()
        let first = try server.connectAdmin()
        let second = try server.connectAdmin()
        for _ in 0..<5 {
            try first.send("RELOAD")
            try second.send("RELOAD")
            let replies = [try first.reply(), try second.reply()]
            #expect(replies.allSatisfy { $0.hasPrefix("+OK") || $0 == "-ERR RELOAD_FAILED another reload is in progress" })
            #expect(try first.call("PING") == "+PONG")
            #expect(try second.call("PING") == "+PONG")
        }
    }

    @Test func nothingRunsAfterQuitBehindAReload() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        try admin.write(Array("RELOAD \(Self.module("GameLogicV2"))\nQUIT\nROLLBACK\n".utf8))
        #expect(try admin.readLine()?.hasPrefix("+OK gems 1.2.0 -> gems 2.0.0") == true)
        #expect(try admin.readLine() == "+BYE")
        #expect(try admin.closedByServer())
        #expect(try server.connectAdmin().call("STATUS").contains("rollbacks=0"))
    }

    @Test func aHalfClosedOperatorStillGetsTheReloadReply() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        try admin.send("RELOAD \(Self.module("GameLogicV2"))")
        admin.halfClose()  // like `echo RELOAD | nc`
        #expect(try admin.readLine()?.hasPrefix("+OK gems 1.2.0 -> gems 2.0.0") == true)
        #expect(try admin.closedByServer())
    }

    @Test func rollbackWithNothingToRollBackIsRefused() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        #expect(try admin.call("ROLLBACK") == "-ERR RELOAD_FAILED no previous module to roll back to")
    }

    /// 200 swaps while two players talk: every request gets exactly one
    /// reply, in order, and every chat line said under v1 (v2 has no SAY)
    /// reaches bob exactly once, in order, and nothing else does. Each
    /// RELOAD is sent, then ten requests, then its reply is read, so every
    /// swap lands among the players' messages.
    @Test func twoHundredReloadsUnderTrafficLoseNothing() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0"])
        let (alice, bob) = try server.aliceAndBob()
        let admin = try server.connectAdmin()
        var sent = 0
        var said: [Int] = []  // the chat lines answered +OK, which v1 relays
        var problems: [String] = []
        var reloads = 0
        for round in 0..<200 {
            let path = round % 2 == 0 ? Self.module("GameLogicV2") : Self.module("GameLogic")
            try admin.send("RELOAD \(path)")
            for _ in 0..<5 {
                sent += 1
                try alice.send("SAY \(sent)")
                try alice.send("PING")
                let reply = try alice.reply()
                let pong = try alice.reply()
                if reply == "+OK" {
                    said.append(sent)
                } else if reply != "-ERR UNKNOWN_COMMAND v2 knows PING, WHOAMI and TITLE" {
                    problems.append("SAY \(sent): \(reply)")
                }
                if pong != "+PONG" && pong != "+PONG v2" { problems.append("PING \(sent): \(pong)") }
            }
            if try admin.reply().hasPrefix("+OK") { reloads += 1 }
        }
        #expect(reloads == 200)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(alice.events.isEmpty, "\(alice.events.prefix(5))")
        #expect(try admin.call("STATUS").contains("reloads=200"))
        // bob's PING is handled after every SAY was answered, so each relayed
        // line is in before its reply.
        try bob.send("PING")
        var received: [Int] = []
        while let line = try bob.readLine(), line != "+PONG" {
            if let chat = line.wholeMatch(of: /\>SAY alice (\d+)/) {
                received.append(Int(chat.1)!)
            } else {
                problems.append("bob got \(line)")
            }
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(!said.isEmpty)
        #expect(received == said, "said \(said.count), received \(received.count)")
    }

    /// A module's migrate and load hooks run against the staged store: any
    /// output or room change they try is refused (GAME_ERR_STATE) and
    /// reaches nobody, while the fields they write are committed with the
    /// swap and outlive it (HookProbeModule records what it got).
    @Test func hooksCannotReachPlayersButTheirWritesCommit() throws {
        let server = try TestServer()
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let admin = try server.connectAdmin()
        let reply = try admin.call("RELOAD \(Self.module("HookProbeModule"))")
        #expect(reply.hasPrefix("+OK gems 1.2.0 -> probe 1.0 "))
        #expect(statusFields(reply)["migrated"] == "6")
        // reply, send, broadcast, leave, close and create: each refused.
        let refused = "-9,-9,-9,-9,-9,-9"
        #expect(try alice.call("PROBE") == "+PROBE from=1.2.0 logins=102 load=\(refused) migrate=\(refused) score=6")
        #expect(try bob.call("PROBE") == "+PROBE from=1.2.0 logins=102 load=\(refused) migrate=\(refused) score=1")
        #expect(try alice.noEventsPending())
        #expect(try bob.noEventsPending())
        let status = try server.statusFields()
        #expect(status["module"] == "probe")
        #expect(status["rooms"] == "1")
        #expect(status["sessions"] == "2")
        // Back on v1 nobody has moved, and the load hook's write is still
        // there: the login counter went from 2 to 102.
        #expect(try admin.call("ROLLBACK").hasPrefix("+OK probe 1.0 -> gems 1.2.0"))
        #expect(try RoomSnapshot([alice, bob]) == before)
        #expect(try server.connect().call("LOGIN carol") == "+WELCOME carol login 103 score 0")
    }
}
