import Foundation
import CLibUV
import Glibc
import Logging
import Protocol
import UVKit

/// The one start-up of an engine, first or resumed, in one order, and its
/// shutdown in the reverse order:
///
///     1 module loader        private copies removed at exit (and on a hand-back)
///     2 modules              StartPath.loadModules
///     3 admin settings       directories resolved, audit log opened
///     4 storage              StartPath.openStorage (or :memory:); closed at exit
///     5 engine               loop, World, LogicHost, Transport, write-behind
///     6 fault guard          armed for every module call from here
///     7 bring up             StartPath.bringUp: listen, or adopt and restore
///     8 ready file           the bound ports, for tools and supervisors; READY=1 to systemd,
///                            Ready to Agones
///     9 run                  until SIGTERM/SIGINT/SIGHUP or an upgrade's exec
///    10 shutdown             final flush, Agones' Shutdown, audit log, loop closed; storage, copies
///
/// Every difference between a first engine and a resumed one is in the
/// configuration (`Bootstrap`) and its `StartPath`; a step here reads
/// them and never asks which start this is.
///
/// The shape follows swift-service-lifecycle's ServiceGroup and
/// Hummingbird 2's application (start in order, stop in reverse), without
/// that library: it runs each service as a task under Swift concurrency
/// and installs its own signal handling, while this engine is one libuv
/// loop on the main thread whose signals stay blocked until the loop's own
/// handlers take them (an upgrade's exec must lose none, see
/// `GameServerCommand.main`), and whose "services" are not independent
/// tasks but steps that hand each other what they made. Its graceful
/// shutdown would also have nothing to run during an upgrade: the exec
/// replaces the process without unwinding anything. `defer` gives the
/// reverse order here.
struct StartupSequence {
    let configuration: EngineConfiguration
    let logSink: LogSink
    let logger: Logger

    /// A refusal, logged as it is raised.
    private func refuse(_ reason: String) -> StartRefused { .logged(reason, to: logger) }

