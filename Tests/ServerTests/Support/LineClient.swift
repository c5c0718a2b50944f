import Foundation

/// `SOCK_STREAM` as `socket(2)` takes it (1 on Linux), as a number: the
/// compiler's lookup of Glibc's `SOCK_STREAM` enum failed in one test file
/// or another from one clean build to the next (with or without `import
/// Glibc`; a module-visibility quirk not pinned down), never in the engine.
let streamSocketType: Int32 = 1
/// `SOCK_DGRAM` (2) and `SHUT_WR` (1), for the same reason.
let datagramSocketType: Int32 = 2
let shutdownWrite: Int32 = 1

/// A blocking TCP client that speaks the line protocol, as a player's game
/// client would. Replies (`+`/`-`) and pushed events (`>`) arrive on the
/// same socket; `call` returns the reply and queues the events it passes.
final class LineClient {
    /// -1 once `reset()` has closed it.
    private var socket: Int32
    private var buffer: [UInt8] = []
    private(set) var events: [String] = []

    /// `receiveBuffer` shrinks the kernel's receive buffer, to make a client
    /// that does not read fill up quickly.
    init(port: Int, timeout: TimeInterval = 10, receiveBuffer: Int32? = nil) throws {
        socket = Glibc.socket(AF_INET, streamSocketType, 0)
        guard socket >= 0 else { throw TestFailure("socket: \(errno)") }
        if var size = receiveBuffer {
            setsockopt(socket, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
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
        var limit = timeval(tv_sec: Int(timeout), tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { if socket >= 0 { close(socket) } }

    /// Writes raw bytes, exactly as given.
    func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send failed: errno \(errno)") }
            sent += n
        }
    }

    func send(_ line: String) throws { try write(Array((line + "\r\n").utf8)) }

    /// The next line from the server, or nil at end of stream.
    func readLine() throws -> String? {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                var line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if line.last == 0x0D { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            // A reset after the server's last line counts as the end, too.
            if n == 0 || (n < 0 && errno == ECONNRESET) { return nil }
            guard n > 0 else { throw TestFailure("no line from server (errno \(errno))") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }

    /// The next reply, queueing any events that come before it.
    func reply() throws -> String {
        while let line = try readLine() {
            if line.hasPrefix(">") { events.append(line) } else { return line }
        }
        throw TestFailure("connection closed while waiting for a reply")
    }

    /// Sends a request and returns its reply.
    func call(_ line: String) throws -> String {
        try send(line)
        return try reply()
    }

    /// The next pushed event (queued or still to arrive).
    func event() throws -> String {
        if !events.isEmpty { return events.removeFirst() }
        while let line = try readLine() {
            if line.hasPrefix(">") { return line }
            throw TestFailure("expected an event, got reply '\(line)'")
        }
        throw TestFailure("connection closed while waiting for an event")
    }

    /// True when the server closes the connection (reading only end of file).
    func closedByServer() throws -> Bool {
        try readLine() == nil
    }

    /// Closes our sending side only; replies still arrive.
    func halfClose() { shutdown(socket, shutdownWrite) }

    /// Aborts the connection with a TCP reset: with SO_LINGER {on, 0},
    /// close() sends RST instead of FIN. The client is unusable afterwards.
    func reset() {
        guard socket >= 0 else { return }
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(socket, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(socket)
        socket = -1
    }

    /// True when a line can be read without waiting longer than `seconds`:
    /// an event already queued or a line already buffered counts, else it
    /// waits (poll) for the server to send something or close.
    func hasInput(within seconds: TimeInterval) -> Bool {
        if !events.isEmpty || buffer.contains(0x0A) { return true }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, Int32(seconds * 1000)) > 0
    }

    /// The events queued so far (passed by `reply`), emptying the queue.
    func takeEvents() -> [String] {
        defer { events.removeAll() }
        return events
    }
}
