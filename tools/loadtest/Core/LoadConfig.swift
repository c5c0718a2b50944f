/// What to run, as the command line said.
public struct LoadConfig: Sendable {
    public enum Scenario: String, Sendable, CaseIterable { case ping, chat, play, cycles }
    public enum Target: String, Sendable, CaseIterable { case hotswap, redis }

    public var scenario = Scenario.ping
    public var target = Target.hotswap
    public var host = "127.0.0.1"
    public var port = 7777
    /// Connections for ping and play (chat has rooms x members).
    public var clients = 50
    public var seconds = 10.0
    /// Seconds of load before `seconds` of measuring: requests are sent as
    /// scheduled, their latencies not recorded (10,000 fresh connections
    /// answer slower for about half a second, docs/BENCHMARKS.md).
    public var warmup = 0.0
    /// Stop after this many requests in all (instead of after `seconds`).
    public var requests: Int?
    public var pipeline = 1
    /// Total requests per second across all clients; 0 = closed loop.
    public var rate = 0.0
    /// How open-loop requests are spread in time (see `ArrivalSchedule`).
    public var arrivals = ArrivalSchedule.Kind.poisson
    public var seed: UInt64 = 1
    /// Chat: rooms of `members` each. Play: players per room (`clients` in
    /// rooms of `members`, the last one smaller).
    public var rooms = 10
    public var members = 5
    /// Play: how each player walks (see `PlayWalk`).
    public var walk = PlayWalk.Pattern.square
    /// Cycles: the rooms' tick rate, the interval `>TICK` lines should keep.
    public var tickRate = 10
    public var reloadAt: Double?
    public var adminPort = 7778
    public var adminToken: String?
    public var reloadPath: String?
    /// Send UPGRADE on the admin port after this many seconds, `upgrades`
    /// times in a row (each once the previous one was answered, on the
    /// same admin connection, which the new engine takes over too).
    public var upgradeAt: Double?
    public var upgradePath: String?
    public var upgrades = 1
    /// The server's process id: its CPU over the measured phase is reported.
    public var serverPID: Int32?
    public var quiet = false

    public init() {}

    /// Connections the run opens.
    public var connections: Int {
        switch scenario {
        case .chat: rooms * members * (target == .redis ? 2 : 1)
        case .cycles: rooms * members
        default: clients
        }
    }
}

/// Everything a run measured.
public struct LoadReport: Sendable {
    /// The measured phase (after the warm-up).
    public var seconds = 0.0
    public var sent = 0
    public var replies = 0
    /// Replies to requests due in the measured phase (the latencies recorded).
    public var measuredReplies = 0
    public var errors = 0
    /// Error replies by code (`-ERR ROOM_FULL ...` counts under ROOM_FULL).
    public var errorsByCode: [String: Int] = [:]
    public var deliveries = 0
    public var lost = 0
    public var duplicated = 0
    public var outOfOrder = 0
    public var unexpectedReplies = 0
    public var droppedConnections = 0
    /// LOGIN or JOIN refused during set-up, by code (the run stops: it
    /// cannot have the shape asked for, e.g. rooms over --max-room-members).
    public var setupRefusals: [String: Int] = [:]
    public var latency = LatencyStats()
    public var deliveryLatency = LatencyStats()
    /// Open loop: how late the tool queued each request after its due time.
    /// Large values mean the tool, not the server, was behind.
    public var sendLag = LatencyStats()
    /// CPU seconds (user + system) over the measured phase.
    public var toolCPUSeconds = 0.0
    public var serverCPUSeconds: Double?
    public var reloadReply: String?
    public var reloadWindowMaxMicros: UInt64 = 0
    /// Every UPGRADE reply, in order.
    public var upgradeReplies: [String] = []
    /// The longest time no reply at all arrived, from the first UPGRADE
    /// sent to 100 ms after the last was answered: how long the game was
    /// unavailable, seen from the clients.
    public var upgradeGapMaxMicros: UInt64 = 0
    /// The same outside upgrades, for comparison.
    public var steadyGapMaxMicros: UInt64 = 0
    /// Cycles: `>TICK` lines received in the measured phase, the time
    /// between a bot's consecutive ones in a round, and how much of it was
    /// beyond the expected interval (1 s / tick rate).
    public var ticks = 0
    public var tickGap = LatencyStats()
    public var tickLag = LatencyStats()
    /// Cycles: rounds that ended (`>WIN`/`>DRAW`, counted once per room).
    public var rounds = 0
    /// Cycles: refusals a bot cannot avoid, not counted as errors: a TURN
    /// that arrives after its cycle crashed (NOT_RIDING), a READY after the
    /// next round began (ROUND_ON).
    public var raceRefusals = 0

    /// True when nothing was lost, duplicated, reordered, refused or dropped.
    public var clean: Bool {
        lost == 0 && duplicated == 0 && outOfOrder == 0 && unexpectedReplies == 0 && droppedConnections == 0
            && errors == 0 && setupRefusals.isEmpty
    }
}
