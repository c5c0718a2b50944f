import CLibUV
import GameABI
import Glibc
import Logging

/// The engine's side of `game_state_table`: C-callable thunks that check
/// every argument a module passes before touching engine state.
///
/// A module is untrusted code as far as the engine's invariants go: ids may
/// be stale or forged, field indexes out of range, pointers NULL, lengths
/// absurd, lines full of CR/LF. Each thunk answers those with a GAME_ERR_*
/// code; none of them can make the engine read or write out of bounds.
enum StateTable {
    /// The longest line a module may emit; longer ones are refused.
    static let maxOutputLine = 64 * 1024

    static func make(engine: UnsafeMutableRawPointer) -> game_state_table {
        game_state_table(
            size: UInt32(MemoryLayout<game_state_table>.size),
            abi_version: UInt32(GAME_ABI_VERSION),
            engine: engine,
            reply: { t, bytes, length in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving, let current = engine.current else { return GAME_ERR_STATE }
                if engine.replied { return GAME_ERR_STATE }
                guard let line = StateTable.line(bytes, length, markers: "+-") else { return GAME_ERR_BAD_ARGUMENT }
                engine.replied = true
                current.connection.enqueue(line: line)
                return GAME_OK
            },
            send: { t, session, bytes, length in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                guard let slot = engine.sessions.slotIndex(of: GameID(raw: session)) else { return GAME_ERR_BAD_SESSION }
                guard let line = StateTable.line(bytes, length, markers: ">") else { return GAME_ERR_BAD_ARGUMENT }
                engine.sessions[slot: slot].connection.enqueue(line: line)
                return GAME_OK
            },
            close_session: { t, session in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                let id = GameID(raw: session)
                guard let record = engine.sessions[id] else { return GAME_ERR_BAD_SESSION }
                if !record.closing && !engine.pendingCloses.contains(id) { engine.pendingCloses.append(id) }
                return GAME_OK
            },
            room_create: { t, name, length, out in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                guard let out, let name = StateTable.roomName(name, length) else { return GAME_ERR_BAD_ARGUMENT }
                switch engine.createRoom(named: name) {
                case .success(let id): out.pointee = id.raw; return GAME_OK
                case .failure(.exists): return GAME_ERR_EXISTS
                case .failure(.limit): return GAME_ERR_LIMIT
                }
            },
            room_find: { t, name, length, out in
                let engine = StateTable.engine(t)
                guard let out, let name = StateTable.roomName(name, length) else { return GAME_ERR_BAD_ARGUMENT }
                guard let id = engine.findRoom(named: name) else { return GAME_ERR_NOT_FOUND }
                out.pointee = id.raw
                return GAME_OK
            },
            room_join: { t, room, session in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                return engine.join(GameID(raw: session), GameID(raw: room))
            },
            room_leave: { t, session in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                return engine.leaveRoom(GameID(raw: session))
            },
            room_of: { t, session, out in
                let engine = StateTable.engine(t)
                guard let out else { return GAME_ERR_BAD_ARGUMENT }
                guard let record = engine.sessions[GameID(raw: session)] else { return GAME_ERR_BAD_SESSION }
                out.pointee = record.room?.raw ?? 0
                return GAME_OK
            },
            room_members: { t, room, out, capacity, count in
                let engine = StateTable.engine(t)
                guard let count, capacity >= 0, out != nil || capacity == 0 else { return GAME_ERR_BAD_ARGUMENT }
                guard let value = engine.rooms[GameID(raw: room)] else { return GAME_ERR_BAD_ROOM }
                for (index, member) in value.members.prefix(capacity).enumerated() { out![index] = member.raw }
                count.pointee = value.members.count
                return GAME_OK
            },
            room_broadcast: { t, room, except, bytes, length in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                guard let line = StateTable.line(bytes, length, markers: ">") else { return GAME_ERR_BAD_ARGUMENT }
                return engine.broadcast(GameID(raw: room), except: except == 0 ? nil : GameID(raw: except), line)
            },
            room_list: { t, out, capacity, count in
                let engine = StateTable.engine(t)
                guard let count, capacity >= 0, out != nil || capacity == 0 else { return GAME_ERR_BAD_ARGUMENT }
                var total = 0
                engine.rooms.forEachID { id in
                    if total < capacity { out![total] = id.raw }
                    total += 1
                }
                count.pointee = total
                return GAME_OK
            },
            room_name: { t, room, buffer, capacity, length in
                let engine = StateTable.engine(t)
                guard let length, capacity >= 0, buffer != nil || capacity == 0 else { return GAME_ERR_BAD_ARGUMENT }
                guard let value = engine.rooms[GameID(raw: room)] else { return GAME_ERR_BAD_ROOM }
                value.name.withUnsafeBytes { StateTable.copyOut($0, buffer, capacity, length) }
                return GAME_OK
            },
            get_int: { t, entity, field, out in
                let engine = StateTable.engine(t)
                guard let out else { return GAME_ERR_BAD_ARGUMENT }
                switch engine.resolve(entity, field, .int) {
                case .success(let (binding, row)): out.pointee = engine.store.int(binding, row: row); return GAME_OK
                case .failure(let code): return code.rawValue
                }
            },
            set_int: { t, entity, field, value in
                let engine = StateTable.engine(t)
                switch engine.resolve(entity, field, .int) {
                case .success(let (binding, row)): engine.store.setInt(binding, row: row, value); return GAME_OK
                case .failure(let code): return code.rawValue
                }
            },
            get_string: { t, entity, field, buffer, capacity, length in
                let engine = StateTable.engine(t)
                guard let length, capacity >= 0, buffer != nil || capacity == 0 else { return GAME_ERR_BAD_ARGUMENT }
                switch engine.resolve(entity, field, .string) {
                case .success(let (binding, row)):
                    engine.store.withString(binding, row: row) { StateTable.copyOut($0, buffer, capacity, length) }
                    return GAME_OK
                case .failure(let code): return code.rawValue
                }
            },
            set_string: { t, entity, field, bytes, length in
                let engine = StateTable.engine(t)
                guard let value = StateTable.string(bytes, length) else { return GAME_ERR_BAD_ARGUMENT }
                switch engine.resolve(entity, field, .string) {
                case .success(let (binding, row)):
                    return engine.store.setString(binding, row: row, value) ? GAME_OK : GAME_ERR_EXISTS
                case .failure(let code): return code.rawValue
                }
            },
            find_by_string: { t, field, bytes, length, out in
                let engine = StateTable.engine(t)
                guard let out, let value = StateTable.string(bytes, length) else { return GAME_ERR_BAD_ARGUMENT }
                guard field >= 0, Int(field) < engine.bindings.count else { return GAME_ERR_BAD_FIELD }
                let binding = engine.bindings[Int(field)]
                guard binding.type == .string else { return GAME_ERR_BAD_TYPE }
                guard engine.store.isUnique(binding) else { return GAME_ERR_BAD_FIELD }
                guard let row = engine.store.row(binding, holding: value) else { return GAME_ERR_NOT_FOUND }
                out.pointee = engine.liveID(kind: binding.kind, row: row)?.raw ?? 0
                return out.pointee == 0 ? GAME_ERR_NOT_FOUND : GAME_OK
            },
            now_ms: { t in
                uv_now(StateTable.engine(t).loop)
            },
            log: { t, level, bytes, length in
                let engine = StateTable.engine(t)
                guard let text = StateTable.string(bytes, length) else { return }
                let message = String(decoding: text, as: UTF8.self)
                let swiftLevel: Logger.Level = switch level {
                case GAME_LOG_DEBUG: .debug
                case GAME_LOG_INFO: .info
                case GAME_LOG_WARNING: .warning
                default: .error
                }
                engine.logger.log(level: swiftLevel, "\(message)", metadata: ["module": "\(engine.module.name)"])
            },
            session_identified: { t, session in
                let engine = StateTable.engine(t)
                guard engine.phase == .serving else { return GAME_ERR_STATE }
                guard let record = engine.sessions[GameID(raw: session)] else { return GAME_ERR_BAD_SESSION }
                record.connection.identified = true
                return GAME_OK
            })
    }

