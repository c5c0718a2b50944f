import GameABI
import LogicKit

/// Light cycles on room ticks: 2 to 8 players per room ride at once; a
/// cycle leaves a trail, and one that rides into a wall, a trail or another
/// cycle's head crashes. The last one riding wins the round (a durable win
/// on the player's record).
///
/// A round: every member sends READY (two at least) → `>ROUND n
/// starts_in_ms 3000` → the room ticks 10 times a second, each tick one
/// `>TICK step name:x,y,dir ...` line (the cycles still riding), then
/// `>CRASH name` per cycle that crashed in it, then `>WIN name wins w` or
/// `>DRAW` when at most one is left. The room then waits for READY again.
///
/// All of a round is engine state: positions and headings in session
/// fields, the trails in a room field (`Arena`'s 1024 hex digits), the
/// countdown a timer, the ticks the room's tick rate. So a RELOAD or an
/// engine UPGRADE mid-round loses nothing: the next tick runs the new code.
public enum Cycles: Game {
    public struct Fields: LoginFields {
        public let name: SessionField<String>
        public let nameKey: SessionField<String>
        public let loginName: SessionField<String>
        /// READY sent for the next round.
        let ready: SessionField<Bool>
        /// In the running round and not crashed yet.
        let riding: SessionField<Bool>
        let x: SessionField<Int>
        let y: SessionField<Int>
        /// `Direction.rawValue`.
        let heading: SessionField<Int>
        /// `Phase.rawValue`.
        let phase: RoomField<Int>
        /// Rounds started in the room.
        let round: RoomField<Int>
        /// Ticks of the current round.
        let step: RoomField<Int>
        /// The trails (`Arena`'s hex form; "" when empty).
        let arena: RoomField<String>
        /// Rounds won, kept across logouts and restarts.
        let wins: PlayerField<Int>

        public init(_ s: inout Schema) {
            name = s.field("name")
            nameKey = s.field("name_key", unique: true)
            loginName = s.field("login_name")
            ready = s.field("ready")
            riding = s.field("riding")
            x = s.field("x")
            y = s.field("y")
            heading = s.field("heading")
            phase = s.field("phase")
            round = s.field("round")
            step = s.field("step")
            arena = s.field("arena")
            wins = s.field("wins")
        }
    }

    enum Phase: Int { case waiting = 0, countdown, running }

    public static let name: StaticString = "cycles"
    public static let version: StaticString = "1.0.0"
    public static var roomCapacity: Int { Rules.maxPlayers }
    public static var helpNote: StaticString {
        "when every member (2 to 8) is READY a round starts; TURN steers left or right; the last one riding wins"
    }

    public static let commands: [Command<Cycles>] = [
        .ping, .help, .login, .secret, .resume, .rooms, .join, .leave, .who, .quit,
        Command("READY", needs: .room) { c, args throws(Refusal) in
            try args.end()
            guard let room = c.me.room else { throw Refusal.notInRoom }
            guard room.phase == Phase.waiting.rawValue else {
                throw Refusal("ROUND_ON", "a round is on; READY once it ends")
            }
            c.me.ready = true
            c.reply("+READY")
            room.broadcast(">READY \(c.me.text(\.name))")
            startIfAllReady(c, room, leaving: nil)
        },
        Command("TURN", "L|R", needs: .room) { c, args throws(Refusal) in
            let side = try args.choice("L", "R", "LEFT", "RIGHT")
            try args.end()
            let me = c.me
            guard me.riding else { throw Refusal("NOT_RIDING", "you are not riding in this round") }
            let heading = Direction(rawValue: me.heading) ?? .north
            let turned = side % 2 == 0 ? heading.left : heading.right
            me.heading = turned.rawValue
            c.reply("+TURNED \(turned.letter)")
        },
    ]

    // MARK: Hooks

    public static func loggedIn(_ c: Context<Cycles>, _ me: Session, _ player: Player, welcome: inout Line) throws(Refusal) {
        welcome.append(" wins ")
        welcome.append(player.wins)
    }

    public static func joined(_ c: Context<Cycles>, _ me: Session, _ room: Room, reply: inout Line) throws(Refusal) {
        me.ready = false
        me.riding = false
        reply.append(" players ")
        reply.append(room.memberCount)
        room.broadcast(">JOINED \(me.text(\.name))", except: me)
    }

    /// A rider that leaves (LEAVE, QUIT, a dropped connection) crashes out;
    /// the next tick settles the round. A waiting room may now be all ready.
    public static func leaving(_ c: Context<Cycles>, _ me: Session, _ room: Room, _ why: LeaveReason) {
        if me.riding {
            me.riding = false
            room.broadcast(">CRASH \(me.text(\.name)) left", except: me)
        } else {
            room.broadcast(">LEFT \(me.text(\.name))", except: me)
        }
        me.ready = false
        startIfAllReady(c, room, leaving: me)
    }

    /// A rider whose connection drops cannot steer: it crashes out at once
    /// (`>CRASH name dropped`), not when its RESUME grace runs out. Back
    /// through RESUME, it watches and rides in the next round.
    public static func away(_ c: Context<Cycles>, _ me: Session) {
        guard let room = me.room else { return }
        if me.riding {
            me.riding = false
            room.broadcast(">CRASH \(me.text(\.name)) dropped", except: me)
        }
        if me.ready {
            me.ready = false
            if room.phase == Phase.waiting.rawValue { room.broadcast(">UNREADY \(me.text(\.name)) dropped", except: me) }
        }
        startIfAllReady(c, room, leaving: me)
    }

