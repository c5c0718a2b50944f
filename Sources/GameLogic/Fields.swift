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
        }
    }
}
