import Foundation
import Testing

/// The default game's clock (its ABI 1.3 timers) end to end: a real server
/// with short `--game-setting`s, driven over TCP. Taken gems come back
/// (`>GEM x y`), rounds end on time with their winner (`>ROUND_END n
/// winner points`, then `>ROUND n+1 ends_in S`), silent players are moved
/// out of their room (`>LEAVE name afk`, `>AFK room S`), and a timer set
/// by one version of the game is handled by the next after a RELOAD, a
/// ROLLBACK or an engine UPGRADE. Every wait is for a line, bounded by the
/// client's 10-second read timeout, never a sleep.
@Suite struct GameClockTests {
    static func settings(_ pairs: [String: String]) -> [String] {
        pairs.sorted { $0.key < $1.key }.flatMap { ["--game-setting", "\($0.key)=\($0.value)"] }
    }

    /// A server whose rounds last `roundSeconds`, and alice logged in alone
    /// in a room she made (round 1 running).
    static func aliceInANewRoom(roundSeconds: Int) throws -> (TestServer, TimedPlayer) {
        let server = try TestServer(arguments: settings(["round_seconds": "\(roundSeconds)"]))
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        try alice.joinNewRoom("r")
        let alices = TimedPlayer(alice)
        alices.round = 1
        return (server, alices)
    }

    /// A fresh room announces its first round with the game's own length
    /// when the operator sets none: two minutes.
    @Test func roundsLastTwoMinutesUnlessTheOperatorSaysOtherwise() throws {
        let server = try TestServer(calm: false)
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        #expect(try alice.call("JOIN r").hasPrefix("+JOINED r at "))
        #expect(try alice.event() == ">ROUND 1 ends_in 120")
        // A room joined, not made, starts no round.
        let bob = try server.connect()
        _ = try bob.call("LOGIN bob")
        #expect(try bob.call("JOIN r").hasPrefix("+JOINED r at "))
        #expect(try bob.noEventsPending())
    }

    @Test func aTakenGemComesBackOnAFreeCellAndTheRoomIsTold() throws {
        let server = try TestServer(arguments: Self.settings(["gem_respawn_ms": "50"]))
        let (alice, bob) = try server.aliceAndBob()
        let alices = TimedPlayer(alice)
        let take = try alices.walkToGem()
        // The whole room hears it come back, mover included: `>GEM x y`,
        // two numbers (a take is `>GEM name x y score s`).
        let back = try alices.next { $0.wholeMatch(of: /\>GEM \d \d/) != nil }
        let cell = try #require(back.wholeMatch(of: /\>GEM (\d) (\d)/))
        let point = Board.Point(x: Int(cell.1)!, y: Int(cell.2)!)
        let bobs = TimedPlayer(bob)
        #expect(try bobs.next { $0.hasPrefix(">GEM alice ") } == ">GEM alice \(take.x) \(take.y) score 1")
        #expect(try bobs.next { $0.wholeMatch(of: /\>GEM \d \d/) != nil } == back)
        // On a free cell: nobody stands there, and it is a gem now.
        let board = try Board(alice.call("LOOK"))
        let bobAt = try Board(bob.call("LOOK")).position
        #expect(board.position != point && bobAt != point, "\(back)")
        #expect(board.gems.contains(point), "\(back) is not on \(board)")
        #expect(try alice.call("SCORE") == "+SCORE alice:1 bob:0")
    }

