import Prometheus

/// The glue to swift-prometheus: its registry holds every metric family
/// and writes the text exposition format (version 0.0.4); this fills it.
///
/// - Counters and gauges the engine already keeps are copied in at scrape
///   time from an `EngineSnapshot`, through the rows of `EngineReading.all`
///   that name a metric (the same rows STATUS renders), and the process's
///   from `ProcessStats`. A plain `Int` on the hot path costs 0.7 ns, the
///   library's atomic counter 5.2 ns (BENCHMARKS.md, "Metrics").
/// - Histograms are the library's own, recorded when their event happens:
///   a sampled module call (`CallSampler`) and a swap's `held_us`, both
///   rare enough that the library's lock costs nothing measurable.
/// - `hotswap_module_info` carries the serving module in its labels, so its
///   series is replaced when the module changes.
///
/// Everything runs on the loop thread; the registry's own locks are never
/// contended.
final class Exposition {
    let registry = PrometheusCollectorRegistry()
    /// Sampled durations of `hotswap_handle` calls.
    let requestDuration: ValueHistogram
    /// How long each swap held the loop.
    let reloadHeld: ValueHistogram
    /// How late each timer and tick fired (`TimerClock`).
    let timerLag: ValueHistogram
    /// How long each room's tick call took.
    let tickDuration: ValueHistogram

    private enum Slot {
        case counter(Counter)
        case gauge(Gauge)
    }

    private let readings: [(read: @Sendable (EngineSnapshot) -> Double, scale: Double, slot: Slot)]
    private let processReadings: [(read: @Sendable (ProcessStats) -> Double, slot: Slot)]
    private var moduleInfo: (labels: [String], gauge: Gauge)?
    /// The size of the last exposition, to reserve the next one at once.
    private var lastSize = 4096

    /// Module calls of a game take microseconds; the top buckets are for
    /// calls near --call-timeout (250 ms by default).
    static let requestBuckets: [Double] = [
        0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
        0.001, 0.002_5, 0.01, 0.05, 0.25, 1,
    ]
    /// A swap holds the loop for tens of microseconds, more when a
    /// migration runs once per entity.
    static let heldBuckets: [Double] = [
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
        0.1, 0.25, 1,
    ]

    /// Timers fire within a millisecond of their deadline unless the loop
    /// is busy; the top buckets show stalls.
    /// libuv's timers count whole milliseconds, so most lateness is under
    /// 1 ms; the buckets around 1 to 2 ms tell a loaded loop from a healthy one.
    static let lagBuckets: [Double] = [
        0.000_1, 0.000_25, 0.000_5, 0.000_75, 0.001, 0.001_25, 0.001_5, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05,
        0.1, 0.25, 1,
    ]

    init(readings: [EngineReading] = EngineReading.all) {
        requestDuration = registry.makeValueHistogram(
            descriptor: Exposition.descriptor("hotswap_request_duration_seconds",
                                              "Duration of the module's hotswap_handle call, one call in every --metrics-sample-every (_count counts the timed calls)."),
            buckets: Exposition.requestBuckets)
        reloadHeld = registry.makeValueHistogram(
            descriptor: Exposition.descriptor("hotswap_reload_held_seconds",
                                              "How long each swap (reload, rollback, automatic rollback) held the event loop."),
            buckets: Exposition.heldBuckets)
        timerLag = registry.makeValueHistogram(
            descriptor: Exposition.descriptor("hotswap_timer_lag_seconds",
                                              "How long after its deadline each timer and room tick fired (loop lateness)."),
            buckets: Exposition.lagBuckets)
        tickDuration = registry.makeValueHistogram(
            descriptor: Exposition.descriptor("hotswap_tick_duration_seconds", "Duration of each room's hotswap_tick call."),
            buckets: Exposition.requestBuckets)
        let registry = registry
        func slot(_ kind: EngineReading.Kind, _ name: String, _ labels: [(String, String)], _ help: String) -> Slot {
            let descriptor = Exposition.descriptor(name, help)
            return switch kind {
            case .counter: .counter(registry.makeCounter(descriptor: descriptor, labels: labels))
            case .gauge: .gauge(registry.makeGauge(descriptor: descriptor, labels: labels))
            }
        }
        self.readings = readings.compactMap { reading in
            reading.metric.map { (reading.read, $0.scale, slot($0.kind, $0.name, $0.labels, $0.help)) }
        }
        processReadings = ProcessStats.readings.map { ($0.read, slot($0.kind, $0.name, [], $0.help)) }
    }

    /// The exposition of `snapshot`, the process's own numbers and the
    /// serving module: every reading copied in, then the registry's text.
    func render(_ snapshot: EngineSnapshot, process: ProcessStats, module: LoadedModule) -> [UInt8] {
        for (read, scale, slot) in readings { Exposition.set(slot, to: read(snapshot) * scale) }
        for (read, slot) in processReadings { Exposition.set(slot, to: read(process)) }
        updateModuleInfo(module)
        var body: [UInt8] = []
        body.reserveCapacity(lastSize + lastSize / 4)
        registry.emit(into: &body)
        lastSize = body.count
        return body
    }

    private static func set(_ slot: Slot, to value: Double) {
        switch slot {
        case .gauge(let gauge):
            gauge.set(to: value)
        case .counter(let counter):
            // The registry's counters only go up; ours are read whole.
            counter.reset()
            if let whole = Int64(exactly: value) { counter.increment(by: whole) } else { counter.increment(by: value) }
        }
    }

    /// Our names are written whole (`hotswap_requests_total`), so they
    /// read as they are exposed; the descriptor joins its non-empty parts.
    private static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func updateModuleInfo(_ module: LoadedModule) {
        let labels = [module.name, module.version, module.sha256]
        if let moduleInfo, moduleInfo.labels == labels { return }
        if let moduleInfo { registry.unregisterGauge(moduleInfo.gauge) }
        let gauge = registry.makeGauge(
            descriptor: Exposition.descriptor("hotswap_module_info",
                                              "The logic module serving (always 1): name, version and SHA-256 in the labels."),
            labels: [("name", labels[0]), ("version", labels[1]), ("sha256", labels[2])])
        gauge.set(to: 1)
        moduleInfo = (labels, gauge)
    }
}