    /// Runs the engine until it stops; throws only before it serves.
    func run() throws(StartRefused) {
        let start = configuration.start
        // 1. Module loader.
        let loader: ModuleLoader
        do {
            // A resumed engine's modules are the ones the previous engine
            // mapped (their SHA-256 checked): no probe while players wait.
            let probe = start is ResumedStart ? 0 : configuration.limits.effectiveProbeTimeout
            loader = try ModuleLoader(limits: ModuleLoadLimits(maxBytes: configuration.limits.maxModuleBytes,
                                                               probeTimeoutMilliseconds: probe))
        } catch {
            throw refuse("\(error)")
        }
        defer { loader.removePrivateCopies() }
        // Not in an upgrade's hold: the first engine of the process swept.
        if !(start is ResumedStart) {
            for stale in ModuleLoader.removeStaleDirectories() {
                logger.notice("removed \(stale): module copies of a server that ended without cleaning up")
            }
        }
        RestoreGuard.removeOnHandBack(loader.privateDirectory)

        // 2. Modules; 3. admin settings.
        let loaded: LoadedModule
        let previous: LoadedModule?
        var settings: AdminSettings
        do throws(StartRefused) {
            (loaded, previous) = try start.loadModules(loader, path: configuration.modulePath)
            settings = try adminSettings()
        } catch {
            throw refuse(error.reason)
        }

        loader.limits.probeTimeoutMilliseconds = configuration.limits.effectiveProbeTimeout

        // 4. Storage.
        var storage: (any PlayerStorage)?
        var stored = StoredSnapshot()
        if let path = configuration.databasePath {
            do throws(StartRefused) {
                (storage, stored) = try start.openStorage(path: path, module: loaded, shared: configuration.shared, logger: logger)
            } catch {
                throw refuse(error.reason)
            }
        } else {
            logger.notice("database :memory:: players and globals are not persisted")
        }
        var serving = false
        defer { if start.ownsStorageBeforeServing || serving { storage?.close() } }
        // How the previous run ended (this path is ours: the database lock).
        var exitRecord: ExitRecord?
        // Beside the SQLite file (a shared database has no file of this
        // server's to put it beside).
        if let path = configuration.databasePath, !PostgresStorage.isURL(path) {
            do throws(ExitRecordError) {
                exitRecord = try ExitRecord(path: path + ".last-exit", resumed: start is ResumedStart)
            } catch {
                logger.warning("\(error)")
            }
        }
        if let exitRecord, let line = exitRecord.previousLine, exitRecord.previousSummary != "clean" {
            logger.warning("the previous run did not end cleanly (\(exitRecord.previousSummary)): \(line)")
        }
        var stopped = false
        defer { if !stopped { exitRecord?.startRefused(resumed: start is ResumedStart) } }

        // The studio's token key (--auth-jwt-key), read before anything
        // serves: a login mode that cannot work refuses the start.
        var tokenVerifier: TokenVerifier?
        if let path = configuration.databasePath, PostgresStorage.isURL(path),
           configuration.limits.flushInterval > configuration.limits.leaseSeconds * 1000 / 3 {
            throw refuse("--flush-interval \(configuration.limits.flushInterval) ms is longer than a third of --lease-seconds \(configuration.limits.leaseSeconds): the flushes renew the leases, which would expire between them")
        }
        if let path = configuration.databasePath, PostgresStorage.isURL(path), configuration.limits.playerTtlDays > 0 {
            throw refuse("--player-ttl-days needs every player in memory; with a shared PostgreSQL database a server holds only its online players: expire players in the database instead (docs/SCALING.md)")
        }
        if configuration.limits.authJwtKey == nil,
           configuration.limits.authJwtAudience != nil || configuration.limits.authJwtIssuer != nil {
            throw refuse("--auth-jwt-audience and --auth-jwt-issuer need --auth-jwt-key")
        }
        if configuration.limits.authJwtKey != nil && configuration.limits.requireSecret {
            throw refuse("--require-secret and --auth-jwt-key do not go together: with a token key, tokens are the only login")
        }
        if let keyPath = configuration.limits.authJwtKey {
            guard let bytes = FileManager.default.contents(atPath: keyPath) else {
                throw refuse("--auth-jwt-key \(keyPath): cannot read the file")
            }
            do throws(TokenVerifier.TokenError) {
                tokenVerifier = try TokenVerifier(keyFile: [UInt8](bytes), audience: configuration.limits.authJwtAudience,
                                                  issuer: configuration.limits.authJwtIssuer)
            } catch {
                throw refuse("--auth-jwt-key \(keyPath): \(error)")
            }
        }
        if tokenVerifier != nil || configuration.limits.requireSecret, loaded.auth == nil {
            throw refuse("module \(configuration.modulePath) exports no hotswap_auth, and \(tokenVerifier != nil ? "--auth-jwt-key" : "--require-secret") makes every login go through the engine's check; start with a module that handles it (ABI 1.4)")
        }

        // 5. Engine; 6. fault guard.
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let loopStatus = uv_loop_init(loop)
        guard loopStatus == 0 else { throw refuse("uv_loop_init: \(UVError(loopStatus))") }
        let engine: Engine
        do {
            engine = try Engine(loop: loop, limits: configuration.limits,
                                maxConnections: GameServerCommand.connectionsAllowedByFileLimit(configuration.limits.maxConnections, logger),
                                admin: settings, logger: logger, loader: loader, module: loaded,
                                storage: storage, stored: stored, tokenVerifier: tokenVerifier)
            // The engine has what it needs; the copy need not live on.
            stored = StoredSnapshot()
            engine.host.call.settings = configuration.gameSettings
        } catch {
            throw refuse("module \(configuration.modulePath) has a bad schema: \(error)")
        }
        if let exitRecord { engine.previousExit = exitRecord.previousSummary }
        if let problem = engine.installFaultGuard() { throw refuse(problem) }
        // Stored timers must have a handler: fired as orphans they would be
        // spent, and rewritten out of the file (a RELOAD is refused alike).
        if engine.world.timers.timerCount > 0, loaded.timer == nil {
            throw refuse("module \(configuration.modulePath) exports no hotswap_timer, and the database holds \(engine.world.timers.timerCount) timers it would drop; start with a module that handles them")
        }
        logger.info("loaded module \(loaded.name) \(loaded.version) from \(loaded.sourcePath)",
                    metadata: ["protocol": "\(protocolBuildTag())", "engine": "\(EngineIdentity.version)"])

        // 7. Bring up.
        let endpoints: Endpoints
        do throws(StartRefused) {
            endpoints = try start.bringUp(engine, previous: previous, configuration)
        } catch {
            throw refuse(error.reason)
        }
        serving = true

        // 8. Ready file.
        if let readyFile = configuration.readyFile {
            let text = ReadyFile.json(pid: getpid(), game: endpoints.game, admin: endpoints.admin,
                                      metrics: endpoints.metrics, upgrades: engine.admin.counters.upgrades)
            if let problem = ReadyFile.write(text, to: readyFile) {
                if start.readyFileFailureIsFatal { throw refuse("cannot write --ready-file \(problem)") }
                logger.error("cannot rewrite --ready-file \(problem)")
            }
        }
        if configuration.watch { engine.watchModule(path: configuration.modulePath) }
        logger.notice("listening on \(endpoints.game.host):\(endpoints.game.port)")
        logger.notice("admin listening on \(endpoints.admin.host):\(endpoints.admin.port)")
        if let metrics = endpoints.metrics { logger.notice("metrics listening on http://\(metrics.host):\(metrics.port)/metrics") }
        // READY=1 (and the watchdog) once every port listens: a resumed
        // engine ends the RELOADING=1 its predecessor sent before the exec.
        engine.notifySystemdReady(gamePort: endpoints.game.port)
        // Ready to Agones' sidecar (not again after an upgrade), the
        // versions, the health pings: with AGONES_SDK_HTTP_PORT only.
        engine.startAgones()

        // 9. Run.
        engine.run()

        // 10. Shutdown.
        shutDown(engine, settings: settings, loop: loop, exitRecord: exitRecord, loader: loader)
        stopped = true
    }

