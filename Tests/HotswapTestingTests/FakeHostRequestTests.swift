import GameABI
import HotswapTesting
import Testing

/// Fields of the request-rules module.
private enum F {
    static let total: Int32 = 0   // global int
    static let name: Int32 = 1    // session string, unique
    static let score: Int32 = 2   // session int
}

/// A module exercising the request rules: one reply, unique fields,
/// limits, undo, wrong types and stale ids.
private let rulesModule = testModule(fields: [
    .int(GAME_KIND_GLOBAL, "total"),
    .string(GAME_KIND_SESSION, "name", flags: UInt32(GAME_FIELD_UNIQUE)),
    .int(GAME_KIND_SESSION, "score"),
]) { r in
    let t = r.t
    switch r.verb {
    case "PING":
        return t.reply("+PONG")
    case "ADD":
        let (_, total) = t.getInt(GAME_GLOBAL_ID, F.total)
        t.setInt(GAME_GLOBAL_ID, F.total, total + (Int64(r.word(1)) ?? 0))
        return t.reply("+OK")
    case "TWICE":
        t.reply("+ONE")
        let second = t.reply("+TWO")
        t.send(r.session, ">SECOND \(second)")
        return GAME_OK
    case "SILENT":
        return GAME_OK
    case "FAIL":
        t.setInt(r.session, F.score, 5)
        return GAME_ERR_STATE
    case "NAME":
        let status = t.setString(r.session, F.name, r.word(1))
        return t.reply(status == GAME_OK ? "+OK" : "-ERR \(status)")
    case "WHO":
        let (status, id) = t.find(F.name, r.word(1))
        return t.reply(status == GAME_OK ? "+\(id)" : "-ERR \(status)")
    case "UNDO":
        t.setInt(r.session, F.score, 99)
        t.setInt(GAME_GLOBAL_ID, F.total, 1000)
        t.send(r.session, ">GONE")
        _ = t.createRoom("ghost")
        t.reply("+NOT_KEPT")
        let undone = t.undo()
        let again = t.reply("-ERR nope undo=\(undone)")
        t.send(r.session, ">AFTER \(again)")
        return GAME_OK
    case "LIMITS":
        var out: [Int32] = []
        out.append(t.send(r.session, ">" + String(repeating: "x", count: Int(GAME_MAX_OUTPUT_LINE))))
        out.append(t.send(r.session, ">line\nfeed"))
        out.append(t.send(r.session, ">nul\u{0}byte"))
        out.append(t.send(r.session, "no marker"))
        out.append(t.createRoom(String(repeating: "r", count: Int(GAME_MAX_ROOM_NAME) + 1)).0)
        out.append(t.setString(r.session, F.name, String(repeating: "n", count: Int(GAME_MAX_STRING) + 1)))
        out.append(t.attach(r.session, String(repeating: "k", count: Int(GAME_MAX_PLAYER_KEY) + 1)).0)
        out.append(t.reply("+bad\r\nline"))
        return t.reply("+" + out.map(String.init).joined(separator: " "))
    case "TYPES":
        let wrongType = t.getString(r.session, F.score).0
        let wrongKind = t.getInt(GAME_GLOBAL_ID, F.score).0
        let noField = t.getInt(r.session, 7).0
        let stale = t.getInt(game_id(r.word(1)) ?? 0, F.score).0
        let forged = t.getInt(0xFF00_0000_0000_0001, F.score).0
        return t.reply("+\(wrongType) \(wrongKind) \(noField) \(stale) \(forged)")
    case "JOIN":
        return t.reply("+\(t.enter(r.word(1), r.session))")
    case "QUIT":
        t.reply("+BYE")
        t.send(r.session, ">CLOSING")
        return t.close(r.session)
    default:
        return t.reply("-ERR unknown")
    }
}

