import Foundation
import Testing

/// The load-test tool against a real server, briefly: it must drive the
/// server, count every reply, and account for a reload in the middle.
@Suite struct LoadTestToolTests {
    private func loadtest(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runTool("loadtest", arguments)
    }

    @Test func pingRunCountsEveryReplyAndWritesJSON() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0"])
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("lt-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let run = try loadtest(["ping", "--port", "\(server.port)", "--clients", "4", "--pipeline", "2",
                                "--duration", "1", "--json", json.path])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("lost 0  duplicated 0  out of order 0  unexpected 0  dropped connections 0"))
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let requests = try #require(report["requests"] as? Int)
        #expect(requests > 0)
        #expect(report["replies"] as? Int == requests)
        #expect(report["lost"] as? Int == 0)
    }

    @Test func chatAndAReloadMidRunLoseNothing() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0"])
        let rebuilt = try paddedCopy(of: "GameLogic")
        defer { try? FileManager.default.removeItem(at: rebuilt) }
        let run = try loadtest(["chat", "--port", "\(server.port)", "--rooms", "2", "--members", "3",
                                "--duration", "2", "--reload-at", "1", "--admin-port", "\(server.adminPort)",
                                "--reload-path", rebuilt.path, "--quiet"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("reload        +OK gems 1.0.0 -> gems 1.0.0"))
        #expect(run.output.contains("lost 0  duplicated 0  out of order 0  unexpected 0  dropped connections 0"))
        let deliveries = try #require(run.output.firstMatch(of: /deliveries\s+(\d+)/)).1
        #expect(Int(deliveries)! > 0)
    }

    @Test func aDroppedServerIsReportedAsAFailure() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0", "--max-connections", "2"])
        // Four clients where only two are let in: the tool must say so and fail.
        let run = try loadtest(["ping", "--port", "\(server.port)", "--clients", "4", "--duration", "1", "--quiet"])
        #expect(run.status == 1)
        #expect(run.output.contains("dropped connections 2"))
    }
}
