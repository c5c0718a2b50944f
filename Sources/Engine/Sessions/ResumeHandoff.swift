/// The resume section of an engine upgrade's handoff (format 4 on): every
/// session that holds a resume token, so that an away session survives the
/// exec with its queued lines and its grace, and every token keeps working.
///
///     counters                resumes, refused, expired
///     entry count             then per entry:
///       session id            u64
///       token hash            32 bytes (SHA-256; the token itself is never kept)
///       away                  flag; then, for an away session:
///         remaining ms        grace left at the hold (0: over, ended at the first sweep)
///         away ms             how long it has been away
///         identified          flag
///         dropped             lines dropped so far
///         lines               count, then each line (without CRLF)
///
/// A connected session's connection is in the connections section; an
/// away one has none, and World's section lists it like any session:
/// `Engine.restoreHandoff` gives it an `AwayPeer` from here. A handoff in
/// format 3 or older has no section: no session held a token then.
struct ResumeHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.resume
    static var formats: ClosedRange<UInt32> { 4...HandoffFormat.current }

    struct Away: Equatable {
        var remainingMilliseconds: UInt64
        var awayMilliseconds: UInt64
        var identified: Bool
        var dropped: Int
        var lines: [[UInt8]]
    }

    struct Entry: Equatable {
        var session: GameID
        var token: TokenHash
        var away: Away?
    }

    var counters = ResumeRegistry.Counters()
    var entries: [Entry] = []

    init() {}

    init(counters: ResumeRegistry.Counters, entries: [Entry]) {
        self.counters = counters
        self.entries = entries
    }

    func encode(into writer: inout HandoffWriter) {
        writer.int(counters.resumes)
        writer.int(counters.refused)
        writer.int(counters.expired)
        writer.u32(UInt32(entries.count))
        for entry in entries {
            writer.u64(entry.session.raw)
            for word in [entry.token.a, entry.token.b, entry.token.c, entry.token.d] { writer.u64(word) }
            writer.bool(entry.away != nil)
            guard let away = entry.away else { continue }
            writer.u64(away.remainingMilliseconds)
            writer.u64(away.awayMilliseconds)
            writer.bool(away.identified)
            writer.int(away.dropped)
            writer.u32(UInt32(away.lines.count))
            for line in away.lines { writer.bytes(line) }
        }
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        counters = ResumeRegistry.Counters(resumes: try reader.int("resumes"), refused: try reader.int("resumes refused"),
                                           expired: try reader.int("resumes expired"))
        let count = try reader.count("resume entries", elementSize: 41)
        entries.reserveCapacity(count)
        for _ in 0..<count {
            let session = GameID(raw: try reader.u64("resume session"))
            let token = TokenHash(a: try reader.u64("token hash"), b: try reader.u64("token hash"),
                                  c: try reader.u64("token hash"), d: try reader.u64("token hash"))
            var away: Away?
            if try reader.bool("away") {
                let remaining = try reader.u64("grace left")
                let since = try reader.u64("away for")
                let identified = try reader.bool("identified")
                let dropped = try reader.int("lines dropped")
                let lineCount = try reader.count("away lines", elementSize: 4)
                var lines: [[UInt8]] = []
                lines.reserveCapacity(lineCount)
                for _ in 0..<lineCount { lines.append(try reader.bytes("away line")) }
                away = Away(remainingMilliseconds: remaining, awayMilliseconds: since, identified: identified,
                            dropped: dropped, lines: lines)
            }
            entries.append(Entry(session: session, token: token, away: away))
        }
    }

    /// What the bytes alone can break: a session id of another kind, a
    /// session or token twice, a negative count, a grace past the flag's
    /// bound, a line that could forge another (CR, LF, NUL).
    func validate() throws(HandoffError) {
        var sessions = Set<GameID>()
        var tokens = Set<TokenHash>()
        guard counters.resumes >= 0, counters.refused >= 0, counters.expired >= 0 else { throw .invalid("resume counters") }
        for entry in entries {
            guard entry.session.kind == .session else { throw .invalid("\(entry.session) is not a session") }
            guard sessions.insert(entry.session).inserted else { throw .invalid("\(entry.session) has two resume entries") }
            guard tokens.insert(entry.token).inserted else { throw .invalid("two sessions share a resume token") }
            guard let away = entry.away else { continue }
            guard away.remainingMilliseconds <= 86_400_000, away.dropped >= 0 else {
                throw .invalid("\(entry.session)'s grace or dropped count")
            }
            for line in away.lines where line.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }) {
                throw .invalid("\(entry.session) has a queued line with CR, LF or NUL")
            }
        }
    }
}

extension Engine {
    /// The section's value: every entry, times as ages at `now`.
    func resumeHandoff(now: UInt64) -> ResumeHandoff {
        var entries: [ResumeHandoff.Entry] = []
        entries.reserveCapacity(resumes.entries.count)
        // In id order: the same state writes the same bytes.
        for (id, entry) in resumes.entries.sorted(by: { $0.key.raw < $1.key.raw }) {
            var away: ResumeHandoff.Away?
            if case .away(let peer, let since, let deadline) = entry.link.state {
                away = ResumeHandoff.Away(remainingMilliseconds: deadline > now ? deadline - now : 0,
                                          awayMilliseconds: now.ageOf(since), identified: peer.identified,
                                          dropped: peer.dropped, lines: peer.lines)
            }
            entries.append(ResumeHandoff.Entry(session: id, token: entry.token, away: away))
        }
        return ResumeHandoff(counters: resumes.counters, entries: entries)
    }

    /// The away sessions' peers, before World takes its section over
    /// (each is a live session without a connection).
    func awayPeers(_ section: ResumeHandoff) -> [GameID: AwayPeer] {
        var peers: [GameID: AwayPeer] = [:]
        for entry in section.entries {
            guard let away = entry.away else { continue }
            peers[entry.session] = AwayPeer(maxLines: limits.resumeBacklogLines, maxBytes: limits.resumeBacklogBytes,
                                            identified: away.identified, lines: away.lines, dropped: away.dropped)
        }
        return peers
    }

    /// Takes the section over once World has: every entry names a live
    /// session, connected ones on a player connection, away ones on the
    /// peers `awayPeers` made. A grace that is over ends at the first sweep.
    func restoreResume(_ section: ResumeHandoff, away peers: [GameID: AwayPeer]) throws(HandoffError) {
        let now = now
        for entry in section.entries {
            guard world.isOpen(session: entry.session) else { throw .invalid("\(entry.session) holds a token but is gone") }
            if let away = entry.away {
                guard let peer = peers[entry.session], world.peer(of: entry.session) === peer else {
                    throw .invalid("\(entry.session) is away but has a connection")
                }
                resumes.restore(entry.session, token: entry.token,
                                link: .away(peer: peer, since: now.minus(age: away.awayMilliseconds),
                                            deadline: now + away.remainingMilliseconds))
            } else {
                guard world.peer(of: entry.session) is PlayerSession else {
                    throw .invalid("\(entry.session) is connected but has no connection")
                }
                resumes.restore(entry.session, token: entry.token, link: .connected)
            }
        }
        resumes.counters = section.counters
    }
}
