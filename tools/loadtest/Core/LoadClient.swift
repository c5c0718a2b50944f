import CLibUV
import Glibc
import Protocol
import UVKit

/// One connection of the load test: its role in the scenario, its request
/// ledger, and its bytes. libuv handles are heap-allocated and owned here;
/// the run ends by closing every handle, then the process exits.
final class LoadClient {
    unowned let driver: LoadDriver
    let index: Int
    let tcp = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
    let connectRequest = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
    var framer = LineFramer(maxLineLength: 1 << 16)
    var ledger = ReplyLedger()
    /// Output batched per loop turn, as the server does it (UVKit).
    var writer = StreamWriter(context: nil)
    var queued = false
    var ready = false
    /// Its LOGIN or JOIN was refused.
    var refused = false
    /// The connection broke, or its set-up was refused (the driver counts).
    var failed = false {
        didSet { if failed && !oldValue && index >= 0 { driver.failedCount += 1 } }
    }
    var setupRepliesLeft = 0
    /// Chat: the member this connection speaks for, and its next sequence.
    var member = 0
    var isPublisher = true
    var isSubscriber = true
    var sequence: UInt64 = 0
    var step = 0
    /// Play: where this player is on the board (from its JOIN reply).
    var walk = PlayWalk()
    var adminLines: [String]?
    /// Cycles: how this bot reads ticks and steers, and when its last
    /// `>TICK` of the round came (0: none yet).
    var bot: CyclesBot?
    var lastTickAt: UInt64 = 0

    init(driver: LoadDriver, index: Int) {
        self.driver = driver
        self.index = index
        uv_tcp_init(driver.loop, tcp)
        tcp.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        connectRequest.pointee.data = tcp.pointee.data
        writer.context = tcp.pointee.data
        let config = driver.config
        if config.scenario == .chat {
            if config.target == .redis {
                // Redis pub/sub: a subscribed connection cannot publish, so
                // every member has a subscriber and a publisher connection.
                member = index / 2
                isPublisher = index % 2 == 1
                isSubscriber = !isPublisher
            } else {
                member = index
            }
        } else if config.scenario == .play {
            member = index
        } else if config.scenario == .cycles {
            member = index
            bot = CyclesBot(name: "lt\(index)", seed: config.seed &+ UInt64(index))
        }
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { tcp.stream }

    /// Chat and play: clients fill rooms of `members` in index order.
    var room: Int { member / max(driver.config.members, 1) }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> LoadClient {
        Unmanaged<LoadClient>.fromOpaque(pointer!).takeUnretainedValue()
    }

    func connect(_ address: inout sockaddr_in) {
        let rc = withUnsafePointer(to: &address) {
            uv_tcp_connect(connectRequest, tcp, UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self)) { request, status in
                let client = LoadClient.from(request!.pointee.data)
                if client.index >= 0 { client.driver.connectFinished() }
                if status < 0 {
                    client.failed = true
                    return
                }
                uv_tcp_nodelay(client.tcp, 1)
                uv_read_start(client.stream, { handle, _, buffer in
                    let client = LoadClient.from(handle!.pointee.data)
                    buffer!.pointee = uv_buf_init(client.driver.readBuffer.assumingMemoryBound(to: CChar.self), 1 << 16)
                }, { stream, nread, _ in
                    let client = LoadClient.from(stream!.pointee.data)
                    if nread > 0 {
                        client.received(UnsafeRawBufferPointer(start: client.driver.readBuffer, count: nread))
                    } else if nread < 0 {
                        client.closedByPeer()
                    }
                })
                client.setUp()
            }
        }
        if rc < 0 {
            failed = true
            if index >= 0 { driver.connectFinished() }
        }
    }

