import CLibUV
import GameABI
import Glibc
import Logging

/// Limits the engine enforces on clients and on modules.
struct EngineLimits {
    var maxLineLength = 4096
    var maxConnections = 10_000
    /// Bytes queued for one client that does not read; past it, it is cut off.
    var maxOutputBytes = 1 << 20
    var maxRoomMembers = 256
    var maxRooms = 10_000
    /// Requests per second per session (token bucket); 0 turns it off.
    var rateLimit = 1000
    /// Requests a session may send at once before the rate applies.
    var rateBurst = 2000
    /// Refused requests in a row after which the connection is closed.
    var rateStrikes = 100
    /// Seconds a session may stay silent before the logic identifies it
    /// (login), and after.
    var loginTimeout: UInt64 = 30
    var idleTimeout: UInt64 = 600
}

/// A session: the connection carrying it and the room it is in. Its game
/// fields live in the state store, at the row of its arena slot.
struct SessionRecord {
    let connection: Connection
    var room: GameID?
    /// Set as teardown starts: the module's hook then sees the session
    /// still alive, and a close asked for from the hook is not run twice.
    var closing = false
}

/// A room: its name (engine-owned, for `room_find`) and its members in join
/// order. Its game fields live in the state store.
struct Room {
    var name: [UInt8]
    var members: [GameID]
}

/// The engine: owns the event loop's handles, every session and room, the
/// state store and the current logic module. Everything here runs on the
/// loop's thread; nothing is shared, so nothing is locked.
///
/// One loop turn:
///
///     poll ──▶ read callbacks ──▶ framer ──▶ dispatch ──▶ module.handle
///                                                           │ state table
///                                   Connection.pending ◀────┘ (reply/send)
///     check callback ──▶ flush every connection written to this turn
final class Engine {
    let loop: UnsafeMutablePointer<uv_loop_t>
    let limits: EngineLimits
    var logger: Logger

    // The properties marked `@exclusivity(unchecked)` are read or written on
    // every request; Swift's run-time access tracking on them cost several
    // percent of the CPU under pipelined load (BENCHMARKS.md). The engine is
    // single-threaded and never mutates one of them while iterating it
    // (teardowns collect ids first), which is what the checks guard against.
    @exclusivity(unchecked) var sessions = GenerationalArena<SessionRecord>(kind: .session)
    @exclusivity(unchecked) var rooms = GenerationalArena<Room>(kind: .room)
    var roomsByName: [[UInt8]: GameID] = [:]
    @exclusivity(unchecked) var store = StateStore()

    let loader: ModuleLoader
    var module: LoadedModule
    /// The store columns of the current module's fields, by declared index.
    var bindings: [FieldBinding]
    let table: UnsafeMutablePointer<game_state_table>

    /// The module that served before the last swap, kept for ROLLBACK.
    var previousModule: LoadedModule?
    /// Every module swapped in, oldest first (all still mapped).
    var loadHistory: [LoadedModule] = []
    /// `.migrating` while a reload runs module code on a staged store.
    var phase = Phase.serving
    enum Phase { case serving, migrating }
    /// Set by a swap: the next handle call is timed (the first call into a
    /// new image pays for the Swift runtime's emptied caches).
    var measureNextCall = false
    /// A background load is running (one at a time).
    var reloading = false
    @exclusivity(unchecked) var stats = EngineStats()
    let admin: AdminSettings

    /// The request being handled, for `reply`.
    @exclusivity(unchecked) var current: (session: GameID, connection: Connection)?
    @exclusivity(unchecked) var replied = false
    /// Sessions whose close was asked during a module call.
    var pendingCloses: [GameID] = []
    /// Rooms that may have been left empty during a module call.
    var roomsToCheck: [GameID] = []

