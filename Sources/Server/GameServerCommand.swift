import ArgumentParser
import CLibUV
import Glibc
import Logging

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

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        guard maxLineLength >= 16 else { throw ValidationError("--max-line-length must be at least 16") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard maxOutputBytes >= 1024 else { throw ValidationError("--max-output-bytes must be at least 1024") }
        guard maxRoomMembers >= 1, maxRooms >= 1 else { throw ValidationError("room limits must be at least 1") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "gameserver")

        let modulePath = module ?? GameServerCommand.defaultModulePath()
        let loader: ModuleLoader
        let loaded: LoadedModule
        do {
            loader = try ModuleLoader()
            loaded = try loader.load(path: modulePath)
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        defer { loader.removePrivateCopies() }

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
            engine = try Engine(loop: loop, limits: limits, logger: logger, loader: loader, module: loaded)
        } catch {
            logger.critical("refusing to start: module \(modulePath) has a bad schema: \(error)")
            throw ExitCode(2)
        }
        logger.info("loaded module \(loaded.name) \(loaded.version) from \(modulePath)")

        let bound: (host: String, port: Int)
        do {
            bound = try engine.listen(host: host, port: port)
        } catch {
            logger.critical("refusing to start: \(error)")
            throw ExitCode(2)
        }
        // Tests and scripts read the port from this line: keep its shape.
        logger.notice("listening on \(bound.host):\(bound.port)")
        engine.run()
        uv_loop_close(loop)
        logger.notice("stopped")
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
