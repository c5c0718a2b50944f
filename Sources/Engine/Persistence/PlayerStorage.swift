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
    func write(_ batch: PersistBatch) throws(StorageError)
    /// Releases the storage (and its one-server lock).
    func close()
    /// Descriptors an engine upgrade must keep open for the next engine
    /// (the one-server lock); the next engine opens the rest again.
    var handedOverDescriptors: [Int32] { get }
}

extension PlayerStorage {
    var handedOverDescriptors: [Int32] { [] }
}

/// Why storage could not be opened, read or written, in the operator's
/// words (the database's own message included).
struct StorageError: Error, CustomStringConvertible, Equatable {
    var description: String
    /// Whether trying again may succeed by itself (a full disk, a busy or
    /// briefly unavailable file), as opposed to a write the file refuses
    /// whatever the moment (a schema it cannot take, a corrupt page).
    var isTransient: Bool

    init(_ description: String, transient: Bool = false) {
        self.description = description
        isTransient = transient
    }
}
