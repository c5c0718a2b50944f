import Logging

/// `--metrics-port`: HTTP/1.1 on the engine's own loop, through the same
/// transport as players and operators (a `.metrics` listener, `Connection`s,
/// a `MetricsSession` handler each).
///
///     GET /metrics   200, the Prometheus text format (Exposition)
///     GET /healthz   200 "ok": answered by the loop, so a stuck loop fails it
///     GET /readyz    200 once serving, 503 from the start of a shutdown
///     other paths    404; other methods 405; bad or oversized requests 400
///
/// It never holds up the game: a request is answered in the callback that
/// completed it (no I/O but the reply, which the transport writes at the
/// end of the turn like any other), the exposition is rendered at most once
/// per loop turn however many requests ask for it in that turn (a client
/// pipelining thousands of scrapes gets copies, until its output limit cuts
/// it off), connections are capped (`--max-metrics-connections`; past it a
/// new connection takes the place of the stalest, so a handful of silent
/// clients cannot make a liveness probe fail), and each has a header and
/// an idle deadline (`MetricsSession`).
final class MetricsServer {
    unowned(unsafe) let engine: any MetricsTarget
    let exposition = Exposition()
    let maxConnections: Int
    let maxRequestBytes: Int
    let headerTimeoutMilliseconds: UInt64
    let idleTimeoutMilliseconds: UInt64
    private var sessions = SlotList<MetricsSession>()
    /// Responses sent, by `HTTPStatus.index`.
    private var responses = [Int](repeating: 0, count: HTTPStatus.allCases.count)
    /// The last exposition and the loop turn it was rendered in.
    private var rendered: (turn: UInt64, body: [UInt8])?
    /// Shutting down: every response closes its connection.
    private(set) var stopping = false

    init(engine: any MetricsTarget) {
        self.engine = engine
        let limits = engine.limits
        maxConnections = limits.maxMetricsConnections
        maxRequestBytes = limits.maxMetricsRequestBytes
        headerTimeoutMilliseconds = UInt64(limits.metricsHeaderTimeout) * 1000
        idleTimeoutMilliseconds = UInt64(limits.metricsIdleTimeout) * 1000
    }

    var connectionCount: Int { sessions.count }

    func responseCount(_ status: HTTPStatus) -> Int { responses[status.index] }

    // MARK: - Connections

    func accept(_ connection: Connection) {
        if sessions.count >= maxConnections {
            // As the admin port does: the newcomer (a probe, Prometheus)
            // takes the place of the stalest, so silent connections cannot
            // keep /healthz answering 503.
            guard let victim = stalest() else {
                send(.serviceUnavailable, body: "too many metrics connections\n", close: true, on: connection)
                return
            }
            evicted += 1
            if engine.now >= nextEvictionLogAt {
                nextEvictionLogAt = engine.now + 10_000
                engine.logger.warning("metrics: every connection slot taken (--max-metrics-connections); closing the stalest for a new one (\(evicted) so far)")
            }
            sessions.remove(victim)
            victim.connection.abort()
        }
        accepts += 1
        let session = MetricsSession(server: self, connection: connection, now: engine.now, acceptOrder: accepts)
        sessions.insert(session)
        connection.handler = session
        do {
            try connection.startReading()
        } catch {
            connection.abort()
        }
    }

    func sessionClosed(_ session: MetricsSession) { sessions.remove(session) }

    /// Connections closed to make room for a new one.
    private(set) var evicted = 0
    private var nextEvictionLogAt: UInt64 = 0
    private var accepts = 0

    /// Who goes when the slots are full: a connection that never sent a
    /// whole request (oldest first), else the one idle the longest. One in
    /// the middle of a request head stays unless all are.
    private func stalest() -> MetricsSession? {
        func staler(_ a: MetricsSession, _ b: MetricsSession) -> Bool {
            (a.idleSince, a.acceptOrder) < (b.idleSince, b.acceptOrder)
        }
        if let oldest = sessions.filter({ !$0.answeredOnce }).min(by: staler) { return oldest }
        return sessions.filter { !$0.inRequest }.min(by: staler) ?? sessions.min(by: staler)
    }

