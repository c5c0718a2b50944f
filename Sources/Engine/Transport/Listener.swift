import CLibUV
import UVKit

/// What a listening port serves.
enum ListenerRole: String, Sendable {
    case game
    case admin
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
    private let handle: UnsafeMutablePointer<uv_tcp_t>
    private(set) var boundPort = 0

    /// Binds and listens; port 0 picks a free port. On failure the handle
    /// is closed and freed, and nothing refers to the listener any more.
    init(transport: Transport, role: ListenerRole, host: String, port: Int, backlog: Int32) throws(ListenError) {
        self.transport = transport
        self.role = role
        guard var address = socketAddress(host: host, port: port) else { throw .badAddress(host: host) }
        handle = .allocateHandle()
        uv_tcp_init(transport.loop, handle)
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

    private func accept(status: Int32) {
        guard status == 0 else {
            transport.logger.warning("accept failed: \(UVError(status))")
            return
        }
        let client = UnsafeMutablePointer<uv_tcp_t>.allocateHandle()
        uv_tcp_init(transport.loop, client)
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
        transport.accepted(connection)
    }

    /// Stops accepting. The handle is freed in its close callback.
    func close() {
        handle.closeAndFree()
    }
}
