import CLibUV
import Dispatch
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
/// - A failed flush puts its records back to dirty, counts the error
///   (`db_errors=`), logs the reason (at most every 10 s; a failure that
///   retrying cannot fix, such as SQL the file refuses, is logged as such)
///   and is retried on the next tick with the newest values. The game goes
///   on.
/// - A reload that adds columns, or changes what the serving module
///   declares, gets a flush even when no row changed, so the file follows.
/// - `flushAll` writes what is left, synchronously, once the loop has
///   stopped (shutdown): then nobody is waiting on the loop. One that
///   fails makes the process exit non-zero (`FinalFlushStatus`).
/// - The file must still be there (`PlayerStorage.verifyIdentity`): every
///   write checks it, and so do a SAVE or a final flush with nothing to
///   write and an idle server's ticks, at most once a second
///   (WriteBehind+FileCheck.swift).
///   While the path does not name the open file, ticks copy nothing out:
///   they only check it again.
/// - A large batch is copied out over several loop turns, at most
///   `copySliceRecords` records a turn, and written in one transaction:
///   the flush after a migration carries every stored player (a million,
///   at `--max-players`), and copying them in one turn held the game about
///   110 ns a record (104 ms at a million). A record changed again after it
///   was copied is dirty again and goes in the next flush.
///
/// What a `kill -9` can lose: the changes of the last interval (and of a
/// flush in progress), never the file's consistency.
final class WriteBehind {
    let storage: any PlayerStorage
    let world: World
    let loop: UnsafeMutablePointer<uv_loop_t>
    let logger: Logger
    private let timer: UnsafeMutablePointer<uv_timer_t>
    let intervalMilliseconds: Int
    /// The serving module's persistent fields (from LogicHost).
    private let declaredFields: () -> [FieldSpec]

    /// What the file has seen: the persistent column counts and the
    /// serving module's persistent fields.
    private(set) var persistedColumns: (global: Int, player: Int)
    private(set) var persistedDeclared: [FieldSpec]
    /// Records copied out of World in one loop turn at most: about 2 ms.
    static let copySliceRecords = 20_000

    /// Where the flush is (FlushState.swift): changed only by `moveFlush`.
    private(set) var flush = Lifecycle(FlushState.idle)
    /// A failed batch's players are made dirty again at most
    /// `remarkSliceRecords` a loop turn (a million at once held the game
    /// 27 ms). No flush starts meanwhile; anyone who waits on the write-
    /// behind (SAVE, an upgrade's final flush, shutdown) has it finished
    /// at once, so the dirty state they see is whole.
    static let remarkSliceRecords = 50_000
    /// Copying out and making dirty again, a slice a loop turn: each slice
    /// stops at its record cap above or after 2 ms, whichever comes first.
    private let slices: SlicedJob
    /// Records a slice handles between two looks at its deadline.
    private static let sliceChunkRecords = 2_000

    /// What STATUS shows as `flush=`.
    var stateName: String {
        if case .idle = flush.state, paused { return "paused" }
        return flush.state.name
    }

    /// Players a failed batch still has to make dirty again: not written,
    /// so STATUS and the metrics count them as dirty.
    var unwrittenNotYetDirty: Int {
        if case .remarking(let remarking) = flush.state { return remarking.left }
        return 0
    }

    /// Records taken out of World's dirty set and not yet in the file: being
    /// copied out, or on the worker. STATUS shows them (`in_flight=`): a
    /// record is dirty, in flight, or written, and `dirty=0` alone does not
    /// mean the file has everything.
    var recordsInFlight: Int {
        switch flush.state {
        case .writing(let task), .closed(let task?): task.records
        case .collecting(let collecting): collecting.batch.recordCount
        case .idle, .remarking, .closed(nil): 0
        }
    }

    /// A flush is being copied out or is on the worker.
    private var flushUnderWay: Bool {
        switch flush.state {
        case .collecting, .writing, .closed(.some): true
        case .idle, .remarking, .closed(nil): false
        }
    }

    private func moveFlush(to next: FlushState) { flush.move(to: next, logger: logger) }

    /// How the last flush the worker finished went, and how many records
    /// it carried (an upgrade's final flush reads it).
    private var lastFinished: (records: Int, result: Result<Double, StorageError>?)?
    /// Run once the flush on the worker is done (an engine upgrade waits
    /// for it: its exec must not cut a write short).
    private var whenDone: [() -> Void] = []
    /// No flush starts on a tick while set (an upgrade's final flush is
    /// done and it is handing over: what is dirty goes to the next engine,
    /// which writes it).
    var paused = false
    private var lastErrorLoggedAt: UInt64 = 0
    private var lastErrorTransient = true

