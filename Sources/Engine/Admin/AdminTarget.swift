import Logging

/// What the operator's console works on, and nothing more: the logic
/// (reload, rollback, what serves), the stored players (SAVE, FORGET),
/// engine upgrades, and the engine's numbers. `Engine` is the one
/// implementation; the console never sees the transport, the sessions or
/// the upgrader's insides.
protocol AdminTarget: AnyObject {
    /// The loop's cached clock, in milliseconds.
    var now: UInt64 { get }
    var logger: Logger { get }
    var limits: Limits { get }
    /// Reload, rollback, the modules serving and served.
    var host: LogicHost { get }
    /// FORGET.
    var world: World { get }
    /// SAVE; nil with `--database :memory:`.
    var writeBehind: WriteBehind? { get }
    /// How the previous run ended (STATUS `previous_exit`).
    var previousExit: String { get }
    /// Every number, now (STATUS).
    func snapshot() -> EngineSnapshot
    /// UPGRADE: `refused` is called on the loop when it does not happen.
    func upgrade(path: String?, refused: @escaping (UpgradeRefusal) -> Void)
    /// A swap happened (the metrics' histogram of holds).
    func swapped(_ report: SwapReport)
}
