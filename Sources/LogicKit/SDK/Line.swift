import Protocol

/// One protocol line, built on the stack: `reply("+MOVED \(x) \(y)")`.
///
/// A string literal with interpolations becomes a `Line` without a heap
/// allocation: literal parts are `StaticString`s and every interpolation
/// writes its bytes straight into 1 KiB of inline storage. Only a line
/// longer than that moves to the heap (a long HELP or ROOMS list), which is
/// why hot verbs should keep their lines short. Interpolated text is made
/// safe: control characters become spaces and malformed UTF-8 is replaced,
/// so a player's name cannot inject a line into another player's stream.
/// `\(raw: text)` skips that, for bytes already checked.
@frozen
public struct Line: ExpressibleByStringInterpolation, StringInterpolationProtocol, CustomStringConvertible {
    /// Bytes held inline before a line spills to the heap.
    public static var inlineCapacity: Int { 1024 }

    @usableFromInline var inline = InlineArray<1024, UInt8>(repeating: 0)
    @usableFromInline var spill: [UInt8]? = nil
    /// Bytes written.
    public var count: Int { used }
    @usableFromInline var used = 0

    @inlinable public init() {}

    @inlinable public init(stringLiteral literal: StaticString) {
        append(literal)
    }

    @inlinable public init(stringInterpolation: Line) {
        self = stringInterpolation
    }

    /// Calls `body` with the line's bytes.
    @inlinable public func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        if let spill { return spill.withUnsafeBytes(body) }
        return inline.span.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
    }

    @inlinable public var description: String { withBytes { String(decoding: $0, as: UTF8.self) } }

    // MARK: Appending

    /// Appends bytes as they are.
    @inlinable public mutating func append(raw bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        if spill == nil, count + bytes.count <= Line.inlineCapacity {
            let at = count
            var span = inline.mutableSpan
            span.withUnsafeMutableBytes { target in
                UnsafeMutableRawBufferPointer(rebasing: target[at..<(at + bytes.count)]).copyMemory(from: bytes)
            }
            used += bytes.count
            return
        }
        if spill == nil {
            var heap = [UInt8]()
            heap.reserveCapacity(max(2 * Line.inlineCapacity, count + bytes.count))
            withBytes { heap.append(contentsOf: $0) }
            spill = heap
        }
        spill!.append(contentsOf: bytes)
        used += bytes.count
    }

    /// Appends another line's bytes.
    @inlinable public mutating func append(line other: Line) {
        other.withBytes { append(raw: $0) }
    }

    @inlinable public mutating func append(_ literal: StaticString) {
        append(raw: UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount))
    }

    /// Appends untrusted text made safe (see the type's comment).
    @inlinable public mutating func append(text bytes: UnsafeRawBufferPointer) {
        withScratch(min(max(bytes.count, 1), maxStackScratch)) { scratch in
            var writer = LineWriter(buffer: scratch)
            writer.appendText(UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, scratch.count)]))
            append(raw: writer.bytes)
        }
    }

    /// Appends a string field's value, read straight from the engine (no
    /// `String`): `line.append(member.text(\.name))` in a loop.
    @inlinable public mutating func append(_ field: FieldText) { field.append(to: &self) }

    @inlinable public mutating func append(_ value: Int) {
        withScratch(24) { scratch in
            var writer = LineWriter(buffer: scratch)
            writer.append(Int64(value))
            append(raw: writer.bytes)
        }
    }

    // MARK: Interpolation

    // A line is its own interpolation (one buffer, built in place, instead
    // of an interpolation value copied into the line at the end).
    public typealias StringLiteralType = StaticString

    @inlinable public init(literalCapacity: Int, interpolationCount: Int) {}

    @inlinable public mutating func appendLiteral(_ literal: StaticString) { append(literal) }
    @inlinable public mutating func appendInterpolation(_ value: Int) { append(value) }
    @inlinable public mutating func appendInterpolation(_ value: Int64) { append(Int(value)) }
    @inlinable public mutating func appendInterpolation(_ value: Int32) { append(Int(value)) }
    @inlinable public mutating func appendInterpolation(_ value: UInt32) { append(Int(value)) }
    @inlinable public mutating func appendInterpolation(_ value: Bool) { append(value ? "true" : "false") }
    @inlinable public mutating func appendInterpolation(_ text: Text) { append(text: text.bytes) }
    @inlinable public mutating func appendInterpolation(raw text: Text) { append(raw: text.bytes) }
    @inlinable public mutating func appendInterpolation(_ literal: StaticString) { append(literal) }
    @inlinable public mutating func appendInterpolation(_ string: String) {
        var copy = string
        copy.withUTF8 { append(text: UnsafeRawBufferPointer($0)) }
    }
    @inlinable public mutating func appendInterpolation(_ other: Line) {
        other.withBytes { append(raw: $0) }
    }
    /// A string field read straight into the line: no `String` made.
    @inlinable public mutating func appendInterpolation(_ field: FieldText) { field.append(to: &self) }
}
