import CLibUV
import UVKit

/// What a connection's bytes are for: a player's session, an operator's
/// console. The transport moves bytes; its handler gives them meaning.
protocol ConnectionHandler: AnyObject {
    /// Bytes read from the peer; valid only during the call.
    func received(_ bytes: UnsafeRawBufferPointer)
    /// The peer half-closed (`clean`: pending output still goes out) or the
    /// socket broke (nothing more can be sent).
    func peerClosed(clean: Bool)
    /// The connection starts closing, for any reason. Called exactly once.
    func connectionClosing()
    /// Whether the handler's deadline (login, idle, auth) passed at `now`.
    func deadlinePassed(now: UInt64) -> Bool
    /// The deadline passed: say so and close.
    func expire()
}

/// One client socket and its bytes: the libuv handle, the output waiting to
/// be written, and how it closes. It knows nothing of sessions or admins:
/// its `handler` does.
///
/// Ownership (the only unsafe part of the engine's networking):
/// - `stream` is allocated once per connection and freed in the `uv_close`
///   callback, never before: libuv may still call back on it until then (a
///   cancelled write reports `UV_ECANCELED` first). The writer's request is
///   freed with the object, after that callback.
/// - `stream.data` holds a +1 retained reference to this object, taken in
///   `init` and released in the close callback, so the object outlives
///   every callback that can find it.
///
/// Writes: lines are appended to the writer, and the transport flushes the
/// connections written to once per loop turn (see `StreamWriter`).
final class Connection: Slotted {
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

    unowned(unsafe) let transport: Transport
    let stream: UnsafeMutablePointer<uv_tcp_t>
    /// Which listener accepted it.
    let role: ListenerRole
    var handler: (any ConnectionHandler)?
    // `@exclusivity(unchecked)`: touched on every request (it cost ~10% of
    // the server's CPU under pipelined load, see BENCHMARKS.md); all of it
    // runs on the loop thread and no access is nested in another.
    @exclusivity(unchecked) private var writer: StreamWriter
    @exclusivity(unchecked) private(set) var state = State.open
    /// Set while the connection sits in the transport's flush list.
    @exclusivity(unchecked) var queuedForFlush = false
    /// Output answering this connection's own request was queued this turn:
    /// the transport writes it before connections only told something.
    @exclusivity(unchecked) var repliedThisTurn = false
    /// In a batching room (ABI 1.3): output that is not a reply waits for
    /// the room's tick (`releaseHeld`) instead of this turn's flush.
    @exclusivity(unchecked) var held = false
    /// Output is waiting because of `held`.
    @exclusivity(unchecked) private var holding = false
    /// A reply is queued and not yet handed to a write: it must not wait
    /// for a tick, even when the flush that took it found a write in
    /// flight and the write's completion queues the connection again.
    @exclusivity(unchecked) private var replyWaiting = false
    /// What this connection last added to `transport.queuedOutput` (its
    /// writer's `buffered` then): each change adds the difference.
    @exclusivity(unchecked) private var accountedOutput = 0
    /// Set when queued output passed the limit: nothing more is queued and
    /// the transport cuts the connection off at the next flush.
    private(set) var overOutputLimit = false
    private var lingerTimer: UnsafeMutablePointer<uv_timer_t>?
    private var shutdownRequest: UnsafeMutablePointer<uv_shutdown_t>?
    /// Position in the transport's registry of live connections.
    /// Its place in the transport's registry (SlotList).
    var slot = -1
    /// The peer's address (`127.0.0.1:50312`), for audit lines; `local` for
    /// an adopted socket that has none.
    var peer = "local"
    /// The peer's IP address (per-address limits); nil when unknown.
    var address: PeerAddress?
    /// Counted in the engine's connections per address until it closes.
    var countedPerAddress = false
    /// Close as soon as the output is written, without waiting for the
    /// peer's FIN: a refused connection must give its descriptor back at
    /// once (a connect flood would otherwise hold them for --linger-ms).
    private var skipLinger = false

    /// Takes over an initialised `stream` (not yet accepted).
    init(transport: Transport, stream: UnsafeMutablePointer<uv_tcp_t>, role: ListenerRole) {
        self.transport = transport
        self.stream = stream
        self.role = role
        self.writer = StreamWriter(context: nil)
        let retained = UVContext.retainedPointer(to: self)
        stream.context = retained
        writer.context = retained
    }

