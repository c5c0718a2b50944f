import FaultGuard
import GameABI
import Testing

@testable import HotswapEngine

/// The timer table and the clock on virtual time: no loop, no sleeps.
/// A recorder stands where the module call would be.
@Suite struct TimerClockTests {
    /// What the clock handed to the "module".
    final class Recorder: TimeCaller {
        var timers: [(id: UInt64, owner: UInt64, event: String, payload: String, lateMs: UInt64, fired: UInt64, at: UInt64)] = []
        var ticks: [(room: UInt64, tick: UInt64, skipped: UInt32, step: UInt32, at: UInt64)] = []
        var outcome: Int32 = FG_OK
        /// Virtual time, in ns; `work` is added to it by every call.
        var now: UInt64 = 1_000_000_000
        var work: UInt64 = 0
        var onTimer: ((UnsafePointer<game_timer_event>) -> Void)?

        func fireTimer(_ event: UnsafePointer<game_timer_event>) -> Int32 {
            let e = event.pointee
            let name = String(decoding: UnsafeRawBufferPointer(start: e.event, count: e.event_length), as: UTF8.self)
            let payload = String(decoding: UnsafeRawBufferPointer(start: e.payload, count: e.payload_length), as: UTF8.self)
            timers.append((e.timer, e.owner, name, payload, e.late_ms, e.fired, now))
            onTimer?(event)
            now += work
            return outcome
        }

        func tick(_ tick: UnsafePointer<game_tick>) -> Int32 {
            let k = tick.pointee
            ticks.append((k.room, k.tick, k.skipped, k.step_ms, now))
            now += work
            return outcome
        }

        func finishTimeCall(_ outcome: Int32, export: String) {}
    }

    private func make(budgetMs: Int = 5, maxTimers: Int = 1000, perOwner: Int = 1000)
        -> (World, TimerClock, Recorder)
    {
        let world = World(limits: World.Limits(maxRooms: 100, maxRoomMembers: 10, maxTimers: maxTimers,
                                               maxTimersPerOwner: perOwner))
        let recorder = Recorder()
        let clock = TimerClock(world: world, caller: recorder, budgetMilliseconds: budgetMs) { [unowned recorder] in
            recorder.now
        }
        return (world, clock, recorder)
    }

    private func set(_ world: World, _ event: String, owner: GameID = .global, delayMs: UInt64, periodMs: UInt64 = 0,
                     now: UInt64, payload: String = "") throws -> GameID
    {
        try Array(event.utf8).withUnsafeBytes { e in
            try Array(payload.utf8).withUnsafeBytes { p in
                try world.setTimer(owner: owner, event: e, payload: p, delayMilliseconds: delayMs,
                                   periodMilliseconds: periodMs, now: now)
            }
        }
    }

    /// Advances virtual time to `time` in 1 ms steps, firing as the loop would.
    private func run(_ clock: TimerClock, _ recorder: Recorder, until time: UInt64, step: UInt64 = 1_000_000) {
        while recorder.now < time {
            recorder.now += step
            clock.fireDue()
        }
    }

    @Test func timersFireInDeadlineOrderWithTheirPayloads() throws {
        let (world, clock, recorder) = make()
        let start = recorder.now
        _ = try set(world, "c", delayMs: 30, now: start, payload: "three")
        _ = try set(world, "a", delayMs: 10, now: start, payload: "one")
        _ = try set(world, "b", delayMs: 20, now: start, payload: "two")
        // Two with the same deadline fire in the order they were set.
        _ = try set(world, "b2", delayMs: 20, now: start)
        run(clock, recorder, until: start + 50_000_000)
        #expect(recorder.timers.map(\.event) == ["a", "b", "b2", "c"])
        #expect(recorder.timers.map(\.payload) == ["one", "two", "", "three"])
        #expect(recorder.timers.allSatisfy { $0.lateMs == 0 && $0.fired == 1 })
        #expect(world.timers.timerCount == 0)
        #expect(clock.counters.timersFired == 4)
    }

