import GameABI
import LogicKit
import Protocol

/// The operator's `--game-setting`s the game reads (ABI 1.3 `setting`).
/// Each is read where it is needed (a round's start, a gem taken, a JOIN, a
/// timer firing), never on every request; a missing or malformed value
/// falls back to the default.
enum Settings {
    /// How long a round lasts.
    static func roundSeconds(_ host: Host) -> Int64 {
        host.intSetting("round_seconds", default: 120, in: 1...86_400)
    }

    /// How long a taken gem stays gone.
    static func gemRespawnMilliseconds(_ host: Host) -> Int64 {
        host.intSetting("gem_respawn_ms", default: 5_000, in: 1...86_400_000)
    }

    /// Ticks per second of a room whose events are batched (written once
    /// per tick); 0, the default, writes them with each request.
    static func batchHz(_ host: Host) -> Int64 {
        host.intSetting("batch_hz", default: 0, in: 0...60)
    }

    /// How long a player in a room may send nothing before being moved out
    /// of it; 0 turns the rule off.
    static func afkSeconds(_ host: Host) -> Int64 {
        host.intSetting("afk_seconds", default: 300, in: 0...86_400)
    }
}

/// The game's timers. Each is engine data (an owner, an event name and a
/// payload), handled by whichever module serves when it comes due, so a
/// timer set before a RELOAD is handled by the new code. Nothing here is
/// kept between calls: what a timer needs to know travels in its payload,
/// and a timer that no longer matches the room it was set for is stale and
/// does nothing.
///
///     event        owner    payload                 fires
///     gem_respawn  room     the round it was set in  gem_respawn_ms after a gem is taken
///     round_end    room     the round it ends        round_seconds after the round starts
///     afk          session  the room it watches      afk_seconds after the last request
struct Timers {
    let host: Host

    static let gemRespawn: StaticString = "gem_respawn"
    static let roundEnd: StaticString = "round_end"
    static let afk: StaticString = "afk"

    // MARK: Setting them

    /// A taken gem comes back after `gem_respawn_ms` (in the same round only).
    func scheduleRespawn(in room: game_id) {
        let round = host.int(room, Field.round.rawValue) ?? 0
        set(room, Timers.gemRespawn, payload: round, after: UInt64(Settings.gemRespawnMilliseconds(host)))
    }

    /// The room's round `round` ends in `seconds`.
    func scheduleRoundEnd(of room: game_id, _ round: Int64, after seconds: Int64) {
        let timer = set(room, Timers.roundEnd, payload: round, after: UInt64(seconds) * 1000)
        host.setInt(room, Field.roundTimer.rawValue, Int64(bitPattern: timer))
    }

    /// Rooms and players that were there before this version was loaded (a
    /// RELOAD from 1.0.0, which had no clock) get their timers at their
    /// first request in the room: two field reads per request otherwise.
    func ensureClocks(room: game_id, session: game_id) {
        if (host.int(room, Field.roundTimer.rawValue) ?? 0) == 0 {
            scheduleRoundEnd(of: room, host.int(room, Field.round.rawValue) ?? 1, after: Settings.roundSeconds(host))
        }
        if (host.int(session, Field.afkTimer.rawValue) ?? 0) == 0 { armAFK(session, in: room) }
    }

    /// Watches `session`, which just joined `room`, for silence: one timer
    /// per session, whatever it sends (the request path only writes the
    /// time of the last request). A timer left from an earlier room goes.
    func armAFK(_ session: game_id, in room: game_id) {
        disarmAFK(session)
        let seconds = Settings.afkSeconds(host)
        guard seconds > 0 else { return }
        rearmAFK(session, in: room, after: UInt64(seconds) * 1000)
    }

    /// Cancels the session's AFK timer (the player left its room).
    func disarmAFK(_ session: game_id) {
        guard let timer = host.int(session, Field.afkTimer.rawValue), timer != 0 else { return }
        host.cancelTimer(game_id(bitPattern: timer))  // NOT_FOUND: it fired or ended already
        host.setInt(session, Field.afkTimer.rawValue, 0)
    }

    private func rearmAFK(_ session: game_id, in room: game_id, after milliseconds: UInt64) {
        let timer = set(session, Timers.afk, payload: Int64(bitPattern: room), after: milliseconds)
        host.setInt(session, Field.afkTimer.rawValue, Int64(bitPattern: timer))
    }

    /// Sets a one-shot timer; its id, or 0 when the engine refused it
    /// (logged: a room without its round_end would never end its round).
    @discardableResult
    private func set(_ owner: game_id, _ event: StaticString, payload: Int64, after milliseconds: UInt64) -> game_id {
        var value = payload.littleEndian
        let result = withUnsafeBytes(of: &value) { bytes in
            host.setTimer(on: owner, event, payload: bytes, delay: milliseconds)
        }
        if result.status != GAME_OK { host.log(GAME_LOG_WARNING, "gems: the engine refused a timer") }
        return result.status == GAME_OK ? result.timer : 0
    }

    // MARK: Firing

