// metrics-cost: what one metric operation costs per request, the library's
// against a plain counter, on this machine, in nanoseconds (median of 7
// runs of 10,000,000 calls each, the cost of an empty call subtracted).
//
//     swift build -c release --product metrics-cost && .build/release/metrics-cost
//
// Every variant runs inside the same non-inlined "request" function, so the
// compiler can neither hoist the operation out of the loop nor drop it; the
// baseline is that function with no metric. The numbers decide where
// docs/BENCHMARKS.md ("Metrics") says the engine uses the library and where
// it keeps plain counters that the library reads at scrape time.
import CoreMetrics
import Glibc
import Metrics
import Prometheus

/// What a request does besides the metric: enough to keep the call real.
final class Work {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    /// The engine's way: a stored Int on an object the loop owns.
    var requests = 0
    /// A plain histogram: bucket counts in an array, found by bound.
    var buckets = [Int](repeating: 0, count: 16)
    var bounds: [UInt64] = (0..<16).map { 1000 << $0 }
    var sum: UInt64 = 0
    var countdown = 64
}

@inline(__always) func nanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

@inline(never) func step(_ work: Work) {
    work.state ^= work.state << 13
    work.state ^= work.state >> 7
    work.state ^= work.state << 17
}

let registry = PrometheusCollectorRegistry()
MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
let facadeCounter = Metrics.Counter(label: "facade_requests_total")
let facadeTimer = Metrics.Timer(label: "facade_request_duration_seconds")
func named(_ name: String) -> MetricNameDescriptor { MetricNameDescriptor(metricName: name, unitName: "", helpText: name) }
let libraryCounter = registry.makeCounter(descriptor: named("library_requests_total"))
let buckets: [Double] = [1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1, 1]
let libraryHistogram = registry.makeValueHistogram(descriptor: named("library_request_duration_seconds"), buckets: buckets)
let sampledHistogram = registry.makeValueHistogram(descriptor: named("sampled_request_duration_seconds"), buckets: buckets)

let variants: [(String, (Work) -> Void)] = [
    ("empty request (baseline)", { work in step(work) }),
    ("plain Int += 1", { work in
        step(work)
        work.requests &+= 1
    }),
    ("swift-metrics Counter.increment()", { work in
        step(work)
        facadeCounter.increment()
    }),
    ("swift-prometheus Counter.increment()", { work in
        step(work)
        libraryCounter.increment()
    }),
    ("clock_gettime pair (time one call)", { work in
        let start = nanoseconds()
        step(work)
        work.sum &+= nanoseconds() &- start
    }),
    ("timed + plain histogram observe", { work in
        let start = nanoseconds()
        step(work)
        let elapsed = nanoseconds() &- start
        var index = 0
        while index < 15 && elapsed > work.bounds[index] { index += 1 }
        work.buckets[index] &+= 1
        work.sum &+= elapsed
    }),
    ("timed + swift-prometheus Histogram.record", { work in
        let start = nanoseconds()
        step(work)
        libraryHistogram.record(Double(nanoseconds() &- start) / 1e9)
    }),
    ("timed + swift-metrics Timer.recordNanoseconds", { work in
        let start = nanoseconds()
        step(work)
        facadeTimer.recordNanoseconds(Int64(nanoseconds() &- start))
    }),
    ("1 in 64 timed + swift-prometheus record", { work in
        work.countdown &-= 1
        if work.countdown == 0 {
            work.countdown = 64
            let start = nanoseconds()
            step(work)
            sampledHistogram.record(Double(nanoseconds() &- start) / 1e9)
        } else {
            step(work)
        }
    }),
]

func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
func fixed(_ value: Double, _ width: Int, sign: Bool = false) -> String {
    let hundredths = Int((abs(value) * 100).rounded())
    let fraction = hundredths % 100
    let text = (value < 0 ? "-" : sign ? "+" : "") + "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    return String(repeating: " ", count: max(0, width - text.count)) + text
}

let calls = 10_000_000
let runs = 7
var baseline = 0.0
print(pad("operation per request", 48), "ns/request", "  over baseline")
for (name, body) in variants {
    var samples: [Double] = []
    for _ in 0..<runs {
        let work = Work()
        let start = nanoseconds()
        for _ in 0..<calls { body(work) }
        samples.append(Double(nanoseconds() - start) / Double(calls))
        if work.state == 0 { print("") }  // keeps the work observable
    }
    let median = samples.sorted()[runs / 2]
    if baseline == 0 { baseline = median }
    let extra = median - baseline
    print(pad(name, 48), fixed(median, 10), fixed(extra, 15, sign: true))
}
