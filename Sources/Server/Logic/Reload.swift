import CLibUV
import GameABI
import Glibc

/// What an operator is told after a swap.
struct SwapReport {
    let from: LoadedModule
    let to: LoadedModule
    /// Microseconds the loop was held: no message was handled meanwhile
    /// (binding, migrating and committing).
    let heldMicroseconds: UInt64
    /// Copying, mapping and validating the file, on a worker thread while
    /// the loop kept serving.
    let loadMicroseconds: UInt64
    /// Entities passed through the module's `hotswap_migrate`.
    let migrated: Int
}

/// Why a reload or rollback was refused. The old module keeps serving and
/// no field has changed whenever one of these is thrown.
enum SwapError: Error, CustomStringConvertible {
    case load(ModuleLoadError)
    case path(String)
    case schema(SchemaError)
    case migrateMissing(field: String)
    case migrateFailed(entity: GameID, status: Int32)
    case loadHookFailed(status: Int32)
    case nothingToRollBack
    case busy

    var description: String {
        switch self {
        case .load(let error): "\(error)"
        case .path(let reason): reason
        case .schema(let error): "\(error)"
        case .migrateMissing(let field):
            "field '\(field)' is marked as migrated but the module exports no hotswap_migrate"
        case .migrateFailed(let entity, let status):
            "hotswap_migrate failed with status \(status) on \(entity)"
        case .loadHookFailed(let status): "hotswap_load failed with status \(status)"
        case .nothingToRollBack: "no previous module to roll back to"
        case .busy: "another reload is in progress"
        }
    }
}

/// Hot swap: replacing the logic module between two messages.
///
/// Everything happens inside one loop callback (the admin command or the
/// file watcher), so no player message can be handled halfway through: the
/// swap is atomic with respect to the protocol by construction.
///
///     load (copy, dlopen, resolve, ABI, schema)      ── refuse on error
///     stage: store' = store; bind(store', schema)    ── refuse on error
///     migrate each entity into store' (module code)  ── roll back on error
///     hotswap_load(store')                           ── roll back on error
///     commit: store = store', module = new           ── between two messages
extension Engine {
    /// Loads the module at `path` on a libuv worker thread, then swaps it
    /// in on the loop and calls `then` there.
    ///
    /// Why a worker: copying, checking and `dlopen`ing an image takes about
    /// a millisecond, which would stall every player; only the bind, the
    /// migration and the commit need the loop. The worker touches nothing
    /// but the loader and the file (one reload at a time: `reloading`), and
    /// module code it runs (`hotswap_describe`) keeps no state by contract.
    func reloadInBackground(path: String, then done: @escaping (Result<SwapReport, SwapError>) -> Void) {
        guard !reloading else {
            done(.failure(.busy))
            return
        }
        reloading = true
        let job = ReloadJob(engine: self, path: path, done: done)
        let work = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        work.pointee.data = Unmanaged.passRetained(job).toOpaque()
        let status = uv_queue_work(loop, work, { work in
            // Worker thread.
            let job = Unmanaged<ReloadJob>.fromOpaque(work!.pointee.data).takeUnretainedValue()
            let started = uv_hrtime()
            do throws(ModuleLoadError) {
                job.loaded = .success(try job.engine.loader.load(path: job.path))
            } catch {
                job.loaded = .failure(.load(error))
            }
            job.loadNanoseconds = uv_hrtime() - started
        }, { work, _ in
            // Loop thread.
            let job = Unmanaged<ReloadJob>.fromOpaque(work!.pointee.data).takeRetainedValue()
            work!.deallocate()
            job.engine.finishReload(job)
        })
        if status != 0 {
            Unmanaged<ReloadJob>.fromOpaque(work.pointee.data).release()
            work.deallocate()
            reloading = false
            done(.failure(.path("cannot queue the load: \(Listener.describe(status))")))
        }
    }

    private func finishReload(_ job: ReloadJob) {
        reloading = false
        stats.imagesMapped = loader.imagesMapped
        if shuttingDown {
            // Nobody to serve with it any more: do not run its hooks.
            job.done(.failure(.path("the server is shutting down")))
            return
        }
        let outcome: Result<SwapReport, SwapError>
        switch job.loaded {
        case .success(let candidate):
            do throws(SwapError) {
                let report = try swap(to: candidate, migrate: true, started: uv_hrtime(),
                                      loadNanoseconds: job.loadNanoseconds)
                previousModule = report.from
                loadHistory.append(candidate)
                outcome = .success(report)
            } catch {
                outcome = .failure(error)
            }
        case .failure(let error):
            outcome = .failure(error)
        case nil:
            outcome = .failure(.path("the load did not run"))
        }
        job.done(outcome)
    }

    /// Swaps back to the module that served before the last swap. It is
    /// still mapped, so nothing is loaded; fields it declared and the newer
    /// module dropped were kept and come back with their values.
    func rollback() throws(SwapError) -> SwapReport {
        guard !reloading else { throw .busy }
        guard let previous = previousModule else { throw .nothingToRollBack }
        let report = try swap(to: previous, migrate: false, started: uv_hrtime(), loadNanoseconds: 0)
        previousModule = report.from
        return report
    }