    /// Handles one due timer (`hotswap_timer`).
    func fire(_ event: game_timer_event) -> Int32 {
        let name = UnsafeRawBufferPointer(start: event.event, count: event.event_length)
        let payload = UnsafeRawBufferPointer(start: event.payload, count: event.payload_length)
        guard let value = Timers.decode(payload) else {
            host.log(GAME_LOG_WARNING, "gems: a timer with a payload this game does not write; ignored")
            return GAME_OK
        }
        let kind = event.owner >> 56
        if Timers.named(name, Timers.gemRespawn), kind == UInt64(GAME_KIND_ROOM) {
            respawnGem(in: event.owner, round: value)
        } else if Timers.named(name, Timers.roundEnd), kind == UInt64(GAME_KIND_ROOM) {
            endRound(of: event.owner, round: value)
        } else if Timers.named(name, Timers.afk), kind == UInt64(GAME_KIND_SESSION) {
            checkAFK(event.owner, room: game_id(bitPattern: value))
        } else {
            host.log(GAME_LOG_WARNING, "gems: unknown timer event (or owner kind); ignored")
        }
        return GAME_OK
    }

    /// A gem comes back on a cell with no gem and nobody on it: `>GEM x y`
    /// to the whole room. Stale (the round it was taken in is over, or the
    /// room is gone) it does nothing; with every cell taken it tries again
    /// later.
    func respawnGem(in room: game_id, round: Int64) {
        guard let current = host.int(room, Field.round.rawValue), current == round else { return }
        let gems = host.int(room, Field.gems.rawValue) ?? 0
        guard gems.nonzeroBitCount < Grid.gemsPerRound else { return }
        var taken = gems
        let count = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
        if count > 0 {
            withIDs(count) { members in
                let count = min(host.members(of: room, into: members), members.count)
                for member in members[0..<count] {
                    if let x = host.int(member, Field.x.rawValue), let y = host.int(member, Field.y.rawValue),
                        Grid.inside(x, y)
                    {
                        taken |= Grid.bit(x, y)
                    }
                }
            }
        }
        guard let cell = Grid.freeCell(taken: taken, seed: room ^ host.nowMilliseconds() ^ UInt64(bitPattern: gems)) else {
            scheduleRespawn(in: room)
            return
        }
        host.setInt(room, Field.gems.rawValue, gems | Grid.bit(cell.x, cell.y))
        withScratch(32) { buffer in
            var line = LineWriter.event(buffer)
            line.append("GEM ")
            line.append(cell.x)
            line.space()
            line.append(cell.y)
            host.broadcast(room, line)
        }
    }

    /// The round is over: `>ROUND_END n winner points` (the member with the
    /// most points this round, the earliest to join on a tie, `- 0` when
    /// nobody scored), then a fresh board and `>ROUND n+1 ends_in S`.
    func endRound(of room: game_id, round: Int64) {
        guard let current = host.int(room, Field.round.rawValue), current == round else { return }
        var winner: game_id = 0
        var best: Int64 = 0
        let count = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
        if count > 0 {
            withIDs(count) { members in
                let count = min(host.members(of: room, into: members), members.count)
                for member in members[0..<count] {
                    let points = host.int(member, Field.roundPoints.rawValue) ?? 0
                    if points > best {
                        best = points
                        winner = member
                    }
                }
            }
        }
        let game = Game(host: host, session: winner)
        withScratch(64) { buffer in
            var line = LineWriter.event(buffer)
            line.append("ROUND_END ")
            line.append(round)
            line.space()
            if winner != 0 { game.appendName(of: winner, to: &line) } else { line.append("-") }
            line.space()
            line.append(best)
            host.broadcast(room, line)
        }
        let seconds = game.startRound(room, round + 1)
        game.announceRound(in: room, round + 1, endsIn: seconds)
    }

    /// The session's AFK timer: silent for `afk_seconds` since its last
    /// request, the player is moved out of the room (`>LEAVE name afk` to
    /// the others, `>AFK room S` to the player); otherwise the timer is set
    /// again for the time left. A player no longer in the room the timer
    /// watches (it left, or joined another) is none of its business.
    func checkAFK(_ session: game_id, room watched: game_id) {
        guard let room = host.room(of: session), room == watched else { return }
        let seconds = Settings.afkSeconds(host)
        guard seconds > 0 else {  // turned off since (an engine upgrade with other settings)
            host.setInt(session, Field.afkTimer.rawValue, 0)
            return
        }
        let limit = seconds * 1000
        let last = host.int(session, Field.lastRequest.rawValue) ?? 0
        let idle = Int64(bitPattern: host.nowMilliseconds()) &- last
        if idle < limit {
            rearmAFK(session, in: room, after: UInt64(limit - max(idle, 0)))
            return
        }
        let game = Game(host: host, session: session)
        game.announce(in: room, "LEAVE", reason: "afk")
        withScratch(Game.maxRoomName + 48) { buffer in
            var line = LineWriter.event(buffer)
            line.append("AFK ")
            withScratch(Game.maxRoomName) { name in
                line.append(raw: host.name(of: room, into: name) ?? UnsafeRawBufferPointer(start: nil, count: 0))
            }
            line.space()
            line.append(seconds)
            host.send(session, line)
        }
        host.leave(session)
        host.setInt(session, Field.afkTimer.rawValue, 0)
    }

    // MARK: Helpers

    /// The 8-byte little-endian payload every timer of this game carries.
    static func decode(_ payload: UnsafeRawBufferPointer) -> Int64? {
        guard payload.count == 8 else { return nil }
        return Int64(littleEndian: payload.loadUnaligned(as: Int64.self))
    }

    /// Exact, case-sensitive comparison of an event name.
    static func named(_ bytes: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
        guard bytes.count == name.utf8CodeUnitCount else { return false }
        let expected = name.utf8Start
        for index in 0..<bytes.count where bytes[index] != expected[index] { return false }
        return true
    }
}
