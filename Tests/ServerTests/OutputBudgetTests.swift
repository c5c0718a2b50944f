import Foundation
import Testing

/// Issue #20, parts 4 and 5: what clients that do not read, and senders
/// that fan out, can cost the server in total, and the descriptors kept
/// for operators when the open-file limit caps connections.
@Suite struct OutputBudgetTests {
    /// Past --max-output-total the client with the largest queue that is
    /// not reading goes; a smaller non-reader and a reader stay. Counted in
    /// STATUS and /metrics.
    @Test func theTotalBudgetDropsTheLargestNonReaderAndKeepsReaders() throws {
        let server = try TestServer(arguments: [
            "--max-output-total", "\(1 << 20)", "--max-output-bytes", "\(64 << 20)", "--rate-limit", "0",
            "--metrics-port", "0",
        ])
        let talker = try server.connect()
        let reader = try server.connect()
        let big = try server.connect(receiveBuffer: 4096)
        _ = try talker.call("LOGIN talker")
        _ = try reader.call("LOGIN reader")
        _ = try big.call("LOGIN big")
        try talker.joinNewRoom("hall")
        _ = try reader.call("JOIN hall")
        _ = try big.call("JOIN hall")
        // A second non-reader in another room, told a little: its queue
        // stays far below big's.
        let whisperer = try server.connect()
        let small = try server.connect(receiveBuffer: 4096)
        _ = try whisperer.call("LOGIN whisperer")
        _ = try small.call("LOGIN small")
        try whisperer.joinNewRoom("side")
        _ = try small.call("JOIN side")
        let text = String(repeating: "x", count: 3000)
        for _ in 0..<20 { #expect(try whisperer.call("SAY \(text)") == "+OK") }

        // reader reads everything the hall hears, on its own thread, until
        // the last line.
        let heard = ReaderTally()
        let readerDone = DispatchSemaphore(value: 0)
        // Only that thread reads it until it signals.
        nonisolated(unsafe) let readerThread = reader
        Thread.detachNewThread {
            while let line = try? readerThread.readLine() {
                if line.hasPrefix(">SAY talker ") { heard.add() }
                if line == ">SAY talker done" { break }
            }
            readerDone.signal()
        }

        var said = 0
        let dropped = try waitUntil(60) {
            for _ in 0..<50 {
                #expect(try talker.call("SAY \(text)") == "+OK")
                said += 1
            }
            return try server.statusFields()["output_budget_drops"] != "0"
        }
        #expect(dropped, "no drop after \(said) SAYs of 3000 bytes")
        #expect(try talker.call("SAY done") == "+OK")
        said += 1
        #expect(readerDone.wait(timeout: .now() + NotAHang.seconds) == .success)
        #expect(heard.count == said, "the reader heard \(heard.count) of \(said)")
        #expect(try talker.call("WHO") == "+WHO talker reader")
        #expect(try whisperer.call("WHO") == "+WHO whisperer small")
        #expect(try reader.call("PING") == "+PONG")
        let fields = try server.statusFields()
        #expect(fields["output_budget_drops"] == "1")
        #expect(fields["output_overflows"] == "0")
        // The running total (O(1) per write) and the walk over every
        // connection, read at one instant, agree.
        #expect(fields["output_queued"] == fields["output_buffered"])
        let metrics = samples(try server.connectMetrics().get("/metrics").body)
        #expect(metrics["hotswap_output_budget_drops_total"] == 1)
        #expect(metrics["hotswap_max_output_total_bytes"] == Double(1 << 20))
        #expect(server.logContains("over --max-output-total"))
        withExtendedLifetime((big, small)) {}
    }

    /// A request pays for what it makes the server tell others: 30 SAYs
    /// of 4,000 bytes into a room of 21 are far below the burst of 200
    /// requests, but each queues 80 KB (about 20 requests' worth at
    /// --rate-fan-out-bytes 4096), so the bucket runs dry after about ten.
    /// PINGs, which tell nobody, are all answered.
    @Test func fanOutBytesChargeTheSender() throws {
        let server = try TestServer(arguments: ["--rate-limit", "20", "--rate-burst", "200", "--rate-strikes", "1000"])
        let talker = try server.connect()
        _ = try talker.call("LOGIN talker")
        try talker.joinNewRoom("crowd")
        var listeners: [LineClient] = []
        for index in 0..<20 {
            let listener = try server.connect()
            _ = try listener.call("LOGIN l\(index)")
            _ = try listener.call("JOIN crowd")
            listeners.append(listener)
        }
        let say = "SAY " + String(repeating: "y", count: 4000) + "\n"
        try talker.write(Array(String(repeating: say, count: 30).utf8))
        var replies: [String] = []
        for _ in 0..<30 { replies.append(try talker.reply()) }
        let admitted = replies.filter { $0 == "+OK" }.count
        #expect(admitted >= 5 && admitted <= 15, "\(admitted) of 30 admitted: \(Set(replies))")
        #expect(replies.allSatisfy { $0 == "+OK" || $0.hasPrefix("-ERR RATE_LIMITED") })

        let pinger = try server.connect()
        try pinger.write(Array(String(repeating: "PING\n", count: 30).utf8))
        for _ in 0..<30 { #expect(try pinger.reply() == "+PONG") }
        #expect(try server.statusFields()["rate_limited"] == "\(30 - admitted)")
        withExtendedLifetime(listeners) {}
    }

    /// With the open-file limit capping connections, a connect flood on the
    /// game port cannot take the descriptors the admin and metrics ports
    /// need: the game port pauses at its cap (counted) and every STATUS and
    /// scrape is answered.
    @Test func aConnectFloodLeavesDescriptorsForTheAdminAndMetricsPorts() throws {
        let server = try TestServer(arguments: ["--metrics-port", "0"], shell: "ulimit -n 80")
        let cap = try #require(Int(try server.statusFields()["game_fd_cap"] ?? ""))
        #expect(cap >= 16 && cap < 80, "game_fd_cap \(cap)")
        var players: [LineClient] = []
        for _ in 0..<16 { players.append(try server.connect()) }
        for player in players { #expect(try player.call("PING") == "+PONG") }

        // Waves of 200 connections held open without reading, until told
        // to stop: more than the descriptors left, every turn.
        let flood = FloodControl()
        let port = server.port
        let flooding = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            while !flood.stopped {
                var wave: [Int32] = []
                for _ in 0..<200 where !flood.stopped {
                    if let fd = rawConnect(port: port) { wave.append(fd) }
                }
                flood.waves += 1
                for fd in wave { close(fd) }
            }
            flooding.signal()
        }
        defer {
            flood.stopped = true
            _ = flooding.wait(timeout: .now() + NotAHang.seconds)
        }
        #expect(waitUntil(NotAHang.seconds) { flood.waves >= 2 })

        var answered = 0
        for _ in 0..<20 {
            if let line = try? server.connectAdmin().call("STATUS"), line.hasPrefix("+STATUS ") { answered += 1 }
        }
        #expect(answered == 20)
        var scraped = 0
        for _ in 0..<5 {
            if let response = try? server.connectMetrics().get("/metrics"), response.status == 200 { scraped += 1 }
        }
        #expect(scraped == 5)
        let pauses = try #require(Int(try server.statusFields()["accept_pauses"] ?? ""))
        #expect(pauses > 0, "the flood never reached the cap")
        flood.stopped = true
        #expect(flooding.wait(timeout: .now() + NotAHang.seconds) == .success)
        for player in players { #expect(try player.call("PING") == "+PONG") }
        let late = try server.connect()
        #expect(try late.readLine()?.hasPrefix("-ERR SERVER_FULL") == true)
    }
}

/// Lines the reader thread counted.
private final class ReaderTally: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func add() { lock.withLock { value += 1 } }
    var count: Int { lock.withLock { value } }
}

/// The flood thread's switch and progress.
private final class FloodControl: @unchecked Sendable {
    private let lock = NSLock()
    private var stop = false
    private var done = 0
    var stopped: Bool {
        get { lock.withLock { stop } }
        set { lock.withLock { stop = newValue } }
    }
    var waves: Int {
        get { lock.withLock { done } }
        set { lock.withLock { done = newValue } }
    }
}

/// A blocking connect to 127.0.0.1:`port`; the descriptor, or nil.
private func rawConnect(port: Int) -> Int32? {
    let fd = socket(AF_INET, streamSocketType, 0)
    guard fd >= 0 else { return nil }
    // A full backlog drops the SYN, and a blocking connect would retry for
    // seconds: give up after 100 ms (Linux applies SO_SNDTIMEO to connect).
    var limit = timeval(tv_sec: 0, tv_usec: 100_000)
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}
