import GameABI

/// The time section of an engine upgrade's handoff (format 3 on): every
/// timer and room tick with the time it has left, so that none is lost or
/// fired twice across the exec.
///
///     counters                 fired, ticks, skipped, faults, orphans, budget
///     slot count               then per slot:
///       generation, live       (a free slot: nothing more)
///       kind, owner, seq       u8, u64, u64
///       remaining ns           deadline minus the hold's clock (0: overdue)
///       period, fired          ns, count (a tick's number)
///       event length, bytes    the event name, then the payload
///     batching rooms           count, then room ids
///
/// Slots keep their index and generation, so a timer id a module stored in
/// a field still names its timer after the upgrade, and a stale one stays
/// stale. Deadlines go over as time left, not as clock readings: the next
/// engine's monotonic clock is the same machine's, but the remaining time
/// is what is true whatever the exec took (it is read once at the hold, and
/// the hold is short: BENCHMARKS.md).
struct TimeHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.time
    static var formats: ClosedRange<UInt32> { 3...HandoffFormat.current }

    struct Slot: Equatable {
        var generation: UInt32
        var live: Bool
        var kind: UInt8 = 0
        var owner: UInt64 = 0
        var seq: UInt64 = 0
        var remaining: UInt64 = 0
        var period: UInt64 = 0
        var fired: UInt64 = 0
        var eventLength: Int = 0
        var bytes: [UInt8] = []
    }

    var counters = TimerClock.Counters()
    var slots: [Slot] = []
    var batchingRooms: [UInt64] = []

    init() {}

    init(counters: TimerClock.Counters, slots: [Slot], batchingRooms: [UInt64]) {
        self.counters = counters
        self.slots = slots
        self.batchingRooms = batchingRooms
    }

    func encode(into writer: inout HandoffWriter) {
        for value in [counters.timersFired, counters.ticks, counters.ticksSkipped, counters.faults, counters.orphans,
                      counters.budgetExhausted] { writer.int(value) }
        writer.u32(UInt32(slots.count))
        for slot in slots {
            writer.u32(slot.generation)
            writer.bool(slot.live)
            guard slot.live else { continue }
            writer.u8(slot.kind)
            writer.u64(slot.owner)
            writer.u64(slot.seq)
            writer.u64(slot.remaining)
            writer.u64(slot.period)
            writer.u64(slot.fired)
            writer.u32(UInt32(slot.eventLength))
            writer.bytes(slot.bytes)
        }
        writer.u32(UInt32(batchingRooms.count))
        for room in batchingRooms { writer.u64(room) }
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        counters = TimerClock.Counters(
            timersFired: try reader.int("timers fired"), ticks: try reader.int("ticks"),
            ticksSkipped: try reader.int("ticks skipped"), faults: try reader.int("timer faults"),
            orphans: try reader.int("timer orphans"), budgetExhausted: try reader.int("budget exhausted"))
        let count = try reader.count("timer slots", elementSize: 5)
        slots.reserveCapacity(min(count, 4096))
        for _ in 0..<count {
            var slot = Slot(generation: try reader.u32("timer generation"), live: try reader.bool("timer live"))
            if slot.live {
                slot.kind = try reader.u8("timer kind")
                slot.owner = try reader.u64("timer owner")
                slot.seq = try reader.u64("timer seq")
                slot.remaining = try reader.u64("timer remaining")
                slot.period = try reader.u64("timer period")
                slot.fired = try reader.u64("timer fired")
                slot.eventLength = Int(try reader.u32("timer event length"))
                slot.bytes = try reader.bytes("timer bytes")
            }
            slots.append(slot)
        }
        let rooms = try reader.count("batching rooms", elementSize: 8)
        for _ in 0..<rooms { batchingRooms.append(try reader.u64("batching room")) }
    }

    /// What the bytes alone can break, checked so that nothing restored
    /// can trap later in the clock's arithmetic: a kind, an owner kind, an
    /// event name's length and bytes, a deadline or period past what
    /// `timer_set` allows (`now + remaining`, `due + period`), a tick whose
    /// period is not 1 s / rate for a rate `room_set_tick_rate` allows, a
    /// count that could overflow, two ticks for one room, a generation past
    /// the id's 24 bits.
    func validate() throws(HandoffError) {
        let longest = GAME_MAX_TIMER_DELAY_MS * 1_000_000
        var tickRooms = Set<UInt64>()
        for (index, slot) in slots.enumerated() {
            guard slot.generation & ~GameID.generationMask == 0 else { throw .invalid("timer slot \(index) generation") }
            guard slot.live else { continue }
            guard let kind = TimerTable.Kind(rawValue: slot.kind) else { throw .invalid("timer slot \(index) kind \(slot.kind)") }
            let ownerKind = slot.owner >> 56
            guard ownerKind >= UInt64(GAME_KIND_GLOBAL), ownerKind <= UInt64(GAME_KIND_PLAYER) else {
                throw .invalid("timer slot \(index) owner \(slot.owner)")
            }
            guard slot.remaining <= longest, slot.period <= longest, slot.fired < 1 << 62 else {
                throw .invalid("timer slot \(index) deadline, period or count out of range")
            }
            switch kind {
            case .timer:
                guard slot.eventLength <= slot.bytes.count,
                    slot.bytes.count - slot.eventLength <= Int(GAME_MAX_TIMER_PAYLOAD),
                    slot.bytes[..<slot.eventLength].withUnsafeBytes({ World.isTimerEvent($0) })
                else { throw .invalid("timer slot \(index) event") }
            case .tick:
                let rates = UInt64(GAME_MIN_TICK_RATE)...UInt64(GAME_MAX_TICK_RATE)
                guard ownerKind == UInt64(GAME_KIND_ROOM), slot.bytes.isEmpty,
                    rates.contains(where: { 1_000_000_000 / $0 == slot.period })
                else { throw .invalid("tick slot \(index)") }
                guard tickRooms.insert(slot.owner).inserted else { throw .invalid("a second tick for room \(slot.owner)") }
            }
        }
    }
}

extension TimerTable {
    /// The table as a handoff section, deadlines as time left at `now`.
    func handoff(now: UInt64, counters: TimerClock.Counters, batchingRooms: [UInt64]) -> TimeHandoff {
        var slots: [TimeHandoff.Slot] = []
        slots.reserveCapacity(entries.count)
        for entry in entries {
            // A slot detached by a call in progress cannot exist here: the
            // handoff is written between calls.
            guard entry.live else {
                slots.append(TimeHandoff.Slot(generation: entry.generation, live: false))
                continue
            }
            slots.append(TimeHandoff.Slot(
                generation: entry.generation, live: true, kind: entry.kind.rawValue, owner: entry.owner, seq: entry.seq,
                remaining: entry.due > now ? entry.due - now : 0, period: entry.period, fired: entry.fired,
                eventLength: entry.eventLength, bytes: entry.bytes))
        }
        return TimeHandoff(counters: counters, slots: slots, batchingRooms: batchingRooms)
    }
}
