import Protocol

/// A player session's part of a connection record in an upgrade's handoff:
///
///     session id, unfinished line, ms since the last request,
///     bucket (milli-tokens, ms since its last refill, strikes), identified
///
/// Times go over as ages, not loop times: the next engine's loop has its
/// own clock reading, and a deadline is "this long since", either way.
struct PlayerSessionRecord: HandoffRecord, Equatable {
    var id: GameID
    var unfinishedLine: [UInt8]
    var idleMilliseconds: UInt64
    var milliTokens: Int64
    var refillAgeMilliseconds: UInt64
    var strikes: Int
    var identified: Bool

    init(id: GameID, unfinishedLine: [UInt8], idleMilliseconds: UInt64, milliTokens: Int64,
         refillAgeMilliseconds: UInt64, strikes: Int, identified: Bool)
    {
        self.id = id
        self.unfinishedLine = unfinishedLine
        self.idleMilliseconds = idleMilliseconds
        self.milliTokens = milliTokens
        self.refillAgeMilliseconds = refillAgeMilliseconds
        self.strikes = strikes
        self.identified = identified
    }

    func encode(into writer: inout HandoffWriter) {
        writer.u64(id.raw)
        writer.bytes(unfinishedLine)
        writer.u64(idleMilliseconds)
        writer.i64(milliTokens)
        writer.u64(refillAgeMilliseconds)
        writer.int(strikes)
        writer.bool(identified)
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        id = GameID(raw: try reader.u64("session id"))
        unfinishedLine = try reader.bytes("unfinished line")
        idleMilliseconds = try reader.u64("idle time")
        milliTokens = try reader.i64("bucket")
        refillAgeMilliseconds = try reader.u64("bucket refill")
        strikes = try reader.int("strikes")
        identified = try reader.bool("identified")
    }

    func validate() throws(HandoffError) {
        guard id.kind == .session else { throw .invalid("\(id) is not a session") }
    }
}

extension PlayerSession {
    /// The session as it goes over, ages taken at `now`.
    func handoffRecord(now: UInt64) -> PlayerSessionRecord {
        PlayerSessionRecord(id: id, unfinishedLine: framer.bufferedBytes, idleMilliseconds: now.ageOf(lastRequest),
                            milliTokens: limiter.milliTokens, refillAgeMilliseconds: now.ageOf(limiter.lastRefill),
                            strikes: limiter.strikes, identified: identified)
    }

    /// The session a record describes, on `connection`, under this
    /// engine's limits (an unfinished line longer than its
    /// `--max-line-length` is refused).
    static func restore(_ record: PlayerSessionRecord, engine: Engine, connection: Connection,
                        now: UInt64) throws(HandoffError) -> PlayerSession
    {
        var framer = LineFramer(maxLineLength: engine.sessionRules.maxLineLength)
        guard framer.restore(buffered: record.unfinishedLine) else {
            throw .invalid("\(record.id) holds an unfinished line this engine's --max-line-length refuses")
        }
        let limiter = RateLimiter(milliTokens: record.milliTokens, lastRefill: now.minus(age: record.refillAgeMilliseconds),
                                  strikes: record.strikes, burst: engine.sessionRules.rateBurst)
        return PlayerSession(host: engine, connection: connection, restoring: record.id, framer: framer,
                             limiter: limiter, lastRequest: now.minus(age: record.idleMilliseconds),
                             identified: record.identified)
    }
}

extension UInt64 {
    /// Milliseconds from `earlier` to this loop time (0 if it is later).
    func ageOf(_ earlier: UInt64) -> UInt64 { self > earlier ? self - earlier : 0 }

    /// The loop time `age` milliseconds before this one (0 at the least).
    func minus(age: UInt64) -> UInt64 { self > age ? self - age : 0 }
}
