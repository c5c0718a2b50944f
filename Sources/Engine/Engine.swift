import CLibUV
import FaultGuard
import Glibc
import Logging
import UVKit
import UpgradeSupport

/// Counters of what the engine did to clients, for STATUS.
struct EngineCounters {
    var lineTooLong = 0
    var serverFull = 0
    var rateLimited = 0
    var rateLimitCloses = 0
    var idleCloses = 0
}

/// The engine: the composition of its parts, and the rules that span them.
///
///     Transport ──bytes──▶ PlayerSession ──line──▶ LogicHost ──▶ module
///         ▲                    (limits)                 │ state table
///         └──── Connection ◀── SessionPeer ◀── World ◀──┘ (fields, rooms)
///
/// - `World` holds all game state and is the only code that changes it.
/// - `LogicHost` holds the modules and makes every call into them.
/// - `Transport` holds the sockets and moves bytes.
/// - `PlayerSession` and `AdminSession` give a connection's bytes meaning.
/// - `MetricsServer` (with `--metrics-port`) answers HTTP from the same loop.
///
/// The engine itself owns what spans them: a session's life from accept to
/// teardown, the deadline sweep, signals and shutdown. Everything runs on
/// the loop's thread; nothing is shared, so nothing is locked.
final class Engine: TransportDelegate, LogicHostDelegate, SessionHost, AdminTarget, MetricsTarget {
    let loop: UnsafeMutablePointer<uv_loop_t>
    let limits: Limits
    let logger: Logger
    let world: World
    let host: LogicHost
    let transport: Transport
    /// Fires timers and room ticks (ABI 1.3).
    let clock: TimerClock
    /// Gives memory back to the system after a burst of queued output.
    let memoryReturn: MemoryReturn
    /// The operator's console; it sees the engine as an `AdminTarget`.
    private(set) lazy var admin = AdminConsole(engine: self, settings: adminSettings)
    /// Hands the whole engine over to the next one: the one part that
    /// needs all of it (Engine+Handoff).
    private(set) lazy var upgrader = Upgrader(engine: self)
    /// Where logins are checked (ABI 1.4).
    let auth: AuthDesk
    /// `--player-ttl-days`.
    private(set) var expiry: PlayerExpiry
    private let adminSettings: AdminSettings
    /// Write-behind to the database; nil with `--database :memory:`.
    private(set) var writeBehind: WriteBehind?
    /// `--metrics-port` (nil when not given).
    private(set) var metrics: MetricsServer?
    /// systemd's notifications (`$NOTIFY_SOCKET`, Engine+Systemd); nil
    /// when the process was not started by systemd.
    var systemd: SystemdNotifier?
    /// The Agones SDK sidecar (`$AGONES_SDK_HTTP_PORT`, Fleet/); nil
    /// without it.
    var agones: AgonesLifecycle?
    var counters = EngineCounters()
    /// How the previous run ended (`ExitRecord`), for STATUS: `none`,
    /// `clean`, `failed`, `crash:SIGNAL`, `killed`, or `unrecorded` without
    /// a database.
    var previousExit = "unrecorded"
    /// What asked the engine to stop (`SIGTERM`, ...), for the exit record.
    var stopCause: String?
    /// Open game connections per client address (not loopback), for
    /// `--max-connections-per-ip`.
    private var connectionsPerAddress: [PeerAddress: Int] = [:]
    /// Game connections refused by `--max-connections-per-ip` since this
    /// engine started (not handed over by an upgrade).
    private(set) var perAddressRefused = 0
    /// `--max-connections`, lowered to what the open-file limit allows.
    let maxConnections: Int
    /// The per-player limits every session enforces (SessionHost).
    let sessionRules: SessionRules
    /// Resume tokens and away sessions (ABI 1.4, Engine+Resume.swift).
    let resumes: ResumeRegistry
    /// Failed RESUMEs per client address (`--max-failed-resumes-per-ip`).
    var resumeThrottle: FailureThrottle<PeerAddress>