    /// Set while the database path does not name the file the storage has
    /// open (the last write or check said so): no flush starts on a tick,
    /// the path is checked instead. STATUS `db_file_lost=1`.
    private(set) var lostFile: StorageError?
    /// File checks on the worker (WriteBehind+FileCheck.swift), and when
    /// the last one started (loop milliseconds).
    var fileChecksRunning = 0
    var lastFileCheckAt: UInt64?

    /// What STATUS and the metrics show; an upgrade carries it whole.
    private(set) var counters = FlushCounters()

    init(storage: any PlayerStorage, world: World, loop: UnsafeMutablePointer<uv_loop_t>, logger: Logger,
         intervalMilliseconds: Int, stored: StoredSnapshot, declaredFields: @escaping () -> [FieldSpec])
    {
        self.storage = storage
        self.world = world
        self.loop = loop
        self.logger = logger
        self.intervalMilliseconds = intervalMilliseconds
        self.declaredFields = declaredFields
        persistedColumns = (stored.globalColumns.count, stored.playerColumns.count)
        persistedDeclared = stored.declared
        timer = .allocateHandle()
        slices = SlicedJob(loop: loop, budgetNanoseconds: 2_000_000)
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = UVContext.pointer(to: self)
        uvMust(uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: WriteBehind.self).tick()
        }, UInt64(intervalMilliseconds), UInt64(intervalMilliseconds)), "uv_timer_start")
        // Flushing alone must not keep the loop alive at shutdown.
        uv_unref(timer.handle)
    }

    /// The next batch (at most `limit` players), or nil when the file is
    /// up to date.
    private func nextBatch(limit: Int = .max) -> PersistBatch? {
        let columns = world.persistentColumnCounts
        let declared = declaredFields()
        // Same fields by kind, name and type (defaults and flags aside).
        let declaredChanged = declared.count != persistedDeclared.count
            || zip(declared, persistedDeclared).contains { $0.kind != $1.kind || $0.name != $1.name || $0.type != $1.type }
        let schemaChanged = columns.global != persistedColumns.global || columns.player != persistedColumns.player
        let timersChanged = world.timers.durableVersion != timersWrittenVersion
        let checkLeases = world.sharesPlayers && uv_now(loop) >= nextLeaseCheck
        guard schemaChanged || declaredChanged || timersChanged || world.dirtyCount > 0 || world.globalDirty
            || !world.deletedKeys.isEmpty || checkLeases
            || (world.sharesPlayers && world.leases.hasReleases)
        else { return nil }
        var batch = world.takeDirty(limit: limit)
        if checkLeases {
            batch.held = world.heldLeases()
            nextLeaseCheck = uv_now(loop) + leaseCheckIntervalMilliseconds
        }
        if declaredChanged { batch.declared = declared }
        if timersChanged {
            batch.timers = world.durableTimers(wallNow: WriteBehind.wallMilliseconds(), now: uv_hrtime())
            batch.timersVersion = world.timers.durableVersion
        }
        return batch
    }

    /// Shared storage, an upgraded engine: the leases are read back before
    /// any flush (WriteBehind+Leases.swift).
    var adoptingLeases = false
    var adoptionRunning = false

    /// Shared storage: when a flush next checks every lease this server
    /// holds (a third of `--lease-seconds`), and how often.
    private var nextLeaseCheck: UInt64 = 0
    var leaseCheckIntervalMilliseconds: UInt64 = 5_000

    /// The durable-timer version the file holds (`TimerTable.durableVersion`);
    /// starts equal to the table's, which was just read from the file.
    var timersWrittenVersion: UInt64 = 0

    /// Milliseconds since the epoch (durable timers' deadlines).
    static func wallMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// One interval: hands the dirty records to the worker or, when there
    /// are none or the file is gone (no write could succeed: copying
    /// records out for it would only make them dirty again), checks the
    /// file (at most once a second; a longer interval checks less often).
    func tick() {
        guard !paused, case .idle = flush.state else { return }
        if adoptingLeases { return adoptLeasesIfDue() }
        if lostFile == nil, startFlush() { return }
        checkFileIfDue()
    }

    /// Starts a flush of the dirty records, paused or not: copies them out
    /// (over several loop turns when there are many) and hands them to the
    /// worker. False when one is under way already or nothing is dirty.
    @discardableResult
    private func startFlush() -> Bool {
        guard case .idle = flush.state else { return false }
        let copyStarted = uv_hrtime()
        let target = world.dirtyCount
        guard var batch = nextBatch(limit: Self.copySliceRecords) else { return false }
        if batch.players.count == Self.copySliceRecords && world.dirtyCount > 0 && target > batch.players.count {
            batch.players.reserveCapacity(target)
            batch.slots.reserveCapacity(target)
            // A large batch gives no lease back: a player's last change made
            // after the copy began would miss it (the next flush releases).
            if !batch.released.isEmpty {
                world.unrelease(batch.released)
                batch.released = []
            }
            // The rest on the next turns, between messages.
            moveFlush(to: .collecting(CollectingBatch(batch: batch, remaining: target - batch.players.count,
                                                      longestTurn: uv_hrtime() - copyStarted, swaps: world.swaps)))
            slices.start { [unowned self] deadline in collectMore(until: deadline) }
            return true
        }
        counters.lastHeldMicroseconds = (uv_hrtime() - copyStarted) / 1000
        queue(batch)
        return true
    }

    /// One more loop turn of copying a large batch out; queues it once it
    /// holds every record that was dirty when it began. A swap committed
    /// meanwhile makes it start over (its records are dirty again): one
    /// batch has one shape, and no row from before a migration beside one
    /// from after it. Returns whether another turn is needed.
    private func collectMore(until deadline: UInt64) -> Bool {
        guard case .collecting(let current) = flush.state else { return false }
        let started = uv_hrtime()
        let columns = world.persistentColumnCounts
        guard current.swaps == world.swaps, columns.global == current.batch.globalColumns.count,
            columns.player == current.batch.playerColumns.count
        else {
            abandonCollecting()
            // Started again at once: whoever waits on this flush (an
            // upgrade's final flush) waits for the new one.
            if !startFlush() { runWhenDone() }
            return false
        }
        var copied = 0
        repeat {
            let more = world.takeDirty(limit: min(Self.sliceChunkRecords, current.remaining), releases: false)
            if let global = more.global { current.batch.global = global }
            if !more.deleted.isEmpty {
                // Forgotten since their records were copied: the batch deletes
                // them (before its writes) and must not write them back.
                let gone = Set(more.deleted)
                let keep = current.batch.players.indices.filter { !gone.contains(current.batch.players[$0].key) }
                if keep.count < current.batch.players.count {
                    current.batch.slots = keep.map { current.batch.slots[$0] }
                    if !current.batch.epochs.isEmpty { current.batch.epochs = keep.map { current.batch.epochs[$0] } }
                    current.batch.players = keep.map { current.batch.players[$0] }
                }
                current.batch.deleted += more.deleted
            }
            current.batch.players += more.players
            current.batch.slots += more.slots
            current.batch.epochs += more.epochs
            current.remaining -= more.players.count
            copied += more.players.count
            if current.remaining <= 0 || more.players.isEmpty || world.dirtyCount == 0 {
                current.longestTurn = max(current.longestTurn, uv_hrtime() - started)
                counters.lastHeldMicroseconds = current.longestTurn / 1000
                queue(current.takeBatch())
                return false
            }
        } while copied < Self.copySliceRecords && uv_hrtime() < deadline
        current.longestTurn = max(current.longestTurn, uv_hrtime() - started)
        return true
    }

    /// Makes a failed batch's players dirty again: at once when it is
    /// small, else over the next loop turns. At once after `close` too (the
    /// exit's `flushAll`, which comes next, writes what is dirty).
    private func remark(_ records: UnwrittenRecords) {
        guard case .idle = flush.state, records.keys.count > Self.remarkSliceRecords else {
            return world.markUnwritten(records)
        }
        moveFlush(to: .remarking(RemarkingRecords(records)))
        slices.start { [unowned self] deadline in remarkMore(until: deadline) }
    }

    /// One loop turn of `remark`; returns whether another is needed.
    private func remarkMore(until deadline: UInt64) -> Bool {
        guard case .remarking(let current) = flush.state else { return false }
        let cap = min(current.next + Self.remarkSliceRecords, current.records.keys.count)
        repeat {
            let end = min(current.next + Self.sliceChunkRecords, cap)
            world.markUnwritten(current.records, from: current.next, to: end)
            current.next = end
        } while current.next < cap && uv_hrtime() < deadline
        guard current.left == 0 else { return true }
        moveFlush(to: .idle)
        return false
    }

    /// Finishes `remark` now (someone needs the whole dirty state).
    private func finishRemarking() {
        guard case .remarking(let current) = flush.state else { return }
        slices.stop()
        world.markUnwritten(current.records, from: current.next, to: current.records.keys.count)
        moveFlush(to: .idle)
    }

    /// Drops a batch still being copied out: its records are dirty again.
    private func abandonCollecting() {
        guard case .collecting(let current) = flush.state else { return }
        slices.stop()
        moveFlush(to: .idle)
        world.markUnwritten(current.takeBatch())
    }

    /// Hands a batch to the worker.
    private func queue(_ batch: PersistBatch) {
        let task = FlushTask(batch: batch, storage: storage, owner: self)
        let status = UVWork.submit(on: loop, task, work: { task in
            // Worker thread: only the task's Sendable batch and the storage.
            task.run()
        }, after: { task in
            task.owner.finished(task)
        })
        if case .collecting = flush.state { slices.stop() }
        if status != 0 {
            // Never on the worker: it failed, and its records are dirty again.
            if case .collecting = flush.state { moveFlush(to: .idle) }
            let failure = StorageError("cannot queue a flush: \(UVError(status))", transient: true)
            lastFinished = (batch.recordCount, .failure(failure))
            record(batch, records: batch.recordCount, .failure(failure))
            if !whenDone.isEmpty { finishRemarking() }
            runWhenDone()
            return
        }
        moveFlush(to: .writing(task))
    }

    /// Loop thread: the worker is done with `task`.
    private func finished(_ task: FlushTask) {
        // The exit's flushAll waited for it and counted it already.
        if task.recordedByFlushAll { return }
        switch flush.state {
        case .writing(let writing) where writing === task: moveFlush(to: .idle)
        case .closed(let writing?) where writing === task: moveFlush(to: .closed(nil))
        default: return flush.bug("a flush the worker finished is not the one on it", logger: logger)
        }
        lastFinished = (task.records, task.result)
        record(task.batch, records: task.records, unwritten: task.unwritten,
               task.result ?? .failure(StorageError("flush did not run", transient: true)), receipt: task.receipt)
        if !whenDone.isEmpty { finishRemarking() }
        runWhenDone()
    }

    private func runWhenDone() {
        let waiting = whenDone
        whenDone.removeAll()
        for body in waiting { body() }
    }

    /// Runs `body` now if no flush is under way (being copied out or on the
    /// worker), else once it is done.
    func afterFlushInFlight(_ body: @escaping () -> Void) {
        finishRemarking()
        if flushUnderWay { whenDone.append(body) } else { body() }
    }

    /// What a flush asked for (an upgrade's final flush, SAVE) did.
    enum FinalFlush {
        case nothingDirty
        case wrote(records: Int, milliseconds: Double)
        /// Its records are dirty again: they go over in memory.
        case failed(StorageError)
    }

    /// An engine upgrade's final flush, before its hold: waits for the
    /// flush on the worker (the exec must not cut a write short), starts
    /// one more of everything dirty now, pauses (no flush starts after it:
    /// what is dirtied meanwhile goes to the next engine in memory, which
    /// writes it), and calls `body` on the loop once it is done. The game
    /// is served throughout: the disk is the worker's. A failed flush (a
    /// full disk) stops nothing: its records are dirty again, and go over.
    /// The caller sets `paused` back if the upgrade does not happen.
    func finalFlush(then body: @escaping (FinalFlush) -> Void) {
        paused = true
        flushNow(then: body)
    }

    /// Writes what is dirty now, whatever the interval (the admin's SAVE,
    /// and an upgrade's final flush): waits for a flush under way, starts
    /// one more, and calls `body` on the loop once it is written or failed.
    func flushNow(then body: @escaping (FinalFlush) -> Void) {
        if adoptingLeases {
            return body(.failed(StorageError("the leases this process holds are not read back from \(storage.location) yet (since the engine upgrade): nothing can be written before", transient: true)))
        }
        afterFlushInFlight { [unowned self] in
            // Another waiter on the same flush (a SAVE, an upgrade's final
            // flush) may have started the next one just now: it holds what
            // is dirty now, so this one waits for it too. (Answering
            // "nothing dirty" here let an upgrade exec with those records
            // on the worker, neither in the file nor dirty.)
            guard flushUnderWay || startFlush() else {
                // Nothing to write: the file is checked all the same, so
                // that a SAVE never answers +OK for a file that is gone.
                return checkFile { error in body(error.map { .failed($0) } ?? .nothingDirty) }
            }
            afterFlushInFlight { [unowned self] in
                guard let task = lastFinished else { return body(.failed(StorageError("flush did not run", transient: true))) }
                switch task.result {
                case .success(let milliseconds): body(.wrote(records: task.records, milliseconds: milliseconds))
                case .failure(let error): body(.failed(error))
                case nil: body(.failed(StorageError("flush did not run", transient: true)))
                }
            }
        }
    }

    // MARK: - Engine upgrade (WriteBehind+Handoff.swift)

    /// What the previous engine's write-behind knew: what the file has
    /// seen, and the counters STATUS shows.
    func adopt(_ state: WriteBehindHandoff) {
        persistedColumns = (state.globalColumns, state.playerColumns)
        persistedDeclared = state.declared
        counters = state.counters
    }

    /// Counts a flush's outcome; a failed batch is dirty again. `records`
    /// is counted apart: a written batch's records were freed on the worker.
    private func record(_ batch: PersistBatch, records: Int, unwritten: UnwrittenRecords? = nil,
                        _ result: Result<Double, StorageError>, receipt: WriteReceipt = WriteReceipt()) {
        switch result {
        case .success(let milliseconds):
            if !batch.released.isEmpty { world.leasesReleased(batch.released) }
            if !receipt.fenced.isEmpty { leasesLost(receipt.fenced) }
            if let holder = receipt.nameHeldBy { nameHeldElsewhere(holder) }
            onLeasesSettled()
            persistedColumns = (batch.globalColumns.count, batch.playerColumns.count)
            if let declared = batch.declared { persistedDeclared = declared }
            if batch.timers != nil { timersWrittenVersion = batch.timersVersion }
            counters.flushes += 1
            counters.recordsWritten += records
            counters.lastBatchRecords = records
            counters.lastFlushMilliseconds = milliseconds
            if counters.lastError != nil {
                logger.notice("database writes work again: \(storage.location)")
                counters.lastError = nil
            }
            lostFile = nil
        case .failure(let error):
            // Its releases first (the records may be made dirty again over
            // several turns): logins waiting on them go on below.
            if !batch.released.isEmpty { world.unrelease(batch.released) }
            remark(unwritten ?? UnwrittenRecords(batch))
            countFailure(error)
            // Its releases are queued again (with the records): logins that
            // waited for them plan again, against leases still held.
            onLeasesSettled()
        }
    }

    /// Closes the sessions of players another server took (`onLeasesLost`:
    /// the engine says why first) and logs them, at most a few by name.
    private func leasesLost(_ keys: [[UInt8]]) {
        let sessions = world.leasesLost(keys)
        let names = keys.prefix(5).map { String(decoding: $0, as: UTF8.self) }.joined(separator: ", ")
        logger.error("database \(storage.location): \(keys.count) player(s) taken by another server (\(names)\(keys.count > 5 ? ", ..." : "")) while this one held them: their changes since the last flush are not written, and \(sessions.count) sessions are closed")
        onLeasesLost(sessions)
    }

    /// Another live server took this one's `--server-name` (logged at
    /// most every 10 s, while it lasts): the two now share a global row
    /// and rewrite each other's durable timers.
    private func nameHeldElsewhere(_ holder: String) {
        let now = uv_now(loop)
        guard lastNameWarningAt == 0 || now - lastNameWarningAt >= 10_000 else { return }
        lastNameWarningAt = now
        logger.critical("database \(storage.location): this server's --server-name is held by another live server (\(holder)): it was cut off past its lease and another server started under the same name; the two share a global row and rewrite each other's durable timers. Give each server its own --server-name")
    }

    /// Closes sessions whose player another server took (set by the engine).
    var onLeasesLost: ([GameID]) -> Void = { _ in }
    /// Releases in a flush are over, or leases were read back: logins that
    /// waited for them go on (set by the engine).
    var onLeasesSettled: () -> Void = {}
    private var lastNameWarningAt: UInt64 = 0

    /// What a file check on the worker found (nil: the path names the open
    /// file). One that finds the file back after it was lost clears the
    /// error: the next tick writes what is dirty.
    func fileChecked(_ problem: StorageError?) {
        if let problem { return countFailure(problem) }
        guard lostFile != nil else { return }
        lostFile = nil
        counters.lastError = nil
        logger.notice("database \(storage.location) names the open file again: flushes resume")
    }

    /// Counts a failed flush or file check (`db_errors=`, `last_db_error=`)
    /// and logs it: at once when it is the first or of another kind than
    /// the last, else at most every 10 s.
    func countFailure(_ error: StorageError) {
        counters.errors += 1
        counters.lastError = error.description
        let wasLost = lostFile != nil
        lostFile = error.lostFile ? error : nil
        let now = uv_now(loop)
        let kindChanged = error.isTransient != lastErrorTransient || error.lostFile != wasLost
        lastErrorTransient = error.isTransient
        guard kindChanged || lastErrorLoggedAt == 0 || now - lastErrorLoggedAt >= 10_000 else { return }
        lastErrorLoggedAt = now
        let dirty = world.dirtyCount + unwrittenNotYetDirty
        if error.lostFile {
            // At exit the final flush's own line says it (and what is lost).
            if case .closed = flush.state { return }
            let every = max(UInt64(intervalMilliseconds), Self.fileCheckIntervalMilliseconds)
            logger.critical("\(error.description): \(dirty) records stay dirty in memory. The game goes on, and the path is checked again every \(every) ms: flushes resume by themselves only if it names the open file again. \(error.advice ?? "")")
        } else if error.isTransient {
            logger.error("\(error.description); \(dirty) records stay dirty in memory and are retried every \(intervalMilliseconds) ms")
        } else {
            logger.critical("\(error.description); not a transient error (retrying will not help until its cause is fixed): \(dirty) records stay dirty in memory and are retried every \(intervalMilliseconds) ms")
        }
    }

    /// Writes everything still dirty, synchronously; for shutdown, once the
    /// loop no longer serves. A failure is retried a few times (not a lost
    /// file: no retry brings it back), then reported: its records are lost
    /// with the process, and so is the process's exit status 0
    /// (`FinalFlushStatus`). With nothing to write the file is checked: a
    /// server whose file is gone has lost everything it wrote, and must
    /// not exit as if all were well.
    @discardableResult
    func flushAll(attempts: Int = 3) -> Result<Int, StorageError> {
        let result = writeEverything(attempts: attempts)
        if case .failure = result { FinalFlushStatus.failed() }
        return result
    }

    private func writeEverything(attempts: Int) -> Result<Int, StorageError> {
        do throws(StorageError) {
            try adoptLeasesNow()
        } catch {
            countFailure(error)
            return .failure(error)
        }
        finishRemarking()
        // A batch still being copied out: its records are dirty again, and
        // written below with everything else.
        abandonCollecting()
        // A flush still on the worker (the loop was stopped, not run dry:
        // a stuck module load): let it finish first, then write its records
        // again if it failed, so nothing older lands after the last write.
        let onTheWorker: FlushTask? = switch flush.state {
        case .writing(let task), .closed(let task?): task
        default: nil
        }
        if let pending = onTheWorker {
            if case .writing = flush.state { moveFlush(to: .idle) } else { moveFlush(to: .closed(nil)) }
            if pending.done.wait(timeout: .now() + .seconds(30)) == .success {
                pending.recordedByFlushAll = true
                record(pending.batch, records: pending.records, unwritten: pending.unwritten,
                       pending.result ?? .failure(StorageError("flush did not run", transient: true)), receipt: pending.receipt)
            } else {
                // Still stuck in its write (or finishing just now): what
                // makes it dirty again is read under the task's lock, and
                // its completion, if the loop ever runs again, is ignored.
                pending.recordedByFlushAll = true
                world.markUnwritten(pending.unwrittenIfAbandoned())
            }
        }
        var written = 0
        var lastFailure: StorageError?
        for attempt in 0..<attempts {
            guard let batch = nextBatch() else {
                // Nothing (more) to write. A write checks the file by
                // itself; without one, the file is checked here.
                if written == 0 && lastFailure == nil {
                    do throws(StorageError) {
                        try storage.verifyIdentity()
                    } catch {
                        countFailure(error)
                        return .failure(error)
                    }
                }
                return .success(written)
            }
            var receipt = WriteReceipt()
            let result = FlushTask.write(batch, to: storage, receipt: &receipt)
            record(batch, records: batch.recordCount, result, receipt: receipt)
            switch result {
            case .success: written += batch.recordCount
            case .failure(let error):
                lastFailure = error
                if attempt + 1 < attempts && !error.lostFile { usleep(100_000) }
            }
            if lastFailure?.lostFile == true { break }
        }
        if let lastFailure, lastFailure.lostFile || world.dirtyCount > 0 || world.globalDirty || !world.deletedKeys.isEmpty {
            return .failure(lastFailure)
        }
        return .success(written)
    }

    /// Stops the timer (shutdown).
    func close() {
        if case .closed = flush.state { return }
        // Dirty again in full: the final flush at exit writes them.
        finishRemarking()
        abandonCollecting()
        if case .writing(let task) = flush.state { moveFlush(to: .closed(task)) } else { moveFlush(to: .closed(nil)) }
        timer.closeAndFree()
        slices.close()
    }
}

