import Testing
@testable import LoadTestCore

/// The cycles scenario's bot: reading the game's lines and steering clear
/// of walls.
@Suite struct CyclesBotTests {
    func with<R>(_ line: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        Array(line.utf8).withUnsafeBytes(body)
    }

    @Test func linesAreClassified() {
        #expect(with(">TICK 42 lt0:9,4,E lt1:54,12,W") { CyclesBot.classify($0) } == .tick(step: 42))
        #expect(with(">ROUND 3 starts_in_ms 3000") { CyclesBot.classify($0) } == .round)
        #expect(with(">WIN lt1 wins 2") { CyclesBot.classify($0) } == .end)
        #expect(with(">DRAW") { CyclesBot.classify($0) } == .end)
        #expect(with(">CRASH lt0") { CyclesBot.classify($0) } == .other)
        #expect(with("+TURNED N") { CyclesBot.classify($0) } == .other)
    }

    @Test func aBotFindsItsOwnCycleAndNotAPrefixOfItsName() {
        let bot = CyclesBot(name: "lt1", seed: 1)
        let line = ">TICK 7 lt12:3,4,N lt1:54,12,W"
        let found = with(line) { bot.position(inTick: $0) }
        #expect(found?.x == 54 && found?.y == 12 && found?.heading == UInt8(ascii: "W"))
        #expect(with(">TICK 8 lt12:3,3,N") { bot.position(inTick: $0) } == nil)
    }

    @Test func aBotTurnsBeforeTheWallTowardsTheRoomierSide() {
        var bot = CyclesBot(name: "lt0", seed: 1)
        bot.turnOdds = 1 << 62  // no random turns
        // Heading north at the top wall, near the west side: turn right (east).
        #expect(bot.steer(x: 3, y: 1, heading: UInt8(ascii: "N"))?.description == "TURN R")
        // Heading east at the east wall, near the bottom: turn left (north).
        #expect(bot.steer(x: 62, y: 60, heading: UInt8(ascii: "E"))?.description == "TURN L")
        // In the open it rides on.
        #expect(bot.steer(x: 30, y: 30, heading: UInt8(ascii: "S")) == nil)
    }

    @Test func randomTurnsComeAtTheAskedOdds() {
        var bot = CyclesBot(name: "lt0", seed: 7)
        var turns = 0
        for _ in 0..<16_000 where bot.steer(x: 30, y: 30, heading: UInt8(ascii: "E")) != nil { turns += 1 }
        #expect(turns > 800 && turns < 1200, "\(turns)")
    }
}
