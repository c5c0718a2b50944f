import Logging

/// The engine's resume tokens and the link state of every session that
/// holds one (`SessionLink`): which token names which session (by its
/// SHA-256 only), which sessions are away and until when, and the
/// counters STATUS shows. Pure bookkeeping: `Engine+Resume.swift` moves
/// connections and peers, and calls the module's hooks.
///
/// Tokens are issued and spent inside module calls (`session_token`,
/// `session_resume`); what a call did is kept only when it returns
/// normally (`commitCall`), like World's journal, so a faulted LOGIN or
/// RESUME leaves the tokens as they were.
final class ResumeRegistry {
    struct Entry {
        var link: Lifecycle<SessionLink>
        var token: TokenHash
    }

    /// A RESUME checked inside a call, applied when it returns normally.
    struct PendingResume {
        /// The fresh session whose connection asked.
        let fresh: GameID
        /// The session the token named.
        let target: GameID
        let spent: TokenHash
        let issued: TokenHash
    }

    struct Counters: Equatable {
        /// RESUMEs that reattached a session.
        var resumes = 0
        /// RESUMEs refused: a bad, spent or expired token, or a throttled address.
        var refused = 0
        /// Away sessions whose grace ran out.
        var expired = 0
    }

    let logger: Logger
    private(set) var entries: [GameID: Entry] = [:]
    private var sessionsByToken: [TokenHash: GameID] = [:]
    private(set) var awayCount = 0
    var counters = Counters()
    /// Illegal link moves seen (engine bugs, STATUS `engine_bugs=`).
    private(set) var illegalMoves = 0

    /// Tokens issued by the call in progress, in order.
    private var pendingTokens: [(session: GameID, token: TokenHash)] = []
    private(set) var pendingResume: PendingResume?

    init(logger: Logger) { self.logger = logger }

    // MARK: - Inside a module call

    /// A new token for `session`, kept if the call commits.
    func issue(for session: GameID) -> [UInt8] {
        let token = ResumeToken.make()
        pendingTokens.append((session, TokenHash(of: token)))
        return token
    }

    /// The session `token` names, if it names one (and not one a RESUME in
    /// this call spent already).
    func session(holding token: UnsafeRawBufferPointer) -> GameID? {
        guard ResumeToken.isWellFormed(token) else { return nil }
        let hash = TokenHash(of: token)
        guard let id = sessionsByToken[hash], entries[id]?.token == hash, pendingResume?.spent != hash else { return nil }
        return id
    }

    /// Notes a RESUME of `target` by `fresh` for the end of the call, and
    /// the new token it is given.
    func noteResume(fresh: GameID, target: GameID, spent token: UnsafeRawBufferPointer) -> [UInt8] {
        let next = ResumeToken.make()
        pendingResume = PendingResume(fresh: fresh, target: target, spent: TokenHash(of: token), issued: TokenHash(of: next))
        return next
    }

    /// Whether the call in progress issued a token or checked a RESUME
    /// (almost never: a request's way out is one load and a branch).
    var hasPending: Bool { !pendingTokens.isEmpty || pendingResume != nil }

    /// How many tokens the calls in progress issued (a hook call inside a
    /// request's aftermath keeps the request's own).
    var pendingMark: Int { pendingTokens.count }

    /// The call returned normally: the tokens it issued replace the
    /// sessions' old ones. Returns the RESUME to apply, if it asked for one.
    func commitCall(isOpen: (GameID) -> Bool) -> PendingResume? {
        for (session, token) in pendingTokens where isOpen(session) { install(token, for: session) }
        pendingTokens.removeAll(keepingCapacity: true)
        defer { pendingResume = nil }
        return pendingResume
    }

    /// The call faulted: what it issued or spent never happened (the
    /// tokens issued since `mark`).
    func rollBackCall(to mark: Int) {
        if pendingTokens.count > mark { pendingTokens.removeSubrange(mark...) }
        pendingResume = nil
    }

    private func install(_ token: TokenHash, for session: GameID) {
        if var entry = entries[session] {
            sessionsByToken[entry.token] = nil
            entry.token = token
            entries[session] = entry
        } else {
            entries[session] = Entry(link: Lifecycle(.connected), token: token)
        }
        sessionsByToken[token] = session
    }

    // MARK: - Links

    func link(of session: GameID) -> SessionLink? { entries[session]?.link.state }

    /// Whether the session can go away when its connection drops.
    func isResumable(_ session: GameID) -> Bool {
        if case .connected = entries[session]?.link.state { return true }
        return false
    }

    /// The session's connection dropped: it waits for a RESUME until `deadline`.
    func wentAway(_ session: GameID, peer: AwayPeer, now: UInt64, deadline: UInt64) {
        move(session, to: .away(peer: peer, since: now, deadline: deadline))
        awayCount += 1
    }

    /// A RESUME was applied: `spent` is gone, `issued` names the session,
    /// which is connected again. Returns the away peer it had, if it was away.
    func resumed(_ pending: PendingResume) -> AwayPeer? {
        guard var entry = entries[pending.target] else { return nil }
        var away: AwayPeer?
        if case .away(let peer, _, _) = entry.link.state {
            away = peer
            awayCount -= 1
            step(&entry.link, to: .connected)
        }
        sessionsByToken[entry.token] = nil
        entry.token = pending.issued
        sessionsByToken[pending.issued] = pending.target
        entries[pending.target] = entry
        counters.resumes += 1
        return away
    }

    /// The session ended: its token stops working.
    func ended(_ session: GameID) {
        guard var entry = entries.removeValue(forKey: session) else { return }
        if case .away = entry.link.state { awayCount -= 1 }
        step(&entry.link, to: .closed)
        sessionsByToken[entry.token] = nil
    }

    /// Away sessions whose grace is over at `now`.
    func expired(now: UInt64) -> [GameID] {
        guard awayCount > 0 else { return [] }
        var out: [GameID] = []
        for (id, entry) in entries {
            if case .away(_, _, let deadline) = entry.link.state, now >= deadline { out.append(id) }
        }
        return out
    }

    private func move(_ session: GameID, to next: SessionLink) {
        guard var entry = entries[session] else { return }
        step(&entry.link, to: next)
        entries[session] = entry
    }

    /// One move, its illegality counted here (the entry may be gone next).
    private func step(_ link: inout Lifecycle<SessionLink>, to next: SessionLink) {
        let before = link.illegalMoves
        link.move(to: next, logger: logger)
        illegalMoves += link.illegalMoves - before
    }

    // MARK: - Engine upgrade

    /// Takes over a handed-over entry (ResumeHandoff).
    func restore(_ session: GameID, token: TokenHash, link: SessionLink) {
        entries[session] = Entry(link: Lifecycle(link), token: token)
        sessionsByToken[token] = session
        if case .away = link { awayCount += 1 }
    }
}
