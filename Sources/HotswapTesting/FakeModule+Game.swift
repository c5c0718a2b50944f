import GameABI
import LogicKit

extension FakeModule {
    /// A game written on the SDK, linked into the test: the exports its
    /// module's `Exports.swift` forwards to `Module<G>`, without the C
    /// symbols (so two games can be tested in one binary).
    ///
    ///     let host = try FakeHost(FakeModule(game: Gems.self))
    ///
    /// `migrations` adds `hotswap_migrate` and `hotswap_migrate_down`, as
    /// a module whose game declares migrations exports them.
    public init<G: Game>(game: G.Type, migrations: Bool = false) {
        self.init()
        describe = { d in Module<G>.describe(d) }
        handle = { m, t in Module<G>.handle(m, t) }
        sessionClosed = { s, t in Module<G>.sessionClosed(s, t) }
        timer = { e, t in Module<G>.timer(e, t) }
        tick = { k, t in Module<G>.tick(k, t) }
        auth = { r, t in Module<G>.auth(r, t) }
        sessionAway = { s, t in Module<G>.sessionAway(s, t) }
        sessionBack = { s, t in Module<G>.sessionBack(s, t) }
        if migrations {
            migrate = { m, e, t in Module<G>.migrate(m, e, t) }
            migrateDown = { m, e, t in Module<G>.migrateDown(m, e, t) }
        }
    }
}