    private let sweepTimer: UnsafeMutablePointer<uv_timer_t>
    /// Woken by the engine's signal handler (engine_signals.h).
    private var signalWake: UnsafeMutablePointer<uv_async_t>?
    private var shutdownTimer: UnsafeMutablePointer<uv_timer_t>?
    private var watcher: ModuleWatcher?
    private(set) var shuttingDown = false
    /// The loop is serving (`run` was called): every port is bound and a
    /// module is loaded.
    private(set) var running = false
    private var finished = false
    /// When this process's first engine started (an upgrade carries it
    /// over, so uptime counts from there).
    var startedNanoseconds = uv_hrtime()

    init(loop: UnsafeMutablePointer<uv_loop_t>, limits: Limits, maxConnections: Int, admin settings: AdminSettings,
         logger: Logger, loader: ModuleLoader, module: LoadedModule,
         storage: (any PlayerStorage)? = nil, stored: StoredSnapshot = StoredSnapshot(),
         tokenVerifier: TokenVerifier? = nil) throws(SchemaError)
    {
        self.loop = loop
        self.limits = limits
        self.logger = logger
        self.maxConnections = maxConnections
        sessionRules = SessionRules(limits)
        resumes = ResumeRegistry(logger: logger)
        resumeThrottle = FailureThrottle<PeerAddress>(limit: limits.maxFailedResumesPerIp, windowMilliseconds: 60_000)
        world = World(limits: World.Limits(maxRooms: limits.maxRooms, maxRoomMembers: limits.maxRoomMembers,
                                           maxPlayers: limits.maxPlayers, maxTimers: limits.maxTimers,
                                           maxTimersPerOwner: limits.maxTimersPerOwner))
        // What the database holds goes in before the module binds its
        // schema, so its fields find their stored columns and values.
        world.loadStored(stored)
        let dropped = world.loadStoredTimers(stored.timers, wallNow: WriteBehind.wallMilliseconds(), now: uv_hrtime())
        if dropped > 0 { logger.warning("\(dropped) stored timers dropped: their player is gone, or the row breaks timer_set's rules") }
        host = try LogicHost(world: world, loader: loader, module: module, loop: loop, logger: logger,
                             faultPolicy: FaultPolicy(maxFaults: limits.maxFaults, windowSeconds: limits.faultWindow))
        host.loadTimeoutMilliseconds = limits.loadTimeout
        clock = TimerClock(world: world, caller: host.call, budgetMilliseconds: limits.tickBudgetMs)
        transport = Transport(loop: loop, maxOutputBytes: limits.maxOutputBytes, maxOutputTotal: limits.effectiveMaxOutputTotal,
                              lingerMilliseconds: UInt64(limits.lingerMs), busyPollMicroseconds: limits.busyPoll,
                              logger: logger)
        auth = AuthDesk(limits: limits, verifier: tokenVerifier, loop: loop, world: world, logger: logger)
        expiry = PlayerExpiry(days: limits.playerTtlDays)
        world.tracksLastSeen = limits.playerTtlDays > 0
        host.call.authMode = auth.mode
        memoryReturn = MemoryReturn(threshold: limits.memoryTrimAfter, loop: loop, logger: logger)
        sweepTimer = .allocateHandle()
        adminSettings = settings
        host.delegate = self
        host.call.resumer = self
        transport.delegate = self
        if let storage {
            let host = host
            writeBehind = WriteBehind(storage: storage, world: world, loop: loop, logger: logger,
                                      intervalMilliseconds: limits.flushInterval, stored: stored,
                                      declaredFields: { host.module.fields.filter { $0.kind.isPersistent } })
            // The file holds the timers just read from it.
            writeBehind?.timersWrittenVersion = world.timers.durableVersion
            if let shared = storage as? any SharedPlayerStorage { shareStorage(shared, adoptingLeases: stored.adoptLeases) }
        } else {
            world.tracksDirty = false
        }
        auth.answer = { [unowned self] ask, verdict in answerLogin(ask, verdict) }
        uvMust(uv_timer_init(loop, sweepTimer), "uv_timer_init")
        sweepTimer.context = UVContext.pointer(to: self)
        uvMust(uv_timer_start(sweepTimer, { timer in
            UVContext.object(timer!.pointee.data, as: Engine.self).sweep()
        }, 1000, 1000), "uv_timer_start")
        // The sweep alone must not keep the loop alive at shutdown.
        uv_unref(sweepTimer.handle)
        clock.start(on: loop)
    }

