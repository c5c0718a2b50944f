import CLibUV

/// Work for a libuv worker thread, with a reply on the loop: every
/// `uv_queue_work` of the engine goes through here.
///
/// The pattern it writes once: a `uv_work_t` is allocated, a +1 reference
/// to what the work needs rides in its `data` from the submission to the
/// completion callback (so nothing can free it while the worker runs),
/// the completion takes the reference back and frees the request, and a
/// submission libuv refuses is undone at once.
///
/// The worker sees only `job`, which must be `Sendable`: the type system,
/// not a comment, keeps loop-only state off the worker. `after` runs on the
/// loop thread, after `work` returned (libuv orders the two through its own
/// lock), so it may read what `work` wrote into the job.
public enum UVWork {
    /// Queues `work(job)` on libuv's thread pool, then `after(job)` on the
    /// loop. Returns 0, or libuv's negative error when nothing was queued
    /// (then neither closure runs).
    @discardableResult
    public static func submit<Job: Sendable>(on loop: UnsafeMutablePointer<uv_loop_t>, _ job: Job,
                                             work: @escaping @Sendable (Job) -> Void,
                                             after: @escaping (Job) -> Void) -> Int32
    {
        let request = UnsafeMutablePointer<uv_work_t>.allocate(capacity: 1)
        let submission = Submission(work: { work(job) }, after: { after(job) })
        request.pointee.data = Unmanaged.passRetained(submission).toOpaque()
        let status = uv_queue_work(loop, request, { request in
            // Worker thread: only the job and the Sendable work.
            Unmanaged<Submission>.fromOpaque(request!.pointee.data!).takeUnretainedValue().work()
        }, { request, _ in
            // Loop thread.
            let submission = Unmanaged<Submission>.fromOpaque(request!.pointee.data!).takeRetainedValue()
            request!.deallocate()
            submission.after()
        })
        if status != 0 {
            Unmanaged<Submission>.fromOpaque(request.pointee.data!).release()
            request.deallocate()
        }
        return status
    }
}

/// What rides in a work request's `data` (not generic: a C callback
/// cannot name a generic type). `@unchecked Sendable`: `after` is not
/// Sendable, and is only ever called on the loop thread (the completion
/// callback); the worker calls `work` only.
private final class Submission: @unchecked Sendable {
    let work: @Sendable () -> Void
    let after: () -> Void

    init(work: @escaping @Sendable () -> Void, after: @escaping () -> Void) {
        self.work = work
        self.after = after
    }
}
