import Glibc

/// Every number the engine reports, read at one instant on the loop
/// thread. STATUS and `/metrics` both render one, so a number is read in
/// one place and named in one row (`EngineReading.all`): the admin console
/// and the exposition cannot drift apart (they did: `log_dropped` counted
/// earlier engines' drops, its metric did not).
///
/// Taking one costs a few dozen loads and, for `outputBuffered`, a walk
/// over the connections: it is taken per STATUS and per scrape (at most
/// once per loop turn), never on the request path.
struct EngineSnapshot {
    // Connections and the world.
    var connections = 0
    var connectionsByRole = [0, 0, 0]
    var maxConnections = 0
    var sessions = 0
    /// Sessions whose connection dropped, waiting for a RESUME (ABI 1.4).
    var sessionsAway = 0
    var resume = ResumeRegistry.Counters()
    var rooms = 0
    var outputBuffered = 0
    var uptimeSeconds = 0

    // Engine counters (PlayerSession's limits, the transport's).
    var requests = 0
    var lineTooLong = 0
    var serverFull = 0
    /// Game connections refused by --max-connections-per-ip (this engine's).
    var perAddressRefused = 0
    /// Metrics connections closed for a newcomer.
    var metricsEvicted = 0
    /// Logins (ABI 1.4): this engine's counts.
    var auth = AuthDesk.Counters()
    /// Shared storage's leases (zero without it).
    var leases = PlayerLeases.Counters()
    var leasesHeld = 0
    var loginsChecking = 0
    var playersExpired = 0
    var outputOverflows = 0
    /// Clients cut off by --max-output-total (this engine's).
    var outputBudgetDrops = 0
    /// The transport's running total of queued output (`outputBuffered`
    /// walks the connections for the same number).
    var outputQueued = 0
    var maxOutputTotal = 0
    /// Times freed memory was given back (malloc_trim) after a burst.
    var memoryTrims = 0
    /// Times the game port stopped accepting at the open-file limit.
    var acceptPauses = 0
    var gameConnectionCap = 0
    var rateLimited = 0
    var rateLimitCloses = 0
    var idleCloses = 0

    // Modules.
    var imagesMapped = 0
    var reloadStuck = false
    var faults = FaultCounters()
    var admin = AdminCounters()
    var adminSessions = 0

    // Logs: this engine's drops and those of the engines before it in this
    // process (an upgrade carries the count over).
    var logDropped = 0
    var auditDropped = 0

    // Durable players.
    var playersStored = 0
    var dirty = 0
    var inFlight = 0
    var flush: FlushCounters?
    var databaseLocation: String?
    /// The database path no longer names the file the server has open.
    var databaseFileLost = false

    // Time (timers and room ticks).
    var timers = 0
    var durableTimers = 0
    var tickingRooms = 0
    var timerLagMaxMicroseconds = 0
    var time = TimerClock.Counters()

    // The metrics port's responses, by `HTTPStatus.index`.
    var metricsResponses = [Int](repeating: 0, count: HTTPStatus.allCases.count)

    /// The state of each part's lifecycle (`reload=idle`, ...).
    var lifecycles: [(name: String, state: String)] = []
    /// Illegal lifecycle moves seen (engine bugs; `Lifecycle`).
    var engineBugs = 0

    /// Requests to the Agones SDK sidecar (attempts), and those that failed.
    var agones = AgonesGateway.Counters()

