import FaultGuard
import GameABI
import Logging
import Protocol
import UVKit

/// The engine's side of `game_state_table`: C-callable thunks that check
/// every argument a module passes before touching engine state.
///
/// A module is untrusted code as far as the engine's invariants go: ids may
/// be stale or forged, field indexes out of range, pointers NULL, lengths
/// absurd, lines full of CR/LF. Each thunk answers those with a GAME_ERR_*
/// code; none of them can make the engine read or write out of bounds.
/// Engine errors become `GAME_ERR_*` codes here and nowhere else.
enum StateTable {
    static func make(call context: UnsafeMutableRawPointer) -> game_state_table {
        game_state_table(
            size: UInt32(MemoryLayout<game_state_table>.size),
            abi_version: UInt32(GAME_ABI_VERSION),
            engine: context,
            reply: { t, bytes, length in
                StateTable.status(touching: { probe(bytes, length) }) { () throws(EngineError) in
                    let line = try StateTable.outputLine(bytes, length, markers: "+-")
                    try StateTable.hostOf(t).reply(line)
                }
            },
            send: { t, session, bytes, length in
                StateTable.status(touching: { probe(bytes, length) }) { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    let line = try StateTable.outputLine(bytes, length, markers: ">")
                    try host.world.send(to: GameID(raw: session), line)
                }
            },
            close_session: { t, session in
                StateTable.status { () throws(EngineError) in try StateTable.hostOf(t).requestClose(GameID(raw: session)) }
            },
            room_create: { t, name, length, out in
                StateTable.status(touching: { probe(name, min(length, Int(GAME_MAX_ROOM_NAME))); probe(out) }) { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    guard let out else { throw .badArgument }
                    out.pointee = try host.world.createRoom(named: try StateTable.roomName(name, length)).raw
                }
            },
            room_find: { t, name, length, out in
                StateTable.status(touching: { probe(name, min(length, Int(GAME_MAX_ROOM_NAME))); probe(out) }) { () throws(EngineError) in
                    guard let out else { throw .badArgument }
                    guard let id = StateTable.hostOf(t).world.findRoom(named: try StateTable.roomName(name, length)) else { throw .notFound }
                    out.pointee = id.raw
                }
            },
            room_join: { t, room, session in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    try host.world.join(GameID(raw: session), GameID(raw: room))
                }
            },
            room_leave: { t, session in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    try host.world.leaveRoom(GameID(raw: session))
                }
            },
            room_of: { t, session, out in
                StateTable.status(touching: { probe(out) }) { () throws(EngineError) in
                    guard let out else { throw .badArgument }
                    out.pointee = try StateTable.hostOf(t).world.room(of: GameID(raw: session))?.raw ?? 0
                }
            },
            room_members: { t, room, out, capacity, count in
                StateTable.status(touching: { probe(out, min(capacity, 1 << 20)); probe(count) }) { () throws(EngineError) in
                    guard let count, capacity >= 0, out != nil || capacity == 0 else { throw .badArgument }
                    try StateTable.hostOf(t).world.withMembers(of: GameID(raw: room)) { members in
                        for (index, member) in members.prefix(capacity).enumerated() { out![index] = member.raw }
                        count.pointee = members.count
                    }
                }
            },
            room_broadcast: { t, room, except, bytes, length in
                StateTable.status(touching: { probe(bytes, length) }) { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    let line = try StateTable.outputLine(bytes, length, markers: ">")
                    try host.world.broadcast(GameID(raw: room), except: except == 0 ? nil : GameID(raw: except), line)
                }
            },
            room_list: { t, out, capacity, count in
                StateTable.status(touching: { probe(out, min(capacity, 1 << 20)); probe(count) }) { () throws(EngineError) in
                    guard let count, capacity >= 0, out != nil || capacity == 0 else { throw .badArgument }
                    var total = 0
                    StateTable.hostOf(t).world.forEachRoom { id in
                        if total < capacity { out![total] = id.raw }
                        total += 1
                    }
                    count.pointee = total
                }
            },
            room_name: { t, room, buffer, capacity, length in
                StateTable.status(touching: { probe(buffer, min(capacity, Int(GAME_MAX_ROOM_NAME))); probe(length) }) { () throws(EngineError) in
                    guard let length, capacity >= 0, buffer != nil || capacity == 0 else { throw .badArgument }
                    try StateTable.hostOf(t).world.withName(of: GameID(raw: room)) { StateTable.copyOut($0, buffer, capacity, length) }
                }
            },
            get_int: { t, entity, field, out in
                StateTable.status(touching: { probe(out) }) { () throws(EngineError) in
                    guard let out else { throw .badArgument }
                    let host = StateTable.hostOf(t)
                    let binding = try host.binding(field)
                    out.pointee = host.world.int(binding, row: try host.world.row(of: GameID(raw: entity), for: binding, type: .int))
                }
            },
            set_int: { t, entity, field, value in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkWrite(entity)
                    let binding = try host.binding(field)
                    host.world.setInt(binding, row: try host.world.row(of: GameID(raw: entity), for: binding, type: .int), value)
                }
            },
            get_string: { t, entity, field, buffer, capacity, length in
                StateTable.status(touching: { probe(buffer, min(capacity, Int(GAME_MAX_STRING))); probe(length) }) { () throws(EngineError) in
                    guard let length, capacity >= 0, buffer != nil || capacity == 0 else { throw .badArgument }
                    let host = StateTable.hostOf(t)
                    let binding = try host.binding(field)
                    let row = try host.world.row(of: GameID(raw: entity), for: binding, type: .string)
                    host.world.withString(binding, row: row) { StateTable.copyOut($0, buffer, capacity, length) }
                }
            },
            set_string: { t, entity, field, bytes, length in
                StateTable.status(touching: { probe(bytes, min(length, Int(GAME_MAX_STRING))) }) { () throws(EngineError) in
                    let value = try StateTable.string(bytes, length)
                    let host = StateTable.hostOf(t)
                    try host.checkWrite(entity)
                    let binding = try host.binding(field)
                    try host.world.setString(binding, row: try host.world.row(of: GameID(raw: entity), for: binding, type: .string), value)
                }
            },
            find_by_string: { t, field, bytes, length, out in
                StateTable.status(touching: { probe(bytes, min(length, Int(GAME_MAX_STRING))); probe(out) }) { () throws(EngineError) in
                    guard let out else { throw .badArgument }
                    let value = try StateTable.string(bytes, length)
                    let host = StateTable.hostOf(t)
                    let binding = try host.binding(field)
                    guard binding.type == .string else { throw .badType }
                    out.pointee = 0
                    out.pointee = try host.world.find(binding, holding: value).raw
                }
            },
            now_ms: { t in
                fg_enter_engine()
                let now = StateTable.hostOf(t).nowMilliseconds
                fg_leave_engine()
                return now
            },
            log: { t, level, bytes, length in
                probe(bytes, min(length, Int(GAME_MAX_STRING)))
                fg_enter_engine()
                defer { fg_leave_engine() }
                let host = StateTable.hostOf(t)
                guard let text = try? StateTable.string(bytes, length) else { return }
                let message = String(decoding: text, as: UTF8.self)
                let swiftLevel: Logger.Level = switch level {
                case GAME_LOG_DEBUG: .debug
                case GAME_LOG_INFO: .info
                case GAME_LOG_WARNING: .warning
                default: .error
                }
                host.logger.log(level: swiftLevel, "\(message)", metadata: ["module": "\(host.module.name)"])
            },
            session_identified: { t, session in
                StateTable.status { () throws(EngineError) in try StateTable.hostOf(t).identified(GameID(raw: session)) }
            },
            player_attach: { t, session, key, length, out in
                StateTable.status(touching: { probe(key, min(length, Int(GAME_MAX_PLAYER_KEY))); probe(out) }) { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    guard let out, let key, length >= 1, length <= Int(GAME_MAX_PLAYER_KEY) else { throw .badArgument }
                    out.pointee = 0
                    try host.checkAttach(UnsafeRawBufferPointer(start: key, count: length))
                    out.pointee = try host.world.attachPlayer(
                        GameID(raw: session), key: UnsafeRawBufferPointer(start: key, count: length)).raw
                }
            },
            player_of: { t, session, out in
                StateTable.status(touching: { probe(out) }) { () throws(EngineError) in
                    guard let out else { throw .badArgument }
                    out.pointee = try StateTable.hostOf(t).world.player(of: GameID(raw: session))?.raw ?? 0
                }
            },
            player_detach: { t, session in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    try host.world.detachPlayer(GameID(raw: session))
                }
            },
            player_key: { t, player, buffer, capacity, length in
                StateTable.status(touching: { probe(buffer, min(capacity, Int(GAME_MAX_PLAYER_KEY))); probe(length) }) { () throws(EngineError) in
                    guard let length, capacity >= 0, buffer != nil || capacity == 0 else { throw .badArgument }
                    try StateTable.hostOf(t).world.withKey(of: GameID(raw: player)) { StateTable.copyOut($0, buffer, capacity, length) }
                }
            },
            timer_set: { t, owner, event, eventLength, payload, payloadLength, delay, period, out in
                StateTable.status(touching: {
                    probe(event, min(eventLength, Int(GAME_MAX_TIMER_EVENT)))
                    probe(payload, min(payloadLength, Int(GAME_MAX_TIMER_PAYLOAD)))
                    probe(out)
                }) { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    // A timer nobody could handle is refused, not kept.
                    guard host.module.timer != nil else { throw .notNow }
                    guard let out, let event, eventLength <= Int(GAME_MAX_TIMER_EVENT),
                        payloadLength <= Int(GAME_MAX_TIMER_PAYLOAD), payload != nil || payloadLength == 0
                    else { throw .badArgument }
                    out.pointee = 0
                    out.pointee = try host.world.setTimer(
                        owner: GameID(raw: owner), event: UnsafeRawBufferPointer(start: event, count: eventLength),
                        payload: UnsafeRawBufferPointer(start: payload, count: payloadLength),
                        delayMilliseconds: delay, periodMilliseconds: period, now: host.timeNow()).raw
                }
            },
            timer_cancel: { t, timer in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    try host.world.cancelTimer(GameID(raw: timer))
                }
            },
            room_set_tick_rate: { t, room, rate in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    guard rate == 0 || host.module.tick != nil else { throw .notNow }
                    try host.world.setTickRate(GameID(raw: room), rate: rate, now: host.timeNow())
                }
            },
            room_set_batching: { t, room, on in
                StateTable.status { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    try host.checkServing()
                    try host.world.setBatching(GameID(raw: room), on != 0)
                }
            },
            setting: { t, key, keyLength, buffer, capacity, length in
                StateTable.status(touching: {
                    probe(key, min(keyLength, Int(GAME_MAX_SETTING_KEY)))
                    probe(buffer, min(capacity, Int(GAME_MAX_STRING)))
                    probe(length)
                }) { () throws(EngineError) in
                    guard let key, keyLength >= 1, keyLength <= Int(GAME_MAX_SETTING_KEY), let length, capacity >= 0,
                        buffer != nil || capacity == 0
                    else { throw .badArgument }
                    let host = StateTable.hostOf(t)
                    let wanted = UnsafeRawBufferPointer(start: key, count: keyLength)
                    guard let value = host.settings.value(of: wanted) else { throw .notFound }
                    value.withUnsafeBytes { StateTable.copyOut($0, buffer, capacity, length) }
                }
            },
            auth_mode: { t in StateTable.hostOf(t).authMode.rawValue },
            auth_login: { t, session, identity, identityLength, secret, secretLength in
                StateTable.status(touching: {
                    probe(identity, min(identityLength, Int(GAME_MAX_AUTH_TOKEN)))
                    probe(secret, min(secretLength, Int(GAME_MAX_SECRET)))
                }) { () throws(EngineError) in
                    let host = StateTable.hostOf(t)
                    let most = host.authMode == .token ? Int(GAME_MAX_AUTH_TOKEN) : Int(GAME_MAX_PLAYER_KEY)
                    guard let identity, identityLength >= 1, identityLength <= most,
                        secretLength <= Int(GAME_MAX_SECRET), secret != nil || secretLength == 0,
                        host.authMode != .token || secretLength == 0
                    else { throw .badArgument }
                    let key = UnsafeRawBufferPointer(start: identity, count: identityLength)
                    // A key is TEXT in the database: UTF-8 without NUL (as player_attach).
                    guard host.authMode == .token || (Bytes.isValidUTF8(key) && !key.contains(0)) else { throw .badArgument }
                    try host.askAuth(AuthAsk(kind: .login, session: GameID(raw: session), identity: [UInt8](key),
                                             secret: secretLength == 0 ? [] : [UInt8](UnsafeRawBufferPointer(start: secret, count: secretLength))))
                }
            },
            auth_set_secret: { t, session, secret, secretLength in
                StateTable.status(touching: { probe(secret, min(secretLength, Int(GAME_MAX_SECRET))) }) { () throws(EngineError) in
                    guard let secret, secretLength >= 1, secretLength <= Int(GAME_MAX_SECRET) else { throw .badArgument }
                    try StateTable.hostOf(t).askAuth(AuthAsk(kind: .setSecret, session: GameID(raw: session), identity: [],
                                                             secret: [UInt8](UnsafeRawBufferPointer(start: secret, count: secretLength))))
                }
            },
            session_token: { t, session, buffer, capacity, length in
                StateTable.status(touching: { probe(buffer, min(capacity, ResumeToken.length)); probe(length) }) { () throws(EngineError) in
                    guard let buffer, let length, capacity >= ResumeToken.length else { throw .badArgument }
                    let token = try StateTable.hostOf(t).issueToken(for: GameID(raw: session))
                    token.withUnsafeBytes { StateTable.copyOut($0, buffer, capacity, length) }
                }
            },
            session_resume: { t, session, token, tokenLength, out, buffer, capacity, length in
                StateTable.status(touching: {
                    probe(token, min(tokenLength, 256))
                    probe(out)
                    probe(buffer, min(capacity, ResumeToken.length))
                    probe(length)
                }) { () throws(EngineError) in
                    guard let out, let buffer, let length, capacity >= ResumeToken.length, tokenLength >= 0,
                        token != nil || tokenLength == 0
                    else { throw .badArgument }
                    out.pointee = 0
                    let presented = UnsafeRawBufferPointer(start: token, count: tokenLength)
                    let (target, next) = try StateTable.hostOf(t).resume(token: presented, by: GameID(raw: session))
                    out.pointee = target.raw
                    next.withUnsafeBytes { StateTable.copyOut($0, buffer, capacity, length) }
                }
            },
            session_status: { t, session, out in
                StateTable.status(touching: { probe(out) }) { () throws(EngineError) in
                    guard let out else { throw .badArgument }
                    out.pointee = try StateTable.hostOf(t).sessionStatus(GameID(raw: session))
                }
            },
            undo: { t in
                StateTable.status { () throws(EngineError) in try StateTable.hostOf(t).undo() }
            },
            field_index: { t, kind, name, length, outType in
                var index: Int32 = GAME_ERR_NOT_FOUND
                var type: UInt32 = 0
                let status = StateTable.status(touching: { probe(name, min(length, Int(GAME_MAX_FIELD_NAME))); probe(outType) }) {
                    () throws(EngineError) in
                    guard let name, length <= Int(GAME_MAX_FIELD_NAME), let kind = EntityKind(rawValue: kind) else {
                        throw .badArgument
                    }
                    let wanted = UnsafeRawBufferPointer(start: name, count: length)
                    let fields = StateTable.hostOf(t).module.fields
                    guard let found = fields.firstIndex(where: { $0.kind == kind && $0.name.utf8.elementsEqual(wanted) })
                    else { throw .notFound }
                    index = Int32(found)
                    type = fields[found].type.rawValue
                }
                if status == GAME_OK, let outType { outType.pointee = type }
                return status == GAME_OK ? index : status
            })
    }

    /// Runs a thunk's body as an engine section and turns its outcome into
    /// a status code.
    ///
    /// The section tells the fault guard that engine code runs: a fault here
    /// is the engine's, never contained (crash report, exit), and a timeout
    /// that comes due waits until the section ends. `fg_leave_engine` is the
    /// last thing done, after the engine's state is consistent: when the
    /// module's call has timed out, it does not return but stops the call.
    ///
    /// `touching` runs first, outside the section: it reads or writes the
    /// module's own buffers once (`probe`), so a bad pointer from a module
    /// faults in the module's name (contained: one request) instead of in
    /// the middle of engine code (not containable: the process would die).
    @inline(__always)
    static func status(touching probe: () -> Void = {}, _ body: () throws(EngineError) -> Void) -> Int32 {
        probe()
        fg_enter_engine()
        let code: Int32
        do {
            try body()
            code = GAME_OK
        } catch {
            code = error.code
        }
        fg_leave_engine()
        return code
    }

    @inline(__always)
    /// The call in progress the table was handed for (`ModuleCall`).
    static func hostOf(_ table: UnsafePointer<game_state_table>?) -> ModuleCall {
        UVContext.object(table!.pointee.engine, as: ModuleCall.self)
    }

    /// A line a module wants sent: non-empty, starting with one of
    /// `markers`, at most GAME_MAX_OUTPUT_LINE bytes, and free of CR, LF and
    /// NUL (which would let a module, or a player's text it forwards, forge
    /// protocol lines).
    static func outputLine(_ bytes: UnsafePointer<UInt8>?, _ length: Int, markers: StaticString)
        throws(EngineError) -> UnsafeRawBufferPointer
    {
        guard let bytes, length > 0, length <= Int(GAME_MAX_OUTPUT_LINE) else { throw .badArgument }
        let first = bytes[0]
        guard UnsafeBufferPointer(start: markers.utf8Start, count: markers.utf8CodeUnitCount).contains(first) else {
            throw .badArgument
        }
        for index in 0..<length {
            let byte = bytes[index]
            if byte == 0x0A || byte == 0x0D || byte == 0x00 { throw .badArgument }
        }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    static func string(_ bytes: UnsafePointer<UInt8>?, _ length: Int) throws(EngineError) -> UnsafeRawBufferPointer {
        guard length >= 0, length <= Int(GAME_MAX_STRING) else { throw .badArgument }
        if length == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let bytes else { throw .badArgument }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    static func roomName(_ bytes: UnsafePointer<UInt8>?, _ length: Int) throws(EngineError) -> UnsafeRawBufferPointer {
        guard length >= 1, length <= Int(GAME_MAX_ROOM_NAME), let bytes else { throw .badArgument }
        return UnsafeRawBufferPointer(start: bytes, count: length)
    }

    /// Copies at most `capacity` bytes out and always reports the full length.
    static func copyOut(
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

/// Reads one byte of every page of a module's input range (outside engine
/// sections: see `StateTable.status`). Lengths are bounded by the caller to
/// what the engine could read, so an absurd length is not probed past it.
@inline(__always)
func probe(_ pointer: UnsafePointer<UInt8>?, _ length: Int) {
    guard let pointer, length > 0 else { return }
    var offset = 0
    var sink: UInt8 = 0
    while offset < length {
        sink ^= pointer[offset]
        offset += 4096
    }
    sink ^= pointer[length - 1]
    probeSink = sink
}

/// Rewrites one byte of every page of a module's output range with its own
/// value (a read-only or unmapped page faults; the contents do not change),
/// outside engine sections.
@inline(__always)
func probe<T>(_ pointer: UnsafeMutablePointer<T>?, _ count: Int = 1) {
    guard let pointer, count > 0 else { return }
    let bytes = UnsafeMutableRawPointer(pointer)
    let length = count * MemoryLayout<T>.stride
    var offset = 0
    while offset < length {
        bytes.storeBytes(of: bytes.load(fromByteOffset: offset, as: UInt8.self), toByteOffset: offset, as: UInt8.self)
        offset += 4096
    }
    bytes.storeBytes(of: bytes.load(fromByteOffset: length - 1, as: UInt8.self), toByteOffset: length - 1, as: UInt8.self)
}

/// Where `probe` leaves what it read, so the reads are not optimised away.
nonisolated(unsafe) var probeSink: UInt8 = 0

extension EngineError {
    /// The ABI's status code for this error.
    var code: Int32 {
        switch self {
        case .badSession: GAME_ERR_BAD_SESSION
        case .badRoom: GAME_ERR_BAD_ROOM
        case .badPlayer: GAME_ERR_BAD_PLAYER
        case .badField: GAME_ERR_BAD_FIELD
        case .badType: GAME_ERR_BAD_TYPE
        case .badArgument: GAME_ERR_BAD_ARGUMENT
        case .notFound: GAME_ERR_NOT_FOUND
        case .exists: GAME_ERR_EXISTS
        case .limit: GAME_ERR_LIMIT
        case .notNow: GAME_ERR_STATE
        case .badSecret: GAME_ERR_BAD_SECRET
        }
    }
}