    /// Next = due + period: 10,000 periods of a 7 ms timer, with calls that
    /// take 3 ms and wake-ups that come up to 0.9 ms late, end exactly on
    /// the grid (drift 0, well under the 1 ms asked for).
    @Test func aPeriodicTimerDoesNotDrift() throws {
        let (world, clock, recorder) = make()
        let start = recorder.now
        _ = try set(world, "beat", delayMs: 7, periodMs: 7, now: start)
        recorder.work = 3_000_000
        var jitter = SplitMix(state: 7)
        while recorder.timers.count < 10_000 {
            let due = world.timers.nextDue!
            // The loop wakes at the deadline, or a little after it.
            recorder.now = max(recorder.now, due + jitter.next() % 900_000)
            clock.fireDue()
        }
        let last = recorder.timers.last!
        #expect(last.fired == 10_000)
        let grid = start + 7_000_000 * 10_000
        #expect(last.at >= grid && last.at - grid < 1_000_000, "fired at \(last.at - grid) ns past its grid point")
        #expect(world.timers.nextDue == grid + 7_000_000)
    }

    /// A stall: a periodic timer fires once and comes back on its grid
    /// (no burst of catch-up calls); a tick runs at most 3 catch-up ticks
    /// and skips the rest, counted, still numbering them.
    @Test func afterAStallTimersCoalesceAndTicksCatchUpAtMostThree() throws {
        let (world, clock, recorder) = make(budgetMs: 1000)
        let start = recorder.now
        let room = try Array("r".utf8).withUnsafeBytes { try world.createRoom(named: $0) }
        try world.setTickRate(room, rate: 20, now: start)
        _ = try set(world, "beat", delayMs: 10, periodMs: 10, now: start)
        run(clock, recorder, until: start + 200_000_000)
        let ticksBefore = recorder.ticks.count
        let beatsBefore = recorder.timers.count
        #expect(ticksBefore >= 3)
        // One second with the loop stuck.
        recorder.now += 1_000_000_000
        clock.fireDue()
        let burst = recorder.ticks[ticksBefore...]
        #expect(burst.count == 4, "1 due tick + 3 catch-up ticks")
        #expect(burst.first!.skipped > 0)
        #expect(clock.counters.ticksSkipped == Int(burst.first!.skipped))
        // Numbers count the skipped ticks: consecutive after the skip.
        let numbers = burst.map(\.tick)
        #expect(numbers == Array(numbers.first!...(numbers.first! + 3)))
        #expect(numbers.first! == recorder.ticks[ticksBefore - 1].tick + 1 + UInt64(burst.first!.skipped))
        #expect(burst.allSatisfy { $0.step == 50 })
        #expect(recorder.timers.count == beatsBefore + 1, "the periodic timer fired once for the stall")
        #expect(recorder.timers.last!.lateMs >= 990)
        #expect(world.timers.nextDue! > recorder.now)
    }

    /// Everything due in one turn shares the budget: the rest waits for
    /// the next turn, oldest first.
    @Test func theBudgetSlicesATurnAndTheRestComesNext() throws {
        let (world, clock, recorder) = make(budgetMs: 5)
        let start = recorder.now
        for index in 0..<100 { _ = try set(world, "t\(index)", delayMs: 1, now: start) }
        recorder.work = 1_000_000
        recorder.now = start + 2_000_000
        clock.fireDue()
        #expect(recorder.timers.count == 5)
        #expect(clock.counters.budgetExhausted == 1)
        clock.fireDue()
        #expect(recorder.timers.count == 10)
        #expect(recorder.timers.map(\.event).prefix(10) == ArraySlice((0..<10).map { "t\($0)" }))
    }