    /// The loop's cached clock, in milliseconds.
    var now: UInt64 { uv_now(loop) }
    var uptimeSeconds: UInt64 { (uv_hrtime() - startedNanoseconds) / 1_000_000_000 }

    /// Binds a port; returns the port actually bound.
    func listen(_ role: ListenerRole, host: String, port: Int) throws(ListenError) -> Int {
        try transport.listen(role, host: host, port: port, backlog: role == .game ? 511 : 64)
    }

    /// Turns metrics on and binds the metrics port; returns the port bound.
    /// Only from here on are module calls sampled for the duration
    /// histogram: without the port nothing is timed.
    func startMetrics(host: String, port: Int) throws(ListenError) -> Int {
        enableMetrics()
        return try listen(.metrics, host: host, port: port)
    }

    /// Turns metrics on without binding: an engine resumed by an upgrade
    /// takes over the port the previous one bound.
    func enableMetrics() {
        let server = metrics ?? MetricsServer(engine: self)
        metrics = server
        self.host.call.sampler = CallSampler(interval: limits.metricsSampleEvery,
                                        histogram: server.exposition.requestDuration)
        clock.lagHistogram = server.exposition.timerLag
        clock.tickHistogram = server.exposition.tickDuration
    }

    /// What `/readyz` reports: serving, and not shutting down.
    var ready: Bool { running && !shuttingDown }

    /// Arms fault containment on this (the loop's) thread; the reason when
    /// it cannot be.
    func installFaultGuard() -> String? {
        let status = host.installFaultGuard(callTimeoutMilliseconds: limits.callTimeout)
        return status == 0 ? nil : "cannot install the fault guard: \(String(cString: strerror(-status)))"
    }

    /// Runs until shutdown completes.
    func run() {
        installSignalHandlers()
        // Every descriptor of the start (listeners, database, logs) is open;
        // connections an upgrade handed over are not part of the base.
        transport.gameConnectionCap = DescriptorReserve.gameConnectionCap(
            fileLimit: DescriptorReserve.fileLimit(),
            open: DescriptorReserve.openDescriptors().map { $0 - transport.connections.count }, reserve: limits.fdReserve)
        if transport.gameConnectionCap < maxConnections {
            logger.warning("the open-file limit allows \(transport.gameConnectionCap) game connections (less than --max-connections \(maxConnections)) with --fd-reserve \(limits.fdReserve)")
        }
        running = true
        // From the first turn on, a loop that stops turning ends the
        // process with a crash report (FaultGuard, --stall-timeout).
        fg_set_stall_timeout_ms(UInt32(limits.stallTimeout))
        resumeLoginChecks()
        uv_run(loop, UV_RUN_DEFAULT)
    }

    // MARK: - Sessions

    func accepted(_ connection: Connection) {
        switch connection.role {
        case .metrics:
            guard let metrics else { return connection.abort() }
            metrics.accept(connection)
        case .admin:
            if shuttingDown {
                connection.enqueue(line: Replies.serverFull)
                connection.closeAfterFlush()
            } else {
                admin.accept(connection)
            }
        case .game:
            // Away sessions hold no descriptor: they do not count (a crowd
            // coming back after a network blip must not be refused).
            if shuttingDown || world.sessionCount - resumes.awayCount >= maxConnections {
                counters.serverFull += 1
                connection.refuse(line: Replies.serverFull)
                return
            }
            if limits.maxConnectionsPerIp > 0, let address = connection.address,
               !(limits.exemptLoopback && address.isLoopback) {
                let open = connectionsPerAddress[address, default: 0]
                if open >= limits.maxConnectionsPerIp {
                    perAddressRefused += 1
                    connection.refuse(line: Replies.tooManyFromAddress)
                    return
                }
                connectionsPerAddress[address] = open + 1
                connection.countedPerAddress = true
            }
            let session = PlayerSession(host: self, connection: connection, now: now)
            session.attach(world.openSession(peer: session))
            connection.handler = session
            do {
                try connection.startReading()
            } catch {
                connection.abort()
            }
        }
    }

