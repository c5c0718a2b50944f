import Foundation
import Testing

/// Signals an operator, a terminal or a stray script may send, over a real
/// server: none of them kills it by its default action.
@Suite struct SignalTests {
    /// SIGHUP (a closed terminal, an operator used to daemons that reload
    /// on it) is the graceful stop SIGTERM is: everyone hears >SHUTDOWN, the
    /// final flush writes what changed, the exit status is 0, the log says
    /// why. The flush interval is a minute: only the final flush can have
    /// written alice's login.
    @Test func sighupStopsGracefullyWithTheFinalFlush() throws {
        let scratch = try PersistenceTests.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "60000"])
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        kill(server.process.processIdentifier, SIGHUP)
        #expect(try alice.readLine() == ">SHUTDOWN the server is shutting down")
        #expect(server.waitForExit() == 0)
        #expect(server.process.terminationReason == .exit)
        #expect(server.logContains("signal SIGHUP: shutting down"))
        #expect(try PersistenceTests.sql(database, "SELECT key FROM players") == "alice")
    }

    /// SIGUSR1, SIGALRM, SIGXFSZ, SIGVTALRM and SIGPROF would each end the
    /// process by default: each is logged and ignored, and the game goes on.
    @Test func strayDefaultKillingSignalsAreLoggedAndIgnored() throws {
        let server = try TestServer()
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        for (signal, name) in [(SIGUSR1, "SIGUSR1"), (SIGALRM, "SIGALRM"), (SIGXFSZ, "SIGXFSZ"),
                               (SIGVTALRM, "SIGVTALRM"), (SIGPROF, "SIGPROF")]
        {
            kill(server.process.processIdentifier, signal)
            #expect(server.logContains("signal \(name) ignored"), "\(name)")
            #expect(try alice.call("PING") == "+PONG", "\(name)")
        }
        #expect(server.process.isRunning)
        #expect(server.stop() == 0)
    }
}
