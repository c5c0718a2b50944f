import CLibUV
import FaultGuard
import GameABI
import Logging
import UVKit

/// What the logic host asks of the engine around module calls.
protocol LogicHostDelegate: AnyObject {
    /// A module asked to close this session; called once its call returned.
    func logicRequestedClose(_ session: GameID)
    /// Module code faulted or hung and was contained; `rolledBack` is set
    /// when the fault policy swapped the version out, `refused` when it
    /// tried and could not (the version keeps serving).
    func logicFaulted(_ fault: FaultRecord, rolledBack: SwapReport?, refused: SwapError?)
    /// A reload's staged migration got this far (about once a second).
    func logicMigrating(_ candidate: LoadedModule, done: Int, of total: Int)
}

/// Counters of contained faults, for STATUS.
struct FaultCounters {
    var faults = 0
    var timeouts = 0
    var autoRollbacks = 0
    var last: FaultRecord?
}

/// The logic side of the engine, in three parts:
/// - `ModuleCall` (ModuleCall.swift): the call in progress and the state
///   table's thunks; it holds the serving module and its bindings.
/// - `ModuleRegistry` (ModuleRegistry.swift): the other modules mapped, and
///   what the fault guard is told of them.
/// - this class: the reloader. A reload's lifecycle (ReloadState.swift), the
///   swap transaction, rollbacks, the staged migration (StagedMigration.swift)
///   and the fault policy, which may roll a version back.
///
/// Every module call goes through `call`, so the rules around a call are in
/// one place; every change of the module serving goes through here.
final class LogicHost {
    let world: World
    let loader: ModuleLoader
    unowned(unsafe) var delegate: (any LogicHostDelegate)?
    let loop: UnsafeMutablePointer<uv_loop_t>
    let logger: Logger
    /// The call in progress, the table, the serving module and bindings.
    let call: ModuleCall
    /// The other modules mapped.
    private(set) var registry: ModuleRegistry

    /// The module serving.
    var module: LoadedModule { call.module }
    /// The store columns of the serving module's fields, by declared index.
    var bindings: [FieldBinding] { call.bindings }
    /// The module that served before the last swap, kept for ROLLBACK.
    var previousModule: LoadedModule? { registry.previous }
    var history: [ModuleHistoryEntry] { registry.history }
    var condemned: Set<String> { registry.condemned }
    var lastLoadSHA256: String? { registry.lastLoadSHA256 }
    var requestCount: Int { call.requestCount }
    var firstCallNanoseconds: UInt64? { call.firstCallNanoseconds }
    var table: UnsafeMutablePointer<game_state_table> { call.table }
    var faultBuffer: UnsafeMutablePointer<fg_fault> { call.faultBuffer }

    /// Where a reload is (ReloadState.swift): changed only by `moveReload`.
    private(set) var reload = Lifecycle(ReloadState.idle)
    /// `--load-timeout`: how long a load may take on its worker.
    var loadTimeoutMilliseconds = 10_000
    /// Answers a load that does not finish in time; nil once closed at
    /// shutdown (a worker still out then must not touch it when it returns).
    private var loadTimer: UnsafeMutablePointer<uv_timer_t>?

    /// A reload is in progress (loading, stuck, staging): other reloads,
    /// rollbacks and FORGET are refused.
    var reloading: Bool { reload.state.busy }
    /// The staged migration in progress (StagedMigration.swift).
    var staged: StagedMigration? {
        if case .staging(let migration) = reload.state { return migration }
        return nil
    }
    /// A load timed out and its worker has not come back: no watchdog
    /// reaches a worker thread, so it may never. Reloads are refused, and
    /// shutdown does not wait for it.
    var loadStuck: Bool { reload.state.loadStuck }
    /// No more reloads (the server is stopping).
    var stopped: Bool {
        if case .stopped = reload.state { return true }
        return false
    }
    /// What STATUS shows as `reload=`.
    var reloadStateName: String { reload.state.name }

    func moveReload(to next: ReloadState) { reload.move(to: next, logger: logger) }