    /// The admin console's settings: the directories resolved now (after
    /// the module loaded, so a bad module is named first), the upgrade's
    /// paths, and the audit log opened.
    private func adminSettings() throws(StartRefused) -> AdminSettings {
        var settings = AdminSettings(token: configuration.adminToken,
                                     modulesDirectory: try configuration.modulesDirectory.resolve(),
                                     defaultModulePath: configuration.modulePath, logSink: logSink)
        settings.upgrade = UpgradeSettings(
            enginePath: configuration.enginePath, enginesDirectory: try configuration.enginesDirectory.resolve(),
            arguments: configuration.arguments, inheritedDescriptors: configuration.inheritedDescriptors)
        if let path = configuration.auditLogPath {
            switch AuditLog.open(path: path) {
            case .success(let log): settings.auditLog = log
            case .failure(let error): throw StartRefused("\(error)")
            }
        }
        return settings
    }

    /// The loop has stopped: what is still dirty is written, the audit log
    /// gets its last lines out, the loop closes. (The storage and the
    /// module copies close as `run` returns.)
    private func shutDown(_ engine: Engine, settings: AdminSettings, loop: UnsafeMutablePointer<uv_loop_t>,
                          exitRecord: ExitRecord?, loader: ModuleLoader) {
        var why = engine.stopCause ?? "stopped"
        if let writeBehind = engine.writeBehind {
            switch writeBehind.flushAll() {
            case .success(let count):
                logger.notice("database \(writeBehind.storage.location): final flush wrote \(count) records")
                why += ", final flush wrote \(count) records"
            case .failure(let error):
                logger.critical("database \(writeBehind.storage.location): final flush failed, \(engine.world.dirtyCount) players' latest changes and \(engine.world.deletedKeys.count) deletions are lost: \(error)")
                why += ", final flush failed: \(error)"
            }
        }
        // Drained and flushed: the GameServer may go (Agones' Shutdown).
        engine.agones?.shutDownAfterFlush()
        exitRecord?.stopped(status: FinalFlushStatus.hasFailed ? FinalFlushStatus.exitStatus : 0,
                            why: AdminConsole.oneLine(why))
        settings.auditLog?.flush(timeout: .seconds(2))
        if engine.host.loadStuck {
            // A worker is stuck inside the dynamic linker (a module's
            // constructor or describe that never returned): exit() would
            // run the linker's own exit handlers and wait for its lock.
            logger.notice("stopped (a stuck module load was abandoned)")
            logSink.flush(timeout: .seconds(2))
            // _exit skips `run`'s deferred clean-up: this one must not be.
            loader.removePrivateCopies()
            _exit(FinalFlushStatus.hasFailed ? FinalFlushStatus.exitStatus : 0)
        }
        uv_loop_close(loop)
        logger.notice("stopped")
    }
}
