import Foundation
import Testing

/// ABI 1.5 over real sockets: a ROLLBACK past a retyped field goes back
/// through the newer module's `hotswap_migrate_down` or is refused, and a
/// module's `undo` leaves no trace of what its call did before it.
///
/// The fixtures are newer versions of FaultyModule (faulty 1.0.0, an int
/// session score) that retype the score to a string ("<n> points"):
/// MigrateDownModule (faulty 2.0.0) exports hotswap_migrate_down,
/// RetypeNoDownModule (faulty 2.1.0) does not (Tests/Fixtures/Shared/faulty_retyped.h).
@Suite struct RollbackDownTests {
    private static let refusal = "-ERR RELOAD_FAILED cannot roll back faulty 2.1.0 -> faulty 1.0.0: faulty 2.1.0 "
        + "retyped field 'score' and exports no hotswap_migrate_down; going back would mix the score from before "
        + "the upgrade with everything written since"

    /// faulty 1.0.0 serving alice (score 5) and bob in room r, then `module`
    /// swapped in: the scores are strings from here.
    private func retypedRoom(_ module: String, _ extra: [String] = [])
        throws -> (server: TestServer, admin: LineClient, alice: LineClient, bob: LineClient)
    {
        let server = try TestServer(arguments: ["--module", Products.library("FaultyModule").path,
                                                "--call-timeout", "200"] + extra)
        let alice = try server.connect()
        let bob = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        #expect(try bob.call("LOGIN bob") == "+OK")
        #expect(try alice.call("JOIN r") == "+JOINED r")
        #expect(try bob.call("JOIN r") == "+JOINED r")
        #expect(try alice.call("SET 5") == "+OK")
        _ = alice.takeEvents()
        let admin = try server.connectAdmin()
        let reply = try admin.call("RELOAD \(Products.library(module).path)")
        #expect(reply.hasPrefix("+OK faulty 1.0.0 -> faulty 2."), "\(reply)")
        // The global entity, two sessions, one room.
        #expect(statusFields(reply)["migrated"] == "4", "\(reply)")
        #expect(try alice.call("GET") == "+VALUE 5 points")
        return (server, admin, alice, bob)
    }

    /// The lines pushed to `client` so far: a GET round trip brings in
    /// every line queued for it before.
    private func pushed(_ client: LineClient) throws -> [String] {
        let reply = try client.call("GET")
        return reply.hasPrefix("+VALUE") ? client.takeEvents() : ["no +VALUE: \(reply)"]
    }

    // MARK: - hotswap_migrate_down

    @Test func aRollbackPastARetypeConvertsTheNewerValuesBack() throws {
        let (server, admin, alice, bob) = try retypedRoom("MigrateDownModule")
        // Written under faulty 2.0.0, as strings.
        #expect(try alice.call("SET 7") == "+OK")
        #expect(try bob.call("SET 3") == "+OK")
        let reply = try admin.call("ROLLBACK")
        #expect(reply.hasPrefix("+OK faulty 2.0.0 -> faulty 1.0.0"), "\(reply)")
        #expect(statusFields(reply)["migrated"] == "4", "\(reply)")
        // faulty 1.0.0 reads its int score: the value written since the
        // upgrade, converted, not the 5 from before it.
        #expect(try alice.call("GET") == "+VALUE 7")
        #expect(try bob.call("GET") == "+VALUE 3")
        #expect(try server.statusFields()["version"] == "1.0.0")
        // The game goes on, and going up again converts what 1.0.0 holds now.
        #expect(try alice.call("SET 8") == "+OK")
        #expect(try bob.call("SAY hi") == "+OK")
        #expect(try alice.event() == ">SAY bob hi")
        #expect(try admin.call("RELOAD \(Products.library("MigrateDownModule").path)").hasPrefix("+OK faulty 1.0.0 -> faulty 2.0.0"))
        #expect(try alice.call("GET") == "+VALUE 8 points")
    }