    /// Scenario set-up before the measured phase (login, join, subscribe).
    func setUp() {
        if let lines = adminLines {
            for line in lines { send(line) }
            return
        }
        let config = driver.config
        switch (config.scenario, config.target) {
        case (.chat, .hotswap):
            send("LOGIN lt\(index)")
            send("JOIN ltroom\(room)")
            setupRepliesLeft = 2
        case (.play, _):
            send("LOGIN lt\(index)")
            send("JOIN ltplay\(room)")
            setupRepliesLeft = 2
        case (.cycles, _):
            send("LOGIN lt\(index)")
            send("JOIN ltcycles\(room)")
            setupRepliesLeft = 2
        case (.chat, .redis) where isSubscriber:
            send("SUBSCRIBE ltroom\(room)")
            setupRepliesLeft = 1
        default:
            break
        }
        if setupRepliesLeft == 0 { becomeReady() }
    }

    private func becomeReady() {
        ready = true
        if index >= 0 { driver.clientReady() }
    }

    /// The measured phase starts: fill the pipeline (closed loop).
    func begin() {
        if driver.config.scenario == .cycles {
            // Bots answer the game's events: READY now, TURNs on ticks.
            request("READY")
            return
        }
        guard driver.config.rate == 0, isPublisher else { return }
        for _ in 0..<driver.config.pipeline where !driver.requestBudgetSpent { request(scheduled: driver.now) }
    }

    /// One request of the scenario, timed from `scheduled` (its due time in
    /// the open loop; now in the closed loop).
    func request(scheduled: UInt64) {
        let config = driver.config
        switch config.scenario {
        case .ping:
            send("PING" as StaticString)
        case .play:
            // The play mix: half moves (each heard by the room), a look, a
            // chat line (heard by the room), the member list and the scores.
            // The chat line carries its send time, so each receiver measures
            // the event's latency (with batching on, the wait for the room's
            // tick is in it).
            switch step % 8 {
            case 0, 2, 4, 6: send(walk.next())
            case 1: send("LOOK" as StaticString)
            case 3:
                sequence += 1
                send("SAY LT \(member) \(sequence) \(scheduled)")
            case 5: send("WHO" as StaticString)
            default: send("SCORE" as StaticString)
            }
            step += 1
        case .cycles:
            return  // event-driven (see `cyclesEvent`)
        case .chat:
            sequence += 1
            let payload = "LT \(member) \(sequence) \(scheduled)"
            // Redis inline commands split on spaces unless quoted.
            send(config.target == .redis ? "PUBLISH ltroom\(room) \"\(payload)\"" : "SAY \(payload)")
        }
        ledger.sent(at: scheduled)
        driver.sentSoFar += 1
    }

    func received(_ bytes: UnsafeRawBufferPointer) {
        _ = framer.feed(bytes) { line in
            handle(line)
            return true
        }
    }

    private func handle(_ raw: UnsafeRawBufferPointer) {
        guard let first = raw.first else { return }
        if adminLines != nil {
            if first == UInt8(ascii: ">") { return }  // admin events (>FAULT)
            if index == -2 {
                driver.upgradeReply(String(decoding: raw, as: UTF8.self))
            } else {
                driver.adminReply(String(decoding: raw, as: UTF8.self))
            }
            return
        }
        if bot != nil, first == UInt8(ascii: ">") {
            cyclesEvent(raw)
            return
        }
        // A chat delivery: ours ">SAY ltN LT m s t", Redis's payload line "LT m s t".
        if driver.config.scenario != .ping, first == UInt8(ascii: ">") || driver.config.target == .redis,
            let marker = LoadClient.deliveryStart(raw)
        {
            let fields = String(decoding: UnsafeRawBufferPointer(rebasing: raw[marker...]), as: UTF8.self).split(separator: " ")
            if fields.count == 4, let sender = Int(fields[1]), let sequence = UInt64(fields[2]), let sentAt = UInt64(fields[3]),
               driver.phase != .connecting
            {
                driver.recordDelivery(sender: sender, receiver: member, sequence: sequence, sentAt: sentAt)
            }
            if first != UInt8(ascii: "+") && first != UInt8(ascii: ":") { return }
        }
        let isReply = first == UInt8(ascii: "+") || first == UInt8(ascii: "-") || first == UInt8(ascii: ":")
        guard isReply else { return }  // events, RESP array headers
        if setupRepliesLeft > 0 {
            setupRepliesLeft -= 1
            if first == UInt8(ascii: "-") {
                // A refused LOGIN or JOIN: the run cannot be what was asked.
                driver.recordSetupRefusal(LoadClient.errorCode(raw))
                refused = true
                failed = true
                return
            }
            if driver.config.scenario == .play, let spawn = PlayWalk.spawn(inJoinReply: raw) {
                walk = PlayWalk(x: spawn.x, y: spawn.y, pattern: driver.config.walk)
            }
            if setupRepliesLeft == 0 { becomeReady() }
            return
        }
        if !isPublisher { return }  // a subscriber's confirmations
        guard let sentAt = ledger.reply() else { return }
        driver.recordReply(sentAt: sentAt, errorCode: first == UInt8(ascii: "-") ? LoadClient.errorCode(raw) : nil)
        if driver.phase == .running && driver.config.rate == 0 && !driver.requestBudgetSpent && bot == nil {
            request(scheduled: driver.now)
        }
    }

