/// Where the write-behind's flush is. `WriteBehind.moveFlush(to:)` is the
/// only way between states:
///
///            tick, SAVE              the worker is done
///     idle ─────────────▶ writing ────────────────▶ idle ── it failed, large ──▶ remarking
///      │  (a small batch)   ▲                        ▲      (made dirty again,     │
///      │ a large batch      │ copied out             └────── a slice a turn) ──────┘
///      ▼                    │
///     collecting ───────────┘
///      └── a swap committed meanwhile: dirty again ──▶ idle (and at once a new one)
///
///     idle ── close() ──▶ closed(nil);  writing ── close() ──▶ closed(task):
///     the exit's flushAll takes the task back ──▶ closed(nil)
///
/// Whoever needs the whole dirty state (SAVE, an upgrade's final flush,
/// shutdown) finishes `remarking` at once; `collecting` is either carried
/// on to the worker or abandoned (its records are dirty again).
///
/// `WriteBehind.paused` is not a state: it is a mode an upgrade sets after
/// its final flush (no tick starts a flush; what is dirty goes to the next
/// engine in memory), in which every state above can still occur.
enum FlushState: LifecycleState {
    /// Nothing under way: a tick may start a flush.
    case idle
    /// A large batch being copied out of World over loop turns.
    case collecting(CollectingBatch)
    /// A batch on the worker.
    case writing(FlushTask)
    /// A failed large batch's players being made dirty again over turns.
    case remarking(RemarkingRecords)
    /// Closed at shutdown; a flush may still be on the worker.
    case closed(FlushTask?)

    static let part = "flush"

    var name: String {
        switch self {
        case .idle: "idle"
        case .collecting: "collecting"
        case .writing: "writing"
        case .remarking: "remarking"
        case .closed(nil): "closed"
        case .closed: "closed-writing"
        }
    }

    /// Every move the diagram above draws; nothing else is allowed.
    static let moves: Set<String> = [
        "idle>writing", "idle>collecting", "collecting>writing", "collecting>idle", "writing>idle",
        "idle>remarking", "remarking>idle",
        "idle>closed", "writing>closed-writing", "closed-writing>closed",
    ]

    static let names = ["idle", "collecting", "writing", "remarking", "closed", "closed-writing"]
}

/// A large batch being copied out of World over several loop turns. A
/// class: the batch grows in place (held by one reference, an append does
/// not copy it).
final class CollectingBatch {
    var batch: PersistBatch
    /// Dirty records it still takes.
    var remaining: Int
    /// The longest loop turn spent copying (the first one included).
    var longestTurn: UInt64
    /// World's swap count when it began: a swap committed meanwhile makes
    /// it start over (one batch, one shape).
    let swaps: Int

    init(batch: PersistBatch, remaining: Int, longestTurn: UInt64, swaps: Int) {
        self.batch = batch
        self.remaining = remaining
        self.longestTurn = longestTurn
        self.swaps = swaps
    }

    /// The batch, leaving an empty one here: the worker must hold the only
    /// reference, so that it frees the records there, not on the loop.
    func takeBatch() -> PersistBatch {
        var taken = PersistBatch(globalColumns: batch.globalColumns, playerColumns: batch.playerColumns, players: [])
        swap(&taken, &batch)
        return taken
    }
}

/// A failed batch's players still to be made dirty again.
final class RemarkingRecords {
    let records: UnwrittenRecords
    /// The next key to mark.
    var next = 0

    init(_ records: UnwrittenRecords) { self.records = records }

    var left: Int { records.keys.count - next }
}
