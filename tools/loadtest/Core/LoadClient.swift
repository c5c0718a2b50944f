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
    var failed = false
    var setupRepliesLeft = 0
    /// Chat: the member this connection speaks for, and its next sequence.
    var member = 0
    var isPublisher = true
    var isSubscriber = true
    var sequence: UInt64 = 0
    var step = 0
    var adminLines: [String]?

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
        }
    }

    var stream: UnsafeMutablePointer<uv_stream_t> { tcp.stream }

    var room: Int { member / max(driver.config.members, 1) }

    static func from(_ pointer: UnsafeMutableRawPointer?) -> LoadClient {
        Unmanaged<LoadClient>.fromOpaque(pointer!).takeUnretainedValue()
    }

    func connect(_ address: inout sockaddr_in) {
        let rc = withUnsafePointer(to: &address) {
            uv_tcp_connect(connectRequest, tcp, UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self)) { request, status in
                let client = LoadClient.from(request!.pointee.data)
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
        if rc < 0 { failed = true }
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
            send("JOIN ltplay\(index % 16)")
            setupRepliesLeft = 2
        case (.chat, .redis) where isSubscriber:
            send("SUBSCRIBE ltroom\(room)")
            setupRepliesLeft = 1
        default:
            break
        }
        ready = setupRepliesLeft == 0
    }

    /// The measured phase starts: fill the pipeline (closed loop).
    func begin() {
        guard driver.config.rate == 0, isPublisher else { return }
        for _ in 0..<driver.config.pipeline where !driver.requestBudgetSpent { request(scheduled: driver.now) }
    }

    /// Open loop: send what is due by now at this client's share of the rate.
    func pace(at elapsed: Double) {
        guard isPublisher, !driver.requestBudgetSpent else { return }
        let publishers = driver.config.scenario == .chat ? driver.config.rooms * driver.config.members : driver.clients.count
        let perClient = driver.config.rate / Double(max(publishers, 1))
        let due = Int(elapsed * perClient) - ledger.sent
        guard due > 0 else { return }
        let base = driver.startedAt
        for _ in 0..<due where !driver.requestBudgetSpent {
            let scheduled = base + UInt64(Double(ledger.sent + 1) / perClient * 1e9)
            request(scheduled: scheduled)
        }
    }

    private static let playCommands = ["MOVE N", "LOOK", "MOVE E", "SAY hello", "MOVE S", "WHO", "MOVE W", "SCORE"]

    /// One request of the scenario, timed from `scheduled`.
    func request(scheduled: UInt64) {
        let config = driver.config
        switch config.scenario {
        case .ping:
            send("PING")
        case .play:
            send(LoadClient.playCommands[step % LoadClient.playCommands.count])
            step += 1
        case .chat:
            sequence += 1
            let payload = "LT \(member) \(sequence) \(driver.now)"
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
        // A chat delivery: ours ">SAY ltN LT m s t", Redis's payload line "LT m s t".
        if let marker = LoadClient.deliveryStart(raw) {
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
            if setupRepliesLeft == 0 { ready = true }
            return
        }
        if !isPublisher { return }  // a subscriber's confirmations
        guard let sentAt = ledger.reply() else { return }
        driver.recordReply(sentAt: sentAt, error: first == UInt8(ascii: "-"))
        if driver.phase == .running && driver.config.rate == 0 && !driver.requestBudgetSpent {
            request(scheduled: driver.now)
        }
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
