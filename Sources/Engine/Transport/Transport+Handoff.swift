import CLibUV
import UVKit

/// The transport's sections of an upgrade's handoff: the listening sockets,
/// and every connection that is not closed yet.
///
///     listeners     per listener: role, descriptor, host, port, backlog
///     connections   per connection: descriptor, role, closing, peer,
///                   unsent output, then its handler's record (written and
///                   read by the engine: the transport moves bytes only)
///
/// Every descriptor is checked before it is taken (`HandedOverDescriptors`:
/// passed by the old engine, not one of the engine's own, once; that each
/// is a stream socket, `SocketCheck` makes sure before the engine commits).
///
/// A connection's unsent output is everything it accepted that the kernel
/// has not taken, in order, including the tail of a write libuv was still
/// doing (`Connection.unsentOutput`): the next engine writes it once. A
/// closing connection (draining its last replies, or lingering for the
/// peer's FIN) stays closing: the next engine finishes the close.
extension Transport {
    func encodeListeners(into writer: inout HandoffWriter) {
        writer.u32(UInt32(listeners.count))
        for listener in listeners {
            writer.string(listener.role.rawValue)
            writer.i32(listener.fileDescriptor)
            writer.string(listener.host)
            writer.u32(UInt32(listener.boundPort))
            writer.i32(listener.backlog)
        }
    }

    /// Listens again on the handed-over sockets; returns each one's role,
    /// host and port.
    func restoreListeners(from reader: inout HandoffReader, descriptors: inout HandedOverDescriptors) throws
        -> [(role: ListenerRole, host: String, port: Int)]
    {
        let count = try reader.count("listeners", elementSize: 16)
        var restored: [(role: ListenerRole, host: String, port: Int)] = []
        for _ in 0..<count {
            guard let role = ListenerRole(rawValue: try reader.string("listener role")) else {
                throw HandoffError.invalid("listener role")
            }
            let fd = try reader.i32("listener descriptor")
            let host = try reader.string("listener host")
            let port = Int(try reader.u32("listener port"))
            let backlog = try reader.i32("listener backlog")
            try descriptors.take(fd, "a listener")
            try adoptListener(fd, role: role, host: host, port: port, backlog: backlog)
            restored.append((role, host, port))
        }
        try reader.finish("listeners section")
        return restored
    }

    /// Connections that are open or closing, in registry order; `handler`
    /// writes each one's handler record.
    func encodeConnections(into writer: inout HandoffWriter, handler: (Connection, inout HandoffWriter) -> Void) {
        let live = connections.filter { $0.state != .closed }
        writer.u32(UInt32(live.count))
        for connection in live {
            writer.i32(connection.fileDescriptor)
            writer.string(connection.role.rawValue)
            writer.bool(connection.state != .open)
            writer.string(connection.peer)
            writer.bytes(connection.unsentOutput)
            handler(connection, &writer)
        }
    }

    /// Takes the handed-over connections back, each with its unsent output
    /// queued and its handler (from `handler`, which reads the handler's
    /// record and attaches it; nil for a closing one). Open connections
    /// read again, closing ones finish closing, once the loop runs.
    ///
    /// Nothing here reads or writes a socket, and a failure leaves every
    /// descriptor open: the engine can still fall back to the previous one.
    func restoreConnections(from reader: inout HandoffReader, descriptors: inout HandedOverDescriptors,
                            handler: (Connection, _ closing: Bool, inout HandoffReader) throws -> Void) throws -> [Connection]
    {
        let count = try reader.count("connections", elementSize: 18)
        var restored: [Connection] = []
        restored.reserveCapacity(count)
        for _ in 0..<count {
            let fd = try reader.i32("connection descriptor")
            guard let role = ListenerRole(rawValue: try reader.string("connection role")) else {
                throw HandoffError.invalid("connection role")
            }
            let closing = try reader.bool("connection closing")
            let peer = try reader.string("connection peer")
            let output = try reader.bytes("unsent output")
            try descriptors.take(fd, "a connection")
            let connection = try adoptHandedOver(fd, as: role)
            connection.peer = peer
            connection.restoreOutput(output)
            try handler(connection, closing, &reader)
            restored.append(connection)
        }
        try reader.finish("connections section")
        for connection in restored {
            if connection.handler == nil {
                connection.closeAfterFlush()
            } else {
                try connection.startReading()
            }
        }
        return restored
    }

    /// A connection on a handed-over socket, registered, not yet reading.
    /// On failure the handle is left open, and so the descriptor (see
    /// `restoreConnections`).
    private func adoptHandedOver(_ fd: Int32, as role: ListenerRole) throws -> Connection {
        let stream = UnsafeMutablePointer<uv_tcp_t>.allocateHandle()
        uvMust(uv_tcp_init(loop, stream), "uv_tcp_init")
        let status = uv_tcp_open(stream, uv_os_sock_t(fd))
        guard status == 0 else { throw UVError(status) }
        // No uv_tcp_nodelay: TCP_NODELAY is the socket's, set at accept, and
        // a syscall per connection here is 10,000 in the hold.
        let connection = Connection(transport: self, stream: stream, role: role)
        register(connection)
        return connection
    }

    /// The descriptors these sections name: they must stay open across the
    /// exec (close-on-exec cleared on exactly these and the engine's own).
    var handedOverDescriptors: [Int32] {
        listeners.map(\.fileDescriptor) + connections.filter { $0.state != .closed }.map(\.fileDescriptor)
    }
}
