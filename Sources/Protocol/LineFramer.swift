#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Splits a byte stream into protocol lines, without copying complete lines.
///
/// Bytes arrive in chunks that have nothing to do with line boundaries: one
/// read may hold many lines, or a line may be split over many reads. The
/// framer hands every complete line to the caller as a pointer **into the
/// chunk it was given**, and copies only the unfinished tail into its own
/// `partial` storage:
///
///     chunk 1:  P I N G \n L O G I N   a l
///               \_______/ \_______________/
///               line ->    copied to `partial`
///     chunk 2:  i c e \n S A Y   h i \n
///               \_____/ \___________/
///               completes   line -> (zero copy)
///               `partial`
///
/// Buffering rules:
/// - A line ends at LF; one CR right before the LF is dropped (CRLF or LF).
/// - Bytes are scanned once: `partial` never holds a LF, so a new chunk is
///   scanned from its start and old bytes are never rescanned.
/// - At most `maxLineLength` bytes (terminator excluded) are ever buffered.
///   A longer line stops framing with `.lineTooLong`; the bytes beyond the
///   limit are not stored. The stream cannot be resynchronised after that,
///   so the caller is expected to close the connection.
/// - `partial` is allocated on first use and keeps its capacity, so a
///   connection that only ever sends whole lines never allocates here.
public struct LineFramer: Sendable {
    /// How framing of one chunk ended.
    public enum Outcome: Equatable, Sendable {
        /// Every complete line was delivered; any tail is kept for later.
        case needMoreData
        /// The line handler asked to stop; the rest of the chunk was dropped.
        case stopped
        /// A line exceeded `maxLineLength`; framing is over for this stream.
        case lineTooLong
    }

    /// The longest line accepted, terminator excluded.
    public let maxLineLength: Int
    private var partial: [UInt8] = []
    private var failed = false

    public init(maxLineLength: Int) {
        precondition(maxLineLength > 0, "maxLineLength must be positive")
        self.maxLineLength = maxLineLength
    }

    /// Bytes of an unfinished line currently held.
    public var bufferedByteCount: Int { partial.count }

    /// The unfinished line held so far: what an engine upgrade hands to the
    /// next engine, so a line half-sent before it is one request after it.
    public var bufferedBytes: [UInt8] { partial }

    /// Starts from an unfinished line another framer held (`bufferedBytes`).
    /// Returns false, keeping nothing, for bytes that framer could not have
    /// held under this limit: a LF, or more than the limit allows.
    public mutating func restore(buffered: [UInt8]) -> Bool {
        guard partial.isEmpty, !failed, !buffered.contains(UInt8(ascii: "\n")) else { return false }
        // The same bound as `keep`: one byte over only for the CR of a CRLF.
        let fits = buffered.count <= maxLineLength
            || (buffered.count == maxLineLength + 1 && buffered.last == UInt8(ascii: "\r"))
        guard fits else { return false }
        partial = buffered
        return true
    }

    /// Frames `chunk`, calling `onLine` for each complete line in order.
    ///
    /// The buffer given to `onLine` is valid only during that call. Return
    /// `false` from `onLine` to stop (for example, the session is closing):
    /// the remaining bytes of the chunk are discarded.
    public mutating func feed(
        _ chunk: UnsafeRawBufferPointer,
        onLine: (UnsafeRawBufferPointer) throws -> Bool
    ) rethrows -> Outcome {
        if failed { return .lineTooLong }
        guard let base = chunk.baseAddress, chunk.count > 0 else { return .needMoreData }
        var start = 0
        let end = chunk.count

        // Complete a line left over from earlier reads.
        if !partial.isEmpty {
            guard let newline = Self.firstNewline(in: chunk, from: 0) else {
                return keep(UnsafeRawBufferPointer(rebasing: chunk[0..<end]))
            }
            if partial.count + newline > maxLineLength + 1 {
                return fail()
            }
            partial.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[0..<newline]))
            start = newline + 1
            if partial.last == UInt8(ascii: "\r") { partial.removeLast() }
            if partial.count > maxLineLength { return fail() }
            let keepGoing = try partial.withUnsafeBytes { bytes in try onLine(bytes) }
            partial.removeAll(keepingCapacity: true)
            if !keepGoing { return .stopped }
        }

        // Lines wholly inside this chunk: zero copy.
        while start < end, let newline = Self.firstNewline(in: chunk, from: start) {
            let line = Self.trimCR(UnsafeRawBufferPointer(start: base + start, count: newline - start))
            if line.count > maxLineLength { return fail() }
            start = newline + 1
            if try !onLine(line) { return .stopped }
        }

        if start < end {
            return keep(UnsafeRawBufferPointer(rebasing: chunk[start..<end]))
        }
        return .needMoreData
    }

    /// Stores an unfinished tail. A tail may be one byte over the limit when
    /// that byte is the CR of a CRLF still to come.
    private mutating func keep(_ tail: UnsafeRawBufferPointer) -> Outcome {
        let total = partial.count + tail.count
        if total > maxLineLength + 1
            || (total == maxLineLength + 1 && tail[tail.count - 1] != UInt8(ascii: "\r"))
        {
            return fail()
        }
        if partial.capacity == 0 { partial.reserveCapacity(min(maxLineLength + 1, 256)) }
        partial.append(contentsOf: tail)
        return .needMoreData
    }

    private mutating func fail() -> Outcome {
        failed = true
        partial = []
        return .lineTooLong
    }

    private static func trimCR(_ line: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        // Indexing, not `.last`: the generic accessor is not specialised in
        // debug builds and would allocate per line.
        guard line.count > 0, let base = line.baseAddress, line[line.count - 1] == UInt8(ascii: "\r") else {
            return line
        }
        return UnsafeRawBufferPointer(start: base, count: line.count - 1)
    }

    private static func firstNewline(in chunk: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let base = chunk.baseAddress, start < chunk.count else { return nil }
        // memchr is vectorised by libc; a byte loop here costs ~4x on long lines.
        guard let hit = memchr(base + start, Int32(UInt8(ascii: "\n")), chunk.count - start) else {
            return nil
        }
        return base.distance(to: UnsafeRawPointer(hit))
    }
}
