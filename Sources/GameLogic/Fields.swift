import GameABI
import LogicKit

/// The default game's fields. The raw value is the field's index, which is
/// its position in the declaration list sent to the engine at load time; the
/// engine keeps the values, so they survive a reload of this module.
enum Field: Int32, CaseIterable {
    // session
    case name = 0
    case nameKey
    case x
    case y
    // player (durable: kept by the engine across logouts and restarts)
    case score
    // room
    case gems
    case round
    // global
    case logins
    // session, since 1.1.0 (appended: a field's index is its place in the list)
    /// Gems taken in the current round of the session's room (reset when a
    /// round starts and on JOIN): who wins the round.
    case roundPoints
    /// `now_ms` of the session's last request, any line at all: the AFK
    /// timer compares it with the time it fires.
    case lastRequest
    /// The session's pending `afk` timer (its id's bit pattern), 0 for
    /// none: cancelled when the player joins another room or leaves.
    case afkTimer
    // room, since 1.1.0
    /// The room's pending `round_end` timer (its id's bit pattern), 0 for
    /// none: a room made before 1.1.0 was loaded has none, and gets one at
    /// its next request.
    case roundTimer
    // session, since 1.2.0
    /// The name as typed at LOGIN, kept while the engine checks the secret
    /// (its answer, in hotswap_auth, carries only the lower-cased key).
    case loginName

    var declaration: FieldDeclaration {
        switch self {
        case .name: .string(GAME_KIND_SESSION, "name")
        case .nameKey: .string(GAME_KIND_SESSION, "name_key", unique: true)
        case .x: .int(GAME_KIND_SESSION, "x")
        case .y: .int(GAME_KIND_SESSION, "y")
        case .score: .int(GAME_KIND_PLAYER, "score")
        case .gems: .int(GAME_KIND_ROOM, "gems")
        case .round: .int(GAME_KIND_ROOM, "round")
        case .logins: .int(GAME_KIND_GLOBAL, "logins")
        case .roundPoints: .int(GAME_KIND_SESSION, "round_points")
        case .lastRequest: .int(GAME_KIND_SESSION, "last_request_ms")
        case .afkTimer: .int(GAME_KIND_SESSION, "afk_timer")
        case .roundTimer: .int(GAME_KIND_ROOM, "round_timer")
        case .loginName: .string(GAME_KIND_SESSION, "login_name")
        }
    }
}
