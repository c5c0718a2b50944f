import Histogram

/// Latencies in microseconds, in an HdrHistogram (1 µs to 60 s, three
/// significant digits): constant memory, no allocation per sample.
public struct LatencyStats: Sendable {
    public private(set) var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000,
                                                           numberOfSignificantValueDigits: .three)
    public init() {}

    public mutating func record(microseconds: UInt64) {
        _ = histogram.record(Swift.min(Swift.max(microseconds, 1), 60_000_000))
    }

    public mutating func add(_ other: LatencyStats) { histogram.add(other.histogram) }

    public mutating func reset() { histogram.reset() }

    public var count: UInt64 { histogram.totalCount }

    public func percentile(_ p: Double) -> UInt64 { count == 0 ? 0 : histogram.valueAtPercentile(p) }

    public var max: UInt64 { count == 0 ? 0 : histogram.max }

    /// The summary line's percentiles: p50, p90, p99, p99.9, max.
    public var summary: [(label: String, micros: UInt64)] {
        [("p50", percentile(50)), ("p90", percentile(90)), ("p99", percentile(99)),
         ("p99.9", percentile(99.9)), ("max", max)]
    }
}
