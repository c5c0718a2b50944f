import CLibUV
import FaultGuard
import Logging
import UVKit

/// What the transport asks of the engine.
protocol TransportDelegate: AnyObject {
    /// A new connection: give it a handler and start reading, or refuse it.
    func accepted(_ connection: Connection)
    /// A connection's handle is closed and freed.
    func connectionClosed(_ connection: Connection)
}

/// The engine's sockets: the listeners, a registry of every live
/// connection, the one read buffer they share, and the list of connections
/// written to during this loop turn, flushed once at its end: first those
/// that asked something this turn (their replies), then those only told
/// something (pushed events).
///
///     poll ──▶ read callbacks ──▶ handlers ──▶ Connection.enqueue
///     check callback ──▶ flush every connection written to this turn
final class Transport {
    let loop: UnsafeMutablePointer<uv_loop_t>
    let logger: Logger
    /// Bytes queued for one client that does not read; past it, it is cut off.
    let maxOutputBytes: Int
    /// Bytes queued for all clients together (`--max-output-total`); past
    /// it, the game clients with the largest queues that are not draining
    /// are cut off (`OutputBudget`).
    let maxOutputTotal: Int
    /// How long a closing connection waits for the peer's FIN.
    let lingerMilliseconds: UInt64
    unowned(unsafe) var delegate: (any TransportDelegate)?

    /// Readable for an engine upgrade (Transport+Handoff.swift).
    private(set) var listeners: [Listener] = []
    /// Every connection whose handle is not yet closed (players, admins,
    /// metrics scrapers).
    /// Every connection whose handle is not closed yet.
    var connections: [Connection] { registry.elements }
    private var registry = SlotList<Connection>()
    /// How many of `connections` each role has (by `ListenerRole.index`).
    private var roleCounts = [Int](repeating: 0, count: ListenerRole.allCases.count)
    // `@exclusivity(unchecked)` on the properties touched on every request
    // or every loop turn: the class is used from the loop thread only, and
    // Swift's dynamic exclusivity checks on them cost about 10% of a PING
    // (BENCHMARKS.md, "Current build (exclusivity checks off on the hot
    // properties)").
    /// Loop turns so far (counted where output is flushed, once per turn):
    /// what happened in one turn can be told from the next.
    @exclusivity(unchecked) private(set) var turns: UInt64 = 0
    @exclusivity(unchecked) private var flushList: [Connection] = []
    /// The connection whose bytes are being handled (set around its read
    /// callback): what is queued for it meanwhile answers its own request.
    @exclusivity(unchecked) unowned(unsafe) var requester: Connection?
    private let readBuffer: UnsafeMutableRawPointer
    static let readBufferSize = 64 * 1024
    private let flushHandle: UnsafeMutablePointer<uv_check_t>
    /// Active while `busyPoll` says spin: an active idle handle makes libuv
    /// poll with a zero timeout instead of blocking (see BusyPoll).
    private let spinHandle: UnsafeMutablePointer<uv_idle_t>
    @exclusivity(unchecked) private var busyPoll: BusyPoll
    /// Set when shutdown starts: the loop stops spinning.
    var stopping = false
    /// Clients cut off because their output passed `maxOutputBytes`.
    private(set) var outputOverflows = 0
    /// Bytes every connection holds for its peer, kept up to date by each
    /// connection as its writer grows and shrinks (O(1) per write): what
    /// `--max-output-total` bounds.
    @exclusivity(unchecked) var queuedOutput = 0
    /// Bytes queued for other connections while a request is handled: the
    /// session that sent it is charged for them (`RateLimiter.charge`).
    @exclusivity(unchecked) var fanOutBytes = 0
    /// Chooses and cuts off clients when `queuedOutput` passes the budget.
    private(set) var outputBudget: OutputBudget
    /// Game connections (sessions and refusals still closing) at which the
    /// game port stops accepting: what the open-file limit allows less a
    /// reserve for everything else (`DescriptorReserve`). Set when the
    /// loop starts.
    var gameConnectionCap = Int.max
    /// Times the game port stopped accepting at `gameConnectionCap`.
    private(set) var acceptPauses = 0
    private var lastPauseWarning: UInt64?

