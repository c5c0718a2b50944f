import Foundation
import GameABI
import HotswapTesting
import Testing

/// The fake host against the engine's own ABI 1.5 fixtures, with what
/// Tests/ServerTests/RollbackDownTests.swift expects of the real server:
/// FaultyModule (faulty 1.0.0, an int session score), then
/// MigrateDownModule (faulty 2.0.0, the score retyped to "<n> points",
/// with hotswap_migrate_down) or RetypeNoDownModule (faulty 2.1.0,
/// without it). The fixtures' crash and hang modes are not driven here:
/// the fake host contains no faults.
@Suite struct FakeHostEngineFixtureTests {
    private func load(_ name: String) throws -> FakeModule {
        let path = builtLibrary(name)
        try #require(FileManager.default.fileExists(atPath: path), "build the package first: \(path)")
        return try FakeModule.load(libraryAt: path)
    }

    /// faulty 1.0.0 serving alice (score 5) and bob in room r, then
    /// `module` swapped in.
    private func retypedRoom(_ module: String) throws -> (FakeHost, FakeSession, FakeSession) {
        let host = try FakeHost(try load("FaultyModule"))
        let alice = host.connect(), bob = host.connect()
        #expect(host.send("LOGIN alice", from: alice) == "+OK")
        #expect(host.send("LOGIN bob", from: bob) == "+OK")
        #expect(host.send("JOIN r", from: alice) == "+JOINED r")
        #expect(host.send("JOIN r", from: bob) == "+JOINED r")
        #expect(host.send("SET 5", from: alice) == "+OK")
        _ = host.events(of: alice)
        try host.reload(to: try load(module))
        #expect(host.moduleVersion.hasPrefix("2."))
        #expect(host.send("GET", from: alice) == "+VALUE 5 points")
        return (host, alice, bob)
    }

    @Test func aRollbackPastARetypeConvertsTheNewerValuesBack() throws {
        let (host, alice, bob) = try retypedRoom("MigrateDownModule")
        #expect(host.send("SET 7", from: alice) == "+OK")
        #expect(host.send("SET 3", from: bob) == "+OK")
        try host.rollback()
        #expect(host.moduleVersion == "1.0.0")
        #expect(host.send("GET", from: alice) == "+VALUE 7")
        #expect(host.send("GET", from: bob) == "+VALUE 3")
        #expect(host.send("SET 8", from: alice) == "+OK")
        try host.reload(to: try load("MigrateDownModule"))
        #expect(host.send("GET", from: alice) == "+VALUE 8 points")
    }

    @Test func aFailingMigrateDownLeavesTheNewerModuleServing() throws {
        let (host, alice, bob) = try retypedRoom("MigrateDownModule")
        #expect(host.send("SET 7", from: alice) == "+OK")
        #expect(host.send("MODE 1", from: alice) == "+OK")
        do {
            try host.rollback()
            Issue.record("the rollback went through")
        } catch {
            #expect("\(error)".hasPrefix("hotswap_migrate_down failed with status 42 on "), "\(error)")
        }
        #expect(host.moduleVersion == "2.0.0")
        #expect(host.send("GET", from: alice) == "+VALUE 7 points")
        #expect(host.send("GET", from: bob) == "+VALUE 0 points")
        #expect(host.send("MODE 0", from: alice) == "+OK")
        try host.rollback()
        #expect(host.send("GET", from: alice) == "+VALUE 7")
    }

    @Test func withoutMigrateDownTheRollbackIsRefusedWithTheFieldNamed() throws {
        let (host, alice, _) = try retypedRoom("RetypeNoDownModule")
        #expect(host.send("SET 8", from: alice) == "+OK")
        #expect(throws: FakeHostError(
            "cannot roll back faulty 2.1.0 -> faulty 1.0.0: faulty 2.1.0 retyped field 'score' and exports no "
                + "hotswap_migrate_down; going back would mix the score from before the upgrade with everything written since")) {
            try host.rollback()
        }
        #expect(host.send("GET", from: alice) == "+VALUE 8 points")
    }

    @Test func undoDiscardsWhatTheCallDidAndTheReplyAfterItIsDelivered() throws {
        let (host, alice, bob) = try retypedRoom("MigrateDownModule")
        #expect(host.send("UNDO", from: alice) == "+UNDONE 0")
        #expect(host.events(of: alice).isEmpty)
        #expect(host.events(of: bob).isEmpty)
        #expect(host.send("GET", from: alice) == "+VALUE 42 points")
        // undo in hotswap_migrate was refused; the reload went through.
        #expect(host.send("UNDOSTATUS", from: alice) == "+UNDOSTATUS \(GAME_ERR_STATE)")
    }
}
