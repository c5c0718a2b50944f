import GameABI
import Gems
import HotswapTesting
import LogicKit
import Testing

/// The default game's rules, on the fake host: the same module code the
/// server runs, with no server, no sockets and a virtual clock.
@Suite struct GemsTests {
    static func host(_ settings: [String: String] = [:]) throws -> FakeHost {
        try FakeHost(FakeModule(game: Gems.self), settings: settings)
    }

    /// Logs `name` in and joins `room`; the session and its replies.
    static func player(_ host: FakeHost, _ name: String, room: String = "r") -> (FakeSession, [String]) {
        let session = host.connect()
        let welcome = host.send("LOGIN \(name)", from: session)
        let joined = host.send("JOIN \(room)", from: session)
        return (session, [welcome, joined])
    }

    /// Walks `session` to the nearest gem, one MOVE at a time; the replies.
    static func walkToAGem(_ host: FakeHost, _ session: FakeSession) throws -> [String] {
        let room = try #require(host.room(of: session.id))
        let gems = try #require(host.int("gems", of: room))
        var x = try #require(host.int("x", of: session.id)), y = try #require(host.int("y", of: session.id))
        let target = try #require((0..<64).first { gems & (1 << $0) != 0 })
        var replies: [String] = []
        while x != Int64(target % 8) || y != Int64(target / 8) {
            let verb = x < target % 8 ? "E" : x > target % 8 ? "W" : y < target / 8 ? "S" : "N"
            let reply = host.send("MOVE \(verb)", from: session)
            replies.append(reply)
            if reply.hasPrefix("+GEM") { break }
            x = try #require(host.int("x", of: session.id))
            y = try #require(host.int("y", of: session.id))
        }
        return replies
    }

    @Test func helpIsGeneratedFromTheVerbs() throws {
        let host = try Self.host()
        #expect(host.send("HELP", from: host.connect()).hasPrefix(
            "+HELP PING | LOGIN name [secret] | SECRET secret | RESUME token | ROOMS | JOIN room | LEAVE | WHO | SAY text | MOVE N|S|E|W (or UP|DOWN|RIGHT|LEFT) | LOOK | SCORE | QUIT -- rounds are timed"))
        #expect(host.violations.isEmpty)
    }

    @Test func aGemScoresForThePlayerAndTheRoomSeesIt() throws {
        let host = try Self.host()
        let (alice, aliceReplies) = Self.player(host, "Alice")
        let (bob, _) = Self.player(host, "bob")
        #expect(aliceReplies[0].hasPrefix("+WELCOME Alice login 1 score 0 resume "))
        #expect(aliceReplies[1].hasPrefix("+JOINED r at ") && aliceReplies[1].hasSuffix(" players 1"))
        #expect(host.events(of: alice).contains { $0.hasPrefix(">JOIN bob ") })
        let replies = try Self.walkToAGem(host, alice)
        #expect(replies.last?.hasPrefix("+GEM ") == true && replies.last?.hasSuffix(" score 1") == true)
        #expect(host.events(of: bob).contains { $0.hasPrefix(">GEM Alice ") && $0.hasSuffix(" score 1") })
        #expect(host.send("SCORE", from: bob) == "+SCORE Alice:1 bob:0")
        #expect(host.violations.isEmpty)
    }

    @Test func aRefusedRequestChangesNothing() throws {
        let host = try Self.host()
        let (alice, _) = Self.player(host, "alice")
        for _ in 0..<8 where host.send("MOVE N", from: alice) != "-ERR BLOCKED that is the edge of the board" {}
        let y = host.int("y", of: alice.id)
        #expect(y == 0)
        #expect(host.send("MOVE N", from: alice) == "-ERR BLOCKED that is the edge of the board")
        #expect(host.int("y", of: alice.id) == 0)
        #expect(host.send("MOVE X", from: alice) == "-ERR SYNTAX usage: MOVE N|S|E|W (or UP|DOWN|RIGHT|LEFT)")
        #expect(host.send("JOIN bad/name", from: alice) == "-ERR BAD_ROOM a room name is 1 to 24 letters, digits, _ or -")
        #expect(host.send("JOIN r", from: alice) == "-ERR ALREADY_IN_ROOM you are already in that room")
        let stranger = host.connect()
        #expect(host.send("SAY hi", from: stranger) == "-ERR NOT_LOGGED_IN LOGIN name first")
        #expect(host.send("DANCE", from: stranger) == "-ERR UNKNOWN_COMMAND unknown command, try HELP")
        #expect(host.violations.isEmpty)
    }

    @Test func aRoundEndsOnItsTimerAndTheBestPlayerWinsIt() throws {
        let host = try Self.host(["round_seconds": "2"])
        let (alice, _) = Self.player(host, "alice")
        _ = try Self.walkToAGem(host, alice)
        _ = host.events(of: alice)
        host.advance(milliseconds: 2_000)
        let events = host.events(of: alice)
        #expect(events.contains(">ROUND_END 1 alice 1"))
        #expect(events.contains(">ROUND 2 ends_in 2"))
        #expect(host.int("round_points", of: alice.id) == 0)
    }

    @Test func aSilentPlayerIsMovedOutOfTheRoom() throws {
        let host = try Self.host(["afk_seconds": "5"])
        let (alice, _) = Self.player(host, "alice")
        let (bob, _) = Self.player(host, "bob")
        host.advance(milliseconds: 3_000)
        #expect(host.send("SAY still here", from: bob) == "+OK")
        host.advance(milliseconds: 2_500)
        #expect(host.events(of: alice).contains(">AFK r 5"))
        #expect(host.room(of: alice.id) == nil)
        #expect(host.events(of: bob).contains(">LEAVE alice afk"))
        #expect(host.room(of: bob.id) != nil)
    }

    @Test func scoresAreDurableAndSecretsAreChecked() throws {
        let host = try Self.host()
        let alice = host.connect()
        #expect(host.send("LOGIN alice s3cret", from: alice).hasPrefix("+WELCOME alice login 1 score 0"))
        #expect(host.send("JOIN r", from: alice).hasPrefix("+JOINED r"))
        _ = try Self.walkToAGem(host, alice)
        host.restart()
        let again = host.connect()
        #expect(host.send("LOGIN alice wrong", from: again) == "-ERR BAD_SECRET wrong secret for that name")
        #expect(host.send("LOGIN ALICE s3cret", from: again).hasPrefix("+WELCOME ALICE login 2 score 1"))
        #expect(host.violations.isEmpty)
    }
}
