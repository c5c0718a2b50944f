import CLibUV
import Glibc
import UVKit

/// Wakes the load tool's loop at an exact moment (to the microsecond, not
/// the millisecond): a `timerfd` armed at an absolute `CLOCK_MONOTONIC`
/// time, watched by a `uv_poll` handle.
///
/// Why not a `uv_timer`: libuv's timers count whole milliseconds of a loop
/// time cached once per turn, so a request due at t is sent somewhere in
/// [t, t + 2 ms). The tool counts latency from the due time (as it must,
/// to avoid coordinated omission), so that lateness was reported as the
/// server's: 1.7 ms median at 200 requests/s, where a blocking client
/// measured 32 µs (docs/BENCHMARKS.md, "The load tool's latency"). A timerfd
/// fires when the kernel's hrtimer does, and `uv_hrtime` reads the same
/// clock (CLOCK_MONOTONIC), so due times and readings agree.
final class Pacer {
    private let descriptor: Int32
    private let poll = UnsafeMutablePointer<uv_poll_t>.allocateHandle()
    private let onDue: () -> Void
    /// The due time the timer is set for (0: disarmed).
    private var armedAt: UInt64 = 0

    /// `onDue` runs on the loop when an armed time has come.
    init(loop: UnsafeMutablePointer<uv_loop_t>, onDue: @escaping () -> Void) {
        descriptor = timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC))
        precondition(descriptor >= 0, "timerfd_create failed: errno \(errno)")
        self.onDue = onDue
        uv_poll_init(loop, poll, descriptor)
        poll.context = UVContext.pointer(to: self)
        uv_poll_start(poll, Int32(UV_READABLE.rawValue)) { handle, _, _ in
            UVContext.object(handle!.pointee.data, as: Pacer.self).fired()
        }
    }

    /// Wakes the loop at `time` (a `uv_hrtime` reading); a time already
    /// past fires at once.
    func arm(at time: UInt64) {
        guard time != armedAt else { return }
        armedAt = time
        var spec = itimerspec()
        // 0 disarms a timerfd; a past time must still fire.
        let due = max(time, 1)
        spec.it_value = timespec(tv_sec: Int(due / 1_000_000_000), tv_nsec: Int(due % 1_000_000_000))
        timerfd_settime(descriptor, Int32(TFD_TIMER_ABSTIME), &spec, nil)
    }

    func disarm() {
        armedAt = 0
        var spec = itimerspec()
        timerfd_settime(descriptor, 0, &spec, nil)
    }

    private func fired() {
        var expirations: UInt64 = 0
        _ = read(descriptor, &expirations, 8)
        armedAt = 0
        onDue()
    }

    /// Stops watching and closes the descriptor (the handle is freed by
    /// libuv's close callback; the loop is ending).
    func close() {
        poll.closeAndFree()
        Glibc.close(descriptor)
    }
}
