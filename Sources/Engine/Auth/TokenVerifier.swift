import Crypto
import Foundation

/// Checks a JSON Web Token from a studio's own login service
/// (`--auth-jwt-key FILE`): its signature under the one configured key,
/// its expiry, and its subject, which becomes the player's key.
///
/// The key file decides the algorithm: a PEM public key
/// (`-----BEGIN PUBLIC KEY-----`, P-256) means ES256, anything else is an
/// HS256 secret (its bytes, a trailing newline dropped, at least 32). The
/// token's `alg` must be that one: `none`, or HS256 signed with the
/// public key's bytes (the classic confusion), is refused.
///
/// Claims: `sub` (required: 1...64 bytes of UTF-8 without NUL), `exp`
/// (required: a token that never expires is refused), `nbf` (if present);
/// both with 30 s of leeway for clocks that disagree. With
/// `--auth-jwt-audience` the token's `aud` (a string, or an array of them)
/// must name it, and with `--auth-jwt-issuer` its `iss` must be it: a
/// studio whose login service signs tokens for several services with one
/// key keeps a token for one from logging in to another.
///
/// Why not jwt-kit: its key collection is an actor whose `verify` is
/// `async`, and a check here runs on a libuv worker thread that has no
/// executor to wait on; swift-crypto does the cryptography, and what is
/// left (base64url, three JSON fields) is this file. Pure and `Sendable`.
struct TokenVerifier: Sendable {
    /// Kept as bytes: swift-crypto's key types are not `Sendable` here,
    /// and a key is rebuilt per check on the worker (microseconds).
    enum Key: Sendable {
        case hs256([UInt8])
        case es256(Data)
    }

    let key: Key
    /// `--auth-jwt-audience`, `--auth-jwt-issuer`: checked when set.
    var audience: String?
    var issuer: String?
    static let leewaySeconds = 30.0

    var algorithm: String {
        switch key {
        case .hs256: "HS256"
        case .es256: "ES256"
        }
    }

    /// Reads the key file's bytes; throws a sentence for the operator.
    init(keyFile bytes: [UInt8], audience: String? = nil, issuer: String? = nil) throws(TokenError) {
        self.audience = audience
        self.issuer = issuer
        let text = String(decoding: bytes, as: UTF8.self)
        if text.contains("-----BEGIN") {
            do {
                key = .es256(try P256.Signing.PublicKey(pemRepresentation: text).rawRepresentation)
            } catch {
                throw .badKey("the file holds a PEM block that is not a P-256 public key (ES256): \(error)")
            }
        } else {
            var secret = bytes
            while let last = secret.last, last == 0x0A || last == 0x0D { secret.removeLast() }
            guard secret.count >= 32 else {
                throw .badKey("an HS256 secret must be at least 32 bytes (it has \(secret.count))")
            }
            key = .hs256(secret)
        }
    }

    /// Why a token is refused (said to the operator's log at debug level,
    /// to the player only as BAD_SECRET: a forger learns nothing).
    enum TokenError: Error, Equatable, CustomStringConvertible {
        case badKey(String)
        case malformed(String)
        case wrongAlgorithm(String)
        case badSignature
        case expired
        case notYetValid
        case badSubject
        case wrongAudience
        case wrongIssuer

        var description: String {
            switch self {
            case .badKey(let why): "bad key: \(why)"
            case .malformed(let why): "malformed token: \(why)"
            case .wrongAlgorithm(let alg): "token algorithm \(alg) is not the key's"
            case .badSignature: "bad signature"
            case .expired: "token expired"
            case .notYetValid: "token not valid yet (nbf)"
            case .badSubject: "token subject missing or not 1...64 bytes of UTF-8"
            case .wrongAudience: "token not for this audience (--auth-jwt-audience)"
            case .wrongIssuer: "token not from this issuer (--auth-jwt-issuer)"
            }
        }
    }

    /// The token's subject, if it is genuine and current at `now` (Unix
    /// seconds).
    func subject(of token: [UInt8], now: Double) throws(TokenError) -> [UInt8] {
        let parts = token.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("not three parts") }
        guard let headerBytes = Self.base64URL(parts[0]), let payloadBytes = Self.base64URL(parts[1]),
            let signature = Self.base64URL(parts[2])
        else { throw .malformed("not base64url") }
        guard let header = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any],
            let alg = header["alg"] as? String
        else { throw .malformed("no header") }
        guard alg == algorithm else { throw .wrongAlgorithm(String(alg.unicodeScalars.prefix(16).filter { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F }.map(Character.init))) }
        // A header extension this verifier does not know must not be ignored (RFC 7515 4.1.11).
        guard header["crit"] == nil else { throw .malformed("crit header") }
        let signed = Data(token[0..<(parts[0].count + 1 + parts[1].count)])
        switch key {
        case .hs256(let secret):
            guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: signed,
                                                         using: SymmetricKey(data: secret)) else {
                throw .badSignature
            }
        case .es256(let publicKey):
            guard let publicKey = try? P256.Signing.PublicKey(rawRepresentation: publicKey),
                let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
                publicKey.isValidSignature(ecdsa, for: signed)
            else { throw .badSignature }
        }
        guard let claims = try? JSONSerialization.jsonObject(with: payloadBytes) as? [String: Any] else {
            throw .malformed("no claims")
        }
        guard let expiry = (claims["exp"] as? NSNumber)?.doubleValue else { throw .malformed("no exp") }
        guard now < expiry + Self.leewaySeconds else { throw .expired }
        if let notBefore = claims["nbf"] {
            guard let seconds = (notBefore as? NSNumber)?.doubleValue else { throw .malformed("nbf is not a number") }
            guard now + Self.leewaySeconds >= seconds else { throw .notYetValid }
        }
        if let audience {
            let named = (claims["aud"] as? String).map { [$0] } ?? (claims["aud"] as? [Any])?.compactMap { $0 as? String } ?? []
            guard named.contains(audience) else { throw .wrongAudience }
        }
        if let issuer { guard claims["iss"] as? String == issuer else { throw .wrongIssuer } }
        guard let subject = claims["sub"] as? String else { throw .badSubject }
        let key = Array(subject.utf8)
        guard (1...64).contains(key.count), !key.contains(0) else { throw .badSubject }
        return key
    }

    static func base64URL(_ part: ArraySlice<UInt8>) -> Data? {
        var text = String(decoding: part, as: UTF8.self)
            .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        return Data(base64Encoded: text)
    }
}
