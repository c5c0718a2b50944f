import CLibUV
import UVKit

/// Checking the database file when nothing is written: a flush checks it
/// by itself (`SQLiteStorage.write`), but a server with nothing dirty
/// writes nothing, and a SAVE, an upgrade's final flush or an idle server
/// would never learn that the file is gone. A check is a few `stat`s on
/// the database worker (never on the loop), through
/// `PlayerStorage.verifyIdentity`. It is not a flush state: it takes no
/// records, so it runs beside whatever the flush is doing. Nothing waits
/// for a check at shutdown: one still queued when the loop stops runs on
/// its worker whenever it gets there, and the storage makes that safe
/// (`SQLiteStorage.close` waits for a check under way, and a check after
/// it does nothing); its result, for a loop that no longer runs, is
/// dropped.
extension WriteBehind {
    /// How often, at most, an idle server (or one whose file is gone)
    /// checks: on its ticks, so a `--flush-interval` longer than this
    /// checks at every tick.
    static let fileCheckIntervalMilliseconds: UInt64 = 1000

    /// A check, unless one is running or the last began less than
    /// `fileCheckIntervalMilliseconds` ago.
    func checkFileIfDue() {
        let now = uv_now(loop)
        guard fileChecksRunning == 0 else { return }
        if let last = lastFileCheckAt, now - last < Self.fileCheckIntervalMilliseconds { return }
        checkFile { _ in }
    }

    /// Checks the file on the worker and calls `body` on the loop with the
    /// problem (counted already: `db_errors`, the log) or nil. Each caller
    /// gets a check that began after it asked (a SAVE must not be answered
    /// by one that began before the file went).
    func checkFile(then body: @escaping (StorageError?) -> Void) {
        lastFileCheckAt = uv_now(loop)
        let check = FileCheck(storage: storage)
        let status = UVWork.submit(on: loop, check, work: { check in
            // Worker thread: only the storage.
            check.run()
        }, after: { check in
            // Held until the worker is done (as a flush's task holds it).
            self.fileChecksRunning -= 1
            self.fileChecked(check.problem)
            body(check.problem)
        })
        guard status == 0 else {
            // Not the file's fault: not counted, only told.
            return body(StorageError("cannot queue a check of the database file: \(UVError(status))", transient: true))
        }
        fileChecksRunning += 1
    }
}

/// One check on its way through the worker.
final class FileCheck: @unchecked Sendable {
    let storage: any PlayerStorage
    /// Written by the worker, read on the loop after `uv_queue_work`'s
    /// completion callback (which orders the two).
    private(set) var problem: StorageError?

    init(storage: any PlayerStorage) { self.storage = storage }

    func run() {
        do throws(StorageError) {
            try storage.verifyIdentity()
        } catch {
            problem = error
        }
    }
}
