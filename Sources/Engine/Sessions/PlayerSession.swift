import Protocol

/// A player's connection: frames its bytes into requests, enforces the
/// per-player limits (line length, rate, login and idle deadlines) and hands
/// each admitted request to the engine. It is also where World sends the
/// player's output (`SessionPeer`). It sees the engine only as a
/// `SessionHost`.
final class PlayerSession: ConnectionHandler, SessionPeer {
    unowned(unsafe) let host: any SessionHost
    unowned(unsafe) let rules: SessionRules
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
    /// The login being checked (ABI 1.4): until its answer, later lines
    /// wait in `held`, in order, and are handled after it.
    private(set) var awaiting: AuthAsk?
    /// Whole lines (LF-terminated) that arrived while `awaiting` (a real
    /// client sends a few behind a LOGIN; past `maxHeldBytes` reading stops).
    private(set) var held: [UInt8] = []
    private var heldStart = 0
    private var readingPaused = false
    private var replaying = false
    /// Past this many held bytes the socket is not read until the login is
    /// answered: a client cannot make the engine hold more by sending more.
    static let maxHeldBytes = 8192

    init(host: any SessionHost, connection: Connection, now: UInt64) {
        self.host = host
        rules = host.sessionRules
        self.connection = connection
        framer = LineFramer(maxLineLength: rules.maxLineLength)
        limiter = RateLimiter(now: now, burst: rules.rateBurst)
        lastRequest = now
    }

    /// Attaches the session World opened for this connection, or the one
    /// it resumed (ABI 1.4).
    func attach(_ id: GameID) { self.id = id }

    /// The session moved on without this connection (it went away, or
    /// another connection resumed it): this connection's close no longer
    /// touches it.
    func detach() { id = GameID(raw: 0) }

    /// The session a previous engine served on this connection (an
    /// upgrade): its id in the handed-over World, the unfinished line, its
    /// bucket, when it last sent a request, and whether it logged in.
    init(host: any SessionHost, connection: Connection, restoring id: GameID, framer: LineFramer, limiter: RateLimiter,
         lastRequest: UInt64, identified: Bool)
    {
        self.host = host
        rules = host.sessionRules
        self.connection = connection
        self.id = id
        self.framer = framer
        self.limiter = limiter
        self.lastRequest = lastRequest
        self.identified = identified
    }

    // MARK: - ConnectionHandler

    func received(_ bytes: UnsafeRawBufferPointer) {
        let host = host
        let rules = rules
        let now = host.now
        let outcome = framer.feed(bytes) { line in
            lastRequest = now
            if limiter.admit(now: now, rate: rules.rateLimit, burst: rules.rateBurst) {
                if awaiting != nil { hold(line) } else { dispatchCharged(line) }
            } else if limiter.strikes >= rules.rateStrikes {
                host.count(.rateLimited)
                host.count(.rateLimitClose)
                host.logger.warning("closing a session that keeps flooding", metadata: ["session": "\(id)"])
                connection.enqueue(line: Replies.rateLimitedClosing)
                host.endSession(self, flush: true)
            } else {
                host.count(.rateLimited)
                connection.enqueue(line: Replies.rateLimited)
            }
            return connection.state == .open
        }
        if outcome == .lineTooLong {
            host.count(.lineTooLong)
            connection.enqueue(line: Replies.lineTooLong)
            host.endSession(self, flush: true)
        }
    }

    /// Hands a line to the engine, and charges the bucket for the bytes it
    /// made the engine queue for other sessions (`--rate-fan-out-bytes`).
    @inline(__always)
    private func dispatchCharged(_ line: UnsafeRawBufferPointer) {
        let told = connection.transport.fanOutBytes
        host.dispatch(line, from: self)
        limiter.charge(fanOut: connection.transport.fanOutBytes &- told, bytesPerToken: rules.rateFanOutBytes,
                       rate: rules.rateLimit, burst: rules.rateBurst)
    }

    // MARK: - A login being checked

    /// The request just handled asked for a login (`auth_login`).
    func beginAwaiting(_ ask: AuthAsk) { awaiting = ask }

    /// A session an upgrade handed over while its login was checked: the
    /// check runs again here, and the lines behind it still wait.
    func restoreAwaiting(_ ask: AuthAsk, held lines: [UInt8]) {
        awaiting = ask
        held = lines
    }

    /// The login was answered: the lines that waited are handled now, in
    /// order, until one of them asks for a login again.
    func endAwaiting() {
        awaiting = nil
        // The answer may come while held lines are being replayed (a
        // verdict given at once): the replay under way goes on.
        guard !replaying else { return }
        replaying = true
        defer { replaying = false }
        while awaiting == nil, heldStart < held.count, connection.state == .open {
            guard let newline = held[heldStart...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            // A copy: the handler may hold a new line or end the session.
            let line = Array(held[heldStart..<newline])
            heldStart = newline + 1
            lastRequest = host.now
            // As if just read: its replies are replies (written at once,
            // never held for a tick), and only its fan-out is charged.
            connection.transport.requester = connection
            line.withUnsafeBytes { dispatchCharged($0) }
            connection.transport.requester = nil
        }
        if heldStart >= held.count {
            held = []
            heldStart = 0
        }
        if readingPaused, awaiting == nil, connection.state == .open {
            readingPaused = false
            do { try connection.startReading() } catch { connection.abort() }
        }
    }

    private func hold(_ line: UnsafeRawBufferPointer) {
        held.append(contentsOf: line)
        held.append(UInt8(ascii: "\n"))
        if !readingPaused, held.count - heldStart > Self.maxHeldBytes {
            readingPaused = true
            connection.stopReading()
        }
    }

    /// What waits behind the login, for an upgrade's handoff.
    var heldLines: [UInt8] { Array(held[heldStart...]) }

    func peerClosed(clean: Bool) {
        host.connectionDropped(self, clean: clean)
    }

    func connectionClosing() {
        host.connectionLost(self)
    }

    // MARK: - SessionPeer

    func deliver(_ line: UnsafeRawBufferPointer) {
        connection.enqueue(line: line)
    }

    var isIdentified: Bool { identified }
    func setIdentified(_ identified: Bool) { self.identified = identified }

    var journalEpoch: UInt64 = 0
    func outputMark() -> Int { connection.outputMark }
    func setHeld(_ held: Bool) { connection.setHeld(held) }
    func releaseHeld() { connection.releaseHeld() }
    func rollBackOutput(to mark: Int) { connection.rollBackOutput(to: mark) }

    /// World removed the session: close once its output is written.
    func sessionEnded() {
        if connection.state == .open { connection.closeAfterFlush() }
    }

    /// Silent past its deadline: the login timeout until the logic
    /// identified it, then the idle timeout, counted from the last request.
    func deadlinePassed(now: UInt64) -> Bool {
        let seconds = identified ? rules.idleTimeout : rules.loginTimeout
        return seconds > 0 && now >= lastRequest + UInt64(seconds) * 1000
    }

    func expire() {
        // Another expiry in the same sweep may have closed it already.
        guard connection.state == .open else { return }
        host.count(.idleClose)
        connection.enqueue(line: identified ? Replies.idleTimeout : Replies.loginTimeout)
        host.endSession(self, flush: true)
    }
}
