import Prometheus

/// Decides which module calls are timed for `hotswap_request_duration_seconds`
/// and records them: one call in every `interval`.
///
/// Why a sample and not every call: timing a call takes two reads of the
/// monotonic clock, about 41 ns on this machine, and a PING costs the server
/// about 450 ns in all (BENCHMARKS.md, "Metrics"): timing every call would
/// cost ~9% of the hot path where the budget is 2%. One call in 64 costs
/// about 1.3 ns per request, and a countdown picks it without a random
/// number or a clock. Quantiles and the mean are unaffected by a uniform
/// sample; the histogram's `_count` counts the timed calls, and
/// `hotswap_requests_total` every call.
///
/// The timed call is recorded straight into the library's histogram (a lock
/// and a bucket search, ~25 ns), which the sampling makes cost nothing.
/// Without `--metrics-port` there is no histogram and nothing is timed.
struct CallSampler {
    let interval: Int
    private var countdown: Int
    private let histogram: ValueHistogram?

    /// Times nothing.
    static let off = CallSampler(interval: 0, histogram: nil)

    init(interval: Int, histogram: ValueHistogram?) {
        self.interval = histogram == nil ? 0 : max(interval, 1)
        self.histogram = histogram
        // Off: a countdown that never reaches zero in the life of a process.
        countdown = self.interval == 0 ? Int.max : self.interval
    }

    /// Whether this call is the one to time. One decrement per call.
    @inline(__always)
    mutating func due() -> Bool {
        countdown &-= 1
        return countdown == 0
    }

    /// Records a timed call and starts counting down to the next.
    mutating func record(nanoseconds: UInt64) {
        countdown = interval
        histogram?.record(Double(nanoseconds) / 1e9)
    }
}
