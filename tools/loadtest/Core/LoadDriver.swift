import CLibUV
import Glibc
import Protocol

/// What to run, as the command line said.
public struct LoadConfig: Sendable {
    public enum Scenario: String, Sendable, CaseIterable { case ping, chat, play }
    public enum Target: String, Sendable, CaseIterable { case hotswap, redis }

    public var scenario = Scenario.ping
    public var target = Target.hotswap
    public var host = "127.0.0.1"
    public var port = 7777
    public var clients = 50
    public var seconds = 10.0
    /// Stop after this many requests in all (instead of after `seconds`).
    public var requests: Int?
    public var pipeline = 1
    /// Total requests per second across all clients; 0 = closed loop.
    public var rate = 0.0
    public var rooms = 10
    public var members = 5
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
    public var quiet = false

    public init() {}
}

/// Everything a run measured.
public struct LoadReport: Sendable {
    public var seconds = 0.0
    public var sent = 0
    public var replies = 0
    public var errors = 0
    public var deliveries = 0
    public var lost = 0
    public var duplicated = 0
    public var outOfOrder = 0
    public var unexpectedReplies = 0
    public var droppedConnections = 0
    public var latency = LatencyStats()
    public var deliveryLatency = LatencyStats()
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

    /// True when nothing was lost, duplicated, reordered, refused or dropped.
    public var clean: Bool {
        lost == 0 && duplicated == 0 && outOfOrder == 0 && unexpectedReplies == 0 && droppedConnections == 0
            && errors == 0
    }
}

/// Drives many connections from one libuv loop. Each connection's writes
/// are batched per loop turn; replies are framed with the server's own
/// `LineFramer`. With `rate` set, requests are scheduled at fixed times and
/// latency counts from the scheduled time, so a slow server cannot hide its
/// stalls by slowing the client down (no coordinated omission).
public final class LoadDriver {
    let config: LoadConfig
    let loop: UnsafeMutablePointer<uv_loop_t>
    var clients: [LoadClient] = []
    var report = LoadReport()
    var tracker = SequenceTracker()
    var window = LatencyStats()
    var windowCount = 0
    var startedAt: UInt64 = 0
    var phase = Phase.connecting
    var dirty: [LoadClient] = []
    let readBuffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
    var reloadSentAt: UInt64?
    var reloadDoneAt: UInt64?
    var admin: LoadClient?
    var upgradeClient: LoadClient?
    var upgradeStartedAt: UInt64?
    var upgradeDoneAt: UInt64?
    var lastReplyAt: UInt64 = 0

    enum Phase { case connecting, running, draining, done }

    public init(config: LoadConfig) {
        self.config = config
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
    }

