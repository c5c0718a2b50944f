import ArgumentParser
import CLibUV
import Glibc
import Logging
import Protocol

/// `gameserver`: starts the engine with a logic module and serves the game.
@main
struct GameServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gameserver",
        abstract: "A multiplayer line-protocol game server whose game logic can be replaced live.")

    @Option(help: "Address to listen on (IPv4 or IPv6).")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on; 0 picks a free port (the bound one is logged).")
    var port = 7777

    @Option(help: "Logic module to load (default: libGameLogic.so next to this executable).")
    var module: String?

    @Option(help: "Address of the admin port. A non-loopback address needs --admin-token.")
    var adminHost = "127.0.0.1"

    @Option(help: "Admin port (STATUS, RELOAD, ROLLBACK, MODULES); 0 picks a free port.")
    var adminPort = 7778

    @Option(help: "Token admin clients must send with AUTH (or set GAMESERVER_ADMIN_TOKEN).")
    var adminToken: String?

    @Option(help: "Directory modules may be loaded from (default: the start-up module's directory).")
    var modulesDir: String?

    @Flag(help: "Reload by itself when the module file changes (for development).")
    var watch = false

    @Option(help: "Longest request line accepted, in bytes.")
    var maxLineLength = 4096

    @Option(help: "Most clients connected at once; more get -ERR SERVER_FULL.")
    var maxConnections = 10_000

    @Option(help: "Bytes queued for a client that does not read before it is disconnected.")
    var maxOutputBytes = 1 << 20

    @Option(help: "Most sessions in one room.")
    var maxRoomMembers = 256

    @Option(help: "Most rooms at once.")
    var maxRooms = 10_000

    @Option(help: "Requests per second per session (token bucket); 0 turns the limit off.")
    var rateLimit = 1000

    @Option(help: "Requests a session may send in one burst before --rate-limit applies.")
    var rateBurst = 2000

    @Option(help: "Seconds a new connection may stay silent before it logs in.")
    var loginTimeout = 30

    @Option(help: "Seconds a logged-in session may stay silent; 0 turns it off.")
    var idleTimeout = 600

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(help: "Bytes of log lines held while stderr is slow to take them; past it, lines are dropped (STATUS log_dropped).")
    var logBufferBytes = LogSink.defaultCapacity

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard (0...65535).contains(adminPort) else { throw ValidationError("--admin-port must be 0...65535") }
        guard maxLineLength >= 16 else { throw ValidationError("--max-line-length must be at least 16") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard (1024...(1 << 30)).contains(maxOutputBytes) else {
            throw ValidationError("--max-output-bytes must be 1024...1073741824")
        }
        guard rateLimit >= 0, rateBurst >= 1 else { throw ValidationError("--rate-limit must be >= 0 and --rate-burst >= 1") }
        guard loginTimeout >= 0, idleTimeout >= 0 else { throw ValidationError("timeouts must be >= 0") }
        guard maxRoomMembers >= 1, maxRooms >= 1 else { throw ValidationError("room limits must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard (4096...(1 << 30)).contains(logBufferBytes) else {
            throw ValidationError("--log-buffer-bytes must be 4096...1073741824")
        }
    }

    func run() throws {
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
        let settings: AdminSettings
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
        } catch let error as ModuleLoadError {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }

        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(loop)
        let engine: Engine
        do {
            var limits = EngineLimits()
            limits.maxLineLength = maxLineLength
            limits.maxConnections = maxConnections
            limits.maxOutputBytes = maxOutputBytes
            limits.maxRoomMembers = maxRoomMembers
            limits.maxRooms = maxRooms
            limits.rateLimit = rateLimit
            limits.rateBurst = rateBurst
            limits.loginTimeout = UInt64(loginTimeout)
            limits.idleTimeout = UInt64(idleTimeout)
            limits.maxConnections = GameServerCommand.connectionsAllowedByFileLimit(maxConnections, logger)
            engine = try Engine(loop: loop, limits: limits, admin: settings, logger: logger, loader: loader,
                                module: loaded)
        } catch {
            logger.critical("refusing to start: module \(modulePath) has a bad schema: \(error)")
            throw ExitCode(2)
        }
        logger.info("loaded module \(loaded.name) \(loaded.version) from \(modulePath)",
                    metadata: ["protocol": "\(protocolBuildTag())"])

        let bound: (host: String, port: Int)
        let adminBound: (host: String, port: Int)
        do {
            bound = try engine.listen(host: host, port: port)
            adminBound = try engine.listenAdmin(host: adminHost, port: adminPort)
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        if watch { engine.watchModule(path: modulePath) }
        // Tests and scripts read the ports from these lines: keep their shape
        // and order (the game port first).
        logger.notice("listening on \(bound.host):\(bound.port)")
        logger.notice("admin listening on \(adminBound.host):\(adminBound.port)")
        engine.run()
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
