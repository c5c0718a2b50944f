/// The end-of-run table and its JSON twin.
public enum Summary {
    public static func table(_ r: LoadReport, _ config: LoadConfig) -> String {
        let seconds = max(r.seconds, 0.001)
        var lines = [
            "scenario      \(config.scenario.rawValue) on \(config.target.rawValue) \(config.host):\(config.port)",
            "requests      \(r.sent)",
            "replies       \(r.replies)",
            "errors        \(r.errors)",
            "throughput    \(Int(Double(r.replies) / seconds)) replies/s",
            "latency (us)  " + r.latency.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  "),
        ]
        if config.scenario == .chat {
            lines.append("deliveries    \(r.deliveries) (\(Int(Double(r.deliveries) / seconds))/s)")
            lines.append("delivery (us) " + r.deliveryLatency.summary.map { "\($0.label) \($0.micros)" }.joined(separator: "  "))
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
        let reload = r.reloadReply.map { "\"" + String($0.map { $0 == "\"" ? "'" : $0 }) + "\"" } ?? "null"
        return """
        {"scenario": "\(config.scenario.rawValue)", "target": "\(config.target.rawValue)", \
        "seconds": \(r.seconds), "requests": \(r.sent), "replies": \(r.replies), "errors": \(r.errors), \
        "throughput": \(Double(r.replies) / max(r.seconds, 0.001)), "latency_us": \(percentiles(r.latency)), \
        "deliveries": \(r.deliveries), "deliveries_per_second": \(Double(r.deliveries) / max(r.seconds, 0.001)), \
        "delivery_latency_us": \(percentiles(r.deliveryLatency)), "lost": \(r.lost), "duplicated": \(r.duplicated), \
        "out_of_order": \(r.outOfOrder), "unexpected": \(r.unexpectedReplies), \
        "dropped_connections": \(r.droppedConnections), "reload": \(reload), \
        "reload_window_max_us": \(r.reloadWindowMaxMicros), \
        "upgrades_ok": \(r.upgradeReplies.filter { $0.hasPrefix("+OK") }.count), \
        "upgrade_gap_max_us": \(r.upgradeGapMaxMicros), "steady_gap_max_us": \(r.steadyGapMaxMicros)}
        """
    }
}