    private static func engine(_ table: UnsafePointer<game_state_table>?) -> Engine {
        Unmanaged<Engine>.fromOpaque(table!.pointee.engine).takeUnretainedValue()
    }

    /// A line a module wants sent: non-empty, starting with one of
    /// `markers`, bounded, and free of CR, LF and NUL (which would let a
    /// module, or a player's text it forwards, forge protocol lines).
    private static func line(_ bytes: UnsafePointer<UInt8>?, _ length: Int, markers: StaticString) -> UnsafeRawBufferPointer? {
        guard let bytes, length > 0, length <= maxOutputLine else { return nil }
        let first = bytes[0]
        guard UnsafeBufferPointer(start: markers.utf8Start, count: markers.utf8CodeUnitCount).contains(first) else {
            return nil
        }
        for index in 0..<length {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D || byte == 0x00 { return nil }
        }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    private static func string(_ bytes: UnsafePointer<UInt8>?, _ length: Int) -> UnsafeRawBufferPointer? {
        guard length >= 0, length <= Int(GAME_MAX_STRING) else { return nil }
        if length == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let bytes else { return nil }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    private static func roomName(_ bytes: UnsafePointer<UInt8>?, _ length: Int) -> UnsafeRawBufferPointer? {
        guard length >= 1, length <= 64, let bytes else { return nil }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    private static func copyOut(
        _ source: UnsafeRawBufferPointer, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
        _ length: UnsafeMutablePointer<Int>
    ) {
        let taken = min(capacity, source.count)
        if taken > 0, let buffer, let base = source.baseAddress {
            UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: taken)
        }
        length.pointee = source.count
    }
}

/// A GAME_ERR_* code as a Swift error, for `Result`.
struct ABIError: Error {
    let rawValue: Int32
    static let badSession = ABIError(rawValue: GAME_ERR_BAD_SESSION)
    static let badRoom = ABIError(rawValue: GAME_ERR_BAD_ROOM)
    static let badField = ABIError(rawValue: GAME_ERR_BAD_FIELD)
    static let badType = ABIError(rawValue: GAME_ERR_BAD_TYPE)
    static let badArgument = ABIError(rawValue: GAME_ERR_BAD_ARGUMENT)
}

extension Engine {
    /// Checks a (entity, field) pair from a module and finds its storage:
    /// the field must exist, be of `type`, belong to the entity's kind, and
    /// the entity must be alive.
    func resolve(_ entity: UInt64, _ field: Int32, _ type: FieldType) -> Result<(FieldBinding, Int), ABIError> {
        guard field >= 0, Int(field) < bindings.count else { return .failure(.badField) }
        let binding = bindings[Int(field)]
        let id = GameID(raw: entity)
        guard let kind = id.kind else { return .failure(.badArgument) }
        guard kind == binding.kind else { return .failure(.badField) }
        guard binding.type == type else { return .failure(.badType) }
        let row: Int?
        switch kind {
        case .global: row = id == GameID.global ? 0 : nil
        case .session: row = sessions.slotIndex(of: id)
        case .room: row = rooms.slotIndex(of: id)
        }
        guard let row else { return .failure(kind == .room ? .badRoom : .badSession) }
        return .success((binding, row))
    }

    /// The id of the live entity in `row` of a kind's table.
    func liveID(kind: EntityKind, row: Int) -> GameID? {
        switch kind {
        case .global: return GameID.global
        case .session: return row < sessions.capacity ? sessions.id(ofSlot: row) : nil
        case .room: return row < rooms.capacity ? rooms.id(ofSlot: row) : nil
        }
    }
}
