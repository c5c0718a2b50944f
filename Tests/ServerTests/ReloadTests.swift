import Foundation
import Testing

/// Hot swap over the admin port, with real dylibs built by the package:
/// players stay connected, state stays, refused modules change nothing.
@Suite struct ReloadTests {
    static func module(_ name: String) -> String { Products.library(name).path }

    /// alice and bob in one room, alice's position and score read back.
    private func twoPlayers(_ server: TestServer) throws -> (LineClient, LineClient, String, String) {
        let alice = try server.connect()
        let bob = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice login 1"))
        #expect(try bob.call("LOGIN bob").hasPrefix("+WELCOME bob login 2"))
        _ = try alice.call("JOIN lobby")
        _ = try bob.call("JOIN lobby")
        _ = try alice.event()
        let map = try alice.call("LOOK")
        let score = try alice.call("SCORE")
        return (alice, bob, map, score)
    }

    @Test func reloadKeepsPlayersAndStateAndRollbackRestoresV1() throws {
        let server = try TestServer()
        let (alice, bob, map, _) = try twoPlayers(server)
        let board = try Board(map)
        let admin = try server.connectAdmin()

        let reloaded = try admin.call("RELOAD \(Self.module("GameLogicV2"))")
        #expect(reloaded.hasPrefix("+OK gems 1.0.0 -> gems 2.0.0 held_us="))
        // The same sockets see the new code at once, with everything v1 stored.
        #expect(try alice.call("PING") == "+PONG v2")
        #expect(try alice.call("WHOAMI") == "+ME alice lobby \(board.position.x) \(board.position.y) 0 rookie")
        #expect(try bob.call("WHOAMI").hasPrefix("+ME bob lobby "))
        #expect(try bob.call("TITLE champion") == "+OK")

        #expect(try admin.call("ROLLBACK").hasPrefix("+OK gems 2.0.0 -> gems 1.0.0"))
        #expect(try alice.call("PING") == "+PONG")
        #expect(try alice.call("LOOK") == map)
        #expect(try alice.call("WHO") == "+WHO alice bob")
        // v2 dropped the global login counter; it was kept hidden and is back.
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol login 3"))
        // And v2's own field survives a rollback too.
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV2"))").hasPrefix("+OK"))
        #expect(try bob.call("WHOAMI").hasSuffix(" champion"))
        #expect(try carol.call("WHOAMI").hasSuffix(" rookie"))
    }

    @Test func retypedFieldIsMigrated() throws {
        let server = try TestServer()
        let (alice, bob, _, score) = try twoPlayers(server)
        defer { withExtendedLifetime(bob) {} }  // bob stays in the room
        let points = try #require(score.firstMatch(of: /alice:(\d+)/)).1
        let admin = try server.connectAdmin()
        let reply = try admin.call("RELOAD \(Self.module("GameLogicV3"))")
        #expect(reply.hasPrefix("+OK gems 1.0.0 -> gems 3.0.0"))
        #expect(reply.hasSuffix("migrated=4"))  // the global entity, two sessions, one room
        #expect(try alice.call("SCORE") == "+SCORE alice \(points) gems")
        #expect(try alice.call("PING") == "+PONG v3")
    }

    @Test func refusedModulesChangeNothing() throws {
        let server = try TestServer()
        let (alice, bob, map, score) = try twoPlayers(server)
        defer { withExtendedLifetime(bob) {} }  // bob stays in the room
        let admin = try server.connectAdmin()
        let junk = Products.directory.appendingPathComponent("not-a-module-\(UUID()).so")
        try Data("not an ELF file".utf8).write(to: junk)
        defer { try? FileManager.default.removeItem(at: junk) }

        let cases: [(String, String)] = [
            (junk.path, "cannot load module"),
            (Self.module("NoHandleModule"), "does not export hotswap_handle"),
            (Self.module("WrongABIModule"), "was built for ABI 2.0, this engine speaks ABI 1."),
            (Self.module("RetypeWithoutMigrateModule"), "field session.score is int in the store but string"),
            (Self.module("FailingMigrateModule"), "hotswap_migrate failed"),
            (Self.module("FailingLoadModule"), "hotswap_load failed"),
            (Products.directory.appendingPathComponent("missing.so").path, "module not found"),
        ]
        for (path, reason) in cases {
            let reply = try admin.call("RELOAD \(path)")
            #expect(reply.hasPrefix("-ERR RELOAD_FAILED"), "\(path)")
            #expect(reply.contains(reason), "\(reply)")
            // The old module still serves, and no field moved.
            #expect(try alice.call("PING") == "+PONG")
            #expect(try alice.call("LOOK") == map)
            #expect(try alice.call("SCORE") == score)
        }
        // The failed load hook had set the login counter: it must not show.
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol login 3"))
        let status = try admin.call("STATUS")
        #expect(status.contains("version=1.0.0"))
        #expect(status.contains("refused=\(cases.count)"))
        #expect(status.contains("reloads=0"))
    }

    @Test func pathsOutsideTheModulesDirectoryAreRefused() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
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
        for path in [outside.path, link.path, dotted, "/etc/passwd", "../" + above.lastPathComponent] {
            let reply = try admin.call("RELOAD \(path)")
            #expect(reply.hasPrefix("-ERR RELOAD_FAILED"), "\(path)")
            #expect(reply.contains("outside the modules directory"), "\(reply)")
        }
        // A relative path names a file inside the directory.
        let player = try server.connect()
        #expect(try player.call("PING") == "+PONG")
        #expect(try admin.call("RELOAD libGameLogicV2.so").hasPrefix("+OK gems 1.0.0 -> gems 2.0.0"))
        #expect(try player.call("PING") == "+PONG v2")
    }

    @Test func tokenIsRequiredAndChecked() throws {
        let token = "correct-horse-battery"
        let server = try TestServer(arguments: ["--admin-token", token])
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD").hasPrefix("-ERR AUTH_REQUIRED"))
        #expect(try admin.call("STATUS").hasPrefix("-ERR AUTH_REQUIRED"))
        #expect(try admin.call("AUTH").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try admin.call("AUTH \(token)!").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try admin.call("AUTH \(token)") == "+OK authenticated")
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV2"))").hasPrefix("+OK"))
        // Three wrong tokens and the connection is closed.
        let guesser = try server.connectAdmin()
        #expect(try guesser.call("AUTH correct-horse-batter").hasPrefix("-ERR AUTH_FAILED"))
        _ = try guesser.call("AUTH nope")
        #expect(try guesser.call("AUTH nope").hasPrefix("-ERR AUTH_FAILED"))
        #expect(try guesser.closedByServer())
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
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(try admin.call("PING") == "+PONG")
        #expect(try admin.call("STATUS").contains(" admin_timeouts=2"))
    }

    @Test func aFieldCannotChangeTypeBackWithoutMigrationButRollbackCan() throws {
        let server = try TestServer()
        let (alice, bob, _, _) = try twoPlayers(server)
        defer { withExtendedLifetime(bob) {} }
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV3"))").hasPrefix("+OK gems 1.0.0 -> gems 3.0.0"))
        // The same v3 file again is no swap at all.
        #expect(try admin.call("RELOAD \(Self.module("GameLogicV3"))").hasPrefix("+OK unchanged gems 3.0.0"))
        // A rebuilt v3 over v3: its migration sees the field already converted.
        let rebuilt = try paddedCopy(of: "GameLogicV3")
        defer { try? FileManager.default.removeItem(at: rebuilt) }
        #expect(try admin.call("RELOAD \(rebuilt.path)").hasPrefix("+OK gems 3.0.0 -> gems 3.0.0"))
        let back = try admin.call("RELOAD \(Self.module("GameLogic"))")
        #expect(back.hasPrefix("-ERR RELOAD_FAILED field session.score is string in the store but int"))
        #expect(try alice.call("PING") == "+PONG v3")
        #expect(try admin.call("ROLLBACK").hasPrefix("+OK gems 3.0.0 -> gems 3.0.0"))
    }

    @Test func corruptELFHeadersAreRefusedNotTrapped() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        // A 64-byte ELF header whose section table offset is near 2^64.
        var header = [UInt8](repeating: 0, count: 64)
        header[0...4] = [0x7F, 0x45, 0x4C, 0x46, 2]
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
        #expect(try admin.call("RELOAD \(build.path)").hasPrefix("+OK gems 1.0.0 -> gems 1.0.0"))
        let handle = try FileHandle(forWritingTo: build)
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([0]))
        try handle.close()
        #expect(try admin.call("RELOAD \(build.path)").hasPrefix("+OK gems 1.0.0 -> gems 1.0.0"))
        // The same file once more: nothing is loaded, and it says so.
        let unchanged = try admin.call("RELOAD \(build.path)")
        #expect(unchanged.hasPrefix("+OK unchanged gems 1.0.0 sha256="), "\(unchanged)")
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
        #expect(server.log.contains("protocol=base"))
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
        #expect(try admin.readLine()?.hasPrefix("+OK gems 1.0.0 -> gems 2.0.0") == true)
        #expect(try admin.readLine()?.hasPrefix("+STATUS module=gems version=2.0.0") == true)
        #expect(try admin.readLine()?.hasPrefix("+OK gems 2.0.0 -> gems 1.0.0") == true)
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
        #expect(try admin.readLine()?.hasPrefix("+OK gems 1.0.0 -> gems 2.0.0") == true)
        #expect(try admin.readLine() == "+BYE")
        #expect(try admin.closedByServer())
        #expect(try server.connectAdmin().call("STATUS").contains("rollbacks=0"))
    }

    @Test func aHalfClosedOperatorStillGetsTheReloadReply() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        try admin.send("RELOAD \(Self.module("GameLogicV2"))")
        admin.halfClose()  // like `echo RELOAD | nc`
        #expect(try admin.readLine()?.hasPrefix("+OK gems 1.0.0 -> gems 2.0.0") == true)
        #expect(try admin.closedByServer())
    }

    @Test func rollbackWithNothingToRollBackIsRefused() throws {
        let server = try TestServer()
        let admin = try server.connectAdmin()
        #expect(try admin.call("ROLLBACK") == "-ERR RELOAD_FAILED no previous module to roll back to")
    }

    /// 200 swaps while two players talk: every request gets exactly one
    /// reply, in order, and every chat line arrives once, in order. Each
    /// RELOAD is sent, then ten requests, then its reply is read, so every
    /// swap lands between two of the players' messages.
    @Test func twoHundredReloadsUnderTrafficLoseNothing() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0"])
        let (alice, bob) = try server.aliceAndBob()
        let admin = try server.connectAdmin()
        var sent = 0
        var problems: [String] = []
        var reloads = 0
        for round in 0..<200 {
            let path = round % 2 == 0 ? Self.module("GameLogicV2") : Self.module("GameLogic")
            try admin.send("RELOAD \(path)")
            for _ in 0..<5 {
                sent += 1
                try alice.send("SAY \(sent)")
                try alice.send("PING")
                let said = try alice.reply()
                let pong = try alice.reply()
                if said != "+OK" && !said.hasPrefix("-ERR UNKNOWN_COMMAND v2") { problems.append("\(sent): \(said)") }
                if pong != "+PONG" && pong != "+PONG v2" { problems.append("\(sent): \(pong)") }
            }
            if try admin.reply().hasPrefix("+OK") { reloads += 1 }
        }
        #expect(reloads == 200)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(try admin.call("STATUS").contains("reloads=200"))
        // Chat lines said under v1 reached bob once each, in order.
        try bob.send("PING")
        var last = 0
        var received = 0
        while let line = try bob.readLine(), !line.hasPrefix("+PONG") {
            guard let number = Int(line.dropFirst(">SAY alice ".count)) else { continue }
            if number <= last { problems.append("chat \(number) after \(last)") }
            last = number
            received += 1
        }
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        #expect(received >= 400)  // about half the lines were said under v1
    }
}
