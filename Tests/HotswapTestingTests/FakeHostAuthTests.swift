import GameABI
import HotswapTesting
import Testing

/// A module that logs players in through the engine (`auth_login`) and
/// replies from `hotswap_auth`; RESUME through `session_resume`.
private let loginModule: FakeModule = {
    var module = testModule(fields: [
        .int(GAME_KIND_PLAYER, "visits"),
        .int(GAME_KIND_SESSION, "back"),
        .int(GAME_KIND_GLOBAL, "away_calls"),
        .int(GAME_KIND_GLOBAL, "closed_calls"),
    ]) { r in
        let t = r.t
        switch r.verb {
        case "LOGIN":  // LOGIN identity [secret]
            let status = t.login(r.session, r.word(1), secret: r.word(2))
            guard status == GAME_OK else { return t.reply("-ERR \(status)") }
            // Replying now is refused: the answer is deferred.
            let early = t.reply("+TOO_EARLY")
            t.send(r.session, ">ASKED early=\(early)")
            return GAME_OK
        case "SECRET":
            let status = withBytes(r.word(1)) { t.pointee.auth_set_secret!(t, r.session, $0, $1) }
            return status == GAME_OK ? GAME_OK : t.reply("-ERR \(status)")
        case "ATTACH":
            let (status, _) = t.attach(r.session, r.word(1))
            return t.reply(status == GAME_OK ? "+OK" : "-ERR \(status)")
        case "TOKEN":
            let (status, token) = t.token(r.session)
            return t.reply(status == GAME_OK ? "+TOKEN \(token)" : "-ERR \(status)")
        case "RESUME":
            let (status, target, next) = t.resume(r.session, r.word(1))
            guard status == GAME_OK else { return t.reply("-ERR \(status)") }
            let (_, back) = t.getInt(target, 1)
            return t.reply("+RESUMED \(target) back=\(back) token=\(next.count)")
        case "SAY":
            return t.reply("+OK")
        default:
            return t.reply("-ERR unknown")
        }
    }
    module.auth = { a, t in
        let r = a.pointee
        let key = text(r.key, r.key_length)
        guard r.status == GAME_OK else { return t.reply("-ERR LOGIN \(r.status) \(key)") }
        let (_, visits) = t.getInt(r.player, 0)
        t.setInt(r.player, 0, visits + 1)
        return t.reply("+WELCOME \(key) flags=\(r.flags) visits=\(visits + 1)")
    }
    module.sessionAway = { session, t in
        let (_, calls) = t.getInt(GAME_GLOBAL_ID, 2)
        t.setInt(GAME_GLOBAL_ID, 2, calls + 1)
    }
    module.sessionBack = { session, t in
        t.setInt(session, 1, 1)
        t.send(session, ">WELCOME_BACK")
    }
    module.sessionClosed = { session, t in
        let (_, calls) = t.getInt(GAME_GLOBAL_ID, 3)
        t.setInt(GAME_GLOBAL_ID, 3, calls + 1)
    }
    return module
}()

@Suite struct FakeHostAuthTests {
    @Test func aLoginIsAnsweredByTheAuthHook() throws {
        let host = try FakeHost(loginModule)
        let alice = host.connect()
        let created = GAME_AUTH_CREATED, guest = GAME_AUTH_GUEST
        #expect(host.send("LOGIN alice", from: alice) == "+WELCOME alice flags=\(created | guest) visits=1")
        #expect(host.events(of: alice) == [">ASKED early=\(GAME_ERR_STATE)"])
        let player = try #require(host.player(key: "alice"))
        #expect(host.player(of: alice.id) == player)
        #expect(host.int("visits", of: player) == 1)
        // A second login from a session holding a player is refused.
        #expect(host.send("LOGIN bob", from: alice) == "-ERR \(GAME_ERR_STATE)")
        // The player is held: another session is refused with EXISTS.
        let other = host.connect()
        #expect(host.send("LOGIN alice", from: other) == "-ERR LOGIN \(GAME_ERR_EXISTS) alice")
    }

    @Test func secretsAreCheckedAndRequiredInSecretMode() throws {
        let host = try FakeHost(loginModule, auth: .secret)
        let a = host.connect()
        #expect(host.send("LOGIN alice", from: a) == "-ERR LOGIN \(GAME_ERR_SECRET_REQUIRED) alice")
        #expect(host.send("LOGIN alice hunter2", from: a) == "+WELCOME alice flags=\(GAME_AUTH_CREATED) visits=1")
        host.disconnect(a)
        let b = host.connect()
        #expect(host.send("LOGIN alice wrong", from: b) == "-ERR LOGIN \(GAME_ERR_BAD_SECRET) alice")
        #expect(host.send("LOGIN alice hunter2", from: b) == "+WELCOME alice flags=0 visits=2")
        // A module may not attach players itself where logins need proof.
        let c = host.connect()
        #expect(host.send("ATTACH carol", from: c) == "-ERR \(GAME_ERR_STATE)")
    }

    @Test func aGuestClaimsItsNameWithASecret() throws {
        let host = try FakeHost(loginModule)
        let a = host.connect()
        host.send("LOGIN alice", from: a)
        #expect(host.send("SECRET pw", from: a) == "+WELCOME alice flags=\(GAME_AUTH_SECRET_SET) visits=2")
        host.disconnect(a)
        let b = host.connect()
        #expect(host.send("ATTACH alice", from: b) == "-ERR \(GAME_ERR_BAD_SECRET)")
        #expect(host.send("LOGIN alice", from: b) == "-ERR LOGIN \(GAME_ERR_BAD_SECRET) alice")
        #expect(host.send("LOGIN alice pw", from: b) == "+WELCOME alice flags=0 visits=3")
    }

