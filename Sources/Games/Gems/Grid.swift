/// The rules of the board, as pure functions over plain integers: an 8x8
/// grid whose gems are the bits of one Int (bit y*8+x), so a room's whole
/// board is one engine field.
enum Grid {
    static let size: Int = 8
    static let gemsPerRound = 6

    static func bit(_ x: Int, _ y: Int) -> Int { 1 << (y * size + x) }

    static func inside(_ x: Int, _ y: Int) -> Bool { (0..<size).contains(x) && (0..<size).contains(y) }

    /// A fresh set of `gemsPerRound` distinct cells, derived from `seed`.
    static func gems(seed: UInt64) -> Int {
        var state = seed
        var board: Int = 0
        var placed = 0
        while placed < gemsPerRound {
            let cell = Int(splitmix(&state) % 64)
            if board & (1 << cell) == 0 {
                board |= 1 << cell
                placed += 1
            }
        }
        return board
    }

    /// A random cell that is not in `taken` (bits as in a board), derived
    /// from `seed`; nil when every cell is taken.
    static func freeCell(taken: Int, seed: UInt64) -> (x: Int, y: Int)? {
        guard taken != -1 else { return nil }
        var state = seed
        let start = Int(splitmix(&state) % 64)
        for offset in 0..<Int(64) {
            let cell = (start + offset) % 64
            if taken & (1 << cell) == 0 { return (cell % size, cell / size) }
        }
        return nil
    }

    /// A start cell for a player, derived from `seed`.
    static func spawn(seed: UInt64) -> (x: Int, y: Int) {
        var state = seed
        let cell = Int(splitmix(&state) % 64)
        return (cell % size, cell / size)
    }

    /// SplitMix64: tiny, stateless between calls, good enough for a board.
    static func splitmix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
