import Glibc
import Logging

/// Builds the one configuration a start-up runs with: from the command line
/// for a first engine; for an engine an upgrade exec'd (`--resume FD`),
/// from the handoff it reads first, which overrides what the first engine
/// resolved once and for all (module path, directories, its own arguments,
/// the descriptors it inherited). This is the only place that asks which
/// kind of start it is.
enum Bootstrap {
    /// The logging system: lines reach stderr from a writer thread, so a
    /// reader that stops reading makes the server drop lines, never wait.
    static func logging(level: Logger.Level, bufferBytes: Int) -> LogSink {
        let sink = LogSink(fileDescriptor: STDERR_FILENO, capacity: bufferBytes)
        LoggingSystem.bootstrap { label in
            var handler = AsyncLogHandler(label: label, sink: sink)
            handler.logLevel = level
            return handler
        }
        return sink
    }

    /// The configuration `command` describes, read against the handoff it
    /// names if any; refusals are logged as they are raised.
    static func configuration(_ command: GameServerCommand, logger: Logger) throws(StartRefused) -> EngineConfiguration {
        func refuse(_ reason: String) -> StartRefused { .logged(reason, to: logger) }
        var configuration = fromCommandLine(command)
        do throws(SettingError) {
            configuration.gameSettings = try GameSettings(parsing: command.gameSettings)
        } catch {
            throw refuse("\(error)")
        }
        if let memfd = command.resume {
            let resumed: ResumedState
            do throws(StartRefused) {
                resumed = try Resume.open(memfd: memfd, failedUpgrade: command.resumeFailed)
            } catch {
                throw refuse("cannot resume: \(error.reason)")
            }
            configuration.adopt(resumed)
        }
        let token = (command.adminToken ?? getenv("GAMESERVER_ADMIN_TOKEN").map { String(cString: $0) })
            .flatMap { $0.isEmpty ? nil : $0 }
        if let token, token.utf8.count < 16 { throw refuse("the admin token must be at least 16 bytes") }
        if token == nil && !GameServerCommand.isLoopback(command.adminHost) {
            throw refuse("the admin port on \(command.adminHost) is not loopback; set --admin-token or GAMESERVER_ADMIN_TOKEN")
        }
        configuration.adminToken = token.map { Array($0.utf8) }
        return configuration
    }

    /// A first engine's configuration: everything from its arguments, its
    /// own executable and what it inherited.
    private static func fromCommandLine(_ command: GameServerCommand) -> EngineConfiguration {
        let modulePath = command.module ?? GameServerCommand.defaultModulePath()
        let enginePath = ProcessImage.executablePath() ?? ""
        return EngineConfiguration(
            start: FreshStart(callTimeout: command.limits.callTimeout),
            modulePath: modulePath,
            modulesDirectory: .unresolved(command.modulesDir ?? GameServerCommand.directory(of: modulePath),
                                          what: "modules directory"),
            enginePath: enginePath,
            enginesDirectory: .unresolved(command.enginesDir ?? GameServerCommand.directory(of: enginePath),
                                          what: "engines directory"),
            arguments: Array(CommandLine.arguments.dropFirst()),
            inheritedDescriptors: Resume.inheritedAtStart,
            adminToken: nil,
            auditLogPath: command.auditLog,
            databasePath: command.database == ":memory:" ? nil : command.database,
            shared: SharedStorageSettings(serverName: command.serverName ?? LeaseOwner.hostName,
                                          leaseSeconds: command.limits.leaseSeconds),
            limits: command.limits,
            game: .init(host: command.host, port: command.port),
            admin: .init(host: command.adminHost, port: command.adminPort),
            metricsPort: command.metricsPort,
            readyFile: command.readyFile,
            watch: command.watch)
    }
}

extension EngineConfiguration {
    /// What the first engine of this process resolved, as the handoff
    /// carries it, in place of what this engine's arguments would say.
    mutating func adopt(_ resumed: ResumedState) {
        start = ResumedStart(state: resumed)
        modulePath = resumed.engine.paths.modulePath
        modulesDirectory = .resolved(resumed.engine.paths.modulesDirectory)
        enginePath = resumed.enginePath
        enginesDirectory = .resolved(resumed.engine.paths.enginesDirectory)
        arguments = resumed.engine.arguments
        inheritedDescriptors = resumed.engine.inheritedDescriptors
    }
}
