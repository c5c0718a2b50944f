import CLibUV
import Protocol

/// One client socket: its libuv handle, its line framer and its outgoing
/// bytes. Game state is not here: it lives in the state store, keyed by the
/// session id, so this object only moves bytes.
///
/// Ownership (the only unsafe part of the engine's networking):
/// - `stream` and `writeRequest` are allocated once per connection and freed
///   in the `uv_close` callback, never before: libuv may still call back on
///   them until then (a cancelled write reports `UV_ECANCELED` first).
/// - `stream.data` holds a +1 retained reference to this object, taken in
///   `init` and released in the close callback, so the object
///   outlives every callback that can find it.
///
/// Writes: replies are appended to `pending` and the engine flushes dirty
/// connections once per loop turn. A flush tries `uv_try_write` first (no
/// request, no callback); whatever the kernel does not take moves to
/// `inFlight` for one `uv_write`. At most one write is in flight, and
/// `inFlight` is never appended to while it is, so its memory stays valid
/// for libuv:
///
///     reply ──append──▶ pending ──flush──▶ uv_try_write ──▶ kernel
///                                   └─rest─▶ inFlight ──uv_write──▶ kernel
final class Connection {
    enum State {
        /// Reading requests, writing replies.
        case open
        /// No more requests; closes once everything pending is written.
        case draining
        /// All written and FIN sent; unread input is discarded until the
        /// peer closes too (or a short timer ends it). Closing with unread
        /// input would make the kernel send RST, which can destroy the last
        /// reply (a `+BYE`, a `-ERR LINE_TOO_LONG`) before the client reads it.
        case lingering
        /// `uv_close` was called; waiting for its callback.
        case closed
    }

    unowned let engine: Engine
    let stream: UnsafeMutablePointer<uv_tcp_t>
    private let writeRequest: UnsafeMutablePointer<uv_write_t>
    // Hot-path state touched on every request. `@exclusivity(unchecked)`
    // drops Swift's run-time access tracking for these few properties (it
    // cost ~10% of the server's CPU under pipelined load, see
    // BENCHMARKS.md): everything here runs on the loop thread, and no
    // access to one of them is ever nested inside another access to it.
    @exclusivity(unchecked) var framer: LineFramer
    @exclusivity(unchecked) private var pending = OutputBuffer()
    @exclusivity(unchecked) private var inFlight = OutputBuffer()
    private var writing = false
    private(set) var state = State.open
    /// The session this connection carries; stale once it is torn down.
    var sessionID = GameID(raw: 0)
    /// Set while the connection sits in the engine's flush list.
    var queuedForFlush = false
    /// Set when queued output passed the engine's limit: nothing more is
    /// queued and the engine cuts the connection off at the next flush.
    private(set) var overOutputLimit = false
    private var shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>?
    private var lingerTimer: UnsafeMutablePointer<uv_timer_t>?
    /// How long a closing connection waits for the peer's FIN.
    static let lingerMilliseconds: UInt64 = 2000

    /// An operator's connection (admin port), not a player's.
    let isAdmin: Bool
    /// An admin connection that has sent the right token (or needs none).
    var authenticated = false
    /// Failed AUTH attempts on this connection.
    var failedAuths = 0
    /// Set when this admin connection took one of the admin slots.
    var countedAsAdmin = false
    /// An admin command is waiting for a background reload: later lines
    /// wait here so replies keep the order of requests.
    var adminWaiting = false
    var adminBacklog: [AdminBacklogEntry] = []
    /// The operator half-closed while waiting: close once answered.
    var closeWhenAnswered = false
    /// Loop time (ms) of the last bytes received.
    var lastActivity: UInt64 = 0
    /// Set once the logic says who this is (login): longer idle timeout.
    var identified = false
    @exclusivity(unchecked) var limiter = RateLimiter(now: 0, burst: 0)

    /// Takes over an initialised, accepted `stream`.
    init(engine: Engine, stream: UnsafeMutablePointer<uv_tcp_t>, maxLineLength: Int, isAdmin: Bool = false) {
        self.engine = engine
        self.isAdmin = isAdmin
        self.stream = stream
        self.writeRequest = .allocate(capacity: 1)
        self.framer = LineFramer(maxLineLength: maxLineLength)
        stream.pointee.data = Unmanaged.passRetained(self).toOpaque()
        writeRequest.pointee.data = stream.pointee.data
        engine.connectionOpened()
    }

