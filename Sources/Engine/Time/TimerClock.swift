import CLibUV
import FaultGuard
import GameABI
import Prometheus
import UVKit

/// What fires timers and ticks: the module call, as `ModuleCall` makes it.
/// Tests put a recorder here and drive the clock with virtual time.
protocol TimeCaller: AnyObject {
    /// Hands a timer to the module; the guard's outcome.
    func fireTimer(_ event: UnsafePointer<game_timer_event>) -> Int32
    /// Hands a room's tick to the module; the guard's outcome.
    func tick(_ tick: UnsafePointer<game_tick>) -> Int32
    /// After the timer or tick was settled (faults counted, closes run).
    func finishTimeCall(_ outcome: Int32, export: String)
}

extension ModuleCall: TimeCaller {}

/// The loop's one clock: a libuv timer armed at the earliest deadline of
/// `World.timers`, firing what is due within a time budget.
///
/// - Deadlines are absolute nanoseconds of the monotonic clock. A periodic
///   timer's next deadline is `due + period`, never `now + period`: the
///   time a call takes or a late wake-up does not push the grid (libuv's
///   own repeating timers drift, libuv#2259; so does Colyseus' interval,
///   colyseus#324).
/// - A tick that finds more than `maxCatchUp` further ticks already due
///   (a stall) runs those few catch-up ticks and skips the rest, counted
///   (the "spiral of death" of a fixed step).
/// - Everything due in one loop turn shares `budget`: past it, the rest
///   waits until the loop polled its sockets; the heap's (due, seq) order
///   makes the oldest go first then.
/// - Re-armed before each poll (`uv_prepare`): one comparison per turn.
///
/// Never a 0 ms libuv timer: libuv before 1.48 runs a timer started from
/// a timer callback with timeout 0 again in the same pass (libuv#4245),
/// which would starve the sockets the budget is there to protect. What is
/// due now (left over by the budget, or set with delay 0) is fired from a
/// `uv_check` handle instead, after the poll, and an idle handle keeps that
/// poll from blocking meanwhile. The same idle handle is started after any
/// fire: what a timer or tick queued for players is flushed by the
/// transport's check in this turn, not after a poll that could block until
/// the next deadline (and from libuv 1.45 on, timers run after the checks).
final class TimerClock {
    let world: World
    unowned(unsafe) let caller: any TimeCaller
    /// Monotonic nanoseconds (`uv_hrtime`); tests pass virtual time.
    let now: () -> UInt64
    /// Nanoseconds all fires of one loop turn may take together.
    let budget: UInt64
    static let maxCatchUp: UInt64 = 3

    /// Counted since start (an upgrade carries them over).
    struct Counters: Equatable {
        var timersFired = 0
        var ticks = 0
        var ticksSkipped = 0
        /// Fires whose module call faulted or hung (undone).
        var faults = 0
        /// Fires no module export could take (a module without the export
        /// serves after an automatic rollback): dropped.
        var orphans = 0
        /// Turns that ran out of budget with fires left.
        var budgetExhausted = 0
    }
    var counters = Counters()
    /// The largest lateness (fire time minus deadline) in the current and
    /// the previous 10-second windows, in µs: STATUS `timer_lag_max_us`.
    private var lagWindow = (current: UInt64(0), previous: UInt64(0), started: UInt64(0))
    /// `hotswap_timer_lag_seconds` and `hotswap_tick_duration_seconds`,
    /// once metrics are on.
    var lagHistogram: ValueHistogram?
    var tickHistogram: ValueHistogram?

    private var timer: UnsafeMutablePointer<uv_timer_t>?
    private var prepare: UnsafeMutablePointer<uv_prepare_t>?
    private var check: UnsafeMutablePointer<uv_check_t>?
    /// Active: the next poll does not block (fires are owed, or output a
    /// fire queued waits for the flush).
    private var wake: UnsafeMutablePointer<uv_idle_t>?
    private var waking = false
    private var loop: UnsafeMutablePointer<uv_loop_t>?
    /// The deadline the libuv timer is armed for (ns), 0 when disarmed.
    private var armedFor: UInt64 = 0
    /// Fires were left over by the budget: run again right after the poll.
    private var owed = false
    private var event = game_timer_event()
    private var tickRecord = game_tick()

