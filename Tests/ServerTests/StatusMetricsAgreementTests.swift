import Foundation
import Testing

@testable import HotswapEngine

/// STATUS and `/metrics` render one `EngineSnapshot` through one table of
/// rows (`EngineReading.all`): every number STATUS shows that has a metric
/// must read the same in both, before and after an engine upgrade (they
/// drifted once: `log_dropped` counted earlier engines' drops, its metric
/// did not).
@Suite struct StatusMetricsAgreementTests {
    /// The rows that name both, with the sample key the exposition uses.
    private static let pairs: [(status: String, sample: String, kind: EngineReading.Kind, scale: Double)] =
        EngineReading.all.compactMap { reading in
            guard reading.steady, let status = reading.status, let metric = reading.metric else { return nil }
            let labels = metric.labels.map { "\($0.0)=\"\($0.1)\"" }.joined(separator: ",")
            return (status, labels.isEmpty ? metric.name : "\(metric.name){\(labels)}", metric.kind, metric.scale)
        }

    /// A scrape, STATUS, and a scrape again: a counter STATUS shows lies
    /// between the two scrapes (lines may be dropped meanwhile: the log is
    /// not read), a gauge equals one of them.
    private func expectAgreement(_ server: TestServer, _ admin: LineClient, _ when: String) throws {
        let before = try server.scrape()
        let status = statusFields(try admin.call("STATUS"))
        let after = try server.scrape()
        for (name, sample, kind, scale) in Self.pairs {
            let shown = try #require(status[name].flatMap(Double.init), "\(when): STATUS has no \(name)")
            let first = try #require(before[sample], "\(when): /metrics has no \(sample)")
            let second = try #require(after[sample], "\(when): /metrics has no \(sample)")
            // last_flush_ms has two decimals in STATUS.
            let value = shown * scale
            let slack = scale == 1 ? 0 : 0.01 * scale
            switch kind {
            case .counter:
                #expect(first - slack <= value && value <= second + slack,
                        "\(when): STATUS \(name)=\(shown), \(sample) read \(first) then \(second)")
            case .gauge:
                #expect(abs(value - first) <= slack || abs(value - second) <= slack,
                        "\(when): STATUS \(name)=\(shown), \(sample) read \(first) then \(second)")
            }
        }
    }

    @Test func everyNumberStatusShowsEqualsItsMetricAcrossAnEngineUpgrade() throws {
        #expect(Self.pairs.count >= 25, "\(Self.pairs.map(\.status))")
        #expect(Self.pairs.contains { $0.status == "log_dropped" })
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        // Nobody reads the log and its buffer is small: reloads drop lines.
        let server = try TestServer(arguments: builds.serverArguments + ["--metrics-port", "0", "--rate-limit", "0",
                                                                         "--log-buffer-bytes", "4096"],
                                    keepReadingLog: false)
        let (alice, _) = try server.aliceAndBob()
        #expect(try alice.call("PING") == "+PONG")
        let admin = try server.connectAdmin()
        let builtTwice = [try paddedCopy(of: "GameLogic", padding: 1), try paddedCopy(of: "GameLogic", padding: 2)]
        defer { for build in builtTwice { try? FileManager.default.removeItem(at: build) } }
        var dropped = 0
        for round in 0..<2000 where dropped == 0 {
            #expect(try admin.call("RELOAD \(builtTwice[round % 2].path)").hasPrefix("+OK gems"))
            if round % 50 == 49 { dropped = Int(statusFields(try admin.call("STATUS"))["log_dropped"] ?? "") ?? 0 }
        }
        #expect(dropped > 0, "no log line was dropped: the test proves nothing of log_dropped")
        #expect(try admin.call("RELOAD /nonexistent.so").hasPrefix("-ERR RELOAD_FAILED"))
        try expectAgreement(server, admin, "before the upgrade")

        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine"))
        let status = statusFields(try admin.call("STATUS"))
        #expect(status["engine"] == "next")
        #expect((Int(status["log_dropped"] ?? "") ?? 0) >= dropped, "earlier engines' drops count: \(status)")
        try expectAgreement(server, admin, "after the upgrade")
        #expect(try alice.call("PING") == "+PONG")
    }

    /// STATUS shows each part's lifecycle state.
    @Test func statusShowsTheStateOfEachLifecycle() throws {
        let server = try TestServer(arguments: ["--database", ":memory:"])
        let status = statusFields(try server.connectAdmin().call("STATUS"))
        #expect(status["reload"] == "idle")
        #expect(status["flush"] == "off")
        #expect(status["upgrade"] == "idle")
        #expect(status["engine_bugs"] == "0")
        let stored = try TestServer()
        let flush = statusFields(try stored.connectAdmin().call("STATUS"))["flush"]
        #expect(flush == "idle" || flush == "writing", "\(flush ?? "none")")
    }
}
