/// Failures per key (a client address, a player's key) within a fixed
/// window: past `limit`, the key is throttled until its window (which
/// starts at its first failure) is over. Bounded: once it holds more than
/// `capacity` keys, those whose window is over are forgotten, and if none
/// is, the oldest windows go first. Also counts events that are not
/// failures (new players per address): anything limited per window.
struct FailureThrottle<Key: Hashable> {
    let limit: Int
    let windowMilliseconds: UInt64
    let capacity: Int
    private var windows: [Key: (started: UInt64, failures: Int)] = [:]

    init(limit: Int, windowMilliseconds: UInt64, capacity: Int = 4096) {
        self.limit = limit
        self.windowMilliseconds = windowMilliseconds
        self.capacity = capacity
    }

    func isThrottled(_ address: Key, now: UInt64) -> Bool {
        guard let window = windows[address], now < window.started + windowMilliseconds else { return false }
        return window.failures >= limit
    }

    /// Milliseconds until `address`'s window is over (0 when it is not
    /// throttled).
    func retryAfter(_ address: Key, now: UInt64) -> UInt64 {
        guard isThrottled(address, now: now), let window = windows[address] else { return 0 }
        return window.started + windowMilliseconds - now
    }

    mutating func failed(_ address: Key, now: UInt64) {
        if let window = windows[address], now < window.started + windowMilliseconds {
            windows[address] = (window.started, window.failures + 1)
            return
        }
        if windows.count >= capacity { prune(now: now) }
        windows[address] = (now, 1)
    }

    private mutating func prune(now: UInt64) {
        windows = windows.filter { now < $0.value.started + windowMilliseconds }
        if windows.count >= capacity {
            let oldest = windows.sorted { $0.value.started < $1.value.started }.prefix(windows.count / 2)
            for (address, _) in oldest { windows[address] = nil }
        }
    }
}
