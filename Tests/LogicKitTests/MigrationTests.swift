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

/// 2.1.0 only adds a field, and keeps 2.0.0's migrations as history.
enum LevelsV21: Game {
    struct Fields: FieldSet {
        let level: PlayerField<String>
        let experience: PlayerField<Int>
        let bonus: PlayerField<Int>
        init(_ s: inout Schema) {
            level = s.field("level")
            experience = s.field("experience")
            bonus = s.field("bonus")
        }
    }
    static let name: StaticString = "levels"
    static let version: StaticString = "2.1.0"
    static let migrations: [Migration<LevelsV21>] = [
        .rename("xp", to: \.experience),
        .retype(\.level, from: Int.self, up: { "L\($0)" }, down: { Int($0.dropFirst()) ?? 0 }),
    ]
    static let commands: [Command<LevelsV21>] = []
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

    @Test func aRetypeWithoutAWayBackRefusesTheRollbackNamingTheField() throws {
        let host = try FakeHost(FakeModule(game: LevelsV2.self))
        let alice = host.connect()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L1 XP 100")
        try host.reload(to: FakeModule(game: LevelsV3.self, migrations: true))
        let player = try #require(host.player(key: "alice"))
        #expect(host.int("level", of: player) == 1)
        #expect(throws: FakeHostError("cannot roll back levels 3.0.0 -> levels 2.0.0: levels 3.0.0 retyped field 'level' "
            + "and its hotswap_migrate_down has no way back to levels 2.0.0; going back would mix the level from before "
            + "the upgrade with everything written since")) { try host.rollback() }
        // Nothing changed: 3.0.0 still serves its number.
        #expect(host.moduleVersion == "3.0.0")
        #expect(host.int("level", of: player) == 1)
    }

    /// The second of two ROLLBACKs goes forward again: 1.0.0's hook has no
    /// way to 2.0.0's shape, so it declines and the engine's rule refuses,
    /// instead of bringing back 2.0.0's values from the first rollback.
    @Test func aSecondRollbackForwardIsRefusedNotMixed() throws {
        let host = try FakeHost(FakeModule(game: LevelsV1.self, migrations: true))
        let alice = host.connect()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL 1 XP 10")
        try host.reload(to: FakeModule(game: LevelsV2.self, migrations: true))
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L2 XP 110")
        try host.rollback()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL 3 XP 120")
        #expect(throws: FakeHostError("cannot roll back levels 1.0.0 -> levels 2.0.0: levels 1.0.0 retyped field 'level' "
            + "and its hotswap_migrate_down has no way back to levels 2.0.0; going back would mix the level from before "
            + "the upgrade with everything written since")) { try host.rollback() }
        #expect(host.moduleVersion == "1.0.0")
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL 4 XP 130")
    }

    /// A rename kept as history reads only a field the outgoing module
    /// declares, not a column kept hidden from an older version.
    @Test func aRenameKeptAsHistoryDoesNotReadAHiddenColumn() throws {
        let host = try FakeHost(FakeModule(game: LevelsV1.self))
        let alice = host.connect()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL 1 XP 10")
        try host.reload(to: FakeModule(game: LevelsV2.self, migrations: true))
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L2 XP 110")
        // 2.0.0 -> 2.1.0: `xp` is hidden now, still 10; the rename must not
        // bring it back over `experience`.
        try host.reload(to: FakeModule(game: LevelsV21.self, migrations: true))
        let player = try #require(host.player(key: "alice"))
        #expect(host.int("experience", of: player) == 110)
        #expect(host.string("level", of: player) == "L2")
        #expect(host.violations.isEmpty)
    }

    /// A version that keeps its predecessor's steps as history rolls back
    /// past a change of its own (an added field) with nothing to convert.
    @Test func migrationsKeptAsHistoryDoNotBlockALaterRollback() throws {
        let host = try FakeHost(FakeModule(game: LevelsV2.self, migrations: true))
        let alice = host.connect()
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L1 XP 100")
        try host.reload(to: FakeModule(game: LevelsV21.self, migrations: true))
        try host.rollback()
        #expect(host.moduleVersion == "2.0.0")
        #expect(host.send("PLAY alice", from: alice) == "+LEVEL L2 XP 200")
        #expect(host.violations.isEmpty)
    }
}