    @exclusivity(unchecked) private var flushList: [Connection] = []
    /// Connections whose handle is not yet closed (players and admins).
    private(set) var openConnections = 0
    private let readBuffer: UnsafeMutableRawPointer
    static let readBufferSize = 64 * 1024
    private let flushHandle: UnsafeMutablePointer<uv_check_t>
    private let idleTimer: UnsafeMutablePointer<uv_timer_t>
    private var listener: Listener?
    private var adminListener: Listener?
    var watcher: ModuleWatcher?
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var shutdownTimer: UnsafeMutablePointer<uv_timer_t>?
    private(set) var shuttingDown = false
    private var finished = false

    init(loop: UnsafeMutablePointer<uv_loop_t>, limits: EngineLimits, admin: AdminSettings, logger: Logger,
         loader: ModuleLoader, module: LoadedModule) throws(SchemaError)
    {
        self.loop = loop
        self.admin = admin
        self.limits = limits
        self.logger = logger
        self.loader = loader
        self.module = module
        self.bindings = try store.bind(module.fields)
        self.loadHistory = [module]
        self.stats.imagesMapped = loader.imagesMapped
        store.ensureRows(.global, 1)
        table = .allocate(capacity: 1)
        readBuffer = .allocate(byteCount: Engine.readBufferSize, alignment: 16)
        flushHandle = .allocate(capacity: 1)
        idleTimer = .allocate(capacity: 1)
        flushList.reserveCapacity(1024)
        table.initialize(to: StateTable.make(engine: Unmanaged.passUnretained(self).toOpaque()))
        uv_check_init(loop, flushHandle)
        flushHandle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_check_start(flushHandle) { handle in
            Unmanaged<Engine>.fromOpaque(handle!.pointee.data).takeUnretainedValue().flushAll()
        }
        uv_timer_init(loop, idleTimer)
        idleTimer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(idleTimer, { timer in
            Unmanaged<Engine>.fromOpaque(timer!.pointee.data).takeUnretainedValue().closeIdleSessions()
        }, 1000, 1000)
        // The sweep alone must not keep the loop alive at shutdown.
        uv_unref(UnsafeMutableRawPointer(idleTimer).assumingMemoryBound(to: uv_handle_t.self))
    }

    /// Binds the game port; returns the address actually bound.
    func listen(host: String, port: Int) throws(ListenError) -> (host: String, port: Int) {
        let listener = Listener(engine: self, admin: false)
        let bound = try listener.listen(host: host, port: port, backlog: 511)
        self.listener = listener
        return bound
    }

    /// Binds the admin port; returns the address actually bound.
    func listenAdmin(host: String, port: Int) throws(ListenError) -> (host: String, port: Int) {
        let listener = Listener(engine: self, admin: true)
        let bound = try listener.listen(host: host, port: port, backlog: 16)
        adminListener = listener
        return bound
    }

    /// Runs until shutdown completes.
    func run() {
        installSignalHandlers()
        uv_run(loop, UV_RUN_DEFAULT)
    }

    // MARK: - Read buffer shared by every connection

    var readBufferBase: UnsafeRawPointer { UnsafeRawPointer(readBuffer) }

    func sharedReadBuffer() -> uv_buf_t {
        uv_buf_init(readBuffer.assumingMemoryBound(to: CChar.self), UInt32(Engine.readBufferSize))
    }

    // MARK: - Connections

    /// A new client: give it a session, or refuse it when full.
    func accepted(_ connection: Connection) {
        if connection.isAdmin {
            if shuttingDown || stats.adminConnections >= AdminSettings.maxConnections {
                connection.enqueue(line: Replies.serverFull)
                connection.closeAfterFlush()
                return
            }
            stats.adminConnections += 1
            connection.countedAsAdmin = true
            if connection.startReading() < 0 { connection.abort() }
            return
        }
        if shuttingDown || sessions.count >= limits.maxConnections {
            stats.serverFull += 1
            connection.enqueue(line: Replies.serverFull)
            connection.closeAfterFlush()
            return
        }
        let id = sessions.insert(SessionRecord(connection: connection, room: nil))
        store.ensureRows(.session, sessions.capacity)
        connection.sessionID = id
        connection.lastActivity = uv_now(loop)
        connection.limiter = RateLimiter(now: connection.lastActivity, burst: limits.rateBurst)
        if connection.startReading() < 0 { connection.abort() }
    }

