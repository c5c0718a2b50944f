import GameABI

/// A server restart, as the engine's shutdown and start.
extension FakeHost {
    /// Simulates stopping the server and starting it again with the same
    /// module. Every session hears ">SHUTDOWN ..." and ends (its
    /// `sessionClosed` hook runs; connections close); rooms end with their
    /// members, and session and room timers and ticks with their owners.
    /// Kept, as the engine's database keeps them: stored players (keys,
    /// fields, secrets, hidden columns), the global entity's fields, and
    /// player and global timers (durable; one overdue fires once). Lost:
    /// resume tokens and the previous module (no rollback after a restart).
    ///
    /// Every id from before is stale afterwards (players and timers are
    /// numbered again): stricter than the engine, which may hand the same
    /// numbers out again; a module must keep keys, never ids, across a
    /// restart.
    public func restart() {
        precondition(call == nil, "restart from inside a module call")
        let ids = state.sessions.ids
        for id in ids { try? state.send(to: id, FakeReplies.shutdown) }
        for id in ids { tearDown(id) }
        pendingCloses.removeAll()
        state.tokens.removeAll()
        state.tokenOf.removeAll()
        previous = nil
        // A new process numbers players and timers again.
        var players = state.players
        var renamed: [game_id: game_id] = [:]
        for old in players.ids {
            let record = players.remove(old)!
            renamed[old] = players.reinsert(record, atSlotOf: old)
        }
        state.players = players
        state.playersByKey = Dictionary(uniqueKeysWithValues: players.ids.map { (players[$0]!.key, $0) })
        var timers = FakeTimerQueue()
        let pending = state.timers.entries.ids.compactMap { state.timers.entries[$0] }.sorted { $0.seq < $1.seq }
        for var entry in pending where !entry.isTick {
            if kindOf(entry.owner) == UInt32(GAME_KIND_PLAYER) {
                guard let owner = renamed[entry.owner] else { continue }
                entry.owner = owner
            } else if entry.owner != GAME_GLOBAL_ID {
                continue
            }
            _ = timers.add(entry)
        }
        state.timers = timers
    }
}