    @Test func aTimerEndsWithItsOwnerAndCancelledIdsStayStale() throws {
        let (world, clock, recorder) = make()
        let now = recorder.now
        let peer = RecordingPeer()
        let session = world.openSession(peer: peer)
        let room = try Array("r".utf8).withUnsafeBytes { try world.createRoom(named: $0) }
        try world.join(session, room)
        let mine = try set(world, "mine", owner: session, delayMs: 5, now: now)
        _ = try set(world, "ours", owner: room, delayMs: 5, now: now)
        try world.setTickRate(room, rate: 10, now: now)
        let global = try set(world, "kept", delayMs: 5, now: now)
        #expect(world.timers.timerCount == 3)
        #expect(world.timers.tickingRooms == 1)
        world.closeSession(session)
        #expect(world.roomCount == 0)
        #expect(world.timers.timerCount == 1)
        #expect(world.timers.tickingRooms == 0)
        #expect(throws: EngineError.notFound) { try world.cancelTimer(mine) }
        try world.cancelTimer(global)
        #expect(throws: EngineError.notFound) { try world.cancelTimer(global) }
        // A new timer in the freed slot has a new id; the old one stays stale.
        let next = try set(world, "next", delayMs: 5, now: now)
        #expect(next != global)
        #expect(throws: EngineError.notFound) { try world.cancelTimer(global) }
        run(clock, recorder, until: now + 20_000_000)
        #expect(recorder.timers.map(\.event) == ["next"])
        #expect(recorder.ticks.isEmpty)
    }

    @Test func limitsRefuseAFloodWithGameErrLimit() throws {
        let (world, _, recorder) = make(maxTimers: 10, perOwner: 4)
        let peer = RecordingPeer()
        let a = world.openSession(peer: peer), b = world.openSession(peer: peer)
        for _ in 0..<4 { _ = try set(world, "x", owner: a, delayMs: 1000, now: recorder.now) }
        #expect(throws: EngineError.limit) { try set(world, "x", owner: a, delayMs: 1000, now: recorder.now) }
        for _ in 0..<4 { _ = try set(world, "x", owner: b, delayMs: 1000, now: recorder.now) }
        for _ in 0..<2 { _ = try set(world, "x", delayMs: 1000, now: recorder.now) }
        #expect(throws: EngineError.limit) { try set(world, "x", delayMs: 1000, now: recorder.now) }
        #expect(world.timers.timerCount == 10)
        #expect(throws: EngineError.badArgument) { try set(world, "UPPER", delayMs: 1, now: recorder.now) }
        #expect(throws: EngineError.badArgument) { try set(world, "", delayMs: 1, now: recorder.now) }
        #expect(throws: EngineError.badSession) { try set(world, "x", owner: GameID(raw: 0), delayMs: 1, now: recorder.now) }
    }

    /// A call that faults takes back the timers it set and cancelled, the
    /// one being fired included.
    @Test func aFaultedCallTakesBackItsTimers() throws {
        let (world, clock, recorder) = make()
        let start = recorder.now
        let other = try set(world, "other", delayMs: 50, now: start)
        let periodic = try set(world, "beat", delayMs: 5, periodMs: 5, now: start)
        recorder.onTimer = { [unowned world] event in
            world.beginJournal()
            _ = try? Array("ghost".utf8).withUnsafeBytes { e in
                try world.setTimer(owner: .global, event: e, payload: UnsafeRawBufferPointer(start: nil, count: 0),
                                   delayMilliseconds: 1, periodMilliseconds: 0, now: start)
            }
            try? world.cancelTimer(other)
            try? world.cancelTimer(GameID(raw: event.pointee.timer))
            world.rollBackJournal()
        }
        recorder.outcome = FG_FAULT
        recorder.now = start + 5_000_000
        clock.fireDue()
        #expect(world.timers.timerCount == 2)
        #expect(clock.counters.faults == 1)
        recorder.onTimer = nil
        recorder.outcome = FG_OK
        run(clock, recorder, until: start + 60_000_000)
        let events = recorder.timers.map(\.event)
        #expect(!events.contains("ghost"))
        #expect(events.contains("other"))
        #expect(events.filter { $0 == "beat" }.count >= 10)
        try world.cancelTimer(periodic)
    }

