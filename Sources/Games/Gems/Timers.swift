import GameABI
import LogicKit

/// The operator's `--game-setting`s the game reads, where it needs them
/// (a missing or malformed value falls back to the default).
enum Settings {
    /// How long a round lasts.
    static func roundSeconds(_ c: Context<Gems>) -> Int { c.setting("round_seconds", default: 120, in: 1...86_400) }
    /// How long a taken gem stays gone.
    static func gemRespawnMilliseconds(_ c: Context<Gems>) -> Int {
        c.setting("gem_respawn_ms", default: 5_000, in: 1...86_400_000)
    }
    /// Ticks per second of a room whose events are batched; 0 (default)
    /// writes them with each request.
    static func batchHz(_ c: Context<Gems>) -> Int { c.setting("batch_hz", default: 0, in: 0...60) }
    /// Silence after which a player is moved out of its room; 0: never.
    static func afkSeconds(_ c: Context<Gems>) -> Int { c.setting("afk_seconds", default: 300, in: 0...86_400) }
}

/// The game's timers: engine data (owner, event, payload) handled by
/// whichever module serves when they come due. What a timer needs travels
/// in its payload (8 bytes, little-endian, as since 1.1.0), and a timer
/// that no longer matches its room is stale and does nothing.
///
///     event        owner    payload                  fires
///     gem_respawn  room     the round it was set in  gem_respawn_ms after a gem is taken
///     round_end    room     the round it ends        round_seconds after the round starts
///     afk          session  the room it watches      afk_seconds after the last request
enum Timers {
    static func payload(_ value: Int) -> Line {
        var line = Line()
        withUnsafeBytes(of: Int64(value).littleEndian) { line.append(raw: $0) }
        return line
    }

    static func decode(_ payload: Text) -> Int? {
        guard payload.count == 8 else { return nil }
        return Int(Int64(littleEndian: payload.bytes.loadUnaligned(as: Int64.self)))
    }

    /// A taken gem comes back after `gem_respawn_ms` (in the same round only).
    static func scheduleRespawn(_ c: Context<Gems>, in room: Gems.Room) {
        if c.after(Settings.gemRespawnMilliseconds(c), "gem_respawn", on: room, payload: payload(room.round)) == nil {
            c.log("gems: the engine refused a timer", level: GAME_LOG_WARNING)
        }
    }

    /// The room's round `round` ends in `seconds`.
    static func scheduleRoundEnd(_ c: Context<Gems>, of room: Gems.Room, _ round: Int, after seconds: Int) {
        let timer = c.after(seconds * 1000, "round_end", on: room, payload: payload(round))
        room.roundTimer = Int(Int64(bitPattern: timer ?? 0))
    }

    /// Handles one due timer.
    static func fire(_ c: Context<Gems>, _ timer: TimerFired) {
        guard let value = decode(timer.payload) else {
            c.log("gems: a timer with a payload this game does not write; ignored", level: GAME_LOG_WARNING)
            return
        }
        let kind = Int32(truncatingIfNeeded: timer.owner >> 56)
        if timer.event == "gem_respawn", kind == GAME_KIND_ROOM {
            respawnGem(c, in: c.room(timer.owner), round: value)
        } else if timer.event == "round_end", kind == GAME_KIND_ROOM {
            endRound(c, of: c.room(timer.owner), round: value)
        } else if timer.event == "afk", kind == GAME_KIND_SESSION {
            checkAFK(c, c.session(timer.owner), room: game_id(UInt64(bitPattern: Int64(value))))
        } else {
            c.log("gems: unknown timer event (or owner kind); ignored", level: GAME_LOG_WARNING)
        }
    }

