/// Where a `play` client walks: north, east, south, west in turn, each step
/// turned around where it would leave the board, so every MOVE is a real
/// move that the room hears about (a refused one, `-ERR BLOCKED`, would
/// broadcast nothing and be counted as an error).
///
/// The start is the spawn point of the JOIN reply (`+JOINED room at x y
/// players n`); from there the client knows its position without reading
/// MOVE replies, so open-loop requests can be sent before earlier ones are
/// answered.
public struct PlayWalk: Sendable {
    /// The default game's board is 8 x 8 (GameLogic's Grid).
    public static let boardSize: Int64 = 8

    public private(set) var x: Int64
    public private(set) var y: Int64
    private var turn = 0

    public init(x: Int64 = 0, y: Int64 = 0) {
        self.x = x
        self.y = y
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
        // N E S W, with the board's y growing southwards as in the game.
        var step: (dx: Int64, dy: Int64)
        switch turn % 4 {
        case 0: step = (0, -1)
        case 1: step = (1, 0)
        case 2: step = (0, 1)
        default: step = (-1, 0)
        }
        turn += 1
        if !PlayWalk.inside(x + step.dx, y + step.dy) { step = (-step.dx, -step.dy) }
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
