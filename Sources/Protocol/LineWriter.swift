/// Builds one outgoing protocol line in a caller-provided buffer.
///
/// Every line the server sends starts with a one-byte marker:
///
///     +PONG                    success reply   (LineWriter.reply)
///     -ERR NOT_IN_ROOM ...     error reply     (LineWriter.error)
///     >SAY alice hello         pushed event    (LineWriter.event)
///
/// The writer never grows its buffer: it is meant for stack memory
/// (`withUnsafeTemporaryAllocation`), so encoding a reply allocates nothing.
/// Text that does not fit is cut at the capacity and `isTruncated` is set;
/// user text is appended through `appendText`, which replaces control bytes
/// so nothing a player types can break the framing or another player's
/// terminal. The terminator (CRLF) is added by whoever writes to the socket.
public struct LineWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    /// Bytes written so far.
    public private(set) var count = 0
    /// True when something did not fit.
    public private(set) var isTruncated = false

    public init(buffer: UnsafeMutableRawBufferPointer) {
        self.buffer = buffer
    }

    /// A writer that starts a success reply: `+`.
    public static func reply(_ buffer: UnsafeMutableRawBufferPointer) -> LineWriter {
        var writer = LineWriter(buffer: buffer)
        writer.append(byte: UInt8(ascii: "+"))
        return writer
    }

    /// A writer that starts an error reply: `-ERR CODE`.
    public static func error(_ buffer: UnsafeMutableRawBufferPointer, code: StaticString) -> LineWriter {
        var writer = LineWriter(buffer: buffer)
        writer.append("-ERR ")
        writer.append(code)
        return writer
    }

    /// A writer that starts a pushed event: `>`.
    public static func event(_ buffer: UnsafeMutableRawBufferPointer) -> LineWriter {
        var writer = LineWriter(buffer: buffer)
        writer.append(byte: UInt8(ascii: ">"))
        return writer
    }

    /// The line written so far.
    public var bytes: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<count])
    }

    public mutating func append(byte: UInt8) {
        guard count < buffer.count else { isTruncated = true; return }
        buffer[count] = byte
        count += 1
    }

    /// Appends a literal (trusted, no control bytes expected).
    public mutating func append(_ literal: StaticString) {
        append(raw: UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends bytes as they are. Use for bytes already validated.
    public mutating func append(raw bytes: UnsafeRawBufferPointer) {
        let room = buffer.count - count
        let taken = min(room, bytes.count)
        if taken > 0, let source = bytes.baseAddress, let target = buffer.baseAddress {
            (target + count).copyMemory(from: source, byteCount: taken)
            count += taken
        }
        if taken < bytes.count { isTruncated = true }
    }

    /// Appends untrusted UTF-8 text, replacing each control character (C0,
    /// DEL and the C1 range U+0080...U+009F) with a space. Text that does not
    /// fit is cut at a character boundary, so the line stays valid UTF-8. A
    /// malformed sequence is replaced byte by byte with spaces, so not even
    /// invalid input can smuggle a control byte through.
    public mutating func appendText(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0xC2, index + 1 < bytes.count, (0x80...0x9F).contains(bytes[index + 1]) {
                guard count < buffer.count else { isTruncated = true; return }
                append(byte: 0x20)
                index += 2
                continue
            }
            var length = byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            let sequence = UnsafeRawBufferPointer(rebasing: bytes[index..<min(index + length, bytes.count)])
            let wellFormed = length == 1 ? byte < 0x80 : Bytes.isValidUTF8(sequence) && sequence.count == length
            if !wellFormed { length = 1 }
            guard count + length <= buffer.count else { isTruncated = true; return }
            if !wellFormed || Bytes.isControl(byte) {
                append(byte: 0x20)
            } else {
                append(raw: UnsafeRawBufferPointer(rebasing: bytes[index..<(index + length)]))
            }
            index += length
        }
    }

    /// Appends a decimal integer.
    public mutating func append(_ value: Int64) {
        if value < 0 { append(byte: UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        // 20 digits hold UInt64.max; fill from the right on the stack.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var index = 20
            repeat {
                index -= 1
                digits[index] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            append(raw: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(digits)[index..<20]))
        }
    }

    public mutating func append(_ value: Int) { append(Int64(value)) }

    /// Appends a single space.
    public mutating func space() { append(byte: 0x20) }
}
