import Foundation
import Testing

/// `--stall-timeout`: a loop that stops turning ends the process with a
/// crash report that says so, instead of a silent hang (a supervisor then
/// restarts it). The hang here is a module call spinning with the call
/// timeout off, the one hang the fault guard is told not to interrupt.
@Suite struct StallWatchdogTests {
    @Test func aStalledLoopEndsTheProcessWithACrashReport() throws {
        let server = try TestServer(arguments: ["--module", Products.library("FaultyModule").path,
                                                "--call-timeout", "0", "--stall-timeout", "2000"])
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        try alice.send("FAULT loop")
        let started = Date()
        let status = server.waitForExit(grace: 30)
        #expect(server.process.terminationReason == .uncaughtSignal)
        #expect(status == SIGABRT)
        #expect(Date().timeIntervalSince(started) >= 1.9)
        #expect(server.logContains("the event loop stalled: no loop turn for longer than --stall-timeout"), "\(server.log)")
        #expect(server.logContains("hotswap: backtrace"))
    }

    /// An idle server turns once a second: it is not a stall.
    @Test func anIdleLoopIsNotAStall() throws {
        let server = try TestServer(arguments: ["--stall-timeout", "2000"])
        let alice = try server.connect()
        #expect(try alice.call("PING") == "+PONG")
        #expect(!alice.hasInput(within: 3.5))
        #expect(server.process.isRunning)
        #expect(try alice.call("PING") == "+PONG")
    }

    /// A process stopped as a whole (SIGSTOP, a debugger, a paused VM) did
    /// not stall: its loop was stopped with the watchdog. The stop has to
    /// last past the timeout, so this waits 2.5 s on purpose.
    @Test func aStoppedProcessIsNotAStall() throws {
        let server = try TestServer(arguments: ["--stall-timeout", "2000"])
        let alice = try server.connect()
        #expect(try alice.call("PING") == "+PONG")
        kill(server.process.processIdentifier, SIGSTOP)
        Thread.sleep(forTimeInterval: 2.5)
        kill(server.process.processIdentifier, SIGCONT)
        #expect(try alice.call("PING") == "+PONG")
        #expect(!alice.hasInput(within: 0.5))
        #expect(server.process.isRunning)
    }

    @Test func aStallTimeoutUnderTwoSecondsIsRefused() throws {
        let refused = try runServerExpectingExit(["--port", "0", "--admin-port", "0", "--database", ":memory:",
                                                  "--stall-timeout", "500"])
        #expect(refused.status != 0)
        #expect(refused.log.contains("must be 0 or at least 2000"), "\(refused.log)")
    }
}