/// One flush on its way through the worker: the batch goes over, the
/// result comes back; neither side touches the other's state meanwhile.
final class FlushTask: @unchecked Sendable {
    /// What goes over. Its records are freed on the worker once written
    /// (a million of them, after a migration, freed on the loop stalled the
    /// game 80 ms); a failed batch leaves what makes it dirty again.
    private(set) var batch: PersistBatch
    /// Set by the worker when the write failed.
    private(set) var unwritten: UnwrittenRecords?
    /// Guards `batch` and `unwritten` while the worker sets them and a
    /// shutdown that gave up waiting for the worker reads them (the only
    /// time both may run).
    private let batchLock = DispatchSemaphore(value: 1)

    /// For a shutdown that gave up on the worker: the records to make dirty
    /// again, whether the write is still running (all of them), failed
    /// (its `unwritten`) or has just succeeded (none).
    func unwrittenIfAbandoned() -> UnwrittenRecords {
        batchLock.wait()
        defer { batchLock.signal() }
        if let unwritten { return unwritten }
        if case .success = result { return UnwrittenRecords() }
        return UnwrittenRecords(batch)
    }
    let records: Int
    let storage: any PlayerStorage
    let owner: WriteBehind
    /// Written by the worker (under `batchLock`), read on the loop after
    /// `uv_queue_work`'s completion callback (which orders the two), or
    /// after `done`.
    var result: Result<Double, StorageError>?
    /// What a successful write said beyond success (shared storage's
    /// fenced players); same ordering as `result`.
    var receipt = WriteReceipt()
    /// Signalled when the worker is done (for `flushAll` at shutdown).
    let done = DispatchSemaphore(value: 0)
    /// `flushAll` waited for it and counted its outcome: its completion on
    /// the loop, if the loop runs again, has nothing left to do (loop only).
    var recordedByFlushAll = false

