import CLibUV
import FaultGuard
import Glibc
import Logging

/// The steps of the start-up sequence that a first engine and a resumed
/// one do differently, and nothing else: the sequence (`StartupSequence`)
/// calls these in its one order, whichever this is.
///
///     step                 fresh (FreshStart)              resumed (ResumedStart)
///     load modules         fault guard armed, load the     map the private copies the
///                          configured module               previous engine handed over
///     open storage         open, lock, read whole, check   open again on the handed lock,
///                          the stored schema               read nothing
///     bring up             bind the ports                  adopt listeners and connections,
///                                                          restore the state, answer UPGRADE
protocol StartPath {
    /// The current module (and the previous one, which only a resumed
    /// engine has: ROLLBACK works across an upgrade).
    func loadModules(_ loader: ModuleLoader, path: String) throws(StartRefused) -> (current: LoadedModule, previous: LoadedModule?)

    /// The database at `path` (a file, or a PostgreSQL URL), and what it
    /// holds (empty when the players come over in the handoff; with shared
    /// storage, a mark that the leases are to be read back).
    func openStorage(path: String, module: LoadedModule, shared: SharedStorageSettings, logger: Logger) throws(StartRefused)
        -> (any PlayerStorage, StoredSnapshot)

    /// Whether this engine may close the database before it serves: not
    /// while the lock still belongs to the previous engine it may fall
    /// back to.
    var ownsStorageBeforeServing: Bool { get }

    /// Starts serving: the ports, bound or adopted, as the ready file and
    /// the log name them.
    func bringUp(_ engine: Engine, previous: LoadedModule?, _ configuration: EngineConfiguration) throws(StartRefused)
        -> Endpoints

    /// Whether a ready file that cannot be written stops the start. A
    /// resumed engine serves already: that is no reason to give the
    /// players back.
    var readyFileFailureIsFatal: Bool { get }
}

/// The ports an engine serves on, as the ready file names them.
struct Endpoints {
    var game: ReadyFile.Endpoint
    var admin: ReadyFile.Endpoint
    var metrics: ReadyFile.Endpoint?
}

/// A first engine: everything from the command line and the database.
struct FreshStart: StartPath {
    /// `--call-timeout`, for the fault guard armed around the load.
    let callTimeout: Int

    var ownsStorageBeforeServing: Bool { true }
    var readyFileFailureIsFatal: Bool { true }

    /// The load runs module code (hotswap_abi_version and hotswap_describe)
    /// on this thread: guarded as a reload's is, so a module that crashes
    /// or hangs there is refused with the reason instead of killing or
    /// freezing the start.
    func loadModules(_ loader: ModuleLoader, path: String) throws(StartRefused) -> (current: LoadedModule, previous: LoadedModule?) {
        let status = fg_install(UInt32(callTimeout))
        if status != 0 { throw StartRefused("cannot install the fault guard: \(String(cString: strerror(-status)))") }
        do throws(ModuleLoadError) {
            return (try loader.load(path: path), nil)
        } catch {
            throw StartRefused("\(error)")
        }
    }

    /// Opened, locked (one server per file) and read whole before the
    /// module binds; any refusal names the file and the reason.
    func openStorage(path: String, module: LoadedModule, shared: SharedStorageSettings, logger: Logger) throws(StartRefused)
        -> (any PlayerStorage, StoredSnapshot)
    {
        let started = uv_hrtime()
        var opened: (any PlayerStorage)?
        do {
            if PostgresStorage.isURL(path) {
                let storage = try shared.open(url: path)
                opened = storage
                let stored = try storage.loadAll()
                logger.notice("database \(storage.location): shared, players read at login under a \(storage.leaseSeconds) s lease by \(storage.owner); \(stored.playerColumns.count) player and \(stored.globalColumns.count) global columns, read in \((uv_hrtime() - started) / 1_000_000) ms")
                if let problem = StartupSchemaCheck.problem(module: module, stored: stored, database: storage.location) {
                    throw StorageError(problem)
                }
                if let unique = module.fields.first(where: { $0.kind == .player && $0.unique }) {
                    throw StorageError("module \(module.name) declares player field '\(unique.name)' unique, and players live in a shared database: one server cannot check it against the players it does not hold (docs/SCALING.md)")
                }
                return (storage, stored)
            }
            let storage = try SQLiteStorage.open(path: path)
            opened = storage
            let stored = try storage.loadAll()
            logger.notice("database \(storage.location): \(stored.players.count) players\(stored.global == nil ? "" : " and the global row"), \(stored.playerColumns.count) player and \(stored.globalColumns.count) global columns, read in \((uv_hrtime() - started) / 1_000_000) ms")
            if let problem = StartupSchemaCheck.problem(module: module, stored: stored, database: storage.location) {
                throw StorageError(problem)
            }
            return (storage, stored)
        } catch {
            opened?.close()
            throw StartRefused("\(error)")
        }
    }