    /// Reads the engine now.
    init(_ engine: Engine) {
        let transport = engine.transport
        connections = transport.connections.count
        connectionsByRole = ListenerRole.allCases.map { transport.connectionCount($0) }
        maxConnections = engine.maxConnections
        sessions = engine.world.sessionCount
        sessionsAway = engine.resumes.awayCount
        resume = engine.resumes.counters
        rooms = engine.world.roomCount
        outputBuffered = transport.connections.reduce(0) { $0 + $1.bufferedOutput }
        uptimeSeconds = Int(engine.uptimeSeconds)
        let counters = engine.counters
        requests = engine.host.requestCount
        lineTooLong = counters.lineTooLong
        serverFull = counters.serverFull
        perAddressRefused = engine.perAddressRefused
        metricsEvicted = engine.metrics?.evicted ?? 0
        auth = engine.auth.counters
        leases = engine.world.leases.counters
        if engine.world.sharesPlayers { leasesHeld = engine.world.playerCount }
        loginsChecking = engine.auth.waiting
        playersExpired = engine.expiry.expired
        outputOverflows = transport.outputOverflows
        outputBudgetDrops = transport.outputBudget.drops
        outputQueued = transport.queuedOutput
        maxOutputTotal = transport.maxOutputTotal
        memoryTrims = engine.memoryReturn.trims
        acceptPauses = transport.acceptPauses
        gameConnectionCap = transport.gameConnectionCap == Int.max ? 0 : transport.gameConnectionCap
        rateLimited = counters.rateLimited
        rateLimitCloses = counters.rateLimitCloses
        idleCloses = counters.idleCloses
        imagesMapped = engine.host.imagesMapped
        reloadStuck = engine.host.loadStuck
        faults = engine.host.faultCounters
        admin = engine.admin.counters
        adminSessions = engine.admin.connectionCount
        logDropped = (engine.admin.settings.logSink?.droppedLines ?? 0) + admin.logDroppedBefore
        auditDropped = (engine.admin.settings.auditLog?.droppedLines ?? 0) + admin.auditDroppedBefore
        playersStored = engine.world.playerCount
        dirty = engine.dirtyPlayers
        inFlight = engine.writeBehind?.recordsInFlight ?? 0
        flush = engine.writeBehind?.counters
        databaseLocation = engine.writeBehind?.storage.location
        databaseFileLost = engine.writeBehind?.lostFile != nil
        if let metrics = engine.metrics {
            metricsResponses = HTTPStatus.allCases.map { metrics.responseCount($0) }
        }
        timers = engine.world.timers.timerCount
        durableTimers = engine.world.timers.durableCount
        tickingRooms = engine.world.timers.tickingRooms
        timerLagMaxMicroseconds = Int(engine.clock.lagMaxMicroseconds)
        time = engine.clock.counters
        lifecycles = engine.lifecycles
        agones = engine.agones?.gateway.counters ?? AgonesGateway.Counters()
        engineBugs = engine.host.reload.illegalMoves + (engine.writeBehind?.flush.illegalMoves ?? 0)
            + engine.upgrader.lifecycle.illegalMoves + engine.resumes.illegalMoves
    }

    /// An empty snapshot (tests of the renderers).
    init() {}
}

/// One number of `EngineSnapshot`, with its name in STATUS and its
/// Prometheus family: a row of one table, as redis' `config.c` keeps a
/// limit's name, bounds and default in one row. A new number is one row in
/// `all`; STATUS and `/metrics` both pick it up, and `MetricsTests` checks
/// that every row with both names shows the same value in both.
struct EngineReading: Sendable {
    enum Kind: Sendable { case counter, gauge }

    /// How STATUS writes the value.
    enum Format: Sendable {
        case integer
        /// Milliseconds with two decimals ("0.42").
        case milliseconds
    }

    /// A Prometheus family: the unit in the name, `_total` on counters.
    struct Metric: Sendable {
        let kind: Kind
        let name: String
        let labels: [(String, String)]
        let help: String
        /// What the value is multiplied by for the metric (0.001: the
        /// value is milliseconds, the metric seconds).
        var scale = 1.0
    }

    /// The key in STATUS (nil: metrics only).
    let status: String?
    let metric: Metric?
    var format = Format.integer
    /// False for the numbers that may differ between a STATUS and a scrape
    /// of an idle server: its connections (the asking one is counted),
    /// uptime, queued output.
    var steady = true
    let read: @Sendable (EngineSnapshot) -> Double

    /// A number in both STATUS and the metrics.
    static func both(_ status: String, _ kind: Kind, _ name: String, _ labels: [(String, String)], _ help: String,
                     _ read: @escaping @Sendable (EngineSnapshot) -> Int) -> EngineReading
    {
        EngineReading(status: status, metric: Metric(kind: kind, name: name, labels: labels, help: help)) {
            Double(read($0))
        }
    }

    /// A number in both STATUS and the metrics, in a family without labels.
    static func both(_ status: String, _ kind: Kind, _ name: String, _ help: String,
                     _ read: @escaping @Sendable (EngineSnapshot) -> Int) -> EngineReading
    {
        both(status, kind, name, [], help, read)
    }