    /// Bytes accepted but not yet taken by the kernel.
    var bufferedOutput: Int { writer.buffered }

    /// A write is in flight: the kernel did not take everything at the last
    /// flush. A client that does not read stays so (`OutputBudget`).
    var isWriteStuck: Bool { writer.writing }

    /// Brings `transport.queuedOutput` up to date with the writer: O(1),
    /// after anything that grows or shrinks it.
    @inline(__always)
    private func account() {
        let buffered = writer.buffered
        if buffered != accountedOutput {
            transport.queuedOutput += buffered - accountedOutput
            accountedOutput = buffered
        }
    }

    // MARK: - Engine upgrade

    /// The socket's descriptor (-1 once closed).
    var fileDescriptor: Int32 {
        var fd: uv_os_fd_t = -1
        return uv_fileno(stream.handle, &fd) == 0 ? fd : -1
    }

    /// Output the kernel has not taken yet, in order (see
    /// `StreamWriter.unsentBytes`): an upgrade hands it to the next engine.
    var unsentOutput: [UInt8] {
        writer.unsentBytes(stillQueued: writer.writing ? uv_stream_get_write_queue_size(stream.stream) : 0)
    }

    /// Queues bytes a previous engine accepted for this peer and did not
    /// write, exactly as they were (terminators included).
    func restoreOutput(_ bytes: [UInt8]) {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { writer.append($0) }
        account()
        markForFlush()
    }

    /// Starts (or resumes) reading.
    func startReading() throws(UVError) {
        try UVError.check(uv_read_start(stream.stream, Connection.onAlloc, Connection.onRead))
    }

    /// Stops reading, for now (the connection stays open).
    func stopReading() {
        uv_read_stop(stream.stream)
    }

    /// Queues one line and its CRLF terminator.
    func enqueue(line: UnsafeRawBufferPointer) {
        guard state == .open || state == .draining, !overOutputLimit else { return }
        if writer.buffered + line.count + 2 > transport.maxOutputBytes {
            // A client that does not read cannot grow our memory: nothing
            // more is queued, and the transport cuts it off at the end of
            // the turn. What is pending stays until then, so that a module
            // call that overflowed it and then faulted can be taken back
            // (`rollBackOutput`) as if the overflow never happened.
            overOutputLimit = true
        } else {
            writer.append(line: line)
            account()
        }
        if transport.requester === self {
            repliedThisTurn = true
            replyWaiting = true
        } else {
            // Told to another session while a request is handled: its
            // sender pays for it (`RateLimiter.charge`).
            transport.fanOutBytes &+= line.count + 2
        }
        markForFlush()
    }

    /// Queues bytes as they are (no terminator): HTTP responses. The same
    /// output limit applies as for lines.
    func enqueue(bytes: UnsafeRawBufferPointer) {
        guard state == .open || state == .draining, !overOutputLimit else { return }
        if writer.buffered + bytes.count > transport.maxOutputBytes {
            overOutputLimit = true
        } else {
            writer.append(bytes)
            account()
        }
        markForFlush()
    }

    private func markForFlush() {
        // A reply, a close, or a client over its limit is never held.
        if held && !replyWaiting && state == .open && !overOutputLimit && !queuedForFlush {
            holding = true
            return
        }
        queueForFlush()
    }

    /// In this turn's flush list, once.
    private func queueForFlush() {
        if !queuedForFlush {
            queuedForFlush = true
            transport.markForFlush(self)
        }
    }

    /// Writes what `held` kept back, in this turn's flush.
    func releaseHeld() {
        guard holding else { return }
        holding = false
        queueForFlush()
    }

    /// Stops holding (left the room, or it stopped batching); what waits
    /// goes out this turn.
    func setHeld(_ on: Bool) {
        held = on
        if !on { releaseHeld() }
    }

    /// The output queued so far, for a journal to return to; -1 when the
    /// connection was over its limit already (it is being cut off anyway).
    var outputMark: Int { overOutputLimit ? -1 : writer.pendingCount }

    /// Takes back the lines queued since `outputMark` returned `mark`.
    /// Nothing is written in the meantime: the transport writes at the end
    /// of the loop turn, never during a module call.
    func rollBackOutput(to mark: Int) {
        guard mark >= 0 else { return }
        writer.truncatePending(to: mark)
        account()
        overOutputLimit = false
    }

