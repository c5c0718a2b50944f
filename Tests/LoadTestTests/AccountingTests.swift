import Testing
@testable import LoadTestCore

@Suite struct SequenceTrackerTests {
    @Test func inOrderDeliveryLosesNothing() {
        var tracker = SequenceTracker()
        for sequence in 1...5 { tracker.record(sender: 1, sequence: UInt64(sequence)) }
        #expect(tracker.delivered == 5)
        #expect(tracker.lost(sent: [1: 5]) == 0)
        #expect(tracker.duplicates == 0 && tracker.outOfOrder == 0)
    }

    @Test func gapsLateArrivalsAndDuplicatesAreTold() {
        var tracker = SequenceTracker()
        for sequence: UInt64 in [1, 2, 5, 3, 3, 5, 7] { tracker.record(sender: 9, sequence: sequence) }
        #expect(tracker.delivered == 5)         // 1 2 5 3 7
        #expect(tracker.outOfOrder == 1)        // 3 after 5
        #expect(tracker.duplicates == 2)        // the second 3 and the second 5
        #expect(tracker.lost(sent: [9: 8]) == 3)  // 4, 6 and 8 never came
    }

    @Test func sendersAreIndependent() {
        var tracker = SequenceTracker()
        tracker.record(sender: 1, sequence: 1)
        tracker.record(sender: 2, sequence: 1)
        tracker.record(sender: 2, sequence: 2)
        #expect(tracker.lost(sent: [1: 2, 2: 2, 3: 1]) == 2)  // 1's second and 3's only
    }
}

@Suite struct ReplyLedgerTests {
    @Test func repliesPairWithRequestsInOrder() {
        var ledger = ReplyLedger()
        ledger.sent(at: 10)
        ledger.sent(at: 20)
        #expect(ledger.reply() == 10)
        #expect(ledger.reply() == 20)
        #expect(ledger.reply() == nil)
        #expect(ledger.unexpected == 1)
        #expect(ledger.lost == 0)
    }

    @Test func unansweredRequestsAreLost() {
        var ledger = ReplyLedger()
        for time in 0..<10_000 { ledger.sent(at: UInt64(time)) }
        for _ in 0..<9_000 { _ = ledger.reply() }
        #expect(ledger.lost == 1_000)
        #expect(ledger.reply() == 9_000)
    }
}

@Suite struct LatencyStatsTests {
    @Test func percentilesComeFromTheHistogram() {
        var stats = LatencyStats()
        for value in 1...1000 { stats.record(microseconds: UInt64(value)) }
        #expect(stats.count == 1000)
        #expect((499...501).contains(stats.percentile(50)))
        #expect((989...991).contains(stats.percentile(99)))
        #expect(stats.max >= 1000 && stats.max <= 1001)
        #expect(stats.summary.map(\.label) == ["p50", "p90", "p99", "p99.9", "max"])
    }
}
