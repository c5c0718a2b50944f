import Testing
@testable import HotswapEngine

/// World and its undo journal against a reference model: random sequences
/// of what modules and the engine do to World (int and string field writes,
/// a unique index, rooms created, joined and left, players attached and
/// detached, sessions identified, output queued, sessions closed, FORGET,
/// and the write-behind taking dirty rows, failing and retrying) inside
/// and outside journaled calls that commit or roll back, as
/// `LogicHost.handle` runs each module call. The model is plain
/// dictionaries; a rolled-back call's operations are discarded from it by
/// restoring its state from the call's start. After every operation
/// everything World shows is compared with the model.
///
/// The run's choices come from one seed, named in every failure
/// (`HOTSWAP_TEST_SEED` replays them).
@Suite struct WorldModelTests {
    @Test func worldAndItsUndoJournalAgreeWithAReferenceModel() throws {
        let seed = ForgetInterleavingTests.seed()
        var total = WorldModelRun.Counts()
        for run in 0..<6 {
            let model = try WorldModelRun(seed: seed, run: run)
            model.run(steps: 300)
            if let failure = model.failure {
                Issue.record("""
                    \(failure)
                    run \(run), step \(model.step) (HOTSWAP_TEST_SEED=\(seed)); the last operations, oldest first:
                    \(model.history.suffix(30).joined(separator: "\n"))
                    """)
                return
            }
            total.merge(model.counts)
        }
        // The runs went where they are meant to: calls undone that had
        // changed something, and each kind of operation both done and
        // refused (a test that never rolls anything back proves nothing).
        #expect(total.commits > 100, "HOTSWAP_TEST_SEED=\(seed)")
        #expect(total.rollbacksThatUndidSomething > 50, "HOTSWAP_TEST_SEED=\(seed)")
        for op in ["score", "name", "createRoom", "join", "leave", "attach", "detach", "points", "tag", "identify",
                   "send", "broadcast", "close", "forget"]
        {
            #expect(total.succeeded[op, default: 0] > 0, "no \(op) succeeded (HOTSWAP_TEST_SEED=\(seed))")
        }
        for op in ["name", "createRoom", "join", "attach", "forget"] {
            #expect(total.refused[op, default: 0] > 0, "no \(op) was refused (HOTSWAP_TEST_SEED=\(seed))")
        }
    }
}

/// One random run of World against the model.
final class WorldModelRun {
    // MARK: - The schema and the pools of values

    static let scoreDefault: Int64 = 7
    static let gemsDefault: Int64 = 3
    static let loginsDefault: Int64 = 11
    static let pointsDefault: Int64 = 100
    static let rookie: [UInt8] = Array("rookie".utf8)

