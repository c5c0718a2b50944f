import Protocol

/// A player session's part of a connection record in an upgrade's handoff:
///
///     session id, unfinished line, ms since the last request,
///     bucket (milli-tokens, ms since its last refill, strikes), identified,
///     (format 4) the login being checked: kind (0: none), identity,
///     secret; the lines waiting behind it
///
/// A login being checked goes over as the ask, not as its request line:
/// the next engine checks it again (the worker's half-done hash is lost
/// with the process) and the module sees its request once. The secret
/// rides in the handoff's memfd, which only the next engine reads.
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
    var awaiting: AuthAsk?
    var heldLines: [UInt8] = []

    init(id: GameID, unfinishedLine: [UInt8], idleMilliseconds: UInt64, milliTokens: Int64,
         refillAgeMilliseconds: UInt64, strikes: Int, identified: Bool, awaiting: AuthAsk? = nil,
         heldLines: [UInt8] = [])
    {
        self.awaiting = awaiting
        self.heldLines = heldLines
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
        guard writer.format >= 4 else { return }
        writer.u8(awaiting?.kind.rawValue ?? 0)
        if let awaiting {
            writer.bytes(awaiting.identity)
            writer.bytes(awaiting.secret)
        }
        writer.bytes(heldLines)
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        id = GameID(raw: try reader.u64("session id"))
        unfinishedLine = try reader.bytes("unfinished line")
        idleMilliseconds = try reader.u64("idle time")
        milliTokens = try reader.i64("bucket")
        refillAgeMilliseconds = try reader.u64("bucket refill")
        strikes = try reader.int("strikes")
        identified = try reader.bool("identified")
        guard format >= 4 else { return }
        let kind = try reader.u8("login kind")
        if kind != 0 {
            guard let known = AuthAsk.Kind(rawValue: kind) else { throw .invalid("login kind \(kind)") }
            awaiting = AuthAsk(kind: known, session: id, identity: try reader.bytes("login identity"),
                               secret: try reader.bytes("login secret"))
        }
        heldLines = try reader.bytes("held lines")
    }

    func validate() throws(HandoffError) {
        guard id.kind == .session else { throw .invalid("\(id) is not a session") }
        guard awaiting != nil || heldLines.isEmpty else { throw .invalid("\(id) holds lines behind no login") }
        guard heldLines.isEmpty || heldLines.last == UInt8(ascii: "\n") else { throw .invalid("\(id) holds a line cut short") }
    }
}

extension PlayerSession {
    /// The session as it goes over, ages taken at `now`.
    func handoffRecord(now: UInt64) -> PlayerSessionRecord {
        PlayerSessionRecord(id: id, unfinishedLine: framer.bufferedBytes, idleMilliseconds: now.ageOf(lastRequest),
                            milliTokens: limiter.milliTokens, refillAgeMilliseconds: now.ageOf(limiter.lastRefill),
                            strikes: limiter.strikes, identified: identified, awaiting: awaiting,
                            heldLines: awaiting == nil ? [] : heldLines)
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
        let session = PlayerSession(host: engine, connection: connection, restoring: record.id, framer: framer,
                                    limiter: limiter, lastRequest: now.minus(age: record.idleMilliseconds),
                                    identified: record.identified)
        if let awaiting = record.awaiting { session.restoreAwaiting(awaiting, held: record.heldLines) }
        return session
    }
}

extension UInt64 {
    /// Milliseconds from `earlier` to this loop time (0 if it is later).
    func ageOf(_ earlier: UInt64) -> UInt64 { self > earlier ? self - earlier : 0 }

    /// The loop time `age` milliseconds before this one (0 at the least).
    func minus(age: UInt64) -> UInt64 { self > age ? self - age : 0 }
}