    init(world: World, caller: any TimeCaller, budgetMilliseconds: Int, now: @escaping () -> UInt64 = { uv_hrtime() }) {
        self.world = world
        self.caller = caller
        self.now = now
        budget = UInt64(budgetMilliseconds) * 1_000_000
        event.size = UInt32(MemoryLayout<game_timer_event>.size)
        event.abi_version = UInt32(GAME_ABI_VERSION)
        tickRecord.size = UInt32(MemoryLayout<game_tick>.size)
        tickRecord.abi_version = UInt32(GAME_ABI_VERSION)
    }

    /// Arms the clock on `loop`.
    func start(on loop: UnsafeMutablePointer<uv_loop_t>) {
        self.loop = loop
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = UVContext.pointer(to: self)
        // Timers alone do not keep the loop alive at shutdown.
        uv_unref(timer.handle)
        self.timer = timer
        let prepare = UnsafeMutablePointer<uv_prepare_t>.allocateHandle()
        uvMust(uv_prepare_init(loop, prepare), "uv_prepare_init")
        prepare.context = UVContext.pointer(to: self)
        uvMust(uv_prepare_start(prepare) { handle in
            UVContext.object(handle!.pointee.data, as: TimerClock.self).arm()
        }, "uv_prepare_start")
        uv_unref(prepare.handle)
        self.prepare = prepare
        let check = UnsafeMutablePointer<uv_check_t>.allocateHandle()
        uvMust(uv_check_init(loop, check), "uv_check_init")
        check.context = UVContext.pointer(to: self)
        uvMust(uv_check_start(check) { handle in
            UVContext.object(handle!.pointee.data, as: TimerClock.self).afterPoll()
        }, "uv_check_start")
        uv_unref(check.handle)
        self.check = check
        let wake = UnsafeMutablePointer<uv_idle_t>.allocateHandle()
        uvMust(uv_idle_init(loop, wake), "uv_idle_init")
        uv_unref(wake.handle)
        self.wake = wake
        lagWindow.started = now()
    }

    func close() {
        timer?.closeAndFree()
        prepare?.closeAndFree()
        check?.closeAndFree()
        wake?.closeAndFree()
        timer = nil
        prepare = nil
        check = nil
        wake = nil
    }

    /// Keeps the next poll from blocking (or lets it block again).
    private func setWaking(_ on: Bool) {
        guard let wake, on != waking else { return }
        waking = on
        if on { uv_idle_start(wake) { _ in } } else { uv_idle_stop(wake) }
    }

    /// After the poll: fires what the budget left over, or what came due
    /// without the libuv timer (a delay of 0).
    private func afterPoll() {
        setWaking(false)
        if owed || (world.timers.nextDue.map { $0 <= now() } ?? false) { fireDue() }
    }

    /// Points the libuv timer at the earliest deadline, if it moved; what is
    /// due already is left to the check after the poll (see above).
    func arm() {
        guard let timer, let loop else { return }
        guard let next = world.timers.nextDue else {
            if armedFor != 0 { uv_timer_stop(timer); armedFor = 0 }
            return
        }
        let current = now()
        if owed || next <= current {
            setWaking(true)
            return
        }
        guard next != armedFor else { return }
        armedFor = next
        // libuv counts whole milliseconds from the loop's cached time; a
        // fire that comes early finds nothing due and re-arms.
        let milliseconds = (next - current + 999_999) / 1_000_000
        uv_update_time(loop)
        uvMust(uv_timer_start(timer, { handle in
            let clock = UVContext.object(handle!.pointee.data, as: TimerClock.self)
            clock.armedFor = 0
            clock.fireDue()
        }, milliseconds, 0), "uv_timer_start")
    }

    /// The largest lateness seen lately, in µs.
    var lagMaxMicroseconds: UInt64 { max(lagWindow.current, lagWindow.previous) }

    // MARK: - Firing

