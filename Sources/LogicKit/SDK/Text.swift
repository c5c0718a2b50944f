#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Protocol

/// UTF-8 text borrowed from the engine or the request line: a view, not a
/// copy, valid only during the call that produced it (like `Request`).
///
/// Compare it with literals (`text == "N"`, ignoring ASCII case with
/// `is("N")`), parse it (`int`), or copy it out with `string` when a Swift
/// `String` is worth an allocation.
public struct Text: CustomStringConvertible {
    /// The bytes, valid for the current call only.
    public let bytes: UnsafeRawBufferPointer

    public init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// No bytes.
    public static var empty: Text { Text(UnsafeRawBufferPointer(start: nil, count: 0)) }

    public var count: Int { bytes.count }
    public var isEmpty: Bool { bytes.isEmpty }

    /// A Swift string (allocates past 15 bytes).
    public var string: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { string }

    /// Equal to an upper-case ASCII literal, ignoring case: `is("LEFT")`.
    public func `is`(_ upper: StaticString) -> Bool { Bytes.equalsIgnoringCase(bytes, upper: upper) }

    /// A whole decimal number (an optional leading '-'), or nil.
    public var int: Int? {
        guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
        var index = 0
        let negative = bytes[0] == UInt8(ascii: "-")
        if negative { index = 1; if bytes.count == 1 { return nil } }
        var value = 0
        while index < bytes.count {
            let digit = bytes[index] &- 0x30
            guard digit <= 9 else { return nil }
            value = value * 10 + Int(digit)
            index += 1
        }
        return negative ? -value : value
    }

    /// `[A-Za-z0-9_-]{1,maxLength}`: the shape of names and room names.
    public func isIdentifier(maxLength: Int) -> Bool { Bytes.isIdentifier(bytes, maxLength: maxLength) }

    /// Calls `body` with this text lower-cased (ASCII) in stack memory.
    public func withLowercased<R>(_ body: (Text) -> R) -> R {
        withScratch(max(bytes.count, 1)) { scratch in
            for index in 0..<bytes.count {
                let byte = bytes[index]
                scratch[index] = (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
            }
            return body(Text(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[0..<bytes.count])))
        }
    }

    /// Byte-for-byte equality with a literal.
    public static func == (lhs: Text, rhs: StaticString) -> Bool {
        lhs.bytes.count == rhs.utf8CodeUnitCount
            && (lhs.bytes.isEmpty || memcmp(lhs.bytes.baseAddress!, rhs.utf8Start, lhs.bytes.count) == 0)
    }

    /// Byte-for-byte equality.
    public static func == (lhs: Text, rhs: Text) -> Bool {
        lhs.bytes.count == rhs.bytes.count
            && (lhs.bytes.isEmpty || memcmp(lhs.bytes.baseAddress!, rhs.bytes.baseAddress!, lhs.bytes.count) == 0)
    }
}

