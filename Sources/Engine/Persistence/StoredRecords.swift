/// What crosses between the loop and the database worker: plain values,
/// copied out of the state store, so the worker never touches `World`.

/// One field's value as the database holds it.
enum StoredValue: Sendable, Hashable {
    case int(Int64)
    case string([UInt8])
}

/// One row of a persistent kind: the player's key (empty for the global
/// row) and a value per column, in the store's column order. `nil` (a
/// NULL in the file) means "the column's default".
struct StoredRecord: Sendable, Equatable {
    var key: [UInt8]
    var values: [StoredValue?]
}

/// Everything the database holds, read once at start, before any module
/// binds its schema: every column (hidden ones too, so a rollback finds
/// them) and every row.
struct StoredSnapshot: Sendable {
    var globalColumns: [FieldSpec] = []
    var global: StoredRecord?
    var playerColumns: [FieldSpec] = []
    var players: [StoredRecord] = []
    /// The persistent fields the module serving at the last flush declared.
    var declared: [FieldSpec] = []
    /// Durable timers (owned by players or the global entity), ABI 1.3.
    var timers: [StoredTimer] = []
    /// Shared storage, an upgraded engine only: the leases this process
    /// holds are read back before the first flush.
    var adoptLeases = false
}

/// A durable timer as the database holds it: its owner by key (a player's
/// id does not outlive the process; its key does), and its deadline on the
/// wall clock (the monotonic clock restarts with the machine).
struct StoredTimer: Sendable, Equatable {
    /// Empty for the global entity.
    var ownerKey: [UInt8]
    var global: Bool
    var event: [UInt8]
    var payload: [UInt8]
    var dueUnixMilliseconds: Int64
    var periodMilliseconds: Int64
    var fired: Int64
}

/// The rows that changed since the last flush, with the columns they are
/// laid out in; written in one transaction. After a reload that added or
/// retyped a field, the new columns are created in the same transaction as
/// the rows its migration wrote (all of them: each write marks its row
/// dirty), so the file never holds a migrated column with only some of
/// its values.
struct PersistBatch: Sendable {
    var globalColumns: [FieldSpec]
    var playerColumns: [FieldSpec]
    /// The global row, when it changed.
    var global: StoredRecord?
    var players: [StoredRecord]
    /// The persistent fields the serving module declares, when they changed
    /// since the last batch (recorded so that a restart knows which of a
    /// name's columns was serving: see `StartupSchemaCheck`).
    var declared: [FieldSpec]? = nil
    /// World's slot of each player record, in order: a failed batch is
    /// made dirty again by slot, not by a hash lookup per key (a million
    /// records, after a migration). Not written.
    var slots: [Int] = []
    /// Keys of players an operator forgot (`FORGET`): their rows are
    /// deleted, before the records above are written.
    var deleted: [[UInt8]] = []
    /// Every durable timer, when any was set, fired, cancelled or ended
    /// since the last batch that wrote them: the table is rewritten whole,
    /// in the same transaction (a failed batch leaves the version unwritten,
    /// so the next one writes them again).
    var timers: [StoredTimer]? = nil
    var timersVersion: UInt64 = 0
    /// With shared storage: the lease epoch each player in `players` was
    /// loaded under (a write is fenced by it), in the same order.
    var epochs: [Int64] = []
    /// With shared storage: leases given back after the rows are written.
    var released: [LeaseRelease] = []
    /// With shared storage, every few seconds: every lease this server
    /// holds, checked still to be its own (a player nobody changed is in
    /// no write, so no fenced write would tell it was taken).
    var held: [LeaseRelease]? = nil

    var isEmpty: Bool {
        global == nil && players.isEmpty && declared == nil && deleted.isEmpty && timers == nil && released.isEmpty
            && held == nil
    }
    /// Records written, deletions included.
    var recordCount: Int { players.count + (global == nil ? 0 : 1) + deleted.count }
}

/// What makes a failed batch dirty again: which players it carried (their
/// keys, and the slots they were copied from) and whether the global row
/// was in it. Taken on the worker, so that the batch's values are freed
/// there: a million of them freed on the loop stalled the game 80 ms.
struct UnwrittenRecords: Sendable {
    var global: Bool
    var keys: [[UInt8]]
    var slots: [Int]
    /// Deletions to queue again.
    var deleted: [[UInt8]]
    /// Leases to give back at a later flush.
    var released: [LeaseRelease]

    /// Nothing to make dirty again.
    init() {
        global = false
        keys = []
        slots = []
        deleted = []
        released = []
    }

    init(_ batch: PersistBatch) {
        global = batch.global != nil
        keys = batch.players.map(\.key)
        slots = batch.slots
        deleted = batch.deleted
        released = batch.released
    }
}
