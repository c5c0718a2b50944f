/// The rules of light cycles, pure: no engine, nothing allocated. The game
/// (Cycles.swift) loads a room's state from its fields, calls `advance`
/// once per tick, and writes the state back.

/// A heading; turning left or right is -1 or +1 modulo 4.
public enum Direction: Int, Sendable {
    case north = 0, east, south, west

    public var dx: Int { self == .east ? 1 : self == .west ? -1 : 0 }
    /// y grows southwards (row 0 is the top wall).
    public var dy: Int { self == .south ? 1 : self == .north ? -1 : 0 }

    public var left: Direction { Direction(rawValue: (rawValue + 3) % 4)! }
    public var right: Direction { Direction(rawValue: (rawValue + 1) % 4)! }

    /// The letter in `>TICK` lines.
    public var letter: StaticString {
        switch self {
        case .north: "N"
        case .east: "E"
        case .south: "S"
        case .west: "W"
        }
    }
}

/// One cycle: where its head is, where it heads, whether it still rides.
public struct Cycle: Equatable, Sendable {
    public var x: Int
    public var y: Int
    public var direction: Direction
    public var alive: Bool

    public init(x: Int, y: Int, direction: Direction, alive: Bool = true) {
        self.x = x
        self.y = y
        self.direction = direction
        self.alive = alive
    }
}

/// The arena's occupied cells (every trail, heads included): 64 x 64 bits,
/// one `UInt64` per row. Kept between ticks as a room string field of 1024
/// hex digits (GAME_MAX_STRING bytes exactly; "" is an empty arena).
public struct Arena: Equatable, Sendable {
    public static let size = 64
    /// Hex digits in the encoded form: 16 per row.
    public static let encodedLength = size * 16

    var rows = InlineArray<64, UInt64>(repeating: 0)

    public init() {}

    public static func == (a: Arena, b: Arena) -> Bool {
        for row in 0..<size where a.rows[row] != b.rows[row] { return false }
        return true
    }

    public static func inside(_ x: Int, _ y: Int) -> Bool { x >= 0 && y >= 0 && x < size && y < size }

    /// Whether (x, y) holds a trail; outside the arena counts as a wall.
    public func occupied(_ x: Int, _ y: Int) -> Bool {
        guard Arena.inside(x, y) else { return true }
        return rows[y] & (1 << UInt64(x)) != 0
    }

    public mutating func mark(_ x: Int, _ y: Int) {
        guard Arena.inside(x, y) else { return }
        rows[y] |= 1 << UInt64(x)
    }

    /// Cells occupied.
    public var count: Int {
        var total = 0
        for row in 0..<Arena.size { total += rows[row].nonzeroBitCount }
        return total
    }

    /// Reads the field's hex form; anything malformed or short reads as
    /// empty cells (a fresh field is "").
    public init(hex: UnsafeRawBufferPointer) {
        guard hex.count == Arena.encodedLength else { return }
        for row in 0..<Arena.size {
            var value: UInt64 = 0
            for digit in 0..<16 {
                value = value << 4 | UInt64(Arena.nibble(hex[row * 16 + digit]))
            }
            rows[row] = value
        }
    }

    /// Writes the hex form into `buffer` (at least `encodedLength` bytes).
    public func encode(into buffer: UnsafeMutableRawBufferPointer) {
        let digits: StaticString = "0123456789abcdef"
        for row in 0..<Arena.size {
            var value = rows[row]
            for digit in (0..<16).reversed() {
                buffer[row * 16 + digit] = digits.utf8Start[Int(value & 0xF)]
                value >>= 4
            }
        }
    }

    static func nibble(_ byte: UInt8) -> UInt8 {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x61...0x66: byte - 0x61 + 10
        case 0x41...0x46: byte - 0x41 + 10
        default: 0
        }
    }
}

public enum Rules {
    /// Players in a round at most (the room's capacity).
    public static let maxPlayers = 8

    /// Where the `index`th player of a round starts: the even ones on the
    /// west side heading east, the odd ones on the east side heading west,
    /// on rows 8 apart so no two meet head-on on their first row.
    public static func spawn(_ index: Int) -> Cycle {
        let pair = index / 2
        if index % 2 == 0 {
            return Cycle(x: 8, y: 4 + 16 * pair, direction: .east)
        }
        return Cycle(x: Arena.size - 9, y: 12 + 16 * pair, direction: .west)
    }

    /// One tick: every living cycle moves one cell ahead. A cycle crashes
    /// when its new cell is outside the arena, holds a trail (its own
    /// included), or is the new cell of another cycle this tick (both
    /// crash: a head-on). Survivors mark their new cell. Returns a bit
    /// per cycle that crashed this tick (bit i: `cycles[i]`).
    @discardableResult
    public static func advance(_ cycles: UnsafeMutableBufferPointer<Cycle>, _ arena: inout Arena) -> UInt32 {
        var crashed: UInt32 = 0
        for i in cycles.indices where cycles[i].alive {
            cycles[i].x += cycles[i].direction.dx
            cycles[i].y += cycles[i].direction.dy
            if arena.occupied(cycles[i].x, cycles[i].y) { crashed |= 1 << UInt32(i) }
        }
        for i in cycles.indices where cycles[i].alive {
            for j in cycles.indices where j > i && cycles[j].alive {
                if cycles[i].x == cycles[j].x && cycles[i].y == cycles[j].y {
                    crashed |= 1 << UInt32(i) | 1 << UInt32(j)
                }
            }
        }
        for i in cycles.indices where cycles[i].alive {
            if crashed & (1 << UInt32(i)) != 0 {
                cycles[i].alive = false
            } else {
                arena.mark(cycles[i].x, cycles[i].y)
            }
        }
        return crashed
    }

    /// How a round stands after a tick.
    public enum Outcome: Equatable, Sendable {
        /// Two or more ride on.
        case running
        /// One left: its index.
        case win(Int)
        /// None left (the last ones crashed together).
        case draw
    }

    public static func outcome(_ cycles: UnsafeBufferPointer<Cycle>) -> Outcome {
        var last = -1
        var alive = 0
        for i in cycles.indices where cycles[i].alive {
            alive += 1
            last = i
        }
        switch alive {
        case 0: return .draw
        case 1: return .win(last)
        default: return .running
        }
    }
}
