/// What a scrape reads from: the engine, and `/proc` read once per scrape.
struct Scrape {
    unowned(unsafe) let engine: Engine
    let process: ProcessStats
}

/// One number the engine already keeps, published as a Prometheus counter
/// or gauge and read when Prometheus scrapes. Nothing is counted twice: the
/// hot path keeps its plain counters (BENCHMARKS.md, "Metrics"), and the
/// library's registry is filled from them at scrape time.
///
/// A new metric is one line in `all` (see the durable players' below).
struct EngineReading: Sendable {
    enum Kind: Sendable { case counter, gauge }

    let kind: Kind
    /// Prometheus naming: the unit in the name, `_total` on counters.
    let name: String
    let labels: [(String, String)]
    let help: String
    let read: @Sendable (Scrape) -> Double

    static func counter(_ name: String, _ help: String, _ read: @escaping @Sendable (Scrape) -> Int) -> EngineReading {
        counter(name, [], help, read)
    }

    static func counter(_ name: String, _ labels: [(String, String)], _ help: String,
                        _ read: @escaping @Sendable (Scrape) -> Int) -> EngineReading
    {
        EngineReading(kind: .counter, name: name, labels: labels, help: help) { Double(read($0)) }
    }

    static func gauge(_ name: String, _ help: String, _ read: @escaping @Sendable (Scrape) -> Int) -> EngineReading {
        gauge(name, [], help, read)
    }

    static func gauge(_ name: String, _ labels: [(String, String)], _ help: String,
                      _ read: @escaping @Sendable (Scrape) -> Int) -> EngineReading
    {
        EngineReading(kind: .gauge, name: name, labels: labels, help: help) { Double(read($0)) }
    }

    /// Every metric the engine publishes, but for the histograms and
    /// `hotswap_module_info` (see `Exposition`). Families with labels list
    /// one line per label value, with the same help.
    private static let upgradesHelp = "Engine upgrades (UPGRADE, SIGUSR2) by outcome; the process keeps its pid across them."
    static let all: [EngineReading] = engine + metricsPort + process

    private static let connectionsHelp = "Open connections by listener (game: players, admin: operators, metrics: HTTP)."
    private static let reloadsHelp = "Reloads asked for (RELOAD, --watch) by result: ok swapped, unchanged was already serving, refused changed nothing (refused rollbacks included)."
    private static let faultsHelp = "Contained faults in module code: crash (a signal) or timeout (--call-timeout)."
    private static let metricsRequestsHelp = "HTTP responses of the metrics port, by status code."

