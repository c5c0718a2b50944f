/// A token bucket per connection: `rate` requests per second on average,
/// bursts up to `burst`. Integer arithmetic in thousandths of a token, fed
/// by the loop's cached millisecond clock, so a check costs a few adds.
struct RateLimiter {
    private var milliTokens: Int64
    private var lastRefill: UInt64
    /// Requests refused in a row; reset by the next admitted one.
    private(set) var strikes = 0

    init(now: UInt64, burst: Int) {
        milliTokens = Int64(burst) * 1000
        lastRefill = now
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
