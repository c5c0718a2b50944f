/// A token bucket per connection: `rate` requests per second on average,
/// bursts up to `burst`. Integer arithmetic in thousandths of a token, fed
/// by the loop's cached millisecond clock, so a check costs a few adds.
///
/// A request costs one token, plus what it made the server send to other
/// sessions (`charge`): one token per `--rate-fan-out-bytes` queued for
/// them. Requests alone undercount: one 4 KB SAY in a room of 256 queues a
/// megabyte, 255 times what the request itself weighed. The charge comes
/// after the request (its fan-out is known only then) and may take the
/// bucket below zero: the debt is paid back before the next request is
/// admitted, at `rate` tokens a second, and refused requests in the
/// meantime count as strikes as usual.
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
        // A debt (`charge`) is carried over, within its bound.
        self.milliTokens = min(max(milliTokens, -Int64(burst) * 1000), Int64(burst) * 1000)
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

    /// Charges an admitted request for the `bytes` it queued for other
    /// sessions: `bytes / bytesPerToken` tokens (in thousandths, so small
    /// fan-outs add up), a debt of at most `burst` tokens. `bytesPerToken`
    /// or `rate` 0: nothing is charged.
    mutating func charge(fanOut bytes: Int, bytesPerToken: Int, rate: Int, burst: Int) {
        guard bytes > 0, bytesPerToken > 0, rate > 0 else { return }
        let cost = Int64(bytes) * 1000 / Int64(bytesPerToken)
        milliTokens = max(milliTokens - cost, -Int64(burst) * 1000)
    }
}
