// The default game's clock in "v2" (the same rules as Sources/GameLogic/
// Timers.swift, written again here: a module owns its code). Every timer
// carries an 8-byte little-endian payload: the round (round_end,
// gem_respawn) or the watched room (afk). The lines are the same as 1.1.0's.
import GameABI
import LogicKit
import Protocol

@_cdecl("hotswap_timer")
public func hotswapTimer(_ event: UnsafePointer<game_timer_event>?, _ table: UnsafePointer<game_state_table>?) -> Int32 {
    guard let event, let table else { return GAME_ERR_BAD_ARGUMENT }
    let host = Host(table)
    let e = event.pointee
    let name = UnsafeRawBufferPointer(start: e.event, count: e.event_length)
    let payload = UnsafeRawBufferPointer(start: e.payload, count: e.payload_length)
    guard payload.count == 8 else { return GAME_OK }
    let value = Int64(littleEndian: payload.loadUnaligned(as: Int64.self))
    if equals(name, "round_end") {
        endRound(host, room: e.owner, round: value)
    } else if equals(name, "gem_respawn") {
        respawnGem(host, room: e.owner, round: value)
    } else if equals(name, "afk") {
        checkAFK(host, session: e.owner, room: game_id(bitPattern: value))
    } else {
        host.log(GAME_LOG_WARNING, "gems v2: unknown timer event; ignored")
    }
    return GAME_OK
}

private func equals(_ bytes: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
    bytes.count == name.utf8CodeUnitCount && bytes.elementsEqual(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
}

private func setTimer(_ host: Host, _ owner: game_id, _ event: StaticString, _ payload: Int64, after milliseconds: Int64) -> game_id {
    var value = payload.littleEndian
    let result = withUnsafeBytes(of: &value) { host.setTimer(on: owner, event, payload: $0, delay: UInt64(milliseconds)) }
    return result.status == GAME_OK ? result.timer : 0
}

private func members(_ host: Host, _ room: game_id, _ body: (UnsafeMutableBufferPointer<game_id>.SubSequence) -> Void) {
    let count = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
    guard count > 0 else { return }
    withIDs(count) { ids in body(ids[0..<min(host.members(of: room, into: ids), ids.count)]) }
}

private func broadcast(_ host: Host, _ room: game_id, except: game_id = 0, _ build: (inout LineWriter) -> Void) {
    withScratch(96) { buffer in
        var line = LineWriter.event(buffer)
        build(&line)
        host.broadcast(room, except: except, line)
    }
}

private func appendName(_ host: Host, _ session: game_id, _ line: inout LineWriter) {
    withScratch(16) { name in
        if let bytes = host.string(session, Field.name.rawValue, into: name) { line.append(raw: bytes) }
    }
}

private func splitmix(_ state: inout UInt64) -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

private func endRound(_ host: Host, room: game_id, round: Int64) {
    guard let current = host.int(room, Field.round.rawValue), current == round else { return }
    var winner: game_id = 0
    var best: Int64 = 0
    members(host, room) { ids in
        for member in ids {
            let points = host.int(member, Field.roundPoints.rawValue) ?? 0
            if points > best { (best, winner) = (points, member) }
        }
    }
    broadcast(host, room) { line in
        line.append("ROUND_END ")
        line.append(round)
        line.space()
        if winner != 0 { appendName(host, winner, &line) } else { line.append("-") }
        line.space()
        line.append(best)
    }
    // The next round: six fresh gems, points back to 0, its own round_end.
    var state = room ^ host.nowMilliseconds() ^ UInt64(bitPattern: round)
    var board: Int64 = 0
    while board.nonzeroBitCount < 6 { board |= 1 << Int64(splitmix(&state) % 64) }
    host.setInt(room, Field.round.rawValue, round + 1)
    host.setInt(room, Field.gems.rawValue, board)
    members(host, room) { ids in for member in ids { host.setInt(member, Field.roundPoints.rawValue, 0) } }
    let seconds = host.intSetting("round_seconds", default: 120, in: 1...86_400)
    _ = setTimer(host, room, "round_end", round + 1, after: seconds * 1000)
    broadcast(host, room) { line in
        line.append("ROUND ")
        line.append(round + 1)
        line.append(" ends_in ")
        line.append(seconds)
    }
}

private func respawnGem(_ host: Host, room: game_id, round: Int64) {
    guard let current = host.int(room, Field.round.rawValue), current == round else { return }
    let gems = host.int(room, Field.gems.rawValue) ?? 0
    guard gems.nonzeroBitCount < 6 else { return }
    var taken = gems
    members(host, room) { ids in
        for member in ids {
            if let x = host.int(member, Field.x.rawValue), let y = host.int(member, Field.y.rawValue),
                (0..<8).contains(x), (0..<8).contains(y)
            {
                taken |= 1 << (y * 8 + x)
            }
        }
    }
    guard taken != -1 else {
        _ = setTimer(host, room, "gem_respawn", round, after: host.intSetting("gem_respawn_ms", default: 5_000, in: 1...86_400_000))
        return
    }
    var state = room ^ host.nowMilliseconds() ^ UInt64(bitPattern: gems)
    var cell = Int64(splitmix(&state) % 64)
    while taken & (1 << cell) != 0 { cell = (cell + 1) % 64 }
    host.setInt(room, Field.gems.rawValue, gems | (1 << cell))
    broadcast(host, room) { line in
        line.append("GEM ")
        line.append(cell % 8)
        line.space()
        line.append(cell / 8)
    }
}

private func checkAFK(_ host: Host, session: game_id, room watched: game_id) {
    guard let room = host.room(of: session), room == watched else { return }
    let seconds = host.intSetting("afk_seconds", default: 300, in: 0...86_400)
    guard seconds > 0 else { return }
    let idle = Int64(bitPattern: host.nowMilliseconds()) &- (host.int(session, Field.lastRequest.rawValue) ?? 0)
    if idle < seconds * 1000 {
        let timer = setTimer(host, session, "afk", Int64(bitPattern: room), after: seconds * 1000 - max(idle, 0))
        host.setInt(session, Field.afkTimer.rawValue, Int64(bitPattern: timer))
        return
    }
    broadcast(host, room, except: session) { line in
        line.append("LEAVE ")
        appendName(host, session, &line)
        line.append(" afk")
    }
    withScratch(96) { buffer in
        var line = LineWriter.event(buffer)
        line.append("AFK ")
        withScratch(64) { name in
            if let bytes = host.name(of: room, into: name) { line.append(raw: bytes) }
        }
        line.space()
        line.append(seconds)
        host.send(session, line)
    }
    host.leave(session)
    host.setInt(session, Field.afkTimer.rawValue, 0)
}