    func connectionClosed(_ connection: Connection) {
        if connection.countedPerAddress, let address = connection.address {
            connection.countedPerAddress = false
            let left = connectionsPerAddress[address, default: 1] - 1
            connectionsPerAddress[address] = left > 0 ? left : nil
        }
        if shuttingDown && onlyMetricsLeft { finishShutdown() }
    }

    /// Shutdown waits for players and operators, not for scrapers: the
    /// metrics port keeps answering (`/readyz` 503) until they are gone.
    private var onlyMetricsLeft: Bool { transport.connections.count == transport.connectionCount(.metrics) }

    /// One request from a player: to the module, then what it asked for.
    @inline(__always)
    func dispatch(_ line: UnsafeRawBufferPointer, from session: PlayerSession) {
        host.handle(line, from: session.id, peer: session)
        // The request asked for a login: its answer comes later (Auth/).
        if let ask = host.call.takeAuthAsk() {
            session.beginAwaiting(ask)
            auth.submit(ask, address: session.connection.address)
        }
    }

    /// Logins an upgrade handed over while they were checked: checked
    /// again here, from the start.
    private func resumeLoginChecks() {
        for connection in transport.connections {
            if let session = connection.handler as? PlayerSession, let ask = session.awaiting {
                auth.submit(ask, address: connection.address)
            }
        }
    }

    /// A login's verdict, on the loop: the module answers it, then the
    /// lines that waited behind it are handled.
    func answerLogin(_ ask: AuthAsk, _ verdict: AuthVerdict) {
        guard let session = world.livePeer(of: ask.session) as? PlayerSession, session.awaiting == ask else { return }
        host.call.answerAuth(ask, verdict, peer: session)
        session.endAwaiting()
    }

    func logicRequestedClose(_ session: GameID) {
        tearDown(session)
    }

    func logicFaulted(_ fault: FaultRecord, rolledBack: SwapReport?, refused: SwapError?) {
        admin.faulted(fault, rolledBack: rolledBack, refused: refused)
    }

    /// The state of each part's lifecycle, for STATUS
    /// (`reload=idle flush=idle upgrade=idle`).
    var lifecycles: [(name: String, state: String)] {
        [("reload", host.reloadStateName), ("flush", writeBehind?.stateName ?? "off"), ("upgrade", upgrader.stateName)]
    }

    /// Players changed since the database last took them: dirty in World,
    /// or in a failed batch that is being made dirty again.
    var dirtyPlayers: Int { world.dirtyCount + (writeBehind?.unwrittenNotYetDirty ?? 0) }

    func logicMigrating(_ candidate: LoadedModule, done: Int, of total: Int) {
        admin.migrating(candidate, done: done, of: total)
    }

    // MARK: - AdminTarget

    func snapshot() -> EngineSnapshot { EngineSnapshot(self) }

    func upgrade(path: String?, refused: @escaping (UpgradeRefusal) -> Void) {
        upgrader.upgrade(path: path, refused: refused)
    }

    func swapped(_ report: SwapReport) {
        metrics?.swapped(report)
        systemd?.refreshStatus()
        agones?.publish(agonesVersions)
    }

    // MARK: - MetricsTarget

    var turns: UInt64 { transport.turns }
    var servingModule: LoadedModule { host.module }

    // MARK: - SessionHost

    func count(_ event: SessionEvent) {
        switch event {
        case .rateLimited: counters.rateLimited += 1
        case .rateLimitClose: counters.rateLimitCloses += 1
        case .lineTooLong: counters.lineTooLong += 1
        case .idleClose: counters.idleCloses += 1
        }
    }

    func connectionDropped(_ session: PlayerSession, clean: Bool) {
        if goAway(session) {
            if clean { session.connection.closeAfterFlush() } else { session.connection.abort() }
        } else if clean {
            endSession(session, flush: true)
        } else {
            session.connection.abort()
        }
    }

