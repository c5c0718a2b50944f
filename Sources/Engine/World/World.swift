import Glibc
import GameABI
import Protocol

/// Where a session's output goes: a player's connection in the server, a
/// recorder in tests. World never sees sockets.
protocol SessionPeer: AnyObject {
    /// Queues one line (without terminator) for the session.
    func deliver(_ line: UnsafeRawBufferPointer)
    /// Whether the logic said who this is (login): it changes the deadlines.
    var isIdentified: Bool { get }
    func setIdentified(_ identified: Bool)
    /// World removed the session (its teardown is complete).
    func sessionEnded()
    /// How much output is queued now (-1: none can be taken back).
    func outputMark() -> Int
    /// Drops the output queued since `outputMark` returned `mark`.
    func rollBackOutput(to mark: Int)
    /// World's bookkeeping: the journal epoch this peer's mark was taken in.
    var journalEpoch: UInt64 { get set }
    /// In a batching room (ABI 1.3): events wait for the room's tick;
    /// a reply still writes at once, with what waits before it.
    func setHeld(_ held: Bool)
    /// The room ticked: what was held is written this turn.
    func releaseHeld()
}

extension SessionPeer {
    func setHeld(_ held: Bool) {}
    func releaseHeld() {}
}

/// Why the engine refused what a module asked of it. The state table maps
/// these to `GAME_ERR_*` codes, and only there.
enum EngineError: Error, Equatable, Sendable {
    case badSession, badRoom, badPlayer, badField, badType, badArgument
    case notFound, exists, limit
    /// Not allowed now: output during a migration, a second reply, ...
    case notNow
    /// A player with a secret attached without one (ABI 1.4).
    case badSecret
}

/// Every piece of game state the engine owns, and the only code that
/// changes it: sessions, rooms and their names, durable players, and the
/// state store.
///
/// Every mutation of game state is a method here (field writes, the unique
/// index, room create/join/leave/destroy, session open/close), so that there
/// is one place to journal a change for undo, to mark it dirty for the
/// database, and to serialise it for an upgrade. World knows nothing of
/// sockets, modules or libuv: in-process tests drive it directly.
///
/// Single-threaded: it lives on the loop thread.
final class World {
    /// A live session: where its output goes and which room it is in.
    struct SessionRecord {
        let peer: any SessionPeer
        var room: GameID?
        /// The durable player the logic attached (ABI 1.2), if any.
        var player: GameID?
        /// Set as teardown starts: the module's hook then sees the session
        /// still alive, and a close asked for from the hook is not run twice.
        var closing = false
    }

    /// A room: its name (for `room_find`) and its members in join order.
    struct Room: Equatable {
        var name: [UInt8]
        var members: [GameID]
    }

    /// A durable player: its key and the session holding it, if any.
    /// Every stored player is in memory (loaded at start, like redis's
    /// dataset): attaching one is a dictionary lookup, and a reload's
    /// migration reaches offline players like live ones (docs/PERSISTENCE.md).
    struct PlayerRecord: Equatable {
        let key: [UInt8]
        var session: GameID?
        /// With shared storage, the epoch of this server's lease on the
        /// player's row (World+Leases.swift); 0 without one.
        var leaseEpoch: Int64 = 0
    }

    /// The limits World enforces on what modules ask for.
    struct Limits {
        var maxRooms: Int
        var maxRoomMembers: Int
        var maxPlayers: Int = 1_000_000
        var maxTimers: Int = 1_000_000
        var maxTimersPerOwner: Int = 10_000
    }

    let limits: Limits
    // `@exclusivity(unchecked)`: read or written on every request; Swift's
    // run-time access tracking on them cost several percent of the CPU under
    // pipelined load (BENCHMARKS.md). World is single-threaded and never
    // mutates one of them while iterating it (teardowns collect ids first),
    // which is what the checks guard against.
    // `private(set)`: an engine upgrade reads them whole (World+Handoff.swift);
    // only this file changes them.
    @exclusivity(unchecked) private(set) var sessions = GenerationalArena<SessionRecord>(kind: .session)
    @exclusivity(unchecked) private(set) var rooms = GenerationalArena<Room>(kind: .room)
    private var roomsByName: [[UInt8]: GameID] = [:]
    @exclusivity(unchecked) private(set) var store = StateStore()
    @exclusivity(unchecked) private(set) var players = GenerationalArena<PlayerRecord>(kind: .player)
    private var playersByKey: [[UInt8]: GameID] = [:]
    /// Write-behind bookkeeping: which player rows changed since they were
    /// last handed to the database (a flag per slot, and the slots in the
    /// order they became dirty), and whether the global row did.
    @exclusivity(unchecked) private(set) var playerDirty: [Bool] = []
    @exclusivity(unchecked) private(set) var dirtySlots: [Int] = []
    private(set) var dirtyCount = 0
    private(set) var globalDirty = false
    /// Whether anything writes dirty rows out (off with `--database
    /// :memory:`: nothing would ever clear them).
    var tracksDirty = true
    /// Players live in a shared database (PostgreSQL): each is loaded at
    /// LOGIN under a lease and given back when it leaves (World+Leases.swift).
    var sharesPlayers = false
    var leases = PlayerLeases()
    /// Keys of players forgotten (`FORGET`) and not yet deleted from the
    /// database.
    private(set) var deletedKeys: [[UInt8]] = []
    /// Rooms that may have been left empty since the last sweep.
    private var roomsToCheck: [GameID] = []

    /// What player writes are noted for while a reload migrates the stored
    /// players in slices between messages (LogicHost/StagedMigration.swift).
    enum StagingWrites {
        case off
        /// The game is served: rows it changes are noted, to be migrated
        /// again from their live values at the commit.
        case watching
        /// A slice runs on the staged store: the rows it writes are noted,
        /// not dirty (the live world has not changed), and marked dirty at
        /// the commit, when their values become the world's.
        case slice
    }
    private(set) var staging = StagingWrites.off
    private var stagingTouched: [Int] = []
    private var stagingWritten: [Int] = []

    /// A change made during the module call in progress, holding what undoes it.
    /// Internal, not private: World+Time.swift journals timers here too.
    enum Change {
        case int(FieldBinding, row: Int, old: Int64)
        case string(FieldBinding, row: Int, old: [UInt8])
        case roomCreated(GameID)
        case joined(session: GameID, room: GameID)
        case left(session: GameID, room: GameID, position: Int)
        case output(any SessionPeer, mark: Int)
        case identified(any SessionPeer, was: Bool)
        case attached(session: GameID, player: GameID, created: Bool)
        case detached(session: GameID, player: GameID)
        /// A timer or tick set in the call (a slot of `timers`).
        case timerSet(Int32)
        /// A timer or tick cancelled in the call, detached until it commits.
        case timerCancelled(Int32)
        case batching(room: GameID, was: Bool)
    }
    /// The undo journal of the module call in progress (see `beginJournal`).
    /// Its storage is kept between calls: no allocation per message.
    @exclusivity(unchecked) var journal: [Change] = []
    @exclusivity(unchecked) private(set) var journaling = false
    private var epoch: UInt64 = 0
    private var roomsToCheckMark = 0
    /// Pending timers and room ticks (World+Time.swift): game state that
    /// ends with its owner and is undone with the call that set it.
    @exclusivity(unchecked) var timers: TimerTable

