import Foundation
import Testing

/// A crash end to end: a fault no guard can contain ends the server with a
/// crash report, a supervisor starts it again (the test, following
/// systemd's Restart=on-failure: a restart when the process died of a
/// signal or exited non-zero, none after a clean exit), the players'
/// durable data is intact, and STATUS tells the operator how the previous
/// run ended.
@Suite struct CrashRestartTests {
    typealias Persistence = PersistenceTests

    /// What systemd's Restart=on-failure restarts.
    private func failed(_ server: TestServer) -> Bool {
        server.process.terminationReason == .uncaughtSignal || server.process.terminationStatus != 0
    }

    @Test func anUncontainableFaultIsRestartedWithEveryDurablePlayerAndItsCauseKept() throws {
        let scratch = try Persistence.Scratch()
        // Under AddressSanitizer a double free is ASan's to report (it ends
        // the process itself, without our record): the uncontainable fault
        // there is a loop stall instead.
        let asan = ProcessInfo.processInfo.environment["ASAN_OPTIONS"] != nil
        let arguments = ["--database", scratch.database.path, "--flush-interval", "50"]
            + (asan ? ["--call-timeout", "0", "--stall-timeout", "2000"] : [])
        do {
            let server = try TestServer(arguments: arguments)
            #expect(try server.statusFields()["previous_exit"] == "none")
            let (alice, _) = try playedRoom(server)  // alice 6, bob 1
            try Persistence.waitForFlush(server)
            let admin = try server.connectAdmin()
            // A later game, with a bug no guard may contain.
            let reload = try admin.call("RELOAD \(Products.library("PlayerFieldsModule").path)")
            #expect(reload.hasPrefix("+OK gems 1.2.0 -> titles 1.0"), "\(reload)")
            try alice.send(asan ? "SPIN" : "DOUBLEFREE")
            _ = server.waitForExit(grace: 30)
            #expect(failed(server), "the supervisor would not restart it")
            #expect(server.logContains("==== fatal signal in the game server: not contained ===="), "\(server.log)")
        }
        // The supervisor starts it again, on the same database.
        let server = try TestServer(arguments: arguments)
        #expect(try server.statusFields()["previous_exit"] == "crash:SIGABRT")
        #expect(server.logContains("the previous run did not end cleanly (crash:SIGABRT): crash signal=SIGABRT"), "\(server.log)")
        #expect(server.logContains("module=titles@1.0 call=hotswap_handle why="))
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+WELCOME alice login 3 score 6")
        #expect(try server.connect().call("LOGIN bob") == "+WELCOME bob login 4 score 1")

        // A clean stop is not restarted, and the next start says it was clean.
        #expect(server.stop() == 0)
        #expect(!failed(server))
        let again = try TestServer(arguments: arguments)
        #expect(try again.statusFields()["previous_exit"] == "clean")
        #expect(!again.logContains("did not end cleanly", within: 0))
    }

    /// A server started and killed with SIGKILL.
    private static func startAndKill(_ arguments: [String]) throws {
        let server = try TestServer(arguments: arguments)
        kill(server.process.processIdentifier, SIGKILL)
        server.process.waitUntilExit()
    }

    /// SIGKILL (or the kernel's out-of-memory killer, or a power cut) leaves
    /// no word: the record still says the run was running.
    @Test func aKillDashNineIsReportedAsKilled() throws {
        let scratch = try Persistence.Scratch()
        let arguments = ["--database", scratch.database.path]
        try Self.startAndKill(arguments)
        let server = try TestServer(arguments: arguments)
        #expect(try server.statusFields()["previous_exit"] == "killed")
        #expect(server.logContains("the previous run did not end cleanly (killed)"))
    }

    /// A start refused after the record was opened (its port is taken)
    /// says so: the next start reads `failed`, not `killed`.
    @Test func aRefusedStartIsRecordedAsFailedNotKilled() throws {
        let busy = try TestServer()
        let scratch = try Persistence.Scratch()
        let refused = try runServerExpectingExit(["--database", scratch.database.path, "--port", "\(busy.port)"])
        #expect(refused.status == 2, "\(refused.log)")
        let server = try TestServer(arguments: ["--database", scratch.database.path])
        #expect(try server.statusFields()["previous_exit"] == "failed")
        #expect(server.logContains("the previous run did not end cleanly (failed): stopped status=2"), "\(server.log)")
    }

    /// An engine upgrade is the same process going on, not an exit: the
    /// previous run's cause stays what it was.
    @Test func anUpgradeKeepsThePreviousRunsCause() throws {
        let scratch = try Persistence.Scratch()
        let arguments = ["--database", scratch.database.path]
        try Self.startAndKill(arguments)
        let server = try TestServer(arguments: arguments)
        let admin = try server.connectAdmin()
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try server.statusFields()["previous_exit"] == "killed")
    }
}
