import Foundation

/// A blocking HTTP/1.1 client over a raw socket, for the metrics port: it
/// sends exactly the bytes a test gives (pipelined, malformed, trickled)
/// and reads responses one at a time by their Content-Length.
final class HTTPClient {
    struct Response {
        let status: Int
        /// Header names lower-cased.
        let headers: [String: String]
        let body: String
    }

    private var socket: Int32
    private var buffer: [UInt8] = []

    init(port: Int, timeout: TimeInterval = 10) throws {
        socket = Glibc.socket(AF_INET, streamSocketType, 0)
        guard socket >= 0 else { throw TestFailure("socket: \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(socket)
            throw TestFailure("connect to port \(port): errno \(errno)")
        }
        var limit = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(socket) }

    /// Writes `text` exactly as given.
    func send(_ text: String) throws { try write(Array(text.utf8)) }

    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send failed: errno \(errno)") }
            sent += n
        }
    }

    /// The bytes of a well-formed request.
    static func request(_ path: String, method: String = "GET", close: Bool = false) -> String {
        "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: hotswap-tests\r\n"
            + (close ? "Connection: close\r\n" : "") + "\r\n"
    }

    /// Sends a request and reads its response.
    func get(_ path: String, method: String = "GET", close: Bool = false) throws -> Response {
        try send(HTTPClient.request(path, method: method, close: close))
        return try readResponse(headOnly: method == "HEAD")
    }

    /// The next response (its body by Content-Length, none for HEAD).
    func readResponse(headOnly: Bool = false) throws -> Response {
        let head = try readHead()
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0] == "HTTP/1.1", let status = Int(parts[1]) else {
            throw TestFailure("bad status line '\(statusLine)'")
        }
        var headers: [String: String] = [:]
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw TestFailure("bad header '\(line)'") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        guard let length = headers["content-length"].flatMap({ Int($0) }) else {
            throw TestFailure("no Content-Length in '\(head)'")
        }
        let body = headOnly ? [] : try readBytes(length)
        return Response(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    /// True when the server closes the connection with nothing more to read.
    func closedByServer() throws -> Bool {
        if !buffer.isEmpty { return false }
        var byte: UInt8 = 0
        let n = recv(socket, &byte, 1, 0)
        if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
        if n < 0 { throw TestFailure("no end of stream (errno \(errno))") }
        buffer.append(byte)
        return false
    }

    /// True when something can be read (or the end of stream) within `seconds`.
    func hasInput(within seconds: TimeInterval) -> Bool {
        if !buffer.isEmpty { return true }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, Int32(seconds * 1000)) > 0
    }

    private func readHead() throws -> String {
        let terminator: [UInt8] = [13, 10, 13, 10]
        while true {
            if buffer.count >= 4, let end = (0...(buffer.count - 4)).first(where: { Array(buffer[$0..<$0 + 4]) == terminator }) {
                let head = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeSubrange(..<(end + 4))
                return head
            }
            guard try fill() else { throw TestFailure("connection closed before a response head") }
        }
    }

    private func readBytes(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw TestFailure("connection closed inside a body") }
        }
        defer { buffer.removeSubrange(..<count) }
        return Array(buffer[..<count])
    }

    /// Reads more; false at the end of the stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        if n == 0 || (n < 0 && errno == ECONNRESET) { return false }
        guard n > 0 else { throw TestFailure("nothing from the server (errno \(errno))") }
        buffer.append(contentsOf: chunk[..<n])
        return true
    }
}

/// The samples of a Prometheus text exposition: `name{labels}` (as
/// written) to value; comment lines are dropped.
func samples(_ exposition: String) -> [String: Double] {
    var result: [String: Double] = [:]
    for line in exposition.split(separator: "\n") where !line.hasPrefix("#") {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
        result[String(line[..<space])] = value
    }
    return result
}

extension TestServer {
    /// One scrape of `/metrics` on a connection of its own.
    func scrape() throws -> [String: Double] {
        let response = try connectMetrics().get("/metrics", close: true)
        guard response.status == 200 else { throw TestFailure("GET /metrics: \(response.status) \(response.body)") }
        return samples(response.body)
    }

    /// Scrapes until `condition` holds (the metrics are read on the loop,
    /// so a change the test caused is visible by the time its reply came;
    /// waiting covers what happens after a reply, like a close).
    func scrape(until condition: ([String: Double]) -> Bool, within seconds: TimeInterval = 10) throws -> [String: Double] {
        let deadline = Date().addingTimeInterval(seconds)
        var last = try scrape()
        while !condition(last) {
            if Date() > deadline { throw TestFailure("metrics never met the condition; last scrape: \(last)") }
            Thread.sleep(forTimeInterval: 0.02)
            last = try scrape()
        }
        return last
    }
}
