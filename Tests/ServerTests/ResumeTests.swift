import Foundation
import Testing

/// A session outliving its connection (`--resume-grace`, ABI 1.4), over
/// real sockets: a drop is seen by the room as `>AWAY`, a RESUME with the
/// token from WELCOME on a new connection brings the session back with
/// its room, position and score and the lines it missed, in order; tokens
/// are single use and rotate; a grace that runs out ends the session as a
/// drop did before; and an away session survives RELOAD and UPGRADE.
@Suite struct ResumeTests {
    /// The resume token at the end of a WELCOME or RESUMED reply.
    static func token(in reply: String) throws -> String {
        let words = reply.split(separator: " ")
        guard let index = words.lastIndex(of: "resume"), index + 1 < words.count else {
            throw TestFailure("no resume token in '\(reply)'")
        }
        return String(words[index + 1])
    }

    /// alice and bob in room `r` (alice made it), both with no event
    /// pending; alice's token.
    static func pair(_ server: TestServer) throws -> (alice: LineClient, bob: LineClient, token: String) {
        let alice = try server.connect()
        let bob = try server.connect()
        let welcome = try alice.call("LOGIN alice")
        #expect(welcome.hasPrefix("+WELCOME alice login "), "\(welcome)")
        let token = try token(in: welcome)
        #expect(token.count == 22 && token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }, "\(token)")
        _ = try bob.call("LOGIN bob")
        try alice.joinNewRoom("r")
        #expect(try bob.call("JOIN r").hasPrefix("+JOINED r at "))
        #expect(try alice.event().hasPrefix(">JOIN bob "))
        return (alice, bob, token)
    }

