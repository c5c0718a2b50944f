import GameABI

/// How players prove who they are on the fake server (the state table's
/// `auth_mode`). It is a fake: secrets are kept and compared in plain text,
/// and tokens are looked up in a table instead of having their signature
/// checked. No throttling (failed logins, new players per address) is
/// modelled.
public enum FakeAuthMode: Sendable, Equatable {
    /// GAME_AUTH_OPEN: a secret is optional; a player who never set one is a guest.
    case open
    /// GAME_AUTH_SECRET (`--require-secret`): every player has a secret.
    case secret
    /// GAME_AUTH_TOKEN (`--auth-jwt-key`): a token is the only login;
    /// `validTokens` maps each token the "login service" signed to its subject.
    case token(validTokens: [String: String])

    var code: UInt32 {
        switch self {
        case .open: UInt32(GAME_AUTH_OPEN)
        case .secret: UInt32(GAME_AUTH_SECRET)
        case .token: UInt32(GAME_AUTH_TOKEN)
        }
    }
}

/// The operator's limits the fake enforces (defaults: the engine's).
public struct FakeLimits: Sendable, Equatable {
    /// Live sessions (`--max-connections`): `connect()` past it gets the
    /// engine's "-ERR SERVER_FULL" line and a closed connection.
    public var maxSessions: Int
    public var maxRooms: Int
    public var maxRoomMembers: Int
    public var maxPlayers: Int
    public var maxTimers: Int
    public var maxTimersPerOwner: Int
    /// `--resume-grace` in milliseconds (0: resume is off).
    public var resumeGraceMilliseconds: UInt64

    public init(maxSessions: Int = 10_000, maxRooms: Int = 10_000, maxRoomMembers: Int = 256,
                maxPlayers: Int = 1_000_000, maxTimers: Int = 1_000_000, maxTimersPerOwner: Int = 10_000,
                resumeGraceMilliseconds: UInt64 = 30_000)
    {
        self.maxSessions = maxSessions
        self.maxRooms = maxRooms
        self.maxRoomMembers = maxRoomMembers
        self.maxPlayers = maxPlayers
        self.maxTimers = maxTimers
        self.maxTimersPerOwner = maxTimersPerOwner
        self.resumeGraceMilliseconds = resumeGraceMilliseconds
    }
}

/// Why the fake host refused a module, a reload or a rollback (the engine
/// would refuse it for the same reason; nothing changed).
public struct FakeHostError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    /// A rollback's migrateDown answered GAME_ERR_NOT_FOUND: it has no way
    /// back to that version (ABI 1.5), and the rollback goes on without it.
    let declined: Bool
    public init(_ description: String) { self.init(description, declined: false) }
    init(_ description: String, declined: Bool) {
        self.description = description
        self.declined = declined
    }
}

/// A status code and why: what a state table call that fails throws inside
/// the fake, turned into the code the module gets.
struct FakeStatus: Error {
    let code: Int32
    let why: String
    /// An answer the contract documents for a well-behaved module (resume
    /// turned off by the operator), not a mistake: never a violation.
    let isAnswer: Bool
    init(_ code: Int32, _ why: String, isAnswer: Bool = false) {
        self.code = code
        self.why = why
        self.isAnswer = isAnswer
    }

    static func name(_ code: Int32) -> String {
        switch code {
        case GAME_OK: "GAME_OK"
        case GAME_ERR_BAD_SESSION: "GAME_ERR_BAD_SESSION"
        case GAME_ERR_BAD_ROOM: "GAME_ERR_BAD_ROOM"
        case GAME_ERR_BAD_FIELD: "GAME_ERR_BAD_FIELD"
        case GAME_ERR_BAD_TYPE: "GAME_ERR_BAD_TYPE"
        case GAME_ERR_BAD_ARGUMENT: "GAME_ERR_BAD_ARGUMENT"
        case GAME_ERR_NOT_FOUND: "GAME_ERR_NOT_FOUND"
        case GAME_ERR_EXISTS: "GAME_ERR_EXISTS"
        case GAME_ERR_LIMIT: "GAME_ERR_LIMIT"
        case GAME_ERR_STATE: "GAME_ERR_STATE"
        case GAME_ERR_BAD_PLAYER: "GAME_ERR_BAD_PLAYER"
        case GAME_ERR_BAD_SECRET: "GAME_ERR_BAD_SECRET"
        case GAME_ERR_THROTTLED: "GAME_ERR_THROTTLED"
        case GAME_ERR_SECRET_REQUIRED: "GAME_ERR_SECRET_REQUIRED"
        case GAME_ERR_BUSY: "GAME_ERR_BUSY"
        default: "status \(code)"
        }
    }
}
