import ArgumentParser
import Glibc

/// Every limit the engine enforces, in one place: each one's flag (the
/// property name), default, bounds and help on one declaration, like a row
/// of redis's `config.c`. `gameserver` takes them as an `@OptionGroup`;
/// in-process tests get the defaults with `Limits.defaults`.
///
/// Bounds are checked as a flag is parsed (`within`), so a value out of
/// range is refused with the flag's name before anything starts.
struct Limits: ParsableArguments, Sendable {
    // Clients
    @Option(help: "Longest request line accepted, in bytes.", transform: within(16...1_048_576))
    var maxLineLength = 4096
    @Option(help: "Most clients connected at once; more get -ERR SERVER_FULL.", transform: within(1...1_000_000))
    var maxConnections = 10_000
    @Option(help: "Bytes queued for a client that does not read before it is disconnected.",
            transform: within(1024...(1 << 30)))
    var maxOutputBytes = 1 << 20
    @Option(help: "Descriptors kept free, beyond those open at start, for the admin and metrics ports, the database and module files: the game port stops accepting (new players wait in the backlog) when game connections would take them.",
            transform: within(8...65_536))
    var fdReserve = 32
    @Option(help: "Bytes queued for all clients together; past it, the clients with the largest queues that are not reading are disconnected until a quarter is free. Default: 512 MiB, or an eighth of physical memory when that is less.",
            transform: within((64 << 10)...(1 << 42)))
    var maxOutputTotal: Int?
    /// `--max-output-total`, or its default: min(512 MiB, physical memory
    /// / 8). An eighth leaves the rest of the machine to the game state,
    /// the kernel's socket buffers (which hold about as much again for
    /// clients that do not read) and anything else on the host.
    var effectiveMaxOutputTotal: Int { maxOutputTotal ?? Limits.defaultMaxOutputTotal }
    static var defaultMaxOutputTotal: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, pageSize > 0 else { return 512 << 20 }
        return max(min(512 << 20, pages * pageSize / 8), 64 << 10)
    }
    @Option(help: "Queued output (all clients) that, once reached and then mostly written or dropped, makes the server give freed memory back to the system (malloc_trim, on a worker thread); 0 never does.",
            transform: within(0...(1 << 42)))
    var memoryTrimAfter = 32 << 20
    @Option(help: "Game connections at once from one IP address (loopback exempt); more get -ERR TOO_MANY_CONNECTIONS. Players behind one NAT share an address: size it for the largest you expect. 0 turns it off.",
            transform: within(0...1_000_000))
    var maxConnectionsPerIp = 256
    @Flag(inversion: .prefixedNo,
          help: "Exempt loopback clients (a proxy on this machine, local load tests) from --max-connections-per-ip.")
    var exemptLoopback = true
    @Option(help: "Requests per second per session (token bucket); 0 turns the limit off.",
            transform: within(0...10_000_000))
    var rateLimit = 1000
    @Option(help: "Requests a session may send in one burst before --rate-limit applies.",
            transform: within(1...10_000_000))
    var rateBurst = 2000
    @Option(help: "Refused requests in a row after which a flooding client is disconnected.",
            transform: within(1...1_000_000))
    var rateStrikes = 100
    @Option(help: "Bytes a request may make the server send to other sessions (broadcast, send) for the price of one request under --rate-limit; each such amount more costs one request more (a 4 KB SAY heard by 255 costs about 256). 0 charges requests only.",
            transform: within(0...(1 << 30)))
    var rateFanOutBytes = 4096
    @Option(help: "Seconds a new connection may stay silent before it logs in; 0 turns it off.",
            transform: within(0...86_400))
    var loginTimeout = 30
    @Option(help: "Seconds a logged-in session may go without a request; 0 turns it off.",
            transform: within(0...604_800))
    var idleTimeout = 600
    @Option(help: "Milliseconds a closing connection waits for the client's FIN.", transform: within(0...60_000))
    var lingerMs = 2000
    @Option(help: "Milliseconds shutdown waits for replies to be written before cutting clients off.",
            transform: within(0...600_000))
    var shutdownGraceMs = 2000

    // Resume (a session outliving its connection)
    @Option(help: "Seconds a logged-in session outlives a dropped connection, waiting for RESUME with its token (its room, fields and timers kept; the lines sent to it meanwhile queued); 0 turns resume off (a drop ends the session at once).",
            transform: within(0...86_400))
    var resumeGrace = 30
    @Option(help: "Lines queued for an away session, the newest kept; a RESUME is told how many older ones it missed (>MISSED n).",
            transform: within(1...100_000))
    var resumeBacklogLines = 256
    @Option(help: "Bytes queued for an away session (lines with their CRLF), the newest kept.",
            transform: within(1024...(16 << 20)))
    var resumeBacklogBytes = 64 << 10
    @Option(help: "Away sessions at once: past it a dropped connection ends its session as without resume. Bounds what away sessions hold outside --max-output-total (at most this many times --resume-backlog-bytes) and how many room places and names they keep.",
            transform: within(0...1_000_000))
    var maxAwaySessions = 5000
    @Option(help: "Failed RESUMEs (a bad, spent or expired token) from one IP address within a minute, after which its RESUMEs are refused unchecked until the minute is over (loopback exempt unless --no-exempt-loopback).",
            transform: within(1...1_000_000))
    var maxFailedResumesPerIp = 20

    @Option(help: "Microseconds the loop keeps polling without sleeping after I/O (adaptive, at most this; costs CPU, see BENCHMARKS.md 'The -P 16 gap'); 0, the default, turns it off.",
            transform: within(0...10_000))
    var busyPoll = 0

    // Rooms (what modules may ask for)
    @Option(help: "Most sessions in one room.", transform: within(1...1_000_000))
    var maxRoomMembers = 256
    @Option(help: "Most rooms at once.", transform: within(1...1_000_000))
    var maxRooms = 10_000

    // Time (timers and room ticks, ABI 1.3)
    @Option(help: "Most pending timers modules may set (about 200 bytes each); timer_set past it gets GAME_ERR_LIMIT.",
            transform: within(1...100_000_000))
    var maxTimers = 1_000_000
    @Option(help: "Most pending timers on one owner (a session, room, player or the global entity).",
            transform: within(1...100_000_000))
    var maxTimersPerOwner = 10_000
    @Option(help: "Milliseconds the timers and room ticks due in one loop turn may take together; the rest wait until the sockets were served.",
            transform: within(1...1000))
    var tickBudgetMs = 5

    // Durable players (--database)
    @Option(help: "Milliseconds between write-behind flushes of changed players and globals to the database.",
            transform: within(10...60_000))
    var flushInterval = 200
    @Option(help: "Most stored players (all are kept in memory, about 250 bytes each); a new one past it gets GAME_ERR_LIMIT.",
            transform: within(1...100_000_000))
    var maxPlayers = 1_000_000
    @Option(help: "With a PostgreSQL --database: seconds a server's hold on a player (its lease) lasts without being renewed; the flushes renew it. A server that stops (killed, cut off) loses its players to other servers this long after its last flush.",
            transform: within(2...3600))
    var leaseSeconds = 15

    // Fault containment (module code)
    @Option(help: "Milliseconds a module call may run before it is interrupted (-ERR TIMEOUT); 0 turns it off.",
            transform: within(0...60_000))
    var callTimeout = 250
    @Option(help: "Milliseconds the event loop may go without a turn (a deadlock, a runaway loop in engine code, a module call with --call-timeout 0) before the process writes a crash report and ends, for its supervisor to restart it; 0 turns it off. At least 2000: an idle loop turns once a second.",
            transform: { text in
                let value = try within(0...3_600_000)(text)
                guard value == 0 || value >= 2000 else { throw ValidationError("must be 0 or at least 2000") }
                return value
            })
    var stallTimeout = 5000
    @Option(help: "Milliseconds a reload's load (copy, dlopen, constructors, hotswap_describe) may take on its worker thread before the reload is refused.",
            transform: within(100...600_000))
    var loadTimeout = 10_000
    @Option(help: "Milliseconds a module may take to load in a probe process (its constructors and hotswap_describe) before RELOAD refuses it; the server maps only modules that passed. 0 maps modules without a probe. Below --load-timeout (default: 5000, or half of --load-timeout when that is less).",
            transform: within(0...600_000))
    var probeTimeout: Int?
    /// `--probe-timeout`, or its default: 5000 ms, within half of
    /// `--load-timeout` (so a short load timeout from before the probe
    /// existed still starts).
    var effectiveProbeTimeout: Int { probeTimeout ?? min(5000, loadTimeout / 2) }
    @Option(help: "Bytes a module file may have; a larger one is refused before anything is copied.",
            transform: within((1 << 20)...(64 << 30)))
    var maxModuleBytes = 512 << 20
    @Option(help: "Contained faults of one module version, within --fault-window, that roll it back.",
            transform: within(1...1_000_000))
    var maxFaults = 3
    @Option(help: "Seconds over which --max-faults are counted.", transform: within(1...86_400))
    var faultWindow = 60

    // Admin port
    @Option(help: "Admin connections at once; a new one takes the place of the stalest.", transform: within(1...1024))
    var maxAdminConnections = 16
    @Option(help: "Seconds an admin connection may take to authenticate (or send a first command).",
            transform: within(1...3600))
    var adminAuthTimeout = 10
    @Option(help: "Seconds an authenticated admin connection may stay silent.", transform: within(1...86_400))
    var adminIdleTimeout = 300
    @Option(help: "Wrong admin tokens before the connection is closed.", transform: within(1...100))
    var maxFailedAuths = 3
    @Option(help: "Wrong admin tokens from one IP address within a minute, across its connections, after which its AUTH attempts are refused unchecked until the minute is over.",
            transform: within(1...1_000_000))
    var maxFailedAuthsPerIp = 20
    @Option(help: "Admin lines that may wait behind a running reload.", transform: within(1...10_000))
    var maxAdminBacklog = 64

    // Player authentication (Auth/)
    @Flag(help: "Every player logs in with a secret: guests (a login without one) are refused with SECRET_REQUIRED. Needs a module that exports hotswap_auth.")
    var requireSecret = false
    @Option(help: "A studio login service's key: players log in only with a JSON Web Token it signed (sub is the player, exp is enforced). A PEM P-256 public key means ES256; any other file is an HS256 secret of at least 32 bytes. Needs a module that exports hotswap_auth.")
    var authJwtKey: String?
    @Option(help: "With --auth-jwt-key: a token's aud claim (a string or an array) must name this, or it is refused.")
    var authJwtAudience: String?
    @Option(help: "With --auth-jwt-key: a token's iss claim must be this, or it is refused.")
    var authJwtIssuer: String?
    @Option(help: "Failed player logins from one IP address within a minute, after which its logins are refused unchecked (THROTTLED) until the minute is over (loopback exempt unless --no-exempt-loopback).",
            transform: within(1...1_000_000))
    var maxFailedLoginsPerIp = 20
    @Option(help: "Failed logins to one player within a minute, from anywhere, after which that player's logins are refused unchecked until the minute is over: a slow guesser spread over many addresses gets 10 guesses a minute.",
            transform: within(1...1_000_000))
    var maxFailedLoginsPerPlayer = 10
    @Option(help: "Logins and SECRETs from one IP address within a minute that cost a check (a secret's hash, a token's signature), failed or not; more get THROTTLED unchecked (loopback exempt unless --no-exempt-loopback). Besides, one address has at most 4 checks waiting at once (more get BUSY).",
            transform: within(1...1_000_000))
    var maxLoginChecksPerIp = 60
    @Option(help: "New players one IP address may create, or guests' names it may claim with a secret, within a minute; more get THROTTLED (loopback exempt unless --no-exempt-loopback). 0 turns the limit off.",
            transform: within(0...1_000_000))
    var newPlayersPerMinute = 10
    @Option(help: "Forget the records of players who have not logged in for this many days (each one audited as EXPIRE, as FORGET would); 0 keeps them forever. A record from before gets a full period from the first time this engine sees it.",
            transform: within(0...36_500))
    var playerTtlDays = 0
    @Option(help: "The cost of new secrets' scrypt hash, as log2 of N (r = 8, p = 1): 14 takes 16 MiB and about 30 ms of a core, on a worker thread (2 at once: about 40 logins a second with secrets on 2 cores); each step up doubles both. Stored hashes keep the cost they were made with.",
            transform: within(10...17))
    var secretCost = 14

    // Metrics port (--metrics-port)
    @Option(help: "HTTP connections to the metrics port at once; more are answered 503 and closed.",
            transform: within(1...1024))
    var maxMetricsConnections = 8
    @Option(help: "Bytes of one HTTP request head on the metrics port; more is answered 400 and closed.",
            transform: within(256...65_536))
    var maxMetricsRequestBytes = 8192
    @Option(help: "Seconds a metrics client may take to send a whole request head once it started one (slow clients are answered 408 and closed).",
            transform: within(1...300))
    var metricsHeaderTimeout = 5
    @Option(help: "Seconds a kept-alive metrics connection may stay idle between requests.", transform: within(1...3600))
    var metricsIdleTimeout = 60
    @Option(help: "Time one module call in every N for hotswap_request_duration_seconds (1: every call, ~40 ns each; see BENCHMARKS.md 'Metrics').",
            transform: within(1...1_000_000))
    var metricsSampleEvery = 64

    // Agones (with AGONES_SDK_HTTP_PORT only)
    @Option(help: "Milliseconds between two health pings to the Agones SDK sidecar (POST /health, from the event loop, so a frozen loop goes Unhealthy); keep it under the GameServer's health periodSeconds. Only with AGONES_SDK_HTTP_PORT.",
            transform: within(50...60_000))
    var agonesHealthInterval = 2000

    // Engine upgrades
    @Option(help: "Milliseconds a candidate engine may take to answer --check-upgrade, and then the final database flush may take, before UPGRADE is refused.",
            transform: within(100...600_000))
    var upgradeCheckTimeout = 5000
    @Option(help: "Milliseconds an engine resumed by UPGRADE may take to restore before it hands everything back to the previous engine.",
            transform: within(Limits.upgradeRestoreTimeoutRange))
    var upgradeRestoreTimeout = Limits.defaultUpgradeRestoreTimeout
    /// Also read from the raw arguments before they are parsed (the restore
    /// guard is armed first thing: `Resume.restoreTimeout(in:)`, which must
    /// not parse every limit for it: that costs milliseconds in the hold).
    static let upgradeRestoreTimeoutRange = 100...600_000
    static let defaultUpgradeRestoreTimeout = 10_000

    init() {}

    /// Limits that bound each other.
    func validate() throws {
        if let probeTimeout, probeTimeout >= loadTimeout {
            throw ValidationError("--probe-timeout (\(probeTimeout)) must be below --load-timeout (\(loadTimeout))")
        }
        // A RESUME writes the whole backlog at once: one larger than what a
        // connection may have queued would cut the client off every time.
        if resumeGrace > 0, resumeBacklogBytes + 4096 > maxOutputBytes {
            throw ValidationError("--resume-backlog-bytes (\(resumeBacklogBytes)) must leave 4096 bytes below --max-output-bytes (\(maxOutputBytes)): a RESUME queues the whole backlog at once")
        }
    }

    /// Every limit at its default.
    static var defaults: Limits {
        // Cannot fail: no arguments, and defaults are within their bounds.
        try! Limits.parse([])
    }
}

/// A flag's parser that refuses values outside `range`.
func within(_ range: ClosedRange<Int>) -> @Sendable (String) throws -> Int {
    { text in
        guard let value = Int(text) else { throw ValidationError("'\(text)' is not a whole number") }
        guard range.contains(value) else { throw ValidationError("must be within \(range.lowerBound)...\(range.upperBound)") }
        return value
    }
}
