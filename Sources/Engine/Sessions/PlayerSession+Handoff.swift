import Protocol

/// A player session's part of a connection record in an upgrade's handoff:
///
///     session id, unfinished line, ms since the last request,
///     bucket (milli-tokens, ms since its last refill, strikes), identified
///
/// Times go over as ages, not loop times: the next engine's loop has its
/// own clock reading, and a deadline is "this long since", either way.
extension PlayerSession {
    func encodeHandoff(into writer: inout HandoffWriter, now: UInt64) {
        writer.u64(id.raw)
        writer.bytes(framer.bufferedBytes)
        writer.u64(now.ageOf(lastRequest))
        writer.i64(limiter.milliTokens)
        writer.u64(now.ageOf(limiter.lastRefill))
        writer.int(limiter.strikes)
        writer.bool(identified)
    }

    static func restoreHandoff(from reader: inout HandoffReader, engine: Engine, connection: Connection,
                               now: UInt64) throws(HandoffError) -> PlayerSession
    {
        let id = GameID(raw: try reader.u64("session id"))
        guard id.kind == .session else { throw .invalid("\(id) is not a session") }
        var framer = LineFramer(maxLineLength: engine.sessionRules.maxLineLength)
        guard framer.restore(buffered: try reader.bytes("unfinished line")) else {
            throw .invalid("\(id) holds an unfinished line this engine's --max-line-length refuses")
        }
        let lastRequest = now.minus(age: try reader.u64("idle time"))
        let milliTokens = try reader.i64("bucket")
        let lastRefill = now.minus(age: try reader.u64("bucket refill"))
        let strikes = try reader.int("strikes")
        let limiter = RateLimiter(milliTokens: milliTokens, lastRefill: lastRefill, strikes: strikes,
                                  burst: engine.sessionRules.rateBurst)
        return PlayerSession(host: engine, connection: connection, restoring: id, framer: framer, limiter: limiter,
                             lastRequest: lastRequest, identified: try reader.bool("identified"))
    }
}

extension UInt64 {
    /// Milliseconds from `earlier` to this loop time (0 if it is later).
    func ageOf(_ earlier: UInt64) -> UInt64 { self > earlier ? self - earlier : 0 }

    /// The loop time `age` milliseconds before this one (0 at the least).
    func minus(age: UInt64) -> UInt64 { self > age ? self - age : 0 }
}
