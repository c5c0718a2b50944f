/// Where an away session's output goes while it has no connection: the
/// newest lines, within `maxLines` and `maxBytes`, each kept with its CRLF
/// so that a RESUME hands them to the new connection in one append. Older
/// lines are dropped and counted (`dropped`): the client is told how many
/// it missed (`>MISSED n`) before the ones kept.
///
/// The bytes live in one array and the line lengths in another, both
/// keeping their capacity, so an away session that is sent a line every
/// tick does not allocate once it has reached its bound.
final class AwayPeer: SessionPeer {
    let maxLines: Int
    let maxBytes: Int
    /// The lines, CRLF-terminated, oldest first, from `start`.
    private(set) var buffer: [UInt8] = []
    private var start = 0
    /// Each kept line's length with its CRLF, oldest first, from `first`.
    private var lengths: [Int] = []
    private var first = 0
    /// Lines dropped to stay within the bounds.
    private(set) var dropped = 0
    /// Lines delivered so far (the journal's output mark).
    private var delivered = 0
    /// Whether the connection that dropped had identified itself: the one
    /// that resumes is, too (the idle deadline, not the login one).
    let identified: Bool

    init(maxLines: Int, maxBytes: Int, identified: Bool) {
        self.maxLines = max(maxLines, 1)
        self.maxBytes = max(maxBytes, 3)
        self.identified = identified
    }

    /// A peer as a previous engine handed it over (an upgrade).
    init(maxLines: Int, maxBytes: Int, identified: Bool, lines: [[UInt8]], dropped: Int) {
        self.maxLines = max(maxLines, 1)
        self.maxBytes = max(maxBytes, 3)
        self.identified = identified
        self.dropped = dropped
        for line in lines { append(line) }
    }

    /// Lines kept, oldest first, without their CRLF (for a handoff).
    var lines: [[UInt8]] {
        var out: [[UInt8]] = []
        var offset = start
        for index in first..<lengths.count {
            out.append(Array(buffer[offset..<(offset + lengths[index] - 2)]))
            offset += lengths[index]
        }
        return out
    }

    var lineCount: Int { lengths.count - first }
    var byteCount: Int { buffer.count - start }

    /// The kept lines as they go on the wire.
    func withPendingBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        buffer.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    private func append<C: Collection>(_ line: C) where C.Element == UInt8 {
        let size = line.count + 2
        guard size <= maxBytes else {
            dropped += 1
            return
        }
        while lineCount >= maxLines || byteCount + size > maxBytes { dropOldest() }
        buffer.append(contentsOf: line)
        buffer.append(0x0D)
        buffer.append(0x0A)
        lengths.append(size)
    }

    private func dropOldest() {
        start += lengths[first]
        first += 1
        dropped += 1
        // Compacted once half is dead: amortised O(1) per line, no new storage.
        if start > buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            lengths.removeSubrange(0..<first)
            (start, first) = (0, 0)
        }
    }

    // MARK: - SessionPeer

    /// Lines that never reached the client before its connection dropped
    /// (queued, not taken by the kernel): missed like dropped ones.
    func noteLost(_ count: Int) { dropped += count }

    func deliver(_ line: UnsafeRawBufferPointer) {
        delivered += 1
        append(line)
    }

    var isIdentified: Bool { identified }
    func setIdentified(_ identified: Bool) {}
    /// Away sessions end in the engine (grace over, shutdown): nothing to close.
    func sessionEnded() {}
    var journalEpoch: UInt64 = 0

    func outputMark() -> Int { delivered }

    /// Takes back the lines a faulted call queued, newest first. One that
    /// pushed an older line out cannot bring it back: that line stays
    /// counted as missed.
    func rollBackOutput(to mark: Int) {
        while delivered > mark {
            delivered -= 1
            if lineCount > 0 {
                let size = lengths.removeLast()
                buffer.removeLast(size)
            } else {
                dropped = max(dropped - 1, 0)
            }
        }
    }
}

/// A peer that takes nothing: where a fresh session's output goes once
/// its connection has moved to the session it resumed, while the fresh
/// one is torn down.
final class DiscardingPeer: SessionPeer {
    func deliver(_ line: UnsafeRawBufferPointer) {}
    var isIdentified: Bool { false }
    func setIdentified(_ identified: Bool) {}
    func sessionEnded() {}
    var journalEpoch: UInt64 = 0
    func outputMark() -> Int { -1 }
    func rollBackOutput(to mark: Int) {}
}