    /// Cycles: a pushed line. Ticks are timed and may make the bot turn;
    /// the end of a round makes it READY again.
    private func cyclesEvent(_ raw: UnsafeRawBufferPointer) {
        switch CyclesBot.classify(raw) {
        case .tick:
            let now = driver.now
            if lastTickAt != 0 { driver.recordTickGap(now - lastTickAt) } else { driver.recordTickGap(nil) }
            lastTickAt = now
            guard driver.phase == .running, let at = bot!.position(inTick: raw),
                  let turn = bot!.steer(x: at.x, y: at.y, heading: at.heading) else { return }
            request(turn)
        case .round:
            lastTickAt = 0
        case .end:
            lastTickAt = 0
            if member % max(driver.config.members, 1) == 0 { driver.recordRoundEnd() }
            if driver.phase == .running { request("READY") }
        case .other:
            break
        }
    }

    /// A request outside the closed loop's rhythm, timed from now.
    private func request(_ line: StaticString) {
        send(line)
        ledger.sent(at: driver.now)
        driver.sentSoFar += 1
    }

    /// `-ERR ROOM_FULL that room is full` -> ROOM_FULL; Redis's `-WRONGTYPE ...`
    /// -> WRONGTYPE.
    static func errorCode(_ line: UnsafeRawBufferPointer) -> String {
        var words = line.dropFirst().split(separator: 0x20, maxSplits: 2)
        if words.first?.elementsEqual("ERR".utf8) == true && words.count > 1 { words.removeFirst() }
        return words.first.map { String(decoding: $0, as: UTF8.self) } ?? "?"
    }

    private static func deliveryStart(_ line: UnsafeRawBufferPointer) -> Int? {
        guard line.count >= 3 else { return nil }
        for index in 0...(line.count - 3) where line[index] == UInt8(ascii: "L") && line[index + 1] == UInt8(ascii: "T")
            && line[index + 2] == 0x20 && (index == 0 || line[index - 1] == 0x20)
        {
            return index
        }
        return nil
    }

    func closedByPeer() {
        if driver.phase != .done && adminLines == nil { failed = true }
        uv_read_stop(stream)
    }

    // MARK: Writing, batched per loop turn

    func send(_ line: String) {
        var line = line
        line.withUTF8 { writer.append(line: UnsafeRawBufferPointer($0)) }
        queue()
    }

    func send(_ line: StaticString) {
        writer.append(line: UnsafeRawBufferPointer(start: line.utf8Start, count: line.utf8CodeUnitCount))
        queue()
    }

    private func queue() {
        if !queued {
            queued = true
            driver.markDirty(self)
        }
    }

    func flush() {
        queued = false
        guard !writer.writing, writer.hasPending, !tcp.isClosing else { return }
        do {
            _ = try writer.flush(stream, onWrite: { request, status in
                let client = LoadClient.from(request!.pointee.data)
                client.writer.writeCompleted(keeping: 1 << 16)
                if status < 0 { client.closedByPeer(); return }
                if client.writer.hasPending && !client.queued {
                    client.queued = true
                    client.driver.markDirty(client)
                }
            }, keeping: 1 << 16)
        } catch {
            failed = true
        }
    }
}
