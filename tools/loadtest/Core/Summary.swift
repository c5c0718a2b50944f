/// The end-of-run table and its JSON twin.
public enum Summary {
    public static func table(_ r: LoadReport, _ config: LoadConfig) -> String {
        let seconds = max(r.seconds, 0.001)
        var lines = [
            "scenario      \(config.scenario.rawValue) on \(config.target.rawValue) \(config.host):\(config.port)",
            "load          \(shape(config))",
            "requests      \(r.sent)",
            "replies       \(r.replies)",
            "errors        \(r.errors)" + byCode(r.errorsByCode),
            "throughput    \(Int(Double(r.measuredReplies) / seconds)) replies/s"
                + (config.warmup > 0 ? " (after \(config.warmup) s of warm-up, not measured)" : ""),
            "latency (us)  " + r.latency.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  "),
        ]
        if config.rate > 0 {
            // Latency counts from the due time; this is how much of it was the tool's.
            lines.append("send lag (us) " + r.sendLag.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  ")
                         + "  (due -> queued by the tool)")
        }
        if config.scenario == .chat {
            lines.append("deliveries    \(r.deliveries) (\(Int(Double(r.deliveries) / seconds))/s)")
            lines.append("delivery (us) " + r.deliveryLatency.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  "))
        }
        if config.scenario == .cycles {
            lines.append("ticks         \(r.ticks) received (\(Int(Double(r.ticks) / seconds))/s), \(r.rounds) rounds ended, "
                         + "\(r.raceRefusals) late TURN/READY refused")
            lines.append("tick gap (us) " + r.tickGap.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  ")
                         + "  (expected \(1_000_000 / max(config.tickRate, 1)))")
            lines.append("tick lag (us) " + r.tickLag.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  ")
                         + "  (gap beyond the expected)")
        }
        var cpu = "cpu           loadtest \(cores(r.toolCPUSeconds, seconds)) cores"
        if let server = r.serverCPUSeconds {
            cpu += ", server \(cores(server, seconds)) cores (\(microsPerRequest(server, r.measuredReplies)) us/request)"
        }
        lines.append(cpu)
        if !r.setupRefusals.isEmpty {
            lines.append("set-up refused \(r.setupRefusals.values.reduce(0, +))" + byCode(r.setupRefusals))
        }
        lines.append("lost \(r.lost)  duplicated \(r.duplicated)  out of order \(r.outOfOrder)  "
                     + "unexpected \(r.unexpectedReplies)  dropped connections \(r.droppedConnections)")
        if let last = r.upgradeReplies.last {
            let ok = r.upgradeReplies.filter { $0.hasPrefix("+OK") }.count
            lines.append("upgrades      \(ok) of \(config.upgrades) ok, last: \(last)")
            lines.append("reply gap max \(r.upgradeGapMaxMicros) us across upgrades (\(r.steadyGapMaxMicros) us otherwise)")
        }
        if let reload = r.reloadReply {
            lines.append("reload        \(reload)")
            lines.append("reload window max latency \(r.reloadWindowMaxMicros) us (run p99 \(r.latency.percentile(99)) us)")
        }
        return lines.joined(separator: "\n")
    }

    public static func json(_ r: LoadReport, _ config: LoadConfig) -> String {
        func percentiles(_ stats: LatencyStats) -> String {
            "{" + stats.summary.map { "\"\($0.label)\": \($0.micros)" }.joined(separator: ", ") + "}"
        }
        func counts(_ codes: [String: Int]) -> String {
            "{" + codes.sorted { $0.key < $1.key }.map { "\"\(quoted($0.key))\": \($0.value)" }.joined(separator: ", ") + "}"
        }
        let reload = r.reloadReply.map { "\"" + quoted($0) + "\"" } ?? "null"
        return """
        {"scenario": "\(config.scenario.rawValue)", "target": "\(config.target.rawValue)", \
        "connections": \(config.connections), "rate": \(config.rate), \
        "arrivals": "\(config.rate > 0 ? config.arrivals.rawValue : "closed")", \
        "seconds": \(r.seconds), "requests": \(r.sent), "replies": \(r.replies), "errors": \(r.errors), \
        "errors_by_code": \(counts(r.errorsByCode)), "setup_refusals": \(counts(r.setupRefusals)), \
        "warmup": \(config.warmup), "throughput": \(Double(r.measuredReplies) / max(r.seconds, 0.001)), "latency_us": \(percentiles(r.latency)), \
        "send_lag_us": \(percentiles(r.sendLag)), \
        "loadtest_cpu_seconds": \(r.toolCPUSeconds), "server_cpu_seconds": \(r.serverCPUSeconds.map { "\($0)" } ?? "null"), \
        "deliveries": \(r.deliveries), "deliveries_per_second": \(Double(r.deliveries) / max(r.seconds, 0.001)), \
        "delivery_latency_us": \(percentiles(r.deliveryLatency)), "lost": \(r.lost), "duplicated": \(r.duplicated), \
        "out_of_order": \(r.outOfOrder), "unexpected": \(r.unexpectedReplies), \
        "dropped_connections": \(r.droppedConnections), "reload": \(reload), \
        "reload_window_max_us": \(r.reloadWindowMaxMicros), \
        "upgrades_ok": \(r.upgradeReplies.filter { $0.hasPrefix("+OK") }.count), \
        "upgrade_gap_max_us": \(r.upgradeGapMaxMicros), "steady_gap_max_us": \(r.steadyGapMaxMicros), \
        "ticks": \(r.ticks), "rounds": \(r.rounds), "race_refusals": \(r.raceRefusals), \
        "tick_gap_us": \(percentiles(r.tickGap)), "tick_lag_us": \(percentiles(r.tickLag))}
        """
    }

    /// `play: 10000 clients in 625 rooms of 16, open loop poisson 100000/s`.
    static func shape(_ config: LoadConfig) -> String {
        let members = max(config.members, 1)
        var text: String
        switch config.scenario {
        case .ping: text = "\(config.clients) clients"
        case .chat: text = "\(config.rooms) rooms of \(members)"
        case .cycles: return "\(config.rooms) rooms of \(members) bots at \(config.tickRate) ticks/s"
        case .play: text = "\(config.clients) clients in \((config.clients + members - 1) / members) rooms of \(members)"
        }
        if config.rate > 0 {
            text += ", open loop, \(config.arrivals.rawValue) arrivals at \(Int(config.rate))/s"
        } else {
            text += ", closed loop, \(config.pipeline) in flight per client"
        }
        return text
    }

    static func byCode(_ codes: [String: Int]) -> String {
        codes.isEmpty ? "" : " (" + codes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + ")"
    }

    static func cores(_ cpu: Double, _ seconds: Double) -> String {
        String(Double(Int(cpu / seconds * 100)) / 100)
    }

    static func microsPerRequest(_ cpu: Double, _ requests: Int) -> String {
        String(Double(Int(cpu * 1e7 / Double(max(requests, 1)))) / 10)
    }

    static func quoted(_ text: String) -> String { String(text.map { $0 == "\"" || $0 == "\\" ? "'" : $0 }) }
}
