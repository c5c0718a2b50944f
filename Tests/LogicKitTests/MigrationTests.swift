import GameABI
import HotswapTesting
import LogicKit
import Testing

/// Three versions of one game: 1.0.0 keeps a player's `level` as a number;
/// 2.0.0 renames `xp` to `experience` and retypes `level` to a string with
/// a way back; 3.0.0 retypes it again without one.
enum LevelsV1: Game {
    struct Fields: FieldSet {
        let level: PlayerField<Int>
        let xp: PlayerField<Int>
        init(_ s: inout Schema) {
            level = s.field("level")
            xp = s.field("xp")
        }
    }
    static let name: StaticString = "levels"
    static let version: StaticString = "1.0.0"
    static let commands: [Command<LevelsV1>] = [
        Command("PLAY", "key") { c, args throws(Refusal) in
            let key = try args.word()
            _ = c.host.attachPlayer(c.sessionID, key: key.bytes)
            guard let player = c.me.player else { throw Refusal("NO_PLAYER", "cannot attach") }
            player.level += 1
            player.xp += 10
            c.reply("+LEVEL \(player.level) XP \(player.xp)")
        },
    ]
}

enum LevelsV2: Game {
    struct Fields: FieldSet {
        let level: PlayerField<String>
        let experience: PlayerField<Int>
        init(_ s: inout Schema) {
            level = s.field("level")
            experience = s.field("experience")
        }
    }
    static let name: StaticString = "levels"
    static let version: StaticString = "2.0.0"
    static let migrations: [Migration<LevelsV2>] = [
        .rename("xp", to: \.experience),
        .retype(\.level, from: Int.self, up: { "L\($0)" }, down: { Int($0.dropFirst()) ?? 0 }),
    ]
    static let commands: [Command<LevelsV2>] = [
        Command("PLAY", "key") { c, args throws(Refusal) in
            let key = try args.word()
            _ = c.host.attachPlayer(c.sessionID, key: key.bytes)
            guard let player = c.me.player else { throw Refusal("NO_PLAYER", "cannot attach") }
            player.level = "L\((Int(player.level.dropFirst()) ?? 0) + 1)"
            player.experience += 100
            c.reply("+LEVEL \(player.level) XP \(player.experience)")
        },
    ]
}

enum LevelsV3: Game {
    struct Fields: FieldSet {
        let level: PlayerField<Int>
        init(_ s: inout Schema) { level = s.field("level") }
    }
    static let name: StaticString = "levels"
    static let version: StaticString = "3.0.0"
    static let migrations: [Migration<LevelsV3>] = [
        .retype(\.level, from: String.self, up: { Int($0.dropFirst()) ?? 0 }),
    ]
    static let commands: [Command<LevelsV3>] = []
}

@Suite struct MigrationTests {
    @Test func aRenameAndARetypeGoUpAndComeBackDown() throws {
        let host = try FakeHost(FakeModule(game: LevelsV1.self))
        let alice = host.connect()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL 1 XP 10")
        try host.reload(to: FakeModule(game: LevelsV2.self, migrations: true))
        let player = try #require(host.player(key: "alice"))
        #expect(host.string("level", of: player) == "L1")
        #expect(host.int("experience", of: player) == 10)
        // Written under 2.0.0, then carried back by its down migration.
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L2 XP 110")
        try host.rollback()
        #expect(host.int("level", of: player) == 2)
        #expect(host.int("xp", of: player) == 110)
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL 3 XP 120")
        #expect(host.violations.isEmpty)
    }

    @Test func aRetypeWithoutAWayBackRefusesTheRollback() throws {
        let host = try FakeHost(FakeModule(game: LevelsV2.self))
        let alice = host.connect()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L1 XP 100")
        try host.reload(to: FakeModule(game: LevelsV3.self, migrations: true))
        let player = try #require(host.player(key: "alice"))
        #expect(host.int("level", of: player) == 1)
        #expect(throws: (any Error).self) { try host.rollback() }
        // Nothing changed: 3.0.0 still serves its number.
        #expect(host.moduleVersion == "3.0.0")
        #expect(host.int("level", of: player) == 1)
    }
}
