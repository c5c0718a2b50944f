import CLibUV
import Glibc
import Logging
import UVKit

/// A tiny HTTP/1.1 client for the Agones SDK sidecar's REST gateway on
/// 127.0.0.1:`port`, on the loop and never blocking it.
///
/// One request at a time, in order, each on its own connection
/// (`Connection: close`: one short-lived loopback connection every couple
/// of seconds costs nothing, and no stale keep-alive connection to a
/// restarted sidecar has to be noticed). Each attempt has a timeout; a
/// failed one (refused, reset, timed out, a 5xx) is retried after a backoff
/// (100 ms doubling to 2 s) while the request has retries left; a 4xx is
/// the sidecar's answer and not retried. Requests with the same
/// `coalescing` key replace a queued one (a health ping, a label's newest
/// value), so the queue stays short however long the sidecar is gone.
/// A `background` request (the roster's counter and list updates) waits
/// behind every other one: a burst of list changes never delays a health
/// ping past the GameServer's `periodSeconds`.
///
/// The first failure after a success (or at start) is logged, as is the
/// recovery; every failed attempt is counted (`agones_failures`).
final class AgonesGateway {
    struct Request {
        let method: String
        let path: String
        let body: String
        /// Attempts after the first; `Int.max`: until it succeeds.
        var retries: Int
        /// A queued request with the same key is replaced by a newer one.
        var coalescing: String?
        /// Queued behind every request that is not (the roster's updates).
        var background = false
        /// Statuses besides 2xx that mean the sidecar already holds what
        /// was asked (409 for a list value already there, 404 for one
        /// already gone): a success, not a failure.
        var accepted: Set<Int> = []
        /// Called once, with the answer (or none: it gave up or was cancelled).
        var done: ((Answer) -> Void)?
        var attempts = 0

        var name: String { "\(method) \(path)" }
    }

    /// How a request ended.
    struct Answer {
        /// The last attempt's HTTP status; nil when none came (no
        /// connection, no answer in time, cancelled).
        var status: Int?
        /// The response's body (JSON), on success.
        var body: [UInt8] = []
        /// A 2xx, or a status the request `accepted`.
        var ok: Bool

        static let none = Answer(status: nil, ok: false)
    }

    struct Counters {
        /// Attempts sent (each retry counts).
        var requests = 0
        /// Attempts that failed: no connection, a timeout, a non-2xx status.
        var failures = 0
    }

    let port: Int
    let timeoutMilliseconds: UInt64
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let logger: Logger
    private(set) var counters = Counters()
    private var queue: [Request] = []
    private var exchange: AgonesExchange?
    /// The attempt's timeout while one is in flight, the backoff between
    /// attempts otherwise; ref'd only while it runs.
    private var timer: UnsafeMutablePointer<uv_timer_t>?
    private var waitingToRetry = false
    /// Failed attempts in a row; 0 after any success.
    private(set) var failingSince = 0
    private var failureLogged = false
    private var closed = false

    static let maxResponseBytes = 64 << 10
    static let backoffStart: UInt64 = 100
    static let backoffCap: UInt64 = 2000

    init(loop: UnsafeMutablePointer<uv_loop_t>, port: Int, timeoutMilliseconds: UInt64 = 1000, logger: Logger) {
        self.loop = loop
        self.port = port
        self.timeoutMilliseconds = timeoutMilliseconds
        self.logger = logger
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = UVContext.pointer(to: self)
        self.timer = timer
    }

    deinit { close() }

    /// Nothing queued, nothing in flight.
    var idle: Bool { queue.isEmpty && exchange == nil }

    /// Queues a request (or replaces a queued one with its coalescing key).
    func send(_ request: Request) {
        guard !closed else {
            request.done?(.none)
            return
        }
        let inFlight = exchange != nil || waitingToRetry
        if let key = request.coalescing,
           let index = queue.indices.first(where: { queue[$0].coalescing == key && !(inFlight && $0 == 0) })
        {
            let replaced = queue[index]
            queue[index] = request
            replaced.done?(.none)
        } else if !request.background,
                  let index = queue.indices.first(where: { queue[$0].background && !(inFlight && $0 == 0) })
        {
            queue.insert(request, at: index)
        } else {
            queue.append(request)
        }
        startNext()
    }

    /// Requests queued or in flight that are `background`.
    var backgroundPending: Int { queue.reduce(0) { $0 + ($1.background ? 1 : 0) } }

    /// Drops what is queued and not `keep` (each told it gave up); what is
    /// in flight goes on.
    func dropQueued(keeping keep: (Request) -> Bool) {
        let inFlight = exchange != nil || waitingToRetry
        var kept: [Request] = [], dropped: [Request] = []
        for (index, request) in queue.enumerated() {
            if (inFlight && index == 0) || keep(request) { kept.append(request) } else { dropped.append(request) }
        }
        queue = kept
        for request in dropped { request.done?(.none) }
    }