    /// Runs the whole test and returns what it measured.
    public func run() -> LoadReport {
        var address = sockaddr_in()
        uv_ip4_addr(config.host, Int32(config.port), &address)
        let connections = config.scenario == .chat
            ? config.rooms * config.members * (config.target == .redis ? 2 : 1) : config.clients
        for index in 0..<connections {
            let client = LoadClient(driver: self, index: index)
            clients.append(client)
            client.connect(&address)
        }
        let check = UnsafeMutablePointer<uv_check_t>.allocate(capacity: 1)
        uv_check_init(loop, check)
        check.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_check_start(check) { handle in LoadDriver.from(handle!.pointee.data).flush() }
        let ticker = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, ticker)
        ticker.pointee.data = check.pointee.data
        uv_timer_start(ticker, { timer in LoadDriver.from(timer!.pointee.data).tick() }, 1, 1)
        uv_run(loop, UV_RUN_DEFAULT)
        return report
    }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> LoadDriver {
        Unmanaged<LoadDriver>.fromOpaque(pointer!).takeUnretainedValue()
    }

    var now: UInt64 { uv_hrtime() }

    /// `--requests` reached: no new requests, only replies to wait for.
    var requestBudgetSpent: Bool {
        guard let limit = config.requests else { return false }
        return sentSoFar >= limit
    }
    var sentSoFar = 0
    var elapsed: Double { Double(now - startedAt) / 1e9 }

    // MARK: Phases

    private var lastProgress: UInt64 = 0
    private var connectStarted: UInt64 = 0
    private var deliveriesExpected = 0
    private var drainStarted: UInt64 = 0

    /// Every millisecond: start when all are set up, pace open-loop
    /// senders, print progress, stop, drain, finish.
    func tick() {
        switch phase {
        case .connecting:
            if connectStarted == 0 { connectStarted = now }
            if clients.allSatisfy(\.ready) {
                phase = .running
                startedAt = now
                lastProgress = startedAt
                for client in clients { client.begin() }
            } else if clients.contains(where: \.failed) || now - connectStarted > 10_000_000_000 {
                finish()  // counts the failed connections
            }
        case .running:
            let t = elapsed
            if config.rate > 0 { for client in clients { client.pace(at: t) } }
            if let at = config.reloadAt, reloadSentAt == nil, t >= at { startReload() }
            if let at = config.upgradeAt, upgradeStartedAt == nil, t >= at { startUpgrades() }
            if now - lastProgress >= 1_000_000_000 { progress() }
            // Every upgrade asked for is part of the run: it lasts until the
            // last one is answered (a minute at most past --duration).
            let upgradesPending = config.upgradeAt != nil && upgradeDoneAt == nil
                && !(upgradeClient?.failed ?? false) && t < config.seconds + 60
            if (t >= config.seconds || requestBudgetSpent) && !upgradesPending {
                phase = .draining
                drainStarted = now
                deliveriesExpected = expectedDeliveries()  // senders have stopped
                report.seconds = t
            }
        case .draining:
            // Done when every request is answered, every chat message has
            // reached every receiver, and a RELOAD sent has its reply.
            let outstanding = clients.reduce(0) { $0 + $1.ledger.outstanding }
            let settled = outstanding == 0 && tracker.delivered >= deliveriesExpected
                && (reloadSentAt == nil || report.reloadReply != nil)
                && (upgradeStartedAt == nil || upgradeDoneAt != nil)
            if settled || now - drainStarted > 3_000_000_000 { finish() }
        case .done:
            break
        }
    }

    private func progress() {
        let interval = Double(now - lastProgress) / 1e9
        lastProgress = now
        if !config.quiet {
            print("t=\(Int(elapsed.rounded()))s rate=\(Int(Double(windowCount) / interval))/s "
                  + "p50=\(window.percentile(50))us p99=\(window.percentile(99))us")
        }
        window.reset()
        windowCount = 0
    }

    private func finish() {
        phase = .done
        for client in clients {
            report.sent += client.ledger.sent
            report.replies += client.ledger.replies
            report.unexpectedReplies += client.ledger.unexpected
            report.lost += client.ledger.lost
            if client.failed { report.droppedConnections += 1 }
        }
        if config.scenario == .chat {
            report.lost += tracker.lost(sent: expectedStreams())
            report.duplicated = tracker.duplicates
            report.outOfOrder = tracker.outOfOrder
        }
        // Handles are closed, not freed: the process ends right after.
        if report.seconds == 0 { report.seconds = elapsed }
        uv_walk(loop, { handle, _ in
            if uv_is_closing(handle) == 0 { uv_close(handle, nil) }
        }, nil)
    }

    /// Chat: every message should reach every other member of its room (on
    /// Redis the sender's own subscriber too): one stream per pair, keyed
    /// as in `recordDelivery`, with how many messages it should carry.
    private func expectedStreams() -> [Int: UInt64] {
        var sent: [Int: UInt64] = [:]
        guard config.scenario == .chat else { return sent }
        for publisher in clients where publisher.isPublisher {
            for receiver in clients where receiver.isSubscriber && receiver.room == publisher.room {
                if config.target == .hotswap && receiver.member == publisher.member { continue }
                sent[publisher.member * 100_000 + receiver.member] = publisher.sequence
            }
        }
        return sent
    }

    private func expectedDeliveries() -> Int {
        expectedStreams().values.reduce(0) { $0 + Int($1) }
    }

    // MARK: Events from clients

    func recordReply(sentAt: UInt64, error: Bool) {
        let now = now
        if lastReplyAt != 0 && phase == .running {
            let gap = (now - lastReplyAt) / 1000
            if let started = upgradeStartedAt, now >= started, now <= (upgradeDoneAt.map { $0 + 100_000_000 } ?? .max) {
                report.upgradeGapMaxMicros = max(report.upgradeGapMaxMicros, gap)
            } else {
                report.steadyGapMaxMicros = max(report.steadyGapMaxMicros, gap)
            }
        }
        lastReplyAt = now
        let micros = (now - sentAt) / 1000
        report.latency.record(microseconds: micros)
        window.record(microseconds: micros)
        windowCount += 1
        if error { report.errors += 1 }
        noteWindow(micros)
    }

    func recordDelivery(sender: Int, receiver: Int, sequence: UInt64, sentAt: UInt64) {
        let micros = (now > sentAt ? now - sentAt : 0) / 1000
        report.deliveries += 1
        report.deliveryLatency.record(microseconds: micros)
        tracker.record(sender: sender * 100_000 + receiver, sequence: sequence)
        noteWindow(micros)
    }

    private func noteWindow(_ micros: UInt64) {
        guard let sent = reloadSentAt else { return }
        let end = reloadDoneAt.map { $0 + 100_000_000 } ?? UInt64.max
        if now >= sent && now <= end { report.reloadWindowMaxMicros = max(report.reloadWindowMaxMicros, micros) }
    }

    func markDirty(_ client: LoadClient) { dirty.append(client) }

    private func flush() {
        for client in dirty { client.flush() }
        dirty.removeAll(keepingCapacity: true)
    }

    // MARK: Reload

    private func startReload() {
        reloadSentAt = now
        var address = sockaddr_in()
        uv_ip4_addr(config.host, Int32(config.adminPort), &address)
        let client = LoadClient(driver: self, index: -1)
        client.adminLines = (config.adminToken.map { ["AUTH \($0)"] } ?? [])
            + [config.reloadPath.map { "RELOAD \($0)" } ?? "RELOAD"]
        admin = client
        client.connect(&address)
    }

    // MARK: Upgrade

    private func startUpgrades() {
        upgradeStartedAt = now
        var address = sockaddr_in()
        uv_ip4_addr(config.host, Int32(config.adminPort), &address)
        let client = LoadClient(driver: self, index: -2)
        client.adminLines = (config.adminToken.map { ["AUTH \($0)"] } ?? []) + [upgradeLine]
        upgradeClient = client
        client.connect(&address)
    }

    private var upgradeLine: String { config.upgradePath.map { "UPGRADE \($0)" } ?? "UPGRADE" }
    private var upgradeRepliesSeen = 0

    /// Replies on the upgrade connection: AUTH's, then one per UPGRADE;
    /// the next UPGRADE goes out once the previous one is answered.
    func upgradeReply(_ line: String) {
        upgradeRepliesSeen += 1
        if config.adminToken != nil && upgradeRepliesSeen == 1 { return }
        report.upgradeReplies.append(line)
        if report.upgradeReplies.count < config.upgrades && line.hasPrefix("+OK") {
            upgradeClient?.send(upgradeLine)
        } else {
            upgradeDoneAt = now
        }
    }

    /// Replies on the admin connection: AUTH's (if a token was given),
    /// then RELOAD's, which is the one reported.
    func adminReply(_ line: String) {
        adminRepliesSeen += 1
        guard adminRepliesSeen == (config.adminToken == nil ? 1 : 2) else { return }
        reloadDoneAt = now
        report.reloadReply = line
    }
    private var adminRepliesSeen = 0
}