    func bringUp(_ engine: Engine, previous: LoadedModule?, _ configuration: EngineConfiguration) throws(StartRefused)
        -> Endpoints
    {
        let (game, admin) = (configuration.game, configuration.admin)
        do {
            var endpoints = Endpoints(
                game: .init(host: game.host, port: try engine.listen(.game, host: game.host, port: game.port)),
                admin: .init(host: admin.host, port: try engine.listen(.admin, host: admin.host, port: admin.port)))
            // The metrics port shares the admin host: what is exposed there
            // (module, SHA-256, counters) is for operators.
            if let metricsPort = configuration.metricsPort {
                endpoints.metrics = .init(host: admin.host, port: try engine.startMetrics(host: admin.host, port: metricsPort))
            }
            return endpoints
        } catch {
            throw StartRefused("\(error)")
        }
    }
}

/// An engine an upgrade exec'd: the state comes from the handoff. Until
/// `bringUp` has restored everything, any refusal hands the whole state
/// back to the previous engine (`GameServerCommand.main`).
struct ResumedStart: StartPath {
    let state: ResumedState

    var ownsStorageBeforeServing: Bool { false }
    var readyFileFailureIsFatal: Bool { false }

    /// Not under the fault guard: the restore guard's crash handlers must
    /// stay until the commit.
    func loadModules(_ loader: ModuleLoader, path: String) throws(StartRefused) -> (current: LoadedModule, previous: LoadedModule?) {
        try Resume.loadModules(state, loader: loader)
    }

    /// Opened again on the lock it was handed; nothing is read: its
    /// players came over in the handoff. A shared database is connected to
    /// again, under the identity the previous engine passed on (the same
    /// process holds the same leases). Nothing is asked of it here, in the
    /// upgrade's hold, where a database that is slow or down would keep
    /// every player waiting, or refuse the upgrade: the write-behind reads
    /// the leases back before its first flush (`WriteBehind+Leases.swift`).
    func openStorage(path: String, module: LoadedModule, shared: SharedStorageSettings, logger: Logger) throws(StartRefused)
        -> (any PlayerStorage, StoredSnapshot)
    {
        do {
            if PostgresStorage.isURL(path) {
                var snapshot = StoredSnapshot()
                snapshot.adoptLeases = true
                return (shared.openConnectingLater(url: path), snapshot)
            }
            // The flock first, then the path lock's socket; an engine from
            // before the path lock handed over the flock alone (`adopting`
            // then finds or binds the name).
            guard let locks = state.database?.lockDescriptors, let lock = locks.first else {
                throw StorageError("the previous engine handed over no database lock")
            }
            let handed = DatabaseLock(descriptor: lock, pathDescriptor: locks.count > 1 ? locks[1] : nil)
            return (try SQLiteStorage.open(path: path, adopting: handed), StoredSnapshot())
        } catch {
            throw StartRefused("\(error)")
        }
    }

    /// Every port came over bound; what answers on the metrics port is
    /// made here.
    func bringUp(_ engine: Engine, previous: LoadedModule?, _ configuration: EngineConfiguration) throws(StartRefused)
        -> Endpoints
    {
        if configuration.metricsPort != nil { engine.enableMetrics() }
        let summary = try engine.resume(state, previous: previous)
        var endpoints = Endpoints(game: configuration.game, admin: configuration.admin)
        for listener in summary.listeners {
            let endpoint = ReadyFile.Endpoint(host: listener.host, port: listener.port)
            switch listener.role {
            case .game: endpoints.game = endpoint
            case .admin: endpoints.admin = endpoint
            case .metrics: endpoints.metrics = endpoint
            }
        }
        return endpoints
    }
}
