import CLibUV
import Glibc
import Protocol

/// Drives many connections from one libuv loop. Each connection's writes
/// are batched per loop turn; replies are framed with the server's own
/// `LineFramer`.
///
/// Open loop (`rate` set): an `ArrivalSchedule` says when each request is
/// due and which client sends it; a `Pacer` wakes the loop at that moment,
/// and latency counts from the due time, so a slow server cannot hide its
/// stalls by slowing the client down (no coordinated omission). The tool's
/// own lateness is measured apart (`sendLag`).
public final class LoadDriver {
    let config: LoadConfig
    let loop: UnsafeMutablePointer<uv_loop_t>
    var clients: [LoadClient] = []
    /// The clients that send requests (on Redis chat, half are subscribers).
    private var publishers: [LoadClient] = []
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
    /// Clients done with set-up; the run starts when all are.
    var readyCount = 0
    /// Clients that broke or were refused; the run ends when one does.
    var failedCount = 0
    private var schedule: ArrivalSchedule?
    /// The next open-loop request: its due time (`uv_hrtime`) and sender.
    private var nextDue: (time: UInt64, client: Int)?
    private var pacer: Pacer?
    private var cpuAtStart = (tool: 0.0, server: 0.0)
    /// Requests due from here on are measured (`startedAt` + warm-up).
    private var measureFrom: UInt64 = 0
    private var measuring = false

    enum Phase { case connecting, running, draining, done }

    public init(config: LoadConfig) {
        self.config = config
        loop = .allocate(capacity: 1)
        uv_loop_init(loop)
    }

