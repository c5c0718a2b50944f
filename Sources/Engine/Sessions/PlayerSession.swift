import Protocol

/// A player's connection: frames its bytes into requests, enforces the
/// per-player limits (line length, rate, login and idle deadlines) and hands
/// each admitted request to the engine. It is also where World sends the
/// player's output (`SessionPeer`).
final class PlayerSession: ConnectionHandler, SessionPeer {
    unowned(unsafe) let engine: Engine
    unowned(unsafe) let connection: Connection
    /// The session in World; stale once it is torn down.
    private(set) var id = GameID(raw: 0)
    // `@exclusivity(unchecked)` on the properties touched on every request
    // or every loop turn: the class is used from the loop thread only, and
    // Swift's dynamic exclusivity checks on them cost about 10% of a PING
    // (BENCHMARKS.md, "Current build (exclusivity checks off on the hot
    // properties)").
    // `private(set)`: an upgrade reads them (PlayerSession+Handoff.swift).
    @exclusivity(unchecked) private(set) var framer: LineFramer
    @exclusivity(unchecked) private(set) var limiter: RateLimiter
    /// Loop time (ms) of the last request: the idle deadline counts from
    /// it. Bytes that do not finish a line do not count as a request.
    @exclusivity(unchecked) private(set) var lastRequest: UInt64
    /// Set once the logic says who this is (login): longer idle timeout.
    private(set) var identified = false

    init(engine: Engine, connection: Connection, now: UInt64) {
        self.engine = engine
        self.connection = connection
        framer = LineFramer(maxLineLength: engine.limits.maxLineLength)
        limiter = RateLimiter(now: now, burst: engine.rateBurst)
        lastRequest = now
    }

    /// Attaches the session World opened for this connection.
    func attach(_ id: GameID) { self.id = id }

    /// The session a previous engine served on this connection (an
    /// upgrade): its id in the handed-over World, the unfinished line, its
    /// bucket, when it last sent a request, and whether it logged in.
    init(engine: Engine, connection: Connection, restoring id: GameID, framer: LineFramer, limiter: RateLimiter,
         lastRequest: UInt64, identified: Bool)
    {
        self.engine = engine
        self.connection = connection
        self.id = id
        self.framer = framer
        self.limiter = limiter
        self.lastRequest = lastRequest
        self.identified = identified
    }

    // MARK: - ConnectionHandler

    func received(_ bytes: UnsafeRawBufferPointer) {
        let engine = engine
        let now = engine.now
        let outcome = framer.feed(bytes) { line in
            lastRequest = now
            if limiter.admit(now: now, rate: engine.rateLimit, burst: engine.rateBurst) {
                engine.dispatch(line, from: self)
            } else if limiter.strikes >= engine.rateStrikes {
                engine.counters.rateLimited += 1
                engine.counters.rateLimitCloses += 1
                engine.logger.warning("closing a session that keeps flooding", metadata: ["session": "\(id)"])
                connection.enqueue(line: Replies.rateLimitedClosing)
                engine.endSession(self, flush: true)
            } else {
                engine.counters.rateLimited += 1
                connection.enqueue(line: Replies.rateLimited)
            }
            return connection.state == .open
        }
        if outcome == .lineTooLong {
            engine.counters.lineTooLong += 1
            connection.enqueue(line: Replies.lineTooLong)
            engine.endSession(self, flush: true)
        }
    }

    func peerClosed(clean: Bool) {
        if clean {
            engine.endSession(self, flush: true)
        } else {
            connection.abort()
        }
    }

    func connectionClosing() {
        engine.tearDown(id)
    }

    // MARK: - SessionPeer

    func deliver(_ line: UnsafeRawBufferPointer) {
        connection.enqueue(line: line)
    }

    var isIdentified: Bool { identified }
    func setIdentified(_ identified: Bool) { self.identified = identified }

    var journalEpoch: UInt64 = 0
    func outputMark() -> Int { connection.outputMark }
    func rollBackOutput(to mark: Int) { connection.rollBackOutput(to: mark) }

    /// World removed the session: close once its output is written.
    func sessionEnded() {
        if connection.state == .open { connection.closeAfterFlush() }
    }

    /// Silent past its deadline: the login timeout until the logic
    /// identified it, then the idle timeout, counted from the last request.
    func deadlinePassed(now: UInt64) -> Bool {
        let seconds = identified ? engine.limits.idleTimeout : engine.limits.loginTimeout
        return seconds > 0 && now >= lastRequest + UInt64(seconds) * 1000
    }

    func expire() {
        // Another expiry in the same sweep may have closed it already.
        guard connection.state == .open else { return }
        engine.counters.idleCloses += 1
        connection.enqueue(line: identified ? Replies.idleTimeout : Replies.loginTimeout)
        engine.endSession(self, flush: true)
    }
}