    /// Past --max-away-sessions a drop ends its session as without resume
    /// (what away sessions hold is outside the output budget).
    @Test func awaySessionsAreCapped() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30", "--max-away-sessions", "1"])
        let (alice, bob, _) = try Self.pair(server)
        let carol = try server.connect()
        _ = try carol.call("LOGIN carol")
        #expect(try carol.call("JOIN r").hasPrefix("+JOINED r at "))
        #expect(try bob.event().hasPrefix(">JOIN carol "))
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        carol.reset()
        #expect(try bob.event() == ">LEAVE carol")
        let status = try server.statusFields()
        #expect(status["sessions_away"] == "1" && status["sessions"] == "2", "\(status)")
    }

    /// A RESUME queues the whole backlog at once: a backlog larger than a
    /// connection's output cap would cut the client off every time.
    @Test func aBacklogLargerThanTheOutputCapRefusesTheStart() throws {
        let (status, log) = try runServerExpectingExit(["--resume-grace", "30", "--resume-backlog-bytes", "2000000"])
        #expect(status != 0)
        #expect(log.contains("--resume-backlog-bytes (2000000) must leave 4096 bytes below --max-output-bytes"), "\(log)")
    }

    @Test func aDroppedSessionComesBackWithItsRoomPlaceScoreAndMissedEvents() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30"])
        let (alice, bob, token) = try Self.pair(server)
        let taken = try alice.collectGem(as: "alice", watchers: [bob])
        let map = try alice.call("LOOK")
        let who = try bob.call("WHO")
        let position = map.split(separator: " ")[1...2].joined(separator: " ")

        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        #expect(try server.statusFields()["sessions_away"] == "1")
        #expect(try bob.call("SAY one") == "+OK")
        #expect(try bob.call("SAY two") == "+OK")
        #expect(try bob.call("WHO") == who, "an away player stays in the room, in its place")

        let back = try server.connect()
        let resumed = try back.call("RESUME \(token)")
        #expect(resumed.hasPrefix("+RESUMED alice room r at \(position) score \(taken.score) resume "), "\(resumed)")
        #expect(try Self.token(in: resumed) != token)
        #expect(try back.event() == ">SAY bob one")
        #expect(try back.event() == ">SAY bob two")
        #expect(try bob.event() == ">BACK alice")
        #expect(try back.call("LOOK") == map)
        #expect(try back.call("SCORE").contains("alice:\(taken.score)"))
        // The session is alice's again: what she says reaches the room.
        #expect(try back.call("SAY hello") == "+OK")
        #expect(try bob.event() == ">SAY alice hello")
        let status = try server.statusFields()
        #expect(status["sessions_away"] == "0")
        #expect(status["resumes"] == "1")
        #expect(status["sessions"] == "2")
    }

    @Test func pastTheBoundTheClientIsToldHowManyLinesItMissed() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30", "--resume-backlog-lines", "3"])
        let (alice, bob, token) = try Self.pair(server)
        alice.halfClose()
        #expect(try alice.closedByServer())
        #expect(try bob.event() == ">AWAY alice")
        // The name waits for its own RESUME: a LOGIN is refused, and told why.
        #expect(try server.connect().call("LOGIN Alice")
                == "-ERR NAME_TAKEN that name's connection dropped; its session waits for RESUME with its token, then the name is free")
        for index in 1...5 { #expect(try bob.call("SAY m\(index)") == "+OK") }
        let back = try server.connect()
        #expect(try back.call("RESUME \(token)").hasPrefix("+RESUMED alice room r at "))
        #expect(try back.event() == ">MISSED 2")
        #expect(try back.event() == ">SAY bob m3")
        #expect(try back.event() == ">SAY bob m4")
        #expect(try back.event() == ">SAY bob m5")
        #expect(try back.noEventsPending())
    }

    /// An away session's timers keep running: the game's AFK timer moves
    /// it out of its room meanwhile, and the player hears it on return.
    @Test func anAwaySessionsTimersKeepRunning() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30", "--game-setting", "afk_seconds=2"])
        let (alice, bob, token) = try Self.pair(server)
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        #expect(try bob.pingUntilEvent() == ">LEAVE alice afk")
        let back = try server.connect()
        #expect(try back.call("RESUME \(token)").hasPrefix("+RESUMED alice score 0 resume "))
        #expect(try back.event() == ">AFK r 2")
        #expect(try back.call("JOIN r").hasPrefix("+JOINED r at "))
    }

    /// A module built before resume (ABI 1.2) asks for no token: a drop
    /// ends its session at once, as it always did.
    @Test func aModuleThatAsksForNoTokenKeepsTodaysDrops() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30", "--module", ReloadTests.module("ABI12Module")])
        let client = try server.connect()
        #expect(try client.call("PING") == "+PONG old")
        #expect(try server.statusFields()["sessions"] == "1")
        client.reset()
        #expect(try waitUntil(NotAHang.seconds) { try server.statusFields()["sessions"] == "0" })
        #expect(try server.statusFields()["sessions_away"] == "0")
    }

    @Test func whenTheGraceRunsOutTheSessionEndsAndItsTokenIsRefused() throws {
        let server = try TestServer(arguments: ["--resume-grace", "1"])
        let (alice, bob, token) = try Self.pair(server)
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        #expect(try bob.event() == ">LEAVE alice timeout")
        let late = try server.connect()
        #expect(try late.call("RESUME \(token)").hasPrefix("-ERR BAD_TOKEN "))
        // The name is free again.
        #expect(try late.call("LOGIN alice").hasPrefix("+WELCOME alice login 3 "))
        let status = try server.statusFields()
        #expect(status["resume_expired"] == "1")
        #expect(status["resume_refused"] == "1")
        #expect(status["sessions_away"] == "0")
    }

    @Test func tokensAreSingleUseRotatedAndUnforgeable() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30"])
        let (alice, bob, token) = try Self.pair(server)
        let stranger = try server.connect()
        for bad in ["AAAAAAAAAAAAAAAAAAAAAA", "short", String(token.reversed()), token + "x"] {
            #expect(try stranger.call("RESUME \(bad)").hasPrefix("-ERR BAD_TOKEN "), "\(bad)")
        }
        #expect(try stranger.call("RESUME").hasPrefix("-ERR SYNTAX "))
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        let first = try server.connect()
        let resumed = try first.call("RESUME \(token)")
        #expect(resumed.hasPrefix("+RESUMED alice "))
        #expect(try bob.event() == ">BACK alice")
        // The spent token is refused; the new one works (once).
        #expect(try server.connect().call("RESUME \(token)").hasPrefix("-ERR BAD_TOKEN "))
        let next = try Self.token(in: resumed)
        first.reset()
        #expect(try bob.event() == ">AWAY alice")
        let second = try server.connect()
        #expect(try second.call("RESUME \(next)").hasPrefix("+RESUMED alice "))
        #expect(try server.connect().call("RESUME \(next)").hasPrefix("-ERR BAD_TOKEN "))
        // A logged-in connection cannot take another session over.
        #expect(try bob.call("RESUME \(next)").hasPrefix("-ERR ALREADY_LOGGED_IN "))
        #expect(try server.statusFields()["resumes"] == "2")
    }

    @Test func aResumeWhileTheOldConnectionIsOpenReplacesIt() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30"])
        let (alice, bob, token) = try Self.pair(server)
        let phone = try server.connect()
        #expect(try phone.call("RESUME \(token)").hasPrefix("+RESUMED alice room r at "))
        #expect(try alice.readLine()?.hasPrefix(">REPLACED ") == true)
        #expect(try alice.closedByServer())
        #expect(try phone.call("SAY from the phone") == "+OK")
        // The room saw neither AWAY nor BACK: alice never left it.
        #expect(try bob.event() == ">SAY alice from the phone")
        #expect(try bob.call("WHO") == "+WHO alice bob")
        #expect(try server.statusFields()["sessions_away"] == "0")
    }

    @Test func failedResumesAreThrottledPerAddress() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30", "--max-failed-resumes-per-ip", "3",
                                                "--no-exempt-loopback"])
        let (alice, bob, token) = try Self.pair(server)
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        for _ in 0..<3 {
            #expect(try server.connect().call("RESUME AAAAAAAAAAAAAAAAAAAAAA").hasPrefix("-ERR BAD_TOKEN "))
        }
        // Even the right token is not checked now.
        let guesser = try server.connect()
        #expect(try guesser.call("RESUME \(token)").hasPrefix("-ERR RESUME_THROTTLED "))
        #expect(try server.statusFields()["resume_refused"] == "4")
        #expect(try bob.noEventsPending(), "alice is still away")
    }

    /// Loopback is exempt by default, as for --max-connections-per-ip.
    @Test func loopbackIsNotThrottledByDefault() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30", "--max-failed-resumes-per-ip", "2"])
        let (alice, bob, token) = try Self.pair(server)
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        for _ in 0..<4 { #expect(try server.connect().call("RESUME AAAAAAAAAAAAAAAAAAAAAA").hasPrefix("-ERR BAD_TOKEN ")) }
        #expect(try server.connect().call("RESUME \(token)").hasPrefix("+RESUMED alice "))
    }

    @Test func graceZeroKeepsTheBehaviourFromBeforeResume() throws {
        let server = try TestServer(arguments: ["--resume-grace", "0"])
        let alice = try server.connect()
        let bob = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+WELCOME alice login 1 score 0")
        _ = try bob.call("LOGIN bob")
        try alice.joinNewRoom("r")
        _ = try bob.call("JOIN r")
        #expect(try alice.event().hasPrefix(">JOIN bob "))
        alice.reset()
        #expect(try bob.event() == ">LEAVE alice")
        #expect(try server.connect().call("RESUME AAAAAAAAAAAAAAAAAAAAAA").hasPrefix("-ERR RESUME_OFF "))
        #expect(try server.statusFields()["sessions_away"] == "0")
    }

    /// Tokens and away sessions are the engine's: a RELOAD to another
    /// build (which parses RESUME its own way) keeps them.
    @Test func anAwaySessionSurvivesAReload() throws {
        let server = try TestServer(arguments: ["--resume-grace", "30"])
        let (alice, bob, token) = try Self.pair(server)
        let map = try alice.call("LOOK")
        let position = map.split(separator: " ")[1...2].joined(separator: " ")
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        #expect(try bob.call("SAY before the reload") == "+OK")
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(ReloadTests.module("GameLogicV2"))").hasPrefix("+OK gems 1.2.0 -> gems 2.0.0"))
        #expect(try server.statusFields()["sessions_away"] == "1")
        let back = try server.connect()
        let resumed = try back.call("RESUME \(token)")
        #expect(resumed.hasPrefix("+RESUMED v2 alice resume "), "\(resumed)")
        #expect(try back.event() == ">SAY bob before the reload")
        #expect(try back.call("WHOAMI") == "+ME alice r \(position) 0 rookie")
        // And back to 1.1.0: the new token still works after a drop.
        #expect(try admin.call("ROLLBACK").hasPrefix("+OK gems 2.0.0 -> gems 1.2.0"))
        back.reset()
        #expect(try bob.event() == ">AWAY alice")
        let again = try server.connect()
        #expect(try again.call("RESUME \(Self.token(in: resumed))").hasPrefix("+RESUMED alice room r at \(position) "))
        #expect(try bob.event() == ">BACK alice")
    }

    /// An engine upgrade hands away sessions over with their lines, their
    /// grace and every token.
    @Test func anAwaySessionSurvivesAnEngineUpgrade() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments + ["--resume-grace", "30"])
        let (alice, bob, token) = try Self.pair(server)
        let map = try alice.call("LOOK")
        let position = map.split(separator: " ")[1...2].joined(separator: " ")
        let carol = try server.connect()
        let carolToken = try Self.token(in: carol.call("LOGIN carol"))
        alice.reset()
        #expect(try bob.event() == ">AWAY alice")
        #expect(try bob.call("SAY before the upgrade") == "+OK")
        #expect(try server.connectAdmin().call("UPGRADE \(next)").hasPrefix("+OK engine"))
        let status = try server.statusFields()
        #expect(status["engine"]?.hasPrefix("next") == true)
        #expect(status["sessions_away"] == "1")
        #expect(try bob.call("SAY after the upgrade") == "+OK")
        let back = try server.connect()
        #expect(try back.call("RESUME \(token)").hasPrefix("+RESUMED alice room r at \(position) score 0 resume "))
        #expect(try back.event() == ">SAY bob before the upgrade")
        #expect(try back.event() == ">SAY bob after the upgrade")
        #expect(try bob.event() == ">BACK alice")
        #expect(try back.call("LOOK") == map)
        // A connected session's token came over too (carol is replaced).
        let phone = try server.connect()
        #expect(try phone.call("RESUME \(carolToken)").hasPrefix("+RESUMED carol score 0 resume "))
        #expect(try carol.readLine()?.hasPrefix(">REPLACED ") == true)
        #expect(try server.statusFields()["resumes"] == "2")
    }
}
