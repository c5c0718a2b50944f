/// Everything the start-up sequence needs, decided before it runs: what
/// the command line says for a first engine, with what a handoff carries
/// in its place for a resumed one (`Bootstrap`). The sequence
/// (`StartupSequence`) reads this and never asks which kind of start it is:
/// what differs in the steps themselves is `start` (`StartPath`).
struct EngineConfiguration {
    /// How this engine comes up: fresh, or from a handoff.
    var start: any StartPath
    /// The module a first engine loads, and what a bare RELOAD reads again.
    var modulePath: String
    /// The only directory modules are loaded from.
    var modulesDirectory: ResolvedLater
    /// This engine's own path (the upgrade's default and fallback).
    var enginePath: String
    /// Where UPGRADE may take engines from.
    var enginesDirectory: ResolvedLater
    /// The first engine's arguments (without the program name), passed to
    /// every later engine.
    var arguments: [String]
    /// Descriptors the process was started with (see `UpgradeSettings`).
    var inheritedDescriptors: [Int32]
    /// AUTH's token (checked: 16 bytes at least, or a loopback admin port).
    var adminToken: [UInt8]?
    var auditLogPath: String?
    /// The SQLite file or PostgreSQL URL; nil with `--database :memory:`.
    var databasePath: String?
    /// `--server-name` and `--lease-seconds`, for a PostgreSQL database.
    var shared = SharedStorageSettings(serverName: "hotswap", leaseSeconds: 15)
    var limits: Limits
    /// `--game-setting key=value`, for the module (ABI 1.3).
    var gameSettings = GameSettings()
    /// The ports a first engine binds (a resumed one adopts the bound ones).
    var game: ReadyFile.Endpoint
    var admin: ReadyFile.Endpoint
    /// `--metrics-port`, on the admin host; nil when off.
    var metricsPort: Int?
    var readyFile: String?
    /// `--watch`: reload when the module file changes.
    var watch: Bool
}

/// A directory named on the command line, resolved to its real path only
/// when the sequence gets to it (a first engine refuses a missing one
/// after its module loaded, and says so in that order); one that came over
/// in a handoff is resolved already.
enum ResolvedLater {
    case resolved(String)
    /// `directory`, refused as `what` when it does not exist.
    case unresolved(String, what: String)

    func resolve() throws(StartRefused) -> String {
        switch self {
        case .resolved(let path): path
        case .unresolved(let directory, let what): try GameServerCommand.realDirectory(directory, what)
        }
    }
}