    @Test func aRoundEndsOnTimeWithItsWinnerAndTheNextOneStarts() throws {
        let server = try TestServer(arguments: Self.settings(["round_seconds": "1"]))
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        #expect(try alice.call("JOIN clock").hasPrefix("+JOINED clock at "))
        // Alone and idle: round 1 ends with nobody ahead, round 2 starts.
        #expect(try alice.event() == ">ROUND 1 ends_in 1")
        #expect(try alice.event() == ">ROUND_END 1 - 0")
        #expect(try alice.event() == ">ROUND 2 ends_in 1")

        let bob = try server.connect()
        _ = try bob.call("LOGIN bob")
        #expect(try bob.call("JOIN clock").hasPrefix("+JOINED clock at "))
        let alices = TimedPlayer(alice)
        let bobs = TimedPlayer(bob)
        // From the first round bob hears start, both know which round it is.
        _ = try bobs.next { $0.hasPrefix(">ROUND ") }
        _ = try alices.next { $0 == ">ROUND \(bobs.round) ends_in 1" }

        // bob takes one gem: the round he took it in ends with him ahead.
        let take = try bobs.walkToGem()
        let round = take.round
        let end = ">ROUND_END \(round) bob 1"
        #expect(try bobs.next { $0.hasPrefix(">ROUND_END \(round) ") } == end)
        #expect(try bobs.next() == ">ROUND \(round + 1) ends_in 1")
        #expect(try alices.next { $0.hasPrefix(">ROUND_END \(round) ") } == end)
        #expect(try alices.next() == ">ROUND \(round + 1) ends_in 1")
        // Points count per round: nobody scored in the next one.
        #expect(try bobs.next() == ">ROUND_END \(round + 1) - 0")
        #expect(try alices.next { $0.hasPrefix(">ROUND_END \(round + 1) ") } == ">ROUND_END \(round + 1) - 0")
        // The durable score counts every gem, whatever the round.
        #expect(try bob.call("SCORE") == "+SCORE alice:0 bob:1")

        // A tie goes to the member who joined first. Both take a gem; the
        // round they both took it in (a round may end between the two:
        // then again, from a fresh round) names alice.
        var tied = false
        for _ in 0..<10 where !tied {
            // A round that starts after both walks before: nobody has a point in it.
            let start = max(alices.round, bobs.round) + 1
            _ = try bobs.next { $0 == ">ROUND \(start) ends_in 1" }
            _ = try alices.next { $0 == ">ROUND \(start) ends_in 1" }
            let (a, b) = (try alices.walkToGem(), try bobs.walkToGem())
            guard a.round == start, b.round == start else { continue }
            #expect(try alices.next { $0.hasPrefix(">ROUND_END \(start) ") } == ">ROUND_END \(start) alice 1")
            #expect(try bobs.next { $0.hasPrefix(">ROUND_END \(start) ") } == ">ROUND_END \(start) alice 1")
            tied = true
        }
        #expect(tied, "in ten rounds of a second, alice and bob never took a gem in the same one")
    }

    /// Taking every gem ends nothing (the board stays empty); the round's
    /// end deals a fresh board of six, and positions and scores stay.
    @Test func aRoundEndDealsAFreshBoardAndKeepsPositionsAndScores() throws {
        let (server, alices) = try Self.aliceInANewRoom(roundSeconds: 2)
        // Six gems taken in one round (a round that ends under the walk
        // deals a fresh board: then again, in the next one).
        var round = 0
        var taken = 0
        var score = 0
        var cleared: Board?
        for _ in 0..<60 where cleared == nil {
            let take = try alices.walkToGem()
            score += 1
            (round, taken) = take.round == round ? (round, taken + 1) : (take.round, 1)
            if taken == 6 {
                let board = try Board(alices.call("LOOK"))
                if alices.round == round { cleared = board }
            }
        }
        let empty = try #require(cleared, "never six gems in one round of two seconds")
        #expect(empty.gems.isEmpty, "\(empty.gems)")
        #expect(try alices.next { $0.hasPrefix(">ROUND_END \(round) ") } == ">ROUND_END \(round) alice 6")
        #expect(try alices.next() == ">ROUND \(round + 1) ends_in 2")
        let board = try Board(alices.client.call("LOOK"))
        #expect(board.position == empty.position)
        #expect((5...6).contains(board.gems.count), "\(board.gems)")  // one may be under alice
        #expect(try alices.client.call("SCORE") == "+SCORE alice:\(score)")
    }

    /// A player who sends nothing for afk_seconds is moved out of the room;
    /// one who keeps talking stays, however long. Moved out is not logged
    /// out: the player can come back.
    @Test func aSilentPlayerIsMovedOutOfTheRoomAndAnActiveOneStays() throws {
        let server = try TestServer(arguments: Self.settings(["afk_seconds": "2"]))
        let (alice, bob) = try server.aliceAndBob()
        // alice keeps sending (PING) until she hears bob go; bob says nothing.
        #expect(try alice.pingUntilEvent() == ">LEAVE bob afk")
        #expect(try bob.event() == ">AFK r 2")
        #expect(try alice.call("WHO") == "+WHO alice")
        #expect(try bob.call("WHO").hasPrefix("-ERR NOT_IN_ROOM"))
        #expect(try bob.call("SCORE") == "+SCORE bob:0")  // still logged in
        // Back in the room, and silent again: moved out again, while alice,
        // who has not stopped talking in twice the time, is still there.
        #expect(try bob.call("JOIN r").hasPrefix("+JOINED r at "))
        #expect(try alice.pingUntilEvent().hasPrefix(">JOIN bob "))
        #expect(try alice.pingUntilEvent() == ">LEAVE bob afk")
        #expect(try bob.event() == ">AFK r 2")
        #expect(try alice.call("WHO") == "+WHO alice")
        #expect(try alice.noEventsPending())
        #expect(try bob.noEventsPending())
    }

