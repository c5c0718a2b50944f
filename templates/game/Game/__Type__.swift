import GameABI
import LogicKit

/// __Type__, made by `make new-game`: a small dice game to grow from.
/// Players LOGIN and JOIN a room and ROLL a die once per round; the room
/// sees every roll, and when the round's timer fires the best roll wins a
/// point kept on the player (durable: it survives logouts, restarts and
/// reloads). docs/WRITING-GAMES.md walks through every part.
///
/// Everything is `static`: a module keeps nothing between calls (no
/// globals, no handles); the engine holds all state in the fields below,
/// which is what lets a reload swap this code between two messages.
public enum __Type__: Game {
    public struct Fields: LoginFields {
        // The standard LOGIN, JOIN and WHO need these three (LoginFields).
        public let name: SessionField<String>
        public let nameKey: SessionField<String>
        public let loginName: SessionField<String>
        /// This round's roll; 0 until the player rolls.
        public let roll: SessionField<Int>
        /// The room's best roll this round, and how many rounds it played.
        public let best: RoomField<Int>
        public let round: RoomField<Int>
        /// Rounds won: a player field, so the engine stores it durably.
        public let wins: PlayerField<Int>

        public init(_ s: inout Schema) {
            // The engine knows fields by this order: append new ones at the end.
            name = s.field("name")
            nameKey = s.field("name_key", unique: true)
            loginName = s.field("login_name")
            roll = s.field("roll")
            best = s.field("best")
            round = s.field("round")
            wins = s.field("wins")
        }
    }

    public static let name: StaticString = "__name__"
    public static let version: StaticString = "1.0.0"
    /// A round's length: the operator may change it (--game-setting round_ms=5000).
    static func roundMilliseconds(_ c: Context<Self>) -> Int {
        c.setting("round_ms", default: 30_000, in: 1_000...600_000)
    }

    public static let commands: [Command<__Type__>] = [
        .ping, .help, .login, .secret, .resume, .rooms, .join, .leave, .who, .quit,
        Command("ECHO", "text") { c, args throws(Refusal) in
            c.reply("+ECHO \(try args.rest())")
        },
        Command("ROLL", needs: .room) { c, args throws(Refusal) in
            try args.end()
            let me = c.me
            guard me.roll == 0 else { throw Refusal("ALREADY_ROLLED", "one roll per round") }
            guard let room = me.room else { throw Refusal.notInRoom }
            let roll = Int.random(in: 1...6)
            me.roll = roll
            if roll > room.best { room.best = roll }
            room.broadcast(">ROLLED \(me.text(\.name)) \(roll)", except: me)
            c.reply("+ROLLED \(roll)")
        },
        Command("WINS", needs: .login) { c, args throws(Refusal) in
            try args.end()
            c.reply("+WINS \(c.me.player?.wins ?? 0)")
        },
        // More verbs here.
    ]

    /// A new room starts its round timer; the timer dies with the room.
    public static func roomCreated(_ c: Context<Self>, _ room: Room) throws(Refusal) {
        c.every(roundMilliseconds(c), "round", on: room)
    }

    public static func joined(_ c: Context<Self>, _ me: Session, _ room: Room, reply: inout Line) throws(Refusal) {
        me.roll = 0
        room.broadcast(">JOINED \(me.text(\.name))", except: me)
    }

    public static func leaving(_ c: Context<Self>, _ me: Session, _ room: Room, _ why: LeaveReason) {
        room.broadcast(">LEFT \(me.text(\.name))", except: me)
    }

    /// Timers are data: whichever version is loaded when one comes due
    /// handles it, so a reload mid-round loses no round.
    public static func timer(_ c: Context<Self>, _ timer: TimerFired) throws(Refusal) {
        guard timer.event == "round" else { return }
        let room = c.room(timer.owner)
        let best = room.best
        room.round += 1
        var winner: Session? = nil
        try room.forEachMember { member throws(Refusal) in
            if best > 0, winner == nil, member.roll == best { winner = member }
            member.roll = 0
        }
        room.best = 0
        if let winner, let player = winner.player {
            player.wins += 1
            room.broadcast(">ROUND \(room.round) won by \(winner.text(\.name)) with \(best)")
        }
    }
}
