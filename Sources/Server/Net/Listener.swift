import CLibUV
import Glibc

/// Why the game port could not be opened.
struct ListenError: Error, CustomStringConvertible {
    let description: String
}

/// The listening socket. Each accepted client becomes a `Connection` handed
/// to the engine; the engine decides whether it gets a session.
final class Listener {
    unowned let engine: Engine
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    /// Connections from this listener speak the admin protocol.
    let admin: Bool

    init(engine: Engine, admin: Bool) {
        self.engine = engine
        self.admin = admin
        handle = .allocate(capacity: 1)
        uv_tcp_init(engine.loop, handle)
        handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
    }

    private var stream: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    /// Binds and listens; port 0 picks a free port. Returns the bound address.
    func listen(host: String, port: Int, backlog: Int32) throws(ListenError) -> (host: String, port: Int) {
        var storage = sockaddr_storage()
        let parsed = withUnsafeMutableBytes(of: &storage) { raw -> Int32 in
            let rc = uv_ip4_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self))
            if rc == 0 { return 0 }
            return uv_ip6_addr(host, Int32(port), raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self))
        }
        guard parsed == 0 else { throw ListenError(description: "'\(host)' is not an IPv4 or IPv6 address") }
        let bound = withUnsafePointer(to: &storage) {
            uv_tcp_bind(handle, UnsafeRawPointer($0).assumingMemoryBound(to: sockaddr.self), 0)
        }
        guard bound == 0 else { throw ListenError(description: "bind \(host):\(port): \(Listener.describe(bound))") }
        let listening = uv_listen(stream, backlog) { server, status in
            let listener = Unmanaged<Listener>.fromOpaque(server!.pointee.data).takeUnretainedValue()
            listener.accept(status: status)
        }
        guard listening == 0 else { throw ListenError(description: "listen \(host):\(port): \(Listener.describe(listening))") }
        return (host, boundPort())
    }

    private func boundPort() -> Int {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &storage) {
            _ = uv_tcp_getsockname(handle, UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self), &length)
        }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port sit at the same offset, in network order.
            let port = raw.load(fromByteOffset: 2, as: UInt16.self)
            return Int(UInt16(bigEndian: port))
        }
    }

    private func accept(status: Int32) {
        guard status == 0 else {
            engine.logger.warning("accept failed: \(Listener.describe(status))")
            return
        }
        let client = UnsafeMutablePointer<uv_tcp_t>.allocate(capacity: 1)
        uv_tcp_init(engine.loop, client)
        let connection = Connection(engine: engine, stream: client, maxLineLength: engine.limits.maxLineLength,
                                    isAdmin: admin)
        let rc = uv_accept(stream, UnsafeMutableRawPointer(client).assumingMemoryBound(to: uv_stream_t.self))
        guard rc == 0 else {
            engine.logger.warning("accept failed: \(Listener.describe(rc))")
            connection.abort()
            return
        }
        // Replies are small and latency matters more than packet count.
        uv_tcp_nodelay(client, 1)
        engine.accepted(connection)
    }

    /// Stops accepting. The handle is freed in its close callback.
    func close() {
        Engine.closeAndFree(handle)
    }

    static func describe(_ code: Int32) -> String {
        "\(String(cString: uv_err_name(code))) (\(String(cString: uv_strerror(code))))"
    }
}