    init(limits: Limits) {
        self.limits = limits
        timers = TimerTable(maxTimers: limits.maxTimers, maxPerOwner: limits.maxTimersPerOwner)
        store.ensureRows(.global, 1)
        journal.reserveCapacity(64)
    }

    // MARK: - Sessions

    var sessionCount: Int { sessions.count }
    var roomCount: Int { rooms.count }

    /// A new session whose output goes to `peer`; its fields hold defaults.
    func openSession(peer: any SessionPeer) -> GameID {
        let id = sessions.insert(SessionRecord(peer: peer))
        store.ensureRows(.session, sessions.capacity)
        return id
    }

    func contains(session id: GameID) -> Bool { sessions.contains(id) }

    /// Whether the session is alive and not yet being torn down.
    func isOpen(session id: GameID) -> Bool {
        guard let slot = sessions.slotIndex(of: id) else { return false }
        return !sessions[slot: slot].closing
    }

    /// Where the session's output goes now.
    func peer(of id: GameID) -> (any SessionPeer)? {
        guard let slot = sessions.slotIndex(of: id) else { return nil }
        return sessions[slot: slot].peer
    }

    /// Sends the session's output somewhere else from now on (its
    /// connection dropped, or another one resumed it), outside any module
    /// call. A session in a batching room keeps being held on its new peer.
    func movePeer(of id: GameID, to peer: any SessionPeer) {
        precondition(!journaling, "a session's peer changes between module calls")
        guard let slot = sessions.slotIndex(of: id) else { return }
        let record = sessions[slot: slot]
        sessions[slot: slot] = SessionRecord(peer: peer, room: record.room, player: record.player, closing: record.closing)
        if let room = record.room, timers.isBatching(room) { peer.setHeld(true) }
    }

    /// Marks a live session as closing; false when it is gone or already
    /// closing (teardown then has nothing to do).
    func beginClosing(_ id: GameID) -> Bool {
        guard let slot = sessions.slotIndex(of: id), !sessions[slot: slot].closing else { return false }
        sessions[slot: slot].closing = true
        return true
    }

    /// Removes a session: it leaves its room (which is destroyed if left
    /// empty) and its row goes back to the defaults. Returns its peer.
    @discardableResult
    func closeSession(_ id: GameID) -> (any SessionPeer)? {
        _ = try? leaveRoom(id)
        destroyRoomsLeftEmpty()
        guard let slot = sessions.slotIndex(of: id) else { return nil }
        if let player = sessions[slot: slot].player, let playerSlot = players.slotIndex(of: player) {
            players[slot: playerSlot].session = nil
            // A player online past the TTL has a full period from leaving.
            if tracksLastSeen { setLastSeen(atSlot: playerSlot, wallMilliseconds()) }
            if sharesPlayers { leases.queueRelease(players[slot: playerSlot].key) }
        }
        timers.removeAll(owner: id)
        let record = sessions.remove(id)
        store.resetRow(.session, slot)
        return record?.peer
    }

    /// Ids of every live session, in slot order (a copy: callers may close
    /// sessions while going through it).
    func sessionIDs() -> [GameID] {
        var ids: [GameID] = []
        ids.reserveCapacity(sessions.count)
        sessions.forEachID { ids.append($0) }
        return ids
    }

    func markIdentified(_ session: GameID) throws(EngineError) {
        guard let slot = sessions.slotIndex(of: session) else { throw .badSession }
        let peer = sessions[slot: slot].peer
        if journaling { journal.append(.identified(peer, was: peer.isIdentified)) }
        peer.setIdentified(true)
    }

    /// Queues a line for one session.
    func send(to session: GameID, _ line: UnsafeRawBufferPointer) throws(EngineError) {
        guard let slot = sessions.slotIndex(of: session) else { throw .badSession }
        deliver(line, to: sessions[slot: slot].peer)
    }

    /// Every line a module call produces goes out through here, so that the
    /// journal can take it back: before a peer's first line in a call, its
    /// output mark is noted.
    @inline(__always)
    func deliver(_ line: UnsafeRawBufferPointer, to peer: any SessionPeer) {
        if journaling && peer.journalEpoch != epoch {
            peer.journalEpoch = epoch
            journal.append(.output(peer, mark: peer.outputMark()))
        }
        peer.deliver(line)
    }

    // MARK: - Rooms

    func createRoom(named name: UnsafeRawBufferPointer) throws(EngineError) -> GameID {
        let key = [UInt8](name)
        if roomsByName[key] != nil { throw .exists }
        if rooms.count >= limits.maxRooms { throw .limit }
        let id = rooms.insert(Room(name: key, members: []))
        roomsByName[key] = id
        store.ensureRows(.room, rooms.capacity)
        if journaling { journal.append(.roomCreated(id)) }
        // Until someone joins, the room is empty: collected at the next sweep.
        roomsToCheck.append(id)
        return id
    }

    func findRoom(named name: UnsafeRawBufferPointer) -> GameID? {
        roomsByName[[UInt8](name)]
    }

    func join(_ session: GameID, _ room: GameID) throws(EngineError) {
        guard let sessionSlot = sessions.slotIndex(of: session) else { throw .badSession }
        guard let roomSlot = rooms.slotIndex(of: room) else { throw .badRoom }
        if sessions[slot: sessionSlot].room != nil { throw .exists }
        if rooms[slot: roomSlot].members.count >= limits.maxRoomMembers { throw .limit }
        rooms[slot: roomSlot].members.append(session)
        sessions[slot: sessionSlot].room = room
        if timers.isBatching(room) { sessions[slot: sessionSlot].peer.setHeld(true) }
        if journaling { journal.append(.joined(session: session, room: room)) }
    }

    /// Takes a session out of its room; `.notFound` when it is in none.
    func leaveRoom(_ session: GameID) throws(EngineError) {
        guard let sessionSlot = sessions.slotIndex(of: session) else { throw .badSession }
        guard let room = sessions[slot: sessionSlot].room else { throw .notFound }
        sessions[slot: sessionSlot].room = nil
        if timers.isBatching(room) { sessions[slot: sessionSlot].peer.setHeld(false) }
        if let roomSlot = rooms.slotIndex(of: room),
            let position = rooms[slot: roomSlot].members.firstIndex(of: session)
        {
            rooms[slot: roomSlot].members.remove(at: position)
            if rooms[slot: roomSlot].members.isEmpty { roomsToCheck.append(room) }
            if journaling { journal.append(.left(session: session, room: room, position: position)) }
        }
    }