    /// Bytes from a client: frame them and dispatch each line.
    func received(_ connection: Connection, _ bytes: UnsafeRawBufferPointer) {
        if connection.isAdmin {
            adminReceived(connection, bytes)
            return
        }
        let now = uv_now(loop)
        connection.lastActivity = now
        let outcome = connection.framer.feed(bytes) { line in
            if connection.limiter.admit(now: now, rate: limits.rateLimit, burst: limits.rateBurst) {
                dispatch(line, from: connection)
            } else {
                stats.rateLimited += 1
                if connection.limiter.strikes >= limits.rateStrikes {
                    stats.rateLimitCloses += 1
                    logger.warning("closing a session that keeps flooding", metadata: ["session": "\(connection.sessionID)"])
                    connection.enqueue(line: Replies.rateLimitedClosing)
                    endSession(of: connection, flush: true)
                } else {
                    connection.enqueue(line: Replies.rateLimited)
                }
            }
            return connection.state == .open
        }
        if outcome == .lineTooLong {
            stats.lineTooLong += 1
            connection.enqueue(line: Replies.lineTooLong)
            endSession(of: connection, flush: true)
        }
    }

    /// Once a second: close sessions silent for longer than their timeout
    /// (`loginTimeout` until the logic identifies them, then `idleTimeout`).
    func closeIdleSessions() {
        let now = uv_now(loop)
        var expired: [GameID] = []
        sessions.forEachID { id in
            guard let record = sessions[id], !record.closing else { return }
            let connection = record.connection
            let limit = (connection.identified ? limits.idleTimeout : limits.loginTimeout) * 1000
            if limit > 0 && now >= connection.lastActivity + limit { expired.append(id) }
        }
        for id in expired {
            guard let connection = sessions[id]?.connection else { continue }
            stats.idleCloses += 1
            connection.enqueue(line: connection.identified ? Replies.idleTimeout : Replies.loginTimeout)
            endSession(of: connection, flush: true)
        }
    }

    /// The peer closed (cleanly: pending replies still go out) or the socket
    /// failed (nothing more can be sent).
    func peerClosed(_ connection: Connection, clean: Bool) {
        if clean && connection.isAdmin && connection.adminWaiting {
            // `echo RELOAD | nc`: the operator half-closed; answer first.
            connection.closeWhenAnswered = true
            connection.stopReading()
        } else if clean {
            endSession(of: connection, flush: true)
        } else {
            connection.abort()
        }
    }

    /// Called once per connection, as its handle starts closing for any
    /// reason: a session still attached to it is torn down now.
    func connectionClosing(_ connection: Connection) {
        connection.adminBacklog.removeAll()
        if connection.countedAsAdmin {
            connection.countedAsAdmin = false
            stats.adminConnections -= 1
        }
        if sessions.contains(connection.sessionID) {
            tearDown(connection.sessionID)
        }
    }

    /// Ends a connection's session and closes it.
    func endSession(of connection: Connection, flush: Bool) {
        if sessions.contains(connection.sessionID) { tearDown(connection.sessionID) }
        if flush { connection.closeAfterFlush() } else { connection.abort() }
    }

    /// Removes a session: the module hears of it first (its room and fields
    /// are still there to read), then it leaves its room and its row resets.
    func tearDown(_ id: GameID) {
        guard let slot = sessions.slotIndex(of: id), !sessions[slot: slot].closing else { return }
        sessions[slot: slot].closing = true
        if let hook = module.sessionClosed {
            withModuleCall { hook(id.raw, table) }
        }
        _ = leaveRoom(id)
        destroyRoomsLeftEmpty()
        guard sessions.contains(id) else { return }
        let connection = sessions[slot: slot].connection
        sessions.remove(id)
        store.resetRow(.session, slot)
        if connection.state == .open { connection.closeAfterFlush() }
    }

