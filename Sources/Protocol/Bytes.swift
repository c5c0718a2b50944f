/// Byte-level checks used by the parser and by logic modules on untrusted
/// input. They work on raw bytes so nothing is decoded or allocated.
public enum Bytes {
    /// Space or horizontal tab.
    @inlinable public static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09
    }

    /// C0 controls and DEL: bytes that can move a terminal's cursor, ring
    /// its bell or start an escape sequence on another player's screen.
    @inlinable public static func isControl(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == 0x7F
    }

    /// Compares `bytes` with an upper-case ASCII literal, ignoring case.
    public static func equalsIgnoringCase(_ bytes: UnsafeRawBufferPointer, upper: StaticString) -> Bool {
        guard bytes.count == upper.utf8CodeUnitCount else { return false }
        let expected = upper.utf8Start
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") { byte -= 0x20 }
            if byte != expected[index] { return false }
        }
        return true
    }

    /// True when every byte is in `[A-Za-z0-9_-]` and the length is within
    /// `1...maxLength`: the shape of names and room names.
    public static func isIdentifier(_ bytes: UnsafeRawBufferPointer, maxLength: Int) -> Bool {
        guard (1...maxLength).contains(bytes.count) else { return false }
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// Strict UTF-8 validation (RFC 3629): no overlong forms, no surrogates,
    /// nothing above U+10FFFF, no truncated sequences.
    public static func isValidUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        let count = bytes.count
        while index < count {
            let lead = bytes[index]
            if lead < 0x80 { index += 1; continue }
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; high = 0x9F
            case 0xF0: length = 4; low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; high = 0x8F
            default: return false
            }
            guard index + length <= count else { return false }
            let second = bytes[index + 1]
            guard second >= low && second <= high else { return false }
            var next = index + 2
            while next < index + length {
                guard bytes[next] & 0xC0 == 0x80 else { return false }
                next += 1
            }
            index += length
        }
        return true
    }
}
