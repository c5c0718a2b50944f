import CLibUV
import Dispatch
import Glibc
import Logging
import Testing
@testable import HotswapEngine

/// What an engine upgrade asks of the write-behind, in process: its final
/// flush waits for the flush on the worker (the exec must not cut a write
/// short), writes what is dirty then, and no flush starts after it: what
/// is dirtied during it, or all of it if it fails, goes to the next engine
/// in memory, which writes it.
@Suite struct WriteBehindUpgradeTests {
    /// A storage whose writes wait until the test lets them through, and
    /// fail while `failing` is set (a full disk).
    final class GatedStorage: PlayerStorage, @unchecked Sendable {
        let location = "gated"
        let gate = DispatchSemaphore(value: 0)
        var failing = false
        /// The global `logins` each write carried.
        private(set) var written: [Int64] = []
        func loadAll() throws(StorageError) -> StoredSnapshot { StoredSnapshot() }
        func write(_ batch: PersistBatch) throws(StorageError) -> WriteReceipt {
            gate.wait()
            if failing { throw StorageError("database or disk is full", transient: true) }
            if case .int(let value)? = batch.global?.values.first { written.append(value) } else { written.append(-1) }
            return WriteReceipt()
        }
        func close() {}
    }

    /// A loop, a World with one global int and a write-behind over a gated storage.
    final class Rig {
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        let world = World(limits: World.Limits(maxRooms: 1, maxRoomMembers: 1))
        let logins = FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: [])
        let binding: FieldBinding
        let storage: GatedStorage
        let writeBehind: WriteBehind

        init() throws {
            uv_loop_init(loop)
            binding = try world.bind([logins])[0]
            storage = GatedStorage()
            let logins = logins
            writeBehind = WriteBehind(storage: storage, world: world, loop: loop, logger: Logger(label: "test"),
                                      intervalMilliseconds: 60_000, stored: StoredSnapshot(), declaredFields: { [logins] })
        }

        /// Runs the loop until `done`, at most 10 s (the worker that
        /// finishes a flush is a thread a loaded machine may be slow to run).
        func pump(until done: () -> Bool) {
            let deadline = uv_hrtime() + 10_000_000_000
            while !done() && uv_hrtime() < deadline {
                uv_run(loop, UV_RUN_NOWAIT)
                if !done() { usleep(100) }
            }
        }

        /// A few turns of the loop, for what must not happen.
        func turns() {
            for _ in 0..<1_000 { uv_run(loop, UV_RUN_NOWAIT) }
        }

        func close() {
            writeBehind.close()
            turns()
            uv_loop_close(loop)
            loop.deallocate()
        }
    }

    @Test func theFinalFlushWaitsForTheOneOnTheWorkerThenWritesWhatIsDirty() throws {
        let rig = try Rig()
        rig.world.setInt(rig.binding, row: 0, 1)
        rig.writeBehind.tick()  // on the worker now, held at the gate
        #expect(!rig.world.globalDirty)
        var outcome: WriteBehind.FinalFlush?
        rig.writeBehind.finalFlush { outcome = $0 }
        rig.world.setInt(rig.binding, row: 0, 2)
        rig.turns()
        #expect(outcome == nil, "the flush on the worker is not done")

        // The first flush is done; the final one takes 2 and waits at the gate.
        rig.storage.gate.signal()
        rig.pump { !rig.world.globalDirty }
        #expect(!rig.world.globalDirty && outcome == nil)
        rig.world.setInt(rig.binding, row: 0, 3)  // dirtied during the final flush
        rig.storage.gate.signal()
        rig.pump { outcome != nil }
        if case .wrote(let records, _) = outcome { #expect(records == 1) } else { Issue.record("\(String(describing: outcome))") }
        #expect(rig.storage.written == [1, 2])
        #expect(rig.writeBehind.counters.flushes == 2)
        // Paused: 3 stays dirty, for the next engine.
        rig.writeBehind.tick()
        rig.turns()
        #expect(rig.world.globalDirty && rig.writeBehind.counters.flushes == 2)
        // No flush in flight: the next one runs at once.
        var again = false
        rig.writeBehind.afterFlushInFlight { again = true }
        #expect(again)
        rig.close()
    }

    @Test func aFinalFlushThatFailsLeavesItsRowsDirtyForTheNextEngine() throws {
        let rig = try Rig()
        rig.storage.failing = true
        rig.world.setInt(rig.binding, row: 0, 7)
        var outcome: WriteBehind.FinalFlush?
        rig.writeBehind.finalFlush { outcome = $0 }
        rig.storage.gate.signal()
        rig.pump { outcome != nil }
        if case .failed(let error) = outcome {
            #expect(error.description.contains("disk is full"))
        } else {
            Issue.record("\(String(describing: outcome))")
        }
        #expect(rig.world.globalDirty && rig.writeBehind.counters.errors == 1 && rig.writeBehind.counters.flushes == 0)
        rig.close()
    }

    /// With nothing dirty nothing is written: the upgrade goes on once a
    /// check on the worker has found the file still there (a file that is
    /// gone refuses it: DatabaseTruthTests).
    @Test func withNothingDirtyTheUpgradeGoesOnWithoutAWrite() throws {
        let rig = try Rig()
        // The first flush writes the new column; then nothing is dirty.
        rig.storage.gate.signal()
        rig.writeBehind.tick()
        rig.pump { rig.writeBehind.counters.flushes == 1 }
        var outcome: WriteBehind.FinalFlush?
        rig.writeBehind.finalFlush { outcome = $0 }
        rig.pump { outcome != nil }
        if case .nothingDirty = outcome {} else { Issue.record("\(String(describing: outcome))") }
        #expect(rig.storage.written.count == 1 && rig.writeBehind.counters.flushes == 1)
        rig.close()
    }
}
