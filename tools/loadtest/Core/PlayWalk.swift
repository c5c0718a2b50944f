/// Where a `play` client walks; every MOVE is a real move that the room
/// hears about (a refused one, `-ERR BLOCKED`, would broadcast nothing and
/// be counted as an error).
///
/// - `square` (the default): north, east, south, west in turn, each step
///   turned around where it would leave the board. In the middle of the
///   board that is a loop over four cells: once their gems are taken the
///   player's score stops changing, so the run measures the protocol, not
///   the game's writes.
/// - `sweep`: along a row to the board's edge, one row down (or up, at the
///   bottom), and back, over all 64 cells again and again: a room's
///   players keep taking gems and ending rounds, so scores change all the
///   time (what a benchmark of the database wants).
///
/// The start is the spawn point of the JOIN reply (`+JOINED room at x y
/// players n`); from there the client knows its position without reading
/// MOVE replies, so open-loop requests can be sent before earlier ones are
/// answered.
public struct PlayWalk: Sendable {
    public enum Pattern: String, Sendable, CaseIterable { case square, sweep }

    /// The default game's board is 8 x 8 (GameLogic's Grid).
    public static let boardSize: Int64 = 8

    public private(set) var x: Int64
    public private(set) var y: Int64
    public let pattern: Pattern
    private var turn = 0
    /// Sweep: the direction along a row, and between rows.
    private var dx: Int64 = 1
    private var dy: Int64 = 1

    public init(x: Int64 = 0, y: Int64 = 0, pattern: Pattern = .square) {
        self.x = x
        self.y = y
        self.pattern = pattern
    }

    /// The spawn point of a JOIN reply, or nil when the line is not one.
    public static func spawn(inJoinReply line: UnsafeRawBufferPointer) -> (x: Int64, y: Int64)? {
        // +JOINED <room> at <x> <y> players <n>: the room's name may be "at" too.
        let words = line.split(separator: 0x20)
        guard words.count >= 5, words[0].elementsEqual("+JOINED".utf8), words[2].elementsEqual("at".utf8),
              let x = Int64(String(decoding: words[3], as: UTF8.self)),
              let y = Int64(String(decoding: words[4], as: UTF8.self))
        else { return nil }
        return (x, y)
    }

    /// The request for the next step (a static string: nothing allocated).
    public mutating func next() -> StaticString {
        var step: (dx: Int64, dy: Int64)
        switch pattern {
        case .square:
            // N E S W, with the board's y growing southwards as in the game.
            switch turn % 4 {
            case 0: step = (0, -1)
            case 1: step = (1, 0)
            case 2: step = (0, 1)
            default: step = (-1, 0)
            }
            turn += 1
            if !PlayWalk.inside(x + step.dx, y + step.dy) { step = (-step.dx, -step.dy) }
        case .sweep:
            if PlayWalk.inside(x + dx, y) {
                step = (dx, 0)
            } else {
                // The row's end: one row on (turning at the top and bottom
                // edges), and back along the next row.
                if !PlayWalk.inside(x, y + dy) { dy = -dy }
                step = (0, dy)
                dx = -dx
            }
        }
        x += step.dx
        y += step.dy
        switch (step.dx, step.dy) {
        case (0, -1): return "MOVE N"
        case (1, 0): return "MOVE E"
        case (0, 1): return "MOVE S"
        default: return "MOVE W"
        }
    }

    static func inside(_ x: Int64, _ y: Int64) -> Bool {
        x >= 0 && y >= 0 && x < boardSize && y < boardSize
    }
}
