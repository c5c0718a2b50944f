/// World's section of an engine upgrade's handoff (see HandoffFormat):
/// sessions, rooms and durable players slot by slot (so every id keeps
/// meaning what it meant, and every stale id stays stale), which player
/// rows the database has not taken yet, and the whole state store, hidden
/// columns included.
///
///     sessions   slot count, per slot: generation, live, room id, player id
///                free list
///     rooms      slot count, per slot: generation, live, name, member ids
///                free list
///     players    slot count, per slot: generation, live, key, session id
///                free list
///     dirty      a flag per player slot, the slots listed for the next
///                flush, whether the global row changed
///     store      table count, per table: rows, columns (spec, then a value per row)
///
/// Players go over whole, online and offline: the next engine does not
/// read the database again, and writes what was dirty at its first flush.
///
/// A session's output goes to its connection, which the transport hands
/// over in its own section: taking the section over (`World.restore`) asks
/// `peer(for:)` for it, and a live
/// session without one refuses the handoff.
struct WorldHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.world

    /// A session as it goes over: its connection is in the connections
    /// section, found again by the session's id (`World.restore`).
    struct Session: Equatable {
        var room: GameID?
        var player: GameID?
    }

    var sessions: [GenerationalArena<Session>.Slot]
    var sessionFreeList: [UInt32]
    var rooms: [GenerationalArena<World.Room>.Slot]
    var roomFreeList: [UInt32]
    var players: [GenerationalArena<World.PlayerRecord>.Slot]
    var playerFreeList: [UInt32]
    var dirty: World.DirtyState
    /// Checked as it is read (`StateStore.init(tables:)`: a table that
    /// contradicts itself cannot be made).
    var store: StateStore

    init(sessions: [GenerationalArena<Session>.Slot], sessionFreeList: [UInt32],
         rooms: [GenerationalArena<World.Room>.Slot], roomFreeList: [UInt32],
         players: [GenerationalArena<World.PlayerRecord>.Slot], playerFreeList: [UInt32], dirty: World.DirtyState,
         store: StateStore)
    {
        self.sessions = sessions
        self.sessionFreeList = sessionFreeList
        self.rooms = rooms
        self.roomFreeList = roomFreeList
        self.players = players
        self.playerFreeList = playerFreeList
        self.dirty = dirty
        self.store = store
    }

    func encode(into writer: inout HandoffWriter) {
        writer.u32(UInt32(sessions.count))
        for slot in sessions {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let record = slot.value {
                writer.u64(record.room?.raw ?? 0)
                writer.u64(record.player?.raw ?? 0)
            }
        }
        writer.indexes(sessionFreeList)
        writer.u32(UInt32(rooms.count))
        for slot in rooms {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let room = slot.value {
                writer.bytes(room.name)
                writer.u32(UInt32(room.members.count))
                for member in room.members { writer.u64(member.raw) }
            }
        }
        writer.indexes(roomFreeList)
        writer.u32(UInt32(players.count))
        for slot in players {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let player = slot.value {
                writer.bytes(player.key)
                writer.u64(player.session?.raw ?? 0)
            }
        }
        writer.indexes(playerFreeList)
        writer.u32(UInt32(dirty.playerDirty.count))
        for flag in dirty.playerDirty { writer.bool(flag) }
        writer.indexes(dirty.dirtySlots.map { UInt32(truncatingIfNeeded: $0) })
        writer.bool(dirty.globalDirty)
        store.encodeHandoff(into: &writer)
    }

    /// Reads the section; an id of the wrong kind is refused here (the
    /// bytes cannot mean it), every rule across entities by `World.restore`.
    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        let sessionCount = try reader.count("session slots", elementSize: 5)
        sessions = []
        sessions.reserveCapacity(sessionCount)
        for _ in 0..<sessionCount {
            let generation = try reader.u32("session generation")
            guard try reader.bool("session live") else {
                sessions.append(.init(generation: generation, value: nil))
                continue
            }
            let room = try WorldHandoff.id(&reader, kind: .room, "session room")
            let player = try WorldHandoff.id(&reader, kind: .player, "session player")
            sessions.append(.init(generation: generation, value: Session(room: room, player: player)))
        }
        sessionFreeList = try reader.indexes("session free list")
        let roomCount = try reader.count("room slots", elementSize: 5)
        rooms = []
        rooms.reserveCapacity(roomCount)
        for _ in 0..<roomCount {
            let generation = try reader.u32("room generation")
            guard try reader.bool("room live") else {
                rooms.append(.init(generation: generation, value: nil))
                continue
            }
            let name = try reader.bytes("room name")
            let memberCount = try reader.count("room members", elementSize: 8)
            var members: [GameID] = []
            members.reserveCapacity(memberCount)
            for _ in 0..<memberCount { members.append(GameID(raw: try reader.u64("room member"))) }
            rooms.append(.init(generation: generation, value: World.Room(name: name, members: members)))
        }
        roomFreeList = try reader.indexes("room free list")
        let playerCount = try reader.count("player slots", elementSize: 5)
        players = []
        players.reserveCapacity(playerCount)
        for _ in 0..<playerCount {
            let generation = try reader.u32("player generation")
            guard try reader.bool("player live") else {
                players.append(.init(generation: generation, value: nil))
                continue
            }
            let key = try reader.bytes("player key")
            let session = try WorldHandoff.id(&reader, kind: .session, "player session")
            players.append(.init(generation: generation, value: World.PlayerRecord(key: key, session: session)))
        }
        playerFreeList = try reader.indexes("player free list")
        let flagCount = try reader.count("dirty flags", elementSize: 1)
        var flags: [Bool] = []
        flags.reserveCapacity(flagCount)
        for _ in 0..<flagCount { flags.append(try reader.bool("dirty flag")) }
        let listed = try reader.indexes("dirty rows").map { Int($0) }
        dirty = World.DirtyState(playerDirty: flags, dirtySlots: listed, globalDirty: try reader.bool("global dirty"))
        store = try StateStore(handoff: &reader)
    }

    /// An entity id of `kind`, or none (0).
    private static func id(_ reader: inout HandoffReader, kind: EntityKind, _ what: String) throws(HandoffError) -> GameID? {
        let raw = try reader.u64(what)
        guard raw != 0 else { return nil }
        let id = GameID(raw: raw)
        guard id.kind == kind else { throw .invalid("\(what) \(id) is not a \(kind)") }
        return id
    }
}

