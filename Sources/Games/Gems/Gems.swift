import GameABI
import LogicKit

/// The default game: log in, meet in rooms, chat, and race the others to
/// the gems on an 8x8 board in timed rounds. All state (timers included)
/// is in the engine; this is only code.
public enum Gems: Game {
    public static let name: StaticString = "gems"
    public static let version: StaticString = "1.2.0"
    public static let helpNote: StaticString = "rounds are timed, taken gems come back, idle players are moved out of their room; your score is saved under your name across logins and restarts; after a dropped connection, RESUME with the token WELCOME gave you brings back your session (room, place, missed events)"

    public static let commands: [Command<Gems>] = [
        .ping, .help, .login, .secret, .resume, .rooms, .join, .leave,
        Command("WHO", needs: .room) { c, args throws(Refusal) in
            ensureClocks(c)
            try Command<Gems>.who.run(c, &args)
        },
        Command("SAY", "text", needs: .room) { c, args throws(Refusal) in
            let text = try args.rest()
            ensureClocks(c)
            c.me.room?.broadcast(">SAY \(c.me.text(\.name)) \(text)", except: c.me)
            c.reply("+OK")
        },
        Command("MOVE", "N|S|E|W (or UP|DOWN|RIGHT|LEFT)", needs: .room) { c, args throws(Refusal) in
            let direction = try args.choice("N", "S", "E", "W", "UP", "DOWN", "RIGHT", "LEFT")
            try args.end()
            ensureClocks(c)
            try move(c, direction % 4)
        },
        Command("LOOK", needs: .room) { c, args throws(Refusal) in
            ensureClocks(c)
            look(c)
        },
        Command("SCORE", needs: .login) { c, args throws(Refusal) in
            guard let room = c.me.room else {
                c.reply("+SCORE \(c.me.text(\.name)):\(c.me.player?.score ?? 0)")
                return
            }
            var line: Line = "+SCORE"
            try room.forEachMember { member throws(Refusal) in
                line.append(line: " \(member.text(\.name)):\(member.player?.score ?? 0)")
            }
            c.reply(line)
        },
        .quit,
    ]

    /// Any line counts as activity for the AFK rule: one field write, no
    /// timer per request (`checkAFK` reads it when the timer fires).
    public static func received(_ c: Context<Gems>, _ line: Text) throws(Refusal) {
        c.me.lastRequest = c.now
    }

    /// `+WELCOME name login N score S` (the SDK adds `resume TOKEN`).
    public static func loggedIn(_ c: Context<Gems>, _ me: Session, _ player: Player, welcome: inout Line) throws(Refusal) {
        c.global.logins += 1
        welcome.append(line: " login \(c.global.logins) score \(player.score)")
    }

    /// `+RESUMED name room R at x y score S` (the SDK adds `resume TOKEN`).
    public static func resumed(_ c: Context<Gems>, _ me: Session, reply: inout Line) {
        if let room = me.room {
            room.withName { name in reply.append(line: " room \(raw: name) at \(me.x) \(me.y)") }
        }
        reply.append(line: " score \(me.player?.score ?? 0)")
    }

    /// A new room starts round 1; with `batch_hz` its events go out once
    /// per tick (one write per member).
    public static func roomCreated(_ c: Context<Gems>, _ room: Room) throws(Refusal) {
        startRound(c, room, 1)
        let batchHz = Settings.batchHz(c)
        if batchHz > 0 && room.setTickRate(batchHz) == GAME_OK { room.setBatching(true) }
    }

    /// `+JOINED room at x y players n`; the room sees `>JOIN name x y`, and
    /// a room this JOIN made announces its first round.
    public static func joined(_ c: Context<Gems>, _ me: Session, _ room: Room, reply: inout Line) throws(Refusal) {
        let spawn = Grid.spawn(seed: me.id ^ c.host.nowMilliseconds())
        me.x = spawn.x
        me.y = spawn.y
        // Points from another room's round do not count in this one.
        me.roundPoints = 0
        armAFK(c, me, in: room)
        let players = room.memberCount
        reply.append(line: " at \(spawn.x) \(spawn.y) players \(players)")
        c.reply(reply)
        room.broadcast(">JOIN \(me.text(\.name)) \(spawn.x) \(spawn.y)", except: me)
        if players == 1 { room.broadcast(">ROUND \(room.round) ends_in \(Settings.roundSeconds(c))") }
    }

