import ArgumentParser
import CLibUV
import Glibc
import Logging
import UpgradeSupport
import UVKit

/// Why the server does not start (logged as it is raised). A resumed
/// engine that hits one falls back to the previous engine instead.
struct StartRefused: Error, CustomStringConvertible {
    let reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }

    /// A refusal, logged as it is raised (the start ends with it).
    static func logged(_ reason: String, to logger: Logger) -> StartRefused {
        logger.critical("refusing to start: \(reason)")
        return StartRefused(reason)
    }
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

    @Option(help: "SQLite file where players and global fields persist (WAL mode; back it up with sqlite3 .backup while running); a postgresql://user@host/db URL shares players with other servers (docs/SCALING.md); :memory: keeps nothing.")
    var database = "hotswap.sqlite"

    @Option(help: "This server's name in a shared (PostgreSQL) database: its global row and durable timers are kept under it, and its leases name it (default: the host name).")
    var serverName: String?

    @OptionGroup(title: "Limits")
    var limits: Limits

    @Option(name: .customLong("game-setting"),
            help: "key=value the logic module reads (ABI 1.3 `setting`), e.g. round_seconds=60; repeatable. Fixed until a restart or an engine upgrade.")
    var gameSettings: [String] = []

    @Option(help: "Directory other engine builds may be run from by UPGRADE (default: this executable's directory).")
    var enginesDir: String?

    @Flag(help: "Print this engine's version and the handoff formats it reads, and exit (what UPGRADE asks a candidate).")
    var checkUpgrade = false

    @Option(help: .hidden)
    var resume: Int32?

    /// `ModuleProbe`: load this module in this (child) process and say how
    /// far it got.
    @Option(help: .hidden)
    var probeModule: String?

    /// The server that started the probe: it dies with it.
    @Option(help: .hidden)
    var probeParent: Int32?

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
        // systemd's NOTIFY_SOCKET and WATCHDOG_* alike: no child may notify
        // for us; an upgrade's exec (this process) gets them back.
        SystemdNotifier.detachEnvironment()
        // A shared database's lease owner, handed on by an upgrade's exec.
        LeaseOwner.detachEnvironment()
        // Agones: whether an earlier engine of this process sent Ready.
        AgonesLifecycle.detachEnvironment()
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
            // A stop whose final flush failed (the log says why) is not a
            // clean one: the exit status tells a supervisor so.
            if FinalFlushStatus.hasFailed { Glibc.exit(FinalFlushStatus.exitStatus) }
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

    /// Builds the configuration (from the arguments, or from the handoff a
    /// resumed engine reads first) and runs the one start-up sequence.
    package func run() throws {
        if let probeModule { ModuleProbe.runAsChild(path: probeModule, parent: probeParent) }
        if checkUpgrade {
            // Before anything else: a check must not touch ports or files.
            print(EngineIdentity.checkLine)
            return
        }
        // At exit, the last log lines get a bounded time to get out.
        let logSink = Bootstrap.logging(level: Logger.Level(rawValue: logLevel) ?? .info, bufferBytes: logBufferBytes)
        defer { logSink.flush(timeout: .seconds(2)) }
        let logger = Logger(label: "gameserver")
        let configuration = try Bootstrap.configuration(self, logger: logger)
        try StartupSequence(configuration: configuration, logSink: logSink, logger: logger).run()
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
