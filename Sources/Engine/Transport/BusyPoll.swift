/// Decides, once per loop turn, whether the next poll may block.
///
/// Why: a loop blocked in `epoll_wait` must be woken by whoever sends to it,
/// and on loopback that sender pays for it: its `send` runs our socket's
/// receive path, whose wake-up of a sleeping thread on another (idle,
/// halted) CPU costs an IPI; in a VM that is an exit to the hypervisor.
/// Under `redis-benchmark -P 16` the engine, cheaper per request than
/// redis-server, went to sleep ~20,000 times per 2 M requests (redis-server:
/// ~500), and the client, which is the bottleneck, spent ~10% more of its
/// CPU waking us (BENCHMARKS.md, "The -P 16 gap"). Polling without blocking
/// for a few microseconds after the last I/O keeps the loop awake through
/// those short gaps, so the peer's send only queues data.
///
/// Adaptive, like the kernel's `cpuidle-haltpoll`: the window doubles (up
/// to `maxWindow`) when a sleep turned out shorter than `maxWindow` (a spin
/// would have caught it) and halves when a sleep was longer, so a loop that
/// sees sparse traffic drops to 0 and blocks at once, as before. The cost is
/// CPU: under sustained load the loop uses its whole core instead of
/// sleeping in short gaps.
struct BusyPoll {
    /// Longest spin after the last I/O, in nanoseconds; 0 turns spinning off.
    var maxWindow: UInt64
    /// The first window after a short sleep; smaller windows become 0.
    static let minWindow: UInt64 = 5_000
    private(set) var window: UInt64 = 0
    /// True while the loop polls without blocking.
    private(set) var spinning = false
    private var lastActive: UInt64 = 0
    /// When the loop last went back to blocking polls; 0 before the first.
    private var blockedAt: UInt64 = 0

    init(maxWindow: UInt64) {
        self.maxWindow = maxWindow
    }

    /// Called after every poll with whether that turn had I/O to answer and
    /// a monotonic `now` in nanoseconds; returns whether to keep spinning.
    mutating func afterPoll(active: Bool, now: UInt64) -> Bool {
        if active {
            if !spinning && blockedAt != 0 {
                // We slept `now - blockedAt` before this I/O woke us.
                if now &- blockedAt <= maxWindow {
                    window = min(max(window * 2, BusyPoll.minWindow), maxWindow)
                } else {
                    window /= 2
                    if window < BusyPoll.minWindow { window = 0 }
                }
            }
            lastActive = now
            spinning = window > 0
            if !spinning { blockedAt = now }
        } else if spinning && now &- lastActive >= window {
            spinning = false
            blockedAt = now
        }
        return spinning
    }
}