extension World {
    /// The section's value: every slot as it is.
    var handoff: WorldHandoff {
        WorldHandoff(
            sessions: sessions.slots.map { .init(generation: $0.generation,
                                                 value: $0.value.map { WorldHandoff.Session(room: $0.room, player: $0.player) }) },
            sessionFreeList: sessions.freeList, rooms: rooms.slots, roomFreeList: rooms.freeList,
            players: players.slots, playerFreeList: players.freeList,
            dirty: DirtyState(playerDirty: playerDirty, dirtySlots: dirtySlots, globalDirty: globalDirty), store: store)
    }

    /// Takes the section over (`restore` checks World's rules); each live
    /// session's output goes to `peer(for:)`, and one without a peer refuses
    /// the handoff.
    func restore(_ section: WorldHandoff, peer: (GameID) -> (any SessionPeer)?) throws(HandoffError) {
        var sessionSlots: [GenerationalArena<SessionRecord>.Slot] = []
        sessionSlots.reserveCapacity(section.sessions.count)
        for (index, slot) in section.sessions.enumerated() {
            guard let session = slot.value else {
                sessionSlots.append(.init(generation: slot.generation, value: nil))
                continue
            }
            let id = GameID(kind: .session, generation: slot.generation, index: UInt32(index))
            guard let peer = peer(id) else { throw .invalid("\(id) has no connection") }
            sessionSlots.append(.init(generation: slot.generation,
                                      value: SessionRecord(peer: peer, room: session.room, player: session.player)))
        }
        try restore(sessions: GenerationalArena(kind: .session, slots: sessionSlots, freeList: section.sessionFreeList),
                    rooms: GenerationalArena(kind: .room, slots: section.rooms, freeList: section.roomFreeList),
                    players: GenerationalArena(kind: .player, slots: section.players, freeList: section.playerFreeList),
                    dirty: section.dirty, store: section.store)
    }
}

