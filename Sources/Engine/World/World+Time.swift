import GameABI
import Protocol

/// What the state table's time calls do to game state (ABI 1.3): timers
/// and room ticks are World's, like fields and rooms, so that they end with
/// their owner and a call that faults takes back the timers it set or
/// cancelled (`Change.timerSet`, `.timerCancelled`, `.batching`).
///
/// Deadlines are nanoseconds on the engine's monotonic clock (`now`).
extension World {
    /// Sets a module's timer on `owner` (a live session, room, player or
    /// the global entity).
    func setTimer(owner: GameID, event: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                  delayMilliseconds: UInt64, periodMilliseconds: UInt64, now: UInt64) throws(EngineError) -> GameID
    {
        guard isLiveOwner(owner) else {
            switch owner.raw >> 56 {
            case UInt64(GAME_KIND_ROOM): throw .badRoom
            case UInt64(GAME_KIND_PLAYER): throw .badPlayer
            default: throw .badSession
            }
        }
        guard World.isTimerEvent(event), payload.count <= Int(GAME_MAX_TIMER_PAYLOAD),
            delayMilliseconds <= GAME_MAX_TIMER_DELAY_MS, periodMilliseconds <= GAME_MAX_TIMER_DELAY_MS
        else { throw .badArgument }
        let slot: Int32
        do {
            slot = try timers.set(owner: owner, event: event, payload: payload,
                                  due: now + delayMilliseconds * 1_000_000, period: periodMilliseconds * 1_000_000)
        } catch {
            throw .limit
        }
        if journaling { journal.append(.timerSet(slot)) }
        return timers.id(ofSlot: slot)
    }

    /// Cancels a pending timer: `.notFound` when it is gone (fired, ended
    /// with its owner, cancelled).
    func cancelTimer(_ id: GameID) throws(EngineError) {
        guard let slot = timers.slot(of: id) else { throw .notFound }
        timers.cancel(slot: slot, inCall: journaling)
        if journaling { journal.append(.timerCancelled(slot)) }
    }

    /// Makes a room tick `rate` times a second (0: stop). The first tick is
    /// a fraction of the period away that depends on the room, so rooms
    /// made together do not all tick in the same loop turn.
    func setTickRate(_ room: GameID, rate: UInt32, now: UInt64) throws(EngineError) {
        guard rooms.contains(room) else { throw .badRoom }
        guard rate == 0 || (rate >= UInt32(GAME_MIN_TICK_RATE) && rate <= UInt32(GAME_MAX_TICK_RATE)) else {
            throw .badArgument
        }
        let period = rate == 0 ? 0 : 1_000_000_000 / UInt64(rate)
        let existing = timers.tickSlot(of: room)
        if existing >= 0 {
            // The same rate again keeps its phase and its count.
            if timers[existing].period == period { return }
            timers.cancel(slot: existing, inCall: journaling)
            if journaling { journal.append(.timerCancelled(existing)) }
        }
        if rate == 0 {
            if timers.isBatching(room) { try setBatching(room, false) }
            return
        }
        let phase = World.phase(of: room, period: period)
        let slot = timers.startTick(room: room, period: period, due: now + phase)
        if journaling { journal.append(.timerSet(slot)) }
    }

    /// Holds (or stops holding) events for the room's members until its
    /// tick; `.notNow` for a room that does not tick.
    func setBatching(_ room: GameID, _ on: Bool) throws(EngineError) {
        guard rooms.contains(room) else { throw .badRoom }
        guard !on || timers.tickSlot(of: room) >= 0 else { throw .notNow }
        let was = timers.isBatching(room)
        guard was != on else { return }
        if journaling { journal.append(.batching(room: room, was: was)) }
        setBatchingUnjournaled(room, on)
    }

    func setBatchingUnjournaled(_ room: GameID, _ on: Bool) {
        timers.setBatching(room, on)
        guard let slot = rooms.slotIndex(of: room) else { return }
        for member in rooms[slot: slot].members {
            if let memberSlot = sessions.slotIndex(of: member) { sessions[slot: memberSlot].peer.setHeld(on) }
        }
    }

    /// The room ticked: its members' held events go out this turn.
    func releaseHeld(_ room: GameID) {
        guard timers.isBatching(room), let slot = rooms.slotIndex(of: room) else { return }
        for member in rooms[slot: slot].members {
            if let memberSlot = sessions.slotIndex(of: member) { sessions[slot: memberSlot].peer.releaseHeld() }
        }
    }

    /// Whether `owner` may own a timer now.
    func isLiveOwner(_ owner: GameID) -> Bool {
        switch owner.raw >> 56 {
        case UInt64(GAME_KIND_GLOBAL): owner == .global
        case UInt64(GAME_KIND_SESSION): isOpen(session: owner)
        case UInt64(GAME_KIND_ROOM): rooms.contains(owner)
        case UInt64(GAME_KIND_PLAYER): players.contains(owner)
        default: false
        }
    }

