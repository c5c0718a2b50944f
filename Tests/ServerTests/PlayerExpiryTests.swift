import Foundation
import Testing

/// `--player-ttl-days` over a real server and a real SQLite file: a record
/// not logged in for longer is forgotten (memory, then the file) and
/// audited; one seen recently stays. The file is aged with the
/// sqlite3 shell between two servers, as an operator's clock would age it.
@Suite struct PlayerExpiryTests {
    typealias Persistence = PersistenceTests

    @Test func playersNotSeenForLongerThanTheTTLAreForgottenAndAudited() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let audit = scratch.directory.appendingPathComponent("audit.jsonl").path
        let arguments = ["--database", database, "--flush-interval", "50", "--player-ttl-days", "30"]
        do {
            let server = try TestServer(arguments: arguments)
            _ = try playedRoom(server)  // alice 6, bob 1
            #expect(try server.connect().call("LOGIN carol") == "+WELCOME carol login 3 score 0")
            #expect(server.stop() == 0)
        }
        let stored = try Persistence.sql(database, "SELECT key FROM players WHERE \"engine.last_seen:int\" > 0 ORDER BY key")
        #expect(stored == "alice\nbob\ncarol", "every login noted its time")
        // Bob was last here 31 days ago, carol 29, alice just now.
        let day: Int64 = 86_400_000
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        _ = try Persistence.sql(database, "UPDATE players SET \"engine.last_seen:int\" = \(now - 31 * day) WHERE key = 'bob'")
        _ = try Persistence.sql(database, "UPDATE players SET \"engine.last_seen:int\" = \(now - 29 * day) WHERE key = 'carol'")

        let server = try TestServer(arguments: arguments + ["--audit-log", audit])
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+WELCOME alice login 4 score 6")
        let expired = try waitUntil(NotAHang.seconds) { try server.statusFields()["players_expired"] == "1" }
        #expect(expired)
        #expect(try server.statusFields()["players_stored"] == "2")
        try Persistence.waitForFlush(server)
        #expect(try Persistence.sql(database, "SELECT key FROM players ORDER BY key") == "alice\ncarol")
        let lines = try String(contentsOfFile: audit, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.contains("\"action\":\"EXPIRE\"") && $0.contains("\"subject\":\"bob\"") }, "\(lines)")
        // Bob starts again from nothing.
        #expect(try server.connect().call("LOGIN bob") == "+WELCOME bob login 5 score 0")
    }

    /// Off by default: nothing is noted and nothing expires.
    @Test func withoutTheFlagNothingIsNotedOrForgotten() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let server = try TestServer(arguments: ["--database", database, "--flush-interval", "50"])
        _ = try playedRoom(server)
        try Persistence.waitForFlush(server)
        let columns = try Persistence.sql(database, "SELECT name FROM pragma_table_info('players')")
        #expect(!columns.contains("engine.last_seen"), "\(columns)")
        #expect(try server.statusFields()["players_expired"] == "0")
    }
}
