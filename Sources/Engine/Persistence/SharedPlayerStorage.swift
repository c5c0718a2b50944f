/// Storage several servers share (PostgreSQL): a player is read when it
/// logs in, under a lease that makes this server its only writer until the
/// lease is released or expires, instead of every player at start.
///
/// A lease is a row's (owner, epoch, expiry). `claim` takes it: when no
/// server holds it, or the holder's lease expired, the epoch goes up by
/// one, which fences every write the previous holder still has in flight.
/// Every write of a player names the epoch it was loaded under and
/// succeeds only while the row still has it (a `PersistBatch`'s
/// `epochs`); a write refused that way is returned in `WriteReceipt.fenced`
/// and the engine stops serving that player. Every third of
/// `leaseSeconds` a flush renews every lease the server holds (and learns
/// which another server took), so a server that stops flushing (killed,
/// partitioned) loses them after `leaseSeconds`, and another may take its
/// players with what it last wrote.
///
/// After Nakama's storage (a version is an if-match), and the lease and
/// fencing-token pattern; not advisory locks, which lock nothing on
/// CockroachDB and end with the connection rather than with the server.
protocol SharedPlayerStorage: PlayerStorage {
    /// Who holds leases for this process: the server's name, the pid and a
    /// random part (an engine upgrade keeps it: same process, same leases).
    var owner: String { get }
    var leaseSeconds: Int { get }
    /// Takes `key`'s lease for this server and reads its row, laid out in
    /// `columns` (the world's player columns; the database may hold more,
    /// from a newer module, which stay as they are). On a worker thread.
    func claim(_ key: [UInt8], columns: [FieldSpec]) throws(StorageError) -> LeaseClaim
    /// The leases this owner holds, by key (an upgraded engine's players).
    func heldLeases() throws(StorageError) -> [[UInt8]: Int64]
}

/// What `claim` found.
enum LeaseClaim: Sendable {
    /// The lease is this server's under `epoch`; `record` is nil for a
    /// player never written (new, or a claim whose login did not finish).
    case claimed(epoch: Int64, record: StoredRecord?)
    /// Another live server holds it, for about `secondsLeft` more unless it
    /// renews (it does while it serves the player).
    case heldElsewhere(owner: String, secondsLeft: Int)
}

/// What a write did beyond succeeding.
struct WriteReceipt: Sendable {
    /// Players whose rows another server took (their epoch moved on): not
    /// written, and no longer this server's.
    var fenced: [[UInt8]] = []
    /// Another live server holds this server's `--server-name` (this one
    /// was cut off past its lease, and one under the same name started):
    /// who, for the log.
    var nameHeldBy: String?
}

/// A lease to give back once the player's last changes are written: its
/// row's owner is cleared only if the epoch is still the one given.
struct LeaseRelease: Sendable, Equatable {
    var key: [UInt8]
    var epoch: Int64
}
