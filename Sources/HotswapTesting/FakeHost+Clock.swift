import GameABI

/// Virtual time: nothing happens until the test advances the clock.
extension FakeHost {
    /// Moves the virtual clock forward, firing on the way, in order of
    /// time (ties: the order they were set), every timer and room tick that
    /// comes due, each at its exact due time (`late_ms` 0, ticks' `skipped`
    /// 0 and `since_last_ms` one step), and ending away sessions whose
    /// grace ran out. A periodic timer re-arms at due + period.
    public func advance(milliseconds: UInt64) {
        precondition(call == nil, "advance from inside a module call")
        let target = clock + milliseconds * 1_000_000
        while true {
            let timer = state.timers.next(dueBy: target)
            let timerDue = timer.flatMap { state.timers.entries[$0]?.due }
            let away = state.sessions.ids.compactMap { id in state.sessions[id]?.awayUntil.map { (id, $0) } }
                .filter { $0.1 <= target }.min { $0.1 < $1.1 }
            if let away, timerDue == nil || away.1 < timerDue! {
                clock = max(clock, away.1)
                tearDown(away.0)
                continue
            }
            guard let timer, let timerDue else { break }
            clock = max(clock, timerDue)
            if state.timers.entries[timer]!.isTick { fireTick(timer) } else { fireTimer(timer) }
        }
        clock = target
    }

    private func fireTimer(_ id: game_id) {
        state.timers.entries[id]!.fired += 1
        let entry = state.timers.entries[id]!
        if let hook = module.timer {
            beginCall(.timer)
            let status = entry.event.withUnsafeBufferPointer { event in
                entry.payload.withUnsafeBufferPointer { payload in
                    var record = game_timer_event(
                        size: UInt32(MemoryLayout<game_timer_event>.size), abi_version: UInt32(GAME_ABI_VERSION),
                        timer: id, owner: entry.owner, event: event.baseAddress, event_length: event.count,
                        payload: payload.baseAddress, payload_length: payload.count, late_ms: 0, fired: entry.fired)
                    return hook(&record, table)
                }
            }
            _ = endCall()
            if status != GAME_OK { logs.append("WARNING (fake host) hotswap_timer returned \(FakeStatus.name(status))") }
        }
        // Spent if one-shot; a periodic one goes on from its grid (unless it
        // was cancelled or ended with its owner during the call).
        if var live = state.timers.entries[id] {
            if live.period > 0 {
                live.due += live.period
                state.timers.entries[id] = live
            } else {
                state.timers.entries.remove(id)
            }
        }
        afterCall()
    }

    private func fireTick(_ id: game_id) {
        state.timers.entries[id]!.fired += 1
        let entry = state.timers.entries[id]!
        if let hook = module.tick {
            var record = game_tick(
                size: UInt32(MemoryLayout<game_tick>.size), abi_version: UInt32(GAME_ABI_VERSION), room: entry.owner,
                tick: entry.fired, step_ms: UInt32(entry.period / 1_000_000), skipped: 0,
                since_last_ms: entry.period / 1_000_000)
            beginCall(.tick)
            let status = hook(&record, table)
            _ = endCall()
            if status != GAME_OK { logs.append("WARNING (fake host) hotswap_tick returned \(FakeStatus.name(status))") }
        }
        state.timers.entries[id]?.due += entry.period
        // Events held for the room's members go out with its tick.
        for member in state.rooms[entry.owner]?.members ?? [] { state.releaseHeld(of: member) }
        afterCall()
    }
}