    /// A gem comes back on a free cell nobody stands on: `>GEM x y`.
    static func respawnGem(_ c: Context<Gems>, in room: Gems.Room, round: Int) {
        guard room.memberCount > 0 || room.round != 0, room.round == round else { return }
        let gems = room.gems
        guard gems.nonzeroBitCount < Grid.gemsPerRound else { return }
        var taken = gems
        try? room.forEachMember { member throws(Refusal) in
            if Grid.inside(member.x, member.y) { taken |= Grid.bit(member.x, member.y) }
        }
        guard let cell = Grid.freeCell(taken: taken, seed: room.id ^ c.host.nowMilliseconds() ^ UInt64(bitPattern: Int64(gems)))
        else {
            scheduleRespawn(c, in: room)
            return
        }
        room.gems = gems | Grid.bit(cell.x, cell.y)
        room.broadcast(">GEM \(cell.x) \(cell.y)")
    }

    /// `>ROUND_END n winner points` (the most points this round, the
    /// earliest to join on a tie, `- 0` when nobody scored), then a fresh
    /// board and `>ROUND n+1 ends_in S`.
    static func endRound(_ c: Context<Gems>, of room: Gems.Room, round: Int) {
        guard room.round == round, round != 0 else { return }
        var winner: Gems.Session?
        var best = 0
        try? room.forEachMember { member throws(Refusal) in
            if member.roundPoints > best {
                best = member.roundPoints
                winner = member
            }
        }
        if let winner {
            room.broadcast(">ROUND_END \(round) \(winner.text(\.name)) \(best)")
        } else {
            room.broadcast(">ROUND_END \(round) - 0")
        }
        Gems.startRound(c, room, round + 1)
        room.broadcast(">ROUND \(round + 1) ends_in \(Settings.roundSeconds(c))")
    }

    /// Watches a session that joined `room` for silence; a timer left from
    /// an earlier room goes.
    static func armAFK(_ c: Context<Gems>, _ me: Gems.Session, in room: Gems.Room) {
        disarmAFK(c, me)
        let seconds = Settings.afkSeconds(c)
        guard seconds > 0 else { return }
        rearmAFK(c, me, in: room, after: seconds * 1000)
    }

    static func disarmAFK(_ c: Context<Gems>, _ me: Gems.Session) {
        let timer = me.afkTimer
        guard timer != 0 else { return }
        c.cancel(game_id(UInt64(bitPattern: Int64(timer))))  // NOT_FOUND: it fired or ended already
        me.afkTimer = 0
    }

    static func rearmAFK(_ c: Context<Gems>, _ me: Gems.Session, in room: Gems.Room, after milliseconds: Int) {
        let timer = c.after(milliseconds, "afk", on: me, payload: payload(Int(Int64(bitPattern: room.id))))
        me.afkTimer = Int(Int64(bitPattern: timer ?? 0))
    }

    /// Silent for `afk_seconds`: moved out of the room (`>LEAVE name afk`
    /// to the others, `>AFK room S` to the player); otherwise set again for
    /// the time left.
    static func checkAFK(_ c: Context<Gems>, _ me: Gems.Session, room watched: game_id) {
        guard let room = me.room, room.id == watched else { return }
        let seconds = Settings.afkSeconds(c)
        guard seconds > 0 else {
            me.afkTimer = 0
            return
        }
        let limit = seconds * 1000
        let idle = c.now &- me.lastRequest
        if idle < limit {
            rearmAFK(c, me, in: room, after: limit - max(idle, 0))
            return
        }
        room.broadcast(">LEAVE \(me.text(\.name)) afk", except: me)
        room.withName { name in me.send(">AFK \(raw: name) \(seconds)") }
        c.host.leave(me.id)
        me.afkTimer = 0
    }
}

extension Gems {
    public static func timer(_ c: Context<Gems>, _ timer: TimerFired) throws(Refusal) { Timers.fire(c, timer) }
    static func armAFK(_ c: Context<Gems>, _ me: Session, in room: Room) { Timers.armAFK(c, me, in: room) }
    static func disarmAFK(_ c: Context<Gems>, _ me: Session) { Timers.disarmAFK(c, me) }
}
