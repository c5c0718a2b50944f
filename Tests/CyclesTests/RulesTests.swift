import CyclesGame
import Testing

/// The pure rules of light cycles: movement, crashes, the outcome, and the
/// arena's hex form (what a room field keeps between ticks).
@Suite struct RulesTests {
    /// `advance` over an array (the game passes stack memory).
    @discardableResult
    func advance(_ cycles: inout [Cycle], _ arena: inout Arena) -> UInt32 {
        cycles.withUnsafeMutableBufferPointer { Rules.advance($0, &arena) }
    }

    func outcome(_ cycles: [Cycle]) -> Rules.Outcome { cycles.withUnsafeBufferPointer { Rules.outcome($0) } }

    @Test func aCycleMovesOneCellAheadAndLeavesATrail() {
        var arena = Arena()
        var cycles = [Cycle(x: 10, y: 10, direction: .east), Cycle(x: 20, y: 20, direction: .north)]
        arena.mark(10, 10)
        arena.mark(20, 20)
        #expect(advance(&cycles, &arena) == 0)
        #expect(cycles[0] == Cycle(x: 11, y: 10, direction: .east))
        #expect(cycles[1] == Cycle(x: 20, y: 19, direction: .north))
        #expect(arena.occupied(10, 10) && arena.occupied(11, 10) && arena.occupied(20, 19))
        #expect(arena.count == 4)
        #expect(outcome(cycles) == .running)
    }

    @Test func turningIsAQuarterEitherWay() {
        #expect(Direction.north.left == .west && Direction.north.right == .east)
        #expect(Direction.west.left == .south && Direction.west.right == .north)
        var d = Direction.south
        for _ in 0..<4 { d = d.right }
        #expect(d == .south)
    }

    @Test func aWallCrashesTheCycleAndTheOtherWins() {
        var arena = Arena()
        var cycles = [Cycle(x: 0, y: 5, direction: .west), Cycle(x: 63, y: 63, direction: .north)]
        #expect(advance(&cycles, &arena) == 0b01)
        #expect(!cycles[0].alive && cycles[1].alive)
        #expect(outcome(cycles) == .win(1))
        // A crashed cycle moves no more and marks nothing.
        let before = cycles[0]
        advance(&cycles, &arena)
        #expect(cycles[0] == before)
        #expect(arena.occupied(-1, 5) && arena.occupied(64, 0) && arena.occupied(0, 64))
    }

    @Test func aTrailCrashesTheCycleThatRidesIntoIt() {
        var arena = Arena()
        var cycles = [Cycle(x: 5, y: 5, direction: .east), Cycle(x: 7, y: 2, direction: .south)]
        // 0 rides east along row 5; 1 comes down column 7, a tick behind.
        advance(&cycles, &arena)  // 0 (6,5), 1 (7,3)
        advance(&cycles, &arena)  // 0 (7,5), 1 (7,4)
        #expect(cycles[0].alive && cycles[1].alive)
        #expect(advance(&cycles, &arena) == 0b10)  // 1 rides into (7,5), 0's trail
        #expect(outcome(cycles) == .win(0))
    }

    @Test func ridingBackIntoOwnTrailCrashes() {
        var arena = Arena()
        var cycles = [Cycle(x: 5, y: 5, direction: .east), Cycle(x: 30, y: 30, direction: .east)]
        arena.mark(5, 5)
        advance(&cycles, &arena)
        cycles[0].direction = .west  // two turns in one tick: a U-turn
        #expect(advance(&cycles, &arena) == 0b01)
    }

    @Test func aHeadOnCrashesBothAndTheLastTwoMakeADraw() {
        var arena = Arena()
        var cycles = [Cycle(x: 10, y: 10, direction: .east), Cycle(x: 12, y: 10, direction: .west)]
        #expect(advance(&cycles, &arena) == 0b11)
        #expect(outcome(cycles) == .draw)
        #expect(!arena.occupied(11, 10))
    }

    @Test func spawnsAreInsideDistinctAndClearOfEachOther() {
        var arena = Arena()
        var cycles = (0..<Rules.maxPlayers).map { Rules.spawn($0) }
        for cycle in cycles {
            #expect(Arena.inside(cycle.x, cycle.y))
            #expect(!arena.occupied(cycle.x, cycle.y))
            arena.mark(cycle.x, cycle.y)
        }
        // Nobody crashes for the first 40 ticks if nobody turns.
        for _ in 0..<40 { #expect(advance(&cycles, &arena) == 0) }
    }

    @Test func theArenaRoundTripsThroughItsHexFieldAndEmptyReadsEmpty() {
        var arena = Arena()
        for (x, y) in [(0, 0), (63, 0), (0, 63), (63, 63), (17, 42)] { arena.mark(x, y) }
        var hex = [UInt8](repeating: 0, count: Arena.encodedLength)
        hex.withUnsafeMutableBytes { arena.encode(into: $0) }
        #expect(hex.count == 1024)
        #expect(hex.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
        let back = hex.withUnsafeBytes { Arena(hex: $0) }
        #expect(back == arena)
        #expect(back.count == 5)
        #expect([UInt8]().withUnsafeBytes { Arena(hex: $0) } == Arena())
    }
}
