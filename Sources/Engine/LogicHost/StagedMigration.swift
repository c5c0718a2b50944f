import CLibUV
import FaultGuard
import GameABI
import Glibc
import UVKit

/// What a reload's staged migration did, for the operator's reply.
struct StagedReport: Sendable {
    /// Stored players migrated in slices while the game was served.
    let players: Int
    /// Players the game changed while the slices ran (or created since),
    /// migrated again from their live values in the commit; nil when the
    /// staged table no longer fit and the commit migrated every player.
    let remigrated: Int?
    let slices: Int
    /// From the first slice to the last.
    let milliseconds: UInt64
    /// The longest slice, or the setup before the first (binding the new
    /// schema on the staged copy): the longest the game waited for the
    /// migration before the commit.
    let longestSliceMicroseconds: UInt64
}

/// A reload that retypes a player field migrates every stored player
/// (all are in memory, online or not) before it commits. Done in the
/// commit's one loop callback, that held the game about 0.2 µs per player
/// with the default game: 21 ms at 100,000 players, some 200 ms at the
/// million `--max-players` allows. So the players are migrated first, in
/// slices of about `sliceNanoseconds` between messages, into a staged
/// copy of the store (copy-on-write: it shares every column the migration
/// does not write), and the commit only takes the staged player table over
/// and migrates again the players the game changed meanwhile.
///
/// Why slices on the loop and not a worker thread: module code runs on the
/// loop thread only. The state table, FaultGuard's watchdog (a hang in a
/// hook is interrupted) and the world's bookkeeping are built for it, and a
/// second thread running the candidate's code against World would need
/// all of them twice.
///
/// The rules a slice keeps:
/// - The live store is never written: a refused reload leaves no trace.
/// - The hook may write only the player it migrates (`checkWrite`): other
///   rows of the staged store are not kept.
/// - Rows the game writes between slices are noted (`World.StagingWrites`)
///   and migrated again from their live values in the commit, as are
///   players created after the slices began.
/// - Nothing a slice writes is dirty until the commit, so no flush can put
///   part of a migrated column in the file.
/// - A reload stays in progress throughout: other reloads, rollbacks
///   (the fault policy's too) and engine upgrades are refused meanwhile.
final class StagedMigration {
    /// How long a slice runs hooks: about 10,000 players of the default
    /// game. A slow hook makes more slices, not longer ones (checked every
    /// 16 players); the slice's own bookkeeping comes on top (2.0–3.5 ms
    /// slices measured at a million players).
    static let sliceNanoseconds: UInt64 = 2_000_000
    /// How often the operators hear how far it got (`>MIGRATING`).
    static let progressNanoseconds: UInt64 = 1_000_000_000

    let candidate: LoadedModule
    let loadNanoseconds: UInt64
    let done: (Result<SwapOutcome, SwapError>) -> Void
    let hook: hotswap_migrate_fn
    /// Reads the serving module's values from the store as it was when the
    /// slices began (the rows of players the game changes since are
    /// migrated again in the commit).
    let context: MigrationContext
    let bindings: [FieldBinding]
    let fromVersion: String
    /// Stored players when the slices began: the slices go through the
    /// player arena's slots below `endSlot` (slots past it hold players
    /// created since, which the commit migrates).
    let total: Int
    private let endSlot: Int
    private var nextSlot = 0
    /// Players migrated so far.
    private(set) var migrated = 0
    /// The ids of the next few slots (reused: no allocation per slice).
    private var chunk: [GameID] = []
    private var chunkSlots: [Int] = []
    private var store: StateStore?
    private(set) var slices = 0
    private var started: UInt64 = 0
    private var lastSliceEnded: UInt64 = 0
    /// Starts as the setup's time (see `StagedReport`).
    var longestSlice: UInt64 = 0
    private var lastProgress: UInt64 = 0
    /// Runs the slices, one per loop turn (SlicedJob).
    let job: SlicedJob

    init(candidate: LoadedModule, loadNanoseconds: UInt64, done: @escaping (Result<SwapOutcome, SwapError>) -> Void,
         hook: @escaping hotswap_migrate_fn, context: MigrationContext, store: StateStore, bindings: [FieldBinding],
         fromVersion: String, total: Int, endSlot: Int, loop: UnsafeMutablePointer<uv_loop_t>)
    {
        self.candidate = candidate
        self.loadNanoseconds = loadNanoseconds
        self.done = done
        self.hook = hook
        self.context = context
        self.store = store
        self.bindings = bindings
        self.fromVersion = fromVersion
        self.total = total
        self.endSlot = endSlot
        chunk.reserveCapacity(Self.chunkSize)
        chunkSlots.reserveCapacity(Self.chunkSize)
        job = SlicedJob(loop: loop, budgetNanoseconds: Self.sliceNanoseconds)
    }

    var finished: Bool { nextSlot >= endSlot }

    /// Ids gathered from the arena per call into the hook loop.
    private static let chunkSize = 256

    /// The staged store, once: the commit takes it.
    func takeStore() -> StateStore? {
        defer { store = nil }
        return store
    }

    func progress(remigrated: Int?) -> StagedReport {
        StagedReport(players: migrated, remigrated: remigrated, slices: slices,
                     milliseconds: (lastSliceEnded - started) / 1_000_000,
                     longestSliceMicroseconds: longestSlice / 1000)
    }

