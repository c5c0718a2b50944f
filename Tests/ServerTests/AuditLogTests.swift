import Foundation
import Testing

/// `--audit-log`: one JSON line per admin action, written off the loop.
@Suite struct AuditLogTests {
    @Test func everyAdminActionIsOneJSONLine() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("audit-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: file) }
        let token = "correct-horse-battery-staple"
        let server = try TestServer(arguments: ["--admin-token", token, "--audit-log", file.path])
        let rebuilt = try paddedCopy(of: "GameLogic")
        defer { try? FileManager.default.removeItem(at: rebuilt) }
        let admin = try server.connectAdmin()
        #expect(try admin.call("STATUS").hasPrefix("-ERR AUTH_REQUIRED"))
        #expect(try admin.call("AUTH wrong") == "-ERR AUTH_FAILED wrong token")
        #expect(try admin.call("AUTH \(token)") == "+OK authenticated")
        #expect(try admin.call("RELOAD \(rebuilt.path)").hasPrefix("+OK gems 1.2.0 -> gems 1.2.0"))
        #expect(try admin.call("RELOAD \(rebuilt.path)").hasPrefix("+OK unchanged"))
        #expect(try admin.call("RELOAD /etc/passwd").hasPrefix("-ERR RELOAD_FAILED"))
        #expect(try admin.call("ROLLBACK").hasPrefix("+OK gems 1.2.0 -> gems 1.2.0"))
        let expected = 7
        var entries: [[String: Any]] = []
        #expect(waitUntil {
            let text = (try? String(contentsOf: file, encoding: .utf8)) ?? ""
            entries = text.split(separator: "\n").compactMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return entries.count >= expected
        })
        #expect(entries.count == expected)
        let summary = entries.map { "\($0["action"] as? String ?? "?"):\($0["result"] as? String ?? "?")" }
        #expect(summary == ["STATUS:refused", "AUTH:refused", "AUTH:ok", "RELOAD:ok", "RELOAD:unchanged",
                            "RELOAD:refused", "ROLLBACK:ok"])
        let reload = entries[3]
        #expect(reload["module"] as? String == rebuilt.path)
        #expect((reload["sha256_before"] as? String)?.count == 64)
        #expect(reload["sha256_after"] as? String != reload["sha256_before"] as? String)
        #expect(reload["held_us"] is Int)
        #expect((entries[5]["reason"] as? String)?.contains("outside the modules directory") == true)
        #expect((entries[1]["peer"] as? String)?.hasPrefix("127.0.0.1:") == true)
        #expect(entries.allSatisfy { ($0["time"] as? String)?.hasSuffix("Z") == true })
        // The token never reaches the file.
        #expect(!(try String(contentsOf: file, encoding: .utf8)).contains(token))
    }

    @Test func anAuditLogThatCannotBeOpenedRefusesToStart() throws {
        let result = try runServerExpectingExit(["--audit-log", "/nonexistent/dir/audit.jsonl"])
        #expect(result.status != 0)
        #expect(result.log.contains("cannot open --audit-log /nonexistent/dir/audit.jsonl"))
    }
}
