import CyclesGame
import GameABI
import HotswapTesting
import LogicKit
import Testing

/// Light cycles on the fake host: the game's requests, countdown timer and
/// room ticks run as the server runs them, on a virtual clock, with no
/// server and no sockets (Tests/ServerTests/CyclesGameTests.swift plays the
/// same rounds against a real server).
///
/// The countdown is shortened with its setting (`countdown_ms` 100); the
/// ticks keep the game's 10 per second, so one tick is 100 virtual ms.
@Suite struct CyclesFakeHostTests {
    static let tickMilliseconds: UInt64 = 100

    static func host(_ limits: FakeLimits = .init()) throws -> FakeHost {
        try FakeHost(FakeModule(game: Cycles.self), settings: ["countdown_ms": "100"], limits: limits)
    }

    /// alice and bob logged in, in room `arena`, both READY: the round is
    /// counting down (nothing advanced yet).
    static func startRound(_ host: FakeHost) -> (alice: FakeSession, bob: FakeSession) {
        let alice = host.connect()
        let bob = host.connect()
        #expect(host.send("LOGIN alice", from: alice).hasPrefix("+WELCOME alice wins 0"))
        #expect(host.send("LOGIN bob", from: bob).hasPrefix("+WELCOME bob wins 0"))
        #expect(host.send("JOIN arena", from: alice) == "+JOINED arena players 1")
        #expect(host.send("JOIN arena", from: bob) == "+JOINED arena players 2")
        #expect(host.events(of: alice) == [">JOINED bob"])
        #expect(host.send("READY", from: alice) == "+READY")
        #expect(host.send("READY", from: bob) == "+READY")
        #expect(host.events(of: alice) == [">READY alice", ">READY bob", ">ROUND 1 starts_in_ms 100"])
        #expect(host.events(of: bob) == [">READY alice", ">READY bob", ">ROUND 1 starts_in_ms 100"])
        return (alice, bob)
    }

    /// Advances past the countdown: the riders take their places; the
    /// first tick is one period later.
    static func go(_ host: FakeHost) {
        host.advance(milliseconds: 100)
    }

    /// Advances one tick; what `session` was sent in it.
    static func tick(_ host: FakeHost, _ session: FakeSession) -> [String] {
        host.advance(milliseconds: tickMilliseconds)
        return host.events(of: session)
    }

    /// A `>TICK n name:x,y,d ...` line's n (nil for any other line).
    static func tickNumber(_ line: String) -> Int? {
        guard let match = line.wholeMatch(of: /^>TICK (\d+)( [A-Za-z0-9_-]+:\d+,\d+,[NESW])*$/) else { return nil }
        return Int(match.1)
    }

    /// Ticks until a `>WIN` or `>DRAW` reaches `session` (at most `limit`
    /// ticks); everything it was sent on the way.
    static func rideToTheEnd(_ host: FakeHost, _ session: FakeSession, limit: Int = 100) -> [String] {
        var seen: [String] = []
        for _ in 0..<limit {
            seen += tick(host, session)
            if seen.contains(where: { $0.hasPrefix(">WIN") || $0 == ">DRAW" }) { break }
        }
        return seen
    }

