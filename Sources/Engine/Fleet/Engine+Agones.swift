/// What the engine tells Agones (`AgonesLifecycle`), worded from its parts.
extension Engine {
    /// Once every port listens (the start-up's step 8, for a first engine
    /// and a resumed one alike). Nothing without `AGONES_SDK_HTTP_PORT`.
    func startAgones() {
        guard let lifecycle = AgonesLifecycle(loop: loop, healthIntervalMilliseconds: limits.agonesHealthInterval,
                                              logger: logger)
        else { return }
        lifecycle.roster = AgonesRoster(gateway: lifecycle.gateway, source: AgonesWorldView(world: world),
                                        maxRooms: limits.maxRooms, maxConnections: limits.maxConnections, logger: logger)
        agones = lifecycle
        lifecycle.start(versions: agonesVersions)
    }

    /// The labels and annotations: `engine` (1.1.0+eaaee0c814a3) and
    /// `module` (gems 1.0.1).
    var agonesVersions: [(key: String, exact: String)] {
        [("engine", EngineIdentity.version), ("module", "\(host.module.name) \(host.module.version)")]
    }
}

/// The World as the roster reads it: rooms open, players attached to a
/// session. Reads only, on the loop, between module calls (so never a
/// change a fault could still undo).
final class AgonesWorldView: AgonesRosterSource {
    private unowned let world: World

    init(world: World) { self.world = world }

    var roomCount: Int { world.roomCount }

    func forEachOnlinePlayer(_ body: (GameID) -> Void) {
        world.sessions.forEachID { session in
            if let player = try? world.player(of: session) { body(player) }
        }
    }

    func name(of player: GameID) -> String? {
        try? world.withKey(of: player) { String(decoding: $0, as: UTF8.self) }
    }

    func onlinePlayer(named name: String) -> GameID? {
        guard let player = world.player(withKey: Array(name.utf8)),
              let slot = world.players.slotIndex(of: player), world.isAttached(slot: slot)
        else { return nil }
        return player
    }
}
