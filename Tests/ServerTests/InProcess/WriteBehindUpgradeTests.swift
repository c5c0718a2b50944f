import CLibUV
import Dispatch
import Glibc
import Logging
import Testing
@testable import HotswapEngine

/// What an engine upgrade asks of the write-behind, in process: it waits
/// for the flush on the worker (the exec must not cut a write short), and
/// no flush starts while it hands over (what is dirty goes to the next
/// engine, which writes it).
@Suite struct WriteBehindUpgradeTests {
    /// A storage whose writes wait until the test lets them through.
    final class GatedStorage: PlayerStorage, @unchecked Sendable {
        let location = "gated"
        let gate = DispatchSemaphore(value: 0)
        func loadAll() throws(StorageError) -> StoredSnapshot { StoredSnapshot() }
        func write(_ batch: PersistBatch) throws(StorageError) { gate.wait() }
        func close() {}
    }

    @Test func anUpgradeWaitsForTheFlushOnTheWorkerAndStartsNone() throws {
        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(loop)
        let world = World(limits: World.Limits(maxRooms: 1, maxRoomMembers: 1))
        let logins = FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: [])
        let binding = try world.bind([logins])[0]
        let storage = GatedStorage()
        let writeBehind = WriteBehind(storage: storage, world: world, loop: loop, logger: Logger(label: "test"),
                                      intervalMilliseconds: 60_000, stored: StoredSnapshot(), declaredFields: { [logins] })
        // Runs the loop until `done`, at most 10 s (the worker that
        // finishes a flush is a thread a loaded machine may be slow to run).
        func pump(until done: () -> Bool) {
            let deadline = uv_hrtime() + 10_000_000_000
            while !done() && uv_hrtime() < deadline {
                uv_run(loop, UV_RUN_NOWAIT)
                if !done() { usleep(100) }
            }
        }
        // A few turns of the loop, for what must not happen.
        func turns() {
            for _ in 0..<1_000 { uv_run(loop, UV_RUN_NOWAIT) }
        }

        world.setInt(binding, row: 0, 1)
        writeBehind.tick()  // on the worker now, held at the gate
        #expect(!world.globalDirty)
        writeBehind.paused = true
        var handedOver = false
        writeBehind.afterFlushInFlight { handedOver = true }
        world.setInt(binding, row: 0, 2)
        turns()
        #expect(!handedOver, "the flush on the worker is not done")

        storage.gate.signal()
        pump { handedOver }
        #expect(handedOver)
        #expect(writeBehind.flushes == 1)
        // Paused: the newer value stays dirty, for the next engine.
        writeBehind.tick()
        turns()
        #expect(world.globalDirty && writeBehind.flushes == 1)
        // No flush in flight: the next one runs at once.
        var again = false
        writeBehind.afterFlushInFlight { again = true }
        #expect(again)

        writeBehind.close()
        turns()
        uv_loop_close(loop)
        loop.deallocate()
    }
}
