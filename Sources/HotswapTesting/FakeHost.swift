import GameABI

/// An in-memory engine for unit tests of a game module: no server, no
/// sockets, no threads. It implements every member of `game_state_table`
/// (ABI 1.5) over in-memory stores with the engine's rules and status
/// codes, and drives the module's exports as the engine would: one reply
/// per request, hooks, timers and ticks on a virtual clock, logins, resume,
/// reload, rollback and restart.
///
/// Test code calls it from one thread. Each host is independent (the C
/// callbacks find their host through the table's `engine` pointer), so
/// tests may run in parallel.
public final class FakeHost {
    /// The module serving.
    public internal(set) var module: FakeModule
    /// What the serving module declared.
    var schema: FakeSchema
    /// The serving module's name and version, as it described itself.
    public var moduleName: String { schema.name }
    public var moduleVersion: String { schema.version }
    var fields: [FakeFieldSpec] { schema.fields }
    var bindings: [FakeBinding]
    /// The module that served before the last reload or rollback.
    var previous: (module: FakeModule, schema: FakeSchema)?

    public let settings: [String: String]
    public let authMode: FakeAuthMode
    public let limits: FakeLimits
    /// Contract breaches the module committed (a second reply, output
    /// during a migration, a limit exceeded, a stale id, a request left
    /// without a reply, ...): each also came back to the module as the
    /// engine's status code. A test can assert it stays empty.
    public internal(set) var violations: [String] = []
    /// What the module logged, as "LEVEL text".
    public internal(set) var logs: [String] = []

    var state = FakeState()
    /// Virtual monotonic time, nanoseconds; starts at 0.
    var clock: UInt64 = 0
    var connections: [FakeSession] = []
    /// The module call in progress, if any.
    var call: FakeCall?
    /// Sessions whose close was asked during module calls.
    var pendingCloses: [game_id] = []
    var tokenCounter: UInt64 = 0
    let table: UnsafeMutablePointer<game_state_table>

    /// Loads `module` as the engine does at start: checks its ABI version,
    /// runs `describe` and binds its schema. Throws with the reason when
    /// the engine would refuse it.
    public init(_ module: FakeModule, settings: [String: String] = [:], auth: FakeAuthMode = .open,
                limits: FakeLimits = .init()) throws
    {
        self.settings = settings
        authMode = auth
        self.limits = limits
        let schema = try FakeSchema.describe(module)
        if auth != .open, module.auth == nil {
            throw FakeHostError("the module exports no hotswap_auth, and the auth mode makes every login go through the engine's check")
        }
        self.module = module
        self.schema = schema
        var fresh = FakeState()
        bindings = try fresh.store.bind(schema.fields, live: [], rollback: false)
        state = fresh
        table = .allocate(capacity: 1)
        table.initialize(to: FakeTable.make(engine: nil))
        table.pointee.engine = Unmanaged.passUnretained(self).toOpaque()
    }

    deinit {
        table.deinitialize(count: 1)
        table.deallocate()
    }

    static func of(_ table: UnsafePointer<game_state_table>?) -> FakeHost {
        Unmanaged<FakeHost>.fromOpaque(table!.pointee.engine!).takeUnretainedValue()
    }

    // MARK: - Connections

    /// A new connection with a fresh session (fields at their defaults).
    /// Past `FakeLimits.maxSessions` the connection is refused as the
    /// engine does: it is closed and its only event is the SERVER_FULL line.
    public func connect() -> FakeSession {
        guard state.sessions.count < limits.maxSessions else {
            let refused = FakeSession(id: 0, connected: false)
            refused.leftover = [FakeReplies.serverFull]
            return refused
        }
        let connection = FakeSession(id: state.openSession(), connected: true)
        connections.append(connection)
        return connection
    }

    /// Sends one request line (without its terminator) and returns the one
    /// reply it gets: the module's, the engine's default line when the
    /// module sent none, or, for a login the module deferred
    /// (`auth_login`, `auth_set_secret`), the reply from `hotswap_auth`,
    /// which runs right after. "" when the connection is closed (nothing
    /// runs) or the session closed before its deferred answer.
    @discardableResult
    public func send(_ line: String, from connection: FakeSession) -> String {
        guard connection.isConnected, state.isOpen(connection.id) else { return "" }
        return request(Array(line.utf8), from: connection)
    }