    private func swap(to candidate: LoadedModule, migrate: Bool, started: UInt64, loadNanoseconds: UInt64)
        throws(SwapError) -> SwapReport
    {
        if migrate, candidate.migrate == nil, let field = candidate.fields.first(where: \.migrated) {
            throw .migrateMissing(field: field.name)
        }
        let saved = (store: store, bindings: bindings, module: module)
        var staged = store
        let stagedBindings: [FieldBinding]
        do {
            stagedBindings = try staged.bind(candidate.fields, live: module.fields, rollback: !migrate)
        } catch {
            throw .schema(error)
        }
        // From here the table reads and writes the staged store; output and
        // room changes are refused until the swap is decided.
        store = staged
        bindings = stagedBindings
        module = candidate
        phase = .migrating
        defer { phase = .serving }
        var migrated = 0
        do throws(SwapError) {
            if migrate, let hook = candidate.migrate {
                let context = MigrationContext(engine: self, oldStore: saved.store,
                                               oldFields: saved.module.fields, oldBindings: saved.bindings)
                migrated = try context.run(hook, from: saved.module.version)
            }
            if let hook = candidate.load {
                let status = Array(saved.module.version.utf8).withUnsafeBufferPointer {
                    hook(table, $0.baseAddress, $0.count)
                }
                if status != GAME_OK { throw .loadHookFailed(status: status) }
            }
        } catch {
            store = saved.store
            bindings = saved.bindings
            module = saved.module
            throw error
        }
        measureNextCall = true
        return SwapReport(from: saved.module, to: candidate,
                          heldMicroseconds: (uv_hrtime() - started) / 1000,
                          loadMicroseconds: loadNanoseconds / 1000, migrated: migrated)
    }
}

/// One background load: what to load, what came of it, who to tell.
final class ReloadJob {
    let engine: Engine
    let path: String
    let done: (Result<SwapReport, SwapError>) -> Void
    var loaded: Result<LoadedModule, SwapError>?
    var loadNanoseconds: UInt64 = 0

    init(engine: Engine, path: String, done: @escaping (Result<SwapReport, SwapError>) -> Void) {
        self.engine = engine
        self.path = path
        self.done = done
    }
}

/// Lends `hotswap_migrate` the outgoing module's values by field name,
/// while the state table writes the staged store.
final class MigrationContext {
    unowned let engine: Engine
    let oldStore: StateStore
    let oldFields: [FieldSpec]
    let oldBindings: [FieldBinding]

    init(engine: Engine, oldStore: StateStore, oldFields: [FieldSpec], oldBindings: [FieldBinding]) {
        self.engine = engine
        self.oldStore = oldStore
        self.oldFields = oldFields
        self.oldBindings = oldBindings
    }

    /// Calls `hook` for the global entity, every session and every room.
    func run(_ hook: hotswap_migrate_fn, from version: String) throws(SwapError) -> Int {
        var versionBytes = Array(version.utf8)
        var ids: [GameID] = [GameID.global]
        engine.sessions.forEachID { ids.append($0) }
        engine.rooms.forEachID { ids.append($0) }
        return try versionBytes.withUnsafeMutableBufferPointer { version throws(SwapError) -> Int in
            var migration = game_migration(
                size: UInt32(MemoryLayout<game_migration>.size),
                abi_version: UInt32(GAME_ABI_VERSION),
                engine: Unmanaged.passUnretained(self).toOpaque(),
                from_version: version.baseAddress, from_version_length: version.count,
                old_get_int: { m, entity, name, length, out in
                    guard let out else { return GAME_ERR_BAD_ARGUMENT }
                    switch MigrationContext.from(m).old(entity, name, length, .int) {
                    case .success(let (store, binding, row)): out.pointee = store.int(binding, row: row); return GAME_OK
                    case .failure(let error): return error.rawValue
                    }
                },
                old_get_string: { m, entity, name, length, buffer, capacity, outLength in
                    guard let outLength, capacity >= 0, buffer != nil || capacity == 0 else { return GAME_ERR_BAD_ARGUMENT }
                    switch MigrationContext.from(m).old(entity, name, length, .string) {
                    case .success(let (store, binding, row)):
                        store.withString(binding, row: row) { bytes in
                            let taken = min(capacity, bytes.count)
                            if taken > 0, let buffer, let base = bytes.baseAddress {
                                UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: taken)
                            }
                            outLength.pointee = bytes.count
                        }
                        return GAME_OK
                    case .failure(let error): return error.rawValue
                    }
                })
            for id in ids {
                let status = withExtendedLifetime(self) { engine.module.migrate!(&migration, id.raw, engine.table) }
                if status != GAME_OK { throw .migrateFailed(entity: id, status: status) }
            }
            return ids.count
        }
    }

    private static func from(_ m: UnsafePointer<game_migration>?) -> MigrationContext {
        Unmanaged<MigrationContext>.fromOpaque(m!.pointee.engine).takeUnretainedValue()
    }

    /// Finds an old field by kind and name, checks its type and the entity.
    private func old(_ entity: UInt64, _ name: UnsafePointer<UInt8>?, _ length: Int, _ type: FieldType)
        -> Result<(StateStore, FieldBinding, Int), ABIError>
    {
        guard let name, length > 0, length <= Int(GAME_MAX_FIELD_NAME) else { return .failure(.badArgument) }
        let id = GameID(raw: entity)
        guard let kind = id.kind else { return .failure(.badArgument) }
        let bytes = UnsafeRawBufferPointer(start: name, count: length)
        let binding: FieldBinding
        if let index = oldFields.indices.first(where: {
            oldFields[$0].kind == kind && oldFields[$0].name.utf8.elementsEqual(bytes)
        }) {
            guard oldFields[index].type == type else { return .failure(.badType) }
            binding = oldBindings[index]
        } else if let hidden = oldStore.binding(kind: kind, name: bytes, type: type) {
            // Not declared by the outgoing module but kept from an earlier one.
            binding = hidden
        } else {
            return .failure(.badField)
        }
        let row: Int?
        switch kind {
        case .global: row = id == GameID.global ? 0 : nil
        case .session: row = engine.sessions.slotIndex(of: id)
        case .room: row = engine.rooms.slotIndex(of: id)
        }
        guard let row else { return .failure(kind == .room ? .badRoom : .badSession) }
        return .success((oldStore, binding, row))
    }
}