extension HandoffWriter {
    /// A count-prefixed list of 32-bit slot indexes (free lists, dirty rows).
    mutating func indexes(_ list: [UInt32]) {
        u32(UInt32(list.count))
        for index in list { u32(index) }
    }
}

extension HandoffReader {
    mutating func indexes(_ what: String) throws(HandoffError) -> [UInt32] {
        let count = try count(what, elementSize: 4)
        var list: [UInt32] = []
        list.reserveCapacity(count)
        for _ in 0..<count { list.append(try u32(what)) }
        return list
    }
}

extension StateStore {
    func encodeHandoff(into writer: inout HandoffWriter) {
        writer.u32(UInt32(tables.count))
        for table in tables {
            writer.u64(UInt64(table.rows))
            writer.u32(UInt32(table.columns.count))
            for column in table.columns {
                let spec = column.spec
                spec.encode(into: &writer)
                switch spec.type {
                case .int: for value in column.ints { writer.i64(value) }
                case .string: for value in column.strings { writer.bytes(value) }
                }
            }
        }
    }

    /// Reads what `encodeHandoff` wrote; `init(tables:)` checks it.
    init(handoff reader: inout HandoffReader) throws(HandoffError) {
        let tableCount = try reader.count("store tables", elementSize: 12)
        var tables: [Table] = []
        for _ in 0..<tableCount {
            let rows = try reader.u64("table rows")
            // Each row costs at least 4 bytes per column, so a garbage row
            // count is refused below before anything that large is made.
            var table = Table(rows: Int(min(rows, UInt64(Int32.max))), columns: [])
            let columnCount = try reader.count("table columns", elementSize: FieldSpec.smallestHandoffBytes)
            for _ in 0..<columnCount {
                let spec = try FieldSpec(handoff: &reader)
                let (name, type) = (spec.name, spec.type)
                var column = Column(spec: spec)
                guard UInt64(reader.remaining) / (type == .int ? 8 : 4) >= rows else { throw .truncated("\(name) values") }
                switch type {
                case .int:
                    column.ints.reserveCapacity(table.rows)
                    for _ in 0..<table.rows { column.ints.append(try reader.i64("int value")) }
                case .string:
                    column.strings.reserveCapacity(table.rows)
                    for _ in 0..<table.rows { column.strings.append(try reader.bytes("string value")) }
                }
                table.columns.append(column)
            }
            tables.append(table)
        }
        try self.init(tables: tables)
    }
}

extension FieldSpec {
    /// kind, name, type, unique, defaults, migrated
    /// The fewest bytes `encode` writes (kind 4, name 4 + 0, type 4, unique
    /// 1, default 8, default string 4 + 0, migrated 1): the bound a reader
    /// puts on a count of specs. It was 30, which refused a table whose
    /// last specs had names under 4 bytes and nothing after them (a player
    /// field `hp` with no stored player): every upgrade fell back.
    static let smallestHandoffBytes = 26

    func encode(into writer: inout HandoffWriter) {
        writer.u32(kind.rawValue)
        writer.string(name)
        writer.u32(type.rawValue)
        writer.bool(unique)
        writer.i64(defaultInt)
        writer.bytes(defaultString)
        writer.bool(migrated)
    }

    init(handoff reader: inout HandoffReader) throws(HandoffError) {
        guard let kind = EntityKind(rawValue: try reader.u32("field kind")) else { throw .invalid("field kind") }
        let name = try reader.string("field name")
        guard let type = FieldType(rawValue: try reader.u32("field type")) else { throw .invalid("field type") }
        self.init(kind: kind, name: name, type: type, unique: try reader.bool("field unique"),
                  defaultInt: try reader.i64("field default"), defaultString: try reader.bytes("field default"))
        migrated = try reader.bool("field migrated")
    }
}
