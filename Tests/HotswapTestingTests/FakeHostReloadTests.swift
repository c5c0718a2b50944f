import GameABI
import HotswapTesting
import Testing

// Version 1: hp is an int; a title; gold per player.
private let v1Fields: [Field] = [
    .int(GAME_KIND_SESSION, "hp", 10),
    .int(GAME_KIND_GLOBAL, "round"),
    .int(GAME_KIND_PLAYER, "gold"),
    .string(GAME_KIND_SESSION, "title", "novice"),
]

// Version 2: hp becomes a string ("hp:<n>", computed by migrate), the
// title is dropped, players get a rank.
private let v2Fields: [Field] = [
    .string(GAME_KIND_SESSION, "hp", flags: UInt32(GAME_FIELD_MIGRATED)),
    .int(GAME_KIND_GLOBAL, "round"),
    .int(GAME_KIND_PLAYER, "gold"),
    .string(GAME_KIND_PLAYER, "rank", "bronze"),
]

private func handleV1(_ r: Request) -> Int32 {
    let t = r.t
    switch r.verb {
    case "HP": return t.reply("+\(t.setInt(r.session, 0, Int64(r.word(1)) ?? 0))")
    case "TITLE": return t.reply("+\(t.setString(r.session, 3, r.word(1)))")
    case "ATTACH":
        let (status, player) = t.attach(r.session, r.word(1))
        if status == GAME_OK { t.setInt(player, 2, 5) }
        return t.reply("+\(status)")
    default: return t.reply("+v1")
    }
}

private func handleV2(_ r: Request) -> Int32 {
    let t = r.t
    switch r.verb {
    case "HP": return t.reply("+\(t.setString(r.session, 0, "hp:\(r.word(1))"))")
    default: return t.reply("+v2")
    }
}

private let v1 = testModule("game", version: "1", fields: v1Fields, handle: handleV1)

/// Version 2 with its migration (UP) and, when `down`, its way back.
private func v2(down: Bool = false, failOnPlayers: Bool = false) -> FakeModule {
    var module = testModule("game", version: "2", fields: v2Fields, handle: handleV2)
    module.migrate = { m, entity, t in
        let mig = m.pointee
        let from = text(mig.from_version, mig.from_version_length), to = text(mig.to_version, mig.to_version_length)
        switch Int32(entity >> 56) {
        case GAME_KIND_SESSION:
            var old: Int64 = 0
            let status = withBytes("hp") { mig.old_get_int!(m, entity, $0, $1, &old) }
            guard status == GAME_OK else { return status }
            return t.setString(entity, 0, "hp:\(old)")
        case GAME_KIND_PLAYER:
            if failOnPlayers { return GAME_ERR_STATE }
            var gold: Int64 = 0
            _ = withBytes("gold") { mig.old_get_int!(m, entity, $0, $1, &gold) }
            t.setInt(entity, 2, gold * 2)
            // While a stored player migrates, only that player may be written.
            let other = t.setInt(GAME_GLOBAL_ID, 1, 99)
            return other == GAME_ERR_STATE ? GAME_OK : GAME_ERR_BAD_ARGUMENT
        default:
            // Output, room changes and undo are refused during a migration.
            let refusals = [t.send(entity, ">no"), t.reply("+no"), t.createRoom("no").0, t.undo()]
            t.setInt(GAME_GLOBAL_ID, 1, 7)
            let note = "migrate \(from)->\(to) dir=\(mig.direction) refusals=\(refusals)"
            withBytes(note) { t.pointee.log!(t, GAME_LOG_INFO, $0, $1) }
            return GAME_OK
        }
    }
    module.load = { t, from, length in
        withBytes("load from \(text(from, length))") { t.pointee.log!(t, GAME_LOG_INFO, $0, $1) }
        return GAME_OK
    }
    if down {
        module.migrateDown = { m, entity, t in
            let mig = m.pointee
            guard Int32(entity >> 56) == GAME_KIND_SESSION else { return GAME_OK }
            var buffer = [UInt8](repeating: 0, count: 64)
            var length = 0
            let status = withBytes("hp") { mig.old_get_string!(m, entity, $0, $1, &buffer, buffer.count, &length) }
            guard status == GAME_OK, mig.direction == UInt32(GAME_MIGRATE_DOWN) else { return GAME_ERR_STATE }
            let value = String(decoding: buffer.prefix(length), as: UTF8.self).dropFirst(3)
            // `t` writes the previous schema, whose order this version
            // learns by name (field_index, ABI 1.5).
            let hp = withBytes("hp") { t.pointee.field_index!(t, UInt32(GAME_KIND_SESSION), $0, $1, nil) }
            guard hp >= 0 else { return hp }
            return t.setInt(entity, hp, Int64(value) ?? -1)
        }
    }
    return module
}

@Suite struct FakeHostReloadTests {
    @Test func aReloadMigratesEveryEntityThenLoads() throws {
        let host = try FakeHost(v1)
        let alice = host.connect()
        host.send("HP 42", from: alice)
        host.send("ATTACH alice", from: alice)
        // Offline players are migrated too.
        let carol = host.connect()
        host.send("ATTACH carol", from: carol)
        host.disconnect(carol)
        try host.reload(to: v2())
        #expect(host.moduleVersion == "2")
        #expect(host.string("hp", of: alice.id) == "hp:42")
        #expect(host.int("hp", of: alice.id) == nil)
        #expect(host.int("gold", of: host.player(key: "alice")!) == 10)
        #expect(host.int("gold", of: host.player(key: "carol")!) == 10)
        #expect(host.string("rank", of: host.player(key: "carol")!) == "bronze")
        #expect(host.int("round", of: host.globalID) == 7)
        let refused = [GAME_ERR_STATE, GAME_ERR_STATE, GAME_ERR_STATE, GAME_ERR_STATE]
        #expect(host.logs == ["INFO migrate 1->2 dir=\(GAME_MIGRATE_UP) refusals=\(refused)", "INFO load from 1"])
        #expect(host.send("PING", from: alice) == "+v2")
        #expect(host.events(of: alice).isEmpty)
        // The refusals the migration met are violations a test can see.
        #expect(host.violations.count == 6)
        #expect(host.violations.contains { $0.contains("only that player may be written") })
    }

