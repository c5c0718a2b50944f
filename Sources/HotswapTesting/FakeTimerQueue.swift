import GameABI

/// One pending timer (`timer_set`) or room tick (`room_set_tick_rate`).
/// Times are nanoseconds of the fake's virtual clock.
struct FakeTimerEntry {
    var owner: game_id
    var isTick: Bool
    var event: [UInt8]
    var payload: [UInt8]
    var due: UInt64
    /// 0: one-shot.
    var period: UInt64
    /// Order of setting: ties on `due` fire in the order they were set.
    var seq: UInt64
    /// Times fired; a tick's number.
    var fired: UInt64 = 0
}

/// Every pending timer and tick, and which rooms batch: engine data, not
/// module state, so a timer set by one module version fires in the next
/// one. A value type (undone with a call by a snapshot). Ids are
/// generational (GAME_KIND_TIMER): a fired, cancelled or ended timer's id
/// is refused.
struct FakeTimerQueue {
    var entries = FakeArena<FakeTimerEntry>(kind: UInt32(GAME_KIND_TIMER))
    private var nextSeq: UInt64 = 0
    /// Rooms whose events wait for their tick.
    var batching = Set<game_id>()

    /// Live module timers (ticks not counted).
    var timerCount: Int { entries.ids.count { entries[$0]?.isTick == false } }
    var tickingRooms: Int { entries.ids.count { entries[$0]?.isTick == true } }

    mutating func add(_ entry: FakeTimerEntry) -> game_id {
        var entry = entry
        entry.seq = nextSeq
        nextSeq += 1
        return entries.insert(entry)
    }

    /// A live module timer's id (not a tick's), or nil.
    func isTimer(_ id: game_id) -> Bool { entries[id].map { !$0.isTick } ?? false }

    func tick(of room: game_id) -> game_id? { entries.ids.first { entries[$0]?.isTick == true && entries[$0]?.owner == room } }

    func count(owner: game_id) -> Int { entries.ids.count { entries[$0]?.isTick == false && entries[$0]?.owner == owner } }

    /// Ends every timer and the tick of an owner that went away.
    mutating func removeAll(owner: game_id) {
        for id in entries.ids where entries[id]?.owner == owner { entries.remove(id) }
        batching.remove(owner)
    }

    /// The entry due first (by due, then seq) if it is due at `time`.
    func next(dueBy time: UInt64) -> game_id? {
        var best: (id: game_id, due: UInt64, seq: UInt64)?
        for id in entries.ids {
            guard let entry = entries[id], entry.due <= time else { continue }
            if best == nil || entry.due < best!.due || (entry.due == best!.due && entry.seq < best!.seq) {
                best = (id, entry.due, entry.seq)
            }
        }
        return best?.id
    }

    /// The earliest deadline, if any.
    var nextDue: UInt64? { entries.ids.compactMap { entries[$0]?.due }.min() }
}
