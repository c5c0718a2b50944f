import CLibUV
import UVKit

/// The transport's sections of an upgrade's handoff: the listening sockets,
/// and every connection that is not closed yet.
///
///     listeners     per listener: role, descriptor, host, port, backlog
///     connections   per connection: descriptor, role, closing, peer,
///                   unsent output, then its handler's record (see
///                   `ConnectionHandlerRecord`: the transport moves bytes
///                   only)
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
struct ListenersHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.listeners

    /// One listening socket.
    struct Record: HandoffRecord, Equatable {
        var role: ListenerRole
        var descriptor: Int32
        var host: String
        var port: Int
        var backlog: Int32

        func encode(into writer: inout HandoffWriter) {
            writer.string(role.rawValue)
            writer.i32(descriptor)
            writer.string(host)
            writer.u32(UInt32(port))
            writer.i32(backlog)
        }

        init(role: ListenerRole, descriptor: Int32, host: String, port: Int, backlog: Int32) {
            self.role = role
            self.descriptor = descriptor
            self.host = host
            self.port = port
            self.backlog = backlog
        }

        init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
            guard let role = ListenerRole(rawValue: try reader.string("listener role")) else {
                throw .invalid("listener role")
            }
            self.role = role
            descriptor = try reader.i32("listener descriptor")
            host = try reader.string("listener host")
            port = Int(try reader.u32("listener port"))
            backlog = try reader.i32("listener backlog")
        }
    }

    var listeners: [Record]

    init(listeners: [Record]) { self.listeners = listeners }

    func encode(into writer: inout HandoffWriter) { writer.records(listeners) }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        listeners = try reader.records("listeners", elementSize: 16, format: format)
    }
}

/// The connections section: every connection that is open or closing, in
/// the transport's registry order.
struct ConnectionsHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.connections

    /// One connection and what its handler carries.
    struct Record: HandoffRecord, Equatable {
        var descriptor: Int32
        var role: ListenerRole
        /// Draining its last replies or lingering for the peer's FIN: it
        /// has no handler any more.
        var closing: Bool
        var peer: String
        var unsentOutput: [UInt8]
        var handler: ConnectionHandlerRecord

        init(descriptor: Int32, role: ListenerRole, closing: Bool, peer: String, unsentOutput: [UInt8],
             handler: ConnectionHandlerRecord)
        {
            self.descriptor = descriptor
            self.role = role
            self.closing = closing
            self.peer = peer
            self.unsentOutput = unsentOutput
            self.handler = handler
        }

        func encode(into writer: inout HandoffWriter) {
            writer.i32(descriptor)
            writer.string(role.rawValue)
            writer.bool(closing)
            writer.string(peer)
            writer.bytes(unsentOutput)
            handler.encode(into: &writer)
        }

        init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
            descriptor = try reader.i32("connection descriptor")
            guard let role = ListenerRole(rawValue: try reader.string("connection role")) else {
                throw .invalid("connection role")
            }
            self.role = role
            closing = try reader.bool("connection closing")
            peer = try reader.string("connection peer")
            unsentOutput = try reader.bytes("unsent output")
            handler = try ConnectionHandlerRecord(from: &reader, format: format)
        }

        /// A closing connection has no session; a player is on the game
        /// port, an admin on the admin port.
        func validate() throws(HandoffError) {
            switch handler {
            case .none: break
            case _ where closing: throw .invalid("a closing connection has a session")
            case .player(let session):
                guard role == .game else { throw .invalid("a player on the admin port") }
                try session.validate()
            case .admin(let session):
                guard role == .admin else { throw .invalid("an admin on the game port") }
                try session.validate()
            }
        }
    }

    var connections: [Record]

    init(connections: [Record]) { self.connections = connections }

    func encode(into writer: inout HandoffWriter) { writer.records(connections) }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        connections = try reader.records("connections", elementSize: 18, format: format)
    }

    /// Each record's rules, and one connection per session.
    func validate() throws(HandoffError) {
        var sessions = Set<GameID>()
        for connection in connections {
            try connection.validate()
            if case .player(let session) = connection.handler, !sessions.insert(session.id).inserted {
                throw .invalid("two connections for \(session.id)")
            }
        }
    }
}

extension Transport {
    /// The listeners as they go over.
    var listenersHandoff: ListenersHandoff {
        ListenersHandoff(listeners: listeners.map {
            .init(role: $0.role, descriptor: $0.fileDescriptor, host: $0.host, port: $0.boundPort, backlog: $0.backlog)
        })
    }

    /// Listens again on the handed-over sockets.
    func restore(_ section: ListenersHandoff, descriptors: inout HandedOverDescriptors) throws {
        for listener in section.listeners {
            try descriptors.take(listener.descriptor, "a listener")
            try adoptListener(listener.descriptor, role: listener.role, host: listener.host, port: listener.port,
                              backlog: listener.backlog)
        }
    }

    /// Connections that are open or closing, in registry order; `handler`
    /// gives each one's handler record.
    func connectionsHandoff(handler: (Connection) -> ConnectionHandlerRecord) -> ConnectionsHandoff {
        ConnectionsHandoff(connections: connections.filter { $0.state != .closed }.map { connection in
            .init(descriptor: connection.fileDescriptor, role: connection.role, closing: connection.state != .open,
                  peer: connection.peer, unsentOutput: connection.unsentOutput, handler: handler(connection))
        })
    }

    /// Takes the handed-over connections back, each with its unsent output
    /// queued and its handler (from `handler`, which makes the handler a
    /// record describes and attaches it; nothing for a closing one). Open
    /// connections read again, closing ones finish closing, once the loop
    /// runs.
    ///
    /// Nothing here reads or writes a socket, and a failure leaves every
    /// descriptor open: the engine can still fall back to the previous one.
    func restore(_ section: ConnectionsHandoff, descriptors: inout HandedOverDescriptors,
                 handler: (Connection, ConnectionHandlerRecord) throws -> Void) throws
    {
        var restored: [Connection] = []
        restored.reserveCapacity(section.connections.count)
        for record in section.connections {
            try descriptors.take(record.descriptor, "a connection")
            let connection = try adoptHandedOver(record.descriptor, as: record.role)
            connection.peer = record.peer
            connection.restoreOutput(record.unsentOutput)
            try handler(connection, record.handler)
            restored.append(connection)
        }
        for connection in restored {
            if connection.handler == nil {
                connection.closeAfterFlush()
            } else {
                try connection.startReading()
            }
        }
    }

    /// A connection on a handed-over socket, registered, not yet reading.
    /// On failure the handle is left open, and so the descriptor (see
    /// `restore(_:descriptors:handler:)`).
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