    /// The session's room, or nil when it is in none.
    func room(of session: GameID) throws(EngineError) -> GameID? {
        guard let slot = sessions.slotIndex(of: session) else { throw .badSession }
        return sessions[slot: slot].room
    }

    /// Lends the room's members, in join order, to `body`.
    func withMembers<R>(of room: GameID, _ body: ([GameID]) -> R) throws(EngineError) -> R {
        guard let slot = rooms.slotIndex(of: room) else { throw .badRoom }
        return body(rooms[slot: slot].members)
    }

    /// Lends the room's name to `body`.
    func withName<R>(of room: GameID, _ body: (UnsafeRawBufferPointer) -> R) throws(EngineError) -> R {
        guard let slot = rooms.slotIndex(of: room) else { throw .badRoom }
        return rooms[slot: slot].name.withUnsafeBytes(body)
    }

    /// Every live room's id, in slot order.
    func forEachRoom(_ body: (GameID) -> Void) { rooms.forEachID(body) }

    /// Destroys the rooms left empty since the last sweep; their names
    /// become free and their fields reset. Run after each module call.
    func destroyRoomsLeftEmpty() {
        while let id = roomsToCheck.popLast() {
            guard let slot = rooms.slotIndex(of: id), rooms[slot: slot].members.isEmpty else { continue }
            roomsByName[rooms[slot: slot].name] = nil
            timers.removeAll(owner: id)
            rooms.remove(id)
            store.resetRow(.room, slot)
        }
    }

    /// Queues `line` for every member of `room` but `except`.
    func broadcast(_ room: GameID, except: GameID?, _ line: UnsafeRawBufferPointer) throws(EngineError) {
        guard let slot = rooms.slotIndex(of: room) else { throw .badRoom }
        for member in rooms[slot: slot].members where member != except {
            if let memberSlot = sessions.slotIndex(of: member) {
                deliver(line, to: sessions[slot: memberSlot].peer)
            }
        }
    }

    // MARK: - Players (ABI 1.2)

    var playerCount: Int { players.count }

    /// Binds the player stored under `key` to `session`, creating it with
    /// the declared defaults when there is none: `.exists` when another live
    /// session holds it or this one already holds a player.
    func attachPlayer(_ session: GameID, key: UnsafeRawBufferPointer) throws(EngineError) -> GameID {
        // UTF-8 without NUL: a key is TEXT in the database, where a NUL
        // would end it early (two keys would then name one row).
        guard key.count >= 1, key.count <= Int(GAME_MAX_PLAYER_KEY), Bytes.isValidUTF8(key), !key.contains(0) else {
            throw .badArgument
        }
        guard let sessionSlot = sessions.slotIndex(of: session) else { throw .badSession }
        if sessions[slot: sessionSlot].player != nil { throw .exists }
        let keyBytes = [UInt8](key)
        let player: GameID
        var created = false
        if let existing = playersByKey[keyBytes], let slot = players.slotIndex(of: existing) {
            if players[slot: slot].session != nil { throw .exists }
            players[slot: slot].session = session
            player = existing
        } else {
            guard players.count < limits.maxPlayers else { throw .limit }
            player = insertPlayer(key: keyBytes)
            players[slot: Int(player.index)].session = session
            created = true
        }
        sessions[slot: sessionSlot].player = player
        if journaling { journal.append(.attached(session: session, player: player, created: created)) }
        if tracksLastSeen { setLastSeen(atSlot: Int(player.index), wallMilliseconds()) }
        return player
    }

    /// The player attached to `session`, or nil.
    func player(of session: GameID) throws(EngineError) -> GameID? {
        guard let slot = sessions.slotIndex(of: session) else { throw .badSession }
        return sessions[slot: slot].player
    }

    /// Unbinds the session's player; the record stays.
    func detachPlayer(_ session: GameID) throws(EngineError) {
        guard let slot = sessions.slotIndex(of: session) else { throw .badSession }
        guard let player = sessions[slot: slot].player else { throw .notFound }
        sessions[slot: slot].player = nil
        if let playerSlot = players.slotIndex(of: player) {
            players[slot: playerSlot].session = nil
            if tracksLastSeen { setLastSeen(atSlot: playerSlot, wallMilliseconds()) }
            if sharesPlayers { leases.queueRelease(players[slot: playerSlot].key) }
        }
        if journaling { journal.append(.detached(session: session, player: player)) }
    }

    /// Lends the player's key to `body`.
    func withKey<R>(of player: GameID, _ body: (UnsafeRawBufferPointer) -> R) throws(EngineError) -> R {
        guard let slot = players.slotIndex(of: player) else { throw .badPlayer }
        return players[slot: slot].key.withUnsafeBytes(body)
    }

    /// The id of the player stored under `key`, attached or not.
    func player(withKey key: [UInt8]) -> GameID? { playersByKey[key] }

    /// Ids of every stored player (a reload migrates them all, online or not).
    func forEachPlayer(_ body: (GameID) -> Void) { players.forEachID(body) }

    /// Slots in the player arena (live or free): a staged migration goes
    /// through them a few at a time.
    var playerSlots: Int { players.capacity }

    /// The player in `slot`, if it is live.
    func playerID(atSlot slot: Int) -> GameID? { slot < players.capacity ? players.liveID(ofSlot: slot) : nil }

    // MARK: - Secrets (ABI 1.4, Auth/)

    /// The engine's own column in the player table: a player's secret as a
    /// salted hash (Auth/SecretHash.swift), empty for a guest. Its name
    /// holds a dot, which no module's field name may ([a-z0-9_]), so no
    /// module binds, reads or writes it; otherwise it is a field like the
    /// hidden ones: stored in the player's row, handed over by an upgrade,
    /// kept across reloads, deleted with the player.
    static let secretField = FieldSpec(kind: .player, name: "auth.secret", type: .string, unique: false,
                                       defaultInt: 0, defaultString: [])

    /// The engine's column of when a player last logged in (wall-clock
    /// ms; 0: not since this column exists), for `--player-ttl-days`. A
    /// dot in its name for the same reason as `secretField`.
    static let lastSeenField = FieldSpec(kind: .player, name: "engine.last_seen", type: .int, unique: false,
                                         defaultInt: 0, defaultString: [])