    func connectionLost(_ session: PlayerSession) {
        if !goAway(session) { tearDown(session.id) }
    }

    /// Ends a player's session and closes its connection (after its output
    /// is written when `flush`).
    func endSession(_ session: PlayerSession, flush: Bool) {
        tearDown(session.id)
        if flush { session.connection.closeAfterFlush() } else { session.connection.abort() }
    }

    /// Removes a session: the module hears of it first (its room and fields
    /// are still there to read), then it leaves its room and its row resets,
    /// and its connection closes once its output is written.
    func tearDown(_ id: GameID) {
        guard world.beginClosing(id) else { return }
        host.sessionClosed(id)
        world.closeSession(id)?.sessionEnded()
        // After the hook: it may still ask whether the session was away.
        resumes.ended(id)
    }

    /// Once a second: every connection whose handler's deadline passed
    /// (login, idle, admin auth) is told so and closed; memory freed after
    /// a burst of output is given back.
    private func sweep() {
        memoryReturn.check(queued: transport.queuedOutput)
        let now = now
        var expired: [any ConnectionHandler] = []
        for connection in transport.connections where connection.state == .open {
            if let handler = connection.handler, handler.deadlinePassed(now: now) { expired.append(handler) }
        }
        for handler in expired { handler.expire() }
        expireAwaySessions(now: now)
        expirePlayers()
    }

    /// `--player-ttl-days`: one slice of the expiry (World/PlayerExpiry.swift),
    /// never while a reload migrates the stored players or an upgrade
    /// writes the database (as FORGET).
    private func expirePlayers() {
        guard expiry.ttlMilliseconds > 0, !host.reloading, writeBehind?.paused != true, !shuttingDown else { return }
        let forgotten = expiry.step(world, now: world.wallMilliseconds())
        guard !forgotten.isEmpty else { return }
        let days = limits.playerTtlDays
        logger.notice("expired \(forgotten.count) players not seen for \(days) days (--player-ttl-days)")
        for key in forgotten {
            admin.settings.auditLog?.record(AuditLog.Entry(
                peer: "engine", action: "EXPIRE", result: "ok", reason: "no login for \(days) days (--player-ttl-days)",
                subject: String(decoding: key, as: UTF8.self)))
        }
    }

    // MARK: - Development

    func watchModule(path: String) {
        let watcher = ModuleWatcher(engine: self, path: path)
        do {
            try watcher.start()
        } catch {
            logger.error("--watch: cannot watch \(path): \(error)")
            watcher.stop()
            return
        }
        logger.notice("watching \(path) for new builds")
        self.watcher = watcher
    }

    // MARK: - Shutdown

