/// A light-cycles bot (`loadtest cycles`): what it reads in the game's
/// events and how it steers. Pure, so LoadTestTests can check it.
///
/// The bot LOGINs as `ltN`, JOINs its room and sends READY; when a round
/// runs, each `>TICK step name:x,y,dir ...` that names it may make it
/// send a TURN: always when the wall is two cells ahead (towards the
/// side with more room), otherwise now and then at random. After `>WIN`
/// or `>DRAW` it sends READY for the next round.
public struct CyclesBot: Sendable {
    /// What a line from the server is to a bot.
    public enum Event: Equatable, Sendable {
        case tick(step: Int)
        /// `>ROUND n starts_in_ms t`: a countdown began.
        case round
        /// `>WIN ...` or `>DRAW`: the round is over.
        case end
        case other
    }

    /// The game's arena is 64 x 64 (CyclesGame's Arena).
    public static let arenaSize = 64

    /// ` ltN:` as it appears in a tick line.
    let key: [UInt8]
    /// xorshift64 state.
    var random: UInt64
    /// One turn in `turnOdds` ticks at random.
    public var turnOdds: UInt64 = 16

    public init(name: String, seed: UInt64) {
        key = Array(" \(name):".utf8)
        random = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    }

    public static func classify(_ line: UnsafeRawBufferPointer) -> Event {
        if starts(line, ">TICK ") {
            var step = 0
            var index = 6
            while index < line.count, line[index] >= 0x30, line[index] <= 0x39 {
                step = step * 10 + Int(line[index] - 0x30)
                index += 1
            }
            return .tick(step: step)
        }
        if starts(line, ">ROUND ") { return .round }
        if starts(line, ">WIN ") || starts(line, ">DRAW") { return .end }
        return .other
    }

    /// This bot's cycle in a tick line: x, y and heading letter, or nil
    /// when it is not riding.
    public func position(inTick line: UnsafeRawBufferPointer) -> (x: Int, y: Int, heading: UInt8)? {
        guard line.count > key.count else { return nil }
        var at = -1
        search: for start in 0...(line.count - key.count) {
            for offset in 0..<key.count where line[start + offset] != key[offset] { continue search }
            at = start + key.count
            break
        }
        guard at >= 0 else { return nil }
        var numbers = (0, 0)
        for which in 0..<2 {
            var value = 0
            var digits = 0
            while at < line.count, line[at] >= 0x30, line[at] <= 0x39 {
                value = value * 10 + Int(line[at] - 0x30)
                at += 1
                digits += 1
            }
            guard digits > 0, at < line.count, line[at] == UInt8(ascii: ",") else { return nil }
            at += 1
            if which == 0 { numbers.0 = value } else { numbers.1 = value }
        }
        return (numbers.0, numbers.1, line[at])
    }

    /// The TURN to send at this position, if any.
    public mutating func steer(x: Int, y: Int, heading: UInt8) -> StaticString? {
        let (dx, dy) = CyclesBot.step(heading)
        let size = CyclesBot.arenaSize
        func inside(_ x: Int, _ y: Int) -> Bool { x >= 0 && y >= 0 && x < size && y < size }
        if !inside(x + 2 * dx, y + 2 * dy) {
            // Left of (dx, dy) is (dy, -dx) with y growing southwards.
            let leftRoom = CyclesBot.room(x, y, dy, -dx)
            let rightRoom = CyclesBot.room(x, y, -dy, dx)
            return leftRoom >= rightRoom ? "TURN L" : "TURN R"
        }
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        guard random % turnOdds == 0 else { return nil }
        return random & 0x100 == 0 ? "TURN L" : "TURN R"
    }

    static func step(_ heading: UInt8) -> (Int, Int) {
        switch heading {
        case UInt8(ascii: "N"): (0, -1)
        case UInt8(ascii: "E"): (1, 0)
        case UInt8(ascii: "S"): (0, 1)
        default: (-1, 0)
        }
    }

    /// Cells to the wall from (x, y) along (dx, dy).
    static func room(_ x: Int, _ y: Int, _ dx: Int, _ dy: Int) -> Int {
        switch (dx, dy) {
        case (1, _): arenaSize - 1 - x
        case (-1, _): x
        case (_, 1): arenaSize - 1 - y
        default: y
        }
    }

    static func starts(_ line: UnsafeRawBufferPointer, _ prefix: StaticString) -> Bool {
        guard line.count >= prefix.utf8CodeUnitCount else { return false }
        for index in 0..<prefix.utf8CodeUnitCount where line[index] != prefix.utf8Start[index] { return false }
        return true
    }
}