    init(batch: PersistBatch, storage: any PlayerStorage, owner: WriteBehind) {
        self.batch = batch
        records = batch.recordCount
        self.storage = storage
        self.owner = owner
    }

    func run() {
        var receipt = WriteReceipt()
        let outcome = FlushTask.write(batch, to: storage, receipt: &receipt)
        let failed: UnwrittenRecords? = if case .failure = outcome { UnwrittenRecords(batch) } else { nil }
        batchLock.wait()
        result = outcome
        self.receipt = receipt
        unwritten = failed
        batch.players = []
        batch.slots = []
        batchLock.signal()
        done.signal()
    }

    /// Writes and times one batch.
    static func write(_ batch: PersistBatch, to storage: any PlayerStorage, receipt: inout WriteReceipt)
        -> Result<Double, StorageError>
    {
        let start = uv_hrtime()
        do {
            receipt = try storage.write(batch)
            return .success(Double(uv_hrtime() - start) / 1_000_000)
        } catch {
            return .failure(error)
        }
    }
}

/// A write-behind's counters, for STATUS and the metrics.
struct FlushCounters: Equatable {
    var flushes = 0
    var recordsWritten = 0
    var errors = 0
    var lastFlushMilliseconds = 0.0
    var lastBatchRecords = 0
    /// Microseconds the loop spent copying the last batch out of World (the
    /// only part of a flush the game waits for).
    var lastHeldMicroseconds: UInt64 = 0
    var lastError: String?
}