    @Test func aFailedMigrationChangesNothing() throws {
        let host = try FakeHost(v1)
        let alice = host.connect()
        host.send("HP 42", from: alice)
        host.send("ATTACH alice", from: alice)
        #expect(throws: FakeHostError.self) { try host.reload(to: v2(failOnPlayers: true)) }
        #expect(host.moduleVersion == "1")
        #expect(host.int("hp", of: alice.id) == 42)
        #expect(host.int("gold", of: host.player(key: "alice")!) == 5)
        #expect(host.send("PING", from: alice) == "+v1")
    }

    @Test func aRetypeNeedsAMigrateExport() throws {
        let host = try FakeHost(v1)
        var noMigrate = v2()
        noMigrate.migrate = nil
        #expect(throws: FakeHostError("field 'hp' is marked as migrated but the module exports no hotswap_migrate")) {
            try host.reload(to: noMigrate)
        }
        // Retyped without GAME_FIELD_MIGRATED: refused by the bind.
        var unflagged = v2Fields
        unflagged[0].flags = 0
        let sneaky = testModule("game", version: "2", fields: unflagged, handle: handleV2)
        #expect(throws: FakeHostError.self) { try host.reload(to: sneaky) }
        #expect(host.moduleVersion == "1")
    }

    @Test func rollbackPastARetypeIsRefusedWithoutMigrateDown() throws {
        let host = try FakeHost(v1)
        let alice = host.connect()
        try host.reload(to: v2())
        #expect(throws: FakeHostError.self) { try host.rollback() }
        do {
            try host.rollback()
        } catch {
            #expect("\(error)".contains("'hp'"))
        }
        #expect(host.moduleVersion == "2")
        #expect(host.send("PING", from: alice) == "+v2")
    }

    @Test func rollbackRunsMigrateDownAndBringsDroppedFieldsBack() throws {
        let host = try FakeHost(v1)
        let alice = host.connect()
        host.send("TITLE knight", from: alice)
        try host.reload(to: v2(down: true))
        #expect(host.string("title", of: alice.id) == nil)
        host.send("HP 77", from: alice)
        try host.rollback()
        #expect(host.moduleVersion == "1")
        #expect(host.int("hp", of: alice.id) == 77)
        #expect(host.string("title", of: alice.id) == "knight")
        #expect(host.send("PING", from: alice) == "+v1")
        // Version 2 is the previous module now, but going "back" to it
        // would cross the retype without a hook (version 1 has no
        // migrateDown): refused like any such rollback.
        #expect(throws: FakeHostError.self) { try host.rollback() }
        #expect(host.moduleVersion == "1")
    }

    @Test func rollbackPastAddedAndDroppedFieldsNeedsNoHook() throws {
        let host = try FakeHost(v1)
        let alice = host.connect()
        host.send("TITLE knight", from: alice)
        let v1b = testModule("game", version: "1b", fields: Array(v1Fields.prefix(3)) + [.int(GAME_KIND_SESSION, "mana", 3)],
                             handle: handleV1)
        try host.reload(to: v1b)
        #expect(host.int("mana", of: alice.id) == 3)
        try host.rollback()
        #expect(host.string("title", of: alice.id) == "knight")
        #expect(host.violations.isEmpty)
    }

    @Test func fieldIndexNamesTheServingSchemasFields() throws {
        let module = testModule(fields: v2Fields) { r in
            let index = withBytes(r.word(1)) { r.t.pointee.field_index!(r.t, UInt32(GAME_KIND_PLAYER), $0, $1, nil) }
            return r.t.reply("+\(index)")
        }
        let host = try FakeHost(module)
        let alice = host.connect()
        #expect(host.send("INDEX rank", from: alice) == "+3")
        #expect(host.send("INDEX gold", from: alice) == "+2")
        #expect(host.send("INDEX hp", from: alice) == "+\(GAME_ERR_NOT_FOUND)")  // a session field
    }

    @Test func rollbackPastAComputedFieldIsRefusedToo() throws {
        // Same name and type, but computed by the newer module's migrate.
        var computed = v1Fields
        computed[1].flags = UInt32(GAME_FIELD_MIGRATED)
        var v1c = testModule("game", version: "1c", fields: computed, handle: handleV1)
        v1c.migrate = { _, _, _ in GAME_OK }
        let host = try FakeHost(v1)
        try host.reload(to: v1c)
        #expect(throws: FakeHostError(
            "cannot roll back game 1c -> game 1: game 1c computes field 'round' in its hotswap_migrate (GAME_FIELD_MIGRATED) "
                + "and exports no hotswap_migrate_down; going back would hand game 1 the round in game 1c's terms")) {
            try host.rollback()
        }
    }

    @Test func nothingToRollBackToAtFirst() throws {
        let host = try FakeHost(v1)
        #expect(throws: FakeHostError("no previous module to roll back to")) { try host.rollback() }
    }
}