    /// One of the engine's own columns, made when first needed (found by
    /// name and type each time: a lookup per login is cheap and never
    /// stale across a reload's new store).
    private func engineColumn(_ spec: FieldSpec) -> FieldBinding {
        if let found = existingEngineColumn(spec) { return found }
        let column = store.addStoredColumn(spec)
        return FieldBinding(kind: spec.kind, type: spec.type, column: column)
    }

    private func existingEngineColumn(_ spec: FieldSpec) -> FieldBinding? {
        var name = spec.name
        return name.withUTF8 { store.binding(kind: spec.kind, name: UnsafeRawBufferPointer($0), type: spec.type) }
    }

    /// The stored hash of a player's secret; empty for a guest.
    func storedSecret(of player: GameID) -> [UInt8] {
        guard let slot = players.slotIndex(of: player), let binding = existingEngineColumn(Self.secretField) else {
            return []
        }
        return store.withString(binding, row: slot) { [UInt8]($0) }
    }

    /// When the player in `slot` last logged in (wall-clock ms), 0 if not
    /// known; nil for a free slot.
    func lastSeen(atSlot slot: Int) -> Int64? {
        guard slot < players.capacity, players.liveID(ofSlot: slot) != nil else { return nil }
        guard let binding = existingEngineColumn(Self.lastSeenField) else { return 0 }
        return store.int(binding, row: slot)
    }

    /// Notes a login (or a first sight) of the player in `slot`: a field
    /// write like any other (journaled inside a call, written at the next
    /// flush).
    func setLastSeen(atSlot slot: Int, _ wallMilliseconds: Int64) {
        setInt(engineColumn(Self.lastSeenField), row: slot, wallMilliseconds)
    }

    /// Whether a live session holds the player in `slot`.
    func isAttached(slot: Int) -> Bool { players[slot: slot].session != nil }

    /// The key of the player in `slot`.
    func key(atSlot slot: Int) -> [UInt8] { players[slot: slot].key }

    /// Sets a player's stored hash: journaled (a login whose
    /// `hotswap_auth` faults leaves no secret behind) and written at the
    /// next flush.
    func setStoredSecret(of player: GameID, _ encoded: [UInt8]) throws(EngineError) {
        guard let slot = players.slotIndex(of: player) else { throw .badPlayer }
        let binding = engineColumn(Self.secretField)
        let outcome = encoded.withUnsafeBytes { bytes in Result { () throws(EngineError) in try setString(binding, row: slot, bytes) } }
        try outcome.get()
    }

    /// The peer of a live session that is not closing (a login's answer,
    /// which arrives later, finds its connection through it).
    func livePeer(of session: GameID) -> (any SessionPeer)? {
        guard let slot = sessions.slotIndex(of: session), !sessions[slot: slot].closing else { return nil }
        return sessions[slot: slot].peer
    }