    // MARK: - Output batching

    func markForFlush(_ connection: Connection) {
        flushList.append(connection)
    }

    /// Once per loop turn, after all reads: one write per connection.
    private func flushAll() {
        var index = 0
        // flush() may queue more connections (a finished close); keep going.
        while index < flushList.count {
            let connection = flushList[index]
            if connection.overOutputLimit {
                stats.outputOverflows += 1
                logger.warning("client not reading, output over limit; closing", metadata: [
                    "session": "\(connection.sessionID)", "bytes": "\(connection.bufferedOutput)"])
                connection.abort()
            } else {
                connection.flush()
            }
            index += 1
        }
        flushList.removeAll(keepingCapacity: true)
        if flushList.capacity > 65_536 { flushList = []; flushList.reserveCapacity(1024) }
        if shuttingDown && openConnections == 0 { finishShutdown() }
    }

    func connectionOpened() { openConnections += 1 }

    /// A connection's handle is closed and freed.
    func connectionClosed() {
        openConnections -= 1
        if shuttingDown && openConnections == 0 { finishShutdown() }
    }

    // MARK: - Shutdown

    private func installSignalHandlers() {
        signal(SIGPIPE, SIG_IGN)
        // A parent may hand us a mask that blocks these (test runners and
        // some supervisors do); blocked, they would never reach libuv.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        sigprocmask(SIG_UNBLOCK, &set, nil)
        for number in [SIGINT, SIGTERM] {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop, handle)
            handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(handle, { handle, signal in
                let engine = Unmanaged<Engine>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                engine.logger.notice("signal \(signal): shutting down")
                engine.shutdown(grace: 2000)
            }, number)
            signals.append(handle)
        }
    }

    /// Stops accepting, tells every session, and closes each once its output
    /// is written; after `grace` milliseconds whatever is left is cut off.
    func shutdown(grace: UInt64) {
        guard !shuttingDown else { return }
        shuttingDown = true
        listener?.close()
        adminListener?.close()
        watcher?.stop()
        watcher = nil
        // Everyone hears of the shutdown before anyone hears of a departure.
        var ids: [GameID] = []
        sessions.forEachID { ids.append($0) }
        for id in ids { sessions[id]?.connection.enqueue(line: Replies.shutdown) }
        for id in ids { tearDown(id) }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        uv_timer_start(timer, { timer in
            Unmanaged<Engine>.fromOpaque(timer!.pointee.data).takeUnretainedValue().finishShutdown()
        }, grace, 0)
        shutdownTimer = timer
    }

    /// Closes the engine's own handles; the loop then runs dry and returns.
    private func finishShutdown() {
        // Runs once. (It can be reached again from a connection's close
        // callback after the handles below are freed: never read them then.)
        guard !finished else { return }
        finished = true
        // Connections still draining after the grace period are cut off.
        // Every TCP handle not yet closing is a connection: the listeners
        // were closed when shutdown began.
        uv_walk(loop, { handle, _ in
            guard let handle, uv_is_closing(handle) == 0, handle.pointee.type == UV_TCP,
                let data = handle.pointee.data
            else { return }
            Unmanaged<Connection>.fromOpaque(data).takeUnretainedValue().abort()
        }, nil)
        Engine.closeAndFree(flushHandle)
        Engine.closeAndFree(idleTimer)
        for handle in signals { Engine.closeAndFree(handle) }
        if let shutdownTimer { Engine.closeAndFree(shutdownTimer) }
    }

    /// Closes a handle the engine owns and frees it in the close callback.
    static func closeAndFree<Handle>(_ handle: UnsafeMutablePointer<Handle>) {
        let raw = UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
        guard uv_is_closing(raw) == 0 else { return }
        uv_close(raw) { handle in handle?.deallocate() }
    }
}