    /// The server is stopping: no reload starts from now on; a staged
    /// migration is abandoned (its operator is answered), a load on its
    /// worker is answered when it returns.
    func stop() {
        switch reload.state {
        case .idle: moveReload(to: .stopped(.none))
        case .loading(let task): moveReload(to: .stopped(.running(task)))
        case .stuck: moveReload(to: .stopped(.stuck))
        case .staging: endStagedMigration(.failure(.shuttingDown), then: .stopped(.none))
        case .stopped: break
        }
    }

    /// Faults contained so far, and when a version has faulted too often.
    private(set) var faultCounters = FaultCounters()
    private(set) var faultPolicy: FaultPolicy

    init(world: World, loader: ModuleLoader, module: LoadedModule, loop: UnsafeMutablePointer<uv_loop_t>,
         logger: Logger, faultPolicy: FaultPolicy = FaultPolicy(maxFaults: 3, windowSeconds: 60)) throws(SchemaError)
    {
        self.world = world
        self.loader = loader
        self.loop = loop
        self.logger = logger
        self.faultPolicy = faultPolicy
        call = ModuleCall(world: world, module: module, bindings: try world.bind(module.fields), loop: loop,
                          logger: logger)
        registry = ModuleRegistry(serving: module)
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        uv_unref(timer.handle)
        timer.context = UVContext.pointer(to: self)
        loadTimer = timer
        call.owner = self
    }

    /// Closes the host's own handle (at shutdown).
    func close() {
        stop()
        loadTimer?.closeAndFree()
        loadTimer = nil
    }

    /// Arms fault containment on the calling (loop) thread: faults and hangs
    /// in module code are contained from here on (see FaultGuard).
    func installFaultGuard(callTimeoutMilliseconds: Int) -> Int32 {
        let status = fg_install(UInt32(callTimeoutMilliseconds))
        if status == 0 { identifyModuleToGuard() }
        return status
    }

    /// Tells the guard which module serves and which images are module code.
    private func identifyModuleToGuard() { registry.identifyToGuard(serving: call.module) }

    var imagesMapped: Int { loader.imagesMapped }
    var nowMilliseconds: UInt64 { uv_now(loop) }

    // MARK: - Calls (ModuleCall)

    func handle(_ line: UnsafeRawBufferPointer, from session: GameID, peer: any SessionPeer) {
        call.handle(line, from: session, peer: peer)
    }

    func sessionClosed(_ session: GameID) { call.sessionClosed(session) }
    func sessionAway(_ session: GameID) { call.sessionAway(session) }
    func sessionBack(_ session: GameID) { call.sessionBack(session) }

    /// Records, logs and reports a contained fault, and applies the fault
    /// policy: a version that faulted `--max-faults` times within
    /// `--fault-window` is rolled back to the previous one, if any.
    func contained(_ outcome: Int32, export: String) {
        let record = faultRecord(outcome, export: export, of: module)
        faultCounters.last = record
        if outcome == FG_TIMEOUT { faultCounters.timeouts += 1 } else { faultCounters.faults += 1 }
        let text = FaultText(fault: faultBuffer.pointee, frames: record.frames, imagePath: module.imagePath)
        logger.error("contained: \(record)\(text.suffix); the call was undone", metadata: [
            "sha256": "\(record.moduleSHA256)", "address": "0x\(String(record.address, radix: 16))",
            "backtrace": "\(record.frames.joined(separator: " | "))"])
        var rolledBack: SwapReport?
        var refusal: SwapError?
        if faultPolicy.record(sha256: module.sha256, now: nowMilliseconds), !reloading, !stopped,
            let previous = previousModule, !condemned.contains(previous.sha256)
        {
            let faulty = module
            registry.condemned.insert(faulty.sha256)
            do throws(SwapError) {
                rolledBack = try rollback()
                faultCounters.autoRollbacks += 1
                faultPolicy.forget(sha256: faulty.sha256)
                let seconds = faultPolicy.windowMilliseconds / 1000
                logger.error("\(faulty.name) \(faulty.version) faulted \(faultPolicy.maxFaults) times within \(seconds) s: rolled back to \(module.name) \(module.version)")
            } catch {
                // It keeps serving, each fault contained; its count starts
                // over, so the operator hears of this once per window's
                // worth of faults, not on every one.
                refusal = error
                faultPolicy.forget(sha256: faulty.sha256)
                let seconds = faultPolicy.windowMilliseconds / 1000
                logger.error("\(faulty.name) \(faulty.version) faulted \(faultPolicy.maxFaults) times within \(seconds) s but was not rolled back: \(error); it keeps serving, its faults contained")
            }
        }
        delegate?.logicFaulted(record, rolledBack: rolledBack, refused: refusal)
    }

