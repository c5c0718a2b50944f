import GameABI

/// How players prove who they are on this server (`auth_mode`).
enum AuthMode: UInt32, Sendable {
    /// A secret is optional: a player who never set one is a guest.
    case open = 0
    /// `--require-secret`: no guests.
    case secret = 1
    /// `--auth-jwt-key`: a signed token is the only login.
    case token = 2
}

/// One login (or change of secret) a module asked for during a request
/// (`auth_login`, `auth_set_secret`): recorded during the call, and handed
/// to `AuthDesk` only if the call did not fault. It holds the secret in
/// memory until the check is done, and nowhere else: never logged, never
/// in STATUS, never in a crash report; an engine upgrade hands it to the
/// next engine inside the handoff's memfd, which only that engine reads.
struct AuthAsk: Equatable, Sendable {
    enum Kind: UInt8, Sendable {
        /// `auth_login`: `identity` is the key (or the token), `secret` may be empty.
        case login = 1
        /// `auth_set_secret`: `identity` is empty.
        case setSecret = 2
    }

    var kind: Kind
    var session: GameID
    var identity: [UInt8]
    var secret: [UInt8]
}

/// What the engine found, handed to `hotswap_auth`.
struct AuthVerdict: Sendable {
    var status: Int32
    var flags: UInt32 = 0
    /// The player's key (a token's subject), or the identity asked for.
    var key: [UInt8]
    /// A new hash to store with the attach (a created player, a claim, a
    /// changed secret).
    var newSecret: [UInt8]? = nil
    var retryAfterMilliseconds: UInt64 = 0

    static func refused(_ status: Int32, key: [UInt8], retryAfter: UInt64 = 0) -> AuthVerdict {
        AuthVerdict(status: status, key: key, retryAfterMilliseconds: retryAfter)
    }
}