    /// A number STATUS shows and no metric carries.
    static func status(_ status: String, steady: Bool = true, _ read: @escaping @Sendable (EngineSnapshot) -> Int)
        -> EngineReading
    {
        EngineReading(status: status, metric: nil, steady: steady) { Double(read($0)) }
    }

    /// A metric STATUS does not show.
    static func metric(_ kind: Kind, _ name: String, _ labels: [(String, String)], _ help: String,
                       _ read: @escaping @Sendable (EngineSnapshot) -> Int) -> EngineReading
    {
        EngineReading(status: nil, metric: Metric(kind: kind, name: name, labels: labels, help: help)) { Double(read($0)) }
    }

    /// A metric STATUS does not show, in a family without labels.
    static func metric(_ kind: Kind, _ name: String, _ help: String,
                       _ read: @escaping @Sendable (EngineSnapshot) -> Int) -> EngineReading
    {
        metric(kind, name, [], help, read)
    }

    /// The value as STATUS writes it.
    func statusValue(_ snapshot: EngineSnapshot) -> String {
        let value = read(snapshot)
        switch format {
        case .integer: return String(Int(value))
        case .milliseconds: return AdminConsole.milliseconds(value)
        }
    }

    private static let connectionsHelp = "Open connections by listener (game: players, admin: operators, metrics: HTTP)."
    private static let reloadsHelp = "Reloads asked for (RELOAD, --watch) by result: ok swapped, unchanged was already serving, refused changed nothing (refused rollbacks included)."
    private static let upgradesHelp = "Engine upgrades (UPGRADE, SIGUSR2) by outcome; the process keeps its pid across them."
    private static let faultsHelp = "Contained faults in module code: crash (a signal) or timeout (--call-timeout)."
    private static let metricsRequestsHelp = "HTTP responses of the metrics port, by status code."

    /// Every number, in STATUS order. The histograms, `hotswap_module_info`
    /// and the process metrics are the exposition's (`Exposition`); the
    /// text fields of STATUS (module, paths, last fault) are the console's.
    static let all: [EngineReading] = engine + metricsPort

