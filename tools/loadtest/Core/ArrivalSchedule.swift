import Glibc

/// When each open-loop request is due, and which client sends it: a pure
/// sequence of (offset from the start, client) pairs, in time order.
///
///     poisson   exponential gaps at the total rate, each request from a
///               client drawn at random: the sum of independent players
///     uniform   one request every 1/rate, clients in a shuffled round-robin:
///               each client exactly every clients/rate, phases spread out
///     lockstep  every client at once, rate/clients times a second: bursts,
///               the tool's old schedule, kept to measure a server under them
///
/// Why not a per-client clock (what the tool used to do): clients that all
/// start together with the same rate are all due at the same instants, so a
/// nominal 2,000 requests/s from 1,000 clients arrived as a burst of 1,000
/// every half second; the server's median answer was 55 µs and the tool's
/// 20 ms (docs/BENCHMARKS.md, "The load tool's latency").
///
/// Deterministic for a seed, so a run can be repeated exactly.
public struct ArrivalSchedule: Sendable {
    public enum Kind: String, Sendable, CaseIterable { case poisson, uniform, lockstep }

    public let kind: Kind
    /// Requests per second, all clients together.
    public let rate: Double
    public let clients: Int
    private var random: SplitMix64
    /// The shuffled client order for `uniform`.
    private var order: [Int] = []
    private var count: UInt64 = 0
    /// The next arrival's time, in seconds since the start (poisson).
    private var nextSeconds = 0.0

    public init(kind: Kind, rate: Double, clients: Int, seed: UInt64 = 1) {
        precondition(rate > 0 && clients > 0, "an open-loop schedule needs a rate and clients")
        self.kind = kind
        self.rate = rate
        self.clients = clients
        random = SplitMix64(seed: seed)
        if kind == .uniform {
            order = Array(0..<clients)
            for index in stride(from: clients - 1, to: 0, by: -1) {
                order.swapAt(index, Int(random.next() % UInt64(index + 1)))
            }
        }
        if kind == .poisson { nextSeconds = exponentialGap() }
    }

    /// The next request: nanoseconds after the start, and its client.
    public mutating func next() -> (offset: UInt64, client: Int) {
        defer { count += 1 }
        switch kind {
        case .uniform:
            // (n + 1) / rate: the first request is one gap in, not at zero.
            return (nanoseconds(Double(count + 1) / rate), order[Int(count % UInt64(clients))])
        case .lockstep:
            let round = count / UInt64(clients)
            return (nanoseconds(Double(round + 1) * Double(clients) / rate), Int(count % UInt64(clients)))
        case .poisson:
            let at = nextSeconds
            nextSeconds += exponentialGap()
            return (nanoseconds(at), Int(random.next() % UInt64(clients)))
        }
    }

    private mutating func exponentialGap() -> Double {
        // A uniform in (0, 1]: never log(0).
        let unit = (Double(random.next() >> 11) + 1) / 9_007_199_254_740_992.0
        return -log(unit) / rate
    }

    private func nanoseconds(_ seconds: Double) -> UInt64 { UInt64((seconds * 1e9).rounded()) }
}

/// A small, fast, seedable generator (Steele, Lea and Flood's SplitMix64),
/// so a schedule is the same on every run and platform.
struct SplitMix64: Sendable {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