    /// Session score (int), session name (unique string, default ""), room
    /// gems (int), global logins (int), player points (int), player tag
    /// (unique string whose default, "rookie", is not indexed).
    static let fields: [FieldSpec] = [
        FieldSpec(kind: .session, name: "score", type: .int, unique: false, defaultInt: scoreDefault, defaultString: []),
        FieldSpec(kind: .session, name: "name", type: .string, unique: true, defaultInt: 0, defaultString: []),
        FieldSpec(kind: .room, name: "gems", type: .int, unique: false, defaultInt: gemsDefault, defaultString: []),
        FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: loginsDefault, defaultString: []),
        FieldSpec(kind: .player, name: "points", type: .int, unique: false, defaultInt: pointsDefault, defaultString: []),
        FieldSpec(kind: .player, name: "tag", type: .string, unique: true, defaultInt: 0, defaultString: rookie),
    ]

    /// Few values, so that unique values collide and limits are reached.
    static let sessionNames: [[UInt8]] = ["", "ann", "bo", "cy"].map { Array($0.utf8) }
    static let roomNames = ["r0", "r1", "r2", "r3", "r4"]
    static let keys: [[UInt8]] = ["k0", "k1", "k2", "k3", "k4"].map { Array($0.utf8) }
    /// Keys attachPlayer must refuse: empty, with a NUL, not UTF-8.
    static let badKeys: [[UInt8]] = [[], [0x6B, 0x00, 0x31], [0xFF, 0xFE]]
    static let tags: [[UInt8]] = ["rookie", "x", "y"].map { Array($0.utf8) }

    static let maxSessions = 6
    static let maxRooms = 4
    static let maxRoomMembers = 3
    static let maxPlayers = 4

    // MARK: - The model

    struct ModelSession: Equatable {
        var score = WorldModelRun.scoreDefault
        var name: [UInt8] = []
        var room: GameID?
        /// The key of the player it holds.
        var player: [UInt8]?
        var identified = false
        var closing = false
        /// Lines queued for its peer and not yet taken.
        var lines: [String] = []
    }

    struct ModelRoom: Equatable {
        var name: String
        var members: [GameID] = []
        var gems = WorldModelRun.gemsDefault
    }

    struct ModelPlayer: Equatable {
        var id: GameID
        var session: GameID?
        var points = WorldModelRun.pointsDefault
        var tag = WorldModelRun.rookie
    }

    struct Model: Equatable {
        var sessions: [GameID: ModelSession] = [:]
        var rooms: [GameID: ModelRoom] = [:]
        var players: [[UInt8]: ModelPlayer] = [:]
        var logins = WorldModelRun.loginsDefault

        /// What `destroyRoomsLeftEmpty` after a call (and `closeSession`)
        /// does: no room is left empty.
        mutating func sweepEmptyRooms() { rooms = rooms.filter { !$0.value.members.isEmpty } }
    }

    /// What happened, for the test to check the run was not vacuous.
    struct Counts {
        var succeeded: [String: Int] = [:]
        var refused: [String: Int] = [:]
        var commits = 0
        var rollbacks = 0
        var rollbacksThatUndidSomething = 0

        mutating func merge(_ other: Counts) {
            succeeded.merge(other.succeeded, uniquingKeysWith: +)
            refused.merge(other.refused, uniquingKeysWith: +)
            commits += other.commits
            rollbacks += other.rollbacks
            rollbacksThatUndidSomething += other.rollbacksThatUndidSomething
        }
    }

    // MARK: - State

    let seed: UInt64
    var random: SplitMix
    let world: World
    let scoreField: FieldBinding
    let nameField: FieldBinding
    let gemsField: FieldBinding
    let loginsField: FieldBinding
    let pointsField: FieldBinding
    let tagField: FieldBinding

    /// Each live session's peer (sessions are never opened or closed
    /// during a call, so the peers are not part of what a rollback restores).
    var peers: [GameID: RecordingPeer] = [:]
    var model = Model()
    /// The model as the call in progress found it.
    var checkpoint: Model?
    var inCall = false

    /// Ids seen alive at the last check, and those that died since (never
    /// to come back: a slot reused gets a new generation).
    var knownSessions = Set<GameID>()
    var knownRooms = Set<GameID>()
    var knownPlayers = Set<GameID>()
    var deadSessions: [GameID] = []
    var deadRooms: [GameID] = []
    var deadPlayers: [GameID] = []

    /// The database as the write-behind would leave it: every batch that
    /// "succeeded" applied, deletions first.
    var stored: [[UInt8]: [StoredValue?]] = [:]
    var storedGlobal: [StoredValue?]?
    /// A batch taken and not yet written or failed (one at a time, as the
    /// write-behind has at most one flush on its worker).
    var inFlight: PersistBatch?

    var history: [String] = []
    var failure: String?
    var step = 0
    var lineCounter = 0
    var counts = Counts()

    init(seed: UInt64, run: Int) throws {
        self.seed = seed
        random = SplitMix(state: seed &+ UInt64(run) &* 0x9E37_79B9_7F4A_7C15)
        world = World(limits: World.Limits(maxRooms: Self.maxRooms, maxRoomMembers: Self.maxRoomMembers, maxPlayers: Self.maxPlayers))
        let bound = try world.bind(Self.fields)
        scoreField = bound[0]
        nameField = bound[1]
        gemsField = bound[2]
        loginsField = bound[3]
        pointsField = bound[4]
        tagField = bound[5]
    }

    // MARK: - Running

    func run(steps: Int) {
        for index in 0..<steps where failure == nil {
            step = index
            if model.sessions.count < 2 || chance(8) {
                openSession()
            } else if chance(60) {
                call()
            } else {
                outsideOp()
            }
            check("step \(index)")
        }
        if failure == nil { quiesce() }
    }

    /// One module call: the journal begins, a few operations run, and the
    /// call commits or is rolled back (a contained fault); then, as after
    /// every call, rooms left empty are destroyed. `closing` makes it the
    /// close hook of that session (it runs after `beginClosing`, before
    /// `closeSession`).
    func call(closing: GameID? = nil) {
        world.beginJournal()
        inCall = true
        checkpoint = model
        note(closing.map { "begin the close hook of \($0)" } ?? "beginJournal")
        check("beginJournal")
        for _ in 0..<(1 + roll(4)) where failure == nil {
            callOp()
            check("the last operation")
        }
        guard failure == nil, let start = checkpoint else { return }
        if chance(65) {
            note("commitJournal")
            world.commitJournal()
            counts.commits += 1
        } else {
            note("rollBackJournal")
            world.rollBackJournal()
            if model != start { counts.rollbacksThatUndidSomething += 1 }
            model = start
            counts.rollbacks += 1
        }
        checkpoint = nil
        inCall = false
        check("the end of the call")
        world.destroyRoomsLeftEmpty()
        model.sweepEmptyRooms()
        check("destroyRoomsLeftEmpty")
    }

    func callOp() {
        switch roll(22) {
        case 0, 1: writeScore()
        case 2, 3: writeName()
        case 4: createRoom()
        case 5, 6: joinSomeRoom()
        case 7: leave()
        case 8: writeGems()
        case 9: writeLogins()
        case 10, 11: attach()
        case 12: detach()
        case 13: writePoints()
        case 14: writeTag()
        case 15: identify()
        case 16: send()
        case 17: broadcast()
        case 18: if chance(50) { deliverToPeer() } else { forgetDuringACall() }
        case 19, 20: createRoomAndJoin()
        default: if chance(50) { writeTag() } else { detach() }
        }
    }

    /// What happens between calls: sessions open and close, output is
    /// written out, migrations write fields, the write-behind takes dirty
    /// rows (and its write succeeds or fails), an operator forgets a player.
    func outsideOp() {
        switch roll(13) {
        case 0, 1: openSession()
        case 2, 3: closeSession()
        case 4: drain()
        case 5, 6:
            switch roll(4) {
            case 0: writeScore()
            case 1: writePoints()
            case 2: writeLogins()
            default: writeTag()
            }
        case 7: startFlush()
        case 8: finishFlush(written: chance(70))
        case 9, 10, 11: forget()
        default: quiesce()
        }
    }

    // MARK: - Operations inside (and some outside) calls

    func writeScore() {
        guard let id = anySession() else { return }
        guard let row = outcome("row", "row of \(id) for score", expected: model.sessions[id] == nil ? .badSession : nil, {
            try world.row(of: id, for: scoreField, type: .int)
        }) else { return }
        let value = Int64(roll(100)) - 50
        note("score of \(id) = \(value)")
        world.setInt(scoreField, row: row, value)
        model.sessions[id]!.score = value
        counts.succeeded["score", default: 0] += 1
    }

    func writeName() {
        guard let id = anySession(), let value = pick(Self.sessionNames) else { return }
        guard let row = outcome("row", "row of \(id) for name", expected: model.sessions[id] == nil ? .badSession : nil, {
            try world.row(of: id, for: nameField, type: .string)
        }) else { return }
        // The default ("") is shared by every fresh row: never taken.
        let taken = !value.isEmpty && model.sessions.contains { $0.key != id && $0.value.name == value }
        guard outcome("name", "name of \(id) = \(text(value))", expected: taken ? .exists : nil, {
            try value.withUnsafeBytes { try world.setString(nameField, row: row, $0) }
        }) != nil else { return }
        model.sessions[id]!.name = value
    }

    @discardableResult
    func createRoom() -> GameID? {
        guard let roomName = pick(Self.roomNames) else { return nil }
        let expected: EngineError? = model.rooms.values.contains { $0.name == roomName } ? .exists
            : model.rooms.count >= Self.maxRooms ? .limit : nil
        guard let id = outcome("createRoom", "create room \(roomName)", expected: expected, {
            try roomName.withBytes { try world.createRoom(named: $0) }
        }) else { return nil }
        if model.rooms[id] != nil || deadRooms.contains(id) { fail("createRoom returned \(id), an id in use or used before") }
        model.rooms[id] = ModelRoom(name: roomName)
        return id
    }

    func join(_ id: GameID, _ room: GameID) {
        let expected: EngineError?
        if let session = model.sessions[id] {
            if let existing = model.rooms[room] {
                expected = session.room != nil ? .exists : existing.members.count >= Self.maxRoomMembers ? .limit : nil
            } else {
                expected = .badRoom
            }
        } else {
            expected = .badSession
        }
        guard outcome("join", "join \(id) to \(room)", expected: expected, { try world.join(id, room) }) != nil else { return }
        model.rooms[room]!.members.append(id)
        model.sessions[id]!.room = room
    }

    func joinSomeRoom() {
        guard let id = anySession(), let room = anyRoom() else { return }
        join(id, room)
    }

    /// A room made and joined in one call (as the fixtures' JOIN does): a
    /// room nobody joins is gone after the call.
    func createRoomAndJoin() {
        guard let id = pick(liveSessions), let room = createRoom() else { return }
        join(id, room)
    }

    func leave() {
        guard let id = anySession() else { return }
        let session = model.sessions[id]
        let expected: EngineError? = session == nil ? .badSession : session?.room == nil ? .notFound : nil
        guard outcome("leave", "\(id) leaves its room", expected: expected, { try world.leaveRoom(id) }) != nil else { return }
        let room = model.sessions[id]!.room!
        model.rooms[room]!.members.removeAll { $0 == id }
        model.sessions[id]!.room = nil
    }

    func writeGems() {
        guard let room = anyRoom() else { return }
        guard let row = outcome("row", "row of \(room) for gems", expected: model.rooms[room] == nil ? .badRoom : nil, {
            try world.row(of: room, for: gemsField, type: .int)
        }) else { return }
        let value = Int64(roll(10))
        note("gems of \(room) = \(value)")
        world.setInt(gemsField, row: row, value)
        model.rooms[room]!.gems = value
    }

    func writeLogins() {
        guard let row = outcome("row", "row of the global entity", expected: nil, {
            try world.row(of: GameID.global, for: loginsField, type: .int)
        }) else { return }
        let value = Int64(roll(1000))
        note("logins = \(value)")
        world.setInt(loginsField, row: row, value)
        model.logins = value
    }

    func attach() {
        guard let id = anySession() else { return }
        let key = chance(8) ? pick(Self.badKeys)! : pick(Self.keys)!
        let expected: EngineError?
        if !Self.keys.contains(key) {
            expected = .badArgument
        } else if let session = model.sessions[id] {
            if session.player != nil {
                expected = .exists
            } else if let player = model.players[key] {
                expected = player.session != nil ? .exists : nil
            } else {
                expected = model.players.count >= Self.maxPlayers ? .limit : nil
            }
        } else {
            expected = .badSession
        }
        guard let player = outcome("attach", "attach \(text(key)) to \(id)", expected: expected, {
            try key.withUnsafeBytes { try world.attachPlayer(id, key: $0) }
        }) else { return }
        if let existing = model.players[key] {
            if existing.id != player { fail("attach returned \(player) for \(text(key)); the model has \(existing.id)") }
            model.players[key]!.session = id
        } else {
            if knownPlayers.contains(player) || deadPlayers.contains(player) {
                fail("attach created \(player), an id in use or used before")
            }
            model.players[key] = ModelPlayer(id: player, session: id)
        }
        model.sessions[id]!.player = key
    }

    func detach() {
        guard let id = anySession() else { return }
        let session = model.sessions[id]
        let expected: EngineError? = session == nil ? .badSession : session?.player == nil ? .notFound : nil
        guard outcome("detach", "detach the player of \(id)", expected: expected, { try world.detachPlayer(id) }) != nil
        else { return }
        let key = model.sessions[id]!.player!
        model.players[key]!.session = nil
        model.sessions[id]!.player = nil
    }

    /// The key of the live player `id`, per the model.
    func playerKey(of id: GameID) -> [UInt8]? { model.players.first { $0.value.id == id }?.key }

    func writePoints() {
        guard let player = anyPlayer() else { return }
        let key = playerKey(of: player)
        guard let row = outcome("row", "row of \(player) for points", expected: key == nil ? .badPlayer : nil, {
            try world.row(of: player, for: pointsField, type: .int)
        }), let key else { return }
        let value = Int64(roll(100))
        note("points of \(text(key)) = \(value)")
        world.setInt(pointsField, row: row, value)
        model.players[key]!.points = value
        counts.succeeded["points", default: 0] += 1
    }

    func writeTag() {
        guard let player = anyPlayer(), let value = pick(Self.tags) else { return }
        let key = playerKey(of: player)
        guard let row = outcome("row", "row of \(player) for tag", expected: key == nil ? .badPlayer : nil, {
            try world.row(of: player, for: tagField, type: .string)
        }), let key else { return }
        // The default ("rookie") is not indexed: any number of players hold it.
        let taken = value != Self.rookie && model.players.contains { $0.key != key && $0.value.tag == value }
        guard outcome("tag", "tag of \(text(key)) = \(text(value))", expected: taken ? .exists : nil, {
            try value.withUnsafeBytes { try world.setString(tagField, row: row, $0) }
        }) != nil else { return }
        model.players[key]!.tag = value
    }

    func identify() {
        guard let id = anySession() else { return }
        guard outcome("identify", "\(id) identified", expected: model.sessions[id] == nil ? .badSession : nil, {
            try world.markIdentified(id)
        }) != nil else { return }
        model.sessions[id]!.identified = true
    }

    func send() {
        guard let id = anySession() else { return }
        let line = nextLine()
        guard outcome("send", "send \(line) to \(id)", expected: model.sessions[id] == nil ? .badSession : nil, {
            try line.withBytes { try world.send(to: id, $0) }
        }) != nil else { return }
        model.sessions[id]!.lines.append(line)
    }

    func broadcast() {
        guard let room = anyRoom() else { return }
        let members = model.rooms[room]?.members ?? []
        let except: GameID? = chance(50) ? pick(members) : chance(30) ? pick(liveSessions) : nil
        let line = nextLine()
        guard outcome("broadcast", "broadcast \(line) to \(room) except \(except.map { "\($0)" } ?? "nobody")",
                      expected: model.rooms[room] == nil ? .badRoom : nil, {
            try line.withBytes { try world.broadcast(room, except: except, $0) }
        }) != nil else { return }
        for member in members where member != except { model.sessions[member]!.lines.append(line) }
    }

    /// A reply goes straight to the caller's peer (`LogicHost.reply`).
    func deliverToPeer() {
        guard let id = pick(liveSessions), let peer = peers[id] else { return }
        let line = nextLine()
        note("deliver \(line) to the peer of \(id)")
        line.withBytes { world.deliver($0, to: peer) }
        model.sessions[id]!.lines.append(line)
    }

    func forgetDuringACall() {
        guard let key = pick(Self.keys) else { return }
        outcome("forgetDuringACall", "forget \(text(key)) during a call", expected: .notNow, {
            try world.forgetPlayer(key: key)
        })
    }

    // MARK: - Operations outside calls

    func openSession() {
        guard model.sessions.count < Self.maxSessions else { return }
        let peer = RecordingPeer()
        let id = world.openSession(peer: peer)
        note("open \(id)")
        if model.sessions[id] != nil || deadSessions.contains(id) { fail("openSession returned \(id), an id in use or used before") }
        peers[id] = peer
        model.sessions[id] = ModelSession()
    }

    /// What `Engine.tearDown` does: `beginClosing`, the module's close
    /// hook (a journaled call of its own, sometimes), `closeSession`.
    func closeSession() {
        guard let id = anySession() else { return }
        let open = model.sessions[id].map { !$0.closing } ?? false
        note("close \(id)")
        let began = world.beginClosing(id)
        guard began == open else { return fail("beginClosing(\(id)) answered \(began); the model expected \(open)") }
        guard began else {
            if world.closeSession(id) != nil { fail("closeSession(\(id)) of a closed session returned a peer") }
            return
        }
        model.sessions[id]!.closing = true
        check("beginClosing")
        if chance(50) { call(closing: id) }
        guard failure == nil else { return }
        let peer = world.closeSession(id)
        if peer !== peers[id] { fail("closeSession(\(id)) returned another peer") }
        if let session = model.sessions.removeValue(forKey: id) {
            if let room = session.room { model.rooms[room]?.members.removeAll { $0 == id } }
            if let key = session.player { model.players[key]?.session = nil }
        }
        model.sweepEmptyRooms()
        peers[id] = nil
        counts.succeeded["close", default: 0] += 1
    }

    /// The connection writes out what was queued.
    func drain() {
        guard let id = pick(liveSessions), let peer = peers[id] else { return }
        note("drain the peer of \(id)")
        let lines = peer.take()
        if lines != model.sessions[id]!.lines { fail("\(id)'s peer had \(lines); the model \(model.sessions[id]!.lines)") }
        model.sessions[id]!.lines = []
    }

    func forget() {
        // Mostly a player nobody holds (the one FORGET can delete).
        let free = playerKeys.filter { model.players[$0]?.session == nil }
        guard let key = chance(70) && !free.isEmpty ? pick(free) : pick(Self.keys) else { return }
        let expected: EngineError? = model.players[key] == nil ? .notFound : model.players[key]?.session != nil ? .exists : nil
        guard outcome("forget", "forget \(text(key))", expected: expected, { try world.forgetPlayer(key: key) }) != nil
        else { return }
        model.players[key] = nil
    }

    static func storedValues(_ player: ModelPlayer) -> [StoredValue?] { [.int(player.points), .string(player.tag)] }

    /// The write-behind copies the dirty rows out: each record holds the
    /// values of now.
    func startFlush() {
        guard inFlight == nil else { return }
        note("takeDirty")
        let batch = world.takeDirty()
        inFlight = batch
        if world.dirtyCount != 0 || world.globalDirty || !world.deletedKeys.isEmpty {
            fail("takeDirty left \(world.dirtyCount) rows dirty (global: \(world.globalDirty), deletions: \(world.deletedKeys.count))")
        }
        for record in batch.players {
            guard let player = model.players[record.key] else {
                fail("the batch holds \(text(record.key)), which the model does not have")
                continue
            }
            if record.values != Self.storedValues(player) { fail("the batch holds \(record.values) for \(text(record.key)); the model \(player)") }
        }
        if let global = batch.global, global.values != [.int(model.logins)] {
            fail("the batch holds the global row \(global.values); the model logins=\(model.logins)")
        }
    }

    /// The worker is done with the batch: written, or refused (its rows
    /// are dirty again).
    func finishFlush(written: Bool) {
        guard let batch = inFlight else { return }
        inFlight = nil
        note(written ? "the batch is written" : "the batch failed: markUnwritten")
        if written { apply(batch) } else { world.markUnwritten(batch) }
    }

    func apply(_ batch: PersistBatch) {
        for key in batch.deleted { stored[key] = nil }
        for record in batch.players { stored[record.key] = record.values }
        if let global = batch.global { storedGlobal = global.values }
    }

    /// Everything written: the database then holds exactly the players in
    /// memory, with their values (no change lost to a rollback or a failed
    /// batch, no player undone or forgotten written back).
    func quiesce() {
        note("write everything")
        if let batch = inFlight {
            inFlight = nil
            apply(batch)
        }
        apply(world.takeDirty())
        if world.dirtyCount != 0 || world.globalDirty || !world.deletedKeys.isEmpty {
            fail("a full takeDirty left rows dirty")
        }
        var memory: [[UInt8]: [StoredValue?]] = [:]
        for (key, player) in model.players { memory[key] = Self.storedValues(player) }
        if stored != memory {
            let wrong = Set(stored.keys).union(memory.keys).filter { stored[$0] != memory[$0] }.map { text($0) }.sorted()
            fail("the database and memory differ for \(wrong)")
        }
        if (storedGlobal ?? [.int(Self.loginsDefault)]) != [.int(model.logins)] {
            fail("the database holds the global row \(String(describing: storedGlobal)); memory logins=\(model.logins)")
        }
    }

    // MARK: - The comparison

    /// Everything World shows, against the model.
    func check(_ after: String) {
        guard failure == nil else { return }
        var problems: [String] = []
        func bad(_ text: String) { problems.append(text) }

        if world.journaling != inCall { bad("journaling is \(world.journaling), the model is \(inCall ? "in" : "outside") a call") }

        // Sessions: fields, room, player, identified mark, queued output.
        if world.sessionCount != model.sessions.count { bad("\(world.sessionCount) sessions, the model \(model.sessions.count)") }
        if Set(world.sessionIDs()) != Set(model.sessions.keys) { bad("sessions \(world.sessionIDs()), the model \(liveSessions)") }
        for id in liveSessions {
            let session = model.sessions[id]!
            guard world.contains(session: id) else {
                bad("\(id) is gone")
                continue
            }
            if world.isOpen(session: id) == session.closing { bad("isOpen(\(id)) is \(world.isOpen(session: id))") }
            let room = result { try world.room(of: id) }
            if room != .success(session.room) { bad("room of \(id): \(room), the model \(String(describing: session.room))") }
            let player = result { try world.player(of: id) }
            let heldPlayer = session.player.flatMap { model.players[$0]?.id }
            if player != .success(heldPlayer) { bad("player of \(id): \(player), the model \(String(describing: heldPlayer))") }
            guard case .success(let row) = result({ try world.row(of: id, for: scoreField, type: .int) }) else {
                bad("no row for \(id)")
                continue
            }
            if world.int(scoreField, row: row) != session.score {
                bad("score of \(id): \(world.int(scoreField, row: row)), the model \(session.score)")
            }
            let name = world.withString(nameField, row: row) { Array($0) }
            if name != session.name { bad("name of \(id): \(text(name)), the model \(text(session.name))") }
            guard let peer = peers[id] else {
                bad("no peer for \(id)")
                continue
            }
            if peer.identified != session.identified { bad("\(id) identified: \(peer.identified), the model \(session.identified)") }
            if peer.lines != session.lines { bad("\(id)'s output: \(peer.lines), the model \(session.lines)") }
        }

        // Rooms: members in join order, names, the name index, fields.
        if world.roomCount != model.rooms.count { bad("\(world.roomCount) rooms, the model \(model.rooms.count)") }
        var roomIDs = Set<GameID>()
        world.forEachRoom { roomIDs.insert($0) }
        if roomIDs != Set(model.rooms.keys) { bad("rooms \(roomIDs.sorted { $0.raw < $1.raw }), the model \(liveRooms)") }
        for id in liveRooms {
            let room = model.rooms[id]!
            let members = result { try world.withMembers(of: id) { $0 } }
            if members != .success(room.members) { bad("members of \(id): \(members), the model \(room.members)") }
            let name = result { try world.withName(of: id) { String(decoding: $0, as: UTF8.self) } }
            if name != .success(room.name) { bad("name of \(id): \(name), the model \(room.name)") }
            guard case .success(let row) = result({ try world.row(of: id, for: gemsField, type: .int) }) else {
                bad("no row for \(id)")
                continue
            }
            if world.int(gemsField, row: row) != room.gems { bad("gems of \(id): \(world.int(gemsField, row: row)), the model \(room.gems)") }
        }
        for roomName in Self.roomNames {
            let holder = model.rooms.first { $0.value.name == roomName }?.key
            let found = roomName.withBytes { world.findRoom(named: $0) }
            if found != holder { bad("findRoom(\(roomName)): \(String(describing: found)), the model \(String(describing: holder))") }
        }

        // The unique indexes.
        for value in Self.sessionNames where !value.isEmpty {
            let holder = model.sessions.first { $0.value.name == value }?.key
            let expected: Result<GameID, EngineError> = if let holder { .success(holder) } else { .failure(.notFound) }
            let found = result { try value.withUnsafeBytes { try world.find(nameField, holding: $0) } }
            if found != expected { bad("find name \(text(value)): \(found), the model \(expected)") }
        }
        for value in Self.tags {
            let holder = value == Self.rookie ? nil : model.players.values.first { $0.tag == value }?.id
            let expected: Result<GameID, EngineError> = if let holder { .success(holder) } else { .failure(.notFound) }
            let found = result { try value.withUnsafeBytes { try world.find(tagField, holding: $0) } }
            if found != expected { bad("find tag \(text(value)): \(found), the model \(expected)") }
        }

        // Players: keys, attachment both ways, fields.
        if world.playerCount != model.players.count { bad("\(world.playerCount) players, the model \(model.players.count)") }
        var playerIDs = Set<GameID>()
        world.forEachPlayer { playerIDs.insert($0) }
        if playerIDs != Set(model.players.values.map(\.id)) { bad("players \(playerIDs), the model \(model.players.values.map(\.id))") }
        for key in Self.keys where world.player(withKey: key) != model.players[key]?.id {
            bad("player(withKey: \(text(key))): \(String(describing: world.player(withKey: key))), the model \(String(describing: model.players[key]?.id))")
        }
        for key in playerKeys {
            let player = model.players[key]!
            let storedKey = result { try world.withKey(of: player.id) { Array($0) } }
            if storedKey != .success(key) { bad("key of \(player.id): \(storedKey), the model \(text(key))") }
            guard case .success(let row) = result({ try world.row(of: player.id, for: pointsField, type: .int) }) else {
                bad("no row for \(player.id)")
                continue
            }
            if world.int(pointsField, row: row) != player.points {
                bad("points of \(text(key)): \(world.int(pointsField, row: row)), the model \(player.points)")
            }
            let tag = world.withString(tagField, row: row) { Array($0) }
            if tag != player.tag { bad("tag of \(text(key)): \(text(tag)), the model \(text(player.tag))") }
            if let session = player.session, model.sessions[session]?.player != key {
                bad("the model is inconsistent: \(text(key)) is held by \(session), which does not hold it")
            }
        }

        // The global entity.
        if result({ try world.row(of: GameID.global, for: loginsField, type: .int) }) != .success(0) { bad("the global row is not 0") }
        if world.int(loginsField, row: 0) != model.logins { bad("logins: \(world.int(loginsField, row: 0)), the model \(model.logins)") }

        // The write-behind's bookkeeping: every dirty row is counted,
        // listed for the next flush, and holds a live player.
        let dirtyRows = world.playerDirty.indices.filter { world.playerDirty[$0] }
        if dirtyRows.count != world.dirtyCount { bad("\(dirtyRows.count) rows flagged dirty, dirtyCount \(world.dirtyCount)") }
        let listed = Set(world.dirtySlots)
        for row in dirtyRows {
            if !listed.contains(row) { bad("dirty row \(row) is not listed for the next flush") }
            if world.playerID(atSlot: row) == nil { bad("dirty row \(row) holds no player") }
        }

        // Ids that died stay dead: refused, never another entity's.
        let liveSessionIDs = Set(model.sessions.keys)
        deadSessions += knownSessions.subtracting(liveSessionIDs).sorted { $0.raw < $1.raw }
        knownSessions = liveSessionIDs
        let liveRoomIDs = Set(model.rooms.keys)
        deadRooms += knownRooms.subtracting(liveRoomIDs).sorted { $0.raw < $1.raw }
        knownRooms = liveRoomIDs
        let livePlayerIDs = Set(model.players.values.map(\.id))
        deadPlayers += knownPlayers.subtracting(livePlayerIDs).sorted { $0.raw < $1.raw }
        knownPlayers = livePlayerIDs
        for id in deadSessions.suffix(6) {
            if world.contains(session: id) || world.isOpen(session: id) { bad("dead \(id) is alive") }
            let row = result { try world.row(of: id, for: scoreField, type: .int) }
            if row != .failure(.badSession) { bad("row of dead \(id): \(row)") }
        }
        for id in deadRooms.suffix(6) {
            let members = result { try world.withMembers(of: id) { $0 } }
            if members != .failure(.badRoom) { bad("members of dead \(id): \(members)") }
        }
        for id in deadPlayers.suffix(6) {
            let row = result { try world.row(of: id, for: pointsField, type: .int) }
            if row != .failure(.badPlayer) { bad("row of dead \(id): \(row)") }
        }

        if !problems.isEmpty { fail("after \(after): " + problems.prefix(6).joined(separator: "; ")) }
    }

    // MARK: - Helpers

    func roll(_ n: Int) -> Int { Int.random(in: 0..<n, using: &random) }
    func chance(_ percent: Int) -> Bool { roll(100) < percent }
    func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[roll(items.count)] }

    /// In a fixed order (a dictionary's is not: the seed must replay).
    var liveSessions: [GameID] { model.sessions.keys.sorted { $0.raw < $1.raw } }
    var liveRooms: [GameID] { model.rooms.keys.sorted { $0.raw < $1.raw } }
    var playerKeys: [[UInt8]] { model.players.keys.sorted { $0.lexicographicallyPrecedes($1) } }

    /// Mostly a live one, sometimes one that died (World must refuse it).
    func anySession() -> GameID? {
        if chance(8), let dead = pick(Array(deadSessions.suffix(8))) { return dead }
        return pick(liveSessions)
    }

    func anyRoom() -> GameID? {
        if chance(8), let dead = pick(Array(deadRooms.suffix(8))) { return dead }
        return pick(liveRooms)
    }

    func anyPlayer() -> GameID? {
        if chance(8), let dead = pick(Array(deadPlayers.suffix(8))) { return dead }
        return pick(playerKeys).flatMap { model.players[$0]?.id }
    }

    func nextLine() -> String {
        lineCounter += 1
        return ">L\(lineCounter)"
    }

    func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self).debugDescription }

    func note(_ text: String) {
        history.append("\(step): \(text)")
        if history.count > 200 { history.removeFirst(100) }
    }

    func fail(_ text: String) {
        if failure == nil { failure = text }
    }

    /// How a World call ended, as a value.
    func result<T>(_ body: () throws -> T) -> Result<T, EngineError> {
        do {
            return .success(try body())
        } catch {
            // Every World call throws EngineError; anything else is
            // reported as .notNow, which no comparison above expects.
            return .failure(error as? EngineError ?? .notNow)
        }
    }

    /// Runs a World call that the model expects to end with `expected`
    /// (nil: success); a mismatch fails the run. Returns the value when it
    /// succeeded.
    @discardableResult
    func outcome<T>(_ op: String, _ what: String, expected: EngineError?, _ body: () throws -> T) -> T? {
        note(what + (expected.map { " (expecting \($0))" } ?? ""))
        switch result(body) {
        case .success(let value):
            if let expected {
                fail("\(what) succeeded; the model expected \(expected)")
                return nil
            }
            if op != "row" { counts.succeeded[op, default: 0] += 1 }
            return value
        case .failure(let error):
            if error != expected {
                fail("\(what) threw \(error); the model expected \(expected.map { "\($0)" } ?? "success")")
            } else if op != "row" {
                counts.refused[op, default: 0] += 1
            }
            return nil
        }
    }
}