    /// The engine is shutting down: `/readyz` says so from now on, idle
    /// connections close, and every later response closes its connection.
    /// The port itself stays open until the engine's last handles close.
    func shutdown() {
        stopping = true
        for session in sessions where !session.inRequest { session.connection.closeAfterFlush() }
    }

    /// A swap happened (reload, rollback or automatic rollback).
    func swapped(_ report: SwapReport) {
        exposition.reloadHeld.record(Double(report.heldMicroseconds) / 1e6)
    }

    // MARK: - Requests

    /// Answers one request; returns whether to read the next one.
    func respond(to request: HTTPRequestHead, on session: MetricsSession) -> Bool {
        let connection = session.connection
        let close = !request.keepAlive || stopping
        let headOnly = request.method == .head
        if request.method == .other {
            send(.methodNotAllowed, body: Array("only GET and HEAD are served\n".utf8), close: close, allow: true, on: connection)
        } else {
            switch request.target {
            case .metrics:
                send(.ok, contentType: HTTPResponse.metricsContentType, body: renderedExposition(), headOnly: headOnly,
                     close: close, on: connection)
            case .healthz:
                send(.ok, body: Array("ok\n".utf8), headOnly: headOnly, close: close, on: connection)
            case .readyz:
                if engine.ready {
                    send(.ok, body: Array("ready\n".utf8), headOnly: headOnly, close: close, on: connection)
                } else {
                    let why = engine.shuttingDown ? "shutting down\n" : "not serving yet\n"
                    send(.serviceUnavailable, body: Array(why.utf8), headOnly: headOnly, close: close, on: connection)
                }
            case .other:
                send(.notFound, body: Array("not found: try /metrics, /healthz or /readyz\n".utf8), headOnly: headOnly,
                     close: close, on: connection)
            }
        }
        // A client that pipelines more than its output limit is cut off at
        // the end of the turn; nothing more is rendered for it meanwhile.
        return connection.state == .open && !connection.overOutputLimit
    }

    /// A malformed or oversized request: 400, then close (the rest of the
    /// stream cannot be trusted).
    func refuse(_ error: HTTPRequestError, on session: MetricsSession) {
        engine.logger.info("metrics: bad request, closing: \(error)", metadata: ["peer": "\(session.connection.peer)"])
        send(.badRequest, body: Array("bad request: \(error)\n".utf8), close: true, on: session.connection)
    }

    /// A request head that did not arrive in time: 408, then close.
    func timedOut(_ session: MetricsSession) {
        engine.logger.info("metrics: request head not complete within --metrics-header-timeout; closing")
        send(.requestTimeout, body: Array("request head not complete in time\n".utf8), close: true, on: session.connection)
    }

    /// The exposition, rendered at most once per loop turn.
    private func renderedExposition() -> [UInt8] {
        let turn = engine.turns
        if let rendered, rendered.turn == turn { return rendered.body }
        let body = exposition.render(engine.snapshot(), process: ProcessStats.read(), module: engine.servingModule)
        rendered = (turn, body)
        return body
    }

    private func send(_ status: HTTPStatus, contentType: String = HTTPResponse.textContentType, body: String,
                      close: Bool, on connection: Connection)
    {
        send(status, contentType: contentType, body: Array(body.utf8), close: close, on: connection)
    }

    private func send(_ status: HTTPStatus, contentType: String = HTTPResponse.textContentType, body: [UInt8],
                      headOnly: Bool = false, close: Bool, allow: Bool = false, on connection: Connection)
    {
        responses[status.index] += 1
        let bytes = HTTPResponse.bytes(status, contentType: contentType, body: body, headOnly: headOnly, close: close,
                                       allow: allow)
        bytes.withUnsafeBytes { connection.enqueue(bytes: $0) }
        if close { connection.closeAfterFlush() }
    }
}