    init(loop: UnsafeMutablePointer<uv_loop_t>, maxOutputBytes: Int, maxOutputTotal: Int = Int.max,
         lingerMilliseconds: UInt64, busyPollMicroseconds: Int = 0, logger: Logger)
    {
        self.loop = loop
        self.maxOutputTotal = maxOutputTotal
        outputBudget = OutputBudget(limit: maxOutputTotal)
        busyPoll = BusyPoll(maxWindow: UInt64(busyPollMicroseconds) * 1000)
        spinHandle = .allocateHandle()
        self.maxOutputBytes = maxOutputBytes
        self.lingerMilliseconds = lingerMilliseconds
        self.logger = logger
        readBuffer = .allocate(byteCount: Transport.readBufferSize, alignment: 16)
        flushList.reserveCapacity(1024)
        flushHandle = .allocateHandle()
        uvMust(uv_check_init(loop, flushHandle), "uv_check_init")
        flushHandle.context = UVContext.pointer(to: self)
        uvMust(uv_check_start(flushHandle) { handle in
            UVContext.object(handle!.pointee.data, as: Transport.self).flushAll()
        }, "uv_check_start")
        uvMust(uv_idle_init(loop, spinHandle), "uv_idle_init")
        uv_unref(spinHandle.handle)
    }

    deinit { readBuffer.deallocate() }

    /// Binds a port for `role`; returns the port actually bound.
    func listen(_ role: ListenerRole, host: String, port: Int, backlog: Int32) throws(ListenError) -> Int {
        let listener = try Listener(transport: self, role: role, host: host, port: port, backlog: backlog)
        listeners.append(listener)
        return listener.boundPort
    }

    /// Listens on a socket a previous engine bound (see `Listener`).
    func adoptListener(_ fd: Int32, role: ListenerRole, host: String, port: Int, backlog: Int32) throws(ListenError) {
        listeners.append(try Listener(transport: self, role: role, adopting: fd, host: host, port: port, backlog: backlog))
    }

    /// Takes over a connected stream socket `fd` as if a listener for `role`
    /// had accepted it: in-process tests drive handlers through one end of
    /// a socketpair (the spirit of swift-nio's `EmbeddedChannel`, with the
    /// real transport), and an engine that inherits descriptors can use it.
    @discardableResult
    func adopt(_ fd: Int32, as role: ListenerRole) throws(UVError) -> Connection {
        let stream = UnsafeMutablePointer<uv_tcp_t>.allocateHandle()
        uvMust(uv_tcp_init(loop, stream), "uv_tcp_init")
        let connection = Connection(transport: self, stream: stream, role: role)
        register(connection)
        let status = uv_tcp_open(stream, uv_os_sock_t(fd))
        guard status == 0 else {
            connection.abort()
            throw UVError(status)
        }
        accepted(connection)
        return connection
    }

    /// Stops accepting on every port, or on every port but `kept`'s (at
    /// shutdown the metrics port answers `/readyz` 503 until the end).
    func closeListeners(except kept: ListenerRole? = nil) {
        for listener in listeners where listener.role != kept { listener.close() }
        listeners.removeAll { $0.role != kept }
    }

    /// Connections of `role` whose handle is not yet closed.
    func connectionCount(_ role: ListenerRole) -> Int { roleCounts[role.index] }

    // MARK: - The registry

    func register(_ connection: Connection) {
        registry.insert(connection)
        roleCounts[connection.role.index] += 1
    }

    func accepted(_ connection: Connection) {
        delegate?.accepted(connection)
    }

    /// From the connection's close callback: forget it (O(1): the last one
    /// takes its place).
    func connectionClosed(_ connection: Connection) {
        if registry.remove(connection) { roleCounts[connection.role.index] -= 1 }
        delegate?.connectionClosed(connection)
        connection.handler = nil
        if connection.role == .game {
            for listener in listeners where listener.paused { listener.resumeAccepting() }
        }
    }

    /// Game descriptors reached `gameConnectionCap`.
    var gameDescriptorsFull: Bool { roleCounts[ListenerRole.game.index] >= gameConnectionCap }