    /// `>LEAVE name` to the others (`timeout` when an away session's grace
    /// ran out); the AFK watch ends with the membership.
    public static func leaving(_ c: Context<Gems>, _ me: Session, _ room: Room, _ why: LeaveReason) {
        room.broadcast(why == .timeout ? ">LEAVE \(me.text(\.name)) timeout" : ">LEAVE \(me.text(\.name))", except: me)
        if why != .quit { disarmAFK(c, me) }
    }

    public static func away(_ c: Context<Gems>, _ me: Session) {
        me.room?.broadcast(">AWAY \(me.text(\.name))", except: me)
    }

    /// Time away does not count as silence for the AFK rule.
    public static func back(_ c: Context<Gems>, _ me: Session) {
        me.lastRequest = c.now
        me.room?.broadcast(">BACK \(me.text(\.name))", except: me)
    }

    // MARK: The board

    static let steps: [(dx: Int, dy: Int)] = [(0, -1), (0, 1), (1, 0), (-1, 0)]

    /// `+MOVED x y` or, onto a gem, `+GEM x y score n`; the room sees
    /// `>MOVE name x y` or `>GEM name x y score n`.
    static func move(_ c: Context<Gems>, _ direction: Int) throws(Refusal) {
        let me = c.me
        guard let room = me.room else { throw Refusal.notInRoom }
        let (nx, ny) = (me.x + steps[direction].dx, me.y + steps[direction].dy)
        guard Grid.inside(nx, ny) else { throw Refusal("BLOCKED", "that is the edge of the board") }
        me.x = nx
        me.y = ny
        let gems = room.gems
        guard gems & Grid.bit(nx, ny) != 0 else {
            c.reply("+MOVED \(nx) \(ny)")
            room.broadcast(">MOVE \(me.text(\.name)) \(nx) \(ny)", except: me)
            return
        }
        let player = me.player
        let score = (player?.score ?? 0) + 1
        player?.score = score
        me.roundPoints += 1
        room.gems = gems & ~Grid.bit(nx, ny)
        Timers.scheduleRespawn(c, in: room)
        c.reply("+GEM \(nx) \(ny) score \(score)")
        room.broadcast(">GEM \(me.text(\.name)) \(nx) \(ny) score \(score)", except: me)
    }

    /// `+MAP x y row row ...`: `*` a gem, `o` another player, `@` you.
    static func look(_ c: Context<Gems>) {
        let me = c.me
        guard let room = me.room else { return }
        var cells = InlineArray<64, UInt8>(repeating: UInt8(ascii: "."))
        let gems = room.gems
        for cell in 0..<64 where gems & (1 << cell) != 0 { cells[cell] = UInt8(ascii: "*") }
        try? room.forEachMember(limit: 256) { member throws(Refusal) in
            if member != me, Grid.inside(member.x, member.y) { cells[member.y * 8 + member.x] = UInt8(ascii: "o") }
        }
        if Grid.inside(me.x, me.y) { cells[me.y * 8 + me.x] = UInt8(ascii: "@") }
        var line: Line = "+MAP \(me.x) \(me.y)"
        cells.span.withUnsafeBytes { bytes in
            for row in 0..<8 {
                line.append(" ")
                line.append(raw: UnsafeRawBufferPointer(rebasing: bytes[(row * 8)..<(row * 8 + 8)]))
            }
        }
        c.reply(line)
    }

    /// Starts round `round`: a fresh board, every member's round points
    /// back to 0, and the room's `round_end` timer.
    static func startRound(_ c: Context<Gems>, _ room: Room, _ round: Int) {
        room.round = round
        room.gems = Grid.gems(seed: room.id ^ UInt64(bitPattern: Int64(round)) ^ c.host.nowMilliseconds())
        try? room.forEachMember { member throws(Refusal) in member.roundPoints = 0 }
        Timers.scheduleRoundEnd(c, of: room, round, after: Settings.roundSeconds(c))
    }

    /// Rooms and players from before 1.1.0 (which had no clock) get their
    /// timers at their first request in the room.
    static func ensureClocks(_ c: Context<Gems>) {
        guard let room = c.me.room else { return }
        if room.roundTimer == 0 {
            Timers.scheduleRoundEnd(c, of: room, room.round == 0 ? 1 : room.round, after: Settings.roundSeconds(c))
        }
        if c.me.afkTimer == 0 { armAFK(c, c.me, in: room) }
    }
}
