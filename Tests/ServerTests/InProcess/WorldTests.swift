import Testing
@testable import HotswapEngine

/// A session's output, kept in memory: World and LogicHost tested without
/// sockets, in the spirit of swift-nio's `EmbeddedChannel`.
final class RecordingPeer: SessionPeer {
    private(set) var lines: [String] = []
    private(set) var identified = false
    private(set) var ended = false

    var journalEpoch: UInt64 = 0
    func deliver(_ line: UnsafeRawBufferPointer) { lines.append(String(decoding: line, as: UTF8.self)) }
    func outputMark() -> Int { lines.count }
    func rollBackOutput(to mark: Int) { lines.removeSubrange(mark...) }
    var isIdentified: Bool { identified }
    func setIdentified(_ identified: Bool) { self.identified = identified }
    func sessionEnded() { ended = true }

    /// The lines received since the last call.
    func take() -> [String] {
        defer { lines.removeAll() }
        return lines
    }
}

extension String {
    /// Calls `body` with the string's UTF-8 bytes.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Array(utf8).withUnsafeBytes(body)
    }
}

/// World in process: rooms, membership, output routing and field storage.
@Suite struct WorldTests {
    private func world(maxRooms: Int = 10, maxRoomMembers: Int = 3) -> World {
        World(limits: World.Limits(maxRooms: maxRooms, maxRoomMembers: maxRoomMembers))
    }

    @Test func membersKeepJoinOrderAndAFullRoomChangesNothing() throws {
        let world = world(maxRoomMembers: 2)
        let (a, b, c) = (RecordingPeer(), RecordingPeer(), RecordingPeer())
        let ids = [a, b, c].map { world.openSession(peer: $0) }
        let room = try "lobby".withBytes { try world.createRoom(named: $0) }
        try world.join(ids[1], room)
        try world.join(ids[0], room)
        #expect(throws: EngineError.limit) { try world.join(ids[2], room) }
        #expect(try world.withMembers(of: room) { $0 } == [ids[1], ids[0]])
        #expect(try world.room(of: ids[2]) == nil)
        #expect(throws: EngineError.exists) { try world.join(ids[0], room) }
    }

    @Test func aRoomLeftEmptyIsDestroyedAtTheSweepAndItsNameFreed() throws {
        let world = world()
        let id = world.openSession(peer: RecordingPeer())
        let room = try "den".withBytes { try world.createRoom(named: $0) }
        #expect(throws: EngineError.exists) { try "den".withBytes { try world.createRoom(named: $0) } }
        try world.join(id, room)
        world.destroyRoomsLeftEmpty()
        #expect(world.roomCount == 1)
        try world.leaveRoom(id)
        #expect(throws: EngineError.notFound) { try world.leaveRoom(id) }
        world.destroyRoomsLeftEmpty()
        #expect(world.roomCount == 0)
        #expect("den".withBytes { world.findRoom(named: $0) } == nil)
        #expect(throws: EngineError.badRoom) { try world.join(id, room) }
    }

    @Test func theRoomLimitIsEnforced() throws {
        let world = world(maxRooms: 2)
        _ = try "a".withBytes { try world.createRoom(named: $0) }
        _ = try "b".withBytes { try world.createRoom(named: $0) }
        #expect(throws: EngineError.limit) { try "c".withBytes { try world.createRoom(named: $0) } }
    }

    @Test func broadcastReachesEveryMemberButTheOneExcepted() throws {
        let world = world()
        let peers = [RecordingPeer(), RecordingPeer(), RecordingPeer()]
        let ids = peers.map { world.openSession(peer: $0) }
        let room = try "r".withBytes { try world.createRoom(named: $0) }
        for id in ids { try world.join(id, room) }
        try ">SAY x hi".withBytes { try world.broadcast(room, except: ids[0], $0) }
        #expect(peers.map { $0.take() } == [[], [">SAY x hi"], [">SAY x hi"]])
        try ">PRIVATE".withBytes { try world.send(to: ids[2], $0) }
        #expect(peers[2].take() == [">PRIVATE"])
    }

    @Test func closingASessionLeavesItsRoomResetsItsFieldsAndStalesItsId() throws {
        let world = world()
        let score = FieldSpec(kind: .session, name: "score", type: .int, unique: false, defaultInt: 0, defaultString: [])
        let binding = try world.bind([score])[0]
        let peer = RecordingPeer()
        let id = world.openSession(peer: peer)
        let room = try "r".withBytes { try world.createRoom(named: $0) }
        try world.join(id, room)
        world.setInt(binding, row: try world.row(of: id, for: binding, type: .int), 42)
        #expect(world.beginClosing(id))
        #expect(!world.beginClosing(id))
        #expect(world.closeSession(id) === peer)
        #expect(world.roomCount == 0)
        #expect(throws: EngineError.badSession) { try world.row(of: id, for: binding, type: .int) }
        let next = world.openSession(peer: RecordingPeer())
        #expect(world.int(binding, row: try world.row(of: next, for: binding, type: .int)) == 0)
    }

