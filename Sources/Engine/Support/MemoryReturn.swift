import CLibUV
import Glibc
import Logging
import UVKit
import UpgradeSupport

/// Gives freed memory back to the system after a burst of queued output.
///
/// Why: clients that do not read make the server queue output for them,
/// up to `--max-output-total`. When they are cut off or leave, their
/// buffers are freed, but glibc keeps freed heap memory for reuse: after
/// its first large `free` it raises its mmap threshold (up to 32 MiB), so
/// later output buffers of a megabyte come from the heap, and a heap
/// fragmented by thousands of them is not shrunk from its top. The
/// process's RSS stayed gigabytes above its start (issue #20: 0.8–2.5 GB
/// held after everyone left). `malloc_trim(0)` returns the free pages in
/// the middle of the heap too (`madvise(MADV_DONTNEED)`, glibc 2.8+).
///
/// When: the engine's once-a-second sweep calls `check` with the total
/// queued output (`Transport.queuedOutput`, O(1)). Once it reached
/// `threshold` (`--memory-trim-after`) and then fell below an eighth of
/// that peak, a trim runs, once per burst. It runs on a libuv worker
/// thread: walking a large heap takes milliseconds, and the loop, which
/// allocates nothing per request, barely meets the arena lock it holds.
/// Output buffers themselves shrink as they empty (`OutputBuffer.trim`,
/// above `Connection.retainedBufferBytes`), so after a burst there is
/// little left for the trim to keep.
final class MemoryReturn {
    let threshold: Int
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let logger: Logger
    /// The most queued output since the last trim.
    private var peak = 0
    /// A trim is on a worker thread.
    private var trimming = false
    /// Trims done.
    private(set) var trims = 0

    init(threshold: Int, loop: UnsafeMutablePointer<uv_loop_t>, logger: Logger) {
        self.threshold = threshold
        self.loop = loop
        self.logger = logger
    }

    /// The sweep's reading of the queued output: trims once it fell from
    /// a peak of at least `threshold` to an eighth of it.
    func check(queued: Int) {
        guard threshold > 0 else { return }
        peak = max(peak, queued)
        guard peak >= threshold, queued <= peak / 8, !trimming else { return }
        let fellFrom = peak
        peak = queued
        trimming = true
        let job = TrimJob()
        let logger = logger
        let status = UVWork.submit(on: loop, job, work: { job in
            let started = uv_hrtime()
            job.released = hs_malloc_trim() != 0
            job.nanoseconds = uv_hrtime() - started
        }, after: { [self] job in
            trimming = false
            trims += 1
            logger.info("memory returned after an output burst", metadata: [
                "peak_queued": "\(fellFrom)", "released": "\(job.released)",
                "trim_ms": "\(job.nanoseconds / 1_000_000)"])
        })
        if status != 0 { trimming = false }
    }
}

/// What a trim on the worker reports back (written there, read in `after`,
/// which libuv orders after the work).
private final class TrimJob: @unchecked Sendable {
    var released = false
    var nanoseconds: UInt64 = 0
}