    /// SIGINT and SIGTERM shut down, SIGUSR2 upgrades. The handlers are the
    /// engine's own (engine_signals.h: a flag and a wake-up, so an upgrade
    /// can see one that arrived during its callback), not libuv's (whose
    /// pipe would lose it in the exec).
    private func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        let wake = UnsafeMutablePointer<uv_async_t>.allocateHandle()
        uvMust(uv_async_init(loop, wake) { wake in
            let engine = UVContext.object(wake!.pointee.data, as: Engine.self)
            for number in ProcessImage.stopSignals where hs_signal_take(number) != 0 {
                engine.logger.notice("signal \(FaultRecord.signalName(number)): shutting down")
                if engine.stopCause == nil { engine.stopCause = FaultRecord.signalName(number) }
                engine.shutdown()
            }
            if hs_signal_take(SIGUSR2) != 0 { engine.upgradeBySignal() }
            for number in ProcessImage.ignoredSignals where hs_signal_take(number) != 0 {
                engine.logger.warning("signal \(FaultRecord.signalName(number)) ignored (SIGTERM, SIGINT or SIGHUP stop the server; SIGUSR2 upgrades it)")
            }
        }, "uv_async_init (signal wake-up)")
        wake.context = UVContext.pointer(to: self)
        // The wake-up alone must not keep the loop alive at shutdown.
        uv_unref(wake.handle)
        signalWake = wake
        let status = ProcessImage.deferredSignals.withUnsafeBufferPointer {
            hs_signals_install($0.baseAddress, Int32($0.count), wake)
        }
        if status != 0 { logger.error("cannot install the signal handlers: \(String(cString: strerror(-status)))") }
        // libuv's worker threads are made by the first uv_queue_work, on the
        // thread that calls it, with that thread's mask: made now, while the
        // loop thread still blocks these signals, none of them ever takes
        // one (main blocked them before any thread existed).
        let primed = UVWork.submit(on: loop, 0, work: { _ in }, after: { _ in })
        if primed != 0 { logger.error("uv_queue_work (starting libuv's worker threads): \(UVError(primed))") }
        // Unblocked only now, on this thread only: one that arrived at
        // start, or during the exec of an upgrade, was pending and is
        // delivered here. SIGCHLD too: libuv learns from it that an
        // upgrade's check exited (a parent may hand us a mask that blocks it).
        var set = sigset_t()
        sigemptyset(&set)
        for number in ProcessImage.deferredSignals + [SIGCHLD] { sigaddset(&set, number) }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// SIGUSR2, as nginx operators expect: upgrade to the build installed
    /// at this engine's own path. Nobody waits for a reply; the log (and,
    /// on success, the next engine's log) tells.
    private func upgradeBySignal() {
        logger.notice("signal SIGUSR2: upgrading to the engine at \(admin.settings.upgrade.enginePath)")
        upgrader.upgrade(path: nil) { [unowned(unsafe) self] refusal in
            _ = admin.recordUpgradeRefused(refusal.description, path: admin.settings.upgrade.enginePath, peer: "signal")
        }
    }

    /// Stops accepting, tells every session, and closes each once its output
    /// is written; after the grace period whatever is left is cut off.
    func shutdown() {
        guard !shuttingDown else { return }
        shuttingDown = true
        // Agones first: the rooms Counter full, so no allocation lands on
        // a server that is about to stop taking players.
        agones?.draining()
        notifySystemdStopping()
        // The exit's last flush may wait on the database's worker: a stop
        // on purpose, not a stall.
        fg_set_stall_timeout_ms(0)
        // No reload starts from now on; the operator waiting on a reload's
        // staged migration is answered before admin connections close.
        host.stop()
        upgrader.cancel()
        transport.stopping = true
        transport.closeListeners(except: .metrics)
        metrics?.shutdown()
        watcher?.stop()
        watcher = nil
        // Everyone hears of the shutdown before anyone hears of a departure.
        let ids = world.sessionIDs()
        for id in ids { try? world.send(to: id, Replies.shutdown) }
        for id in ids { tearDown(id) }
        for connection in transport.connections where connection.role == .admin { connection.closeAfterFlush() }
        if onlyMetricsLeft {
            finishShutdown()
            return
        }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = UVContext.pointer(to: self)
        uvMust(uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: Engine.self).finishShutdown()
        }, UInt64(limits.shutdownGraceMs), 0), "uv_timer_start")
        shutdownTimer = timer
    }

    /// Closes the engine's own handles; the loop then runs dry and returns.
    private func finishShutdown() {
        // Runs once (a connection's close callback can reach it again).
        guard !finished else { return }
        finished = true
        // Connections still draining after the grace period are cut off,
        // and so are scrapers.
        transport.abortAll()
        transport.close()
        host.close()
        // A load stuck on a worker keeps the loop alive (its work request
        // never completes): stop the loop instead of waiting for it.
        if host.loadStuck { uv_stop(loop) }
        sweepTimer.closeAndFree()
        clock.close()
        writeBehind?.close()
        // Caught from here on, and ignored: a second SIGTERM does not kill
        // a server that is writing its last records.
        hs_signals_detach()
        systemd?.close()
        // Health pings stop with the loop; Shutdown follows the final flush.
        agones?.stop()
        signalWake?.closeAndFree()
        signalWake = nil
        shutdownTimer?.closeAndFree()
    }
}
