import ArgumentParser
import CLibUV
import FaultGuard
import Glibc
import Logging
import Protocol
import UpgradeSupport
import UVKit

/// Why the server does not start (logged as it is raised). A resumed
/// engine that hits one falls back to the previous engine instead.
struct StartRefused: Error, CustomStringConvertible {
    let reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }
}

/// `gameserver`: starts the engine with a logic module and serves the game.
package struct GameServerCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "gameserver",
        abstract: "A multiplayer line-protocol game server whose game logic can be replaced live.",
        version: EngineIdentity.versionLine)

    @Option(help: "Address to listen on (IPv4 or IPv6).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free port (see --ready-file).", transform: within(0...65535))
    var port = 7777

    @Option(help: "Logic module to load (default: libGameLogic.so next to this executable).")
    var module: String?

    @Option(help: "Address of the admin port. A non-loopback address needs --admin-token.")
    var adminHost = "127.0.0.1"

    @Option(help: "Admin port (STATUS, RELOAD, ROLLBACK, MODULES, UPGRADE); 0 picks a free port.", transform: within(0...65535))
    var adminPort = 7778

    @Option(help: "Serve Prometheus metrics and health checks over HTTP on this port of --admin-host (GET /metrics, /healthz, /readyz); 0 picks a free port. Off when not given.",
            transform: within(0...65535))
    var metricsPort: Int?

    @Option(help: "Token admin clients must send with AUTH (or set GAMESERVER_ADMIN_TOKEN).")
    var adminToken: String?

    @Option(help: "Directory modules may be loaded from (default: the start-up module's directory).")
    var modulesDir: String?

    @Flag(help: "Reload by itself when the module file changes (for development).")
    var watch = false

    @Option(help: "Once listening, write the bound ports and pid here as one JSON object.")
    var readyFile: String?

    @Option(help: "Append every admin action to this file as one JSON line (default: off).")
    var auditLog: String?

    @Option(help: "SQLite file where players and global fields persist (WAL mode; back it up with sqlite3 .backup while running); :memory: keeps nothing.")
    var database = "hotswap.sqlite"

    @OptionGroup(title: "Limits")
    var limits: Limits

    @Option(help: "Directory other engine builds may be run from by UPGRADE (default: this executable's directory).")
    var enginesDir: String?

    @Flag(help: "Print this engine's version and the handoff formats it reads, and exit (what UPGRADE asks a candidate).")
    var checkUpgrade = false

    @Option(help: .hidden)
    var resume: Int32?

    @Option(help: .hidden)
    var resumeFailed: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Bytes of log lines held while stderr is slow to take them; past it, lines are dropped (STATUS log_dropped).",
            transform: within(4096...(1 << 30)))
    var logBufferBytes = LogSink.defaultCapacity

    package init() {}

    package func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    /// Parses and runs; an engine resumed by an upgrade that cannot start
    /// (its arguments do not parse, the handoff is in another format, a
    /// module no longer loads) hands everything back to the previous engine
    /// instead of exiting: the players keep their connections either way.
    package static func main() {
        Resume.programStartedNanoseconds = monotonicNanoseconds()
        // Before any thread exists, so every thread inherits it: SIGTERM,
        // SIGINT and SIGUSR2 wait, pending, until the engine's handlers are
        // in place, and only the loop thread ever unblocks them (a signal
        // taken by a worker thread during an upgrade's exec would be lost).
        // One that arrives at start, or across an upgrade, is delivered then.
        _ = ProcessImage.blockDeferredSignals()
        // Read once and removed: the candidate's check and the next engine
        // must not inherit this engine's name or test knobs.
        EngineIdentity.detachEnvironment()
        let arguments = Array(CommandLine.arguments.dropFirst())
        // Before anything of ours is open (see `ProcessImage.keepAcrossExec`);
        // a resumed engine has the list from the handoff instead.
        if Resume.descriptor(in: arguments) == nil { Resume.inheritedAtStart = ProcessImage.descriptorsKeptAcrossExec() }
        // An upgrade (and a fallback) execs the checked file through
        // /proc/self/fd/N, which names the process "N": named again after
        // its argv[0] (the path the first engine was started as), so
        // `pgrep -x gameserver`, `pidof` and `ps -C` keep finding it.
        if Resume.descriptor(in: arguments) != nil, let name = CommandLine.arguments.first {
            _ = hs_set_process_name(name)
        }
        let handoff = Resume.isFallback(arguments) ? nil : Resume.descriptor(in: arguments)
        if let handoff, let problem = RestoreGuard.arm(memfd: handoff, timeoutMilliseconds: Resume.restoreTimeout(in: arguments)) {
            GameServerCommand.say("restoring without a guard against crashes and hangs: \(problem)")
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let refused as StartRefused {
            if let handoff {
                let problem = Resume.fallBack(memfd: handoff, reason: "the new engine could not restore (\(refused.reason))")
                GameServerCommand.say("cannot fall back: \(problem)")
            }
            Glibc.exit(2)
        } catch {
            if let handoff {
                let problem = Resume.fallBack(memfd: handoff, reason: "the new engine could not restore (the arguments do not parse: "
                                              + fullMessage(for: error).split(separator: "\n").joined(separator: " ") + ")")
                GameServerCommand.say("cannot fall back: \(problem)")
            }
            exit(withError: error)
        }
    }

    package func run() throws {
        if checkUpgrade {
            // Before anything else: a check must not touch ports or files.
            print(EngineIdentity.checkLine)
            return
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        // Lines reach stderr from a writer thread: a reader that stops
        // reading makes the server drop lines, never wait. At exit, the last
        // lines get a bounded time to get out.
        let logSink = LogSink(fileDescriptor: STDERR_FILENO, capacity: logBufferBytes)
        defer { logSink.flush(timeout: .seconds(2)) }
        LoggingSystem.bootstrap { label in
            var handler = AsyncLogHandler(label: label, sink: logSink)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gameserver")
        func refuse(_ reason: String) -> StartRefused {
            logger.critical("refusing to start: \(reason)")
            return StartRefused(reason)
        }

        let resumed: ResumedState?
        do throws(StartRefused) {
            resumed = try resume.map { fd throws(StartRefused) in try Resume.open(memfd: fd, failedUpgrade: resumeFailed) }
        } catch {
            throw refuse("cannot resume: \(error.reason)")
        }
        let modulePath = resumed?.engine.paths.modulePath ?? module ?? GameServerCommand.defaultModulePath()
        let token = (adminToken ?? getenv("GAMESERVER_ADMIN_TOKEN").map { String(cString: $0) })
            .flatMap { $0.isEmpty ? nil : $0 }
        if let token, token.utf8.count < 16 { throw refuse("the admin token must be at least 16 bytes") }
        if token == nil && !GameServerCommand.isLoopback(adminHost) {
            throw refuse("the admin port on \(adminHost) is not loopback; set --admin-token or GAMESERVER_ADMIN_TOKEN")
        }
        let loader: ModuleLoader
        do {
            loader = try ModuleLoader()
        } catch {
            throw refuse("\(error)")
        }
        defer { loader.removePrivateCopies() }
        RestoreGuard.removeOnHandBack(loader.privateDirectory)
        let loaded: LoadedModule
        var previous: LoadedModule?
        var settings: AdminSettings
        do {
            if let resumed {
                (loaded, previous) = try Resume.loadModules(resumed, loader: loader)
            } else {
                // The load runs module code (hotswap_abi_version and
                // hotswap_describe) on this thread: guarded as a reload's
                // is, so a module that crashes or hangs there is refused with
                // the reason instead of killing or freezing the start. Not
                // when resuming an upgrade: the restore guard's crash
                // handlers must stay until the commit.
                let status = fg_install(UInt32(limits.callTimeout))
                if status != 0 { throw StartRefused("cannot install the fault guard: \(String(cString: strerror(-status)))") }
                loaded = try loader.load(path: modulePath)
            }
            settings = AdminSettings(token: token.map { Array($0.utf8) },
                                     modulesDirectory: try resumed?.engine.paths.modulesDirectory ?? GameServerCommand.realDirectory(
                                         modulesDir ?? GameServerCommand.directory(of: modulePath), "modules directory"),
                                     defaultModulePath: modulePath, logSink: logSink)
            let enginePath = resumed?.enginePath ?? ProcessImage.executablePath() ?? ""
            settings.upgrade = UpgradeSettings(
                enginePath: enginePath,
                enginesDirectory: try resumed?.engine.paths.enginesDirectory ?? GameServerCommand.realDirectory(
                    enginesDir ?? GameServerCommand.directory(of: enginePath), "engines directory"),
                arguments: resumed?.engine.arguments ?? Array(CommandLine.arguments.dropFirst()),
                inheritedDescriptors: resumed?.engine.inheritedDescriptors ?? Resume.inheritedAtStart)
            if let auditLog {
                switch AuditLog.open(path: auditLog) {
                case .success(let log): settings.auditLog = log
                case .failure(let error): throw StartRefused("\(error)")
                }
            }
        } catch let error as ModuleLoadError {
            throw refuse("\(error)")
        } catch let error as StartRefused {
            throw refuse(error.reason)
        }

        // The database: opened, locked (one server per file) and read whole
        // before the module binds; any refusal names the file and the reason.
        // An engine resumed by an upgrade opens it again on the lock it was
        // handed and reads nothing: its players came over in the handoff.
        var storage: SQLiteStorage?
        var stored = StoredSnapshot()
        // Until a resumed engine serves, the lock belongs to the previous
        // engine it may fall back to: never released on the way out.
        var serving = false
        if database != ":memory:" {
            do {
                if let resumed {
                    guard let lock = resumed.database?.lockDescriptors.first else {
                        throw StorageError("the previous engine handed over no database lock")
                    }
                    storage = try SQLiteStorage.open(path: database, adopting: DatabaseLock(descriptor: lock))
                } else {
                    let started = uv_hrtime()
                    let opened = try SQLiteStorage.open(path: database)
                    storage = opened
                    stored = try opened.loadAll()
                    logger.notice("database \(opened.location): \(stored.players.count) players\(stored.global == nil ? "" : " and the global row"), \(stored.playerColumns.count) player and \(stored.globalColumns.count) global columns, read in \((uv_hrtime() - started) / 1_000_000) ms")
                    if let problem = StartupSchemaCheck.problem(module: loaded, stored: stored, database: opened.location) {
                        throw StorageError(problem)
                    }
                }
            } catch {
                if resumed == nil { storage?.close() }
                throw refuse("\(error)")
            }
        } else {
            logger.notice("database :memory:: players and globals are not persisted")
        }
        defer { if resumed == nil || serving { storage?.close() } }

        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let loopStatus = uv_loop_init(loop)
        guard loopStatus == 0 else { throw refuse("uv_loop_init: \(UVError(loopStatus))") }
        let engine: Engine
        do {
            engine = try Engine(loop: loop, limits: limits,
                                maxConnections: GameServerCommand.connectionsAllowedByFileLimit(limits.maxConnections, logger),
                                admin: settings, logger: logger, loader: loader, module: loaded,
                                storage: storage, stored: stored)
            // The engine has what it needs; the copy need not live on.
            stored = StoredSnapshot()
        } catch {
            throw refuse("module \(modulePath) has a bad schema: \(error)")
        }
        if let problem = engine.installFaultGuard() { throw refuse(problem) }
        logger.info("loaded module \(loaded.name) \(loaded.version) from \(loaded.sourcePath)",
                    metadata: ["protocol": "\(protocolBuildTag())", "engine": "\(EngineIdentity.version)"])

        var game = ReadyFile.Endpoint(host: host, port: port)
        var admin = ReadyFile.Endpoint(host: adminHost, port: adminPort)
        var metricsEndpoint: ReadyFile.Endpoint?
        if let resumed {
            // Every port came over bound; what answers on the metrics port is
            // made here.
            if metricsPort != nil { engine.enableMetrics() }
            let summary: ResumeSummary
            do throws(StartRefused) {
                summary = try engine.resume(resumed, previous: previous)
            } catch {
                throw refuse(error.reason)
            }
            serving = true
            for listener in summary.listeners {
                let endpoint = ReadyFile.Endpoint(host: listener.host, port: listener.port)
                switch listener.role {
                case .game: game = endpoint
                case .admin: admin = endpoint
                case .metrics: metricsEndpoint = endpoint
                }
            }
        } else {
            do {
                game = .init(host: host, port: try engine.listen(.game, host: host, port: port))
                admin = .init(host: adminHost, port: try engine.listen(.admin, host: adminHost, port: adminPort))
                // The metrics port shares the admin host: what is exposed there
                // (module, SHA-256, counters) is for operators.
                if let metricsPort {
                    metricsEndpoint = .init(host: adminHost, port: try engine.startMetrics(host: adminHost, port: metricsPort))
                }
            } catch {
                throw refuse("\(error)")
            }
        }
        if let readyFile {
            let text = ReadyFile.json(pid: getpid(), game: game, admin: admin, metrics: metricsEndpoint,
                                      upgrades: engine.admin.counters.upgrades)
            if let problem = ReadyFile.write(text, to: readyFile) {
                // A resumed engine serves already: a ready file it cannot
                // rewrite is no reason to give the players back.
                if resumed == nil { throw refuse("cannot write --ready-file \(problem)") }
                logger.error("cannot rewrite --ready-file \(problem)")
            }
        }
        if watch { engine.watchModule(path: modulePath) }
        logger.notice("listening on \(game.host):\(game.port)")
        logger.notice("admin listening on \(admin.host):\(admin.port)")
        if let metricsEndpoint { logger.notice("metrics listening on http://\(metricsEndpoint.host):\(metricsEndpoint.port)/metrics") }
        engine.run()
        // The loop has stopped: what is still dirty is written now.
        if let writeBehind = engine.writeBehind {
            switch writeBehind.flushAll() {
            case .success(let count):
                logger.notice("database \(writeBehind.storage.location): final flush wrote \(count) records")
            case .failure(let error):
                logger.critical("database \(writeBehind.storage.location): final flush failed, \(engine.world.dirtyCount) players' latest changes and \(engine.world.deletedKeys.count) deletions are lost: \(error)")
            }
        }
        settings.auditLog?.flush(timeout: .seconds(2))
        if engine.host.loadStuck {
            // A worker is stuck inside the dynamic linker (a module's
            // constructor or describe that never returned): exit() would
            // run the linker's own exit handlers and wait for its lock.
            logger.notice("stopped (a stuck module load was abandoned)")
            logSink.flush(timeout: .seconds(2))
            _exit(0)
        }
        uv_loop_close(loop)
        logger.notice("stopped")
    }

    /// One line to stderr, directly: only where no loop or log runs.
    static func say(_ line: String) {
        _ = (line + "\n").withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
    }

    /// The real path of `directory`, or the refusal naming `what`.
    static func realDirectory(_ directory: String, _ what: String) throws(StartRefused) -> String {
        guard let real = realpath(directory.isEmpty ? "." : directory, nil) else {
            throw StartRefused("\(what) \(directory) does not exist")
        }
        defer { free(real) }
        return String(cString: real)
    }

    /// The directory part of a path ("" for a bare name).
    static func directory(of path: String) -> String {
        String(path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
    }

    /// Raises the soft open-file limit to the hard one and keeps
    /// `--max-connections` within it, so the server refuses clients with
    /// -ERR SERVER_FULL instead of failing on accept. 64 descriptors stay
    /// for the loop, the listeners, logs and module files.
    static func connectionsAllowedByFileLimit(_ wanted: Int, _ logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return wanted }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let reserve: rlim_t = 64
        let allowed = limit.rlim_cur > reserve ? Int(min(limit.rlim_cur - reserve, rlim_t(Int.max))) : 1
        if allowed < wanted {
            logger.warning("--max-connections lowered from \(wanted) to \(allowed) by the open-file limit (\(limit.rlim_cur))")
            return allowed
        }
        return wanted
    }

    /// 127.0.0.0/8, ::1 and localhost: addresses only this machine reaches.
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// `libGameLogic.so` beside the running executable: `swift build` puts
    /// both in the same products folder.
    static func defaultModulePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
        guard length > 0 else { return "libGameLogic.so" }
        let executable = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let directory = executable.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return "\(directory)/libGameLogic.so"
    }
}