    /// The game port stopped accepting: counted, and said at most once in
    /// ten seconds (a connect flood pauses it every turn).
    func acceptPaused() {
        acceptPauses += 1
        let now = uv_now(loop)
        if lastPauseWarning.map({ now >= $0 + 10_000 }) ?? true {
            lastPauseWarning = now
            logger.warning("game port paused: \(gameConnectionCap) game connections reach the open-file limit less --fd-reserve; new players wait in the backlog until one closes")
        }
    }

    /// Cuts off every connection still open (the end of a shutdown).
    func abortAll() {
        for connection in connections { connection.abort() }
    }

    // MARK: - Reading

    /// The buffer every connection reads into (see `Connection.onAlloc`).
    func sharedReadBuffer() -> uv_buf_t {
        uv_buf_init(readBuffer.assumingMemoryBound(to: CChar.self), UInt32(Transport.readBufferSize))
    }

    /// The first `count` bytes of the shared buffer, as just read.
    func readBytes(count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: readBuffer, count: count)
    }

    // MARK: - Output batching

    func markForFlush(_ connection: Connection) {
        flushList.append(connection)
    }

    /// Once per loop turn, after all reads: one write per connection (and
    /// once more by an upgrade, before it hands over what is left).
    ///
    /// Replies go first. Under fan-out most writes of a turn carry pushed
    /// events (a MOVE is told to every other member of the room), and each
    /// write costs about the same few microseconds whatever it holds; in the
    /// order connections were first written to, a reply waited behind the
    /// event writes queued before it (a SAY's own reply behind the 15 it
    /// caused). Replies first, then the connections only told something:
    /// every line still leaves in this turn, each connection's lines in
    /// their order, one write per connection. At 5,000 to 7,500 play
    /// requests/s from 10,000 players the median reply fell by about a
    /// third (docs/BENCHMARKS.md, "The load tool's latency").
    func flushAll() {
        turns &+= 1
        fg_loop_turn()
        if busyPoll.maxWindow > 0 {
            // Whether the next poll may block: a turn had I/O to answer iff
            // someone was written to; shutting down stops spinning.
            let wasSpinning = busyPoll.spinning
            let spin = busyPoll.afterPoll(active: !flushList.isEmpty && !stopping, now: uv_hrtime())
            if spin && !wasSpinning { uv_idle_start(spinHandle) { _ in } }
            if !spin && wasSpinning { uv_idle_stop(spinHandle) }
        }
        // Once per turn, O(1) unless over budget: a client cut off here is
        // torn down before the flush, so what its end tells others goes
        // out in this turn.
        if queuedOutput > maxOutputTotal { outputBudget.enforce(on: self) }
        var index = 0
        while index < flushList.count {
            let connection = flushList[index]
            if connection.repliedThisTurn && connection.queuedForFlush { flush(connection) }
            index += 1
        }
        index = 0
        // flush() may queue more connections (a finished close); keep going.
        while index < flushList.count {
            let connection = flushList[index]
            if connection.queuedForFlush { flush(connection) }
            index += 1
        }
        flushList.removeAll(keepingCapacity: true)
        if flushList.capacity > 65_536 { flushList = []; flushList.reserveCapacity(1024) }
    }

    /// The count the previous engine had (an upgrade).
    func adopt(outputOverflows restored: Int) { outputOverflows = restored }

    private func flush(_ connection: Connection) {
        connection.repliedThisTurn = false
        if connection.overOutputLimit {
            // It stays marked as queued: closing it must not queue it again
            // (its session's end asks for a close after flush). The second
            // pass finds it closed.
            guard connection.state != .closed else { return }
            outputOverflows += 1
            logger.warning("client not reading, output over limit; closing", metadata: [
                "bytes": "\(connection.bufferedOutput)"])
            connection.abort()
        } else {
            connection.flush()
        }
    }

    /// Closes the transport's own handles (after every connection closed).
    func close() {
        closeListeners()
        flushHandle.closeAndFree()
        spinHandle.closeAndFree()
    }
}
