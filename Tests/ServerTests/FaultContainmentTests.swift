import Foundation
import Testing

/// Fault containment over real sockets, with fixture modules that crash or
/// hang on request (`FAULT kind`). Each fault is sent by alice while bob
/// plays in the same room: alice's request is answered `-ERR`, everything
/// the call did is undone (a field it set, a broadcast and a line to itself
/// it queued), bob notices nothing, and the counters move.
@Suite struct FaultContainmentTests {
    static let cFaults = ["null", "trap", "abort", "assert", "div0", "recurse", "segv-after-reply", "badreply"]
    static let hangs = ["loop", "loopcalls"]
    static let swiftFaults = ["fatal", "index", "overflow"]

    /// A server serving `module`, alice (score 5) and bob together in room r.
    private func faultyRoom(_ module: String, _ extra: [String] = [])
        throws -> (server: TestServer, alice: LineClient, bob: LineClient)
    {
        let server = try TestServer(arguments: ["--module", Products.library(module).path, "--call-timeout", "200"] + extra)
        let alice = try server.connect()
        let bob = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        #expect(try bob.call("LOGIN bob") == "+OK")
        #expect(try alice.call("JOIN r") == "+JOINED r")
        #expect(try bob.call("JOIN r") == "+JOINED r")
        #expect(try alice.call("SET 5") == "+OK")
        _ = alice.takeEvents()
        return (server, alice, bob)
    }

    /// The lines pushed to `client` (none expected): a round trip (the
    /// fixtures know no PING) brings in every line queued for it before.
    private func pushed(_ client: LineClient) throws -> [String] {
        let reply = try client.call("GET")
        return reply.hasPrefix("+VALUE") ? client.takeEvents() : ["no +VALUE: \(reply)"]
    }

    /// The request that faulted is answered, and nothing it did is left.
    private func expectContained(_ reply: String, expected prefix: String, _ alice: LineClient, _ bob: LineClient) throws {
        #expect(reply.hasPrefix(prefix), "\(reply)")
        #expect(try alice.call("GET") == "+VALUE 5")
        #expect(try pushed(alice) == [], "alice got a line the faulting call queued")
        #expect(try pushed(bob) == [], "bob got a line the faulting call queued")
        // The game goes on for both.
        #expect(try bob.call("SAY still here") == "+OK")
        #expect(try alice.event() == ">SAY bob still here")
        #expect(try alice.call("SET 6") == "+OK")
        #expect(try alice.call("GET") == "+VALUE 6")
    }

    @Test(arguments: cFaults)
    func aCrashInCCostsOneRequest(kind: String) throws {
        let (server, alice, bob) = try faultyRoom("FaultyModule")
        try expectContained(try alice.call("FAULT \(kind)"), expected: "-ERR INTERNAL", alice, bob)
        let status = try server.statusFields()
        #expect(status["faults"] == "1")
        #expect(status["sessions"] == "2")
        #expect(status["last_fault"]?.hasSuffix(":faulty@1.0.0:hotswap_handle") == true, "\(status)")
        #expect(server.logContains("contained: SIG"))
    }

    @Test(arguments: hangs)
    func aHangIsInterruptedAndUndone(kind: String) throws {
        let (server, alice, bob) = try faultyRoom("FaultyModule")
        let started = Date()
        try expectContained(try alice.call("FAULT \(kind)"), expected: "-ERR TIMEOUT", alice, bob)
        #expect(Date().timeIntervalSince(started) < NotAHang.seconds)
        let status = try server.statusFields()
        #expect(status["timeouts"] == "1")
        #expect(status["last_fault"] == "timeout:faulty@1.0.0:hotswap_handle")
    }

