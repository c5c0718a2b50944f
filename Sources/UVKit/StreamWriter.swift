import CLibUV

/// The outgoing bytes of one libuv stream, written at most once per loop
/// turn: the write batching the engine's connections and the load tool's
/// clients share.
///
///     append ──▶ pending ──flush──▶ uv_try_write ──▶ kernel
///                              └─rest─▶ inFlight ──uv_write──▶ kernel
///
/// A flush tries `uv_try_write` first (no request, no callback); whatever
/// the kernel does not take moves to `inFlight` for one `uv_write`. At most
/// one write is in flight, and `inFlight` is never appended to while it is,
/// so its memory stays valid for libuv until `writeCompleted`.
///
/// Ownership: the write request is allocated here and freed in `deinit`.
/// The owner must keep the writer alive until the stream's close callback
/// has run (libuv reports a cancelled write before that), which is what
/// freeing the owner in the close callback gives.
public struct StreamWriter: ~Copyable {
    private var pending = OutputBuffer()
    private var inFlight = OutputBuffer()
    private let request: UnsafeMutablePointer<uv_write_t>
    /// A `uv_write` is in flight.
    public private(set) var writing = false

    /// `context` is what the write callback finds in `request.data`.
    public init(context: UnsafeMutableRawPointer?) {
        request = .allocate(capacity: 1)
        request.pointee.data = context
    }

    deinit { request.deallocate() }

    /// What the write callback finds in `request.data` (set once the owner
    /// exists).
    public var context: UnsafeMutableRawPointer? {
        get { request.pointee.data }
        set { request.pointee.data = newValue }
    }

    /// Bytes accepted but not yet taken by the kernel.
    public var buffered: Int { pending.count + inFlight.count }
    public var hasPending: Bool { !pending.isEmpty }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) { pending.append(bytes) }

    /// Appends `line` and its CRLF terminator.
    public mutating func append(line: UnsafeRawBufferPointer) {
        pending.append(line)
        pending.append(byte: 0x0D)
        pending.append(byte: 0x0A)
    }

    /// Drops what is pending (the peer is gone or over its limit).
    public mutating func discardPending() { pending.removeAll() }

    /// Bytes appended since the last flush.
    public var pendingCount: Int { pending.count }

    /// Takes back what was appended after `pendingCount` was `count`.
    public mutating func truncatePending(to count: Int) { pending.truncate(to: count) }

    /// What a flush did.
    public enum Flushed {
        /// Nothing pending and nothing in flight: all written.
        case done
        /// The rest waits in a `uv_write`; `onWrite` will call back.
        case writing
    }

    /// Writes what is pending. Call only when no write is in flight.
    public mutating func flush(_ stream: UnsafeMutablePointer<uv_stream_t>, onWrite: uv_write_cb,
                               keeping retained: Int) throws(UVError) -> Flushed {
        precondition(!writing, "flush with a write in flight")
        guard let base = pending.base, pending.count > 0 else { return .done }
        var buffer = uv_buf_init(UnsafeMutableRawPointer(base).assumingMemoryBound(to: CChar.self), UInt32(pending.count))
        let written = uv_try_write(stream, &buffer, 1)
        if written == Int32(pending.count) {
            pending.removeAll()
            pending.trim(keeping: retained)
            return .done
        }
        if written < 0 && written != UV_EAGAIN.rawValue { throw UVError(written) }
        // The kernel took part (or nothing): hand the rest to uv_write.
        swap(&pending, &inFlight)
        let offset = Int(max(written, 0))
        buffer = uv_buf_init(
            UnsafeMutableRawPointer(inFlight.base! + offset).assumingMemoryBound(to: CChar.self),
            UInt32(inFlight.count - offset))
        writing = true
        let status = uv_write(request, stream, &buffer, 1, onWrite)
        if status < 0 {
            writing = false
            throw UVError(status)
        }
        return .writing
    }

    /// Every byte accepted and not yet taken by the kernel, in order: the
    /// last `stillQueued` bytes of the write in flight (what libuv reports
    /// as the stream's write queue size: it holds only this writer's one
    /// request), then what is pending. An engine upgrade hands these to the
    /// next engine, which writes them once: none lost, none twice.
    public func unsentBytes(stillQueued: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(pending.count + (writing ? stillQueued : 0))
        if writing, stillQueued > 0, let base = inFlight.base {
            let tail = min(stillQueued, inFlight.count)
            bytes.append(contentsOf: UnsafeBufferPointer(start: base + (inFlight.count - tail), count: tail))
        }
        if let base = pending.base, pending.count > 0 {
            bytes.append(contentsOf: UnsafeBufferPointer(start: base, count: pending.count))
        }
        return bytes
    }

    /// From the write callback: the in-flight bytes are done with.
    public mutating func writeCompleted(keeping retained: Int) {
        writing = false
        inFlight.removeAll()
        inFlight.trim(keeping: retained)
    }
}