    @Test func aRoundStartsWhenBothAreReadyAndTicksOneLinePerTick() throws {
        let host = try Self.host()
        let (alice, bob) = Self.startRound(host)
        // Nothing before the countdown is over, nor until the first tick.
        host.advance(milliseconds: 99)
        #expect(host.events(of: alice).isEmpty)
        host.advance(milliseconds: 1)
        #expect(host.events(of: alice).isEmpty)
        // Spawns: alice on the west side heading east on row 4, bob on the
        // east side heading west on row 12.
        #expect(Self.tick(host, alice) == [">TICK 1 alice:9,4,E bob:54,12,W"])
        #expect(Self.tick(host, alice) == [">TICK 2 alice:10,4,E bob:53,12,W"])
        #expect(host.events(of: bob) == [">TICK 1 alice:9,4,E bob:54,12,W", ">TICK 2 alice:10,4,E bob:53,12,W"])
        // Five ticks in half a second: one line each, numbered in order.
        host.advance(milliseconds: 500)
        let lines = host.events(of: alice)
        #expect(lines.map(Self.tickNumber) == [3, 4, 5, 6, 7], "\(lines)")
        #expect(lines.last == ">TICK 7 alice:15,4,E bob:48,12,W")
        #expect(host.int("x", of: alice.id) == 15 && host.int("y", of: bob.id) == 12)
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func aRiderTurnedIntoTheWallCrashesAndTheOtherWinsDurably() throws {
        let host = try Self.host()
        let (alice, bob) = Self.startRound(host)
        Self.go(host)
        #expect(Self.tick(host, alice) == [">TICK 1 alice:9,4,E bob:54,12,W"])
        // North from row 4: the wall within five ticks.
        #expect(host.send("TURN L", from: alice) == "+TURNED N")
        let seen = Self.rideToTheEnd(host, alice)
        #expect(seen == [
            ">TICK 2 alice:9,3,N bob:53,12,W", ">TICK 3 alice:9,2,N bob:52,12,W",
            ">TICK 4 alice:9,1,N bob:51,12,W", ">TICK 5 alice:9,0,N bob:50,12,W",
            ">TICK 6 bob:49,12,W", ">CRASH alice", ">WIN bob wins 1",
        ], "\(seen)")
        #expect(host.events(of: bob).suffix(2) == [">CRASH alice", ">WIN bob wins 1"])
        // The round is over: the room stops ticking and waits for READY.
        host.advance(milliseconds: 1_000)
        #expect(host.events(of: alice).isEmpty)
        #expect(host.send("TURN R", from: bob) == "-ERR NOT_RIDING you are not riding in this round")
        #expect(host.send("READY", from: bob) == "+READY")
        #expect(host.violations.isEmpty, "\(host.violations)")