    /// 1 to GAME_MAX_TIMER_EVENT bytes of `[a-z0-9_.:-]`: it goes into
    /// logs and crash reports as one token.
    static func isTimerEvent(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 1, bytes.count <= Int(GAME_MAX_TIMER_EVENT) else { return false }
        for byte in bytes {
            let ok = (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39) || byte == 0x5F || byte == 0x2E
                || byte == 0x3A || byte == 0x2D
            if !ok { return false }
        }
        return true
    }

    /// A room's tick phase: its slot spread over the period by a
    /// multiplicative hash (Fibonacci hashing), so consecutive rooms land
    /// far apart.
    static func phase(of room: GameID, period: UInt64) -> UInt64 {
        guard period > 0 else { return 0 }
        let mixed = (UInt64(room.index) &+ 1) &* 0x9E37_79B9_7F4A_7C15
        return (mixed >> 11) % period
    }
}

extension World {
    /// Rooms whose events wait for their tick, for a handoff.
    func batchingRoomIDs() -> [UInt64] {
        var ids: [UInt64] = []
        rooms.forEachID { if timers.isBatching($0) { ids.append($0.raw) } }
        return ids
    }

    /// Takes over a handed-over time section, after sessions, rooms and
    /// players came over (every owner must have): timers, ticks, and the
    /// rooms that batch, whose members' connections hold events again.
    func restoreTime(_ handoff: TimeHandoff, now: UInt64) throws(HandoffError) {
        try timers.restore(handoff, now: now) { isLiveOwner($0) }
        for raw in handoff.batchingRooms {
            let room = GameID(raw: raw)
            guard rooms.contains(room), timers.tickSlot(of: room) >= 0 else {
                throw .invalid("batching room \(room) did not come over ticking")
            }
            setBatchingUnjournaled(room, true)
        }
    }
}

extension World {
    /// Every durable timer (owned by a player or the global entity) as the
    /// database stores it: deadlines on the wall clock (`wallNow` ms is
    /// the same instant as `now` ns on the monotonic clock).
    func durableTimers(wallNow: Int64, now: UInt64) -> [StoredTimer] {
        var stored: [StoredTimer] = []
        stored.reserveCapacity(timers.durableCount)
        timers.forEachLive { _, entry in
            guard entry.kind == .timer, TimerTable.isDurable(owner: entry.owner) else { return }
            let owner = GameID(raw: entry.owner)
            var key: [UInt8] = []
            if owner != .global {
                guard let slot = players.slotIndex(of: owner) else { return }
                key = players[slot: slot].key
            }
            let remaining = entry.due >= now ? Int64((entry.due - now) / 1_000_000) : -Int64((now - entry.due) / 1_000_000)
            stored.append(StoredTimer(
                ownerKey: key, global: owner == .global, event: Array(entry.bytes[..<entry.eventLength]),
                payload: Array(entry.bytes[entry.eventLength...]), dueUnixMilliseconds: wallNow + remaining,
                periodMilliseconds: Int64(entry.period / 1_000_000), fired: Int64(entry.fired)))
        }
        return stored
    }

    /// Puts back the durable timers the database held, at start (after the
    /// players were loaded): one whose deadline passed while the server was
    /// down is due at once, and says how late it is (`late_ms`); a periodic
    /// one then goes on from its grid. Timers of a player that is no longer
    /// stored, or that break the rules a module's `timer_set` is held to,
    /// are dropped and counted (the return value).
    @discardableResult
    func loadStoredTimers(_ stored: [StoredTimer], wallNow: Int64, now: UInt64) -> Int {
        var dropped = 0
        for timer in stored {
            let owner = timer.global ? GameID.global : player(withKey: timer.ownerKey)
            guard let owner, timer.periodMilliseconds >= 0,
                UInt64(timer.periodMilliseconds) <= GAME_MAX_TIMER_DELAY_MS, timer.payload.count <= Int(GAME_MAX_TIMER_PAYLOAD)
            else {
                dropped += 1
                continue
            }
            // Clamped to the longest delay a module may ask for, either way:
            // a row edited by hand (or a clock set years off) cannot
            // overflow the monotonic deadline.
            let limit = Int64(GAME_MAX_TIMER_DELAY_MS)
            let (difference, overflow) = timer.dueUnixMilliseconds.subtractingReportingOverflow(wallNow)
            let offset = overflow ? (timer.dueUnixMilliseconds < 0 ? -limit : limit) : min(max(difference, -limit), limit)
            let due = offset >= 0 ? now + UInt64(offset) * 1_000_000
                : now - min(now, UInt64(-offset) * 1_000_000)
            let valid = timer.event.withUnsafeBytes { World.isTimerEvent($0) }
            guard valid else {
                dropped += 1
                continue
            }
            let slot = timer.event.withUnsafeBytes { event in
                timer.payload.withUnsafeBytes { payload in
                    try? timers.set(owner: owner, event: event, payload: payload, due: due,
                                    period: UInt64(timer.periodMilliseconds) * 1_000_000, fired: UInt64(max(0, timer.fired)))
                }
            }
            if slot == nil { dropped += 1 }
        }
        return dropped
    }
}
