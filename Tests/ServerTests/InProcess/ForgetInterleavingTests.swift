import CLibUV
import Dispatch
import Glibc
import Logging
import Testing
@testable import HotswapEngine

/// FORGET against the write-behind, in process, with random interleavings:
/// players attached, changed, detached, forgotten and created again under
/// the same key while batches are copied out, on the worker, failing and
/// being made dirty again. Whatever happened, once the disk works again
/// and everything is flushed, the file holds exactly the players in
/// memory, with their values: no forgotten player comes back, no live one
/// is deleted.
@Suite struct ForgetInterleavingTests {
    typealias Rig = WriteBehindBatchTests.Rig

    /// Applies batches the way SQLiteStorage does (deletions first, then
    /// upserts) to a dictionary; fails writes while `failing` is set, and
    /// takes a random short time (so the loop runs during writes).
    final class ModelStorage: PlayerStorage, @unchecked Sendable {
        let location = "model"
        private let lock = DispatchSemaphore(value: 1)
        private var rows: [[UInt8]: [StoredValue?]]
        private var failingNow = false
        init(rows: [[UInt8]: [StoredValue?]]) { self.rows = rows }
        func loadAll() throws(StorageError) -> StoredSnapshot { StoredSnapshot() }
        func write(_ batch: PersistBatch) throws(StorageError) -> WriteReceipt {
            usleep(UInt32.random(in: 0..<1500))
            lock.wait()
            defer { lock.signal() }
            if failingNow { throw StorageError("database or disk is full", transient: true) }
            for key in batch.deleted { rows[key] = nil }
            for record in batch.players { rows[record.key] = record.values }
            return WriteReceipt()
        }
        func close() {}
        var failing: Bool {
            get { lock.wait(); defer { lock.signal() }; return failingNow }
            set { lock.wait(); failingNow = newValue; lock.signal() }
        }
        var snapshot: [[UInt8]: [StoredValue?]] { lock.wait(); defer { lock.signal() }; return rows }
    }

    /// What memory holds: every live player's key and values.
    static func memory(_ world: World, _ binding: FieldBinding) -> [[UInt8]: [StoredValue?]] {
        var rows: [[UInt8]: [StoredValue?]] = [:]
        world.forEachPlayer { id in
            let key = try! world.withKey(of: id) { Array($0) }
            rows[key] = [.int(world.int(binding, row: Int(id.index)))]
        }
        return rows
    }

    /// The run's choices come from one seed, which a failure names
    /// (`HOTSWAP_TEST_SEED` replays them; the worker's timing still varies).
    static func seed() -> UInt64 {
        if let text = getenv("HOTSWAP_TEST_SEED"), let seed = UInt64(String(cString: text)) { return seed }
        return UInt64.random(in: 0..<UInt64.max)
    }

    /// One random run over `fillers` stored players (enough of them make
    /// batches that are copied out, and made dirty again, over several
    /// loop turns); `shutdown` ends with close and flushAll instead of
    /// flushes on the loop.
    func run(fillers: Int, steps: Int, shutdown: Bool, touchAllOneIn: Int = 20) throws {
        let seed = Self.seed()
        var random = SplitMix(state: seed)
        let (world, binding) = try WriteBehindBatchTests.world(players: fillers)
        var initial: [[UInt8]: [StoredValue?]] = [:]
        for index in 0..<fillers { initial[Array("p\(index)".utf8)] = [.int(Int64(index))] }
        let storage = ModelStorage(rows: initial)
        let rig = Rig(world, storage)
        let keys = (0..<4).map { Array("p\($0)".utf8) } + (0..<4).map { Array("k\($0)".utf8) }
        var sessions: [[UInt8]: GameID] = [:]
        for _ in 0..<steps {
            let key = keys.randomElement(using: &random)!
            switch Int.random(in: 0..<12, using: &random) {
            case 0, 1:
                if sessions[key] == nil {
                    let session = world.openSession(peer: RecordingPeer())
                    // Refused at --max-players (the fillers fill it).
                    if (try? key.withUnsafeBytes { try world.attachPlayer(session, key: $0) }) != nil {
                        sessions[key] = session
                    } else {
                        world.closeSession(session)
                    }
                }
            case 2, 3:
                if let session = sessions[key], let player = try world.player(of: session) {
                    world.setInt(binding, row: Int(player.index), Int64.random(in: 1000..<100_000, using: &random))
                }
            case 4:
                if let session = sessions.removeValue(forKey: key) { world.closeSession(session) }
            case 5:
                try? world.forgetPlayer(key: key)
            case 6:
                rig.writeBehind.tick()
            case 7:
                storage.failing = Int.random(in: 0..<3, using: &random) == 0
            case 8:
                if Int.random(in: 0..<touchAllOneIn, using: &random) == 0 {
                    world.forEachPlayer { world.setInt(binding, row: Int($0.index), world.int(binding, row: Int($0.index)) + 1) }
                }
            case 9:
                rig.writeBehind.flushNow { _ in }
            default:
                uv_run(rig.loop, UV_RUN_NOWAIT)
                if Int.random(in: 0..<4, using: &random) == 0 { usleep(500) }
            }
        }
        storage.failing = false
        if shutdown {
            rig.writeBehind.close()
            _ = rig.writeBehind.flushAll()
            // The worker's completion of a flush flushAll waited for is
            // still to come on the loop: the loop is closed after it.
            let deadline = uv_hrtime() + 10_000_000_000
            repeat {
                uv_run(rig.loop, UV_RUN_NOWAIT)
            } while uv_loop_close(rig.loop) != 0 && uv_hrtime() < deadline
            rig.loop.deallocate()
        } else {
            // Twice: the first may only wait for a flush already under way.
            for _ in 0..<3 {
                var done = false
                rig.writeBehind.flushNow { _ in done = true }
                rig.pump { done }
            }
            #expect(world.dirtyCount == 0 && world.deletedKeys.isEmpty, "HOTSWAP_TEST_SEED=\(seed)")
            rig.close()
        }
        let file = storage.snapshot
        let live = Self.memory(world, binding)
        let wrong = Set(file.keys).union(live.keys).filter { file[$0] != live[$0] }
        #expect(wrong.isEmpty, "file and memory differ for \(wrong.map { String(decoding: $0, as: UTF8.self) }.sorted()) (HOTSWAP_TEST_SEED=\(seed))")
    }

    @Test func smallBatches() throws {
        for _ in 0..<20 { try run(fillers: 8, steps: 2000, shutdown: false) }
    }

    @Test func smallBatchesThenShutdown() throws {
        for _ in 0..<20 { try run(fillers: 8, steps: 2000, shutdown: true) }
    }

    @Test func batchesCopiedOutOverSeveralTurns() throws {
        for _ in 0..<3 { try run(fillers: WriteBehind.copySliceRecords + 50, steps: 1500, shutdown: false, touchAllOneIn: 1) }
    }

    @Test func failedBatchesMadeDirtyAgainOverSeveralTurns() throws {
        for shutdown in [false, true] {
            try run(fillers: WriteBehind.remarkSliceRecords + 50, steps: 1000, shutdown: shutdown, touchAllOneIn: 1)
        }
    }
}
