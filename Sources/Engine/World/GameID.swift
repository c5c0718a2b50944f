import GameABI

/// The engine's view of a `game_id`: kind, generation and slot index packed
/// in 64 bits (layout in game_abi.h). Ids are handed to logic modules as
/// plain integers and validated on every use, so a forged or stale id is
/// refused instead of reaching the wrong entity.
struct GameID: Hashable, Sendable, CustomStringConvertible {
    let raw: UInt64

    init(raw: UInt64) { self.raw = raw }

    init(kind: EntityKind, generation: UInt32, index: UInt32) {
        raw = UInt64(kind.rawValue) << 56
            | UInt64(generation & GameID.generationMask) << 32
            | UInt64(index)
    }

    static let generationMask: UInt32 = 0x00FF_FFFF
    static let global = GameID(raw: GAME_GLOBAL_ID)

    var kind: EntityKind? { EntityKind(rawValue: UInt32(raw >> 56)) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: raw >> 32) & GameID.generationMask }
    var index: UInt32 { UInt32(truncatingIfNeeded: raw) }

    var description: String { "\(kind.map { "\($0)" } ?? "?")#\(index).\(generation)" }
}

/// The kinds of entity that own fields. Raw values are the ABI's GAME_KIND_*.
enum EntityKind: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case global = 1
    case session = 2
    case room = 3
    /// A durable player record (ABI 1.2), persisted with the global entity.
    case player = 4

    /// Whether the kind's fields are written to the database.
    var isPersistent: Bool { self == .global || self == .player }

    var description: String {
        switch self {
        case .global: "global"
        case .session: "session"
        case .room: "room"
        case .player: "player"
        }
    }
}