    private static let engine: [EngineReading] = [
        .gauge("hotswap_connections", [("role", "game")], connectionsHelp) { $0.engine.transport.connectionCount(.game) },
        .gauge("hotswap_connections", [("role", "admin")], connectionsHelp) { $0.engine.transport.connectionCount(.admin) },
        .gauge("hotswap_connections", [("role", "metrics")], connectionsHelp) { $0.engine.transport.connectionCount(.metrics) },
        .gauge("hotswap_max_connections", "Players allowed at once (--max-connections, lowered to the open-file limit).") {
            $0.engine.maxConnections
        },
        .gauge("hotswap_sessions", "Player sessions open.") { $0.engine.world.sessionCount },
        .gauge("hotswap_rooms", "Rooms that exist.") { $0.engine.world.roomCount },
        .counter("hotswap_requests_total", "Player requests handed to the logic module.") { $0.engine.host.requestCount },
        .counter("hotswap_reloads_total", [("result", "ok")], reloadsHelp) { $0.engine.admin.counters.reloads },
        .counter("hotswap_reloads_total", [("result", "unchanged")], reloadsHelp) { $0.engine.admin.counters.unchanged },
        .counter("hotswap_reloads_total", [("result", "refused")], reloadsHelp) { $0.engine.admin.counters.refused },
        .counter("hotswap_rollbacks_total", "ROLLBACKs by an operator that swapped.") { $0.engine.admin.counters.rollbacks },
        .counter("hotswap_upgrades_total", [("result", "ok")], upgradesHelp) { $0.engine.admin.counters.upgrades },
        .counter("hotswap_upgrades_total", [("result", "refused")], upgradesHelp) { $0.engine.admin.counters.upgradesRefused },
        .counter("hotswap_auto_rollbacks_total", "Versions rolled back by the fault policy (--max-faults within --fault-window).") {
            $0.engine.host.faultCounters.autoRollbacks
        },
        .gauge("hotswap_last_reload_timestamp_seconds", "When the last reload or operator rollback swapped, seconds since the epoch; 0: never.") {
            $0.engine.admin.counters.lastReloadWallSeconds ?? 0
        },
        .gauge("hotswap_reload_stuck", "1 while a module load that timed out (--load-timeout) has not returned: reloads are refused.") {
            $0.engine.host.loadStuck ? 1 : 0
        },
        .gauge("hotswap_images_mapped", "Module images mapped (never unmapped: each reload keeps one).") { $0.engine.host.imagesMapped },
        .counter("hotswap_faults_total", [("cause", "crash")], faultsHelp) { $0.engine.host.faultCounters.faults },
        .counter("hotswap_faults_total", [("cause", "timeout")], faultsHelp) { $0.engine.host.faultCounters.timeouts },
        .counter("hotswap_output_overflows_total", "Clients cut off for not reading their output (--max-output-bytes).") {
            $0.engine.transport.outputOverflows
        },
        .counter("hotswap_rate_limited_total", "Requests refused with -ERR RATE_LIMITED (--rate-limit).") {
            $0.engine.counters.rateLimited
        },
        .counter("hotswap_rate_limit_closes_total", "Sessions closed for flooding (--rate-strikes).") { $0.engine.counters.rateLimitCloses },
        .counter("hotswap_line_too_long_total", "Sessions closed for a line over --max-line-length.") { $0.engine.counters.lineTooLong },
        .counter("hotswap_server_full_total", "Connections refused with -ERR SERVER_FULL.") { $0.engine.counters.serverFull },
        .counter("hotswap_idle_closes_total", "Sessions closed by the login or idle timeout.") { $0.engine.counters.idleCloses },
        .counter("hotswap_admin_evicted_total", "Admin connections evicted for a new one (--max-admin-connections).") {
            $0.engine.admin.counters.evicted
        },
        .counter("hotswap_admin_timeouts_total", "Admin connections closed by their auth or idle deadline.") {
            $0.engine.admin.counters.timedOut
        },
        .counter("hotswap_log_dropped_total", "Log lines dropped because stderr did not take them (--log-buffer-bytes).") {
            $0.engine.admin.settings.logSink?.droppedLines ?? 0
        },
        .counter("hotswap_audit_dropped_total", "Audit lines dropped because the audit file did not take them.") {
            $0.engine.admin.settings.auditLog?.droppedLines ?? 0
        },
        // Durable players (docs/PERSISTENCE.md).
        .gauge("hotswap_players_stored", "Durable player records, all held in memory.") { $0.engine.world.playerCount },
        .gauge("hotswap_players_dirty", "Player records changed since they were last written to the database.") {
            $0.engine.dirtyPlayers
        },
        .counter("hotswap_db_flushes_total", "Write-behind flushes committed to the database.") {
            $0.engine.writeBehind?.counters.flushes ?? 0
        },
        .counter("hotswap_db_records_written_total", "Player and global records written by flushes.") {
            $0.engine.writeBehind?.counters.recordsWritten ?? 0
        },
        .counter("hotswap_db_errors_total", "Flushes the database refused (a full disk, ...); their records stay dirty and are retried.") {
            $0.engine.writeBehind?.counters.errors ?? 0
        },
        EngineReading(kind: .gauge, name: "hotswap_db_last_flush_seconds", labels: [],
                      help: "How long the last flush took on its worker thread.") {
            ($0.engine.writeBehind?.counters.lastFlushMilliseconds ?? 0) / 1000
        },
    ]

    private static let metricsPort: [EngineReading] = HTTPStatus.allCases.map { status in
        EngineReading.counter("hotswap_metrics_requests_total", [("code", "\(status.rawValue)")], metricsRequestsHelp) {
            (scrape: Scrape) -> Int in scrape.engine.metrics?.responseCount(status) ?? 0
        }
    }

    /// The standard process metrics of Prometheus client libraries.
    private static let process: [EngineReading] = [
        EngineReading(kind: .gauge, name: "process_resident_memory_bytes", labels: [], help: "Resident memory size in bytes.") {
            $0.process.residentBytes
        },
        EngineReading(kind: .gauge, name: "process_virtual_memory_bytes", labels: [], help: "Virtual memory size in bytes.") {
            $0.process.virtualBytes
        },
        EngineReading(kind: .counter, name: "process_cpu_seconds_total", labels: [], help: "Total user and system CPU time spent in seconds.") {
            $0.process.cpuSeconds
        },
        EngineReading(kind: .gauge, name: "process_open_fds", labels: [], help: "Number of open file descriptors.") {
            $0.process.openFileDescriptors
        },
        EngineReading(kind: .gauge, name: "process_max_fds", labels: [], help: "Maximum number of open file descriptors.") {
            $0.process.maxFileDescriptors
        },
        EngineReading(kind: .gauge, name: "process_start_time_seconds", labels: [], help: "Start time of the process since unix epoch in seconds.") {
            _ in ProcessStats.startTimeSeconds
        },
    ]
}
