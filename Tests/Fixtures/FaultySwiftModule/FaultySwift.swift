// Test fixture: a Swift logic module (on LogicKit) that traps on request, for
// the fault guard. Same small protocol as the C FaultyModule:
//   LOGIN name | JOIN room | SET n | GET | SAY text
//   FAULT fatal     fatalError()                                  SIGILL (x86) / SIGTRAP (arm64)
//   FAULT index     array index out of range, size unknown to the compiler
//   FAULT overflow  Int64 overflow on values the compiler cannot fold
// Each FAULT first sets score = 999, broadcasts ">SAY name before-fault" to
// the room and sends ">SELF before-fault kind" to itself, then traps.
import GameABI
import LogicKit
import Protocol

enum Field: Int32 {
    case score = 0, name
}

@_cdecl("hotswap_abi_version")
public func hotswapABIVersion() -> UInt32 { UInt32(GAME_ABI_VERSION) }

@_cdecl("hotswap_describe")
public func hotswapDescribe(_ describer: UnsafePointer<game_describer>?) -> Int32 {
    guard let describer else { return GAME_ERR_BAD_ARGUMENT }
    return describe(describer, name: "faulty-swift", version: "1.0.0", fields: [
        .int(GAME_KIND_SESSION, "score"),
        .string(GAME_KIND_SESSION, "name", unique: true),
    ])
}

@_cdecl("hotswap_handle")
public func hotswapHandle(_ message: UnsafePointer<game_message>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
    guard let message, let table else { return GAME_ERR_BAD_ARGUMENT }
    let host = Host(table)
    let session = message.pointee.session
    let line = UnsafeRawBufferPointer(start: message.pointee.line, count: message.pointee.length)
    guard let request = Request(line: line) else { return host.reply("-ERR EMPTY") }

    if request.verbIs("LOGIN") {
        guard !request.arguments.isEmpty else { return host.reply("-ERR BAD_NAME") }
        let status = host.setString(session, Field.name.rawValue, request.arguments)
        if status == GAME_ERR_EXISTS { return host.reply("-ERR NAME_TAKEN") }
        guard status == GAME_OK else { return host.reply("-ERR BAD_NAME") }
        host.identified(session)
        return host.reply("+OK")
    }
    if request.verbIs("JOIN") {
        guard !request.arguments.isEmpty else { return host.reply("-ERR NO_ROOM") }
        var room = host.findRoom(request.arguments)
        if room == nil {
            let created = host.createRoom(request.arguments)
            if created.status == GAME_OK { room = created.room }
        }
        guard let room, host.join(room, session) == GAME_OK else { return host.reply("-ERR CANNOT_JOIN") }
        return withScratch(128) { buffer in
            var reply = LineWriter.reply(buffer)
            reply.append("JOINED ")
            reply.appendText(request.arguments)
            return host.reply(reply)
        }
    }
    if request.verbIs("SET") {
        var value: Int64 = 0
        var negative = false
        for (index, byte) in request.arguments.enumerated() {
            if index == 0, byte == UInt8(ascii: "-") { negative = true; continue }
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) else { return host.reply("-ERR BAD_NUMBER") }
            value = value &* 10 &+ Int64(byte - UInt8(ascii: "0"))
        }
        host.setInt(session, Field.score.rawValue, negative ? -value : value)
        return host.reply("+OK")
    }
    if request.verbIs("GET") {
        return withScratch(64) { buffer in
            var reply = LineWriter.reply(buffer)
            reply.append("VALUE ")
            reply.append(host.int(session, Field.score.rawValue) ?? 0)
            return host.reply(reply)
        }
    }
    if request.verbIs("SAY") {
        guard let room = host.room(of: session) else { return host.reply("-ERR NOT_IN_ROOM") }
        broadcast(host, session, room, text: request.arguments)
        return host.reply("+OK")
    }
    if request.verbIs("FAULT") {
        return fault(host, session, kind: request.arguments)
    }
    return host.reply("-ERR UNKNOWN_COMMAND")
}

private func broadcast(_ host: Host, _ session: game_id, _ room: game_id, text: UnsafeRawBufferPointer) {
    withScratch(512) { buffer in
        var line = LineWriter.event(buffer)
        line.append("SAY ")
        withScratch(64) { scratch in
            if let name = host.string(session, Field.name.rawValue, into: scratch), !name.isEmpty {
                line.append(raw: name)
            } else {
                line.append("anonymous")
            }
        }
        line.space()
        line.appendText(text)
        host.broadcast(room, line)
    }
}

private func fault(_ host: Host, _ session: game_id, kind: UnsafeRawBufferPointer) -> Int32 {
    host.setInt(session, Field.score.rawValue, 999)
    if let room = host.room(of: session) {
        "before-fault".utf8CString.withUnsafeBytes { text in
            broadcast(host, session, room, text: UnsafeRawBufferPointer(rebasing: text.dropLast()))
        }
    }
    withScratch(128) { buffer in
        var line = LineWriter.event(buffer)
        line.append("SELF before-fault ")
        line.appendText(kind)
        host.send(session, line)
    }
    let kindIs = { (name: StaticString) in Bytes.equalsIgnoringCase(kind, upper: name) }
    if kindIs("FATAL") {
        fatalError("FaultySwiftModule: FAULT fatal")
    }
    if kindIs("INDEX") {
        // The array's size comes from the request: the compiler cannot see it.
        let values = [Int](repeating: 7, count: kind.count)
        let index = kind.count + Int(host.int(session, Field.score.rawValue) ?? 0)
        return Int32(truncatingIfNeeded: values[index])
    }
    if kindIs("OVERFLOW") {
        // 999 comes from the engine, so nothing can be folded at compile time.
        let score = host.int(session, Field.score.rawValue) ?? 1
        let sum = Int64.max - Int64(kind.count) + score
        return Int32(truncatingIfNeeded: sum)
    }
    return host.reply("-ERR UNKNOWN_FAULT")
}