    /// Drains the lines pushed to the connection since the last call
    /// (`send`, `room_broadcast`, and after a RESUME what the session was
    /// sent while away), oldest first. Replies are not events: `send`
    /// returns them.
    public func events(of connection: FakeSession) -> [String] {
        guard connection.isConnected else {
            defer { connection.leftover = [] }
            return connection.leftover
        }
        defer { state.outbox[connection.id] = [] }
        return state.outbox[connection.id] ?? []
    }

    /// The connection drops. A session holding a resume token (with
    /// `resumeGraceMilliseconds` > 0) goes away (`sessionAway` hook) and
    /// waits for a RESUME until the grace runs out on the virtual clock;
    /// any other session ends (`sessionClosed` hook).
    public func disconnect(_ connection: FakeSession) {
        guard connection.isConnected else { return }
        connection.isConnected = false
        let id = connection.id
        guard state.isOpen(id) else { return }
        if limits.resumeGraceMilliseconds > 0, state.tokenOf[id] != nil {
            // What was queued went out on the old connection; a RESUME
            // gets what the session is sent from now on.
            connection.leftover = state.outbox[id] ?? []
            state.outbox[id] = []
            state.sessions[id]?.awayUntil = clock + limits.resumeGraceMilliseconds * 1_000_000
            callHook(module.sessionAway, id)
        } else {
            tearDown(id)
        }
    }

    // MARK: - Looking at the state

    /// An int field of an entity, by name (nil: no such int field or entity).
    public func int(_ field: String, of entity: game_id) -> Int64? {
        guard let b = binding(field, entity, UInt32(GAME_TYPE_INT)),
            let row = try? state.row(of: entity, for: b, type: b.type)
        else { return nil }
        return state.store.int(b, row: row)
    }

    /// A string field of an entity, by name, decoded as UTF-8.
    public func string(_ field: String, of entity: game_id) -> String? {
        guard let b = binding(field, entity, UInt32(GAME_TYPE_STRING)),
            let row = try? state.row(of: entity, for: b, type: b.type)
        else { return nil }
        return String(decoding: state.store.string(b, row: row), as: UTF8.self)
    }

    /// The global entity's id (GAME_GLOBAL_ID).
    public var globalID: game_id { GAME_GLOBAL_ID }

    public func room(named name: String) -> game_id? { state.roomsByName[Array(name.utf8)] }

    /// The room's members in join order (empty for no such room).
    public func members(of room: game_id) -> [game_id] { state.rooms[room]?.members ?? [] }

    /// Every live room, in slot order.
    public var rooms: [game_id] { state.rooms.ids }

    /// The stored player with this key, online or not.
    public func player(key: String) -> game_id? { state.playersByKey[Array(key.utf8)] }

    /// The player the session holds, if any.
    public func player(of session: game_id) -> game_id? { state.sessions[session]?.player }

    /// The room the session is in, if any.
    public func room(of session: game_id) -> game_id? { state.sessions[session]?.room }

    /// Whether the session is alive (connected or away).
    public func isLive(_ session: game_id) -> Bool { state.isOpen(session) }

    /// Whether the session is away, waiting for a RESUME.
    public func isAway(_ session: game_id) -> Bool { state.sessions[session]?.awayUntil != nil }

    /// Whether the module called `session_identified` for the session.
    public func isIdentified(_ session: game_id) -> Bool { state.sessions[session]?.identified ?? false }

    /// Live sessions and pending module timers (ticks not counted).
    public var sessionCount: Int { state.sessions.count }
    public var pendingTimers: Int { state.timers.timerCount }

    /// Virtual time in milliseconds (what `now_ms` returns).
    public var nowMilliseconds: UInt64 { clock / 1_000_000 }

    /// The column a declared field of the entity's kind is bound to.
    func binding(_ name: String, _ entity: game_id, _ type: UInt32) -> FakeBinding? {
        let kind = kindOf(entity)
        guard let index = fields.firstIndex(where: { $0.kind == kind && $0.name == name && $0.type == type }) else {
            return nil
        }
        return bindings[index]
    }
}