    @Test func aMigrateDownThatFailsFaultsOrHangsLeavesTheNewerModuleServing() throws {
        let (server, admin, alice, bob) = try retypedRoom("MigrateDownModule")
        #expect(try alice.call("SET 7") == "+OK")
        let cases: [(mode: Int, reason: String)] = [
            (1, "hotswap_migrate_down failed with status 42 on session#"),
            (2, "fault SIGSEGV in hotswap_migrate_down"),
            (3, "fault timeout in hotswap_migrate_down"),
        ]
        for (mode, reason) in cases {
            #expect(try alice.call("MODE \(mode)") == "+OK")
            let reply = try admin.call("ROLLBACK")
            #expect(reply.hasPrefix("-ERR RELOAD_FAILED \(reason)"), "mode \(mode): \(reply)")
            // faulty 2.0.0 still serves, and nothing moved.
            #expect(try alice.call("GET") == "+VALUE 7 points", "mode \(mode)")
            #expect(try bob.call("GET") == "+VALUE 0 points", "mode \(mode)")
            let status = try server.statusFields()
            #expect(status["version"] == "2.0.0", "mode \(mode)")
            #expect(status["previous"] == "faulty@1.0.0", "mode \(mode)")
        }
        let status = try server.statusFields()
        #expect(status["refused"] == "3")
        // The fault and the hang were the newer module's code, and counted
        // (as a refused reload's are: both under faults).
        #expect(status["last_fault"] == "timeout:faulty@2.0.0:hotswap_migrate_down", "\(status)")
        #expect(status["faults"] == "2", "\(status)")
        // A hook that declines (no way back to that version): the engine
        // decides as without one, and names the retyped field.
        #expect(try alice.call("MODE 4") == "+OK")
        #expect(try admin.call("ROLLBACK") == "-ERR RELOAD_FAILED cannot roll back faulty 2.0.0 -> faulty 1.0.0: faulty "
            + "2.0.0 retyped field 'score' and its hotswap_migrate_down has no way back to faulty 1.0.0; going back would "
            + "mix the score from before the upgrade with everything written since")
        #expect(try alice.call("GET") == "+VALUE 7 points")
        let afterDecline = try server.statusFields()
        #expect(afterDecline["refused"] == "4", "\(afterDecline)")
        #expect(afterDecline["faults"] == "2", "\(afterDecline)")
        // Once it converts, the rollback goes through.
        #expect(try alice.call("MODE 0") == "+OK")
        #expect(try admin.call("ROLLBACK").hasPrefix("+OK faulty 2.0.0 -> faulty 1.0.0"))
        #expect(try alice.call("GET") == "+VALUE 7")
    }

    @Test func withoutMigrateDownARollbackPastARetypeIsRefusedWithTheFieldNamed() throws {
        let audit = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: audit) }
        let (server, admin, alice, bob) = try retypedRoom("RetypeNoDownModule", ["--audit-log", audit.path])
        #expect(try alice.call("SET 8") == "+OK")
        #expect(try admin.call("ROLLBACK") == Self.refusal)
        // faulty 2.1.0 still serves, with the value written under it.
        #expect(try alice.call("GET") == "+VALUE 8 points")
        var status = try server.statusFields()
        #expect(status["version"] == "2.1.0")
        #expect(status["refused"] == "1")

        // The fault policy's rollback follows the same rule: the faulting
        // version keeps serving, each fault contained, and the operator is
        // told why it was not rolled back.
        _ = admin.takeEvents()
        for round in 1...3 { #expect(try alice.call("FAULT").hasPrefix("-ERR INTERNAL"), "fault \(round)") }
        status = statusFields(try admin.call("STATUS"))
        #expect(status["version"] == "2.1.0")
        #expect(status["auto_rollbacks"] == "0")
        #expect(status["faults"] == "3")
        let events = admin.takeEvents()
        #expect(events.count == 3, "\(events)")
        #expect(events.last?.contains("; not rolled back after 3 faults within 60 s: cannot roll back faulty 2.1.0 -> faulty 1.0.0: faulty 2.1.0 retyped field 'score'") == true, "\(events)")
        #expect(server.logContains("faulty 2.1.0 faulted 3 times within 60 s but was not rolled back: cannot roll back faulty 2.1.0 -> faulty 1.0.0: faulty 2.1.0 retyped field 'score'"))
        var entries: [[String: Any]] = []
        #expect(waitUntil {
            let text = (try? String(contentsOf: audit, encoding: .utf8)) ?? ""
            entries = text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return entries.contains { $0["action"] as? String == "AUTO_ROLLBACK" }
        })
        let automatic = entries.first { $0["action"] as? String == "AUTO_ROLLBACK" }
        #expect(automatic?["result"] as? String == "refused")
        #expect((automatic?["reason"] as? String)?.contains("retyped field 'score'") == true, "\(String(describing: automatic))")
        // Nobody was cut off and nothing moved.
        #expect(try alice.call("GET") == "+VALUE 8 points")
        #expect(try bob.call("GET") == "+VALUE 0 points")
    }

    @Test func aRollbackAfterAnEngineUpgradeStillMigratesDown() throws {
        let (server, admin, alice, _) = try retypedRoom("MigrateDownModule")
        #expect(try alice.call("SET 7") == "+OK")
        // The new engine maps both modules again from their private copies:
        // hotswap_migrate_down is found again by dlsym.
        #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try server.statusFields()["previous"] == "faulty@1.0.0")
        #expect(try admin.call("ROLLBACK").hasPrefix("+OK faulty 2.0.0 -> faulty 1.0.0"))
        #expect(try alice.call("GET") == "+VALUE 7")
    }

    // MARK: - undo

    @Test func undoDiscardsWhatTheCallDidAndTheReplyAfterItIsDelivered() throws {
        let (server, _, alice, bob) = try retypedRoom("MigrateDownModule")
        // The write, the room's line, the line to itself and the +BEFORE
        // reply came before the undo; only the +UNDONE reply and the write
        // after it remain (the module's reply is the request's one reply).
        #expect(try alice.call("UNDO") == "+UNDONE 0")
        #expect(alice.takeEvents() == [])
        #expect(try pushed(alice) == [])
        #expect(try pushed(bob) == [])
        #expect(try alice.call("GET") == "+VALUE 42 points")
        #expect(try server.statusFields()["faults"] == "0")
        // undo in hotswap_migrate was refused (GAME_ERR_STATE, -9); the
        // reload went through, as the hook returned GAME_OK.
        #expect(try alice.call("UNDOSTATUS") == "+UNDOSTATUS -9")
    }

    @Test func aFaultAfterAnUndoStillUndoesEverything() throws {
        let (server, _, alice, bob) = try retypedRoom("MigrateDownModule")
        // Writes, undo, more writes (journaled afresh), then a crash.
        #expect(try alice.call("UNDOFAULT").hasPrefix("-ERR INTERNAL"))
        #expect(alice.takeEvents() == [])
        #expect(try pushed(alice) == [])
        #expect(try pushed(bob) == [])
        #expect(try alice.call("GET") == "+VALUE 5 points")
        let status = try server.statusFields()
        #expect(status["faults"] == "1")
        #expect(status["sessions"] == "2")
        #expect(try alice.call("SET 6") == "+OK")
        #expect(try alice.call("GET") == "+VALUE 6 points")
    }
}