    @Test(arguments: swiftFaults)
    func aSwiftTrapCostsOneRequest(kind: String) throws {
        let (server, alice, bob) = try faultyRoom("FaultySwiftModule")
        try expectContained(try alice.call("FAULT \(kind)"), expected: "-ERR INTERNAL", alice, bob)
        #expect(try server.statusFields()["faults"] == "1")
        // One readable line: signal, export, module, version, the module's
        // function, and what the Swift runtime said.
        // (An arithmetic overflow traps without a message: none is made up.)
        let expected = kind == "fatal" ? "FaultySwiftModule: FAULT fatal" : kind == "index" ? "Index out of range" : "at "
        #expect(server.logContains("contained: SIG"), "\(server.log)")
        let line = server.log.split(separator: "\n").first { $0.contains("contained: SIG") }.map(String.init) ?? ""
        #expect(line.contains("in hotswap_handle (faulty-swift 1.0.0) at "), "\(line)")
        #expect(line.contains(expected), "\(line)")
        if kind == "overflow" { #expect(!line.contains("Fatal error"), "\(line)") }
    }

    /// glibc's malloc finds a double free and aborts from inside free(),
    /// holding its arena lock: containing that would freeze the server at
    /// its next allocation. The process ends at once with a crash report
    /// naming the module and the request, for its supervisor to restart.
    @Test func aDoubleFreeEndsTheProcessWithACrashReportInsteadOfFreezing() throws {
        let (server, alice, _) = try faultyRoom("FaultyModule")
        try alice.send("FAULT doublefree")
        let status = server.waitForExit(grace: 30)
        if ProcessInfo.processInfo.environment["ASAN_OPTIONS"] != nil {
            // AddressSanitizer finds the double free first and ends the
            // process itself.
            #expect(status != 0)
            #expect(server.logContains("double-free"), "\(server.log)")
            return
        }
        #expect(server.process.terminationReason == .uncaughtSignal)
        #expect(status == SIGABRT)
        #expect(server.logContains("the C library aborted during a module call"), "\(server.log)")
        #expect(server.logContains("hotswap: module: faulty 1.0.0"))
        // The request's first word and length (the rest may be a secret).
        #expect(server.logContains(#"request (16 bytes; its first word, the rest withheld): "FAULT""#))
        #expect(!server.logContains("contained: SIGABRT", within: 0))
    }

    @Test func aVersionThatKeepsFaultingIsRolledBackWithEverySessionKept() throws {
        let (server, alice, bob) = try faultyRoom("FaultyModule")
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Products.library("FaultySwiftModule").path)")
            .hasPrefix("+OK faulty 1.0.0 -> faulty-swift 1.0.0"))
        for round in 1...3 {
            #expect(try alice.call("FAULT fatal").hasPrefix("-ERR INTERNAL"), "fault \(round)")
        }
        // The third fault rolled the version back; the operator heard of each.
        let status = statusFields(try admin.call("STATUS"))
        #expect(status["module"] == "faulty")
        #expect(status["auto_rollbacks"] == "1")
        #expect(status["faults"] == "3")
        #expect(status["sessions"] == "2")
        #expect(admin.takeEvents().filter { $0.hasPrefix(">FAULT SIG") }.count == 3)
        #expect(server.logContains("faulted 3 times within 60 s: rolled back to faulty 1.0.0"))
        // Nobody was disconnected and nothing was lost.
        #expect(try alice.call("GET") == "+VALUE 5")
        #expect(try bob.call("SAY hello") == "+OK")
        #expect(try alice.event() == ">SAY bob hello")
    }

    /// A call that pushes the room past its output limit and then crashes:
    /// the overflow is undone with the rest, and nobody is cut off.
    @Test func anOverflowByACallThatFaultedDisconnectsNobody() throws {
        let (server, alice, bob) = try faultyRoom("FaultyModule", ["--max-output-bytes", "65536"])
        try expectContained(try alice.call("FAULT flood"), expected: "-ERR INTERNAL", alice, bob)
        let status = try server.statusFields()
        #expect(status["output_overflows"] == "0")
        #expect(status["sessions"] == "2")
    }

    @Test func aFirstVersionThatFaultsKeepsServing() throws {
        let (server, alice, _) = try faultyRoom("FaultyModule")
        for _ in 1...4 { #expect(try alice.call("FAULT null").hasPrefix("-ERR INTERNAL")) }
        let status = try server.statusFields()
        #expect(status["faults"] == "4")
        #expect(status["auto_rollbacks"] == "0")
        #expect(try alice.call("GET") == "+VALUE 5")
    }

    @Test(arguments: [("FaultyMigrateModule", "hotswap_migrate"), ("FaultyLoadModule", "hotswap_load")])
    func aFaultInAReloadHookRefusesTheReload(module: String, export: String) throws {
        let (server, alice, _) = try faultyRoom("FaultyModule")
        let admin = try server.connectAdmin()
        let reply = try admin.call("RELOAD \(Products.library(module).path)")
        #expect(reply.hasPrefix("-ERR RELOAD_FAILED fault SIG"), "\(reply)")
        #expect(reply.contains("in \(export)"), "\(reply)")
        let status = statusFields(try admin.call("STATUS"))
        #expect(status["module"] == "faulty")
        #expect(status["reloads"] == "0")
        #expect(status["faults"] == "1")
        #expect(try alice.call("GET") == "+VALUE 5")
    }

    @Test func aFaultInTheCloseHookStillClosesTheSession() throws {
        let (server, alice, bob) = try faultyRoom("FaultyModule")
        #expect(try alice.call("SET 666") == "+OK")  // the hook faults for 666
        alice.halfClose()
        #expect(try waitUntil { (try? server.statusFields()["sessions"]) == "1" })
        let status = try server.statusFields()
        #expect(status["faults"] == "1")
        #expect(status["last_fault"]?.hasSuffix(":hotswap_session_closed") == true, "\(status)")
        #expect(try bob.call("GET") == "+VALUE 0")
        // The name is free again: the session is gone for good.
        let again = try server.connect()
        #expect(try again.call("LOGIN alice") == "+OK")
    }

    @Test(.timeLimit(.minutes(5)))
    func tenThousandFaultsInARowLeaveTheServerServing() throws {
        let (server, alice, bob) = try faultyRoom("FaultyModule", ["--rate-limit", "0"])
        let pid = server.process.processIdentifier
        let batch = Array(repeating: "FAULT null\r\n", count: 100).joined()
        var answered = 0
        for _ in 0..<100 {
            try alice.write(Array(batch.utf8))
            for _ in 0..<100 where try alice.reply().hasPrefix("-ERR INTERNAL") { answered += 1 }
        }
        #expect(answered == 10_000)
        #expect(try server.statusFields()["faults"] == "10000")
        #expect(try alice.call("GET") == "+VALUE 5")
        #expect(try pushed(bob) == [])
        let rss = try #require(try procFile("/proc/\(pid)/status").split(separator: "\n")
            .first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) },
            "no VmRSS in /proc/\(pid)/status")
        #expect(rss < 1_000_000, "resident memory after 10,000 faults: \(rss) KiB")
    }
}

