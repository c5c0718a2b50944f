import GameABI

/// A live session: its room, its player and where it stands.
struct FakeSessionRecord {
    var room: game_id?
    var player: game_id?
    /// Teardown started: the close hook runs, a second close does nothing.
    var closing = false
    var identified = false
    /// Its connection dropped with a resume token; closed at this virtual
    /// time (ns) unless a RESUME takes it over.
    var awayUntil: UInt64?
}

/// A room: its name and its members in join order.
struct FakeRoomRecord {
    var name: [UInt8]
    var members: [game_id]
}

/// A durable player: its key, the session holding it, and its secret (in
/// plain text: it is a fake; the engine keeps a salted scrypt hash).
struct FakePlayerRecord {
    var key: [UInt8]
    var session: game_id?
    var secret: [UInt8] = []
}

/// All the game state the fake host owns, as one value: a call's `undo`,
/// a refused reload and a failed hook put back a copy taken before.
/// Output is state too (lines queued per session), so undo drops it.
struct FakeState {
    var sessions = FakeArena<FakeSessionRecord>(kind: UInt32(GAME_KIND_SESSION))
    var rooms = FakeArena<FakeRoomRecord>(kind: UInt32(GAME_KIND_ROOM))
    var roomsByName: [[UInt8]: game_id] = [:]
    var players = FakeArena<FakePlayerRecord>(kind: UInt32(GAME_KIND_PLAYER))
    var playersByKey: [[UInt8]: game_id] = [:]
    var store = FakeStore()
    var timers = FakeTimerQueue()
    /// Lines queued for a session's connection and not yet read (`events(of:)`).
    var outbox: [game_id: [String]] = [:]
    /// Events held for members of a batching room until its tick.
    var held: [game_id: [String]] = [:]
    /// Resume tokens: token -> session, and each session's current token.
    var tokens: [String: game_id] = [:]
    var tokenOf: [game_id: String] = [:]
    /// Rooms that may have been left empty (destroyed after the call).
    var roomsToCheck: [game_id] = []

    init() { store.ensureRows(UInt32(GAME_KIND_GLOBAL), 1) }

    // MARK: - Sessions

    func isOpen(_ session: game_id) -> Bool { sessions[session].map { !$0.closing } ?? false }

    func session(_ id: game_id) throws(FakeStatus) -> FakeSessionRecord {
        guard let record = sessions[id] else { throw FakeStatus(GAME_ERR_BAD_SESSION, "no live session \(hex(id))") }
        return record
    }

    mutating func openSession() -> game_id {
        let id = sessions.insert(FakeSessionRecord())
        store.ensureRows(UInt32(GAME_KIND_SESSION), sessions.capacity)
        outbox[id] = []
        return id
    }

    /// Removes a session after its close hook: it leaves its room, its
    /// player is detached, its timers end, its row resets, its token dies.
    mutating func removeSession(_ id: game_id) {
        try? leaveRoom(id)
        destroyRoomsLeftEmpty()
        guard let slot = sessions.slot(of: id) else { return }
        if let player = sessions[id]?.player { players[player]?.session = nil }
        timers.removeAll(owner: id)
        if let token = tokenOf.removeValue(forKey: id) { tokens[token] = nil }
        sessions.remove(id)
        store.resetRow(UInt32(GAME_KIND_SESSION), slot)
        outbox[id] = nil
        held[id] = nil
    }

    // MARK: - Output

    /// Queues a line for a session (held while its room batches, unless it
    /// is a reply, which also writes what was held before it).
    mutating func deliver(_ line: String, to session: game_id, isReply: Bool = false) {
        if isReply {
            releaseHeld(of: session)
            return
        }
        if let room = sessions[session]?.room, timers.batching.contains(room) {
            held[session, default: []].append(line)
        } else {
            outbox[session, default: []].append(line)
        }
    }

    mutating func releaseHeld(of session: game_id) {
        guard let lines = held.removeValue(forKey: session), !lines.isEmpty else { return }
        outbox[session, default: []] += lines
    }

    mutating func send(to session: game_id, _ line: String) throws(FakeStatus) {
        _ = try self.session(session)
        deliver(line, to: session)
    }

