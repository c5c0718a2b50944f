/// A token bucket per connection: `rate` requests per second on average,
/// bursts up to `burst`. Integer arithmetic in thousandths of a token, fed
/// by the loop's cached millisecond clock, so a check costs a few adds.
struct RateLimiter {
    // Readable for an engine upgrade (PlayerSession+Handoff.swift).
    private(set) var milliTokens: Int64
    private(set) var lastRefill: UInt64
    /// Requests refused in a row; reset by the next admitted one.
    private(set) var strikes = 0

    init(now: UInt64, burst: Int) {
        milliTokens = Int64(burst) * 1000
        lastRefill = now
    }

    /// A bucket as another engine left it (an upgrade), within `burst`.
    init(milliTokens: Int64, lastRefill: UInt64, strikes: Int, burst: Int) {
        self.milliTokens = min(max(milliTokens, 0), Int64(burst) * 1000)
        self.lastRefill = lastRefill
        self.strikes = max(strikes, 0)
    }

    /// Takes a token if one is there. `rate` 0 disables the limit.
    mutating func admit(now: UInt64, rate: Int, burst: Int) -> Bool {
        guard rate > 0 else { return true }
        if now > lastRefill {
            let earned = Int64(now - lastRefill) * Int64(rate)
            milliTokens = min(milliTokens + earned, Int64(burst) * 1000)
            lastRefill = now
        }
        guard milliTokens >= 1000 else {
            strikes += 1
            return false
        }
        milliTokens -= 1000
        strikes = 0
        return true
    }
}