/// A load that never finishes on the reload's worker (no watchdog reaches a
/// worker thread): the operator is told, the game goes on, and the server
/// still shuts down.
@Suite struct StuckLoadTests {
    @Test func aLoadThatNeverFinishesIsRefusedAndDoesNotBlockShutdown() throws {
        // Without the probe (which would refuse this module first), and
        // with a $TMPDIR of its own, to see the module copies go too.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("tmpdir-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let server = try TestServer(arguments: ["--load-timeout", "500", "--probe-timeout", "0"],
                                    environment: ["TMPDIR": root.path])
        let player = try server.connect()
        let admin = try server.connectAdmin()
        let started = Date()
        let reply = try admin.call("RELOAD \(Products.library("HangingDescribeModule").path)")
        #expect(reply.hasPrefix("-ERR RELOAD_FAILED the load did not finish within 500 ms"), "\(reply)")
        #expect(Date().timeIntervalSince(started) < NotAHang.seconds)
        #expect(try player.call("PING") == "+PONG")
        #expect(try admin.call("RELOAD").hasPrefix("-ERR RELOAD_FAILED a previous load is stuck"))
        let status = statusFields(try admin.call("STATUS"))
        #expect(status["module"] == "gems")
        #expect(status["refused"] == "2")
        let stopping = Date()
        #expect(server.stop() == 0)
        #expect(Date().timeIntervalSince(stopping) < NotAHang.seconds)
        #expect(server.logContains("a stuck module load was abandoned"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).filter { $0.hasPrefix("hotswap-modules-") } == [])
    }
}