    /// Drops everything queued (each told it gave up), cuts off what is in
    /// flight and stops the timer: the gateway is idle at once.
    func cancelAll() {
        let dropped = queue
        queue.removeAll()
        waitingToRetry = false
        if let timer { uv_timer_stop(timer) }
        exchange?.abort()
        exchange = nil
        for request in dropped { request.done?(.none) }
    }

    /// Cancels everything and closes the timer (at the end of a shutdown).
    func close() {
        guard !closed else { return }
        cancelAll()
        closed = true
        timer?.closeAndFree()
        timer = nil
    }

    private func startNext() {
        guard !closed, exchange == nil, !waitingToRetry, var request = queue.first, let timer else { return }
        request.attempts += 1
        queue[0] = request
        counters.requests += 1
        var message = "\(request.method) \(request.path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
            + "User-Agent: hotswap\r\nConnection: close\r\n"
        if !request.body.isEmpty || request.method != "GET" {
            message += "Content-Type: application/json\r\nContent-Length: \(request.body.utf8.count)\r\n"
        }
        message += "\r\n" + request.body
        let exchange = AgonesExchange(gateway: self, bytes: Array(message.utf8))
        self.exchange = exchange
        if let problem = exchange.start(loop: loop, port: port) {
            self.exchange = nil
            exchange.abort()
            finish(status: nil, body: [], problem: problem)
            return
        }
        uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: AgonesGateway.self).timedOut()
        }, timeoutMilliseconds, 0)
        uv_ref(timer.handle)
    }

    private func timedOut() {
        if waitingToRetry {
            waitingToRetry = false
            startNext()
            return
        }
        guard let exchange else { return }
        self.exchange = nil
        exchange.abort()
        finish(status: nil, body: [], problem: "no answer within \(timeoutMilliseconds) ms")
    }

    /// The exchange in flight ended: a status, or a problem.
    fileprivate func ended(_ exchange: AgonesExchange, status: Int?, body: [UInt8], problem: String?) {
        guard exchange === self.exchange else { return }
        self.exchange = nil
        exchange.abort()
        if let timer { uv_timer_stop(timer) }
        finish(status: status, body: body, problem: problem)
    }

    private func finish(status: Int?, body: [UInt8], problem: String?) {
        guard !queue.isEmpty else { return }
        let request = queue[0]
        if let status, (200..<300).contains(status) || request.accepted.contains(status) {
            queue.removeFirst()
            if failingSince > 0 && failureLogged {
                logger.notice("agones: the sidecar on 127.0.0.1:\(port) answers again (\(request.name) after \(failingSince) failed attempts)")
            }
            failingSince = 0
            failureLogged = false
            request.done?(Answer(status: status, body: body, ok: true))
            startNext()
            return
        }
        counters.failures += 1
        failingSince += 1
        let reason = status.map { "HTTP \($0)" } ?? problem ?? "failed"
        // A 4xx is the sidecar's answer to this request: not retried.
        let retry = request.attempts <= request.retries && !(status.map { (400..<500).contains($0) } ?? false)
        if !failureLogged {
            failureLogged = true
            logger.warning("agones: \(request.name) to the sidecar on 127.0.0.1:\(port): \(reason)\(retry ? "; retried" : "") (further failures are counted in agones_failures, logged when it answers again)")
        }
        if !retry {
            queue.removeFirst()
            if status != nil || request.retries > 0 {
                logger.warning("agones: \(request.name) given up after \(request.attempts) attempts: \(reason)")
            }
            request.done?(Answer(status: status, ok: false))
            startNext()
            return
        }
        guard let timer else { return }
        let shift = UInt64(min(request.attempts - 1, 10))
        let backoff = min(Self.backoffCap, Self.backoffStart << shift)
        waitingToRetry = true
        uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: AgonesGateway.self).timedOut()
        }, backoff, 0)
        uv_ref(timer.handle)
    }
}

/// One request's connection: connect, write, read the response, close.
/// Owns its libuv handle and requests; keeps itself alive (a +1 reference
/// in the handle) until libuv's close callback, after every request
/// callback has run.
private final class AgonesExchange {
    unowned(unsafe) let gateway: AgonesGateway
    private let bytes: [UInt8]
    private var response: [UInt8] = []
    private let tcp = UnsafeMutablePointer<uv_tcp_t>.allocateHandle()
    private let connectRequest = UnsafeMutablePointer<uv_connect_t>.allocate(capacity: 1)
    private let writeRequest = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    private let readBuffer = UnsafeMutablePointer<UInt8>.allocate(capacity: 4096)
    private var outgoing: UnsafeMutablePointer<UInt8>?
    private var handleOpen = false
    private var done = false

    init(gateway: AgonesGateway, bytes: [UInt8]) {
        self.gateway = gateway
        self.bytes = bytes
    }

    deinit {
        connectRequest.deallocate()
        writeRequest.deallocate()
        readBuffer.deallocate()
        outgoing?.deallocate()
        tcp.deallocate()
    }

