import HotswapTesting
import LogicKit
import Testing
import __Type__Game

/// __Type__ on the fake host (HotswapTesting): the game's own request,
/// hook and timer code runs against an in-memory state table with the
/// engine's rules, on a virtual clock, with no server and no sockets.
/// docs/WRITING-GAMES.md, "Testing", says what it checks and what it
/// does not model.
@Suite struct __Type__Tests {
    /// A fresh host serving the game; `settings` are --game-setting values.
    static func host(_ settings: [String: String] = [:]) throws -> FakeHost {
        try FakeHost(FakeModule(game: __Type__.self), settings: settings)
    }

    /// A new connection logged in as `name`, in `room`.
    static func player(_ host: FakeHost, _ name: String, room: String = "lobby") -> FakeSession {
        let session = host.connect()
        #expect(host.send("LOGIN \(name)", from: session).hasPrefix("+WELCOME \(name)"))
        #expect(host.send("JOIN \(room)", from: session) == "+JOINED \(room)")
        return session
    }

    @Test func helpListsTheGamesVerbs() throws {
        let host = try Self.host()
        let help = host.send("HELP", from: host.connect())
        #expect(help.hasPrefix("+HELP PING"))
        #expect(help.contains("| ROLL | WINS"))
        #expect("\(__Type__.version)".split(separator: ".").count == 3)
    }

    @Test func aVerbRepliesAndARefusalChangesNothing() throws {
        let host = try Self.host()
        let ann = host.connect()
        #expect(host.send("ECHO hello there", from: ann) == "+ECHO hello there")
        #expect(host.send("ROLL", from: ann) == "-ERR NOT_LOGGED_IN LOGIN name first")
        #expect(host.send("WINS", from: ann) == "-ERR NOT_LOGGED_IN LOGIN name first")
        #expect(host.send("LOGIN ann", from: ann).hasPrefix("+WELCOME ann"))
        #expect(host.send("ROLL", from: ann) == "-ERR NOT_IN_ROOM JOIN a room first")
        #expect(host.send("WINS", from: ann) == "+WINS 0")
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func theRoomSeesARoll() throws {
        let host = try Self.host()
        let ann = Self.player(host, "ann")
        let bob = Self.player(host, "bob")
        #expect(host.events(of: ann) == [">JOINED bob"])
        let rolled = host.send("ROLL", from: ann)
        let roll = try #require(Int(rolled.dropFirst("+ROLLED ".count)), "\(rolled)")
        #expect((1...6).contains(roll))
        #expect(host.events(of: bob) == [">ROLLED ann \(roll)"])
        #expect(host.int("roll", of: ann.id) == Int64(roll))
        // One roll per round: refused, and the roll stays.
        #expect(host.send("ROLL", from: ann) == "-ERR ALREADY_ROLLED one roll per round")
        #expect(host.int("roll", of: ann.id) == Int64(roll))
        #expect(host.events(of: bob).isEmpty)
        #expect(host.violations.isEmpty, "\(host.violations)")
    }

    @Test func theRoundTimerGivesTheBestRollAWinThatSurvivesARestart() throws {
        // round_ms at its least: one virtual second a round.
        let host = try Self.host(["round_ms": "1000"])
        let ann = Self.player(host, "ann")
        let rolled = host.send("ROLL", from: ann)
        #expect(rolled.hasPrefix("+ROLLED "))
        host.advance(milliseconds: 999)
        #expect(host.events(of: ann).isEmpty)
        host.advance(milliseconds: 1)
        #expect(host.events(of: ann) == [">ROUND 1 won by ann with \(rolled.dropFirst("+ROLLED ".count))"])
        #expect(host.send("WINS", from: ann) == "+WINS 1")
        // A new round: the roll is cleared, so ROLL is allowed again.
        #expect(host.send("ROLL", from: ann).hasPrefix("+ROLLED "))

        // Wins are a player field: the engine keeps them across a restart.
        host.restart()
        let again = host.connect()
        #expect(host.send("LOGIN ann", from: again).hasPrefix("+WELCOME ann"))
        #expect(host.send("WINS", from: again) == "+WINS 1")
        #expect(host.violations.isEmpty, "\(host.violations)")
    }
}