    /// One slice: migrates players from the next slot on until the
    /// deadline, on the staged store. Returns whether operators should hear
    /// of the progress.
    fileprivate func slice(host: LogicHost, deadline: UInt64) throws(SwapError) -> Bool {
        let begun = uv_hrtime()
        if slices == 0 { started = begun; lastProgress = begun }
        slices += 1
        defer {
            lastSliceEnded = uv_hrtime()
            longestSlice = max(longestSlice, lastSliceEnded - begun)
            host.call.onlyWritable = 0
        }
        // Moved out while the slice runs: a second reference would make
        // its first write to each column copy the column.
        guard var staged = takeStore() else { return false }
        defer { store = staged }
        let world = host.world
        try world.withStagedStore(&staged) { () throws(SwapError) in
            try host.asCandidate(candidate, bindings: bindings) { () throws(SwapError) in
                while nextSlot < endSlot {
                    chunk.removeAll(keepingCapacity: true)
                    chunkSlots.removeAll(keepingCapacity: true)
                    var slot = nextSlot
                    while chunk.count < Self.chunkSize && slot < endSlot {
                        if let id = world.playerID(atSlot: slot) {
                            chunk.append(id)
                            chunkSlots.append(slot)
                        }
                        slot += 1
                    }
                    let count = try context.run(hook, table: host.table, from: fromVersion, to: candidate.version,
                                                   ids: chunk, deadline: deadline,
                                                   willMigrate: { host.call.onlyWritable = $0.raw },
                                                   fault: host.faultBuffer)
                    migrated += count
                    if count < chunk.count {
                        nextSlot = chunkSlots[count]
                        break
                    }
                    nextSlot = slot
                    if uv_hrtime() >= deadline { break }
                }
            }
        }
        let now = uv_hrtime()
        guard now >= lastProgress + Self.progressNanoseconds else { return false }
        lastProgress = now
        return true
    }
}

extension LogicHost {
    /// Starts migrating the stored players in slices when a loaded
    /// candidate needs it: it migrates, declares player fields, there are
    /// players, and no player column is unique (those are migrated in the
    /// commit, as are the global entity, sessions and rooms, always).
    /// Returns false, having started nothing, otherwise, and when the
    /// schema does not bind (the commit then refuses it with the reason).
    func stageMigration(of candidate: LoadedModule, loadNanoseconds: UInt64,
                        done: @escaping (Result<SwapOutcome, SwapError>) -> Void) -> Bool
    {
        guard let hook = candidate.migrate, candidate.fields.contains(where: { $0.kind == .player }),
            world.playerCount > 0
        else { return false }
        let setup = uv_hrtime()
        let old = world.snapshot()
        var store = old
        guard let stagedBindings = try? store.bind(candidate.fields, live: module.fields),
            !store.hasUniqueColumn(.player)
        else { return false }
        let context = MigrationContext(world: world, oldStore: old, oldFields: module.fields, oldBindings: bindings)
        let migration = StagedMigration(candidate: candidate, loadNanoseconds: loadNanoseconds, done: done, hook: hook,
                                        context: context, store: store, bindings: stagedBindings,
                                        fromVersion: module.version, total: world.playerCount,
                                        endSlot: world.playerSlots, loop: loop)
        migration.longestSlice = uv_hrtime() - setup
        moveReload(to: .staging(migration))
        world.beginStaging()
        logger.notice("reload: migrating \(world.playerCount) stored players to \(candidate.name) \(candidate.version) between messages before the commit")
        migration.job.start { [unowned self] deadline in
            runStagedSlice(deadline: deadline)
            return true  // the job is stopped by stopStaging
        }
        return true
    }

    /// One loop turn of a staged migration: a slice, or, once every player
    /// is done, the commit (in a turn of its own, so the game is served
    /// between the last slice and it).
    private func runStagedSlice(deadline: UInt64) {
        guard let migration = staged else { return }
        if migration.finished {
            #if HOTSWAP_TEST_KNOBS
            // The staging gate (TestKnobs): no commit while its file exists.
            if let gate = EngineIdentity.stagingGate, access(gate, F_OK) == 0 { return }
            #endif
            let done = migration.done
            stopStaging(then: .idle)
            commitReload(migration.candidate, loadNanoseconds: migration.loadNanoseconds, staged: migration, done: done)
            return
        }
        do throws(SwapError) {
            if try migration.slice(host: self, deadline: deadline) {
                logger.notice("reload: migrated \(migration.migrated) of \(migration.total) stored players")
                delegate?.logicMigrating(migration.candidate, done: migration.migrated, of: migration.total)
            }
        } catch {
            endStagedMigration(.failure(refused(migration.candidate, error)))
        }
    }

    /// Gives up a staged migration (refused, or the server is stopping):
    /// the live world was never written, so nothing is undone.
    func endStagedMigration(_ outcome: Result<SwapOutcome, SwapError>, then next: ReloadState = .idle) {
        guard let migration = staged else { return }
        stopStaging(then: next)
        world.endStaging()
        migration.done(outcome)
    }

    /// Stops the slices and leaves `staging` for `next`.
    private func stopStaging(then next: ReloadState) {
        guard let migration = staged else { return }
        moveReload(to: next)
        migration.job.close()
    }
}