    private static let engine: [EngineReading] = [
        .both("sessions", .gauge, "hotswap_sessions", "Player sessions open.") { $0.sessions },
        .both("sessions_away", .gauge, "hotswap_sessions_away",
              "Sessions whose connection dropped, kept for a RESUME until --resume-grace runs out (counted in hotswap_sessions).") {
            $0.sessionsAway
        },
        .both("resumes", .counter, "hotswap_resumes_total", "RESUMEs that reattached a session to a new connection.") {
            $0.resume.resumes
        },
        .both("resume_refused", .counter, "hotswap_resumes_refused_total",
              "RESUMEs refused: an unknown, spent or expired token, or an address over --max-failed-resumes-per-ip.") {
            $0.resume.refused
        },
        .both("resume_expired", .counter, "hotswap_resumes_expired_total",
              "Away sessions ended because --resume-grace ran out before a RESUME.") { $0.resume.expired },
        .both("rooms", .gauge, "hotswap_rooms", "Rooms that exist.") { $0.rooms },
        .status("connections", steady: false) { $0.connections },
        .metric(.gauge, "hotswap_connections", [("role", "game")], connectionsHelp) { $0.connectionsByRole[ListenerRole.game.index] },
        .metric(.gauge, "hotswap_connections", [("role", "admin")], connectionsHelp) { $0.connectionsByRole[ListenerRole.admin.index] },
        .metric(.gauge, "hotswap_connections", [("role", "metrics")], connectionsHelp) { $0.connectionsByRole[ListenerRole.metrics.index] },
        .status("uptime_s", steady: false) { $0.uptimeSeconds },
        .metric(.counter, "hotswap_requests_total", "Player requests handed to the logic module.") { $0.requests },
        .both("reloads", .counter, "hotswap_reloads_total", [("result", "ok")], reloadsHelp) { $0.admin.reloads },
        .both("unchanged", .counter, "hotswap_reloads_total", [("result", "unchanged")], reloadsHelp) { $0.admin.unchanged },
        .both("rollbacks", .counter, "hotswap_rollbacks_total", "ROLLBACKs by an operator that swapped.") { $0.admin.rollbacks },
        .both("refused", .counter, "hotswap_reloads_total", [("result", "refused")], reloadsHelp) { $0.admin.refused },
        .both("images", .gauge, "hotswap_images_mapped", "Module images mapped (never unmapped: each reload keeps one).") {
            $0.imagesMapped
        },
        .metric(.gauge, "hotswap_reload_stuck", "1 while a module load that timed out (--load-timeout) has not returned: reloads are refused.") {
            $0.reloadStuck ? 1 : 0
        },
        .metric(.gauge, "hotswap_last_reload_timestamp_seconds", "When the last reload or operator rollback swapped, seconds since the epoch; 0: never.") {
            $0.admin.lastReloadWallSeconds ?? 0
        },
        .both("max_connections", .gauge, "hotswap_max_connections", "Players allowed at once (--max-connections, lowered to the open-file limit).") {
            $0.maxConnections
        },
        .both("accept_pauses", .counter, "hotswap_accept_pauses_total",
              "Times the game port stopped accepting because game connections reached the open-file limit less --fd-reserve (new players waited in the backlog).") {
            $0.acceptPauses
        },
        .status("game_fd_cap") { $0.gameConnectionCap },
        .both("line_too_long", .counter, "hotswap_line_too_long_total", "Sessions closed for a line over --max-line-length.") {
            $0.lineTooLong
        },
        .both("server_full", .counter, "hotswap_server_full_total", "Connections refused with -ERR SERVER_FULL.") { $0.serverFull },
        .both("too_many_from_address", .counter, "hotswap_connections_refused_per_address_total",
              "Game connections refused with -ERR TOO_MANY_CONNECTIONS (--max-connections-per-ip), since this engine started.") {
            $0.perAddressRefused
        },
        .both("logins_checking", .gauge, "hotswap_logins_checking",
              "Logins waiting for or in their check (a secret's hash, a token's signature) on a worker.") { $0.loginsChecking },
        .both("logins_verified", .counter, "hotswap_logins_verified_total",
              "Logins whose secret or token was checked and good (guests are not counted).") { $0.auth.verified },
        .both("logins_failed", .counter, "hotswap_logins_failed_total",
              "Logins refused with BAD_SECRET: a wrong or missing secret, a forged or expired token.") { $0.auth.failed },
        .both("logins_throttled", .counter, "hotswap_logins_throttled_total",
              "Logins refused unchecked with THROTTLED (--max-failed-logins-per-ip, --max-failed-logins-per-player, --new-players-per-minute).") { $0.auth.throttled },
        .both("logins_busy", .counter, "hotswap_logins_busy_total",
              "Logins refused with BUSY: the check queue was full.") { $0.auth.busy },
        .both("players_created", .counter, "hotswap_players_created_total",
              "Player records created by logins, since this engine started.") { $0.auth.created },
        .both("new_players_refused", .counter, "hotswap_new_players_refused_total",
              "New players refused by --new-players-per-minute.") { $0.auth.newPlayersRefused },
        .both("players_expired", .counter, "hotswap_players_expired_total",
              "Player records forgotten by --player-ttl-days, since this engine started.") { $0.playersExpired },
        .both("metrics_evicted", .counter, "hotswap_metrics_connections_evicted_total",
              "Metrics connections closed to make room for a new one (--max-metrics-connections).") { $0.metricsEvicted },
        .both("output_overflows", .counter, "hotswap_output_overflows_total", "Clients cut off for not reading their output (--max-output-bytes).") {
            $0.outputOverflows
        },
        .status("output_buffered", steady: false) { $0.outputBuffered },
        .both("output_budget_drops", .counter, "hotswap_output_budget_drops_total",
              "Clients not reading cut off because the output queued for all clients passed --max-output-total (largest queue first), since this engine started.") {
            $0.outputBudgetDrops
        },
        EngineReading(status: "output_queued",
                      metric: Metric(kind: .gauge, name: "hotswap_output_queued_bytes", labels: [],
                                     help: "Bytes queued for all clients and not yet taken by the kernel (bounded by --max-output-total)."),
                      steady: false) { Double($0.outputQueued) },
        .both("max_output_total", .gauge, "hotswap_max_output_total_bytes", "The budget for output queued for all clients (--max-output-total).") {
            $0.maxOutputTotal
        },
        .both("memory_trims", .counter, "hotswap_memory_trims_total", "Times freed memory was given back to the system after an output burst (--memory-trim-after).") {
            $0.memoryTrims
        },
        .both("rate_limited", .counter, "hotswap_rate_limited_total", "Requests refused with -ERR RATE_LIMITED (--rate-limit).") {
            $0.rateLimited
        },
        .both("rate_limit_closes", .counter, "hotswap_rate_limit_closes_total", "Sessions closed for flooding (--rate-strikes).") {
            $0.rateLimitCloses
        },
        .both("idle_closes", .counter, "hotswap_idle_closes_total", "Sessions closed by the login or idle timeout.") { $0.idleCloses },
        .status("admin_connections", steady: false) { $0.adminSessions },
        .both("admin_evicted", .counter, "hotswap_admin_evicted_total", "Admin connections evicted for a new one (--max-admin-connections).") {
            $0.admin.evicted
        },
        .both("admin_timeouts", .counter, "hotswap_admin_timeouts_total", "Admin connections closed by their auth or idle deadline.") {
            $0.admin.timedOut
        },
        .both("log_dropped", .counter, "hotswap_log_dropped_total", "Log lines dropped because stderr did not take them (--log-buffer-bytes), by every engine of this process.") {
            $0.logDropped
        },
        .both("audit_dropped", .counter, "hotswap_audit_dropped_total", "Audit lines dropped because the audit file did not take them, by every engine of this process.") {
            $0.auditDropped
        },
        .both("faults", .counter, "hotswap_faults_total", [("cause", "crash")], faultsHelp) { $0.faults.faults },
        .both("timeouts", .counter, "hotswap_faults_total", [("cause", "timeout")], faultsHelp) { $0.faults.timeouts },
        .both("auto_rollbacks", .counter, "hotswap_auto_rollbacks_total", "Versions rolled back by the fault policy (--max-faults within --fault-window).") {
            $0.faults.autoRollbacks
        },
        // Durable players (docs/PERSISTENCE.md).
        .both("players_stored", .gauge, "hotswap_players_stored", "Durable player records, all held in memory.") { $0.playersStored },
        .both("dirty", .gauge, "hotswap_players_dirty", "Player records changed since they were last written to the database.") {
            $0.dirty
        },
        EngineReading(status: "in_flight",
                      metric: Metric(kind: .gauge, name: "hotswap_db_records_in_flight", labels: [],
                                     help: "Records taken from the dirty set and not yet written: being copied out, or on the database worker."),
                      steady: false) { Double($0.inFlight) },
        .both("upgrades", .counter, "hotswap_upgrades_total", [("result", "ok")], upgradesHelp) { $0.admin.upgrades },
        .both("upgrades_refused", .counter, "hotswap_upgrades_total", [("result", "refused")], upgradesHelp) {
            $0.admin.upgradesRefused
        },
        .both("flushes", .counter, "hotswap_db_flushes_total", "Write-behind flushes committed to the database.") {
            $0.flush?.flushes ?? 0
        },
        .both("records_flushed", .counter, "hotswap_db_records_written_total", "Player and global records written by flushes.") {
            $0.flush?.recordsWritten ?? 0
        },
        .status("last_flush_records") { $0.flush?.lastBatchRecords ?? 0 },
        EngineReading(status: "last_flush_ms",
                      metric: Metric(kind: .gauge, name: "hotswap_db_last_flush_seconds", labels: [],
                                     help: "How long the last flush took on its worker thread.", scale: 0.001),
                      format: .milliseconds) { $0.flush?.lastFlushMilliseconds ?? 0 },
        .status("last_flush_held_us") { Int($0.flush?.lastHeldMicroseconds ?? 0) },
        .both("db_errors", .counter, "hotswap_db_errors_total", "Flushes the database refused (a full disk, ...), and checks that found its file gone; their records stay dirty and are retried.") {
            $0.flush?.errors ?? 0
        },
        // Shared storage (docs/SCALING.md): players under a lease.
        .both("leases_held", .gauge, "hotswap_leases_held", "Players this server holds under a lease in the shared database (loaded: online, away, or just left and not yet given back).") {
            $0.leasesHeld
        },
        .both("leases_claimed", .counter, "hotswap_leases_claimed_total", "Players read from the shared database at LOGIN under a new lease.") {
            $0.leases.claimed
        },
        .both("leases_released", .counter, "hotswap_leases_released_total", "Leases given back with a player's last changes after it left.") {
            $0.leases.released
        },
        .both("logins_elsewhere", .counter, "hotswap_logins_elsewhere_total", "Logins refused because another live server holds the player.") {
            $0.leases.heldElsewhere
        },
        .both("login_db_errors", .counter, "hotswap_login_db_errors_total", "Logins refused because the shared database did not answer the player's read.") {
            $0.leases.claimErrors
        },
        .both("leases_lost", .counter, "hotswap_leases_lost_total", "Players another server took while this one held them (a fenced write, or a check of the held leases): their sessions were closed.") {
            $0.leases.lost
        },
        .both("db_file_lost", .gauge, "hotswap_db_file_lost", "1 while the database path does not name the file the server has open (deleted, moved or replaced): nothing is written.") {
            $0.databaseFileLost ? 1 : 0
        },
        // Time (ABI 1.3: timers and room ticks).
        .both("timers", .gauge, "hotswap_timers_pending", "Timers modules set that have not fired or ended (room ticks not included).") {
            $0.timers
        },
        .both("timers_durable", .gauge, "hotswap_timers_durable", "Pending timers owned by players or the global entity: stored in the database.") {
            $0.durableTimers
        },
        .both("ticking_rooms", .gauge, "hotswap_ticking_rooms", "Rooms with a tick rate (room_set_tick_rate).") { $0.tickingRooms },
        .both("timers_fired", .counter, "hotswap_timers_fired_total", "Timers handed to the module's hotswap_timer.") {
            $0.time.timersFired
        },
        .both("ticks", .counter, "hotswap_ticks_total", "Room ticks handed to the module's hotswap_tick.") { $0.time.ticks },
        .both("ticks_skipped", .counter, "hotswap_ticks_skipped_total", "Room ticks skipped after a stall (more than 3 late at once).") {
            $0.time.ticksSkipped
        },
        .both("time_faults", .counter, "hotswap_time_faults_total", "Timer and tick calls that faulted or hung: undone, and counted in hotswap_faults_total too.") {
            $0.time.faults
        },
        .both("timer_orphans", .counter, "hotswap_timer_orphans_total", "Timers and ticks dropped because the serving module has no hotswap_timer or hotswap_tick.") {
            $0.time.orphans
        },
        .both("time_budget_exhausted", .counter, "hotswap_time_budget_exhausted_total", "Loop turns whose due timers and ticks outran --tick-budget-ms (the rest ran after the sockets).") {
            $0.time.budgetExhausted
        },
        .status("timer_lag_max_us", steady: false) { $0.timerLagMaxMicroseconds },
        // Agones (AGONES_SDK_HTTP_PORT): health pings go on between a
        // STATUS and a scrape.
        EngineReading(status: "agones_requests",
                      metric: Metric(kind: .counter, name: "hotswap_agones_requests_total", labels: [],
                                     help: "Requests (attempts) to the Agones SDK sidecar: Ready, Health, labels, Shutdown."),
                      steady: false) { Double($0.agones.requests) },
        EngineReading(status: "agones_failures",
                      metric: Metric(kind: .counter, name: "hotswap_agones_failures_total", labels: [],
                                     help: "Requests to the Agones SDK sidecar that failed: no connection, no answer in time, or an error status."),
                      steady: false) { Double($0.agones.failures) },
        .both("engine_bugs", .counter, "hotswap_engine_bugs_total", "Illegal lifecycle transitions the engine caught in itself (logged at critical level): a bug to report.") {
            $0.engineBugs
        },
    ]

    private static let metricsPort: [EngineReading] = HTTPStatus.allCases.map { status in
        let index = status.index
        return EngineReading.metric(.counter, "hotswap_metrics_requests_total", [("code", "\(status.rawValue)")],
                                    metricsRequestsHelp) { (snapshot: EngineSnapshot) -> Int in snapshot.metricsResponses[index] }
    }
}