    /// The handoff section: every slot where it was, deadlines as time
    /// left, and a table restored from it fires the same timers.
    @Test func theTimeSectionRoundTripsAndRestoresDeadlines() throws {
        let (world, _, recorder) = make()
        let now = recorder.now
        let stale = try set(world, "gone", delayMs: 5, now: now)
        try world.cancelTimer(stale)
        let a = try set(world, "a", delayMs: 100, now: now, payload: "pay")
        let b = try set(world, "b", delayMs: 20, periodMs: 20, now: now)
        let section = world.timers.handoff(now: now + 10_000_000, counters: TimerClock.Counters(timersFired: 3),
                                           batchingRooms: [])
        var writer = HandoffWriter(capacity: 64)
        section.encode(into: &writer)
        var reader = HandoffReader(writer.bytes)
        let decoded = try TimeHandoff(from: &reader, format: HandoffFormat.current)
        #expect(decoded == section)
        try decoded.validate()

        let (restored, clock, recorder2) = make()
        try restored.timers.restore(decoded, now: recorder2.now) { _ in true }
        #expect(restored.timers.timerCount == 2)
        try restored.cancelTimer(b)
        #expect(throws: EngineError.notFound) { try restored.cancelTimer(stale) }
        run(clock, recorder2, until: recorder2.now + 89_000_000)
        #expect(recorder2.timers.isEmpty, "a had 90 ms left")
        run(clock, recorder2, until: recorder2.now + 2_000_000)
        #expect(recorder2.timers.map(\.event) == ["a"])
        #expect(recorder2.timers.first?.id == a.raw)
        #expect(recorder2.timers.first?.payload == "pay")
    }

    /// A handed-over section that would make the clock's arithmetic trap
    /// later is refused when it is read, not after the restore.
    @Test func aTimeSectionThatCouldTrapIsRefused() throws {
        let room = GameID(kind: .room, generation: 1, index: 0).raw
        let tick = TimeHandoff.Slot(generation: 1, live: true, kind: TimerTable.Kind.tick.rawValue, owner: room,
                                    remaining: 0, period: 50_000_000)
        try TimeHandoff(counters: .init(), slots: [tick], batchingRooms: []).validate()
        var bad = [tick]
        bad[0].period = 1
        #expect(throws: HandoffError.self) { try TimeHandoff(counters: .init(), slots: bad, batchingRooms: []).validate() }
        bad = [tick, tick]
        #expect(throws: HandoffError.self) { try TimeHandoff(counters: .init(), slots: bad, batchingRooms: []).validate() }
        var timer = TimeHandoff.Slot(generation: 1, live: true, kind: TimerTable.Kind.timer.rawValue,
                                     owner: GameID.global.raw, remaining: 5, period: 0, eventLength: 1, bytes: [0x61])
        try TimeHandoff(counters: .init(), slots: [timer], batchingRooms: []).validate()
        timer.period = UInt64.max
        #expect(throws: HandoffError.self) { try TimeHandoff(counters: .init(), slots: [timer], batchingRooms: []).validate() }
        timer.period = 0
        timer.remaining = UInt64.max
        #expect(throws: HandoffError.self) { try TimeHandoff(counters: .init(), slots: [timer], batchingRooms: []).validate() }
        timer.remaining = 0
        timer.bytes = [0x41]
        #expect(throws: HandoffError.self) { try TimeHandoff(counters: .init(), slots: [timer], batchingRooms: []).validate() }
    }

    /// Stored deadlines far off either way (a row edited by hand, a clock
    /// set years off) are clamped, not trapped on.
    @Test func storedDeadlinesFarOffAreClamped() throws {
        let (world, _, recorder) = make()
        let rows = [Int64.min, Int64.max, 0].map {
            StoredTimer(ownerKey: [], global: true, event: Array("x".utf8), payload: [], dueUnixMilliseconds: $0,
                        periodMilliseconds: 0, fired: 0)
        }
        #expect(world.loadStoredTimers(rows, wallNow: 1_700_000_000_000, now: recorder.now) == 0)
        #expect(world.timers.timerCount == 3)
        #expect(world.timers.nextDue! <= recorder.now)
    }
}

