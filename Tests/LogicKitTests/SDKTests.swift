import GameABI
import HotswapTesting
import LogicKit
import Testing

/// A small game that exercises the SDK's parts: typed fields, argument
/// takers and their usage errors, a refusal that undoes what came before it,
/// room hooks and capacity, events and timers.
enum Tally: Game {
    struct Fields: LoginFields {
        let name: SessionField<String>
        let nameKey: SessionField<String>
        let loginName: SessionField<String>
        let count: SessionField<Int>
        let total: RoomField<Int>
        let best: PlayerField<Int>
        let rings: RoomField<Int>

        init(_ s: inout Schema) {
            name = s.field("name")
            nameKey = s.field("name_key", unique: true)
            loginName = s.field("login_name")
            count = s.field("count", default: 5)
            total = s.field("total")
            best = s.field("best")
            rings = s.field("rings")
        }
    }

    static let name: StaticString = "tally"
    static let version: StaticString = "1.0.0"
    static let roomCapacity = 2
    static let commands: [Command<Tally>] = [
        .ping, .help, .login, .join, .leave, .who,
        // ADD n: adds n to the count and the room's total, then refuses a
        // count over 10, which must leave no trace.
        Command("ADD", "n", needs: .room) { c, args throws(Refusal) in
            let n = try args.int(in: 1...9)
            try args.end()
            c.me.count += n
            c.me.room?.total += n
            c.me.room?.broadcast(">ADDED \(c.me.text(\.name)) \(n)")
            guard c.me.count <= 10 else { throw Refusal("TOO_MANY", "the count stops at 10") }
            if let player = c.me.player, c.me.count > player.best { player.best = c.me.count }
            c.reply("+COUNT \(c.me.count)")
        },
        Command("ECHO", "text") { c, args throws(Refusal) in c.reply("+ECHO \(try args.rest())") },
        Command("RING", "ms", needs: .room) { c, args throws(Refusal) in
            let ms = try args.int(in: 1...60_000)
            guard let room = c.me.room else { throw Refusal.notInRoom }
            c.after(ms, "ring", on: room, payload: "\(ms)")
            c.reply("+OK")
        },
    ]

    static func joined(_ c: Context<Tally>, _ me: Session, _ room: Room, reply: inout Line) throws(Refusal) {
        reply.append(line: " members \(room.memberCount)")
    }

    static func timer(_ c: Context<Tally>, _ timer: TimerFired) throws(Refusal) {
        guard timer.event == "ring" else { return }
        let room = c.room(timer.owner)
        room.rings += 1
        room.broadcast(">RING \(timer.int(0) ?? -1)")
    }
}

@Suite struct SDKTests {
    static func host() throws -> FakeHost { try FakeHost(FakeModule(game: Tally.self)) }

    @Test func fieldsAreDeclaredOnceInOrderWithTheirDefaults() throws {
        let host = try Self.host()
        let alice = host.connect()
        #expect(host.int("count", of: alice.id) == 5)
        #expect(host.send("LOGIN alice", from: alice).hasPrefix("+WELCOME alice resume "))
        #expect(host.string("name_key", of: alice.id) == "alice")
    }

    @Test func argumentsThrowTheUsageAndHelpIsGenerated() throws {
        let host = try Self.host()
        let alice = host.connect()
        #expect(host.send("help", from: alice)
            == "+HELP PING | LOGIN name [secret] | JOIN room | LEAVE | WHO | ADD n | ECHO text | RING ms")
        #expect(host.send("ECHO", from: alice) == "-ERR SYNTAX usage: ECHO text")
        #expect(host.send("ADD 3", from: alice) == "-ERR NOT_LOGGED_IN LOGIN name first")
        _ = host.send("LOGIN alice", from: alice)
        #expect(host.send("ADD 3", from: alice) == "-ERR NOT_IN_ROOM JOIN a room first")
        _ = host.send("JOIN r", from: alice)
        #expect(host.send("ADD 0", from: alice) == "-ERR SYNTAX usage: ADD n")
        #expect(host.send("ADD 3 4", from: alice) == "-ERR SYNTAX usage: ADD n")
        #expect(host.send("ADD x", from: alice) == "-ERR SYNTAX usage: ADD n")
        #expect(host.violations.isEmpty)
    }

    @Test func aThrownRefusalUndoesEverythingTheHandlerDid() throws {
        let host = try Self.host()
        let alice = host.connect(), bob = host.connect()
        _ = host.send("LOGIN alice", from: alice)
        _ = host.send("LOGIN bob", from: bob)
        #expect(host.send("JOIN r", from: alice) == "+JOINED r members 1")
        #expect(host.send("JOIN r", from: bob) == "+JOINED r members 2")
        #expect(host.send("ADD 4", from: alice) == "+COUNT 9")
        #expect(host.events(of: bob) == [">ADDED alice 4"])
        // 9 + 2 > 10: the count, the room's total, the event and the best
        // written before the refusal are all undone.
        #expect(host.send("ADD 2", from: alice) == "-ERR TOO_MANY the count stops at 10")
        let room = try #require(host.room(named: "r"))
        #expect(host.int("count", of: alice.id) == 9)
        #expect(host.int("total", of: room) == 4)
        #expect(host.events(of: bob).isEmpty)
        #expect(host.int("best", of: try #require(host.player(key: "alice"))) == 9)
        #expect(host.violations.isEmpty)
    }

    @Test func roomCapacityAndAJoinRefusedInPlace() throws {
        let host = try Self.host()
        var sessions: [FakeSession] = []
        for name in ["a", "b", "c"] {
            let session = host.connect()
            _ = host.send("LOGIN \(name)", from: session)
            sessions.append(session)
        }
        _ = host.send("JOIN one", from: sessions[0])
        _ = host.send("JOIN one", from: sessions[1])
        _ = host.send("JOIN two", from: sessions[2])
        #expect(host.send("JOIN one", from: sessions[2]) == "-ERR ROOM_FULL that room is full")
        // Still in its own room, which still exists.
        #expect(host.room(of: sessions[2].id) == host.room(named: "two"))
        #expect(host.send("WHO", from: sessions[0]) == "+WHO a b")
    }

    @Test func linesMakeInterpolatedTextSafe() throws {
        let host = try Self.host()
        let alice = host.connect()
        #expect(host.send("ECHO hi\u{7}there  friend", from: alice) == "+ECHO hi there  friend")
        let long = String(repeating: "x", count: 3000)
        #expect(host.send("ECHO \(long)", from: alice) == "+ECHO \(long)")
        let line: Line = "+A \(42) \("tab\there") \(-7)"
        #expect(line.description == "+A 42 tab here -7")
    }

    @Test func timersAreDataWithAPayload() throws {
        let host = try Self.host()
        let alice = host.connect()
        _ = host.send("LOGIN alice", from: alice)
        _ = host.send("JOIN r", from: alice)
        #expect(host.send("RING 250", from: alice) == "+OK")
        host.advance(milliseconds: 249)
        #expect(host.events(of: alice).isEmpty)
        host.advance(milliseconds: 1)
        #expect(host.events(of: alice) == [">RING 250"])
        #expect(host.int("rings", of: try #require(host.room(named: "r"))) == 1)
    }
}
