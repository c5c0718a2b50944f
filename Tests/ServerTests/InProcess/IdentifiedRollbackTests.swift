import Testing
@testable import HotswapEngine

/// The `identified` mark a module sets (`session_identified`, at login)
/// is part of what a call that faults undoes. What it gates: a session
/// that is not identified is closed after `--login-timeout`, an identified
/// one only after `--idle-timeout` (PlayerSession.deadlinePassed). No
/// fixture identifies a session and then crashes, and a real fault cannot
/// be raised in the test process (the fault guard's signal handlers are
/// process-wide), so the call is played as LogicHost.handle runs it:
/// beginJournal, the module's markIdentified, rollBackJournal for the
/// fault. The session is a real PlayerSession of a real Engine.
@Suite struct IdentifiedRollbackTests {
    @Test func anIdentifiedMarkFromACallThatFaultedIsUndoneAndTheLoginTimeoutAppliesAgain() throws {
        let embedded = try EmbeddedEngine(["--login-timeout", "30", "--idle-timeout", "600"])
        let client = try embedded.connect()
        #expect(client.call("PING") == "+PONG")
        let world = embedded.engine.world
        let id = try #require(world.sessionIDs().first)
        let session = try #require(world.sessions[id]?.peer as? PlayerSession)
        let pastLogin = session.lastRequest + 30 * 1000
        #expect(!session.isIdentified)
        #expect(session.deadlinePassed(now: pastLogin))

        // A call that identifies the session, then faults.
        world.beginJournal()
        try world.markIdentified(id)
        #expect(session.isIdentified)
        #expect(!session.deadlinePassed(now: pastLogin))
        world.rollBackJournal()
        #expect(!session.isIdentified, "a faulted call left the session identified")
        #expect(session.deadlinePassed(now: pastLogin), "a faulted call's login moved the session off the login timeout")

        // A real login identifies it for good; a later call that marks it
        // again and faults leaves it identified (the undo restores what
        // was, it does not clear).
        #expect(client.call("LOGIN alice")?.hasPrefix("+WELCOME alice") == true)
        #expect(session.isIdentified)
        world.beginJournal()
        try world.markIdentified(id)
        world.rollBackJournal()
        #expect(session.isIdentified)
        #expect(!session.deadlinePassed(now: session.lastRequest + 30 * 1000))
        #expect(session.deadlinePassed(now: session.lastRequest + 600 * 1000))
    }
}
