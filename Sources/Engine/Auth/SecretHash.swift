import Crypto
import _CryptoExtras
import Foundation

/// A player's secret as the engine keeps it: a salted scrypt hash, never
/// the secret. Stored in the player's record as one printable string,
///
///     scrypt$15$8$1$<salt, base64>$<hash, base64>
///
/// (log2 N, r, p), so a later build can raise the cost and still check
/// the secrets stored under the old one.
///
/// Why scrypt (swift-crypto's `_CryptoExtras`, on BoringSSL), not
/// argon2id: swift-crypto is already a dependency and maintained; libsodium
/// would be a second C library to install and wrap for the same property,
/// a hash that costs memory as well as time. The default cost (N = 2^14,
/// r = 8: 16 MiB and about 30 ms of one core) is what makes a stolen
/// database slow to guess; it runs on a worker thread, never the loop,
/// and `AuthDesk` runs at most two at once.
///
/// Everything here is pure and `Sendable`: it runs on libuv's workers.
struct SecretHash: Sendable, Equatable {
    /// log2 of scrypt's N, its r and p.
    let logRounds: Int
    let blockSize: Int
    let parallelism: Int
    let salt: [UInt8]
    let hash: [UInt8]

    /// The cost new secrets are hashed with.
    struct Cost: Sendable, Equatable {
        var logRounds = 14
        var blockSize = 8
        var parallelism = 1

        static let standard = Cost()
    }

    static let hashLength = 32
    static let saltLength = 16

    /// Hashes `secret` under a fresh random salt.
    static func make(_ secret: [UInt8], cost: Cost = .standard) throws -> SecretHash {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<saltLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let hash = try derive(secret, salt: salt, logRounds: cost.logRounds, blockSize: cost.blockSize,
                              parallelism: cost.parallelism)
        return SecretHash(logRounds: cost.logRounds, blockSize: cost.blockSize, parallelism: cost.parallelism,
                          salt: salt, hash: hash)
    }

    /// Whether `secret` is the one this hash was made from (compared in
    /// constant time). False for a hash whose parameters cannot be used.
    func matches(_ secret: [UInt8]) -> Bool {
        guard let candidate = try? Self.derive(secret, salt: salt, logRounds: logRounds, blockSize: blockSize,
                                               parallelism: parallelism),
            candidate.count == hash.count
        else { return false }
        var difference: UInt8 = 0
        for index in 0..<hash.count { difference |= candidate[index] ^ hash[index] }
        return difference == 0
    }

    private static func derive(_ secret: [UInt8], salt: [UInt8], logRounds: Int, blockSize: Int,
                               parallelism: Int) throws -> [UInt8]
    {
        let key = try KDF.Scrypt.deriveKey(from: secret, salt: salt, outputByteCount: hashLength,
                                           rounds: 1 << logRounds, blockSize: blockSize, parallelism: parallelism,
                                           maxMemory: 128 * blockSize * parallelism << logRounds + (1 << 20))
        return key.withUnsafeBytes { [UInt8]($0) }
    }

    // MARK: - Stored form

    /// The string kept in the player's record.
    var encoded: [UInt8] {
        Array("scrypt$\(logRounds)$\(blockSize)$\(parallelism)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())".utf8)
    }

    /// Reads a stored form back; nil for anything else (a hand-edited
    /// record), which then matches no secret at all. The bounds (at most
    /// N = 2^17, r = 8, p = 1: 128 MiB, what `--secret-cost` allows) keep
    /// a forged record from asking a worker for gigabytes.
    init?(encoded bytes: [UInt8]) {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 6, parts[0] == "scrypt",
            let logRounds = Int(parts[1]), (10...17).contains(logRounds),
            let blockSize = Int(parts[2]), (1...8).contains(blockSize),
            let parallelism = Int(parts[3]), parallelism == 1,
            let salt = Data(base64Encoded: String(parts[4])), salt.count >= 8,
            let hash = Data(base64Encoded: String(parts[5])), hash.count == Self.hashLength
        else { return nil }
        self.init(logRounds: logRounds, blockSize: blockSize, parallelism: parallelism, salt: [UInt8](salt),
                  hash: [UInt8](hash))
    }

    init(logRounds: Int, blockSize: Int, parallelism: Int, salt: [UInt8], hash: [UInt8]) {
        self.logRounds = logRounds
        self.blockSize = blockSize
        self.parallelism = parallelism
        self.salt = salt
        self.hash = hash
    }
}
