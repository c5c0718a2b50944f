import GameABI

/// A session outliving its connection (ABI 1.4, `--resume-grace`): the
/// engine's side of RESUME. The module parses its verb and asks
/// (`session_token`, `session_resume`); the engine makes, keeps (hashed),
/// checks and expires the tokens (`ResumeRegistry`), and moves sessions
/// between connections:
///
///     drop      the connection's PlayerSession lets go of the session,
///               whose output goes to an AwayPeer (newest lines kept);
///               the module hears hotswap_session_away (the game: >AWAY)
///     RESUME    checked in the call; when it returns normally, the new
///               connection's PlayerSession takes the session over, an
///               old connection still on it is told >REPLACED and closed,
///               the fresh session the request came from ends, the missed
///               lines follow the reply (after >MISSED n if some were
///               dropped), and the module hears hotswap_session_back
///     expiry    the sweep (once a second) ends away sessions whose grace
///               is over, as any close (the game: >LEAVE name timeout)
///
/// While away, a session keeps its room, fields, player and timers, holds
/// no descriptor and counts for neither --max-connections nor
/// --max-connections-per-ip; the new connection has its own rate limit,
/// output cap and deadlines.
extension Engine: SessionResumer {
    var resumeEnabled: Bool { sessionRules.resumeGraceMilliseconds > 0 }

    func issueToken(for session: GameID) -> [UInt8] { resumes.issue(for: session) }

    func checkResume(token: UnsafeRawBufferPointer, by fresh: GameID) throws(EngineError) -> (GameID, [UInt8]) {
        // Only a fresh connection takes a session over: one that logged in,
        // joined or holds a player would lose them without a word.
        guard let newcomer = world.peer(of: fresh) as? PlayerSession, !newcomer.isIdentified,
            (try? world.room(of: fresh)) == nil, (try? world.player(of: fresh)) == nil
        else { throw .notNow }
        let address = newcomer.connection.address
        let limited = address.map { !(limits.exemptLoopback && $0.isLoopback) } ?? false
        if limited, let address, resumeThrottle.isThrottled(address, now: now) {
            resumes.counters.refused += 1
            throw .limit
        }
        guard let target = resumes.session(holding: token), target != fresh, world.isOpen(session: target) else {
            resumes.counters.refused += 1
            if limited, let address { resumeThrottle.failed(address, now: now) }
            throw .notFound
        }
        return (target, resumes.noteResume(fresh: fresh, target: target, spent: token))
    }

    func isAway(_ session: GameID) -> Bool {
        if case .away = resumes.link(of: session) { return true }
        return false
    }

    var pendingMark: Int { resumes.pendingMark }

    func callEnded(committed: Bool, mark: Int) {
        guard resumes.hasPending else { return }
        guard committed else { return resumes.rollBackCall(to: mark) }
        if let pending = resumes.commitCall(isOpen: { world.isOpen(session: $0) }) { applyResume(pending) }
    }

    /// The session on `session`'s connection goes away instead of ending,
    /// if it holds a token, resume is on and the server is not stopping.
    /// Returns whether it did (the caller then closes the connection).
    func goAway(_ session: PlayerSession) -> Bool {
        let id = session.id
        guard resumeEnabled, !shuttingDown, world.isOpen(session: id), resumes.isResumable(id),
            world.peer(of: id) === session, resumes.awayCount < limits.maxAwaySessions
        else { return false }
        // What the old connection had queued and the kernel never took is
        // lost with it: the RESUME is told (>MISSED) along with the rest.
        let unsent = session.connection.unsentOutput
        let lost = unsent.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        session.detach()
        let away = AwayPeer(maxLines: limits.resumeBacklogLines, maxBytes: limits.resumeBacklogBytes,
                            identified: session.isIdentified)
        away.noteLost(lost)
        world.movePeer(of: id, to: away)
        let now = now
        resumes.wentAway(id, peer: away, now: now, deadline: now + sessionRules.resumeGraceMilliseconds)
        host.sessionAway(id)
        return true
    }

    /// A RESUME the module's call checked, now that the call returned
    /// normally. Nothing happens (the old token keeps working) if the
    /// fresh session or its connection went meanwhile.
    private func applyResume(_ pending: ResumeRegistry.PendingResume) {
        guard world.isOpen(session: pending.fresh), world.isOpen(session: pending.target),
            let newcomer = world.peer(of: pending.fresh) as? PlayerSession, newcomer.connection.state == .open
        else { return }
        var identified = true
        if let old = world.peer(of: pending.target) as? PlayerSession {
            // Still connected elsewhere (a phone's old network not yet
            // noticed dead): the newest connection wins, as a player expects.
            identified = old.isIdentified
            old.detach()
            old.connection.enqueue(line: Replies.replaced)
            old.connection.closeAfterFlush()
        } else if let away = world.peer(of: pending.target) as? AwayPeer {
            identified = away.identified
        }
        let away = resumes.resumed(pending)
        world.movePeer(of: pending.fresh, to: DiscardingPeer())
        world.movePeer(of: pending.target, to: newcomer)
        newcomer.attach(pending.target)
        newcomer.setIdentified(identified)
        // The fresh session ends like any other (the module is told).
        tearDown(pending.fresh)
        guard let away else { return }
        if away.dropped > 0 { Array(">MISSED \(away.dropped)".utf8).withUnsafeBytes { newcomer.connection.enqueue(line: $0) } }
        away.withPendingBytes { newcomer.connection.enqueue(bytes: $0) }
        host.sessionBack(pending.target)
    }

    /// Ends the away sessions whose grace is over (the sweep, once a second).
    func expireAwaySessions(now: UInt64) {
        for id in resumes.expired(now: now) {
            resumes.counters.expired += 1
            tearDown(id)
        }
    }
}
