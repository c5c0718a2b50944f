import Protocol

/// An operator's connection on the admin port: frames lines, keeps replies
/// in the order of requests even when one (RELOAD) answers later, and has
/// its own deadlines: an unauthenticated connection must authenticate
/// within `--admin-auth-timeout`, an idle one is closed after
/// `--admin-idle-timeout`, so silent connections cannot hold the slots.
final class AdminSession: ConnectionHandler, Slotted {
    /// What waits behind a pending RELOAD (or UPGRADE).
    enum Backlog: Equatable {
        case line([UInt8])
        /// The line after the queued ones was over the limit: answer, close.
        case lineTooLong
    }

    unowned(unsafe) let console: AdminConsole
    unowned(unsafe) let connection: Connection
    // `private(set)`: an engine upgrade reads them (AdminSession+Handoff.swift).
    private(set) var framer: LineFramer
    /// Has sent the right token (or none is needed).
    private(set) var authenticated: Bool
    private(set) var failedAuths = 0
    /// A command is waiting for a background reload: later lines wait in
    /// the backlog so replies keep the order of requests.
    private(set) var waiting = false
    private(set) var backlog: [Backlog] = []
    /// The operator half-closed while waiting: close once answered.
    private(set) var closeWhenAnswered = false
    /// Loop time (ms) of the last complete line.
    private(set) var lastRequest: UInt64
    /// Loop time (ms) of the connection: the auth deadline counts from it,
    /// so a connection that only sends PING cannot stay unauthenticated.
    let openedAt: UInt64
    /// Position in the console's list of admin sessions.
    var slot = -1

    init(console: AdminConsole, connection: Connection, now: UInt64, authenticated: Bool) {
        self.console = console
        self.connection = connection
        self.framer = LineFramer(maxLineLength: console.limits.maxLineLength)
        self.authenticated = authenticated
        self.lastRequest = now
        self.openedAt = now
    }

    /// The session a previous engine served on this connection (an
    /// upgrade), as it was. `waiting` is set for the one that asked for the
    /// upgrade: its reply comes from this engine (`answer`), then what
    /// waited behind it runs.
    init(console: AdminConsole, connection: Connection, framer: LineFramer, authenticated: Bool, failedAuths: Int,
         openedAt: UInt64, lastRequest: UInt64, waiting: Bool, backlog: [Backlog], closeWhenAnswered: Bool)
    {
        self.console = console
        self.connection = connection
        self.framer = framer
        self.authenticated = authenticated
        self.failedAuths = failedAuths
        self.openedAt = openedAt
        self.lastRequest = lastRequest
        self.waiting = waiting
        self.backlog = backlog
        self.closeWhenAnswered = closeWhenAnswered
    }

    /// The reply to the command this session waits on, given by whoever
    /// finished it (the next engine, for an UPGRADE); then the lines that
    /// waited behind it run.
    func answer(_ reply: String) {
        guard waiting else { return }
        send(reply)
        waiting = false
        drainBacklog()
    }

    // MARK: - ConnectionHandler

    func received(_ bytes: UnsafeRawBufferPointer) {
        let now = console.now
        let outcome = framer.feed(bytes) { line in
            lastRequest = now
            if waiting {
                guard backlog.count < console.limits.maxAdminBacklog else {
                    backlog.removeAll()
                    closeWhenAnswered = true
                    connection.stopReading()
                    return false
                }
                backlog.append(.line(Array(line)))
            } else {
                run(line)
            }
            return connection.state == .open && !closeWhenAnswered
        }
        if outcome == .lineTooLong {
            // Behind a pending reload, the reload's reply must come first.
            backlog.append(.lineTooLong)
            if !waiting { drainBacklog() }
        }
    }

    func peerClosed(clean: Bool) {
        if clean && waiting {
            // `echo RELOAD | nc`: the operator half-closed; answer first.
            closeWhenAnswered = true
            connection.stopReading()
        } else if clean {
            connection.closeAfterFlush()
        } else {
            connection.abort()
        }
    }

    func connectionClosing() {
        backlog.removeAll()
        console.sessionClosed(self)
    }

    // MARK: - Commands

    /// Runs one line; a command that answers later holds the lines after it
    /// in the backlog until it has.
    private func run(_ line: UnsafeRawBufferPointer) {
        var answered = false
        waiting = true
        // Weak: the connection may close while a reload runs; the session is
        // then gone by the time the answer comes, and nobody is left to tell.
        let reply = console.execute(AdminCommand(line: line), for: self) { [weak self] later in
            answered = true
            guard let self else { return }
            send(later)
            waiting = false
            drainBacklog()
        }
        if let reply {
            waiting = false
            send(reply)
        } else if answered {
            // The command failed before anything was queued; its reply is out.
            waiting = false
        }
    }

    /// Runs the lines that waited behind a reload, in order, until one waits
    /// again; then closes if the operator had already hung up.
    private func drainBacklog() {
        while !waiting, connection.state == .open, !backlog.isEmpty {
            switch backlog.removeFirst() {
            case .line(let bytes):
                bytes.withUnsafeBytes { run($0) }
            case .lineTooLong:
                connection.enqueue(line: Replies.lineTooLong)
                connection.closeAfterFlush()
                return
            }
        }
        if !waiting && closeWhenAnswered {
            if !backlog.isEmpty { connection.enqueue(line: Replies.backlogFull) }
            connection.closeAfterFlush()
        }
    }

    func send(_ reply: String) {
        reply.utf8CString.withUnsafeBufferPointer { text in
            connection.enqueue(line: UnsafeRawBufferPointer(start: text.baseAddress, count: text.count - 1))
        }
    }

    /// AUTH outcomes: the console checks the token, the session keeps score.
    func authenticationSucceeded() { authenticated = true }

    /// Returns true when this was one failure too many (the caller closes).
    func authenticationFailed() -> Bool {
        failedAuths += 1
        return failedAuths >= console.limits.maxFailedAuths
    }

    var failedAttempts: Int { failedAuths }

    func expire() {
        console.sessionTimedOut(self)
        connection.enqueue(line: Replies.adminTimeout)
        connection.closeAfterFlush()
    }

    /// Past its deadline at `now`: the auth deadline until authenticated,
    /// then the idle one. A session waiting on a reload never expires.
    func deadlinePassed(now: UInt64) -> Bool {
        guard !waiting else { return false }
        if authenticated { return now >= lastRequest + UInt64(console.limits.adminIdleTimeout) * 1000 }
        return now >= openedAt + UInt64(console.limits.adminAuthTimeout) * 1000
    }
}
