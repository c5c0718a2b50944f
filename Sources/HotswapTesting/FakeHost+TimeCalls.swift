import GameABI

/// The state table's timer, tick, batching and setting members (ABI 1.3).
extension FakeHost {
    func timerSet(_ owner: game_id, _ event: UnsafePointer<UInt8>?, _ eventLength: Int,
                  _ payload: UnsafePointer<UInt8>?, _ payloadLength: Int, _ delay: UInt64, _ period: UInt64,
                  _ out: UnsafeMutablePointer<game_id>?) -> Int32
    {
        run("timer_set") { () throws(FakeStatus) in
            try checkServing("timer_set")
            guard module.timer != nil else { throw FakeStatus(GAME_ERR_STATE, "the module exports no hotswap_timer: nothing could handle it") }
            guard let out, let event, eventLength >= 0, eventLength <= Int(GAME_MAX_TIMER_EVENT), payloadLength >= 0,
                payloadLength <= Int(GAME_MAX_TIMER_PAYLOAD), payload != nil || payloadLength == 0
            else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "event is 1...\(GAME_MAX_TIMER_EVENT) bytes, payload 0...\(GAME_MAX_TIMER_PAYLOAD)")
            }
            out.pointee = 0
            guard state.isLiveOwner(owner) else {
                switch Int32(kindOf(owner)) {
                case GAME_KIND_ROOM: throw FakeStatus(GAME_ERR_BAD_ROOM, "timer owner \(hex(owner)) is not a live room")
                case GAME_KIND_PLAYER: throw FakeStatus(GAME_ERR_BAD_PLAYER, "timer owner \(hex(owner)) is not a stored player")
                default: throw FakeStatus(GAME_ERR_BAD_SESSION, "timer owner \(hex(owner)) is not a live session or the global id")
                }
            }
            let eventBytes = Array(UnsafeBufferPointer(start: event, count: eventLength))
            guard Self.isTimerEvent(eventBytes), delay <= GAME_MAX_TIMER_DELAY_MS, period <= GAME_MAX_TIMER_DELAY_MS else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "event is [a-z0-9_.:-], delay and period at most \(GAME_MAX_TIMER_DELAY_MS) ms")
            }
            guard state.timers.timerCount < limits.maxTimers else { throw FakeStatus(GAME_ERR_LIMIT, "more than \(limits.maxTimers) timers (FakeLimits.maxTimers)") }
            guard state.timers.count(owner: owner) < limits.maxTimersPerOwner else {
                throw FakeStatus(GAME_ERR_LIMIT, "more than \(limits.maxTimersPerOwner) timers on one owner (FakeLimits.maxTimersPerOwner)")
            }
            let payloadBytes = payloadLength == 0 ? [] : Array(UnsafeBufferPointer(start: payload!, count: payloadLength))
            out.pointee = state.timers.add(FakeTimerEntry(
                owner: owner, isTick: false, event: eventBytes, payload: payloadBytes,
                due: clock + delay * 1_000_000, period: period * 1_000_000, seq: 0))
        }
    }

    func timerCancel(_ timer: game_id) -> Int32 {
        run("timer_cancel") { () throws(FakeStatus) in
            try checkServing("timer_cancel")
            guard state.timers.isTimer(timer) else { throw FakeStatus(GAME_ERR_NOT_FOUND, "the timer already fired, was cancelled or ended with its owner") }
            state.timers.entries.remove(timer)
        }
    }

    /// The fake's first tick comes one full period after the rate is set
    /// (the engine spreads rooms' phases over the period instead).
    func setTickRate(_ room: game_id, _ rate: UInt32) -> Int32 {
        run("room_set_tick_rate") { () throws(FakeStatus) in
            try checkServing("room_set_tick_rate")
            guard rate == 0 || module.tick != nil else { throw FakeStatus(GAME_ERR_STATE, "the module exports no hotswap_tick") }
            guard state.rooms.contains(room) else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(room))") }
            guard rate == 0 || (rate >= UInt32(GAME_MIN_TICK_RATE) && rate <= UInt32(GAME_MAX_TICK_RATE)) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a tick rate is 0 or \(GAME_MIN_TICK_RATE)...\(GAME_MAX_TICK_RATE)")
            }
            let period = rate == 0 ? 0 : 1_000_000_000 / UInt64(rate)
            if let existing = state.timers.tick(of: room) {
                // The same rate again keeps its phase and its count.
                if state.timers.entries[existing]?.period == period { return }
                state.timers.entries.remove(existing)
            }
            if rate == 0 {
                setBatching(room, false)
                return
            }
            _ = state.timers.add(FakeTimerEntry(owner: room, isTick: true, event: [], payload: [], due: clock + period,
                                                period: period, seq: 0))
        }
    }

    func roomSetBatching(_ room: game_id, _ on: Int32) -> Int32 {
        run("room_set_batching") { () throws(FakeStatus) in
            try checkServing("room_set_batching")
            guard state.rooms.contains(room) else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(room))") }
            guard on == 0 || state.timers.tick(of: room) != nil else { throw FakeStatus(GAME_ERR_STATE, "batching needs a tick rate") }
            setBatching(room, on != 0)
        }
    }

    /// Turns a room's batching on or off; off writes what was held.
    func setBatching(_ room: game_id, _ on: Bool) {
        if on {
            state.timers.batching.insert(room)
        } else if state.timers.batching.remove(room) != nil {
            for member in state.rooms[room]?.members ?? [] { state.releaseHeld(of: member) }
        }
    }

    func setting(_ key: UnsafePointer<UInt8>?, _ keyLength: Int, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                 _ length: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("setting") { () throws(FakeStatus) in
            guard let key, keyLength >= 1, keyLength <= Int(GAME_MAX_SETTING_KEY) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a setting key is 1...\(GAME_MAX_SETTING_KEY) bytes")
            }
            let length = try checkOut(buffer, capacity, length)
            let name = String(decoding: UnsafeBufferPointer(start: key, count: keyLength), as: UTF8.self)
            guard let value = settings[name] else { throw FakeStatus(GAME_ERR_NOT_FOUND, "no setting \(name)") }
            copyOut(Array(value.utf8), buffer, capacity, length)
        }
    }
}