    @Test func fieldAccessChecksKindTypeAndLiveness() throws {
        let world = world()
        let fields = [
            FieldSpec(kind: .session, name: "name", type: .string, unique: true, defaultInt: 0, defaultString: []),
            FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: []),
        ]
        let bindings = try world.bind(fields)
        let id = world.openSession(peer: RecordingPeer())
        #expect(throws: EngineError.badField) { try world.row(of: GameID.global, for: bindings[0], type: .string) }
        #expect(throws: EngineError.badType) { try world.row(of: id, for: bindings[0], type: .int) }
        #expect(throws: EngineError.badArgument) { try world.row(of: GameID(raw: 0), for: bindings[0], type: .string) }
        #expect(try world.row(of: GameID.global, for: bindings[1], type: .int) == 0)
        let row = try world.row(of: id, for: bindings[0], type: .string)
        try "alice".withBytes { try world.setString(bindings[0], row: row, $0) }
        #expect(try "alice".withBytes { try world.find(bindings[0], holding: $0) } == id)
        let other = world.openSession(peer: RecordingPeer())
        let otherRow = try world.row(of: other, for: bindings[0], type: .string)
        #expect(throws: EngineError.exists) { try "alice".withBytes { try world.setString(bindings[0], row: otherRow, $0) } }
    }

    @Test func aSnapshotRestoredUndoesFieldWrites() throws {
        let world = world()
        let spec = FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: [])
        let binding = try world.bind([spec])[0]
        world.setInt(binding, row: 0, 5)
        let snapshot = world.snapshot()
        world.setInt(binding, row: 0, 9)
        world.restore(snapshot)
        #expect(world.int(binding, row: 0) == 5)
    }
}

/// The undo journal: what a faulting module call did is taken back exactly.
@Suite struct WorldJournalTests {
    @Test func rollingBackUndoesFieldsIndexRoomsAndOutputInReverse() throws {
        let world = World(limits: World.Limits(maxRooms: 10, maxRoomMembers: 10))
        let fields = [
            FieldSpec(kind: .session, name: "name", type: .string, unique: true, defaultInt: 0, defaultString: []),
            FieldSpec(kind: .session, name: "score", type: .int, unique: false, defaultInt: 0, defaultString: []),
        ]
        let bindings = try world.bind(fields)
        let (a, b, c) = (RecordingPeer(), RecordingPeer(), RecordingPeer())
        let ids = [a, b, c].map { world.openSession(peer: $0) }
        let rows = try ids.map { try world.row(of: $0, for: bindings[1], type: .int) }
        let lobby = try "lobby".withBytes { try world.createRoom(named: $0) }
        for id in ids { try world.join(id, lobby) }
        try "alice".withBytes { try world.setString(bindings[0], row: rows[0], $0) }
        world.setInt(bindings[1], row: rows[0], 7)
        try ">before".withBytes { try world.send(to: ids[1], $0) }

        world.beginJournal()
        world.setInt(bindings[1], row: rows[0], 999)
        // alice's name moves to bob: released by one change, taken by the next.
        try "alicia".withBytes { try world.setString(bindings[0], row: rows[0], $0) }
        try "alice".withBytes { try world.setString(bindings[0], row: rows[1], $0) }
        try world.leaveRoom(ids[0])  // alice was first in join order
        let den = try "den".withBytes { try world.createRoom(named: $0) }
        try world.join(ids[0], den)
        try ">during".withBytes { try world.broadcast(lobby, except: nil, $0) }
        try ">during".withBytes { try world.send(to: ids[0], $0) }
        world.rollBackJournal()

        #expect(world.int(bindings[1], row: rows[0]) == 7)
        #expect(try "alice".withBytes { try world.find(bindings[0], holding: $0) } == ids[0])
        #expect(throws: EngineError.notFound) { try "alicia".withBytes { try world.find(bindings[0], holding: $0) } }
        #expect(try world.room(of: ids[0]) == lobby)
        #expect(try world.withMembers(of: lobby) { $0 } == ids)
        #expect(world.roomCount == 1)
        #expect("den".withBytes { world.findRoom(named: $0) } == nil)
        #expect(throws: EngineError.badRoom) { try world.withMembers(of: den) { $0 } }
        #expect(a.take() == [])
        #expect(b.take() == [">before"])
        #expect(c.take() == [])
        world.destroyRoomsLeftEmpty()
        #expect(world.roomCount == 1)
    }

    @Test func committingKeepsEverything() throws {
        let world = World(limits: World.Limits(maxRooms: 10, maxRoomMembers: 10))
        let binding = try world.bind([FieldSpec(kind: .global, name: "logins", type: .int, unique: false,
                                                defaultInt: 0, defaultString: [])])[0]
        let peer = RecordingPeer()
        let id = world.openSession(peer: peer)
        world.beginJournal()
        world.setInt(binding, row: 0, 3)
        try ">kept".withBytes { try world.send(to: id, $0) }
        world.commitJournal()
        world.beginJournal()
        world.rollBackJournal()
        #expect(world.int(binding, row: 0) == 3)
        #expect(peer.take() == [">kept"])
    }
}
