import Foundation
import Testing

/// Agones (issue 22): the fake SDK sidecar (`tools/fake-agones.py`) holds to
/// what Agones' local mode does, checked by the conformance sequence
/// (`tools/agones-conformance.py`); the engine's own client is checked
/// against it.
@Suite struct AgonesTests {
    /// Agones' conformance calls (ready, allocate, setlabel, setannotation,
    /// gameserver, health, shutdown, watch, reserve) and the beta counters
    /// and lists, replayed against the fake: every check passes.
    @Test func theFakeSidecarPassesTheConformanceSequence() throws {
        let sidecar = try FakeAgones()
        let run = try runProgram("/usr/bin/env", ["python3", FakeAgones.conformance.path, "--port", "\(sidecar.port)", "--beta"])
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.contains("PASS: 0 failed checks"), "\(run.output)")
        // The log a test reads saw the calls, in the order made.
        let paths = sidecar.requests.map(\.path)
        #expect(paths.first == "/ready")
        for path in ["/watch/gameserver", "/health", "/reserve", "/allocate", "/metadata/label", "/metadata/annotation",
                     "/gameserver", "/shutdown"]
        {
            #expect(paths.contains(path), "\(path) in \(paths)")
        }
        #expect(try sidecar.state() == "Shutdown")
    }

    /// The conformance run against nothing listening fails, and says so:
    /// the checks are not vacuous.
    @Test func theConformanceRunFailsWithoutASidecar() throws {
        let port = try FakeAgones.freePort()
        let run = try runProgram("/usr/bin/env", ["python3", FakeAgones.conformance.path, "--port", "\(port)",
                                                  "--ready-attempts", "2"])
        #expect(run.status == 1, "\(run.output)")
        #expect(run.output.contains("FAIL ready"), "\(run.output)")
    }

    // MARK: - The engine against the fake sidecar

    /// A server told where the sidecar is, pinging often.
    static func server(_ sidecarPort: Int, _ arguments: [String] = [], interval: Int = 100) throws -> TestServer {
        try TestServer(arguments: ["--agones-health-interval", "\(interval)"] + arguments,
                       environment: ["AGONES_SDK_HTTP_PORT": "\(sidecarPort)"])
    }

    static func answered(_ path: String) -> (FakeAgones.Request) -> Bool {
        { $0.path == path && $0.status == 200 }
    }

    /// Ready once the ports listen (exactly once), health pings with `{}`
    /// from the loop, and the versions as labels (valid label values) and
    /// annotations (exact), counted in STATUS.
    @Test func readyThenHealthPingsAndTheVersions() throws {
        let sidecar = try FakeAgones()
        let server = try Self.server(sidecar.port)
        let seen = try sidecar.waitFor("Ready and three health pings") { requests in
            requests.contains(where: Self.answered("/ready")) && requests.filter(Self.answered("/health")).count >= 3
        }
        #expect(try sidecar.state() == "Ready")
        for ping in seen where ping.path == "/health" {
            #expect(ping.method == "POST" && ping.body == "{}" && ping.status == 200, "\(ping)")
        }
        let status = try server.statusFields()
        let engine = try #require(status["engine"]), module = try #require(status["module"]), version = try #require(status["version"])
        try sidecar.waitFor("the four version requests") { $0.filter { $0.path.hasPrefix("/metadata/") && $0.status == 200 }.count >= 4 }
        #expect(try sidecar.metadata("annotations") == ["engine": engine, "module": "\(module) \(version)"])
        let labels = try sidecar.metadata("labels")
        #expect(labels["module"] == "\(module)_\(version)", "\(labels)")
        #expect(labels["engine"] == engine.replacingOccurrences(of: "+", with: "_"), "\(labels)")
        #expect(sidecar.requests.filter { $0.path == "/ready" }.count == 1)
        #expect(Int(status["agones_requests"] ?? "") ?? 0 >= 5, "\(status)")
        #expect(status["agones_failures"] == "0")
        #expect(try server.connect().call("PING") == "+PONG")
        #expect(server.logContains("agones: Ready (sidecar on 127.0.0.1:\(sidecar.port))"))
    }

    /// Without AGONES_SDK_HTTP_PORT nothing is sent and nothing is said.
    @Test func withoutThePortNothingHappens() throws {
        let sidecar = try FakeAgones()
        let server = try TestServer()
        #expect(try server.connect().call("PING") == "+PONG")
        let status = try server.statusFields()
        #expect(status["agones_requests"] == "0" && status["agones_failures"] == "0", "\(status)")
        // (The checkout's path may hold the word: the engine's lines start "agones: ".)
        #expect(!server.log.contains("agones: "))
        #expect(sidecar.requests.isEmpty)
    }

    /// A RELOAD changes the module's label and annotation.
    @Test func aReloadUpdatesTheModuleLabel() throws {
        let sidecar = try FakeAgones()
        let server = try Self.server(sidecar.port)
        try sidecar.waitFor("Ready") { $0.contains(where: Self.answered("/ready")) }
        let reply = try server.connectAdmin().call("RELOAD \(Products.library("GameLogicV2").path)")
        #expect(reply.hasPrefix("+OK"), "\(reply)")
        let status = try server.statusFields()
        let module = try #require(status["module"]), version = try #require(status["version"])
        let exact = "\(module) \(version)"
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.metadata("annotations")["module"] == exact }, "\(sidecar.requests)")
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.metadata("labels")["module"] == "\(module)_\(version)" })
        #expect(sidecar.requests.filter { $0.path == "/ready" }.count == 1)
    }

    /// SIGTERM: the players are told, the final flush writes, and only
    /// then POST /shutdown; the exit is clean.
    @Test func sigtermSendsShutdownAfterTheFinalFlush() throws {
        let sidecar = try FakeAgones()
        let scratch = try PersistenceTests.Scratch()
        let database = scratch.database.path
        let server = try Self.server(sidecar.port, ["--database", database, "--flush-interval", "60000"])
        try sidecar.waitFor("Ready") { $0.contains(where: Self.answered("/ready")) }
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        kill(server.process.processIdentifier, SIGTERM)
        #expect(try alice.readLine() == ">SHUTDOWN the server is shutting down")
        #expect(server.waitForExit() == 0)
        let requests = try sidecar.waitFor("Shutdown") { $0.contains(where: Self.answered("/shutdown")) }
        #expect(requests.last?.path == "/shutdown", "\(requests)")
        #expect(try sidecar.state() == "Shutdown")
        let log = server.log
        let flushed = try #require(log.range(of: "final flush wrote"), "\(log)")
        let shutdown = try #require(log.range(of: "agones: Shutdown sent"), "\(log)")
        #expect(flushed.lowerBound < shutdown.lowerBound)
        #expect(try PersistenceTests.sql(database, "SELECT key FROM players") == "alice")
    }

    /// A sidecar that starts after the server: Ready is retried until it
    /// answers, the failures counted, the game served meanwhile.
    @Test func aLateSidecarIsRetried() throws {
        let port = try FakeAgones.freePort()
        let server = try Self.server(port)
        #expect(server.logContains("agones: POST /ready to the sidecar on 127.0.0.1:\(port)", within: NotAHang.seconds))
        #expect(try server.connect().call("PING") == "+PONG")
        #expect(try waitUntil(NotAHang.seconds) { Int(try server.statusFields()["agones_failures"] ?? "") ?? 0 >= 2 })
        let sidecar = try FakeAgones(port: port)
        try sidecar.waitFor("Ready") { $0.contains(where: Self.answered("/ready")) }
        try sidecar.waitFor("health pings") { $0.filter(Self.answered("/health")).count >= 2 }
        #expect(try sidecar.state() == "Ready")
        #expect(server.logContains("answers again", within: NotAHang.seconds))
    }

    /// A sidecar that dies: logged once, counted, the game goes on, and
    /// the shutdown does not hang on it.
    @Test func aLostSidecarIsCountedAndTheGameGoesOn() throws {
        var sidecar: FakeAgones? = try FakeAgones()
        let port = sidecar!.port
        let server = try Self.server(port)
        try sidecar!.waitFor("health") { $0.contains(where: Self.answered("/health")) }
        sidecar = nil
        let before = Int(try server.statusFields()["agones_failures"] ?? "") ?? -1
        #expect(try waitUntil(NotAHang.seconds) { Int(try server.statusFields()["agones_failures"] ?? "") ?? 0 >= before + 3 })
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try alice.call("PING") == "+PONG")
        // The first failure is logged (a health ping's, or a roster request
        // in flight when the sidecar went), and only the first.
        #expect(server.logContains("to the sidecar on 127.0.0.1:\(port): "))
        #expect(server.log.components(separatedBy: "to the sidecar on 127.0.0.1:\(port): ").count == 2, "\(server.log)")
        let started = Date()
        #expect(server.stop() == 0)
        #expect(Date().timeIntervalSince(started) < NotAHang.seconds)
        #expect(server.logContains("agones: Shutdown could not be sent"))
    }

    /// The pings come from the loop: a loop stuck in a module call stops
    /// them, and the sidecar marks the GameServer Unhealthy.
    @Test func aFrozenLoopGoesUnhealthy() throws {
        let sidecar = try FakeAgones(arguments: ["--unhealthy-after", "1"])
        let server = try Self.server(sidecar.port, ["--module", Products.library("FaultyModule").path,
                                                    "--call-timeout", "0", "--stall-timeout", "0"])
        defer {
            kill(server.process.processIdentifier, SIGKILL)
            _ = server.waitForExit()
        }
        try sidecar.waitFor("Ready and pings") { $0.contains(where: Self.answered("/ready")) && $0.contains(where: Self.answered("/health")) }
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        try alice.send("FAULT loop")
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.state() == "Unhealthy" })
        #expect(server.process.isRunning)
    }

    /// An engine UPGRADE execs in place: the same GameServer, so no second
    /// Ready (one would put an Allocated server back in the pool); the new
    /// engine's version is labelled and its pings go on.
    @Test func anUpgradeDoesNotSendReadyAgain() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let sidecar = try FakeAgones()
        let server = try Self.server(sidecar.port, builds.serverArguments)
        try sidecar.waitFor("Ready") { $0.contains(where: Self.answered("/ready")) }
        #expect(try HTTPClient(port: sidecar.port).get("/allocate", method: "POST", close: true).status == 200)
        #expect(try sidecar.state() == "Allocated")
        #expect(try server.connectAdmin().call("UPGRADE \(next)").hasPrefix("+OK engine "))
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.metadata("labels")["engine"] == "next" }, "\(sidecar.requests)")
        let count = sidecar.requests.count
        try sidecar.waitFor("pings from the next engine") { $0.dropFirst(count).filter(Self.answered("/health")).count >= 2 }
        #expect(sidecar.requests.filter { $0.path == "/ready" }.count == 1)
        #expect(try sidecar.state() == "Allocated")
        #expect(server.logContains("agones: Ready was sent by an earlier engine of this process"))
    }

    // MARK: - The rooms Counter and the players List

    static func isCountUpdate(_ request: FakeAgones.Request) -> Bool {
        request.method == "PATCH" && request.path == "/v1beta1/counters/rooms" && FakeAgones.json(request)["count"] != nil
    }

    static func isListChange(_ request: FakeAgones.Request) -> Bool {
        request.path.hasPrefix("/v1beta1/lists/players:")
    }

    /// The capacities come from --max-rooms and --max-connections at start;
    /// then the count follows the rooms open and the list the players
    /// logged in, as they come and go.
    @Test func theRoomsCounterAndPlayersListFollowTheGame() throws {
        let sidecar = try FakeAgones()
        let server = try Self.server(sidecar.port, ["--max-rooms", "50", "--max-connections", "40"])
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.counter().capacity == 50 && sidecar.list().capacity == 40 })
        let alice = try server.connect(), bob = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try bob.call("LOGIN bob").hasPrefix("+WELCOME bob"))
        #expect(try alice.call("JOIN north").hasPrefix("+JOINED north"))
        #expect(try bob.call("JOIN south").hasPrefix("+JOINED south"))
        let rooms = try #require(Int(try server.statusFields()["rooms"] ?? ""))
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.counter().count == rooms }, "\(sidecar.requests)")
        #expect(try waitUntil(NotAHang.seconds) { try Set(sidecar.list().values) == ["alice", "bob"] }, "\(sidecar.requests)")
        // Bob leaves: his room closes with him, and he leaves the list.
        #expect(try bob.call("QUIT").hasPrefix("+BYE"))
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.list().values == ["alice"] }, "\(sidecar.requests)")
        let after = try #require(Int(try server.statusFields()["rooms"] ?? ""))
        #expect(after == rooms - 1)
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.counter().count == after }, "\(sidecar.requests)")
        #expect(try server.statusFields()["agones_failures"] == "0")
    }

    /// Twenty players log in and open a room each at once: the count is
    /// sent a few times (once per health tick that saw a change), not once
    /// per room, each player is added exactly once, and the health pings
    /// go on through the burst.
    @Test func aBurstOfJoinsIsCoalesced() throws {
        let sidecar = try FakeAgones()
        let server = try Self.server(sidecar.port, interval: 200)
        try sidecar.waitFor("the list's capacity") { $0.contains { $0.method == "PATCH" && $0.path == "/v1beta1/lists/players" } }
        let names = (1...20).map { "p\($0)" }
        let clients = try names.map { _ in try server.connect() }
        for (client, name) in zip(clients, names) { try client.send("LOGIN \(name)\r\nJOIN room-\(name)") }
        for client in clients {
            #expect(try client.reply().hasPrefix("+WELCOME"))
            #expect(try client.reply().hasPrefix("+JOINED"))
        }
        let rooms = try #require(Int(try server.statusFields()["rooms"] ?? ""))
        #expect(rooms >= names.count)
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.counter().count == rooms }, "\(sidecar.requests)")
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.list().values.sorted() == names.sorted() })
        let requests = sidecar.requests
        let counts = requests.filter(Self.isCountUpdate)
        #expect(counts.count < rooms / 2, "\(counts)")
        let adds = requests.filter { $0.path == "/v1beta1/lists/players:addValue" }
        #expect(adds.count == names.count, "\(adds)")
        #expect(adds.allSatisfy { $0.status == 200 })
        let start = try #require(requests.firstIndex(where: { $0.path == "/v1beta1/lists/players:addValue" }))
        try sidecar.waitFor("health pings after the burst") { $0.dropFirst(start).filter(Self.answered("/health")).count >= 2 }
    }

    /// A value left in the List by an earlier container of the pod names
    /// nobody online here: it is removed; the players online are added.
    @Test func aStaleListValueIsRemoved() throws {
        let sidecar = try FakeAgones(arguments: ["--list", "players=ghost/1000"])
        let server = try Self.server(sidecar.port)
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.list().values == ["alice"] }, "\(sidecar.requests)")
        #expect(sidecar.requests.contains { $0.path == "/v1beta1/lists/players:removeValue" && $0.body.contains("ghost") })
    }

    /// A GameServer that declares no `rooms` Counter and no `players` List:
    /// the sidecar refuses their capacities, the engine says so once and
    /// sends nothing more for them; Ready and health go on.
    @Test func anUndeclaredCounterAndListAreLeftAlone() throws {
        let sidecar = try FakeAgones(arguments: ["--counter", "sessions=0/10", "--list", "guests=/10"])
        let server = try Self.server(sidecar.port)
        #expect(server.logContains("agones: the sidecar refused the rooms Counter's capacity", within: NotAHang.seconds))
        #expect(server.logContains("agones: the sidecar refused the players List's capacity", within: NotAHang.seconds))
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try alice.call("JOIN north").hasPrefix("+JOINED north"))
        let count = sidecar.requests.count
        try sidecar.waitFor("health pings after the join") { $0.dropFirst(count).filter(Self.answered("/health")).count >= 3 }
        let beta = sidecar.requests.filter { $0.path.hasPrefix("/v1beta1/") && $0.method != "GET" }
        #expect(beta.count == 2, "\(beta)")
        #expect(try sidecar.state() == "Ready")
    }

    /// SIGTERM in the order Agones needs: the rooms Counter's capacity set
    /// to its count first (no new allocation lands), then the players are
    /// told and drained, the final flush writes, and POST /shutdown comes
    /// last; nothing of the roster is sent after the capacity.
    @Test func sigtermFencesTheCounterBeforeDrainingAndShutsDownLast() throws {
        let sidecar = try FakeAgones()
        let scratch = try PersistenceTests.Scratch()
        let server = try Self.server(sidecar.port, ["--database", scratch.database.path, "--flush-interval", "60000"])
        let alice = try server.connect(), bob = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try bob.call("LOGIN bob").hasPrefix("+WELCOME bob"))
        #expect(try alice.call("JOIN north").hasPrefix("+JOINED north"))
        #expect(try bob.call("JOIN south").hasPrefix("+JOINED south"))
        let rooms = try #require(Int(try server.statusFields()["rooms"] ?? ""))
        #expect(try waitUntil(NotAHang.seconds) { try sidecar.counter().count == rooms && sidecar.list().values.count == 2 })
        kill(server.process.processIdentifier, SIGTERM)
        // The room's own events (its round) may come first.
        var line = try alice.readLine()
        while let seen = line, seen.hasPrefix(">"), seen != ">SHUTDOWN the server is shutting down" { line = try alice.readLine() }
        #expect(line == ">SHUTDOWN the server is shutting down")
        #expect(server.waitForExit() == 0)
        let requests = try sidecar.waitFor("Shutdown") { $0.contains(where: Self.answered("/shutdown")) }
        let fence = try #require(requests.lastIndex { $0.method == "PATCH" && $0.path == "/v1beta1/counters/rooms" },
                                 "\(requests)")
        let body = FakeAgones.json(requests[fence])
        #expect(body["capacity"] as? Int == rooms && body["count"] as? Int == rooms, "\(requests[fence])")
        #expect(requests[fence].status == 200)
        #expect(requests.last?.path == "/shutdown", "\(requests)")
        let between = requests[(fence + 1)...].filter { $0.path.hasPrefix("/v1beta1/") && $0.method != "GET" }
        #expect(between.isEmpty, "\(between)")
        let counter = try sidecar.counter()
        #expect(counter.count == rooms && counter.capacity == rooms, "\(counter)")
        let log = server.log
        let fenced = try #require(log.range(of: "agones: draining, the rooms Counter's capacity set to its count (\(rooms))"), "\(log)")
        let flushed = try #require(log.range(of: "final flush wrote"), "\(log)")
        let shutdown = try #require(log.range(of: "agones: Shutdown sent"), "\(log)")
        #expect(fenced.lowerBound < flushed.lowerBound && flushed.lowerBound < shutdown.lowerBound)
        #expect(try PersistenceTests.sql(scratch.database.path, "SELECT key FROM players ORDER BY key") == "alice\nbob")
    }
}
