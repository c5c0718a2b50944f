/// World's section of an engine upgrade's handoff (see HandoffFormat):
/// sessions and rooms slot by slot (so every id keeps meaning what it
/// meant, and every stale id stays stale), and the whole state store,
/// hidden columns included.
///
///     sessions   slot count, per slot: generation, live, room id
///                free list
///     rooms      slot count, per slot: generation, live, name, member ids
///                free list
///     store      table count, per table: rows, columns (spec, then a value per row)
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
            if let record = slot.value { writer.u64(record.room?.raw ?? 0) }
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
            let roomRaw = try reader.u64("session room")
            let room = roomRaw == 0 ? nil : GameID(raw: roomRaw)
            guard room == nil || room?.kind == .room else { throw .invalid("\(id) is in \(GameID(raw: roomRaw))") }
            guard let peer = peer(id) else { throw .invalid("\(id) has no connection") }
            sessionSlots.append(.init(generation: generation, value: SessionRecord(peer: peer, room: room)))
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
        let store = try StateStore(handoff: &reader)
        try reader.finish("world section")
        try restore(sessions: sessions, rooms: rooms, store: store)
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
                writer.u32(spec.kind.rawValue)
                writer.string(spec.name)
                writer.u32(spec.type.rawValue)
                writer.bool(spec.unique)
                writer.i64(spec.defaultInt)
                writer.bytes(spec.defaultString)
                writer.bool(spec.migrated)
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
                guard let kind = EntityKind(rawValue: try reader.u32("field kind")) else { throw .invalid("field kind") }
                let name = try reader.string("field name")
                guard let type = FieldType(rawValue: try reader.u32("field type")) else { throw .invalid("field type") }
                var spec = FieldSpec(kind: kind, name: name, type: type, unique: try reader.bool("field unique"),
                                     defaultInt: try reader.i64("field default"),
                                     defaultString: try reader.bytes("field default"))
                spec.migrated = try reader.bool("field migrated")
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
