import GameABI

/// A login or change of secret a request asked for (`auth_login`,
/// `auth_set_secret`): answered by `hotswap_auth` after the request.
struct FakeAuthAsk {
    var isLogin: Bool
    var session: game_id
    var identity: [UInt8]
    var secret: [UInt8]
}

/// A RESUME a request checked: applied once the request returned.
struct FakeResume {
    var fresh: game_id
    var target: game_id
}

/// The module call in progress: what it may do and what it did that is
/// applied after it returns (reply, login, RESUME, closes), and the state
/// at its start, which `undo` puts back.
struct FakeCall {
    enum Kind: String {
        case request = "hotswap_handle", auth = "hotswap_auth", hook = "a session hook"
        case timer = "hotswap_timer", tick = "hotswap_tick"
        case migrate = "hotswap_migrate", load = "hotswap_load"
    }

    let kind: Kind
    /// The session whose request is answered (requests and auth), else 0.
    let session: game_id
    var reply: String?
    var authAsk: FakeAuthAsk?
    var resume: FakeResume?
    /// `pendingCloses.count` when the call began.
    let closesMark: Int
    let snapshot: FakeState
    /// While a stored player migrates: the one entity that may be written.
    var onlyWritable: game_id = 0

    /// Migrate and load hooks run on staged state: no output, no changes
    /// of who is where.
    var isMigrating: Bool { kind == .migrate || kind == .load }
    var answersRequest: Bool { kind == .request || kind == .auth }
}

extension FakeHost {
    func beginCall(_ kind: FakeCall.Kind, session: game_id = 0, onlyWritable: game_id = 0) {
        precondition(call == nil, "the fake host is not re-entrant: a module call is already running")
        call = FakeCall(kind: kind, session: session, closesMark: pendingCloses.count, snapshot: state,
                        onlyWritable: onlyWritable)
    }

    func endCall() -> FakeCall {
        defer { call = nil }
        return call!
    }

    /// Runs one request through `hotswap_handle` and returns its reply.
    func request(_ line: [UInt8], from connection: FakeSession) -> String {
        let session = connection.id
        beginCall(.request, session: session)
        let status = line.withUnsafeBufferPointer { buffer -> Int32 in
            // An empty line still gets a valid pointer, as from the engine.
            let bytes = buffer.baseAddress ?? UnsafeRawPointer(table).assumingMemoryBound(to: UInt8.self)
            var message = game_message(session: session, line: bytes, length: buffer.count)
            return module.handle!(&message, table)
        }
        let done = endCall()
        var answer = done.reply ?? ""
        if done.reply == nil && done.authAsk == nil { answer = defaultReply(status, export: "hotswap_handle") }
        if let resume = done.resume { applyResume(resume, to: connection) }
        afterCall()
        if let ask = done.authAsk { answer = answerAuth(ask) }
        return answer
    }

    /// The engine's line for a request the module did not answer.
    func defaultReply(_ status: Int32, export: String) -> String {
        if status == GAME_OK {
            violations.append("\(export) returned GAME_OK without replying: the engine answers \"\(FakeReplies.noReply)\"")
            return FakeReplies.noReply
        }
        violations.append("\(export) returned \(FakeStatus.name(status)) without replying: the engine answers \"\(FakeReplies.moduleFailed)\"")
        return FakeReplies.moduleFailed
    }

    /// Calls a session hook (closed, away, back): no reply; what it asks
    /// for happens after it.
    func callHook(_ hook: FakeModule.SessionHook?, _ session: game_id) {
        guard let hook else { return }
        beginCall(.hook)
        hook(session, table)
        _ = endCall()
        afterCall()
    }

    /// What the module asked to happen after its call: closes, then the
    /// rooms left empty are destroyed.
    func afterCall() {
        while let id = pendingCloses.popLast() { tearDown(id) }
        state.destroyRoomsLeftEmpty()
    }

    /// Ends a session: its close hook runs (it still sees the session, its
    /// room and player), then it leaves its room, its player is detached,
    /// its timers end; its connection is closed with what was queued.
    func tearDown(_ id: game_id) {
        guard state.isOpen(id) else { return }
        state.sessions[id]?.closing = true
        callHook(module.sessionClosed, id)
        let queued = (state.outbox[id] ?? []) + (state.held[id] ?? [])
        state.removeSession(id)
        for connection in connections where connection.isConnected && connection.id == id {
            connection.isConnected = false
            connection.leftover += queued
        }
        connections.removeAll { !$0.isConnected }
    }

    /// `undo`: the state as the call found it; its output, reply, closes,
    /// tokens, timers, login and RESUME are gone. The call goes on.
    func undoCall() throws(FakeStatus) {
        guard var current = call else { throw FakeStatus(GAME_ERR_STATE, "undo outside a module call") }
        guard !current.isMigrating else {
            throw FakeStatus(GAME_ERR_STATE, "undo in \(current.kind.rawValue): return an error instead (the whole reload is undone)")
        }
        state = current.snapshot
        current.reply = nil
        current.authAsk = nil
        current.resume = nil
        if pendingCloses.count > current.closesMark { pendingCloses.removeSubrange(current.closesMark...) }
        call = current
    }
}