    /// The guard's record of the last fault, in engine terms.
    private func faultRecord(_ outcome: Int32, export: String, of module: LoadedModule) -> FaultRecord {
        let fault = faultBuffer.pointee
        var frames: [String] = []
        withUnsafeBytes(of: fault.frames) { raw in
            let pointers = raw.bindMemory(to: UnsafeMutableRawPointer?.self)
            for index in 0..<Int(min(max(fault.frame_count, 0), FG_MAX_FRAMES)) {
                guard let pc = pointers[index] else { continue }
                // dladdr takes the dynamic linker's lock, which a load on
                // the worker holds through dlopen: the loop must not wait
                // for it, so while one runs the frames stay raw addresses.
                if reload.state.workerMayHoldTheLinkerLock {
                    frames.append("0x" + String(UInt(bitPattern: pc), radix: 16))
                    continue
                }
                var text = [CChar](repeating: 0, count: 256)
                _ = fg_describe_frame(pc, &text, text.count)
                frames.append(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
        }
        let cause: FaultRecord.Cause = outcome == FG_TIMEOUT
            ? .timeout(milliseconds: Int(fault.elapsed_ms)) : .signal(fault.signal)
        return FaultRecord(cause: cause, export: export, moduleName: module.name, moduleVersion: module.version,
                           moduleSHA256: module.sha256, address: UInt(bitPattern: fault.address), frames: frames)
    }

    // MARK: - Reload and rollback

    /// Loads the module at `path` on a libuv worker thread, then swaps it in
    /// on the loop and calls `done` there. A file whose SHA-256 is
    /// `unlessSHA256` (by default the serving module's) is answered
    /// `.unchanged` without being mapped; the hash is computed on the worker.
    ///
    /// Why a worker: copying, hashing, checking and `dlopen`ing an image
    /// takes about a millisecond, which would stall every player; only the
    /// bind, the migration and the commit need the loop.
    func reload(path: String, unlessSHA256: String? = nil, done: @escaping (Result<SwapOutcome, SwapError>) -> Void) {
        switch reload.state {
        case .idle: break
        case .stopped: return done(.failure(.shuttingDown))
        case .stuck: return done(.failure(.loadStuck))
        case .loading, .staging: return done(.failure(.busy))
        }
        let job = ReloadJob(request: loader.request(path: path, unlessSHA256: unlessSHA256 ?? module.sha256))
        let task = ReloadTask(job: job, host: self, done: done)
        let status = UVWork.submit(on: loop, job, work: { job in
            // Worker thread: only the job's Sendable request and result.
            job.result = job.request.perform()
        }, after: { _ in
            task.host.finishReload(task)
        })
        if status != 0 { return done(.failure(.cannotQueue(UVError(status)))) }
        moveReload(to: .loading(task))
        // No watchdog reaches a worker thread: a module constructor or
        // hotswap_describe that never returns would leave the operator
        // waiting forever. The timer answers instead.
        guard let loadTimer else { return }
        uvMust(uv_timer_start(loadTimer, { timer in
            UVContext.object(timer!.pointee.data, as: LogicHost.self).loadTimedOut()
        }, UInt64(loadTimeoutMilliseconds), 0), "uv_timer_start")
    }

    private func loadTimedOut() {
        let task: ReloadTask
        switch reload.state {
        case .loading(let running):
            task = running
            moveReload(to: .stuck)
        case .stopped(.running(let running)):
            task = running
            moveReload(to: .stopped(.stuck))
        default:
            return
        }
        logger.error("a module load did not finish within \(loadTimeoutMilliseconds) ms on its worker thread: refused; reloads stay refused until it returns")
        task.done(.failure(.loadTimedOut(milliseconds: loadTimeoutMilliseconds)))
    }

    /// The worker came back (loop thread).
    private func finishReload(_ task: ReloadTask) {
        let (job, done) = (task.job, task.done)
        if let loadTimer { uv_timer_stop(loadTimer) }
        let answered: Bool
        switch reload.state {
        case .loading:
            // Left below: for staging, or for idle.
            answered = false
        case .stuck:
            answered = true
            moveReload(to: .idle)
        case .stopped(.running):
            answered = false
            moveReload(to: .stopped(.none))
        case .stopped(.stuck):
            answered = true
            moveReload(to: .stopped(.none))
        case .idle, .staging, .stopped(.none):
            return reload.bug("a load's worker returned, but none was out", logger: logger)
        }
        if answered {
            // It timed out and the operator was told it failed: a late
            // result is counted, never swapped in.
            if let result = job.result { loader.finished(result) }
            logger.warning("the module load that timed out finished late; it was discarded")
            return
        }
        if stopped {
            // Nobody to serve with it any more: do not run its hooks.
            if let result = job.result {
                loader.finished(result)
                registry.lastLoadSHA256 = result.sha256
            }
            return done(.failure(.shuttingDown))
        }
        guard let result = job.result else {
            moveReload(to: .idle)
            return done(.failure(.cannotQueue(UVError(UV_ECANCELED.rawValue))))
        }
        loader.finished(result)
        registry.lastLoadSHA256 = result.sha256
        switch result.outcome {
        case .failed(let error):
            moveReload(to: .idle)
            done(.failure(.load(error)))
        case .unchanged:
            moveReload(to: .idle)
            done(.success(.unchanged(module)))
        case .loaded(let candidate):
            // loading -> staging, when the stored players migrate first.
            if stageMigration(of: candidate, loadNanoseconds: result.nanoseconds, done: done) { return }
            moveReload(to: .idle)
            commitReload(candidate, loadNanoseconds: result.nanoseconds, staged: nil, done: done)
        }
    }

    /// Swaps a loaded candidate in (migrating what `staged` left to do, or
    /// everything) and tells `done`.
    func commitReload(_ candidate: LoadedModule, loadNanoseconds: UInt64, staged: StagedMigration?,
                      done: (Result<SwapOutcome, SwapError>) -> Void)
    {
        // Whatever happens, a staged migration's write noting ends here.
        defer { world.endStaging() }
        do throws(SwapError) {
            let report = try swap(to: candidate, migrate: true, loadNanoseconds: loadNanoseconds, staged: staged)
            registry.swapped(from: report.from, to: candidate, isRollback: false)
            identifyModuleToGuard()
            done(.success(.swapped(report)))
        } catch {
            done(.failure(error))
        }
    }

    /// Runs `body` (the candidate's hooks) with the candidate's bindings and
    /// output refused (`ModuleCall.asCandidate`); the guard is told of the
    /// serving module again afterwards.
    func asCandidate<R>(_ candidate: LoadedModule, bindings candidateBindings: [FieldBinding],
                        _ body: () throws(SwapError) -> R) throws(SwapError) -> R
    {
        try call.asCandidate(candidate, bindings: candidateBindings, restored: identifyModuleToGuard, body)
    }

    /// Records a reload the candidate's own hooks failed (the world is
    /// already as it was): remembered for the guard, and a contained fault
    /// counted and logged. Returns the error the operator is told.
    /// `faulting` is the module whose hook ran, when it is not the
    /// candidate (a rollback's `hotswap_migrate_down`).
    func refused(_ candidate: LoadedModule, _ error: SwapError, faulting: LoadedModule? = nil) -> SwapError {
        var error = error
        if case .migrateFaulted(let outcome, _, let export) = error {
            error = .faulted(faultRecord(outcome, export: export, of: faulting ?? candidate))
        }
        registry.lastRefused = candidate
        identifyModuleToGuard()
        if case .faulted(let record) = error {
            faultCounters.faults += 1
            faultCounters.last = record
            logger.error("contained: \(record); the reload is refused and nothing changed")
        }
        return error
    }

    // MARK: - Engine upgrade (LogicHost+Handoff.swift)

    /// Takes over what the previous engine's host held: the previous module
    /// (mapped again from its private copy, so ROLLBACK works), the history,
    /// fault counters, condemned versions and recent faults. World's store
    /// was replaced by the handed-over one, so the current module binds
    /// again: to the same columns, found by name and type. Throws, having
    /// changed nothing the caller keeps, when it cannot bind.
    func adopt(_ handoff: LogicHandoff, previous: LoadedModule?) throws(SchemaError) {
        call.bindings = try world.bind(module.fields)
        registry.previous = previous
        registry.history = handoff.history.map { item in
            switch item.role {
            case .current: ModuleHistoryEntry(module)
            case .previous: previous.map(ModuleHistoryEntry.init) ?? item.entry
            case .unmapped: item.entry
            }
        }
        faultCounters = handoff.faultCounters
        registry.condemned = Set(handoff.condemned)
        registry.lastLoadSHA256 = handoff.lastLoadSHA256
        call.firstCallNanoseconds = handoff.firstCallNanoseconds
        call.requestCount = handoff.requestCount
        faultPolicy.restore(ages: handoff.recentFaults, now: nowMilliseconds)
        identifyModuleToGuard()
    }

    /// Swaps back to the module that served before the last swap. It is
    /// still mapped, so nothing is loaded; fields it declared and the newer
    /// module dropped were kept and come back with their values. A field
    /// the newer module retyped or migrated comes back through the newer
    /// module's `hotswap_migrate_down`, or the rollback is refused
    /// (ABI 1.5, RollbackCheck.swift).
    func rollback() throws(SwapError) -> SwapReport {
        guard !reloading else { throw .busy }
        guard let previous = previousModule else { throw .nothingToRollBack }
        let report: SwapReport
        do throws(SwapError) {
            report = try swap(to: previous, migrate: false, loadNanoseconds: 0)
        } catch .downDeclined {
            // Its hotswap_migrate_down has no way back there (ABI 1.5):
            // as for a module without one, refused if anything would mix.
            logger.info("\(module.name) \(module.version)'s hotswap_migrate_down declined a rollback to \(previous.name) \(previous.version); deciding as without it")
            report = try swap(to: previous, migrate: false, loadNanoseconds: 0, useDown: false)
        }
        registry.swapped(from: report.from, to: previous, isRollback: true)
        identifyModuleToGuard()
        return report
    }

    /// A player field the swap would migrate (retype, or mark migrated on
    /// a reload), which shared storage cannot do for players not held.
    static func sharedMigration(serving: LoadedModule, candidate: LoadedModule, migrate: Bool) -> (String, Bool)? {
        for field in candidate.fields where field.kind == .player {
            if field.unique { return (field.name, false) }
            if serving.fields.contains(where: { $0.kind == .player && $0.name == field.name && $0.type != field.type }) {
                return (field.name, true)
            }
            if migrate && field.migrated { return (field.name, false) }
        }
        return nil
    }

    /// The transaction, inside one loop callback (no message can be handled
    /// halfway through it):
    ///
    ///     snapshot the store; bind the new schema    ── refuse on error
    ///     migrate each entity (module code)          ── restore on error
    ///     hotswap_load (module code)                 ── restore on error
    ///     commit: module and bindings switch         ── between two messages
    ///
    /// `migrate` false is a rollback: the entities are migrated down by
    /// the serving module's `hotswap_migrate_down`, if it exports one (the
    /// candidate is then the previous module, whose schema `t` writes).
    private func swap(to candidate: LoadedModule, migrate: Bool, loadNanoseconds: UInt64, staged: StagedMigration? = nil,
                      useDown: Bool = true) throws(SwapError) -> SwapReport
    {
        let started = uv_hrtime()
        // Timers are data the next module handles: one that cannot must
        // not serve while they are pending (a rollback too: validated the
        // same way, before anything changes).
        if world.timers.timerCount > 0, candidate.timer == nil {
            throw .timeExportMissing(export: "hotswap_timer", pending: world.timers.timerCount, what: "pending timers")
        }
        if world.timers.tickingRooms > 0, candidate.tick == nil {
            throw .timeExportMissing(export: "hotswap_tick", pending: world.timers.tickingRooms, what: "ticking rooms")
        }
        // Where every login goes through the engine's check, a module that
        // cannot answer one would leave players unable to log in.
        if call.authMode != .open, candidate.auth == nil {
            throw .authExportMissing(mode: call.authMode == .token ? "--auth-jwt-key" : "--require-secret")
        }
        if migrate, candidate.migrate == nil, let field = candidate.fields.first(where: \.migrated) {
            throw .migrateMissing(field: field.name)
        }
        if world.sharesPlayers, let (field, retyped) = Self.sharedMigration(serving: module, candidate: candidate, migrate: migrate) {
            throw .sharedPlayersMigration(field: field, retyped: retyped)
        }
        // Going back: the serving module turns its values back, or nothing
        // it retyped or computed may come back from before the upgrade.
        let down = migrate || !useDown ? nil : module.migrateDown
        if !migrate, down == nil, let mixed = RollbackCheck.mixedField(serving: module, previous: candidate) {
            throw .rollbackWouldMix(module.migrateDown == nil ? mixed : mixed.declined())
        }
        let saved = (store: world.snapshot(), bindings: bindings, module: module)
        // After a staged migration the player table it wrote comes first,
        // with the new columns, so the bind finds them (nothing is undone
        // by hand if the swap fails: the saved store comes back whole).
        var again: [GameID]?
        if var store = staged?.takeStore() { again = world.adoptStagedPlayers(&store) }
        let candidateBindings: [FieldBinding]
        do {
            candidateBindings = try world.bind(candidate.fields, live: module.fields, rollback: !migrate)
        } catch {
            world.restore(saved.store)
            throw .schema(error)
        }
        var migrated = 0
        do throws(SwapError) {
            try asCandidate(candidate, bindings: candidateBindings) { () throws(SwapError) in
                if migrate, let hook = candidate.migrate {
                    let context = MigrationContext(world: world, oldStore: saved.store,
                                                   oldFields: saved.module.fields, oldBindings: saved.bindings)
                    // Stored players only for a module that has player fields
                    // (an ABI 1.1 module cannot, and would not expect kind 4);
                    // after a staged migration, only those it must do again.
                    var players: [GameID] = []
                    if candidate.fields.contains(where: { $0.kind == .player }) {
                        if let again { players = again } else { world.forEachPlayer { players.append($0) } }
                    }
                    let ids = context.entities(players: players)
                    migrated = try context.run(hook, table: table, from: saved.module.version, to: candidate.version,
                                               ids: ids, fault: faultBuffer)
                    // Every stored player was migrated once: in a slice, or now.
                    if let again { migrated += world.playerCount - again.count }
                }
                if let down {
                    // A rollback's migration runs in the commit, stored
                    // players included: no staged slices as a reload has
                    // (StagedMigration.swift), so the loop is held about
                    // 0.2 µs per player and hook call (20 ms at 100,000).
                    let context = MigrationContext(world: world, oldStore: saved.store,
                                                   oldFields: saved.module.fields, oldBindings: saved.bindings)
                    var players: [GameID] = []
                    if candidate.fields.contains(where: { $0.kind == .player }) { world.forEachPlayer { players.append($0) } }
                    migrated = try context.run(down, table: table, from: saved.module.version, to: candidate.version,
                                               direction: .down, ids: context.entities(players: players),
                                               fault: faultBuffer)
                }
                if let hook = candidate.load {
                    var status: Int32 = GAME_OK
                    let outcome = Array(saved.module.version.utf8).withUnsafeBufferPointer {
                        fg_call_load(hook, table, $0.baseAddress, $0.count, &status, faultBuffer)
                    }
                    if outcome != FG_OK { throw .faulted(faultRecord(outcome, export: "hotswap_load", of: candidate)) }
                    if status != GAME_OK { throw .loadHookFailed(status: status) }
                }
            }
        } catch {
            world.restore(saved.store)
            // The hook declined (MigrationContext.run): nothing it did is
            // kept, and rollback() goes on as without it.
            if case .downDeclined = error { throw .downDeclined }
            // hotswap_migrate_down is the serving module's code: a fault in
            // it is that module's, not the previous one's.
            throw refused(candidate, error, faulting: down == nil ? candidate : saved.module)
        }
        // The commit: from the next message on, the candidate serves.
        world.noteSwap()
        call.bindings = candidateBindings
        call.module = candidate
        call.measureNextCall = true
        return SwapReport(from: saved.module, to: candidate, heldMicroseconds: (uv_hrtime() - started) / 1000,
                          loadMicroseconds: loadNanoseconds / 1000, migrated: migrated,
                          staged: staged.map { $0.progress(remigrated: again?.count) })
    }
}
