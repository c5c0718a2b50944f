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
        #expect(run.output.contains("reload        +OK gems 1.2.0 -> gems 1.2.0"))
        #expect(run.output.contains("lost 0  duplicated 0  out of order 0  unexpected 0  dropped connections 0"))
        let deliveries = try #require(run.output.firstMatch(of: /deliveries\s+(\d+)/)).1
        #expect(Int(deliveries)! > 0)
    }

    @Test func refusedConnectsEndTheRunAndAreCounted() throws {
        // A port that is bound but not listening refuses every connect. More
        // clients than the tool connects at once: the run ends on the first
        // refusals, and closing the rest cancels their connects, which must
        // not start new ones on closing handles (libuv aborts on that).
        let fd = Glibc.socket(AF_INET, streamSocketType, 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let run = try loadtest(["play", "--port", "\(port)", "--clients", "600", "--duration", "1", "--quiet"])
        #expect(run.status == 1, "\(run.output)")
        #expect(run.output.contains(/dropped connections [1-9]/), "\(run.output)")
    }

    @Test func aDroppedServerIsReportedAsAFailure() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0", "--max-connections", "2"])
        // Four clients where only two are let in: the tool must say so and fail.
        let run = try loadtest(["ping", "--port", "\(server.port)", "--clients", "4", "--duration", "1", "--quiet"])
        #expect(run.status == 1)
        #expect(run.output.contains("dropped connections 2"))
    }
}