    /// The AFK timer watches the room it was set for: a player who changed
    /// rooms is moved out of the new one only (and never announced in the
    /// old), and one who left is left alone. carol, idle in the first room
    /// after both, is moved out last: by then their timers had come due.
    @Test func theAFKTimerFollowsThePlayerAcrossRoomsAndStopsWhenItLeaves() throws {
        let server = try TestServer(arguments: Self.settings(["afk_seconds": "2"]))
        let (alice, bob) = try server.aliceAndBob()
        var heard: [String] = []
        // bob changes rooms, and is silent there.
        try bob.joinNewRoom("elsewhere")
        heard += try alice.pingUntilEvents(1)
        // dave joins and leaves at once (one write, so no timer can come
        // between), and stays on, outside any room.
        let dave = try server.connect()
        _ = try dave.call("LOGIN dave")
        try dave.write(Array("JOIN r\nLEAVE\n".utf8))
        #expect(try dave.reply().hasPrefix("+JOINED r at "))
        #expect(try dave.reply() == "+LEFT r")
        heard += try alice.pingUntilEvents(2)
        let carol = try server.connect()
        _ = try carol.call("LOGIN carol")
        #expect(try carol.call("JOIN r").hasPrefix("+JOINED r at "))
        heard += try alice.pingUntilEvents(2)
        #expect(heard.count == 5 && heard[0] == ">LEAVE bob" && heard[1].hasPrefix(">JOIN dave ")
                    && heard[2] == ">LEAVE dave" && heard[3].hasPrefix(">JOIN carol ") && heard[4] == ">LEAVE carol afk",
                "\(heard)")
        #expect(try carol.event() == ">AFK r 2")
        #expect(try bob.event() == ">AFK elsewhere 2")
        #expect(try bob.noEventsPending())
        #expect(try dave.noEventsPending())
        #expect(try alice.call("WHO") == "+WHO alice")
        #expect(try carol.call("ROOMS") == "+ROOMS r:1")  // elsewhere went with bob
    }

    /// Timers are engine data: the round_end 1.1.0 set is handled by v2
    /// after a RELOAD (the rounds count on), and v2's by 1.1.0 after a
    /// ROLLBACK.
    @Test func theRoundClockGoesOnAcrossReloadAndRollback() throws {
        let (server, alices) = try Self.aliceInANewRoom(roundSeconds: 1)
        _ = try alices.next { $0 == ">ROUND 2 ends_in 1" }
        let admin = try server.connectAdmin()
        for (swap, pong) in [("RELOAD \(Products.library("GameLogicV2").path)", "+PONG v2"), ("ROLLBACK", "+PONG")] {
            #expect(try admin.call(swap).hasPrefix("+OK gems "), "\(swap)")
            // Whatever was heard before this reply may be the old module's;
            // what comes after it is the new one's.
            #expect(try alices.call("PING") == pong)
            alices.skipHeard()
            let round = alices.round
            #expect(try alices.next { $0.hasPrefix(">ROUND_END ") } == ">ROUND_END \(round) - 0", "after \(swap)")
            #expect(try alices.next() == ">ROUND \(round + 1) ends_in 1", "after \(swap)")
        }
        // Every round heard, 1 to the last, once each and in order.
        let starts = alices.heard.compactMap { $0.wholeMatch(of: /\>ROUND (\d+) ends_in 1/).map { Int($0.1)! } }
        #expect(starts == Array(2...(starts.last ?? 2)), "\(alices.heard)")
    }

    /// An engine upgrade hands the game's timers over: the round ends in
    /// the new engine, on time, and the next one starts.
    @Test func theRoundClockGoesOnAcrossAnEngineUpgrade() throws {
        let (server, alices) = try Self.aliceInANewRoom(roundSeconds: 1)
        #expect(try server.connectAdmin().call("UPGRADE").hasPrefix("+OK engine"))
        #expect(try alices.call("PING") == "+PONG")
        alices.skipHeard()
        for _ in 0..<2 {
            let round = alices.round
            #expect(try alices.next { $0.hasPrefix(">ROUND_END ") } == ">ROUND_END \(round) - 0")
            #expect(try alices.next() == ">ROUND \(round + 1) ends_in 1")
        }
        #expect(try server.statusFields()["upgrades"] == "1")
    }

    /// `batch_hz`: a room made from then on ticks and holds its events for
    /// the tick; they still all arrive, in order, and a reply is not held.
    @Test func batchHzMakesRoomsTickAndTheirEventsStillArriveInOrder() throws {
        let server = try TestServer(arguments: Self.settings(["batch_hz": "20"]))
        let (alice, bob) = try server.aliceAndBob()
        #expect(try server.statusFields()["ticking_rooms"] == "1")
        _ = bob.takeEvents()
        for index in 1...5 { #expect(try alice.call("SAY line \(index)").hasPrefix("+")) }
        for index in 1...5 { #expect(try bob.event() == ">SAY alice line \(index)") }
        #expect(try bob.call("PING") == "+PONG")
        #expect(Int(try server.statusFields()["ticks"] ?? "") ?? 0 > 0)
    }
}

/// One player of the timed game and every event it heard, in order, with
/// the round it is in: the last `>ROUND n ends_in S` heard.
final class TimedPlayer {
    let client: LineClient
    private(set) var heard: [String] = []
    /// Events in `heard` not yet handed out by `next`.
    private var unread = 0
    var round = 0

    init(_ client: LineClient) { self.client = client }

    private func note(_ line: String) {
        heard.append(line)
        if let start = line.wholeMatch(of: /\>ROUND (\d+) ends_in \d+/) { round = Int(start.1)! }
    }

    /// A request; the events before its reply are noted (and the round).
    func call(_ line: String) throws -> String {
        let reply = try client.call(line)
        for event in client.takeEvents() { note(event) }
        return reply
    }

    /// Hands out nothing heard so far: `next` starts with what comes after.
    func skipHeard() { unread = heard.count }

    /// The next event not handed out yet (noted first, or read).
    func next() throws -> String {
        if unread == heard.count { note(try client.event()) }
        unread += 1
        return heard[unread - 1]
    }

    /// The next event that `matches`, skipping others.
    func next(_ matches: (String) -> Bool) throws -> String {
        for _ in 0..<10_000 {
            let line = try next()
            if matches(line) { return line }
        }
        throw TestFailure("no matching event in 10,000")
    }

    /// Walks onto a gem (the nearest one LOOK shows; the board may change
    /// under the walk, as rounds end and gems come back) and returns where
    /// it was and the round it was taken in: the last one heard starting
    /// before the `+GEM` reply.
    func walkToGem() throws -> (x: Int, y: Int, round: Int) {
        for _ in 0..<200 {
            let board = try Board(call("LOOK"))
            let here = board.position
            let direction: String
            if let target = board.nearest(board.gems) {
                direction = here.x < target.x ? "E" : here.x > target.x ? "W" : here.y < target.y ? "S" : "N"
            } else {
                direction = here.y > 0 ? "N" : "S"  // gems hidden under players: wander
            }
            let reply = try call("MOVE \(direction)")
            if let gem = reply.wholeMatch(of: /\+GEM (\d) (\d) score \d+/) { return (Int(gem.1)!, Int(gem.2)!, round) }
            guard reply.hasPrefix("+MOVED ") || reply.hasPrefix("-ERR BLOCKED") else { throw TestFailure("MOVE: \(reply)") }
        }
        throw TestFailure("no gem in 200 steps")
    }
}

extension LineClient {
    /// PINGs (about ten a second) until an event comes; returns it. A
    /// player who does this is never silent.
    func pingUntilEvent() throws -> String {
        try pingUntilEvents(1)[0]
    }

    /// PINGs until exactly `count` events came; returns them in order.
    func pingUntilEvents(_ count: Int) throws -> [String] {
        var heard: [String] = []
        let deadline = Date().addingTimeInterval(NotAHang.seconds)
        while heard.count < count {
            guard Date() < deadline else { throw TestFailure("only \(heard) within \(NotAHang.seconds) s") }
            guard try call("PING") == "+PONG" else { throw TestFailure("PING refused") }
            heard += takeEvents()
            if heard.count < count, hasInput(within: 0.1) { heard.append(try event()) }
        }
        guard heard.count == count else { throw TestFailure("expected \(count) events, got \(heard)") }
        return heard
    }
}