    mutating func broadcast(_ room: game_id, except: game_id, _ line: String) throws(FakeStatus) {
        guard let record = rooms[room] else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(room))") }
        for member in record.members where member != except { deliver(line, to: member) }
    }

    // MARK: - Rooms

    mutating func createRoom(_ name: [UInt8], limit: Int) throws(FakeStatus) -> game_id {
        if roomsByName[name] != nil { throw FakeStatus(GAME_ERR_EXISTS, "room name taken") }
        if rooms.count >= limit { throw FakeStatus(GAME_ERR_LIMIT, "more than \(limit) rooms (FakeLimits.maxRooms)") }
        let id = rooms.insert(FakeRoomRecord(name: name, members: []))
        roomsByName[name] = id
        store.ensureRows(UInt32(GAME_KIND_ROOM), rooms.capacity)
        roomsToCheck.append(id)
        return id
    }

    mutating func join(_ session: game_id, _ room: game_id, limit: Int) throws(FakeStatus) {
        let record = try self.session(session)
        guard let roomRecord = rooms[room] else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(room))") }
        if record.room != nil { throw FakeStatus(GAME_ERR_EXISTS, "the session is in a room already") }
        if roomRecord.members.count >= limit { throw FakeStatus(GAME_ERR_LIMIT, "room is full (FakeLimits.maxRoomMembers \(limit))") }
        rooms[room]?.members.append(session)
        sessions[session]?.room = room
    }

    mutating func leaveRoom(_ session: game_id) throws(FakeStatus) {
        guard let room = try self.session(session).room else { throw FakeStatus(GAME_ERR_NOT_FOUND, "the session is in no room") }
        releaseHeld(of: session)
        sessions[session]?.room = nil
        rooms[room]?.members.removeAll { $0 == session }
        if rooms[room]?.members.isEmpty == true { roomsToCheck.append(room) }
    }

    /// After each call: rooms left empty are destroyed with their fields,
    /// tick and timers; their names become free.
    mutating func destroyRoomsLeftEmpty() {
        while let id = roomsToCheck.popLast() {
            guard let slot = rooms.slot(of: id), let record = rooms[id], record.members.isEmpty else { continue }
            roomsByName[record.name] = nil
            timers.removeAll(owner: id)
            rooms.remove(id)
            store.resetRow(UInt32(GAME_KIND_ROOM), slot)
        }
    }

    // MARK: - Players

    mutating func attachPlayer(_ session: game_id, key: [UInt8], limit: Int) throws(FakeStatus) -> game_id {
        guard key.count >= 1, key.count <= Int(GAME_MAX_PLAYER_KEY), String(validating: key, as: UTF8.self) != nil,
            !key.contains(0)
        else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a player key is 1...\(GAME_MAX_PLAYER_KEY) bytes of UTF-8 without NUL") }
        if try self.session(session).player != nil { throw FakeStatus(GAME_ERR_EXISTS, "the session holds a player already (detach first)") }
        if let existing = playersByKey[key], let record = players[existing] {
            if record.session != nil { throw FakeStatus(GAME_ERR_EXISTS, "another session holds the player") }
            players[existing]?.session = session
            sessions[session]?.player = existing
            return existing
        }
        guard players.count < limit else { throw FakeStatus(GAME_ERR_LIMIT, "more than \(limit) players (FakeLimits.maxPlayers)") }
        let id = players.insert(FakePlayerRecord(key: key, session: session))
        playersByKey[key] = id
        store.ensureRows(UInt32(GAME_KIND_PLAYER), players.capacity)
        sessions[session]?.player = id
        return id
    }

    mutating func detachPlayer(_ session: game_id) throws(FakeStatus) {
        guard let player = try self.session(session).player else { throw FakeStatus(GAME_ERR_NOT_FOUND, "the session holds no player") }
        sessions[session]?.player = nil
        players[player]?.session = nil
    }

    // MARK: - Fields

    /// The row of `entity` for a field: the entity must be of the field's
    /// kind, the field of `type`, the entity alive (checked in the engine's
    /// order, which decides the error).
    func row(of entity: game_id, for b: FakeBinding, type: UInt32) throws(FakeStatus) -> Int {
        let kind = kindOf(entity)
        guard kind >= 1 && kind <= 4 else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "\(hex(entity)) is not an entity id") }
        guard kind == b.kind else { throw FakeStatus(GAME_ERR_BAD_FIELD, "the field belongs to another entity kind") }
        guard b.type == type else {
            throw FakeStatus(GAME_ERR_BAD_TYPE, type == UInt32(GAME_TYPE_INT) ? "int accessor on a string field" : "string accessor on an int field")
        }
        switch Int32(kind) {
        case GAME_KIND_GLOBAL:
            guard entity == GAME_GLOBAL_ID else { throw FakeStatus(GAME_ERR_BAD_SESSION, "not the global id") }
            return 0
        case GAME_KIND_SESSION:
            guard let row = sessions.slot(of: entity) else { throw FakeStatus(GAME_ERR_BAD_SESSION, "no live session \(hex(entity))") }
            return row
        case GAME_KIND_ROOM:
            guard let row = rooms.slot(of: entity) else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(entity))") }
            return row
        default:
            guard let row = players.slot(of: entity) else { throw FakeStatus(GAME_ERR_BAD_PLAYER, "no stored player \(hex(entity))") }
            return row
        }
    }

    /// The live entity in `row` of a kind's table.
    func liveID(kind: UInt32, row: Int) -> game_id? {
        switch Int32(kind) {
        case GAME_KIND_GLOBAL: GAME_GLOBAL_ID
        case GAME_KIND_SESSION: sessions.id(ofSlot: row)
        case GAME_KIND_ROOM: rooms.id(ofSlot: row)
        default: players.id(ofSlot: row)
        }
    }

    /// Whether `owner` may own a timer now.
    func isLiveOwner(_ owner: game_id) -> Bool {
        switch Int32(kindOf(owner)) {
        case GAME_KIND_GLOBAL: owner == GAME_GLOBAL_ID
        case GAME_KIND_SESSION: isOpen(owner)
        case GAME_KIND_ROOM: rooms.contains(owner)
        case GAME_KIND_PLAYER: players.contains(owner)
        default: false
        }
    }
}

/// An id as the engine's logs print it.
func hex(_ id: game_id) -> String { "0x" + String(id, radix: 16) }
