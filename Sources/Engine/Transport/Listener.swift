import CLibUV
import UVKit

/// What a listening port serves.
enum ListenerRole: String, Sendable, CaseIterable {
    case game
    case admin
    /// `--metrics-port`: HTTP for Prometheus and health checks.
    case metrics

    /// Position in per-role tables (the transport's connection counts).
    var index: Int {
        switch self {
        case .game: 0
        case .admin: 1
        case .metrics: 2
        }
    }
}

/// Why a port could not be opened.
enum ListenError: Error, CustomStringConvertible {
    case badAddress(host: String)
    case bind(host: String, port: Int, UVError)
    case listen(host: String, port: Int, UVError)

    var description: String {
        switch self {
        case .badAddress(let host): "'\(host)' is not an IPv4 or IPv6 address"
        case .bind(let host, let port, let error): "bind \(host):\(port): \(error)"
        case .listen(let host, let port, let error): "listen \(host):\(port): \(error)"
        }
    }
}

/// A listening socket. Each accepted client becomes a `Connection` handed
/// to the transport, which asks its delegate what the connection is for.
final class Listener {
    unowned(unsafe) let transport: Transport
    let role: ListenerRole
    /// The address it was asked to bind (for the next engine's log and
    /// ready file).
    let host: String
    let backlog: Int32
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    private(set) var boundPort = 0
    /// The game port stopped accepting at the open-file limit's reserve
    /// (`DescriptorReserve`): libuv holds one connection for `uv_accept`
    /// and does not poll the socket until then.
    private(set) var paused = false

    /// Binds and listens; port 0 picks a free port. On failure the handle
    /// is closed and freed, and nothing refers to the listener any more.
    init(transport: Transport, role: ListenerRole, host: String, port: Int, backlog: Int32) throws(ListenError) {
        self.transport = transport
        self.role = role
        self.host = host
        self.backlog = backlog
        guard var address = socketAddress(host: host, port: port) else { throw .badAddress(host: host) }
        handle = .allocateHandle()
        uvMust(uv_tcp_init(transport.loop, handle), "uv_tcp_init")
        handle.context = UVContext.pointer(to: self)
        do throws(ListenError) {
            let bound = withSocketAddress(&address) { uv_tcp_bind(handle, $0, 0) }
            if bound != 0 { throw .bind(host: host, port: port, UVError(bound)) }
            let listening = uv_listen(handle.stream, backlog) { server, status in
                UVContext.object(server!.pointee.data, as: Listener.self).accept(status: status)
            }
            if listening != 0 { throw .listen(host: host, port: port, UVError(listening)) }
        } catch {
            handle.closeAndFree()
            throw error
        }
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        _ = withSocketAddress(&storage) { uv_tcp_getsockname(handle, $0, &length) }
        boundPort = UVKit.port(of: storage)
    }

    /// Listens on a socket a previous engine bound and handed over (an
    /// upgrade): nothing is bound again, so connection attempts that queued
    /// in the kernel meanwhile are accepted here. On failure the handle is
    /// left as it is, descriptor open: the engine then falls back to the
    /// previous one, which needs the socket (closing the handle would
    /// close it).
    init(transport: Transport, role: ListenerRole, adopting fd: Int32, host: String, port: Int,
         backlog: Int32) throws(ListenError)
    {
        self.transport = transport
        self.role = role
        self.host = host
        self.backlog = backlog
        boundPort = port
        handle = .allocateHandle()
        uvMust(uv_tcp_init(transport.loop, handle), "uv_tcp_init")
        handle.context = UVContext.pointer(to: self)
        let opened = uv_tcp_open(handle, uv_os_sock_t(fd))
        if opened != 0 { throw .listen(host: host, port: port, UVError(opened)) }
        let listening = uv_listen(handle.stream, backlog) { server, status in
            UVContext.object(server!.pointee.data, as: Listener.self).accept(status: status)
        }
        if listening != 0 { throw .listen(host: host, port: port, UVError(listening)) }
    }

    /// The listening socket's descriptor (-1 once closed).
    var fileDescriptor: Int32 {
        var fd: uv_os_fd_t = -1
        return uv_fileno(handle.handle, &fd) == 0 ? fd : -1
    }

    private func accept(status: Int32) {
        guard status == 0 else {
            transport.logger.warning("accept failed: \(UVError(status))")
            return
        }
        if role == .game && transport.gameDescriptorsFull {
            // Not accepted: libuv keeps it and stops polling this socket.
            paused = true
            transport.acceptPaused()
            return
        }
        takeConnection()
    }

    /// Accepts the connection libuv held while paused, once game
    /// descriptors are below the cap again (a game connection closed);
    /// libuv polls the socket again from then on.
    func resumeAccepting() {
        guard paused, !transport.gameDescriptorsFull else { return }
        paused = false
        takeConnection()
    }

    private func takeConnection() {
        let client = UnsafeMutablePointer<uv_tcp_t>.allocateHandle()
        uvMust(uv_tcp_init(transport.loop, client), "uv_tcp_init")
        let connection = Connection(transport: transport, stream: client, role: role)
        transport.register(connection)
        let rc = uv_accept(handle.stream, client.stream)
        guard rc == 0 else {
            transport.logger.warning("accept failed: \(UVError(rc))")
            connection.abort()
            return
        }
        // Replies are small and latency matters more than packet count.
        uv_tcp_nodelay(client, 1)
        if role == .admin { connection.peer = Listener.peerAddress(client) }
        connection.address = PeerAddress(of: client)
        transport.accepted(connection)
    }

    /// `host:port` of the other end (admin connections only: audit lines).
    static func peerAddress(_ client: UnsafeMutablePointer<uv_tcp_t>) -> String {
        var storage = sockaddr_storage()
        var length = Int32(MemoryLayout<sockaddr_storage>.size)
        guard withSocketAddress(&storage, { uv_tcp_getpeername(client, $0, &length) }) == 0 else { return "unknown" }
        var text = [CChar](repeating: 0, count: 64)
        let family = Int32(storage.ss_family)
        _ = withSocketAddress(&storage) { address in
            family == AF_INET6
                ? UnsafeRawPointer(address).withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { uv_ip6_name($0, &text, text.count) }
                : UnsafeRawPointer(address).withMemoryRebound(to: sockaddr_in.self, capacity: 1) { uv_ip4_name($0, &text, text.count) }
        }
        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(host)]:\(UVKit.port(of: storage))" : "\(host):\(UVKit.port(of: storage))"
    }

    /// Stops accepting. The handle is freed in its close callback.
    func close() {
        handle.closeAndFree()
    }
}