    @Test func tokensNameTheirSubject() throws {
        let host = try FakeHost(loginModule, auth: .token(validTokens: ["signed.jwt.alice": "alice"]))
        let a = host.connect()
        #expect(host.send("LOGIN forged.jwt", from: a) == "-ERR LOGIN \(GAME_ERR_BAD_SECRET) ")
        #expect(host.send("LOGIN signed.jwt.alice", from: a)
            == "+WELCOME alice flags=\(GAME_AUTH_VIA_TOKEN | GAME_AUTH_CREATED) visits=1")
        #expect(host.player(key: "alice") != nil)
    }

    @Test func aModuleWithoutAuthIsRefusedInSecretMode() {
        var module = loginModule
        module.auth = nil
        #expect(throws: FakeHostError.self) { try FakeHost(module, auth: .secret) }
    }

    @Test func aDroppedSessionWithATokenWaitsForItsResume() throws {
        let host = try FakeHost(loginModule, limits: FakeLimits(resumeGraceMilliseconds: 10_000))
        let phone = host.connect()
        host.send("LOGIN alice", from: phone)
        let reply = host.send("TOKEN", from: phone)
        let token = String(try #require(reply.split(separator: " ").last))
        #expect(token.utf8.count == Int(GAME_RESUME_TOKEN_LENGTH))
        let session = phone.id
        host.disconnect(phone)
        #expect(host.isAway(session))
        #expect(host.int("away_calls", of: host.globalID) == 1)
        let laptop = host.connect()
        #expect(host.send("RESUME nonsense", from: laptop) == "-ERR \(GAME_ERR_NOT_FOUND)")
        #expect(host.send("RESUME \(token)", from: laptop) == "+RESUMED \(session) back=0 token=22")
        // The connection now serves the resumed session; its fresh session ended.
        #expect(laptop.id == session)
        #expect(!host.isAway(session))
        #expect(host.int("back", of: session) == 1)
        #expect(host.events(of: laptop) == [">WELCOME_BACK"])
        #expect(host.int("closed_calls", of: host.globalID) == 1)
        #expect(host.player(of: session) == host.player(key: "alice"))
        // The token is spent.
        let thief = host.connect()
        #expect(host.send("RESUME \(token)", from: thief) == "-ERR \(GAME_ERR_NOT_FOUND)")
    }

    @Test func aResumeReplacesAConnectionStillServing() throws {
        let host = try FakeHost(loginModule)
        let old = host.connect()
        let token = String(host.send("TOKEN", from: old).split(separator: " ").last!)
        let new = host.connect()
        #expect(host.send("RESUME \(token)", from: new).hasPrefix("+RESUMED"))
        #expect(!old.isConnected)
        #expect(host.events(of: old) == [FakeReplies.replaced])
        #expect(new.id == old.id)
    }

    @Test func anAwaySessionEndsWhenItsGraceRunsOut() throws {
        let host = try FakeHost(loginModule, limits: FakeLimits(resumeGraceMilliseconds: 5_000))
        let phone = host.connect()
        host.send("LOGIN alice", from: phone)
        host.send("TOKEN", from: phone)
        let session = phone.id
        host.disconnect(phone)
        host.advance(milliseconds: 4_999)
        #expect(host.isAway(session))
        host.advance(milliseconds: 1)
        #expect(!host.isLive(session))
        #expect(host.int("closed_calls", of: host.globalID) == 1)
        // The player outlives its session, detached.
        let later = host.connect()
        #expect(host.send("LOGIN alice", from: later).hasPrefix("+WELCOME alice flags=\(GAME_AUTH_GUEST)"))
    }

    @Test func resumeIsOffWithoutAGrace() throws {
        let host = try FakeHost(loginModule, limits: FakeLimits(resumeGraceMilliseconds: 0))
        let a = host.connect()
        #expect(host.send("TOKEN", from: a) == "-ERR \(GAME_ERR_STATE)")
        host.disconnect(a)
        #expect(host.sessionCount == 0)
    }
}

@Suite struct FakeHostAttachTests {
    @Test func aPlayerIsHeldByOneSessionAtATime() throws {
        let host = try FakeHost(loginModule)
        let a = host.connect(), b = host.connect()
        #expect(host.send("ATTACH alice", from: a) == "+OK")
        #expect(host.send("ATTACH alice", from: b) == "-ERR \(GAME_ERR_EXISTS)")
        #expect(host.send("ATTACH bob", from: a) == "-ERR \(GAME_ERR_EXISTS)")
        host.disconnect(a)
        #expect(host.send("ATTACH alice", from: b) == "+OK")
        #expect(host.violations.isEmpty)
    }

    @Test func undoInTheAuthHookTakesTheAttachBack() throws {
        var module = loginModule
        module.auth = { a, t in
            t.undo()
            return t.reply("-ERR changed my mind \(a.pointee.status)")
        }
        let host = try FakeHost(module)
        let alice = host.connect()
        #expect(host.send("LOGIN alice", from: alice) == "-ERR changed my mind 0")
        #expect(host.player(of: alice.id) == nil)
        #expect(host.player(key: "alice") == nil)
    }
}