@Suite struct FakeHostRequestTests {
    @Test func aRequestGetsTheModulesReply() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect()
        #expect(host.send("PING", from: alice) == "+PONG")
        #expect(host.send("ADD 3", from: alice) == "+OK")
        #expect(host.int("total", of: host.globalID) == 3)
        #expect(host.moduleName == "test" && host.moduleVersion == "1")
        #expect(host.violations.isEmpty)
    }

    @Test func aSecondReplyIsRefusedWithState() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect()
        #expect(host.send("TWICE", from: alice) == "+ONE")
        #expect(host.events(of: alice) == [">SECOND \(GAME_ERR_STATE)"])
        #expect(host.violations.count == 1)
        #expect(host.violations.first?.contains("second reply") == true)
    }

    @Test func noReplyGetsTheEnginesLine() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect()
        #expect(host.send("SILENT", from: alice) == FakeReplies.noReply)
        #expect(host.send("FAIL", from: alice) == FakeReplies.moduleFailed)
        // An error status keeps the call's writes, as in the engine.
        #expect(host.int("score", of: alice.id) == 5)
        #expect(host.violations.count == 2)
    }

    @Test func uniqueFieldsRefuseATakenValue() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect(), bob = host.connect()
        #expect(host.send("NAME alice", from: alice) == "+OK")
        #expect(host.send("NAME alice", from: bob) == "-ERR \(GAME_ERR_EXISTS)")
        #expect(host.send("WHO alice", from: bob) == "+\(alice.id)")
        #expect(host.send("WHO carol", from: bob) == "-ERR \(GAME_ERR_NOT_FOUND)")
        // Its own value again is fine; a closed session's value is free.
        #expect(host.send("NAME alice", from: alice) == "+OK")
        host.disconnect(alice)
        #expect(host.send("NAME alice", from: bob) == "+OK")
        #expect(host.string("name", of: bob.id) == "alice")
        #expect(host.violations.isEmpty)
    }

    @Test func limitsAndBadBytesAreRefused() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect()
        let bad = GAME_ERR_BAD_ARGUMENT
        #expect(host.send("LIMITS", from: alice) == "+\(Array(repeating: String(bad), count: 8).joined(separator: " "))")
        #expect(host.events(of: alice).isEmpty)
        #expect(host.violations.count == 8)
        #expect(host.violations.allSatisfy { $0.contains("GAME_ERR_BAD_ARGUMENT") })
    }

    @Test func undoDropsTheCallsWorkThenTheCallReplies() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect()
        #expect(host.send("UNDO", from: alice) == "-ERR nope undo=0")
        #expect(host.int("score", of: alice.id) == 0)
        #expect(host.int("total", of: host.globalID) == 0)
        #expect(host.room(named: "ghost") == nil)
        // The event sent before the undo is gone; the one after is kept.
        #expect(host.events(of: alice) == [">AFTER 0"])
        #expect(host.violations.isEmpty)
    }

    @Test func wrongTypesKindsAndStaleIdsAreRefused() throws {
        let host = try FakeHost(rulesModule)
        let gone = host.connect()
        let staleID = gone.id
        host.disconnect(gone)
        let alice = host.connect()
        // The slot is reused with a new generation: the old id is refused.
        #expect(alice.id != staleID)
        let expected = [GAME_ERR_BAD_TYPE, GAME_ERR_BAD_FIELD, GAME_ERR_BAD_FIELD, GAME_ERR_BAD_SESSION, GAME_ERR_BAD_ARGUMENT]
        #expect(host.send("TYPES \(staleID)", from: alice) == "+" + expected.map(String.init).joined(separator: " "))
    }

    @Test func roomCapacityAndCountLimits() throws {
        let host = try FakeHost(rulesModule, limits: FakeLimits(maxSessions: 3, maxRooms: 1, maxRoomMembers: 1))
        let a = host.connect(), b = host.connect(), c = host.connect()
        #expect(host.send("JOIN lobby", from: a) == "+0")
        #expect(host.send("JOIN lobby", from: b) == "+\(GAME_ERR_LIMIT)")
        #expect(host.send("JOIN other", from: c) == "+\(GAME_ERR_LIMIT)")
        #expect(host.members(of: host.room(named: "lobby")!) == [a.id])
        let refused = host.connect()
        #expect(!refused.isConnected)
        #expect(host.events(of: refused) == [FakeReplies.serverFull])
        #expect(host.send("PING", from: refused) == "")
    }

    @Test func closeSessionRunsAfterTheCallAndEmptyRoomsGo() throws {
        let host = try FakeHost(rulesModule)
        let alice = host.connect()
        #expect(host.send("JOIN lobby", from: alice) == "+0")
        #expect(host.room(named: "lobby") != nil)
        #expect(host.send("QUIT", from: alice) == "+BYE")
        #expect(!alice.isConnected)
        #expect(host.events(of: alice) == [">CLOSING"])
        #expect(host.room(named: "lobby") == nil)
        #expect(host.sessionCount == 0)
    }
}
