import GameABI
import HotswapTesting
import Testing

/// Players with gold, a global round, a session note, and player timers
/// that pay out: what survives a restart.
private let bankModule: FakeModule = {
    var module = testModule(fields: [
        .int(GAME_KIND_PLAYER, "gold"),
        .int(GAME_KIND_GLOBAL, "round"),
        .int(GAME_KIND_SESSION, "note"),
        .int(GAME_KIND_GLOBAL, "closed"),
    ]) { r in
        let t = r.t
        switch r.verb {
        case "ATTACH":
            let (status, player) = t.attach(r.session, r.word(1))
            return t.reply(status == GAME_OK ? "+\(player)" : "-ERR \(status)")
        case "EARN":
            let player = t.playerOf(r.session)
            t.setInt(player, 0, t.getInt(player, 0).1 + (Int64(r.word(1)) ?? 0))
            return t.reply("+OK")
        case "ROUND":
            t.setInt(GAME_GLOBAL_ID, 1, Int64(r.word(1)) ?? 0)
            t.setInt(r.session, 2, 1)
            return t.reply("+OK")
        case "PAYDAY":  // a durable timer on the player
            let (status, _) = t.setTimer(t.playerOf(r.session), "payday", delay: UInt64(r.word(1)) ?? 0)
            return t.reply("+\(status)")
        case "BEEP":  // a session timer: ends with the process
            return t.reply("+\(t.setTimer(r.session, "beep", delay: 10).0)")
        default:
            return t.reply("-ERR unknown")
        }
    }
    module.timer = { e, t in
        if e.pointee.owner >> 56 == UInt64(GAME_KIND_PLAYER) {
            t.setInt(e.pointee.owner, 0, t.getInt(e.pointee.owner, 0).1 + 100)
        }
        return GAME_OK
    }
    module.sessionClosed = { _, t in
        t.setInt(GAME_GLOBAL_ID, 3, t.getInt(GAME_GLOBAL_ID, 3).1 + 1)
    }
    return module
}()

@Suite struct FakeHostRestartTests {
    @Test func aRestartKeepsPlayersAndTheGlobalEntity() throws {
        let host = try FakeHost(bankModule)
        let alice = host.connect(), bob = host.connect()
        let oldPlayer = try #require(game_id(host.send("ATTACH alice", from: alice).dropFirst()))
        host.send("EARN 30", from: alice)
        host.send("ROUND 4", from: bob)
        host.send("PAYDAY 1000", from: alice)
        host.send("BEEP", from: bob)
        #expect(host.pendingTimers == 2)
        host.restart()
        // Every session ended (its hook ran) and was told.
        #expect(!alice.isConnected && !bob.isConnected)
        #expect(host.events(of: alice) == [FakeReplies.shutdown])
        #expect(host.sessionCount == 0)
        #expect(host.int("closed", of: host.globalID) == 2)
        // Players and global fields are kept; player ids are new.
        let player = try #require(host.player(key: "alice"))
        #expect(player != oldPlayer)
        #expect(host.int("gold", of: player) == 30)
        #expect(host.int("gold", of: oldPlayer) == nil)
        #expect(host.int("round", of: host.globalID) == 4)
        // The player's timer is durable; the session's ended with it.
        #expect(host.pendingTimers == 1)
        host.advance(milliseconds: 1000)
        #expect(host.int("gold", of: player) == 130)
        // The record is free to attach again, with its values.
        let again = host.connect()
        #expect(host.send("ATTACH alice", from: again) == "+\(player)")
        #expect(host.violations.isEmpty)
    }
}
