import Synchronization
import UVKit

/// What an operator is told after a swap.
struct SwapReport: Sendable {
    let from: LoadedModule
    let to: LoadedModule
    /// Microseconds the loop was held: no message was handled meanwhile
    /// (binding, migrating and committing).
    let heldMicroseconds: UInt64
    /// Copying, mapping and validating the file, on a worker thread while
    /// the loop kept serving.
    let loadMicroseconds: UInt64
    /// Entities passed through the module's `hotswap_migrate`.
    let migrated: Int
    /// How the stored players were migrated between messages before the
    /// commit, when they were (StagedMigration.swift).
    var staged: StagedReport? = nil
}

/// What a reload did when it did not fail.
enum SwapOutcome: Sendable {
    case swapped(SwapReport)
    /// The file holds the module already serving: nothing was loaded or
    /// swapped, and it does not count as a reload.
    case unchanged(LoadedModule)
}

/// Why a reload or rollback was refused. The old module keeps serving and
/// no field has changed whenever one of these is thrown.
enum SwapError: Error, Sendable, CustomStringConvertible {
    case load(ModuleLoadError)
    case outsideModulesDirectory(path: String, resolved: String, directory: String)
    case schema(SchemaError)
    case migrateMissing(field: String)
    /// `export` is `hotswap_migrate`, or `hotswap_migrate_down` on a rollback.
    case migrateFailed(entity: GameID, status: Int32, export: String)
    case loadHookFailed(status: Int32)
    /// Timers are pending (or rooms tick) and the module could not take
    /// them: it lacks `export`.
    case timeExportMissing(export: String, pending: Int, what: String)
    case authExportMissing(mode: String)
    /// `export` (`hotswap_migrate` or `hotswap_migrate_down`) faulted or
    /// hung on an entity (turned into `.faulted`).
    case migrateFaulted(outcome: Int32, entity: GameID, export: String)
    /// ROLLBACK would bring back a field from before the last upgrade while
    /// every other field moved on: the serving module retyped or migrated
    /// it and exports no `hotswap_migrate_down` (ABI 1.5; RollbackCheck.swift).
    case rollbackWouldMix(RollbackCheck.Mixed)
    /// The serving module's hotswap_migrate_down answered GAME_ERR_NOT_FOUND
    /// to its first call: it has no way back to that version. `rollback()` then goes
    /// on as for a module without the hook; never shown to an operator.
    case downDeclined
    /// Players live in a shared database (PostgreSQL): a migration of a
    /// player field would reach only the players this server holds, and
    /// leave every other stored player in the old shape.
    /// (`retyped` false and the field unique: a unique player field, which
    /// one server cannot check against players it does not hold.)
    case sharedPlayersMigration(field: String, retyped: Bool)
    /// A hook of the new module faulted or hung: contained, reload refused.
    case faulted(FaultRecord)
    case nothingToRollBack
    case busy
    /// The load did not finish on its worker within `--load-timeout`.
    case loadTimedOut(milliseconds: Int)
    /// A load that timed out still has not finished: its worker is stuck.
    case loadStuck
    case shuttingDown
    case cannotQueue(UVError)

    var description: String {
        switch self {
        case .load(let error): "\(error)"
        case .outsideModulesDirectory(let path, let resolved, let directory):
            "module path \(path) resolves to \(resolved), outside the modules directory \(directory)"
        case .schema(let error): "\(error)"
        case .migrateMissing(let field):
            "field '\(field)' is marked as migrated but the module exports no hotswap_migrate"
        case .migrateFailed(let entity, let status, let export):
            "\(export) failed with status \(status) on \(entity)"
        case .loadHookFailed(let status): "hotswap_load failed with status \(status)"
        case .downDeclined: "hotswap_migrate_down has no way back to that version"
        case .timeExportMissing(let export, let pending, let what):
            "the module exports no \(export), and \(pending) \(what) would have no handler"
        case .authExportMissing(let mode):
            "the module exports no hotswap_auth, and \(mode) makes every login go through the engine's check (ABI 1.4)"
        case .migrateFaulted(_, let entity, let export): "\(export) faulted on \(entity)"
        case .rollbackWouldMix(let mixed): "\(mixed)"
        case .sharedPlayersMigration(let field, let retyped):
            "player field '\(field)' \(retyped ? "changes type" : "is migrated or unique"), and players live in a shared database: "
                + "a migration, or a uniqueness check, would reach only the players this server holds, not the other stored players "
                + "(docs/SCALING.md); add a new field instead"
        case .faulted(let record): "fault \(record.causeName) in \(record.export)"
        case .nothingToRollBack: "no previous module to roll back to"
        case .busy: "another reload is in progress"
        case .loadTimedOut(let ms):
            "the load did not finish within \(ms) ms (a constructor or hotswap_describe that does not return?); nothing changed"
        case .loadStuck:
            "a previous load is stuck on its worker thread (it did not finish after timing out); UPGRADE or restart the server to load again"
        case .shuttingDown: "the server is shutting down"
        case .cannotQueue(let error): "cannot queue the load: \(error)"
        }
    }
}

/// One background load: a `Sendable` request in, a `Sendable` result out.
/// The worker thread sees nothing else of the engine.
///
/// The result goes through a `Mutex`: libuv already orders the worker's
/// write before the loop's read (the completion callback runs after the
/// work function returned, through libuv's own lock), but a load that timed
/// out is answered while its worker may still be running, and the type
/// system, not that argument, now keeps the two apart.
final class ReloadJob: Sendable {
    let request: ModuleLoadRequest
    private let outcome = Mutex<ModuleLoadResult?>(nil)

    init(request: ModuleLoadRequest) { self.request = request }

    /// Set by the worker; read on the loop once it is done.
    var result: ModuleLoadResult? {
        get { outcome.withLock { $0 } }
        set { outcome.withLock { $0 = newValue } }
    }
}