    /// `--player-ttl-days`: logins note when (an extra field write each).
    var tracksLastSeen = false
    /// The wall clock in milliseconds (replaced by tests).
    var wallMilliseconds: () -> Int64 = {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    /// Removes a stored player for good (an operator's `FORGET`, say for an
    /// erasure request): the record leaves memory now and its row the
    /// database at the next flush. `.notFound` when no player has the key,
    /// `.exists` while a live session holds it. Outside any module call.
    func forgetPlayer(key: [UInt8]) throws(EngineError) {
        guard !journaling else { throw .notNow }
        guard let id = playersByKey[key], let slot = players.slotIndex(of: id) else { throw .notFound }
        guard players[slot: slot].session == nil else { throw .exists }
        timers.removeAll(owner: id)
        // The row's DELETE ends its lease too.
        players[slot: slot].leaseEpoch = 0
        removePlayer(id, slot: slot)
        if tracksDirty { deletedKeys.append(key) }
    }

    /// A new record with the declared defaults, dirty so that it is written.
    private func insertPlayer(key: [UInt8]) -> GameID {
        let id = players.insert(PlayerRecord(key: key, session: nil, leaseEpoch: sharesPlayers ? leases.takePending(key) : 0))
        playersByKey[key] = id
        store.ensureRows(.player, players.capacity)
        if playerDirty.count < players.capacity {
            playerDirty.append(contentsOf: repeatElement(false, count: players.capacity - playerDirty.count))
        }
        markDirty(.player, row: Int(id.index))
        if staging == .watching { stagingTouched.append(Int(id.index)) }
        return id
    }

    /// Undoes `insertPlayer` (the call that created it faulted): the
    /// record never existed, so nothing is written.
    func removePlayer(_ id: GameID, slot: Int) {
        if let record = players.remove(id) {
            playersByKey[record.key] = nil
            // Its row is still this server's: given back at a flush.
            if record.leaseEpoch > 0 {
                leases.keepPending(record.key, epoch: record.leaseEpoch)
                if !leases.inLogin(record.key) { leases.queueRelease(record.key) }
            }
        }
        store.resetRow(.player, slot)
        if staging == .watching { stagingTouched.append(slot) }
        if playerDirty[slot] {
            playerDirty[slot] = false
            dirtyCount -= 1
        }
    }

    /// A write to a player or global field: dirty, or noted for a staged
    /// migration (one comparison on the usual path).
    @inline(__always)
    private func persistentWrite(_ kind: EntityKind, row: Int) {
        if staging != .off {
            if staging == .slice {
                if kind == .player { stagingWritten.append(row) }
                return
            }
            if kind == .player { stagingTouched.append(row) }
        }
        markDirty(kind, row: row)
    }

    @inline(__always)
    private func markDirty(_ kind: EntityKind, row: Int) {
        guard tracksDirty else { return }
        if kind == .global {
            globalDirty = true
        } else if !playerDirty[row] {
            playerDirty[row] = true
            dirtySlots.append(row)
            dirtyCount += 1
        }
    }

    // MARK: - Leases on shared players (Persistence/SharedPlayerStorage.swift)

    /// Whether this server may serve `key` now: World holds its record
    /// under a lease, or a lease was claimed for a new player; and no
    /// release of it is in a flush.
    func holdsLease(_ key: [UInt8]) -> Bool {
        if leases.isReleasing(key) { return false }
        if let id = playersByKey[key], let slot = players.slotIndex(of: id) { return players[slot: slot].leaseEpoch > 0 }
        return leases.isPending(key)
    }

    /// A claim's result, on the loop: the player's record as the database
    /// holds it (nil: never written; its record is made at the attach), laid
    /// out in the player columns the claim was made with (columns are only
    /// ever appended, so their indexes still hold). A record World still
    /// has (a copy whose lease it lost) takes the database's values.
    func loadClaimed(_ key: [UInt8], epoch: Int64, record: StoredRecord?) {
        leases.counters.claimed += 1
        guard let record else {
            if let id = playersByKey[key], let slot = players.slotIndex(of: id) {
                players[slot: slot].leaseEpoch = epoch
            } else {
                leases.keepPending(key, epoch: epoch)
            }
            return
        }
        let id: GameID
        if let existing = playersByKey[key], players.slotIndex(of: existing) != nil {
            id = existing
        } else {
            id = players.insert(PlayerRecord(key: key, session: nil))
            playersByKey[key] = id
            store.ensureRows(.player, players.capacity)
            if playerDirty.count < players.capacity {
                playerDirty.append(contentsOf: repeatElement(false, count: players.capacity - playerDirty.count))
            }
        }
        let slot = Int(id.index)
        players[slot: slot].leaseEpoch = epoch
        store.resetRow(.player, slot)
        let columns = store.columnSpecs(.player).count
        for (index, value) in record.values.enumerated() where index < columns {
            if let value { store.setStoredValue(.player, column: index, row: slot, value) }
        }
    }

    /// A newer claim of our own on a lease World holds (two logins of one
    /// name at once): its epoch is the row's now; the record stays.
    func raiseLeaseEpoch(_ key: [UInt8], to epoch: Int64) {
        if let id = playersByKey[key], let slot = players.slotIndex(of: id) {
            players[slot: slot].leaseEpoch = max(players[slot: slot].leaseEpoch, epoch)
        } else {
            leases.keepPending(key, epoch: max(leases.takePending(key), epoch))
        }
    }

    /// A login of `key` began (AuthDesk): its lease is not given back
    /// until the login ends.
    func loginStarted(_ key: [UInt8]) { leases.loginStarted(key) }

    /// A login of `key` ended, answered or abandoned: a lease nothing
    /// attached is queued to go back.
    func loginEnded(_ key: [UInt8]) {
        guard leases.loginEnded(key) else { return }
        if let id = playersByKey[key], let slot = players.slotIndex(of: id) {
            if players[slot: slot].session == nil && players[slot: slot].leaseEpoch > 0 { leases.queueRelease(key) }
        } else if leases.isPending(key) {
            leases.queueRelease(key)
        }
    }

    /// The leases a flush gives back: players that left and are still
    /// detached (their last changes go in the same batch), and pending
    /// leases no login uses. Each is `releasing` until the flush is over.
    func takeReleases() -> [LeaseRelease] {
        var released: [LeaseRelease] = []
        for orphan in leases.takeOrphans() where !leases.isReleasing(orphan.key) {
            leases.markReleasing(orphan)
            released.append(orphan)
        }
        var seen = Set<[UInt8]>()
        for key in leases.drainQueue() where seen.insert(key).inserted {
            guard !leases.inLogin(key), !leases.isReleasing(key) else { continue }
            let lease: LeaseRelease
            if let id = playersByKey[key], let slot = players.slotIndex(of: id) {
                guard players[slot: slot].session == nil, players[slot: slot].leaseEpoch > 0 else { continue }
                lease = LeaseRelease(key: key, epoch: players[slot: slot].leaseEpoch)
            } else if leases.isPending(key) {
                lease = LeaseRelease(key: key, epoch: leases.takePending(key))
            } else {
                continue
            }
            leases.markReleasing(lease)
            released.append(lease)
        }
        return released
    }

    /// Releases that were not written (a failed or abandoned flush): to be
    /// given back at a later one.
    func unrelease(_ released: [LeaseRelease]) {
        leases.retry(released) { playersByKey[$0] != nil }
    }

    /// Every lease this server holds (records and pending), for a flush
    /// to renew and check.
    func heldLeases() -> [LeaseRelease] {
        var held = leases.pending.map { LeaseRelease(key: $0.key, epoch: $0.value) }
        players.forEachID { id in
            guard let slot = players.slotIndex(of: id), players[slot: slot].leaseEpoch > 0 else { return }
            held.append(LeaseRelease(key: players[slot: slot].key, epoch: players[slot: slot].leaseEpoch))
        }
        return held
    }

    /// After a flush wrote `released`: a player still detached, under the
    /// same lease and with nothing unwritten, leaves memory (its next LOGIN
    /// reads it again, here or on another server). Logins wait while a
    /// release is in a flush, so none attached it meanwhile; one changed
    /// since it was copied (a timer's write) is written and given back at
    /// the next flush, under the same epoch (a write takes a row nobody
    /// claimed since back).
    func leasesReleased(_ released: [LeaseRelease]) {
        leases.counters.released += released.count
        for lease in released {
            leases.releaseSettled(lease.key)
            guard let id = playersByKey[lease.key], let slot = players.slotIndex(of: id),
                players[slot: slot].leaseEpoch == lease.epoch
            else { continue }
            if players[slot: slot].session != nil || playerDirty[slot] {
                markDirty(.player, row: slot)
                leases.queueRelease(lease.key)
                continue
            }
            players[slot: slot].leaseEpoch = 0
            timers.removeAll(owner: id)
            removePlayer(id, slot: slot)
        }
    }

    /// Players another server took (a fenced write, or the held-lease
    /// check): World lets go of them unwritten; returns the sessions that
    /// held them, for the engine to close with the reason.
    func leasesLost(_ keys: [[UInt8]]) -> [GameID] {
        var sessions: [GameID] = []
        for key in keys {
            _ = leases.takePending(key)
            guard let id = playersByKey[key], let slot = players.slotIndex(of: id) else { continue }
            leases.counters.lost += 1
            if let session = players[slot: slot].session {
                sessions.append(session)
                if let sessionSlot = self.sessions.slotIndex(of: session) { self.sessions[slot: sessionSlot].player = nil }
                players[slot: slot].session = nil
            }
            players[slot: slot].leaseEpoch = 0
            timers.removeAll(owner: id)
            removePlayer(id, slot: slot)
        }
        return sessions
    }

    /// A resumed engine's leases, read back (the previous engine of this
    /// process took them, `SharedPlayerStorage.heldLeases`): on the records
    /// that came over; given back at once where no record is attached, and
    /// where there is no record at all (`PlayerLeases.orphans`: a login
    /// that was in progress claims again, and reads the row).
    func adoptLeases(_ held: [[UInt8]: Int64]) {
        for (key, epoch) in held {
            if let id = playersByKey[key], let slot = players.slotIndex(of: id) {
                players[slot: slot].leaseEpoch = epoch
                if players[slot: slot].session == nil { leases.queueRelease(key) }
            } else {
                leases.keepOrphan(key, epoch: epoch)
            }
        }
    }

    // MARK: - Persistence (see Persistence/WriteBehind.swift)

    /// Puts what the database holds into the world, before any module binds
    /// its schema: the columns first (a module then finds its fields by name
    /// and type, and fields no module declares stay hidden for a rollback),
    /// then the global row and every player. Nothing is dirty afterwards.
    func loadStored(_ snapshot: StoredSnapshot) {
        let globalColumns = snapshot.globalColumns.map { store.addStoredColumn($0) }
        if let global = snapshot.global {
            for (index, value) in global.values.enumerated() where index < globalColumns.count {
                if let value { store.setStoredValue(.global, column: globalColumns[index], row: 0, value) }
            }
        }
        let playerColumns = snapshot.playerColumns.map { store.addStoredColumn($0) }
        for record in snapshot.players where playersByKey[record.key] == nil {
            let id = players.insert(PlayerRecord(key: record.key, session: nil))
            playersByKey[record.key] = id
            store.ensureRows(.player, players.capacity)
            for (index, value) in record.values.enumerated() where index < playerColumns.count {
                if let value { store.setStoredValue(.player, column: playerColumns[index], row: Int(id.index), value) }
            }
        }
        playerDirty = Array(repeating: false, count: players.capacity)
        dirtySlots.removeAll()
        dirtyCount = 0
        globalDirty = false
    }

    /// The persistent columns as they are now (their count tells a flush
    /// whether a reload added one since the database last saw them).
    var persistentColumnCounts: (global: Int, player: Int) {
        (store.columnSpecs(.global).count, store.columnSpecs(.player).count)
    }

    /// Copies out the rows that changed since the last call, at most
    /// `limit` players (the longest dirty first), and marks them clean: the
    /// loop hands the batch to the database worker and goes on. (A
    /// reload's migration writes every row it changes, so those are all
    /// dirty together, and a write-behind that takes them in several calls
    /// writes them in one transaction.)
    func takeDirty(limit: Int = .max, releases: Bool = true) -> PersistBatch {
        let globalColumns = store.columnSpecs(.global)
        let playerColumns = store.columnSpecs(.player)
        var batch = PersistBatch(globalColumns: globalColumns, playerColumns: playerColumns, global: nil, players: [])
        if !deletedKeys.isEmpty {
            batch.deleted = deletedKeys
            deletedKeys = []
        }
        if globalDirty {
            batch.global = StoredRecord(key: [], values: globalColumns.indices.map {
                store.storedValue(.global, column: $0, row: 0)
            })
            globalDirty = false
        }
        if sharesPlayers && releases {
            batch.released = takeReleases()
        }
        func record(_ slot: Int) -> StoredRecord {
            StoredRecord(key: players[slot: slot].key, values: playerColumns.indices.map {
                store.storedValue(.player, column: $0, row: slot)
            })
        }
        batch.players.reserveCapacity(min(dirtyCount, limit))
        batch.slots.reserveCapacity(min(dirtyCount, limit))
        var consumed = 0
        for slot in dirtySlots {
            if batch.players.count == limit { break }
            consumed += 1
            guard slot < playerDirty.count && playerDirty[slot] else { continue }
            playerDirty[slot] = false
            dirtyCount -= 1
            if players.liveID(ofSlot: slot) != nil {
                batch.players.append(record(slot))
                batch.slots.append(slot)
                if sharesPlayers { batch.epochs.append(players[slot: slot].leaseEpoch) }
            }
        }
        if consumed == dirtySlots.count {
            dirtySlots.removeAll(keepingCapacity: dirtySlots.capacity <= 65_536)
        } else {
            dirtySlots.removeFirst(consumed)
        }
        return batch
    }

    /// A batch the database refused (a full disk, say): its rows are dirty
    /// again, so the next flush retries them with their newest values.
    func markUnwritten(_ batch: PersistBatch) { markUnwritten(UnwrittenRecords(batch)) }

    func markUnwritten(_ unwritten: UnwrittenRecords) {
        markUnwritten(unwritten, from: 0, to: unwritten.keys.count)
    }

    /// The same for the players at `start..<end` of the batch (the global
    /// row with the first part).
    func markUnwritten(_ unwritten: UnwrittenRecords, from start: Int, to end: Int) {
        if unwritten.global && start == 0 { globalDirty = true }
        // Deleted first (deletions precede writes in a batch): a player
        // created again under the key since is written after it.
        if start == 0 && !unwritten.deleted.isEmpty { deletedKeys = unwritten.deleted + deletedKeys }
        if start == 0 && !unwritten.released.isEmpty { unrelease(unwritten.released) }
        for index in start..<end {
            let key = unwritten.keys[index]
            // The slot it came from, if that still holds the same player.
            if index < unwritten.slots.count, case let slot = unwritten.slots[index], slot < players.capacity,
                players.liveID(ofSlot: slot) != nil, players[slot: slot].key == key
            {
                markDirty(.player, row: slot)
            } else if let id = playersByKey[key], let slot = players.slotIndex(of: id) {
                markDirty(.player, row: slot)
            }
        }
    }

    // MARK: - Fields

    /// The store row of `entity` for a field bound to `binding`: the entity
    /// must be of the field's kind, the field of `type`, the entity alive
    /// (checked in that order, which decides the error a module gets).
    func row(of entity: GameID, for binding: FieldBinding, type: FieldType) throws(EngineError) -> Int {
        guard let kind = entity.kind else { throw .badArgument }
        guard kind == binding.kind else { throw .badField }
        guard binding.type == type else { throw .badType }
        switch kind {
        case .global:
            guard entity == GameID.global else { throw .badSession }
            return 0
        case .session:
            guard let row = sessions.slotIndex(of: entity) else { throw .badSession }
            return row
        case .room:
            guard let row = rooms.slotIndex(of: entity) else { throw .badRoom }
            return row
        case .player:
            guard let row = players.slotIndex(of: entity) else { throw .badPlayer }
            return row
        }
    }

    func int(_ field: FieldBinding, row: Int) -> Int64 { store.int(field, row: row) }

    func setInt(_ field: FieldBinding, row: Int, _ value: Int64) {
        if journaling { journal.append(.int(field, row: row, old: store.int(field, row: row))) }
        store.setInt(field, row: row, value)
        if field.kind.isPersistent { persistentWrite(field.kind, row: row) }
    }

    func withString<R>(_ field: FieldBinding, row: Int, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        store.withString(field, row: row, body)
    }

    /// `.exists` when the field is unique and another entity holds the value.
    func setString(_ field: FieldBinding, row: Int, _ bytes: UnsafeRawBufferPointer) throws(EngineError) {
        var replaced: [UInt8] = []
        guard store.setString(field, row: row, [UInt8](bytes), replaced: &replaced) else { throw .exists }
        if journaling { journal.append(.string(field, row: row, old: replaced)) }
        if field.kind.isPersistent { persistentWrite(field.kind, row: row) }
    }

    /// The live entity holding `bytes` in a unique string field.
    func find(_ field: FieldBinding, holding bytes: UnsafeRawBufferPointer) throws(EngineError) -> GameID {
        guard store.isUnique(field) else { throw .badField }
        guard let row = store.row(field, holding: bytes), let id = liveID(kind: field.kind, row: row) else {
            throw .notFound
        }
        return id
    }

    /// The id of the live entity in `row` of a kind's table.
    private func liveID(kind: EntityKind, row: Int) -> GameID? {
        switch kind {
        case .global: return GameID.global
        case .session: return row < sessions.capacity ? sessions.liveID(ofSlot: row) : nil
        case .room: return row < rooms.capacity ? rooms.liveID(ofSlot: row) : nil
        case .player: return row < players.capacity ? players.liveID(ofSlot: row) : nil
        }
    }

    /// The declared field names per kind (`name:type`), for status output.
    func fieldNames(_ kind: EntityKind) -> [String] { store.fieldNames(kind) }

    // MARK: - Undo journal

    /// From here every change (field writes, the unique index, rooms made,
    /// joined and left, lines queued for any session) is journaled, until
    /// `commitJournal` forgets it or `rollBackJournal` undoes it. Sessions
    /// are never opened or closed and rooms never destroyed during a module
    /// call (closes and empty rooms wait until it returns), so these are all
    /// the changes a call can make.
    func beginJournal() {
        journaling = true
        epoch &+= 1
        roomsToCheckMark = roomsToCheck.count
    }

    /// The call succeeded: keep its changes.
    func commitJournal() {
        journaling = false
        guard !journal.isEmpty else { return }
        timers.commitCall()
        journal.removeAll(keepingCapacity: true)
        if journal.capacity > 65_536 { journal = []; journal.reserveCapacity(64) }
    }

    /// The call faulted: undo its changes, newest first, so each undo finds
    /// the state it was recorded in (a unique value released by one change
    /// and taken by a later one is given back in the right order).
    func rollBackJournal() {
        journaling = false
        while let change = journal.popLast() {
            switch change {
            case .int(let field, let row, let old):
                store.setInt(field, row: row, old)
            case .string(let field, let row, let old):
                var replaced: [UInt8] = []
                _ = store.setString(field, row: row, old, replaced: &replaced)
            case .roomCreated(let id):
                if let slot = rooms.slotIndex(of: id) {
                    timers.removeAll(owner: id)
                    roomsByName[rooms[slot: slot].name] = nil
                    rooms.remove(id)
                    store.resetRow(.room, slot)
                }
            case .joined(let session, let room):
                if let roomSlot = rooms.slotIndex(of: room) { rooms[slot: roomSlot].members.removeAll { $0 == session } }
                if let slot = sessions.slotIndex(of: session) {
                    sessions[slot: slot].room = nil
                    if timers.isBatching(room) { sessions[slot: slot].peer.setHeld(false) }
                }
            case .left(let session, let room, let position):
                if let roomSlot = rooms.slotIndex(of: room) {
                    let members = rooms[slot: roomSlot].members
                    rooms[slot: roomSlot].members.insert(session, at: min(position, members.count))
                }
                if let slot = sessions.slotIndex(of: session) {
                    sessions[slot: slot].room = room
                    if timers.isBatching(room) { sessions[slot: slot].peer.setHeld(true) }
                }
            case .output(let peer, let mark):
                peer.rollBackOutput(to: mark)
            case .identified(let peer, let was):
                peer.setIdentified(was)
            case .attached(let session, let player, let created):
                if let slot = sessions.slotIndex(of: session) { sessions[slot: slot].player = nil }
                if let slot = players.slotIndex(of: player) {
                    players[slot: slot].session = nil
                    if created { removePlayer(player, slot: slot) }
                }
            case .detached(let session, let player):
                if let slot = sessions.slotIndex(of: session) { sessions[slot: slot].player = player }
                if let slot = players.slotIndex(of: player) { players[slot: slot].session = session }
            case .timerSet(let slot):
                timers.release(slot)
            case .timerCancelled(let slot):
                timers.reattach(slot)
            case .batching(let room, let was):
                setBatchingUnjournaled(room, was)
            }
        }
        timers.forgetCall()
        if roomsToCheck.count > roomsToCheckMark { roomsToCheck.removeSubrange(roomsToCheckMark...) }
        journal.removeAll(keepingCapacity: true)
    }

    // MARK: - Schema changes (reloads)

    /// Binds a module's declared fields to the store (see `StateStore.bind`).
    /// Nothing changes when it throws.
    func bind(_ specs: [FieldSpec], live: [FieldSpec] = [], rollback: Bool = false)
        throws(SchemaError) -> [FieldBinding]
    {
        try store.bind(specs, live: live, rollback: rollback)
    }

    /// The store as it is now: a copy-on-write value, cheap until written.
    /// A reload takes one before running module code and puts it back with
    /// `restore` if any step fails.
    func snapshot() -> StateStore { store }

    /// Puts back a snapshot. Only valid while sessions and rooms are those
    /// of the snapshot (a reload refuses room and session changes).
    func restore(_ snapshot: StateStore) { store = snapshot }

    // MARK: - Staged migration of stored players (LogicHost/StagedMigration.swift)

    /// Swaps committed so far. A swap may rewrite values without adding a
    /// column (a migration of same-typed fields, a retype back onto a
    /// hidden column): a flush copied out over several turns starts over
    /// when this moves, so one batch never mixes rows from before and after.
    private(set) var swaps = 0

    /// A reload or rollback committed.
    func noteSwap() { swaps &+= 1 }

    /// Starts noting the player rows the game changes (see `StagingWrites`).
    func beginStaging() {
        staging = .watching
        stagingTouched.removeAll()
        stagingWritten.removeAll()
    }

    /// Runs one slice of a staged migration with `staged` as the store
    /// (moved in, so its columns are not copied when written, and moved back
    /// out after), grown first to the arenas' rows so that module code
    /// naming any live entity finds a row. The live store is untouched.
    func withStagedStore<R, E: Error>(_ staged: inout StateStore, _ body: () throws(E) -> R) throws(E) -> R {
        precondition(staging == .watching)
        let live = store
        store = staged
        staged = StateStore()
        store.ensureRows(.session, sessions.capacity)
        store.ensureRows(.room, rooms.capacity)
        store.ensureRows(.player, players.capacity)
        staging = .slice
        defer {
            staging = .watching
            staged = store
            store = live
        }
        return try body()
    }

    /// Stops noting writes; called whatever became of the migration.
    func endStaging() {
        staging = .off
        stagingTouched.removeAll()
        stagingWritten.removeAll()
    }

    /// The commit of a staged migration, before the new schema is bound:
    /// takes the player table the slices migrated (the new columns with
    /// it, so the bind finds them), except the rows the game changed
    /// meanwhile and those of players created since, which keep their live
    /// values (and the new columns' defaults) and are returned, to be
    /// migrated again now. The rows the slices wrote become dirty. Returns
    /// nil, changing nothing, when the staged table no longer extends the
    /// live one (another schema). Either way writes are no longer noted for
    /// staging afterwards. The cost is the touched rows, and a flag per
    /// stored player for the dirty marks.
    func adoptStagedPlayers(_ staged: inout StateStore) -> [GameID]? {
        precondition(staging == .watching)
        defer { endStaging() }
        let liveColumns = store.columnSpecs(.player)
        let stagedRows = staged.rowCount(.player)
        guard Array(staged.columnSpecs(.player).prefix(liveColumns.count)) == liveColumns,
            stagedRows <= players.capacity
        else { return nil }
        var again = [Bool](repeating: false, count: players.capacity)
        var keep: [Int] = []
        for row in stagingTouched where row < again.count && !again[row] {
            again[row] = true
            keep.append(row)
        }
        for row in stagedRows..<players.capacity where !again[row] {
            again[row] = true
            keep.append(row)
        }
        store.adoptTable(.player, from: &staged, keeping: keep, liveColumns: liveColumns.count)
        if tracksDirty {
            dirtySlots.reserveCapacity(dirtySlots.count + stagingWritten.count)
            // No liveness check (a cache miss per player in the arena, 5 ms
            // at a million): the slices migrated players that existed when
            // they began, and only a player created since can be removed
            // (its creating call undone; FORGET is refused during a
            // reload), which `again` holds. A flush skips a dead slot anyway.
            for row in stagingWritten where row < again.count && !again[row] {
                markDirty(.player, row: row)
            }
        }
        return keep.compactMap { players.liveID(ofSlot: $0) }
    }

    // MARK: - Engine upgrade

    /// The write-behind bookkeeping an upgrade hands over with the players:
    /// which rows changed since the database last took them.
    struct DirtyState: Equatable {
        var playerDirty: [Bool]
        var dirtySlots: [Int]
        var globalDirty: Bool
    }

    /// Takes over the state a previous engine handed over (decoded by
    /// World+Handoff.swift), into a world nothing has used yet. Checks what
    /// World otherwise guarantees by construction, and throws, changing
    /// nothing, when the state breaks it: every member of a room is a live
    /// session that says it is in that room, and the reverse; room names
    /// and player keys are unique; a session's player says it is held by
    /// that session, and the reverse; the store has a row per slot.
    func restore(sessions restoredSessions: GenerationalArena<SessionRecord>, rooms restoredRooms: GenerationalArena<Room>,
                 players restoredPlayers: GenerationalArena<PlayerRecord>, dirty: DirtyState,
                 store restoredStore: StateStore) throws(HandoffError)
    {
        guard sessions.count == 0, rooms.count == 0, players.count == 0 else { throw .invalid("the world is in use") }
        var names: [[UInt8]: GameID] = [:]
        var seated = 0
        for (index, slot) in restoredRooms.slots.enumerated() {
            guard let room = slot.value else { continue }
            let id = restoredRooms.id(ofSlot: index)
            guard names.updateValue(id, forKey: room.name) == nil else { throw .invalid("two rooms share a name") }
            guard room.members.count <= limits.maxRoomMembers else { throw .invalid("\(id) is over --max-room-members") }
            for member in room.members {
                guard let record = restoredSessions[member], record.room == id else {
                    throw .invalid("\(id) lists \(member), which is not in it")
                }
            }
            seated += room.members.count
        }
        var keys: [[UInt8]: GameID] = [:]
        keys.reserveCapacity(restoredPlayers.count)
        var held = 0
        for (index, slot) in restoredPlayers.slots.enumerated() {
            guard let player = slot.value else { continue }
            let id = restoredPlayers.id(ofSlot: index)
            guard !player.key.isEmpty, keys.updateValue(id, forKey: player.key) == nil else {
                throw .invalid("two players share a key, or one has none")
            }
            if let session = player.session {
                guard restoredSessions[session]?.player == id else { throw .invalid("\(id) is held by \(session), which does not hold it") }
                held += 1
            }
        }
        var inRooms = 0
        var holding = 0
        for slot in restoredSessions.slots {
            guard let record = slot.value else { continue }
            guard !record.closing else { throw .invalid("a session was closing") }
            if record.room != nil { inRooms += 1 }
            if record.player != nil { holding += 1 }
        }
        // Each member is in its room's list at most once (counted): with the
        // check above, the lists and the sessions' rooms agree exactly. The
        // same count ties sessions and their players together.
        guard inRooms == seated, Set(restoredRooms.slots.compactMap(\.value).flatMap(\.members)).count == seated else {
            throw .invalid("room lists and sessions' rooms disagree")
        }
        guard holding == held else { throw .invalid("sessions' players and players' sessions disagree") }
        // Rows grow with the arenas (`ensureRows` at every insert) and never
        // shrink: exactly one row per slot ever made.
        guard restoredStore.tables[Int(EntityKind.session.rawValue)].rows == restoredSessions.capacity,
            restoredStore.tables[Int(EntityKind.room.rawValue)].rows == restoredRooms.capacity,
            restoredStore.tables[Int(EntityKind.player.rawValue)].rows == restoredPlayers.capacity,
            restoredStore.tables[Int(EntityKind.global.rawValue)].rows == 1
        else { throw .invalid("the store's rows do not match the slots") }
        // Every dirty row is listed for the next flush (the list may also
        // name rows already taken: a flush skips those).
        guard dirty.playerDirty.count == restoredPlayers.capacity,
            dirty.dirtySlots.allSatisfy({ $0 >= 0 && $0 < restoredPlayers.capacity })
        else { throw .invalid("the dirty rows do not match the players") }
        let listed = Set(dirty.dirtySlots)
        let dirtyRows = dirty.playerDirty.indices.filter { dirty.playerDirty[$0] }
        guard dirtyRows.allSatisfy(listed.contains) else { throw .invalid("a dirty row is not listed for the flush") }
        sessions = restoredSessions
        rooms = restoredRooms
        roomsByName = names
        players = restoredPlayers
        playersByKey = keys
        playerDirty = dirty.playerDirty
        dirtySlots = dirty.dirtySlots
        dirtyCount = dirtyRows.count
        globalDirty = dirty.globalDirty
        store = restoredStore
        // An empty room cannot outlive a call; if one came over, the next
        // sweep collects it as it would have here.
        roomsToCheck = restoredRooms.slots.indices.compactMap { index in
            restoredRooms.slots[index].value?.members.isEmpty == true ? restoredRooms.id(ofSlot: index) : nil
        }
    }
}
