import GameABI
import HotswapTesting
import Testing

/// A module with timers and ticks: timer events are reported to the
/// owning session (or the room's members), ticks to the room.
private let clockModule: FakeModule = {
    var module = testModule(fields: [.int(GAME_KIND_GLOBAL, "watcher")]) { r in
        let t = r.t
        switch r.verb {
        case "TIMER":  // TIMER me|room|global delay period event [payload]
            let owner: game_id = switch r.word(1) {
            case "room": t.roomOf(r.session)
            case "global": GAME_GLOBAL_ID
            default: r.session
            }
            let (status, id) = t.setTimer(owner, r.word(4), payload: r.rest(5), delay: UInt64(r.word(2)) ?? 0,
                                          period: UInt64(r.word(3)) ?? 0)
            return t.reply(status == GAME_OK ? "+\(id)" : "-ERR \(status)")
        case "CANCEL":
            return t.reply("+\(t.cancelTimer(game_id(r.word(1)) ?? 0))")
        case "WATCH":
            t.setInt(GAME_GLOBAL_ID, 0, Int64(bitPattern: r.session))
            return t.reply("+OK")
        case "JOIN":
            return t.reply("+\(t.enter(r.word(1), r.session))")
        case "LEAVE":
            return t.reply("+\(t.pointee.room_leave!(t, r.session))")
        case "TICK":
            return t.reply("+\(t.tickRate(t.roomOf(r.session), UInt32(r.word(1)) ?? 0))")
        case "BATCH":
            return t.reply("+\(t.batching(t.roomOf(r.session), r.word(1) == "on"))")
        case "SAY":
            t.broadcast(t.roomOf(r.session), ">SAID \(r.rest(1))")
            return t.reply("+OK")
        case "NOW":
            return t.reply("+\(t.pointee.now_ms!(t))")
        case "SETTING":
            let (status, value) = t.setting(r.word(1))
            return t.reply(status == GAME_OK ? "+\(value)" : "-ERR \(status)")
        default:
            return t.reply("-ERR unknown")
        }
    }
    module.timer = { e, t in
        let report = ">TIMER \(text(e.pointee.event, e.pointee.event_length)) [\(text(e.pointee.payload, e.pointee.payload_length))] late=\(e.pointee.late_ms) fired=\(e.pointee.fired) at=\(t.pointee.now_ms!(t))"
        switch Int32(e.pointee.owner >> 56) {
        case GAME_KIND_ROOM: t.broadcast(e.pointee.owner, report)
        case GAME_KIND_SESSION: t.send(e.pointee.owner, report)
        default: t.send(game_id(bitPattern: t.getInt(GAME_GLOBAL_ID, 0).1), report)
        }
        // A timer that cancels itself stops its period.
        if text(e.pointee.event, e.pointee.event_length) == "once-more" { t.cancelTimer(e.pointee.timer) }
        return GAME_OK
    }
    module.tick = { k, t in
        t.broadcast(k.pointee.room, ">TICK n=\(k.pointee.tick) step=\(k.pointee.step_ms) dt=\(k.pointee.since_last_ms) skipped=\(k.pointee.skipped) at=\(t.pointee.now_ms!(t))")
        return GAME_OK
    }
    return module
}()

@Suite struct FakeHostTimeTests {
    @Test func aOneShotTimerFiresOnceAtItsDueTime() throws {
        let host = try FakeHost(clockModule)
        let alice = host.connect()
        #expect(host.send("TIMER me 250 0 ding hello world", from: alice).hasPrefix("+"))
        host.advance(milliseconds: 249)
        #expect(host.events(of: alice).isEmpty)
        host.advance(milliseconds: 1)
        #expect(host.events(of: alice) == [">TIMER ding [hello world] late=0 fired=1 at=250"])
        host.advance(milliseconds: 10_000)
        #expect(host.events(of: alice).isEmpty)
        #expect(host.pendingTimers == 0)
        #expect(host.send("NOW", from: alice) == "+10250")
    }