    private var streamPointer: UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(stream).assumingMemoryBound(to: uv_stream_t.self)
    }

    /// Bytes accepted but not yet taken by the kernel.
    var bufferedOutput: Int { pending.count + inFlight.count }

    /// Starts reading. On failure the caller aborts the connection.
    func startReading() -> Int32 {
        uv_read_start(streamPointer, Connection.onAlloc, Connection.onRead)
    }

    /// Queues one line and its CRLF terminator.
    func enqueue(line: UnsafeRawBufferPointer) {
        guard state == .open || state == .draining, !overOutputLimit else { return }
        if bufferedOutput + line.count + 2 > engine.limits.maxOutputBytes {
            // A client that does not read cannot grow our memory.
            overOutputLimit = true
            pending.removeAll()
            if !queuedForFlush {
                queuedForFlush = true
                engine.markForFlush(self)
            }
            return
        }
        pending.append(line)
        pending.append(byte: 0x0D)
        pending.append(byte: 0x0A)
        if !queuedForFlush {
            queuedForFlush = true
            engine.markForFlush(self)
        }
    }

    /// Writes what is pending. Called by the engine once per loop turn.
    func flush() {
        queuedForFlush = false
        guard state == .open || state == .draining, !writing else { return }
        guard let base = pending.base, pending.count > 0 else {
            if state == .draining { linger() }
            return
        }
        var buffer = uv_buf_init(UnsafeMutableRawPointer(base).assumingMemoryBound(to: CChar.self), UInt32(pending.count))
        let written = uv_try_write(streamPointer, &buffer, 1)
        if written == Int32(pending.count) {
            pending.removeAll()
            pending.trim(keeping: Connection.retainedBufferBytes)
            if state == .draining { linger() }
            return
        }
        if written < 0 && written != UV_EAGAIN.rawValue {
            abort()
            return
        }
        // The kernel took part (or nothing): hand the rest to uv_write.
        swap(&pending, &inFlight)
        let offset = Int(max(written, 0))
        buffer = uv_buf_init(
            UnsafeMutableRawPointer(inFlight.base! + offset).assumingMemoryBound(to: CChar.self),
            UInt32(inFlight.count - offset))
        writing = true
        if uv_write(writeRequest, streamPointer, &buffer, 1, Connection.onWrite) < 0 {
            writing = false
            abort()
        }
    }

    /// Stops reading, for now (the connection stays open).
    func stopReading() {
        uv_read_stop(streamPointer)
    }

    /// Stops reading and closes once pending output is written.
    func closeAfterFlush() {
        guard state == .open else { return }
        state = .draining
        uv_read_stop(streamPointer)
        if !queuedForFlush {
            queuedForFlush = true
            engine.markForFlush(self)
        }
    }

    /// Closes now, dropping unsent output (peer gone or misbehaving).
    func abort() {
        guard state != .closed else { return }
        pending.removeAll()
        finishClose()
    }

    /// Everything is written: send FIN, then wait for the peer's.
    private func linger() {
        guard state == .draining else { return }
        state = .lingering
        engine.connectionClosing(self)
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = stream.pointee.data
        shutdownRequest = request
        guard uv_shutdown(request, streamPointer, Connection.onShutdown) == 0 else {
            finishClose()
            return
        }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(engine.loop, timer)
        timer.pointee.data = stream.pointee.data
        lingerTimer = timer
        uv_timer_start(timer, { timer in
            Connection.from(timer!.pointee.data).finishClose()
        }, Connection.lingerMilliseconds, 0)
        // Drain and discard whatever the client still sends.
        if uv_read_start(streamPointer, Connection.onAlloc, Connection.onDiscard) != 0 { finishClose() }
    }

    private func finishClose() {
        guard state != .closed else { return }
        if state != .lingering { engine.connectionClosing(self) }
        state = .closed
        if let lingerTimer { Engine.closeAndFree(lingerTimer) }
        uv_close(UnsafeMutableRawPointer(stream).assumingMemoryBound(to: uv_handle_t.self), Connection.onClose)
    }

    /// Memory a quiet connection keeps for its output between bursts.
    static let retainedBufferBytes = 16 * 1024

    // MARK: - libuv callbacks

    private static func from(_ data: UnsafeMutableRawPointer?) -> Connection {
        Unmanaged<Connection>.fromOpaque(data!).takeUnretainedValue()
    }

    /// Every connection reads into the engine's one shared buffer: libuv on
    /// Unix calls the read callback right after each allocation, before any
    /// other stream's allocation, so the buffer is never used twice at once.
    private static let onAlloc: uv_alloc_cb = { handle, _, buffer in
        let connection = from(handle!.pointee.data)
        buffer!.pointee = connection.engine.sharedReadBuffer()
    }

    private static let onRead: uv_read_cb = { stream, nread, _ in
        let connection = from(stream!.pointee.data)
        if nread > 0 {
            connection.engine.received(connection, UnsafeRawBufferPointer(
                start: connection.engine.readBufferBase, count: nread))
        } else if nread < 0 {
            // UV_EOF: a clean half-close; pending replies still go out.
            // Anything else: the socket is broken, nothing more can be sent.
            connection.engine.peerClosed(connection, clean: nread == Int(UV_EOF.rawValue))
        }
    }

    private static let onWrite: uv_write_cb = { request, status in
        let connection = from(request!.pointee.data)
        connection.writing = false
        connection.inFlight.removeAll()
        connection.inFlight.trim(keeping: retainedBufferBytes)
        if status < 0 {
            connection.abort()
        } else if !connection.pending.isEmpty || connection.state == .draining {
            if !connection.queuedForFlush {
                connection.queuedForFlush = true
                connection.engine.markForFlush(connection)
            }
        }
    }

    /// Reads while lingering: input is dropped; EOF or an error ends it.
    private static let onDiscard: uv_read_cb = { stream, nread, _ in
        if nread < 0 { from(stream!.pointee.data).finishClose() }
    }

    private static let onShutdown: uv_shutdown_cb = { request, _ in
        // Nothing to do: the FIN is out (or the socket is gone, which the
        // discarding read will report).
        _ = request
    }

    private static let onClose: uv_close_cb = { handle in
        let raw = handle!.pointee.data!
        let connection = Unmanaged<Connection>.fromOpaque(raw).takeRetainedValue()
        connection.writeRequest.deallocate()
        connection.shutdownRequest?.deallocate()
        connection.stream.deallocate()
        connection.engine.connectionClosed()
    }
}
