import Foundation
import Testing

/// The light-cycles game (libCycles.so, Sources/Games/Cycles) in a real
/// server: a round from READY to WIN, durable wins, a RELOAD mid-round,
/// a rider who quits. The countdown is shortened with its game setting;
/// the ticks run at the game's own 10 per second.
@Suite struct CyclesGameTests {
    static var module: String { Products.library("Cycles").path }

    static func server(database: URL? = nil) throws -> TestServer {
        try TestServer(arguments: ["--module", module, "--game-setting", "countdown_ms=50"]
            + (database.map { ["--database", $0.path] } ?? []))
    }

    /// The next event starting with `prefix`, skipping others.
    func event(_ client: LineClient, _ prefix: String) throws -> String {
        for _ in 0..<1000 {
            let line = try client.event()
            if line.hasPrefix(prefix) { return line }
        }
        throw TestFailure("no event starting with \(prefix)")
    }

    /// A `>TICK n ...` line's n.
    func tickNumber(_ line: String) throws -> Int {
        let match = try #require(line.firstMatch(of: /^>TICK (\d+)( [A-Za-z0-9_-]+:\d+,\d+,[NESW])*$/), "\(line)")
        return Int(match.1)!
    }

    /// alice and bob logged in, in room `arena`, both READY: the round is
    /// counting down.
    func startRound(_ server: TestServer) throws -> (alice: LineClient, bob: LineClient) {
        let alice = try server.connect()
        let bob = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice wins 0"))
        #expect(try bob.call("LOGIN bob").hasPrefix("+WELCOME bob wins 0"))
        #expect(try alice.call("JOIN arena") == "+JOINED arena players 1")
        #expect(try bob.call("JOIN arena") == "+JOINED arena players 2")
        #expect(try alice.call("TURN L").hasPrefix("-ERR NOT_RIDING"))
        #expect(try alice.call("READY") == "+READY")
        #expect(try bob.call("READY") == "+READY")
        #expect(try event(alice, ">ROUND") == ">ROUND 1 starts_in_ms 50")
        return (alice, bob)
    }

    @Test func aRoundRunsFromReadyToAWinThatSurvivesARestart() throws {
        let database = FileManager.default.temporaryDirectory.appendingPathComponent("cycles-\(UUID().uuidString).sqlite")
        defer { removeDatabase(database) }
        let server = try Self.server(database: database)
        let (alice, bob) = try startRound(server)
        // Spawns: alice on the west side heading east on row 4, bob on the
        // east side heading west on row 12.
        #expect(try event(alice, ">TICK") == ">TICK 1 alice:9,4,E bob:54,12,W")
        #expect(try alice.call("READY").hasPrefix("-ERR ROUND_ON"))
        // North from row 4: the wall within five ticks.
        #expect(try alice.call("TURN L") == "+TURNED N")
        var seen: [String] = []
        repeat { seen.append(try alice.event()) } while !seen.last!.hasPrefix(">WIN") && !seen.last!.hasPrefix(">DRAW")
        #expect(seen.last == ">WIN bob wins 1", "\(seen)")
        #expect(seen.dropLast().last == ">CRASH alice", "\(seen)")
        let ticks = try seen.filter { $0.hasPrefix(">TICK") }.map(tickNumber)
        #expect(ticks == Array(2..<(2 + ticks.count)), "\(seen)")
        #expect(try event(bob, ">WIN") == ">WIN bob wins 1")
        // The next round waits for READY again.
        #expect(try bob.call("TURN R").hasPrefix("-ERR NOT_RIDING"))
        #expect(try bob.call("READY") == "+READY")
        #expect(server.stop() == 0)

        let again = try Self.server(database: database)
        let back = try again.connect()
        #expect(try back.call("LOGIN bob").hasPrefix("+WELCOME bob wins 1"))
        _ = again.stop()
    }

    @Test func aReloadMidRoundKeepsTheRoundTicking() throws {
        let server = try Self.server()
        // bob is kept: a dropped rider would end the round.
        let (alice, bob) = try startRound(server)
        var last = 0
        while last < 3 { last = try tickNumber(try event(alice, ">TICK")) }
        // The same code under another hash: a real swap, not `+OK unchanged`.
        let copy = try paddedCopy(of: "Cycles")
        defer { try? FileManager.default.removeItem(at: copy) }
        let reloaded = try server.connectAdmin().call("RELOAD \(copy.path)")
        #expect(reloaded.hasPrefix("+OK cycles 1.0.0 -> cycles 1.0.0"), "\(reloaded)")
        // The ticks go on where they were: same round, same riders.
        try expectTicksGoOn(alice, bob, after: last)
        _ = server.stop()
    }

    /// An engine UPGRADE (the same binary exec'd in place) mid-round: the
    /// riders stay connected and the ticks go on, one after the other.
    @Test func anEngineUpgradeMidRoundKeepsTheRoundTicking() throws {
        let server = try Self.server()
        let (alice, bob) = try startRound(server)
        var last = 0
        while last < 3 { last = try tickNumber(try event(alice, ">TICK")) }
        let upgraded = try server.connectAdmin().call("UPGRADE")
        #expect(upgraded.hasPrefix("+OK engine"), "\(upgraded)")
        try expectTicksGoOn(alice, bob, after: last)
        _ = server.stop()
    }

    /// Five more ticks, numbered on from `last`, both riders in each; then
    /// bob still steers.
    func expectTicksGoOn(_ alice: LineClient, _ bob: LineClient, after last: Int) throws {
        var last = last
        for _ in 0..<5 {
            let tick = try event(alice, ">")
            #expect(tick.hasPrefix(">TICK"), "\(tick)")
            let number = try tickNumber(tick)
            #expect(number == last + 1, "\(tick)")
            #expect(tick.contains(" alice:") && tick.contains(" bob:"), "\(tick)")
            last = number
        }
        #expect(try bob.call("TURN R") == "+TURNED N")
    }

    @Test func aRiderWhoQuitsMidRoundCrashesOutAndTheOtherWins() throws {
        let server = try Self.server()
        let (alice, bob) = try startRound(server)
        _ = try event(bob, ">TICK")
        #expect(try alice.call("QUIT") == "+BYE")
        #expect(try event(bob, ">CRASH") == ">CRASH alice left")
        #expect(try event(bob, ">") .hasPrefix(">TICK"))
        #expect(try event(bob, ">WIN") == ">WIN bob wins 1")
        #expect(try bob.call("WHO") == "+WHO bob")
        _ = server.stop()
    }
}
