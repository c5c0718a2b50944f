/// Where an engine upgrade is, in the engine that is asked for one.
/// `Upgrader.moveUpgrade(to:)` is the only way between states:
///
///              UPGRADE, SIGUSR2          passed             flushed
///     idle ──────────────────▶ checking ─────────▶ flushing ─────────▶ exec: the
///      ▲ ▲                        │                   │                next engine
///      │ └── refused, cancelled ──┘                   │                takes over
///      └──── refused, deadline, the exec failed ──────┘
///
///     settling ── settled ──▶ idle       a resumed engine marks the last
///        │                               upgrade's descriptors on a worker
///        └── UPGRADE ──▶ waiting ── settled ──▶ checking
///                          └── cancelled ──▶ settling
///
/// With `--database :memory:` there is no final flush: `checking` hands
/// over itself. The hand-over (encode, memfd, exec) is one loop callback:
/// it either replaces the process or returns to `idle` with the reason.
enum UpgradeState: LifecycleState {
    /// No upgrade runs: one may start.
    case idle
    /// A resumed engine is marking the descriptors its upgrade handed over
    /// close-on-exec again on a worker: a check started now would inherit
    /// them all, so none starts.
    case settling
    /// Asked for while settling: its check starts once settled.
    case waiting(UpgradeRequest)
    /// The candidate's `--check-upgrade` runs.
    case checking(UpgradeRequest, UpgradeCheck)
    /// The check passed; the final flush runs on the database worker (its
    /// deadline, `--upgrade-check-timeout`, is armed).
    case flushing(UpgradeRequest, version: String)

    static let part = "upgrade"
    static let names = ["idle", "settling", "waiting", "checking", "flushing"]

    var name: String {
        switch self {
        case .idle: "idle"
        case .settling: "settling"
        case .waiting: "waiting"
        case .checking: "checking"
        case .flushing: "flushing"
        }
    }

    static let moves: Set<String> = [
        "idle>checking", "checking>idle", "checking>flushing", "flushing>idle",
        "idle>settling", "settling>idle", "settling>waiting", "waiting>checking", "waiting>settling",
    ]

    /// The upgrade asked for, in the states that have one.
    var request: UpgradeRequest? {
        switch self {
        case .waiting(let request), .checking(let request, _), .flushing(let request, _): request
        case .idle, .settling: nil
        }
    }
}

/// One upgrade asked for: the candidate, open from before its check until
/// the exec or the refusal (close-on-exec), what the file was then (the
/// exec runs this very file, `/proc/self/fd/N`, whatever is installed at
/// its path by then), and whom to tell if it does not happen.
final class UpgradeRequest {
    let candidate: String
    let identity: FileIdentity
    let fd: Int32
    let refused: (UpgradeRefusal) -> Void

    init(candidate: String, identity: FileIdentity, fd: Int32, refused: @escaping (UpgradeRefusal) -> Void) {
        self.candidate = candidate
        self.identity = identity
        self.fd = fd
        self.refused = refused
    }
}
