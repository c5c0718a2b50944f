/// Per-sender sequence accounting for pushed deliveries (chat).
///
/// Every message a sender emits carries a sequence number 1, 2, 3, ... A
/// receiver sees each sender's numbers and classifies every delivery:
///
///     expected next   seen    verdict
///         5            5      in order
///         5            7      in order (5 and 6 missing, for now)
///         8            6      late: out of order, fills a gap
///         8            7      duplicate (already seen)
///
/// Lost messages are counted at the end: everything a sender emitted that
/// never arrived.
public struct SequenceTracker: Sendable {
    private var highest: [Int: UInt64] = [:]
    private var missing: [Int: Set<UInt64>] = [:]
    public private(set) var delivered = 0
    public private(set) var duplicates = 0
    public private(set) var outOfOrder = 0

    public init() {}

    public mutating func record(sender: Int, sequence: UInt64) {
        let top = highest[sender] ?? 0
        if sequence > top {
            if sequence > top + 1 {
                var gaps = missing[sender] ?? []
                for gap in (top + 1)..<sequence { gaps.insert(gap) }
                missing[sender] = gaps
            }
            highest[sender] = sequence
            delivered += 1
        } else if missing[sender]?.remove(sequence) != nil {
            outOfOrder += 1
            delivered += 1
        } else {
            duplicates += 1
        }
    }

    /// Messages `sent[sender]` emitted that were never delivered here.
    public func lost(sent: [Int: UInt64]) -> Int {
        var lost = 0
        for (sender, count) in sent {
            let top = highest[sender] ?? 0
            lost += (missing[sender]?.count ?? 0) + Int(count > top ? count - top : 0)
        }
        return lost
    }
}

/// Request/reply accounting for one connection: replies come back in the
/// order requests were sent, so a FIFO of send times pairs them. A reply
/// with nothing outstanding is a duplicate (or an unasked line).
public struct ReplyLedger: Sendable {
    private var sendTimes: [UInt64] = []
    private var head = 0
    public private(set) var sent = 0
    public private(set) var replies = 0
    public private(set) var unexpected = 0

    public init() {}

    public var outstanding: Int { sendTimes.count - head }

    public mutating func sent(at time: UInt64) {
        sendTimes.append(time)
        sent += 1
    }

    /// Pairs a reply with the oldest request; returns its send time.
    public mutating func reply() -> UInt64? {
        guard head < sendTimes.count else {
            unexpected += 1
            return nil
        }
        let time = sendTimes[head]
        head += 1
        replies += 1
        if head > 4096 && head * 2 > sendTimes.count {
            sendTimes.removeFirst(head)
            head = 0
        }
        return time
    }

    /// Requests that never got a reply.
    public var lost: Int { outstanding }
}
