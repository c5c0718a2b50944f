/// One HTTP connection to the metrics port: parses its requests (pipelined
/// ones in order) and has the server answer each, and enforces its
/// deadlines. A request head must arrive whole within
/// `--metrics-header-timeout` of its first byte, and the first one within
/// that time of the accept (a connection that says nothing holds no slot
/// for long), so a client that trickles its headers (slow loris) or stays
/// silent is answered 408 and closed; a kept-alive connection with no
/// request started after an answered one is closed after
/// `--metrics-idle-timeout`. The engine's once-a-second sweep checks both.
final class MetricsSession: ConnectionHandler, Slotted {
    unowned(unsafe) let server: MetricsServer
    unowned(unsafe) let connection: Connection
    private var parser: HTTPRequestParser
    /// Loop time (ms) of the first byte of the request not yet complete;
    /// nil while no request has started.
    private var requestStartedAt: UInt64?
    /// Loop time (ms) since which the connection has had nothing to do.
    private(set) var idleSince: UInt64
    /// Whether a request was answered on it (a silent new connection is
    /// the first to go when the slots are full).
    private(set) var answeredOnce = false
    /// The server's count of accepts when this one came: breaks ties
    /// between connections idle since the same millisecond.
    let acceptOrder: Int
    /// Position in the server's list of sessions.
    var slot = -1

    init(server: MetricsServer, connection: Connection, now: UInt64, acceptOrder: Int) {
        self.server = server
        self.connection = connection
        self.acceptOrder = acceptOrder
        parser = HTTPRequestParser(maxHeadBytes: server.maxRequestBytes)
        idleSince = now
        // The header deadline starts at the accept.
        requestStartedAt = now
    }

    /// Bytes of an unfinished request have arrived.
    var inRequest: Bool { parser.inRequest }

    // MARK: - ConnectionHandler

    func received(_ bytes: UnsafeRawBufferPointer) {
        let now = server.engine.now
        let wasInRequest = parser.inRequest
        var answered = false
        let outcome = parser.feed(bytes) { request in
            answered = true
            return server.respond(to: request, on: self)
        }
        if case .invalid(let error) = outcome {
            server.refuse(error, on: self)
            return
        }
        // The header deadline counts from the first byte of each request:
        // one that follows an answered request starts now.
        if answered { answeredOnce = true }
        if parser.inRequest {
            // (Before the first request, the deadline runs from the accept.)
            if answered || (!wasInRequest && answeredOnce) { requestStartedAt = now }
        } else if answered || answeredOnce {
            requestStartedAt = nil
            if answered { idleSince = now }
        }
    }

    func peerClosed(clean: Bool) {
        if clean { connection.closeAfterFlush() } else { connection.abort() }
    }

    func connectionClosing() {
        server.sessionClosed(self)
    }

    func deadlinePassed(now: UInt64) -> Bool {
        if let started = requestStartedAt { return now >= started + server.headerTimeoutMilliseconds }
        return now >= idleSince + server.idleTimeoutMilliseconds
    }

    func expire() {
        guard connection.state == .open else { return }
        if requestStartedAt != nil {
            server.timedOut(self)
        } else {
            connection.closeAfterFlush()
        }
    }
}
