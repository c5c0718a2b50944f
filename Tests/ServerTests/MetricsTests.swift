import Foundation
import Testing

/// `--metrics-port` over real sockets and HTTP: the metrics move with what
/// players and operators do, the exposition passes promtool, the health
/// endpoints tell the truth, and no HTTP client can hurt the game.
@Suite struct MetricsTests {
    private func server(_ arguments: [String] = []) throws -> TestServer {
        try TestServer(arguments: ["--metrics-port", "0"] + arguments)
    }

    @Test func theReadyFileNamesTheMetricsPortOnlyWhenItIsOn() throws {
        let on = try server()
        #expect(on.metricsPort > 0)
        let text = try String(contentsOf: on.readyFile, encoding: .utf8)
        #expect(text.contains("\"metrics\":{\"host\":\"127.0.0.1\",\"port\":\(on.metricsPort)}"))
        let off = try TestServer()
        #expect(off.metricsPort == 0)
        #expect(try !String(contentsOf: off.readyFile, encoding: .utf8).contains("metrics"))
    }

    @Test func metricsMoveWhenPlayersConnectRequestAndAModuleIsReloaded() throws {
        // Every call timed, so the histogram's count is exact.
        let server = try server(["--metrics-sample-every", "1"])
        let before = try server.scrape()
        #expect(before["hotswap_sessions"] == 0)
        #expect(before["hotswap_connections{role=\"game\"}"] == 0)
        #expect(before["hotswap_requests_total"] == 0)
        #expect(before["hotswap_images_mapped"] == 1)
        let info = try #require(before.keys.first { $0.hasPrefix("hotswap_module_info{") })
        #expect(info.hasPrefix("hotswap_module_info{name=\"gems\",version=\"1.2.0\",sha256=\""))
        #expect(before[info] == 1)

        let (alice, bob) = try server.aliceAndBob()  // 2 LOGIN, 2 JOIN
        for _ in 0..<10 { #expect(try alice.call("PING") == "+PONG") }
        let playing = try server.scrape()
        #expect(playing["hotswap_sessions"] == 2)
        #expect(playing["hotswap_connections{role=\"game\"}"] == 2)
        #expect(playing["hotswap_rooms"] == 1)
        #expect(playing["hotswap_requests_total"] == 14)
        #expect(playing["hotswap_request_duration_seconds_count"] == 14)
        #expect(playing["hotswap_request_duration_seconds_bucket{le=\"+Inf\"}"] == 14)
        #expect((playing["hotswap_request_duration_seconds_sum"] ?? 0) > 0)

        let copy = try paddedCopy(of: "GameLogic")
        defer { try? FileManager.default.removeItem(at: copy) }
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(copy.path)").hasPrefix("+OK gems 1.2.0 -> gems 1.2.0"))
        #expect(try admin.call("RELOAD \(copy.path)").hasPrefix("+OK unchanged"))
        #expect(try admin.call("RELOAD /nonexistent.so").hasPrefix("-ERR RELOAD_FAILED"))
        let reloaded = try server.scrape()
        #expect(reloaded["hotswap_reloads_total{result=\"ok\"}"] == 1)
        #expect(reloaded["hotswap_reloads_total{result=\"unchanged\"}"] == 1)
        #expect(reloaded["hotswap_reloads_total{result=\"refused\"}"] == 1)
        #expect(reloaded["hotswap_reload_held_seconds_count"] == 1)
        #expect(reloaded["hotswap_images_mapped"] == 2)
        #expect((reloaded["hotswap_last_reload_timestamp_seconds"] ?? 0) > Date().timeIntervalSince1970 - 60)
        #expect(reloaded["hotswap_connections{role=\"admin\"}"] == 1)
        // The module's series was replaced: one series, the new SHA-256.
        let infos = reloaded.keys.filter { $0.hasPrefix("hotswap_module_info{") }
        #expect(infos.count == 1 && infos.first != info, "\(infos)")

        alice.reset()
        withExtendedLifetime(bob) {}
        let after = try server.scrape { $0["hotswap_sessions"] == 1 }
        #expect(after["hotswap_connections{role=\"game\"}"] == 1)
        #expect(after["hotswap_requests_total"] == 14)
        // The metrics port counts its own answers.
        #expect((after["hotswap_metrics_requests_total{code=\"200\"}"] ?? 0) >= 3)
        #expect((after["process_resident_memory_bytes"] ?? 0) > Double(1 << 20))
        #expect((after["process_open_fds"] ?? 0) >= 5)
        #expect(abs((after["process_start_time_seconds"] ?? 0) - Date().timeIntervalSince1970) < 600)
    }

    /// The exposition is valid by Prometheus's own checker. Debian's
    /// `prometheus` package provides promtool; `make deps` installs it.
    @Test(.enabled(if: Promtool.path != nil || Promtool.required,
                   "promtool not found: install Debian's prometheus package (make deps does) to check the exposition"))
    func promtoolAcceptsTheExposition() throws {
        let server = try server(["--metrics-sample-every", "1"])
        let (alice, _) = try server.aliceAndBob()
        #expect(try alice.call("PING") == "+PONG")
        let response = try server.connectMetrics().get("/metrics", close: true)
        #expect(response.status == 200)
        #expect(response.headers["content-type"] == "text/plain; version=0.0.4")
        let check = try Promtool.checkMetrics(response.body)
        #expect(check.status == 0, "promtool check metrics:\n\(check.output)")
        #expect(check.output.isEmpty, "promtool check metrics:\n\(check.output)")
    }

    @Test func healthReadinessUnknownPathsAndMethods() throws {
        let server = try server()
        let client = try server.connectMetrics()
        let health = try client.get("/healthz")
        #expect(health.status == 200 && health.body == "ok\n")
        let ready = try client.get("/readyz")
        #expect(ready.status == 200 && ready.body == "ready\n")
        #expect(try client.get("/").status == 404)
        #expect(try client.get("/metrics/extra").status == 404)
        let post = try client.get("/metrics", method: "POST")
        #expect(post.status == 405 && post.headers["allow"] == "GET, HEAD")
        // HEAD: the headers of a GET, no body; the next response follows at once.
        let head = try client.get("/metrics", method: "HEAD")
        #expect(head.status == 200 && Int(head.headers["content-length"] ?? "") ?? 0 > 1000 && head.body.isEmpty)
        #expect(try client.get("/healthz").status == 200)
    }

    /// `/healthz` is answered by the loop itself: while a module call holds
    /// the loop (a hang, until --call-timeout interrupts it) no answer
    /// comes, so a health checker with a shorter timeout sees the server as
    /// unhealthy; once the loop turns again it is answered.
    @Test func healthzIsNotAnsweredWhileTheLoopIsStuck() throws {
        let server = try server(["--module", Products.library("FaultyModule").path, "--call-timeout", "2000"])
        let player = try server.connect()
        #expect(try player.call("LOGIN stuck") == "+OK")
        let checker = try server.connectMetrics()
        #expect(try checker.get("/healthz").status == 200)

        // The hang is read before (or in the same loop turn as) the health
        // check, whose answer would be written at the end of that turn.
        try player.send("FAULT loop")
        let asked = Date()
        try checker.send(HTTPClient.request("/healthz"))
        #expect(!checker.hasInput(within: 1), "answered while the loop was stuck")
        #expect(try player.reply().hasPrefix("-ERR TIMEOUT"))
        let health = try checker.readResponse()
        #expect(health.status == 200)
        #expect(Date().timeIntervalSince(asked) > 1)
        #expect(try server.scrape()["hotswap_faults_total{cause=\"timeout\"}"] == 1)
    }

    /// `/readyz` answers 503 from the moment a shutdown starts until the
    /// process is gone; here a player who never closes holds the shutdown
    /// open (--linger-ms and --shutdown-grace-ms), and the metrics port
    /// keeps answering meanwhile, while an idle kept-alive scraper is let go.
    @Test func readyzIs503WhileShuttingDown() throws {
        let server = try server(["--linger-ms", "30000", "--shutdown-grace-ms", "30000"])
        let player = try server.connect()
        _ = try player.call("LOGIN holder")
        let idleScraper = try server.connectMetrics()
        #expect(try idleScraper.get("/readyz").status == 200)

        kill(server.process.processIdentifier, SIGTERM)
        #expect(try player.readLine() == ">SHUTDOWN the server is shutting down")
        let deadline = Date().addingTimeInterval(10)
        var response = try server.connectMetrics().get("/readyz")
        while response.status == 200 && Date() < deadline {
            Thread.sleep(forTimeInterval: 0.02)
            response = try server.connectMetrics().get("/readyz")
        }
        #expect(response.status == 503 && response.body == "shutting down\n")
        #expect(response.headers["connection"] == "close")
        // Still held (the player has not hung up), still answering.
        #expect(server.process.isRunning)
        let health = try server.connectMetrics().get("/healthz")
        #expect(health.status == 200 && health.headers["connection"] == "close")
        #expect(try idleScraper.closedByServer())

        player.reset()
        #expect(server.waitForExit() == 0)
    }

    @Test func aMalformedRequestIsAnswered400AndClosed() throws {
        let server = try server()
        for garbage in ["GARBAGE\r\n\r\n", "GET /metrics HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n",
                        "GET /metrics HTTP/1.1\r\n\r\n", "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\r\n"]
        {
            let client = try server.connectMetrics()
            try client.send(garbage)
            let response = try client.readResponse()
            #expect(response.status == 400, "\(garbage.debugDescription)")
            #expect(response.headers["connection"] == "close")
            #expect(try client.closedByServer(), "\(garbage.debugDescription)")
        }
        // A bad request after a good one on the same connection: the good
        // one is answered, then the 400, then the end.
        let client = try server.connectMetrics()
        try client.send(HTTPClient.request("/healthz") + "NOT HTTP\r\n\r\n")
        #expect(try client.readResponse().status == 200)
        #expect(try client.readResponse().status == 400)
        #expect(try client.closedByServer())
        #expect(try server.scrape()["hotswap_metrics_requests_total{code=\"400\"}"] == 5)
    }

    @Test func anOversizedRequestIsAnswered400AndClosed() throws {
        let server = try server(["--max-metrics-request-bytes", "1024"])
        // A header line over the limit, complete...
        let big = try server.connectMetrics()
        try big.send("GET /metrics HTTP/1.1\r\nHost: h\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        #expect(try big.readResponse().status == 400)
        #expect(try big.closedByServer())
        // ...or never finished: refused as soon as it is over, without a line end.
        let endless = try server.connectMetrics()
        try endless.send("GET /metrics HTTP/1.1\r\nHost: h\r\nX-Endless: " + String(repeating: "b", count: 1100))
        #expect(try endless.readResponse().status == 400)
        #expect(try endless.closedByServer())
        // Many small headers add up the same way.
        let many = try server.connectMetrics()
        try many.send("GET /metrics HTTP/1.1\r\nHost: h\r\n" + String(repeating: "X-Small: 0123456789\r\n", count: 60) + "\r\n")
        #expect(try many.readResponse().status == 400)
        #expect(try many.closedByServer())
        // Just under the limit is fine.
        let fits = try server.connectMetrics()
        let request = HTTPClient.request("/healthz")
        try fits.send(request.dropLast(2) + "X-Pad: \(String(repeating: "c", count: 1024 - request.utf8.count - 9))\r\n\r\n")
        #expect(try fits.readResponse().status == 200)
    }

    /// A client that trickles its headers and never finishes them is
    /// answered 408 and closed once --metrics-header-timeout has passed
    /// since its first byte, however steadily it trickles; players are
    /// served as usual all the while.
    @Test func aSlowLorisIsClosedAfterTheHeaderDeadlineAndTheGameIsUnaffected() throws {
        let server = try server(["--metrics-header-timeout", "1"])
        let player = try server.connect()
        _ = try player.call("LOGIN steady")
        let loris = try server.connectMetrics()
        let started = Date()
        try loris.send("GET /metrics HTTP/1.1\r\nHost: h\r\n")
        var slowestPing = 0.0
        var trickled = 0
        while !loris.hasInput(within: 0.1), Date().timeIntervalSince(started) < 8 {
            do {
                try loris.send("X-Trickle-\(trickled): y\r\n")
            } catch {
                break  // the server closed it between two polls
            }
            trickled += 1
            let sent = Date()
            #expect(try player.call("PING") == "+PONG")
            slowestPing = max(slowestPing, Date().timeIntervalSince(sent))
        }
        let response = try loris.readResponse()
        let after = Date().timeIntervalSince(started)
        #expect(response.status == 408)
        #expect(try loris.closedByServer())
        #expect(after > 0.9 && after < 4, "closed \(after) s after its first byte")
        #expect(trickled >= 5)
        #expect(slowestPing < 0.5, "slowest PING meanwhile: \(slowestPing) s")
        #expect(try player.call("PING") == "+PONG")
        #expect(try server.scrape()["hotswap_metrics_requests_total{code=\"408\"}"] == 1)
    }

    @Test func pipelinedAndKeptAliveRequestsOnOneConnection() throws {
        let server = try server()
        let client = try server.connectMetrics()
        // Three requests in one write: three responses, in order.
        try client.send(HTTPClient.request("/healthz") + HTTPClient.request("/nope") + HTTPClient.request("/metrics"))
        #expect(try client.readResponse().body == "ok\n")
        #expect(try client.readResponse().status == 404)
        let metrics = try client.readResponse()
        #expect(metrics.status == 200 && samples(metrics.body)["hotswap_sessions"] == 0)
        // The same connection later, and a request trickled byte by byte.
        #expect(try client.get("/readyz").status == 200)
        for byte in HTTPClient.request("/healthz").utf8 { try client.write([byte]) }
        #expect(try client.readResponse().body == "ok\n")
        // HTTP/1.0 closes unless asked otherwise.
        try client.send("GET /healthz HTTP/1.0\r\n\r\n")
        let last = try client.readResponse()
        #expect(last.status == 200 && last.headers["connection"] == "close")
        #expect(try client.closedByServer())
        // Connection: close after pipelined requests: everything before it is answered.
        let closing = try server.connectMetrics()
        try closing.send(HTTPClient.request("/healthz") + HTTPClient.request("/readyz", close: true)
            + HTTPClient.request("/healthz"))
        #expect(try closing.readResponse().status == 200)
        #expect(try closing.readResponse().headers["connection"] == "close")
        #expect(try closing.closedByServer())
    }

    /// Past --max-metrics-connections a newcomer takes the place of the
    /// stalest connection (as on the admin port): a scraper or a liveness
    /// probe is always answered.
    @Test func aFullMetricsPortClosesItsStalestConnectionForANewOne() throws {
        let server = try server(["--max-metrics-connections", "2"])
        let first = try server.connectMetrics()
        let second = try server.connectMetrics()
        #expect(try first.get("/healthz").status == 200)
        #expect(try second.get("/healthz").status == 200)
        let third = try server.connectMetrics()
        #expect(try third.get("/healthz").status == 200)
        #expect(try first.closedByServer(), "the connection idle the longest was kept")
        #expect(try second.get("/metrics").status == 200)
        #expect(try third.get("/readyz").status == 200)
    }

    /// Silent connections (connected, nothing sent) cannot make /healthz
    /// answer 503: they go first when the slots are full, and each is
    /// closed once --metrics-header-timeout passed since its accept.
    @Test func silentConnectionsCannotStarveTheProbes() throws {
        let server = try server(["--max-metrics-connections", "8", "--metrics-header-timeout", "1"])
        let silent = try (0..<8).map { _ in try server.connectMetrics() }
        for _ in 0..<3 {
            let probe = try server.connectMetrics()
            #expect(try probe.get("/healthz").status == 200)
        }
        // Each silent one ends: closed for a probe, or answered 408 and
        // closed about a second after its accept (on a loaded machine the
        // sweep may get there before a probe does).
        let started = Date()
        var timedOut = 0
        for connection in silent {
            if let response = try? connection.readResponse() {
                #expect(response.status == 408)
                timedOut += 1
            }
            #expect(try connection.closedByServer())
        }
        #expect(timedOut >= 5, "\(timedOut) of 8 silent connections were answered 408")
        #expect(Date().timeIntervalSince(started) < NotAHang.seconds)
    }

    @Test func limitsOfTheMetricsPortAreBounded() throws {
        for (flag, value) in [("--max-metrics-connections", "0"), ("--max-metrics-request-bytes", "100"),
                              ("--metrics-header-timeout", "0"), ("--metrics-idle-timeout", "0"),
                              ("--metrics-sample-every", "0"), ("--metrics-port", "70000")]
        {
            let result = try runServerExpectingExit([flag, value])
            #expect(result.status != 0, "\(flag) \(value)")
            #expect(result.log.contains(flag), "\(flag) \(value): \(result.log)")
        }
    }
}

/// promtool, from Debian's prometheus package.
enum Promtool {
    static let path: String? = ["/usr/bin/promtool", "/usr/local/bin/promtool", "/bin/promtool"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// Set by `make test` and `make test-asan`, whose `deps` installs
    /// promtool: there a missing promtool fails the check instead of
    /// skipping it.
    static let required = ProcessInfo.processInfo.environment["HOTSWAP_REQUIRE_PROMTOOL"] == "1"

    /// `promtool check metrics` with `text` on its standard input.
    static func checkMetrics(_ text: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(path, "promtool not found, though make deps installs it"))
        process.arguments = ["check", "metrics"]
        let input = Pipe()
        let output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try process.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
