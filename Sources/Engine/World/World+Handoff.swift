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
/// over in its own section: decoding asks `peer(for:)` for it, and a live
/// session without one refuses the handoff.
extension World {
    func encodeHandoff(into writer: inout HandoffWriter) {
        writer.u32(UInt32(sessions.slots.count))
        for slot in sessions.slots {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let record = slot.value {
                writer.u64(record.room?.raw ?? 0)
                writer.u64(record.player?.raw ?? 0)
            }
        }
        World.encodeFreeList(sessions.freeList, into: &writer)
        writer.u32(UInt32(rooms.slots.count))
        for slot in rooms.slots {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let room = slot.value {
                writer.bytes(room.name)
                writer.u32(UInt32(room.members.count))
                for member in room.members { writer.u64(member.raw) }
            }
        }
        World.encodeFreeList(rooms.freeList, into: &writer)
        writer.u32(UInt32(players.slots.count))
        for slot in players.slots {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let player = slot.value {
                writer.bytes(player.key)
                writer.u64(player.session?.raw ?? 0)
            }
        }
        World.encodeFreeList(players.freeList, into: &writer)
        writer.u32(UInt32(playerDirty.count))
        for flag in playerDirty { writer.bool(flag) }
        writer.u32(UInt32(dirtySlots.count))
        for slot in dirtySlots { writer.u32(UInt32(slot)) }
        writer.bool(globalDirty)
        store.encodeHandoff(into: &writer)
    }

    /// Reads the section and takes it over (`restore` checks World's rules).
    func restoreHandoff(from reader: inout HandoffReader, peer: (GameID) -> (any SessionPeer)?) throws(HandoffError) {
        let sessionCount = try reader.count("session slots", elementSize: 5)
        var sessionSlots: [GenerationalArena<SessionRecord>.Slot] = []
        sessionSlots.reserveCapacity(sessionCount)
        for index in 0..<sessionCount {
            let generation = try reader.u32("session generation")
            guard try reader.bool("session live") else {
                sessionSlots.append(.init(generation: generation, value: nil))
                continue
            }
            let id = GameID(kind: .session, generation: generation, index: UInt32(index))
            let room = try World.decodeID(&reader, kind: .room, "session room")
            let player = try World.decodeID(&reader, kind: .player, "session player")
            guard let peer = peer(id) else { throw .invalid("\(id) has no connection") }
            sessionSlots.append(.init(generation: generation, value: SessionRecord(peer: peer, room: room, player: player)))
        }
        let sessions = try GenerationalArena(kind: .session, slots: sessionSlots,
                                             freeList: World.decodeFreeList(&reader, "session free list"))
        let roomCount = try reader.count("room slots", elementSize: 5)
        var roomSlots: [GenerationalArena<Room>.Slot] = []
        roomSlots.reserveCapacity(roomCount)
        for _ in 0..<roomCount {
            let generation = try reader.u32("room generation")
            guard try reader.bool("room live") else {
                roomSlots.append(.init(generation: generation, value: nil))
                continue
            }
            let name = try reader.bytes("room name")
            let memberCount = try reader.count("room members", elementSize: 8)
            var members: [GameID] = []
            members.reserveCapacity(memberCount)
            for _ in 0..<memberCount { members.append(GameID(raw: try reader.u64("room member"))) }
            roomSlots.append(.init(generation: generation, value: Room(name: name, members: members)))
        }
        let rooms = try GenerationalArena(kind: .room, slots: roomSlots,
                                          freeList: World.decodeFreeList(&reader, "room free list"))
        let playerCount = try reader.count("player slots", elementSize: 5)
        var playerSlots: [GenerationalArena<PlayerRecord>.Slot] = []
        playerSlots.reserveCapacity(playerCount)
        for _ in 0..<playerCount {
            let generation = try reader.u32("player generation")
            guard try reader.bool("player live") else {
                playerSlots.append(.init(generation: generation, value: nil))
                continue
            }
            let key = try reader.bytes("player key")
            let session = try World.decodeID(&reader, kind: .session, "player session")
            playerSlots.append(.init(generation: generation, value: PlayerRecord(key: key, session: session)))
        }
        let players = try GenerationalArena(kind: .player, slots: playerSlots,
                                            freeList: World.decodeFreeList(&reader, "player free list"))
        let flagCount = try reader.count("dirty flags", elementSize: 1)
        var flags: [Bool] = []
        flags.reserveCapacity(flagCount)
        for _ in 0..<flagCount { flags.append(try reader.bool("dirty flag")) }
        let listed = try World.decodeFreeList(&reader, "dirty rows").map { Int($0) }
        let dirty = DirtyState(playerDirty: flags, dirtySlots: listed, globalDirty: try reader.bool("global dirty"))
        let store = try StateStore(handoff: &reader)
        try reader.finish("world section")
        try restore(sessions: sessions, rooms: rooms, players: players, dirty: dirty, store: store)
    }

    /// An entity id of `kind`, or none (0).
    private static func decodeID(_ reader: inout HandoffReader, kind: EntityKind, _ what: String) throws(HandoffError) -> GameID? {
        let raw = try reader.u64(what)
        guard raw != 0 else { return nil }
        let id = GameID(raw: raw)
        guard id.kind == kind else { throw .invalid("\(what) \(id) is not a \(kind)") }
        return id
    }

    private static func encodeFreeList(_ list: [UInt32], into writer: inout HandoffWriter) {
        writer.u32(UInt32(list.count))
        for index in list { writer.u32(index) }
    }

    private static func decodeFreeList(_ reader: inout HandoffReader, _ what: String) throws(HandoffError) -> [UInt32] {
        let count = try reader.count(what, elementSize: 4)
        var list: [UInt32] = []
        list.reserveCapacity(count)
        for _ in 0..<count { list.append(try reader.u32(what)) }
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
            let columnCount = try reader.count("table columns", elementSize: 30)
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