    /// Fires everything due now, oldest first, until the budget is spent.
    func fireDue() {
        let started = now()
        owed = false
        var fired = false
        while let slot = world.timers.beginFiring(now: started) {
            fired = true
            let entry = world.timers[slot]
            noteLag(started - entry.due, at: started)
            if entry.kind == .tick { fireTick(slot, now: started) } else { fireTimer(slot, now: started) }
            if now() - started >= budget {
                if let next = world.timers.nextDue, next <= started {
                    owed = true
                    counters.budgetExhausted += 1
                }
                break
            }
        }
        // What the fires queued is flushed this turn (the poll must not
        // block before the transport's check), and what is owed runs then.
        if fired || owed { setWaking(true) }
        arm()
    }

    private func fireTimer(_ slot: Int32, now current: UInt64) {
        world.timers[slot].fired += 1
        // A reference of our own to the bytes: the module may cancel this
        // timer or set others while it runs (a reused slot then writes a
        // copy, never these bytes).
        let entry = world.timers[slot]
        let outcome = entry.bytes.withUnsafeBufferPointer { bytes -> Int32 in
            event.timer = world.timers.id(ofSlot: slot).raw
            event.owner = entry.owner
            event.event = bytes.baseAddress
            event.event_length = entry.eventLength
            event.payload = bytes.baseAddress.map { $0 + entry.eventLength }
            event.payload_length = bytes.count - entry.eventLength
            event.late_ms = (current - entry.due) / 1_000_000
            event.fired = entry.fired
            return withUnsafePointer(to: &event) { caller.fireTimer($0) }
        }
        if outcome != FG_REFUSED { counters.timersFired += 1 }
        count(outcome)
        // The grid: due + period, past any periods a stall missed (a timer
        // is not fired twice to catch up; late_ms tells it how late it is).
        var next: UInt64?
        if entry.period > 0 {
            var due = entry.due + entry.period
            if due <= current { due += (current - due) / entry.period * entry.period + entry.period }
            next = due
        }
        world.timers.endFiring(nextDue: next)
        caller.finishTimeCall(outcome, export: "hotswap_timer")
    }

    private func fireTick(_ slot: Int32, now current: UInt64) {
        let period = world.timers[slot].period
        let behind = (current - world.timers[slot].due) / period
        var skipped: UInt64 = 0
        if behind > TimerClock.maxCatchUp {
            skipped = behind - TimerClock.maxCatchUp
            world.timers[slot].due += skipped * period
            world.timers[slot].fired += skipped
            counters.ticksSkipped += Int(skipped)
        }
        world.timers[slot].fired += 1
        let entry = world.timers[slot]
        let room = GameID(raw: entry.owner)
        tickRecord.room = entry.owner
        tickRecord.tick = entry.fired
        tickRecord.step_ms = UInt32(period / 1_000_000)
        tickRecord.skipped = UInt32(clamping: skipped)
        tickRecord.since_last_ms = entry.lastCall == 0 ? period / 1_000_000 : (current - entry.lastCall) / 1_000_000
        world.timers[slot].lastCall = current
        let started = tickHistogram == nil ? 0 : now()
        let outcome = withUnsafePointer(to: &tickRecord) { caller.tick($0) }
        if let tickHistogram { tickHistogram.record(Double(now() - started) / 1e9) }
        if outcome != FG_REFUSED { counters.ticks += 1 }
        count(outcome)
        world.timers.endFiring(nextDue: world.timers[slot].due + period)
        // Events held for the room's members go out in this turn's flush.
        world.releaseHeld(room)
        caller.finishTimeCall(outcome, export: "hotswap_tick")
    }

    private func count(_ outcome: Int32) {
        if outcome == FG_REFUSED {
            counters.orphans += 1
        } else if outcome != FG_OK {
            counters.faults += 1
        }
    }

    private func noteLag(_ lag: UInt64, at current: UInt64) {
        if current - lagWindow.started >= 10_000_000_000 {
            lagWindow = (0, lagWindow.current, current)
        }
        let micros = lag / 1000
        if micros > lagWindow.current { lagWindow.current = micros }
        lagHistogram?.record(Double(lag) / 1e9)
    }
}