    @Test func aPeriodicTimerKeepsItsGridAndCancelStopsIt() throws {
        let host = try FakeHost(clockModule)
        let alice = host.connect()
        let reply = host.send("TIMER me 100 100 beat", from: alice)
        let id = try #require(game_id(reply.dropFirst()))
        host.advance(milliseconds: 350)
        #expect(host.events(of: alice) == [
            ">TIMER beat [] late=0 fired=1 at=100", ">TIMER beat [] late=0 fired=2 at=200", ">TIMER beat [] late=0 fired=3 at=300",
        ])
        #expect(host.send("CANCEL \(id)", from: alice) == "+0")
        #expect(host.send("CANCEL \(id)", from: alice) == "+\(GAME_ERR_NOT_FOUND)")
        host.advance(milliseconds: 1000)
        #expect(host.events(of: alice).isEmpty)
        #expect(host.violations.isEmpty)
    }

    @Test func timersFireInDueThenSetOrder() throws {
        let host = try FakeHost(clockModule)
        let alice = host.connect()
        host.send("TIMER me 20 0 b", from: alice)
        host.send("TIMER me 10 0 a", from: alice)
        host.send("TIMER me 20 0 c", from: alice)
        host.send("TIMER me 50 100 self-cancel-none", from: alice)
        host.send("TIMER me 5 5 once-more", from: alice)
        host.advance(milliseconds: 60)
        let fired = host.events(of: alice).map { $0.split(separator: " ")[1] }
        #expect(fired == ["once-more", "a", "b", "c", "self-cancel-none"])
    }

    @Test func timersEndWithTheirOwner() throws {
        let host = try FakeHost(clockModule, limits: FakeLimits(resumeGraceMilliseconds: 0))
        let alice = host.connect(), bob = host.connect(), watcher = host.connect()
        host.send("WATCH", from: watcher)
        host.send("TIMER me 100 0 mine", from: alice)
        host.send("JOIN lobby", from: bob)
        host.send("TIMER room 100 0 roomy", from: bob)
        host.send("TIMER global 100 0 everyone", from: alice)
        #expect(host.pendingTimers == 3)
        host.disconnect(alice)  // a session's timers end with it
        #expect(host.send("LEAVE", from: bob) == "+0")  // the room is destroyed, its timers too
        #expect(host.pendingTimers == 1)
        host.advance(milliseconds: 100)
        #expect(host.events(of: watcher) == [">TIMER everyone [] late=0 fired=1 at=100"])
        #expect(host.events(of: bob).isEmpty)
    }

    @Test func timerArgumentsAreChecked() throws {
        let host = try FakeHost(clockModule, limits: FakeLimits(maxTimersPerOwner: 2))
        let alice = host.connect()
        #expect(host.send("TIMER me 1 0 Bad-Event", from: alice) == "-ERR \(GAME_ERR_BAD_ARGUMENT)")
        #expect(host.send("TIMER me 1 0 \(String(repeating: "e", count: 33))", from: alice) == "-ERR \(GAME_ERR_BAD_ARGUMENT)")
        #expect(host.send("TIMER me 1 0 ok \(String(repeating: "p", count: 257))", from: alice) == "-ERR \(GAME_ERR_BAD_ARGUMENT)")
        #expect(host.send("TIMER me \(GAME_MAX_TIMER_DELAY_MS + 1) 0 ok", from: alice) == "-ERR \(GAME_ERR_BAD_ARGUMENT)")
        #expect(host.send("TIMER room 1 0 ok", from: alice) == "-ERR \(GAME_ERR_BAD_SESSION)")  // no room: owner 0
        #expect(host.send("TIMER me 1 0 one", from: alice).hasPrefix("+"))
        #expect(host.send("TIMER me 1 0 two", from: alice).hasPrefix("+"))
        #expect(host.send("TIMER me 1 0 three", from: alice) == "-ERR \(GAME_ERR_LIMIT)")
        #expect(host.violations.count == 6)
    }

    @Test func aModuleWithoutTimerExportCannotSetOne() throws {
        var module = clockModule
        module.timer = nil
        let host = try FakeHost(module)
        let alice = host.connect()
        #expect(host.send("TIMER me 10 0 x", from: alice) == "-ERR \(GAME_ERR_STATE)")
    }

    @Test func roomsTickAtTheirRateWithAFixedStep() throws {
        let host = try FakeHost(clockModule)
        let alice = host.connect()
        host.send("JOIN arena", from: alice)
        #expect(host.send("TICK 10", from: alice) == "+0")
        host.advance(milliseconds: 1000)
        let ticks = host.events(of: alice)
        #expect(ticks.count == 10)
        #expect(ticks.first == ">TICK n=1 step=100 dt=100 skipped=0 at=100")
        #expect(ticks.last == ">TICK n=10 step=100 dt=100 skipped=0 at=1000")
        #expect(host.send("TICK 60", from: alice) == "+0")
        host.advance(milliseconds: 1000)
        let fast = host.events(of: alice)
        #expect(fast.count == 60)
        #expect(fast.first?.hasPrefix(">TICK n=1 step=16 dt=16") == true)
        #expect(host.send("TICK 61", from: alice) == "+\(GAME_ERR_BAD_ARGUMENT)")
        #expect(host.send("TICK 0", from: alice) == "+0")
        host.advance(milliseconds: 1000)
        #expect(host.events(of: alice).isEmpty)
    }

    @Test func batchingHoldsARoomsEventsUntilItsTick() throws {
        let host = try FakeHost(clockModule)
        let alice = host.connect(), bob = host.connect()
        host.send("JOIN arena", from: alice)
        host.send("JOIN arena", from: bob)
        #expect(host.send("BATCH on", from: alice) == "+\(GAME_ERR_STATE)")  // needs a tick rate
        host.send("TICK 20", from: alice)
        #expect(host.send("BATCH on", from: alice) == "+0")
        host.send("SAY one", from: alice)
        host.send("SAY two", from: alice)
        #expect(host.events(of: bob).isEmpty)
        host.advance(milliseconds: 50)
        #expect(host.events(of: bob) == [">SAID one", ">SAID two", ">TICK n=1 step=50 dt=50 skipped=0 at=50"])
        // A reply writes what was held before it.
        host.send("SAY three", from: bob)
        #expect(host.events(of: bob) == [">SAID three"])
        #expect(!host.events(of: alice).contains(">SAID three"))
        host.advance(milliseconds: 50)
        #expect(host.events(of: alice) == [">SAID three", ">TICK n=2 step=50 dt=50 skipped=0 at=100"])
    }

    @Test func settingsComeFromTheHost() throws {
        let host = try FakeHost(clockModule, settings: ["mode": "ranked"])
        let alice = host.connect()
        #expect(host.send("SETTING mode", from: alice) == "+ranked")
        #expect(host.send("SETTING other", from: alice) == "-ERR \(GAME_ERR_NOT_FOUND)")
    }
}
