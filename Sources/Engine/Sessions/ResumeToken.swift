import Crypto
import GameABI

/// A resume token: 128 bits from the OS (`SystemRandomNumberGenerator`,
/// getrandom(2) on Linux), written as 22 characters of base64url without
/// padding, so it is one protocol token and safe in a URL.
///
/// The engine keeps only a token's SHA-256 (`TokenHash`): a handoff, a
/// core dump or a debugger shows no token that would work. A hash of 128
/// random bits needs no salt or slow KDF: nothing smaller than the token's
/// whole space is there to search.
enum ResumeToken {
    static let randomBytes = 16
    static let length = Int(GAME_RESUME_TOKEN_LENGTH)
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// A fresh token.
    static func make() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        var raw: [UInt8] = []
        raw.reserveCapacity(randomBytes)
        for shift in stride(from: 56, through: 0, by: -8) { raw.append(UInt8(truncatingIfNeeded: high >> UInt64(shift))) }
        for shift in stride(from: 56, through: 0, by: -8) { raw.append(UInt8(truncatingIfNeeded: low >> UInt64(shift))) }
        return encode(raw)
    }

    /// base64url without padding.
    static func encode(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity((raw.count * 4 + 2) / 3)
        var index = 0
        while index < raw.count {
            let b0 = UInt32(raw[index])
            let b1 = index + 1 < raw.count ? UInt32(raw[index + 1]) : 0
            let b2 = index + 2 < raw.count ? UInt32(raw[index + 2]) : 0
            let group = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(group >> 18 & 63)])
            out.append(alphabet[Int(group >> 12 & 63)])
            if index + 1 < raw.count { out.append(alphabet[Int(group >> 6 & 63)]) }
            if index + 2 < raw.count { out.append(alphabet[Int(group & 63)]) }
            index += 3
        }
        return out
    }

    /// Whether `bytes` could be a token at all (its length and alphabet):
    /// anything else is refused without hashing.
    static func isWellFormed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == length else { return false }
        for byte in bytes {
            let ok = (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x5F
            if !ok { return false }
        }
        return true
    }
}

/// The SHA-256 of a token: what the engine keeps and looks tokens up by.
struct TokenHash: Hashable, Sendable {
    let a: UInt64, b: UInt64, c: UInt64, d: UInt64

    init(of token: UnsafeRawBufferPointer) {
        let digest = SHA256.hash(data: token)
        var words: [UInt64] = [0, 0, 0, 0]
        for (index, byte) in digest.enumerated() { words[index / 8] = words[index / 8] << 8 | UInt64(byte) }
        (a, b, c, d) = (words[0], words[1], words[2], words[3])
    }

    init(of token: [UInt8]) { self = token.withUnsafeBytes { TokenHash(of: $0) } }

    /// As it goes into a handoff: 32 bytes.
    init(a: UInt64, b: UInt64, c: UInt64, d: UInt64) { (self.a, self.b, self.c, self.d) = (a, b, c, d) }
}
