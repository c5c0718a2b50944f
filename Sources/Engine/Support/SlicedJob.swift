import CLibUV
import UVKit

/// Work too long for one loop turn, done a slice per turn within a time
/// budget, as redis' `incrementallyRehash` does its rehashing: between two
/// slices the loop polls the sockets, so no player waits longer than one
/// slice for it.
///
/// Runs on a libuv idle handle: while the job runs the loop does not sleep
/// in its poll (an idle handle makes its timeout 0), so the next slice
/// comes right after the pending I/O is served.
///
/// The users: a reload's staged migration (StagedMigration), copying a
/// large flush out of World, and making a failed large flush dirty again
/// (WriteBehind).
final class SlicedJob {
    /// How long one slice may run: the step is handed the deadline.
    let budgetNanoseconds: UInt64
    private let idle: UnsafeMutablePointer<uv_idle_t>
    /// The step of the job that runs; nil when none does.
    private var step: ((_ deadline: UInt64) -> Bool)?
    /// Bumped by each `start`: a step that started another job (its own
    /// successor) does not stop it by returning false.
    private var generation = 0
    private var closed = false
    /// The longest slice so far, the step's own time.
    private(set) var longestSliceNanoseconds: UInt64 = 0
    private(set) var slices = 0

    init(loop: UnsafeMutablePointer<uv_loop_t>, budgetNanoseconds: UInt64) {
        self.budgetNanoseconds = budgetNanoseconds
        idle = .allocateHandle()
        let status = uv_idle_init(loop, idle)
        precondition(status == 0, "uv_idle_init: \(UVError(status))")
        idle.context = UVContext.pointer(to: self)
    }

    var running: Bool { step != nil }

    /// Runs `step(deadline)` once per loop turn from the next one on, until
    /// it returns false (done) or `stop` is called. Replaces a job already
    /// running. `step` should return by its deadline, checking it between
    /// units of work.
    func start(_ step: @escaping (_ deadline: UInt64) -> Bool) {
        precondition(!closed, "a SlicedJob started after close")
        self.step = step
        generation += 1
        longestSliceNanoseconds = 0
        slices = 0
        uvMust(uv_idle_start(idle) { idle in
            UVContext.object(idle!.pointee.data, as: SlicedJob.self).runSlice()
        }, "uv_idle_start")
    }

    /// Stops the job; its step is not called again.
    func stop() {
        guard step != nil else { return }
        step = nil
        uv_idle_stop(idle)
    }

    /// Closes the handle (at shutdown); `stop` first.
    func close() {
        guard !closed else { return }
        stop()
        closed = true
        idle.closeAndFree()
    }

    private func runSlice() {
        guard let step else {
            uv_idle_stop(idle)
            return
        }
        let started = uv_hrtime()
        let current = generation
        let more = step(started + budgetNanoseconds)
        slices += 1
        longestSliceNanoseconds = max(longestSliceNanoseconds, uv_hrtime() - started)
        if !more && current == generation { stop() }
    }
}