    /// Starts connecting; a problem when it cannot even begin.
    func start(loop: UnsafeMutablePointer<uv_loop_t>, port: Int) -> String? {
        let status = uv_tcp_init(loop, tcp)
        guard status == 0 else { return "uv_tcp_init: \(UVError(status))" }
        handleOpen = true
        tcp.context = UVContext.retainedPointer(to: self)
        guard var address = socketAddress(host: "127.0.0.1", port: port) else { return "bad port \(port)" }
        connectRequest.pointee.data = UVContext.pointer(to: self)
        let connecting = withSocketAddress(&address) { sockaddr in
            uv_tcp_connect(connectRequest, tcp, sockaddr) { request, status in
                UVContext.object(request!.pointee.data, as: AgonesExchange.self).connected(status)
            }
        }
        guard connecting == 0 else { return "connect: \(UVError(connecting))" }
        return nil
    }

    /// Ends the exchange: no callback reaches the gateway any more, and the
    /// handle closes (what is pending is cancelled by libuv).
    func abort() {
        done = true
        guard handleOpen else { return }
        handleOpen = false
        if uv_is_closing(tcp.handle) == 0 {
            uv_close(tcp.handle) { handle in
                guard let context = handle?.pointee.data else { return }
                handle?.pointee.data = nil
                _ = UVContext.release(context, as: AgonesExchange.self)
            }
        }
    }

    private func fail(_ problem: String) {
        guard !done else { return }
        done = true
        gateway.ended(self, status: nil, body: [], problem: problem)
    }

    private func connected(_ status: Int32) {
        guard !done else { return }
        guard status == 0 else { return fail("connect: \(UVError(status))") }
        let outgoing = UnsafeMutablePointer<UInt8>.allocate(capacity: max(1, bytes.count))
        outgoing.initialize(from: bytes, count: bytes.count)
        self.outgoing = outgoing
        var buffer = uv_buf_init(UnsafeMutableRawPointer(outgoing).assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        writeRequest.pointee.data = UVContext.pointer(to: self)
        let writing = uv_write(writeRequest, tcp.stream, &buffer, 1) { request, status in
            let exchange = UVContext.object(request!.pointee.data, as: AgonesExchange.self)
            if status != 0 { exchange.fail("write: \(UVError(status))") }
        }
        guard writing == 0 else { return fail("write: \(UVError(writing))") }
        let reading = uv_read_start(tcp.stream, { handle, _, buffer in
            let exchange = UVContext.object(handle!.pointee.data, as: AgonesExchange.self)
            buffer!.pointee = uv_buf_init(UnsafeMutableRawPointer(exchange.readBuffer).assumingMemoryBound(to: CChar.self), 4096)
        }, { stream, count, _ in
            guard let context = stream?.pointee.data else { return }
            UVContext.object(context, as: AgonesExchange.self).read(count)
        })
        if reading != 0 { fail("read: \(UVError(reading))") }
    }

    private func read(_ count: Int) {
        guard !done else { return }
        if count > 0 {
            response.append(contentsOf: UnsafeBufferPointer(start: readBuffer, count: count))
            if response.count > AgonesGateway.maxResponseBytes { return fail("a response over \(AgonesGateway.maxResponseBytes) bytes") }
            if let status = Self.complete(response) {
                done = true
                gateway.ended(self, status: status, body: Self.body(response), problem: nil)
            }
        } else if count < 0 {
            // The end of the stream: whatever came is the whole response.
            if count == Int(UV_EOF.rawValue), let status = Self.status(response) {
                done = true
                return gateway.ended(self, status: status, body: Self.body(response), problem: nil)
            }
            fail(count == Int(UV_EOF.rawValue) ? "the connection closed without a response" : "read: \(UVError(Int32(count)))")
        }
    }

    /// What follows the head (the responses here carry a Content-Length,
    /// or end with the connection: never chunked).
    static func body(_ bytes: [UInt8]) -> [UInt8] {
        guard let headEnd = headEnd(bytes) else { return [] }
        return Array(bytes[(headEnd + 4)...])
    }

    /// Where the blank line after the head starts.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard bytes.count >= 4 else { return nil }
        return (0...(bytes.count - 4)).first(where: { bytes[$0..<($0 + 4)].elementsEqual(separator) })
    }

    /// The status line's code, once the head is complete.
    static func status(_ bytes: [UInt8]) -> Int? {
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\r")) else { return nil }
        let line = String(decoding: bytes[..<end], as: UTF8.self).split(separator: " ")
        guard line.count >= 2, line[0].hasPrefix("HTTP/1."), let code = Int(line[1]), (100..<600).contains(code) else { return nil }
        return code
    }

    /// The status when the whole response (head and Content-Length body)
    /// is here; nil while more is to come (without a Content-Length the
    /// end of the stream ends it).
    static func complete(_ bytes: [UInt8]) -> Int? {
        guard let headEnd = headEnd(bytes), let status = status(bytes)
        else { return nil }
        let head = String(decoding: bytes[..<headEnd], as: UTF8.self).lowercased()
        guard let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
              let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: " \t"))
        else { return nil }
        return bytes.count - (headEnd + 4) >= length ? status : nil
    }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var slice = self
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return slice
    }
}
