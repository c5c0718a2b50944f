import Testing
@testable import HotswapEngine

/// Durable players in World, in process: attach rules, the undo journal,
/// and the dirty tracking write-behind relies on.
@Suite struct WorldPlayerTests {
    private let score = FieldSpec(kind: .player, name: "score", type: .int, unique: false, defaultInt: 0, defaultString: [])
    private let logins = FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: [])

    private func world(maxPlayers: Int = 100) -> World {
        World(limits: World.Limits(maxRooms: 10, maxRoomMembers: 10, maxPlayers: maxPlayers))
    }

    @Test func aPlayerIsHeldByOneLiveSessionAndOutlivesIt() throws {
        let world = world()
        let binding = try world.bind([score])[0]
        let a = world.openSession(peer: RecordingPeer())
        let b = world.openSession(peer: RecordingPeer())
        let alice = try "alice".withBytes { try world.attachPlayer(a, key: $0) }
        #expect(throws: EngineError.exists) { try "alice".withBytes { try world.attachPlayer(b, key: $0) } }
        #expect(throws: EngineError.exists) { try "bob".withBytes { try world.attachPlayer(a, key: $0) } }
        #expect(throws: EngineError.badArgument) { try "".withBytes { try world.attachPlayer(b, key: $0) } }
        #expect(throws: EngineError.badArgument) { try [UInt8](repeating: 0x61, count: 65).withUnsafeBytes { try world.attachPlayer(b, key: $0) } }
        #expect(throws: EngineError.badArgument) { try [0xFF, 0xFE].withUnsafeBytes { try world.attachPlayer(b, key: $0) } }
        // A NUL would end the key early in the database: two keys, one row.
        #expect(throws: EngineError.badArgument) { try [0x61, 0x00, 0x62].withUnsafeBytes { try world.attachPlayer(b, key: $0) } }
        world.setInt(binding, row: try world.row(of: alice, for: binding, type: .int), 6)
        world.closeSession(a)
        // Closed, not deleted: the next session gets the same record back.
        let again = try "alice".withBytes { try world.attachPlayer(b, key: $0) }
        #expect(again == alice)
        #expect(world.int(binding, row: try world.row(of: again, for: binding, type: .int)) == 6)
        #expect(try world.player(of: b) == alice)
        try world.detachPlayer(b)
        #expect(try world.player(of: b) == nil)
        #expect(throws: EngineError.notFound) { try world.detachPlayer(b) }
        #expect(throws: EngineError.badPlayer) { try world.row(of: GameID(kind: .player, generation: 1, index: 9), for: binding, type: .int) }
        #expect(world.playerCount == 1)
    }

    @Test func theStoredPlayerLimitIsEnforced() throws {
        let world = world(maxPlayers: 1)
        _ = try "alice".withBytes { try world.attachPlayer(world.openSession(peer: RecordingPeer()), key: $0) }
        #expect(throws: EngineError.limit) {
            try "bob".withBytes { try world.attachPlayer(world.openSession(peer: RecordingPeer()), key: $0) }
        }
    }

    /// A faulting call that created a player leaves no record (nothing to
    /// write); one that attached an existing player leaves it unattached.
    @Test func theJournalUndoesAttachAndDetach() throws {
        let world = world()
        _ = try world.bind([score])
        let a = world.openSession(peer: RecordingPeer())
        _ = world.takeDirty()
        world.beginJournal()
        _ = try "carol".withBytes { try world.attachPlayer(a, key: $0) }
        world.rollBackJournal()
        #expect(world.playerCount == 0)
        #expect(try world.player(of: a) == nil)
        #expect(world.dirtyCount == 0)
        #expect(world.takeDirty().players.isEmpty)

        let carol = try "carol".withBytes { try world.attachPlayer(a, key: $0) }
        world.beginJournal()
        try world.detachPlayer(a)
        world.rollBackJournal()
        #expect(try world.player(of: a) == carol)
    }

    /// What a flush takes: each changed record once with every column, the
    /// global row when it changed; a refused batch is dirty again.
    @Test func dirtyRecordsAreTakenOnceAndPutBackWhenAWriteFails() throws {
        let world = world()
        let bindings = try world.bind([score, logins])
        let a = world.openSession(peer: RecordingPeer())
        let b = world.openSession(peer: RecordingPeer())
        let alice = try "alice".withBytes { try world.attachPlayer(a, key: $0) }
        let bob = try "bob".withBytes { try world.attachPlayer(b, key: $0) }
        var batch = world.takeDirty()
        #expect(batch.players.map(\.key) == [Array("alice".utf8), Array("bob".utf8)])
        #expect(batch.global == nil)
        #expect(world.takeDirty().isEmpty)

        for value in 1...3 { world.setInt(bindings[0], row: Int(bob.index), Int64(value)) }
        world.setInt(bindings[1], row: 0, 7)
        batch = world.takeDirty()
        #expect(batch.players == [StoredRecord(key: Array("bob".utf8), values: [.int(3)])])
        #expect(batch.global == StoredRecord(key: [], values: [.int(7)]))
        #expect(world.dirtyCount == 0)

        world.markUnwritten(batch)
        #expect(world.dirtyCount == 1 && world.globalDirty)
        world.setInt(bindings[0], row: Int(alice.index), 5)
        batch = world.takeDirty()
        #expect(Set(batch.players.map(\.values)) == [[.int(3)], [.int(5)]])
    }

    /// A failed batch finds its players by the slot each record came from,
    /// and only if the slot still holds that player: a record whose player
    /// is gone (created by a call that faulted) marks nobody else dirty,
    /// even the new player in its slot.
    @Test func aFailedBatchMarksItsOwnPlayersDirtyAgainByTheirSlots() throws {
        let world = world()
        _ = try world.bind([score])
        let a = world.openSession(peer: RecordingPeer())
        let b = world.openSession(peer: RecordingPeer())
        _ = try "alice".withBytes { try world.attachPlayer(a, key: $0) }
        world.beginJournal()
        let carol = try "carol".withBytes { try world.attachPlayer(b, key: $0) }
        let batch = world.takeDirty()
        #expect(batch.players.map(\.key) == [Array("alice".utf8), Array("carol".utf8)])
        #expect(batch.slots.count == 2)
        world.rollBackJournal()  // carol never existed
        let dave = try "dave".withBytes { try world.attachPlayer(b, key: $0) }
        #expect(dave.index == carol.index)  // her slot, reused
        _ = world.takeDirty()
        world.markUnwritten(batch)
        #expect(world.takeDirty().players.map(\.key) == [Array("alice".utf8)])
    }

    /// FORGET: a stored player leaves memory at once, its deletion goes
    /// with the next batch (back in line if that batch fails, before the
    /// rows written since), and a player attached to a live session or an
    /// unknown key is refused.
    @Test func aForgottenPlayerIsDeletedWithTheNextBatch() throws {
        let world = world()
        let binding = try world.bind([score])[0]
        let a = world.openSession(peer: RecordingPeer())
        let alice = try "alice".withBytes { try world.attachPlayer(a, key: $0) }
        world.setInt(binding, row: Int(alice.index), 6)
        #expect(throws: EngineError.exists) { try world.forgetPlayer(key: Array("alice".utf8)) }
        #expect(throws: EngineError.notFound) { try world.forgetPlayer(key: Array("nobody".utf8)) }
        world.closeSession(a)
        try world.forgetPlayer(key: Array("alice".utf8))
        #expect(world.playerCount == 0 && world.player(withKey: Array("alice".utf8)) == nil)
        let failed = world.takeDirty()
        #expect(failed.deleted == [Array("alice".utf8)] && failed.players.isEmpty)
        // Created again, then the batch that deleted the old one failed:
        // the deletion comes first again, the new record after it.
        let b = world.openSession(peer: RecordingPeer())
        let again = try "alice".withBytes { try world.attachPlayer(b, key: $0) }
        #expect(world.int(binding, row: Int(again.index)) == 0)
        world.markUnwritten(failed)
        let next = world.takeDirty()
        #expect(next.deleted == [Array("alice".utf8)])
        #expect(next.players.map(\.key) == [Array("alice".utf8)])
        #expect(world.takeDirty().isEmpty)
    }

    /// What the database holds goes in before a module binds: its fields
    /// find their values, the others stay hidden until declared again.
    @Test func storedColumnsAndRowsAreFoundByTheModuleThatBindsThem() throws {
        let world = world()
        let title = FieldSpec(kind: .player, name: "title", type: .string, unique: false, defaultInt: 0,
                              defaultString: Array("rookie".utf8))
        world.loadStored(StoredSnapshot(
            globalColumns: [logins], global: StoredRecord(key: [], values: [.int(41)]),
            playerColumns: [score, title],
            players: [StoredRecord(key: Array("alice".utf8), values: [.int(6), .string(Array("champion".utf8))]),
                      StoredRecord(key: Array("bob".utf8), values: [.int(1), nil])]))
        #expect(world.playerCount == 2 && world.dirtyCount == 0)
        let bindings = try world.bind([score, logins])
        #expect(world.int(bindings[1], row: 0) == 41)
        let bob = try #require(world.player(withKey: Array("bob".utf8)))
        #expect(world.int(bindings[0], row: Int(bob.index)) == 1)
        // The hidden column comes back with its values (and bob's default).
        let titleBinding = try world.bind([title])[0]
        #expect(world.withString(titleBinding, row: Int(bob.index)) { String(decoding: $0, as: UTF8.self) } == "rookie")
        let alice = try #require(world.player(withKey: Array("alice".utf8)))
        #expect(world.withString(titleBinding, row: Int(alice.index)) { String(decoding: $0, as: UTF8.self) } == "champion")
    }

    /// What an upgrade's final flush did not write (changed during it, or
    /// all of it when it failed) goes over dirty: the next engine writes it.
    @Test func dirtyRecordsGoOverAnUpgradeDirty() throws {
        let old = world()
        let bindings = try old.bind([score, logins])
        let peers = [RecordingPeer(), RecordingPeer()]
        let a = old.openSession(peer: peers[0])
        let b = old.openSession(peer: peers[1])
        _ = try "alice".withBytes { try old.attachPlayer(a, key: $0) }
        let bob = try "bob".withBytes { try old.attachPlayer(b, key: $0) }
        _ = old.takeDirty()
        old.setInt(bindings[0], row: Int(bob.index), 4)
        old.setInt(bindings[1], row: 0, 9)
        #expect(old.dirtyCount == 1 && old.globalDirty)

        var writer = HandoffWriter()
        old.encodeHandoff(into: &writer)
        let new = world()
        var reader = HandoffReader(writer.bytes)
        let byID = [a: peers[0], b: peers[1]]
        try new.restoreHandoff(from: &reader) { byID[$0] }
        _ = try new.bind([score, logins])
        #expect(new.dirtyCount == 1 && new.globalDirty)
        let batch = new.takeDirty()
        #expect(batch.players == [StoredRecord(key: Array("bob".utf8), values: [.int(4)])])
        #expect(batch.global == StoredRecord(key: [], values: [.int(9)]))
    }
}
