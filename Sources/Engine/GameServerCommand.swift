import ArgumentParser
import CLibUV
import Glibc
import Logging
import Protocol

/// `gameserver`: starts the engine with a logic module and serves the game.
package struct GameServerCommand: ParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "gameserver",
        abstract: "A multiplayer line-protocol game server whose game logic can be replaced live.")

    @Option(help: "Address to listen on (IPv4 or IPv6).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free port (see --ready-file).", transform: within(0...65535))
    var port = 7777

    @Option(help: "Logic module to load (default: libGameLogic.so next to this executable).")
    var module: String?

    @Option(help: "Address of the admin port. A non-loopback address needs --admin-token.")
    var adminHost = "127.0.0.1"

    @Option(help: "Admin port (STATUS, RELOAD, ROLLBACK, MODULES); 0 picks a free port.", transform: within(0...65535))
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

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Bytes of log lines held while stderr is slow to take them; past it, lines are dropped (STATUS log_dropped).",
            transform: within(4096...(1 << 30)))
    var logBufferBytes = LogSink.defaultCapacity

    package init() {}

    package func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    package func run() throws {
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

        let modulePath = module ?? GameServerCommand.defaultModulePath()
        let token = (adminToken ?? getenv("GAMESERVER_ADMIN_TOKEN").map { String(cString: $0) })
            .flatMap { $0.isEmpty ? nil : $0 }
        if let token, token.utf8.count < 16 {
            logger.critical("refusing to start: the admin token must be at least 16 bytes")
            throw ExitCode(2)
        }
        if token == nil && !GameServerCommand.isLoopback(adminHost) {
            logger.critical("refusing to start: the admin port on \(adminHost) is not loopback; set --admin-token or GAMESERVER_ADMIN_TOKEN")
            throw ExitCode(2)
        }
        let loader: ModuleLoader
        do {
            loader = try ModuleLoader()
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        defer { loader.removePrivateCopies() }
        let loaded: LoadedModule
        var settings: AdminSettings
        do {
            loaded = try loader.load(path: modulePath)
            let directory = modulesDir ?? String(modulePath.split(separator: "/", omittingEmptySubsequences: false)
                .dropLast().joined(separator: "/"))
            guard let real = realpath(directory.isEmpty ? "." : directory, nil) else {
                logger.critical("refusing to start: modules directory \(directory) does not exist")
                throw ExitCode(2)
            }
            defer { free(real) }
            settings = AdminSettings(token: token.map { Array($0.utf8) }, modulesDirectory: String(cString: real),
                                     defaultModulePath: modulePath, logSink: logSink)
            if let auditLog {
                switch AuditLog.open(path: auditLog) {
                case .success(let log): settings.auditLog = log
                case .failure(let error):
                    logger.critical("refusing to start: \(error)")
                    throw ExitCode(2)
                }
            }
        } catch let error as ModuleLoadError {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }

        // The database: opened, locked (one server per file) and read whole
        // before the module binds; any refusal names the file and the reason.
        var storage: SQLiteStorage?
        var stored = StoredSnapshot()
        if database != ":memory:" {
            do {
                let started = uv_hrtime()
                let opened = try SQLiteStorage.open(path: database)
                storage = opened
                stored = try opened.loadAll()
                logger.notice("database \(opened.location): \(stored.players.count) players\(stored.global == nil ? "" : " and the global row"), \(stored.playerColumns.count) player and \(stored.globalColumns.count) global columns, read in \((uv_hrtime() - started) / 1_000_000) ms")
                if let problem = StartupSchemaCheck.problem(module: loaded, stored: stored, database: opened.location) {
                    throw StorageError(problem)
                }
            } catch {
                storage?.close()
                logger.critical("refusing to start: \(error)")
                throw ExitCode(2)
            }
        } else {
            logger.notice("database :memory:: players and globals are not persisted")
        }
        defer { storage?.close() }

        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(loop)
        let engine: Engine
        do {
            engine = try Engine(loop: loop, limits: limits,
                                maxConnections: GameServerCommand.connectionsAllowedByFileLimit(limits.maxConnections, logger),
                                admin: settings, logger: logger, loader: loader, module: loaded,
                                storage: storage, stored: stored)
            // The engine has what it needs; the copy need not live on.
            stored = StoredSnapshot()
        } catch {
            logger.critical("refusing to start: module \(modulePath) has a bad schema: \(error)")
            throw ExitCode(2)
        }
        if let problem = engine.installFaultGuard() {
            logger.critical("refusing to start: \(problem)")
            throw ExitCode(2)
        }
        logger.info("loaded module \(loaded.name) \(loaded.version) from \(modulePath)",
                    metadata: ["protocol": "\(protocolBuildTag())"])

        let gamePort: Int
        let adminBoundPort: Int
        var metricsBoundPort: Int?
        do {
            gamePort = try engine.listen(.game, host: host, port: port)
            adminBoundPort = try engine.listen(.admin, host: adminHost, port: adminPort)
            // The metrics port shares the admin host: what is exposed there
            // (module, SHA-256, counters) is for operators.
            if let metricsPort { metricsBoundPort = try engine.startMetrics(host: adminHost, port: metricsPort) }
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        if let readyFile {
            let text = ReadyFile.json(pid: getpid(), game: .init(host: host, port: gamePort),
                                      admin: .init(host: adminHost, port: adminBoundPort),
                                      metrics: metricsBoundPort.map { .init(host: adminHost, port: $0) })
            if let problem = ReadyFile.write(text, to: readyFile) {
                logger.critical("refusing to start: cannot write --ready-file \(problem)")
                throw ExitCode(2)
            }
        }
        if watch { engine.watchModule(path: modulePath) }
        logger.notice("listening on \(host):\(gamePort)")
        logger.notice("admin listening on \(adminHost):\(adminBoundPort)")
        if let metricsBoundPort { logger.notice("metrics listening on http://\(adminHost):\(metricsBoundPort)/metrics") }
        engine.run()
        // The loop has stopped: what is still dirty is written now.
        if let writeBehind = engine.writeBehind {
            switch writeBehind.flushAll() {
            case .success(let count):
                logger.notice("database \(writeBehind.storage.location): final flush wrote \(count) records")
            case .failure(let error):
                logger.critical("database \(writeBehind.storage.location): final flush failed, \(engine.world.dirtyCount) players' latest changes are lost: \(error)")
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
