/// Where persistent fields (global and player) live between runs.
///
/// One small protocol so that another backend (PostgreSQL, for several
/// servers sharing players) can slot in beside `SQLiteStorage`. The engine
/// calls `loadAll` once at start, on the loop's thread before it serves,
/// and `write` from a worker thread, one batch at a time, plus at shutdown
/// from the main thread once the loop has stopped. Only then may a write
/// overlap one still on a worker (a loop stopped by a stuck module load):
/// an implementation must apply overlapping writes one after the other, in
/// the order they began (GRDB's `DatabaseQueue` does).
protocol PlayerStorage: AnyObject, Sendable {
    /// Where the data is, for the operator (STATUS, logs).
    var location: String { get }
    /// Every column and row the storage holds.
    func loadAll() throws(StorageError) -> StoredSnapshot
    /// Writes a batch in one transaction: all of it or, on error, none.
    /// Shared storage may refuse some players' rows (fenced, in the
    /// receipt) and write the rest.
    @discardableResult
    func write(_ batch: PersistBatch) throws(StorageError) -> WriteReceipt
    /// Releases the storage (and its one-server lock).
    func close()
    /// Descriptors an engine upgrade must keep open for the next engine
    /// (the one-server lock); the next engine opens the rest again.
    var handedOverDescriptors: [Int32] { get }
    /// Checks that the storage is still the one it opened (SQLite: that
    /// the path still names the open file, `DatabaseFileIdentity`), for a
    /// flush with nothing to write, whose success would otherwise say
    /// nothing. On a worker thread, or at exit once the loop has stopped;
    /// `write` checks by itself. A check queued before the loop stopped
    /// may run on its worker while or after `close` runs: `close` must
    /// wait for one under way, and one after it must touch nothing `close`
    /// released (a descriptor's number may be reused by then).
    func verifyIdentity() throws(StorageError)
}

extension PlayerStorage {
    var handedOverDescriptors: [Int32] { [] }
    func verifyIdentity() throws(StorageError) {}
}

/// Why storage could not be opened, read or written, in the operator's
/// words (the database's own message included).
struct StorageError: Error, CustomStringConvertible, Equatable {
    var description: String
    /// Whether trying again may succeed by itself (a full disk, a busy or
    /// briefly unavailable file), as opposed to a write the file refuses
    /// whatever the moment (a schema it cannot take, a corrupt page).
    var isTransient: Bool
    /// The storage is no longer where it was opened (the database path
    /// names another file, or none): nothing can be written until it is
    /// again, and everything written before is wherever the file went.
    /// Not transient: no retry brings the file back.
    var lostFile: Bool
    /// What the operator can do about it, for the log only (STATUS and
    /// the SAVE reply carry the description).
    var advice: String?

    init(_ description: String, transient: Bool = false, lostFile: Bool = false, advice: String? = nil) {
        self.description = description
        isTransient = transient && !lostFile
        self.lostFile = lostFile
        self.advice = advice
    }
}
