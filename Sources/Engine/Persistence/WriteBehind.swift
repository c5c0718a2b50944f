import CLibUV
import Glibc
import Logging
import UVKit

/// Write-behind for persistent fields: a write only marks its record dirty
/// (in `World`); every `--flush-interval` milliseconds the dirty records are
/// copied out on the loop and written in one transaction on a libuv worker
/// thread. The loop never waits for the disk.
///
/// - One flush at a time: while one is on the worker, ticks do nothing and
///   changes keep accumulating (a record changed twice is written once).
/// - A failed flush (a full disk) puts its records back to dirty, counts
///   the error (`db_errors=`), logs the reason (at most every 10 s) and is
///   retried on the next tick, with the newest values. The game goes on.
/// - A batch that follows a schema change carries every row (see
///   `PersistBatch`), so a migrated column lands whole or not at all.
/// - `flushAll` writes what is left, synchronously, once the loop has
///   stopped (shutdown, upgrade): then nobody is waiting on the loop.
///
/// What a `kill -9` can lose: the changes of the last interval (and of a
/// flush in progress), never the file's consistency.
final class WriteBehind {
    let storage: any PlayerStorage
    private let world: World
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let logger: Logger
    private let timer: UnsafeMutablePointer<uv_timer_t>
    let intervalMilliseconds: Int

    /// The persistent column counts the database has seen (a batch with
    /// more is a schema change: it carries every row).
    private var persistedColumns: (global: Int, player: Int)
    /// The batch on the worker, if any.
    private var inFlight: PersistBatch?
    private var closed = false
    private var lastErrorLoggedAt: UInt64 = 0

    // For STATUS.
    private(set) var flushes = 0
    private(set) var recordsWritten = 0
    private(set) var errors = 0
    private(set) var lastFlushMilliseconds = 0.0
    private(set) var lastBatchRecords = 0
    /// Microseconds the loop spent copying the last batch out of World (the
    /// only part of a flush the game waits for).
    private(set) var lastHeldMicroseconds: UInt64 = 0
    private(set) var lastError: String?

    init(storage: any PlayerStorage, world: World, loop: UnsafeMutablePointer<uv_loop_t>, logger: Logger,
         intervalMilliseconds: Int, storedColumns: (global: Int, player: Int))
    {
        self.storage = storage
        self.world = world
        self.loop = loop
        self.logger = logger
        self.intervalMilliseconds = intervalMilliseconds
        persistedColumns = storedColumns
        timer = .allocateHandle()
        uv_timer_init(loop, timer)
        timer.context = UVContext.pointer(to: self)
        uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: WriteBehind.self).tick()
        }, UInt64(intervalMilliseconds), UInt64(intervalMilliseconds))
        // Flushing alone must not keep the loop alive at shutdown.
        uv_unref(timer.handle)
    }

    /// Whether the next batch must carry every row.
    private var schemaChanged: Bool {
        let now = world.persistentColumnCounts
        return now.global != persistedColumns.global || now.player != persistedColumns.player
    }

    /// One interval: hands the dirty records to the worker.
    func tick() {
        guard inFlight == nil, !closed else { return }
        let full = schemaChanged
        guard full || world.dirtyCount > 0 || world.globalDirty else { return }
        let copyStarted = uv_hrtime()
        let batch = world.takeDirty(everything: full)
        lastHeldMicroseconds = (uv_hrtime() - copyStarted) / 1000
        let task = FlushTask(batch: batch, storage: storage, owner: self)
        let work = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        work.pointee.data = UVContext.retainedPointer(to: task)
        inFlight = batch
        let status = uv_queue_work(loop, work, { work in
            // Worker thread: only the task's Sendable batch and the storage.
            let task = UVContext.object(work!.pointee.data, as: FlushTask.self)
            task.run()
        }, { work, _ in
            let task = UVContext.release(work!.pointee.data!, as: FlushTask.self)
            work!.deallocate()
            task.owner.finished(task)
        })
        if status != 0 {
            _ = UVContext.release(work.pointee.data!, as: FlushTask.self)
            work.deallocate()
            inFlight = nil
            task.result = .failure(StorageError("cannot queue a flush: \(UVError(status))"))
            finished(task)
        }
    }

    /// Loop thread: the worker is done with `task`.
    private func finished(_ task: FlushTask) {
        inFlight = nil
        record(task.batch, task.result ?? .failure(StorageError("flush did not run")))
    }

    private func record(_ batch: PersistBatch, _ result: Result<Double, StorageError>) {
        switch result {
        case .success(let milliseconds):
            persistedColumns = (batch.globalColumns.count, batch.playerColumns.count)
            flushes += 1
            recordsWritten += batch.recordCount
            lastBatchRecords = batch.recordCount
            lastFlushMilliseconds = milliseconds
            if lastError != nil {
                logger.notice("database writes work again: \(storage.location)")
                lastError = nil
            }
        case .failure(let error):
            world.markUnwritten(batch)
            errors += 1
            lastError = error.description
            let now = uv_now(loop)
            if lastErrorLoggedAt == 0 || now - lastErrorLoggedAt >= 10_000 {
                lastErrorLoggedAt = now
                logger.error("\(error.description); \(world.dirtyCount) records stay dirty in memory and are retried every \(intervalMilliseconds) ms")
            }
        }
    }

    /// Writes everything still dirty, synchronously; for shutdown and the
    /// engine upgrade, once the loop no longer serves. A failure is retried
    /// a few times, then reported: its records are lost with the process.
    @discardableResult
    func flushAll(attempts: Int = 3) -> Result<Int, StorageError> {
        // A flush still on the worker (the loop was stopped, not run dry:
        // a stuck module load) may yet fail: write its records again. The
        // storage runs one write at a time, so this one lands after it,
        // with values as new or newer.
        if let pending = inFlight { world.markUnwritten(pending) }
        var written = 0
        var lastFailure: StorageError?
        for attempt in 0..<attempts {
            let full = schemaChanged
            guard full || world.dirtyCount > 0 || world.globalDirty else { return .success(written) }
            let batch = world.takeDirty(everything: full)
            let result = FlushTask.write(batch, to: storage)
            record(batch, result)
            switch result {
            case .success: written += batch.recordCount
            case .failure(let error):
                lastFailure = error
                if attempt + 1 < attempts { usleep(100_000) }
            }
        }
        if let lastFailure, world.dirtyCount > 0 || world.globalDirty { return .failure(lastFailure) }
        return .success(written)
    }

    /// Stops the timer (shutdown).
    func close() {
        guard !closed else { return }
        closed = true
        timer.closeAndFree()
    }
}

/// One flush on its way through the worker: the batch goes over, the
/// result comes back; neither side touches the other's state meanwhile.
private final class FlushTask: @unchecked Sendable {
    let batch: PersistBatch
    let storage: any PlayerStorage
    let owner: WriteBehind
    /// Written by the worker, read on the loop after `uv_queue_work`'s
    /// completion callback (which orders the two).
    var result: Result<Double, StorageError>?

    init(batch: PersistBatch, storage: any PlayerStorage, owner: WriteBehind) {
        self.batch = batch
        self.storage = storage
        self.owner = owner
    }

    func run() { result = FlushTask.write(batch, to: storage) }

    /// Writes and times one batch.
    static func write(_ batch: PersistBatch, to storage: any PlayerStorage) -> Result<Double, StorageError> {
        let start = uv_hrtime()
        do {
            try storage.write(batch)
            return .success(Double(uv_hrtime() - start) / 1_000_000)
        } catch {
            return .failure(error)
        }
    }
}