    /// Runs the whole test and returns what it measured.
    public func run() -> LoadReport {
        uv_ip4_addr(config.host, Int32(config.port), &address)
        for index in 0..<config.connections { clients.append(LoadClient(driver: self, index: index)) }
        connectMore()
        publishers = clients.filter(\.isPublisher)
        let check = UnsafeMutablePointer<uv_check_t>.allocate(capacity: 1)
        uv_check_init(loop, check)
        check.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_check_start(check) { handle in LoadDriver.from(handle!.pointee.data).flush() }
        if config.rate > 0 {
            pacer = Pacer(loop: loop) { [unowned self] in sendDue() }
        }
        let ticker = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, ticker)
        ticker.pointee.data = check.pointee.data
        uv_timer_start(ticker, { timer in LoadDriver.from(timer!.pointee.data).tick() }, 1, 1)
        uv_run(loop, UV_RUN_DEFAULT)
        return report
    }

    private var address = sockaddr_in()
    private var connectsStarted = 0
    private var connectsFinished = 0
    /// Connects in flight at most: 10,000 at once overflow the server's
    /// listen backlog, and the dropped SYNs come back only after the
    /// kernel's 1 s and 3 s retransmission timers.
    private static let connectWindow = 256

    private var connecting = false

    private func connectMore() {
        // A connect that fails at once finishes inside this loop: no recursion.
        // After the end, the handles are closing: closing one cancels its
        // connect, whose callback lands here and must not start another.
        guard !connecting, phase != .done else { return }
        connecting = true
        while connectsStarted < clients.count && connectsStarted - connectsFinished < LoadDriver.connectWindow {
            connectsStarted += 1
            clients[connectsStarted - 1].connect(&address)
        }
        connecting = false
    }

    /// A client's connect ended (either way): start the next.
    func connectFinished() {
        connectsFinished += 1
        connectMore()
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
    private var lastDrainCheck: UInt64 = 0

    /// Every millisecond: start when all are set up, print progress, stop,
    /// drain, finish. (Open-loop sends are the pacer's, to the microsecond.)
    func tick() {
        switch phase {
        case .connecting:
            if connectStarted == 0 { connectStarted = now }
            // Ten seconds, and one more per thousand connections to set up.
            let patience = UInt64(10 + clients.count / 1000) * 1_000_000_000
            if readyCount == clients.count {
                start()
            } else if failedCount > 0 || now - connectStarted > patience {
                finish()  // counts the failed connections
            }
        case .running:
            let t = elapsed
            if !measuring && now >= measureFrom { startMeasuring() }
            if let at = config.reloadAt, reloadSentAt == nil, t >= at { startReload() }
            if let at = config.upgradeAt, upgradeStartedAt == nil, t >= at { startUpgrades() }
            if now - lastProgress >= 1_000_000_000 { progress() }
            // Every upgrade asked for is part of the run: it lasts until the
            // last one is answered (a minute at most past --duration).
            let upgradesPending = config.upgradeAt != nil && upgradeDoneAt == nil
                && !(upgradeClient?.failed ?? false) && t < config.warmup + config.seconds + 60
            if (t >= config.warmup + config.seconds || requestBudgetSpent) && !upgradesPending {
                phase = .draining
                pacer?.disarm()
                drainStarted = now
                deliveriesExpected = expectedDeliveries()  // senders have stopped
                report.seconds = Double(now - measureFrom) / 1e9
                report.toolCPUSeconds = CPUTime.ofThisProcess() - cpuAtStart.tool
                if let pid = config.serverPID { report.serverCPUSeconds = CPUTime.ofProcess(pid) - cpuAtStart.server }
            }
        case .draining:
            // Done when every request is answered, every chat message has
            // reached every receiver, and a RELOAD sent has its reply
            // (looked at every 10 ms: it walks every client).
            guard now - lastDrainCheck >= 10_000_000 else { return }
            lastDrainCheck = now
            let outstanding = clients.reduce(0) { $0 + $1.ledger.outstanding }
            let settled = outstanding == 0 && tracker.delivered >= deliveriesExpected
                && (reloadSentAt == nil || report.reloadReply != nil)
                && (upgradeStartedAt == nil || upgradeDoneAt != nil)
            if settled || now - drainStarted > 3_000_000_000 { finish() }
        case .done:
            break
        }
    }

    private func start() {
        phase = .running
        startedAt = now
        lastProgress = startedAt
        measureFrom = startedAt + UInt64(config.warmup * 1e9)
        if config.warmup == 0 { startMeasuring() }
        if config.rate > 0, !publishers.isEmpty {
            var arrivals = ArrivalSchedule(kind: config.arrivals, rate: config.rate, clients: publishers.count,
                                           seed: config.seed)
            let first = arrivals.next()
            schedule = arrivals
            nextDue = (startedAt + first.offset, first.client)
            pacer?.arm(at: startedAt + first.offset)
        } else {
            for client in clients { client.begin() }
        }
    }

    private func startMeasuring() {
        measuring = true
        cpuAtStart = (CPUTime.ofThisProcess(), config.serverPID.map(CPUTime.ofProcess) ?? 0)
    }

    /// Open loop: sends every request whose time has come, then sets the
    /// pacer for the next. A tool that fell behind catches up at once (the
    /// requests still count from their due times), in slices of 10,000 so
    /// replies are read in between.
    private func sendDue() {
        guard phase == .running, var next = nextDue, schedule != nil else { return }
        let current = now
        var sent = 0
        while next.time <= current && sent < 10_000 && !requestBudgetSpent {
            if next.time >= measureFrom { report.sendLag.record(microseconds: (current - next.time) / 1000) }
            publishers[next.client].request(scheduled: next.time)
            let arrival = schedule!.next()
            next = (startedAt + arrival.offset, arrival.client)
            sent += 1
        }
        nextDue = next
        if !requestBudgetSpent { pacer?.arm(at: sent == 10_000 ? current : next.time) }
    }

    private func progress() {
        let interval = Double(now - lastProgress) / 1e9
        lastProgress = now
        if !config.quiet {
            print("t=\(Int(elapsed.rounded()))s rate=\(Int(Double(windowCount) / interval))/s "
                  + "p50=\(window.percentile(50))us p99=\(window.percentile(99))us")
            fflush(nil)  // stdout to a pipe is block-buffered: progress must show as it happens
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
            if client.failed && !client.refused { report.droppedConnections += 1 }
        }
        if config.scenario == .chat {
            report.lost += tracker.lost(sent: expectedStreams())
            report.duplicated = tracker.duplicates
            report.outOfOrder = tracker.outOfOrder
        }
        // Handles are closed, not freed: the process ends right after.
        if report.seconds == 0 { report.seconds = max(Double(now - measureFrom) / 1e9, 0) }
        pacer?.close()
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

    func clientReady() {
        readyCount += 1
    }

    func recordSetupRefusal(_ code: String) {
        report.setupRefusals[code, default: 0] += 1
    }

    func recordReply(sentAt: UInt64, errorCode: String?) {
        let now = now
        if lastReplyAt != 0 && phase == .running {
            let gap = (now - lastReplyAt) / 1000
            if let started = upgradeStartedAt, now >= started, now <= (upgradeDoneAt.map { $0 + 100_000_000 } ?? .max) {
                report.upgradeGapMaxMicros = max(report.upgradeGapMaxMicros, gap)
            } else if sentAt >= measureFrom {
                report.steadyGapMaxMicros = max(report.steadyGapMaxMicros, gap)
            }
        }
        lastReplyAt = now
        let micros = (now - sentAt) / 1000
        window.record(microseconds: micros)
        windowCount += 1
        if config.scenario == .cycles, errorCode == "NOT_RIDING" || errorCode == "ROUND_ON" {
            report.raceRefusals += 1
        } else if let errorCode {
            report.errors += 1
            report.errorsByCode[errorCode, default: 0] += 1
        }
        guard sentAt >= measureFrom else { return }  // warm-up
        report.latency.record(microseconds: micros)
        report.measuredReplies += 1
        noteWindow(micros)
    }

    func recordDelivery(sender: Int, receiver: Int, sequence: UInt64, sentAt: UInt64) {
        let micros = (now > sentAt ? now - sentAt : 0) / 1000
        tracker.record(sender: sender * 100_000 + receiver, sequence: sequence)
        guard sentAt >= measureFrom else { return }  // warm-up
        report.deliveries += 1
        report.deliveryLatency.record(microseconds: micros)
        noteWindow(micros)
    }

    private func noteWindow(_ micros: UInt64) {
        guard let sent = reloadSentAt else { return }
        let end = reloadDoneAt.map { $0 + 100_000_000 } ?? UInt64.max
        if now >= sent && now <= end { report.reloadWindowMaxMicros = max(report.reloadWindowMaxMicros, micros) }
    }

    /// Cycles: a bot's `>TICK` came `nanoseconds` after its previous one
    /// in the round (nil: the round's first).
    func recordTickGap(_ nanoseconds: UInt64?) {
        guard phase == .running, measuring else { return }
        report.ticks += 1
        guard let nanoseconds else { return }
        let expected = 1_000_000_000 / UInt64(max(config.tickRate, 1))
        report.tickGap.record(microseconds: nanoseconds / 1000)
        report.tickLag.record(microseconds: nanoseconds > expected ? (nanoseconds - expected) / 1000 : 0)
    }

    func recordRoundEnd() {
        if phase == .running && measuring { report.rounds += 1 }
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
