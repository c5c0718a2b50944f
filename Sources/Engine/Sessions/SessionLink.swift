/// Where a resumable session (one that holds a resume token) is with
/// respect to a connection. `ResumeRegistry` keeps one per such session
/// and changes it only through `Lifecycle.move(to:)`:
///
///                drop (peer closed, socket broke, cut off)
///     connected ─────────────────────────────────────────▶ away
///       │    ◀──────────────── RESUME ───────────────────── │
///       │   (a RESUME from another connection while connected │ grace over,
///       │    is no move: the old one is told >REPLACED)       │ shutdown
///       └──── QUIT, close_session, idle, flood ──▶ closed ◀─┘
///
/// A session without a token has no entry: it is connected until it
/// closes, as before resume existed. `closed` is the state an entry ends
/// in just before it is removed.
enum SessionLink: LifecycleState {
    case connected
    /// Its lines wait in `peer`; it ends at `deadline` (loop ms).
    case away(peer: AwayPeer, since: UInt64, deadline: UInt64)
    case closed

    static let part = "session"
    static let names = ["connected", "away", "closed"]

    var name: String {
        switch self {
        case .connected: "connected"
        case .away: "away"
        case .closed: "closed"
        }
    }

    static let moves: Set<String> = [
        "connected>away", "away>connected", "connected>closed", "away>closed",
    ]
}
