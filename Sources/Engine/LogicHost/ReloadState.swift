/// Where a reload is. `LogicHost.reload` is the only way in and
/// `LogicHost.moveReload(to:)` the only way between states:
///
///         reload()                 timer (--load-timeout)
///     idle ──────▶ loading ────────────────────────▶ stuck
///      ▲  ◀────────┘  │ load done, players to migrate   │ worker returns late
///      │  load done   ▼                                 │ (result discarded)
///      ├──────────── staging ◀── slices between messages │
///      │  commit or refusal                              │
///      └─────────────────────────────────────────────────┘
///
///     any state ── stop() ──▶ stopped(worker)   the server is stopping;
///     stopped(.running) ── timer ──▶ stopped(.stuck); a worker that
///     returns while stopped ──▶ stopped(.none)
///
/// A ROLLBACK (and the fault policy's automatic one) is one loop callback:
/// it runs only from `idle` and never leaves it.
enum ReloadState: LifecycleState {
    /// A load's worker while the server stops.
    enum Worker {
        /// No worker is out.
        case none
        /// A load is on its worker and nobody was told of it yet.
        case running(ReloadTask)
        /// A load timed out, the operator was told, and its worker has not
        /// returned (it may be inside `dlopen`, holding the linker's lock).
        case stuck
    }

    /// No reload runs: RELOAD, ROLLBACK and UPGRADE may start.
    case idle
    /// A load is on a libuv worker (copy, hash, check, `dlopen`); the load
    /// timer is armed.
    case loading(ReloadTask)
    /// The load timed out and the operator was told; its worker has not
    /// come back. Reloads are refused until it does (it may never).
    case stuck
    /// The candidate is loaded and the stored players are being migrated
    /// in slices between messages (StagedMigration.swift).
    case staging(StagedMigration)
    /// The server is stopping: no reload starts.
    case stopped(Worker)

    static let part = "reload"

    /// A state without what it carries: what the table of moves and
    /// STATUS (`reload=`) speak of.
    enum Shape: String, CaseIterable {
        case idle, loading, stuck, staging, stopped
        case stoppedLoading = "stopped-loading"
        case stoppedStuck = "stopped-stuck"
    }

    var shape: Shape {
        switch self {
        case .idle: .idle
        case .loading: .loading
        case .stuck: .stuck
        case .staging: .staging
        case .stopped(.none): .stopped
        case .stopped(.running): .stoppedLoading
        case .stopped(.stuck): .stoppedStuck
        }
    }

    var name: String { shape.rawValue }

    /// Every move the diagram above draws; nothing else is allowed.
    static let moves: Set<String> = [
        "idle>loading", "loading>idle", "loading>stuck", "loading>staging", "stuck>idle", "staging>idle",
        // stop(): the worker that is out, if any, goes along.
        "idle>stopped", "loading>stopped-loading", "stuck>stopped-stuck", "staging>stopped",
        "stopped-loading>stopped-stuck", "stopped-loading>stopped", "stopped-stuck>stopped",
    ]

    static let names = Shape.allCases.map(\.rawValue)

    /// A reload is in progress or cannot start: other reloads, rollbacks
    /// and FORGET are refused (what `reloading` meant).
    var busy: Bool {
        switch self {
        case .idle, .stopped(.none): false
        case .loading, .stuck, .staging, .stopped(.running), .stopped(.stuck): true
        }
    }

    /// A load's worker may be inside `dlopen`, holding the dynamic linker's
    /// lock: the loop must not call `dladdr` (symbolizing fault frames).
    var workerMayHoldTheLinkerLock: Bool {
        switch self {
        case .loading, .stuck, .stopped(.running), .stopped(.stuck): true
        case .idle, .staging, .stopped(.none): false
        }
    }

    /// A load timed out and its worker has not returned.
    var loadStuck: Bool {
        switch self {
        case .stuck, .stopped(.stuck): true
        default: false
        }
    }
}

/// A reload in flight: the job (the only part the worker sees) and, for the
/// loop, who asked and who to tell.
final class ReloadTask {
    let job: ReloadJob
    let host: LogicHost
    let done: (Result<SwapOutcome, SwapError>) -> Void

    init(job: ReloadJob, host: LogicHost, done: @escaping (Result<SwapOutcome, SwapError>) -> Void) {
        self.job = job
        self.host = host
        self.done = done
    }
}