        // The win is on bob's player record: it survives a restart.
        host.restart()
        let back = host.connect()
        #expect(host.send("LOGIN bob", from: back).hasPrefix("+WELCOME bob wins 1"))
        let other = host.connect()
        #expect(host.send("LOGIN alice", from: other).hasPrefix("+WELCOME alice wins 0"))
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func ridingStraightOnEndsInADrawAtTheWalls() throws {
        let host = try Self.host()
        let (alice, bob) = Self.startRound(host)
        Self.go(host)
        // Both reach their walls on the same tick (8 → 63 east, 55 → 0 west).
        let seen = Self.rideToTheEnd(host, alice)
        #expect(seen.suffix(4) == [">TICK 56", ">CRASH alice", ">CRASH bob", ">DRAW"], "\(seen)")
        #expect(host.events(of: bob).last == ">DRAW")
        #expect(host.send("READY", from: bob) == "+READY")
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func aRefusedTurnOrReadyChangesNothing() throws {
        let host = try Self.host()
        let (alice, bob) = Self.startRound(host)
        // Counting down: nobody rides yet.
        let heading = host.int("heading", of: alice.id)
        #expect(host.send("TURN L", from: alice) == "-ERR NOT_RIDING you are not riding in this round")
        #expect(host.int("heading", of: alice.id) == heading)
        #expect(host.send("READY", from: alice) == "-ERR ROUND_ON a round is on; READY once it ends")
        Self.go(host)
        #expect(Self.tick(host, alice) == [">TICK 1 alice:9,4,E bob:54,12,W"])
        _ = host.events(of: bob)
        // Riding: READY is refused and the round goes on as it was.
        #expect(host.send("READY", from: bob) == "-ERR ROUND_ON a round is on; READY once it ends")
        #expect(host.send("TURN X", from: bob).hasPrefix("-ERR SYNTAX"))
        #expect(host.int("heading", of: bob.id) == Int64(Direction.west.rawValue))
        #expect(host.events(of: alice).isEmpty && host.events(of: bob).isEmpty)
        #expect(Self.tick(host, alice) == [">TICK 2 alice:10,4,E bob:53,12,W"])
        // A member who is not in the round cannot steer either.
        let carol = host.connect()
        #expect(host.send("LOGIN carol", from: carol).hasPrefix("+WELCOME carol"))
        #expect(host.send("JOIN arena", from: carol) == "+JOINED arena players 3")
        #expect(host.send("TURN R", from: carol) == "-ERR NOT_RIDING you are not riding in this round")
        #expect(host.int("heading", of: carol.id) == 0)
        #expect(host.send("READY", from: carol) == "-ERR ROUND_ON a round is on; READY once it ends")
        _ = host.events(of: alice)
        #expect(Self.tick(host, alice) == [">TICK 3 alice:11,4,E bob:52,12,W"])
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func aRiderWhoseConnectionDropsCrashesOutAtOnce() throws {
        // A dropped connection with a resume token goes away for the grace
        // (1 s here), but a cycle nobody steers crashes out at once.
        let host = try Self.host(FakeLimits(resumeGraceMilliseconds: 1_000))
        let (alice, bob) = Self.startRound(host)
        Self.go(host)
        #expect(Self.tick(host, bob) == [">TICK 1 alice:9,4,E bob:54,12,W"])
        host.disconnect(alice)
        #expect(host.isAway(alice.id))
        #expect(host.events(of: bob) == [">CRASH alice dropped"])
        #expect(Self.tick(host, bob) == [">TICK 2 bob:53,12,W", ">WIN bob wins 1"])
        // Its grace running out later changes nothing in the round.
        host.advance(milliseconds: 1_000)
        #expect(!host.isLive(alice.id))
        #expect(host.send("WHO", from: bob) == "+WHO bob")
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func withResumeOffARiderWhoDisconnectsCrashesOutAtOnce() throws {
        let host = try Self.host(FakeLimits(resumeGraceMilliseconds: 0))
        let (alice, bob) = Self.startRound(host)
        Self.go(host)
        #expect(Self.tick(host, bob) == [">TICK 1 alice:9,4,E bob:54,12,W"])
        host.disconnect(alice)
        #expect(host.events(of: bob) == [">CRASH alice left"])
        #expect(Self.tick(host, bob) == [">TICK 2 bob:53,12,W", ">WIN bob wins 1"])
        #expect(host.send("WHO", from: bob) == "+WHO bob")
        // The SDK's LOGIN asks for a resume token and takes the documented
        // GAME_ERR_STATE ("resume is off") as "no token": not a violation.
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func aRiderWhoQuitsMidRoundCrashesOut() throws {
        let host = try Self.host()
        let (alice, bob) = Self.startRound(host)
        Self.go(host)
        _ = Self.tick(host, bob)
        #expect(host.send("QUIT", from: alice) == "+BYE")
        #expect(host.events(of: bob) == [">CRASH alice left"])
        #expect(Self.tick(host, bob) == [">TICK 2 bob:53,12,W", ">WIN bob wins 1"])
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func aReloadMidRoundKeepsTheRoundTicking() throws {
        let host = try Self.host()
        let (alice, bob) = Self.startRound(host)
        Self.go(host)
        host.advance(milliseconds: 3 * Self.tickMilliseconds)
        #expect(host.events(of: alice).last == ">TICK 3 alice:11,4,E bob:52,12,W")
        try host.reload(to: FakeModule(game: Cycles.self))
        #expect(host.moduleName == "cycles" && host.moduleVersion == "1.0.0")
        // The round is engine state: the next tick runs the new code where
        // the old one stopped.
        host.advance(milliseconds: 5 * Self.tickMilliseconds)
        let lines = host.events(of: alice)
        #expect(lines.map(Self.tickNumber) == [4, 5, 6, 7, 8], "\(lines)")
        #expect(lines.last == ">TICK 8 alice:16,4,E bob:47,12,W")
        #expect(host.send("TURN R", from: bob) == "+TURNED N")
        #expect(Self.tick(host, alice) == [">TICK 9 alice:17,4,E bob:47,11,N"])
        #expect(host.violations.isEmpty, "\(host.violations)")
    }
}