    public static func timer(_ c: Context<Cycles>, _ timer: TimerFired) throws(Refusal) {
        if timer.event == "go" { go(c, c.room(timer.owner)) }
    }

    public static func tick(_ c: Context<Cycles>, _ room: Room, _ tick: Tick) throws(Refusal) {
        guard room.phase == Phase.running.rawValue else {
            room.setTickRate(0)
            return
        }
        withUnsafeTemporaryAllocation(of: Cycle.self, capacity: Rules.maxPlayers) { cycles in
            withIDs(Rules.maxPlayers) { riders in
                var count = 0
                try? room.forEachMember { member throws(Refusal) in
                    guard member.riding, count < Rules.maxPlayers else { return }
                    cycles.initializeElement(at: count, to: Cycle(
                        x: member.x, y: member.y, direction: Direction(rawValue: member.heading) ?? .north))
                    riders[count] = member.id
                    count += 1
                }
                let riding = UnsafeMutableBufferPointer(rebasing: cycles[0..<count])
                var arena = room.withText(\.arena) { Arena(hex: $0.bytes) }
                let crashed = Rules.advance(riding, &arena)
                save(room, arena)
                let step = room.step + 1
                room.step = step

                var line: Line = ">TICK \(step)"
                for i in 0..<count {
                    let rider = c.session(riders[i])
                    let cycle = riding[i]
                    if cycle.alive {
                        rider.x = cycle.x
                        rider.y = cycle.y
                        line.append(" ")
                        line.append(rider.text(\.name))
                        line.append(line: ":\(cycle.x),\(cycle.y),\(cycle.direction.letter)")
                    } else {
                        rider.riding = false
                    }
                }
                room.broadcast(line)
                if crashed != 0 {
                    for i in 0..<count where crashed & (1 << UInt32(i)) != 0 {
                        room.broadcast(">CRASH \(c.session(riders[i]).text(\.name))")
                    }
                }
                switch Rules.outcome(UnsafeBufferPointer(riding)) {
                case .running:
                    break
                case .win(let index):
                    let winner = c.session(riders[index])
                    var wins = 0
                    if let player = winner.player {
                        wins = player.wins + 1
                        player.wins = wins
                    }
                    room.broadcast(">WIN \(winner.text(\.name)) wins \(wins)")
                    endRound(room)
                case .draw:
                    room.broadcast(">DRAW")
                    endRound(room)
                }
            }
        }
    }

    // MARK: Rounds

    static func countdownMilliseconds(_ c: Context<Cycles>) -> Int {
        c.setting("countdown_ms", default: 3000, in: 0...60_000)
    }

    static func tickRate(_ c: Context<Cycles>) -> Int {
        c.setting("tick_rate", default: 10, in: Int(GAME_MIN_TICK_RATE)...Int(GAME_MAX_TICK_RATE))
    }

    /// Starts the countdown when every member but `leaving` is ready, and
    /// there are two of them at least.
    static func startIfAllReady(_ c: Context<Cycles>, _ room: Room, leaving: Session?) {
        guard room.phase == Phase.waiting.rawValue else { return }
        var members = 0
        var ready = 0
        try? room.forEachMember { member throws(Refusal) in
            // One whose connection dropped waits for RESUME; the others
            // need not wait for it.
            guard member != leaving, !member.isAway else { return }
            members += 1
            if member.ready { ready += 1 }
        }
        guard members >= 2, ready == members else { return }
        room.phase = Phase.countdown.rawValue
        let round = room.round + 1
        room.round = round
        let wait = countdownMilliseconds(c)
        room.broadcast(">ROUND \(round) starts_in_ms \(wait)")
        c.after(wait, "go", on: room)
    }

    /// The countdown is over: the ready members (8 at most) take their
    /// places and the room starts ticking. Fewer than two left: back to
    /// waiting.
    static func go(_ c: Context<Cycles>, _ room: Room) {
        guard room.phase == Phase.countdown.rawValue else { return }
        var ready = 0
        try? room.forEachMember { member throws(Refusal) in if member.ready { ready += 1 } }
        guard ready >= 2 else {
            room.phase = Phase.waiting.rawValue
            room.broadcast(">ROUND \(room.round) cancelled")
            return
        }
        var arena = Arena()
        var index = 0
        try? room.forEachMember { member throws(Refusal) in
            member.riding = false
            guard member.ready, index < Rules.maxPlayers else { return }
            let cycle = Rules.spawn(index)
            member.x = cycle.x
            member.y = cycle.y
            member.heading = cycle.direction.rawValue
            member.riding = true
            arena.mark(cycle.x, cycle.y)
            index += 1
        }
        save(room, arena)
        room.step = 0
        room.phase = Phase.running.rawValue
        room.setTickRate(tickRate(c))
    }

    static func endRound(_ room: Room) {
        room.phase = Phase.waiting.rawValue
        room.setTickRate(0)
        try? room.forEachMember { member throws(Refusal) in
            member.ready = false
            member.riding = false
        }
    }

    static func save(_ room: Room, _ arena: Arena) {
        withScratch(Arena.encodedLength) { buffer in
            arena.encode(into: buffer)
            room.set(\.arena, text: Text(UnsafeRawBufferPointer(buffer)))
        }
    }
}