    /// Writes what is pending. Called by the transport once per loop turn.
    func flush() {
        queuedForFlush = false
        guard state == .open || state == .draining, !writer.writing else { return }
        // Everything queued, the reply included, goes to this write.
        replyWaiting = false
        do {
            let flushed = try writer.flush(stream.stream, onWrite: Connection.onWrite, keeping: Connection.retainedBufferBytes)
            account()
            if flushed == .done, state == .draining { linger() }
        } catch {
            abort()
        }
    }

    /// Stops reading and closes once pending output is written.
    func closeAfterFlush() {
        guard state == .open else { return }
        state = .draining
        uv_read_stop(stream.stream)
        markForFlush()
    }

    /// Sends one line and closes without lingering (a refusal at accept).
    func refuse(line: UnsafeRawBufferPointer) {
        enqueue(line: line)
        skipLinger = true
        closeAfterFlush()
    }

    /// Closes now, dropping unsent output (peer gone or misbehaving).
    func abort() {
        guard state != .closed else { return }
        writer.discardPending()
        account()
        finishClose()
    }

    /// Everything is written: send FIN, then wait for the peer's.
    private func linger() {
        guard state == .draining else { return }
        // The kernel still sends what it holds, then the FIN.
        if skipLinger { return finishClose() }
        state = .lingering
        handler?.connectionClosing()
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = stream.context
        shutdownRequest = request
        guard uv_shutdown(request, stream.stream, { _, _ in
            // Nothing to do: the FIN is out (or the socket is gone, which the
            // discarding read will report).
        }) == 0 else {
            finishClose()
            return
        }
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(transport.loop, timer), "uv_timer_init")
        timer.context = stream.context
        lingerTimer = timer
        uvMust(uv_timer_start(timer, { timer in
            Connection.from(timer!.context).finishClose()
        }, transport.lingerMilliseconds, 0), "uv_timer_start")
        // Drain and discard whatever the client still sends.
        if uv_read_start(stream.stream, Connection.onAlloc, Connection.onDiscard) != 0 { finishClose() }
    }

    private func finishClose() {
        guard state != .closed else { return }
        if state != .lingering { handler?.connectionClosing() }
        state = .closed
        lingerTimer?.closeAndFree()
        uv_close(stream.handle, Connection.onClose)
    }

    /// Memory a quiet connection keeps for its output between bursts.
    static let retainedBufferBytes = 16 * 1024

    // MARK: - libuv callbacks

    private static func from(_ data: UnsafeMutableRawPointer?) -> Connection {
        UVContext.object(data, as: Connection.self)
    }

    /// Every connection reads into the transport's one shared buffer: libuv
    /// on Unix calls the read callback right after each allocation, before
    /// any other stream's allocation, so the buffer is never used twice at once.
    private static let onAlloc: uv_alloc_cb = { handle, _, buffer in
        buffer!.pointee = from(handle!.pointee.data).transport.sharedReadBuffer()
    }

    private static let onRead: uv_read_cb = { stream, nread, _ in
        let connection = from(stream!.pointee.data)
        if nread > 0 {
            connection.transport.requester = connection
            connection.handler?.received(connection.transport.readBytes(count: nread))
            connection.transport.requester = nil
        } else if nread < 0 {
            // UV_EOF: a clean half-close; pending replies still go out.
            // Anything else: the socket is broken, nothing more can be sent.
            connection.handler?.peerClosed(clean: nread == Int(UV_EOF.rawValue))
        }
    }

    private static let onWrite: uv_write_cb = { request, status in
        let connection = from(request!.pointee.data)
        connection.writer.writeCompleted(keeping: retainedBufferBytes)
        connection.account()
        if status < 0 {
            connection.abort()
        } else if connection.writer.hasPending || connection.state == .draining {
            connection.markForFlush()
        }
    }

    /// Reads while lingering: input is dropped; EOF or an error ends it.
    private static let onDiscard: uv_read_cb = { stream, nread, _ in
        if nread < 0 { from(stream!.pointee.data).finishClose() }
    }

    private static let onClose: uv_close_cb = { handle in
        let connection = UVContext.release(handle!.pointee.data!, as: Connection.self)
        // Its writer is freed with it: nothing of it stays queued.
        connection.transport.queuedOutput -= connection.accountedOutput
        connection.accountedOutput = 0
        connection.shutdownRequest?.deallocate()
        connection.stream.deallocate()
        connection.transport.connectionClosed(connection)
    }
}
