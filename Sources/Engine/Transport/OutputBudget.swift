import CLibUV

/// `--max-output-total`: a bound on the bytes queued for all clients
/// together. `--max-output-bytes` bounds one client, but 10,000 clients
/// that never read may each hold their megabyte: gigabytes, and a loop
/// that spends its turns moving them (issue #20: 3.3–4.5 GB, a PING from
/// another room waiting 5–12 s).
///
/// Cost. Each connection keeps `Transport.queuedOutput` up to date as its
/// writer grows and shrinks (an add per write), and the transport compares
/// it with the budget once per loop turn. Only when the total is over the
/// budget does `enforce` look at the connections: one pass over them and a
/// sort of those with a write stuck in the kernel, then it cuts off the
/// largest until the total is under three quarters of the budget. That
/// quarter of slack makes a pass rare (once per burst, not once per turn
/// or per message): the next one needs another quarter of the budget
/// queued first.
///
/// Who goes. A client that does not read has a `uv_write` in flight that
/// does not complete (the kernel's buffers for it are full) and a queue
/// that only grows; a client that reads has its writes completing and a
/// queue the size of one turn's output. So the candidates are the game
/// connections with a write in flight, largest queue first: the ones not
/// reading go, and those reading keep their place. Operators and scrapers
/// (the admin and metrics ports) are never chosen.
///
/// What they see. Nothing can reach a client that does not read: it is
/// closed at once (its queue dropped), as `--max-output-bytes` does. Each
/// is counted (`output_budget_drops`), and one warning per pass names how
/// many went, at most one a second (the rest are summed into the next).
final class OutputBudget {
    let limit: Int
    /// Clients cut off so far (this engine's; an upgrade starts again at 0).
    private(set) var drops = 0
    /// Passes that cut someone off.
    private(set) var passes = 0
    /// Drops and bytes not logged yet (a pass within a second of the last
    /// warning is summed into the next).
    private var unloggedDrops = 0
    private var unloggedBytes = 0
    private var lastWarning: UInt64 = 0
    private var warnedOnce = false
    /// Loop time (ms) before which no pass runs: set for 100 ms after a
    /// pass that could not bring the total under `target` (the output is
    /// not in stuck queues, it is this turn's and will be written), so an
    /// over-budget total that nobody can be dropped for costs one walk per
    /// 100 ms, not one per turn.
    private var nextPass: UInt64 = 0

    init(limit: Int) { self.limit = limit }

    /// What a pass brings the total down to: three quarters of the budget.
    var target: Int { limit - limit / 4 }

    /// Over budget: cuts off the game clients with the largest stuck
    /// queues until the total is under `target`. Allocates (the candidate
    /// list): it runs once per burst, not per message.
    func enforce(on transport: Transport) {
        let now = uv_now(transport.loop)
        guard now >= nextPass else { return }
        var candidates: [(bytes: Int, connection: Connection)] = []
        for connection in transport.connections
        where connection.role == .game && connection.isWriteStuck && connection.state != .closed {
            candidates.append((connection.bufferedOutput, connection))
        }
        guard !candidates.isEmpty else {
            nextPass = now + 100
            return
        }
        candidates.sort { $0.bytes > $1.bytes }
        // The total the pass expects once the dropped queues are freed: a
        // write in flight is freed by its cancellation, a turn later.
        var expected = transport.queuedOutput
        var dropped = 0
        var freed = 0
        for (bytes, connection) in candidates {
            guard expected > target else { break }
            guard connection.state != .closed else { continue }
            expected -= bytes
            freed += bytes
            dropped += 1
            connection.abort()
        }
        if expected > target { nextPass = now + 100 }
        guard dropped > 0 else { return }
        drops += dropped
        passes += 1
        unloggedDrops += dropped
        unloggedBytes += freed
        if !warnedOnce || now >= lastWarning + 1000 {
            transport.logger.warning("queued output over --max-output-total; closed clients not reading, largest queue first", metadata: [
                "closed": "\(unloggedDrops)", "bytes": "\(unloggedBytes)", "limit": "\(limit)",
                "still_queued": "\(expected)"])
            warnedOnce = true
            lastWarning = now
            unloggedDrops = 0
            unloggedBytes = 0
        }
    }
}
