import Protocol
import GameABI

/// A game, written as Nakama's match handler or Colyseus' Room would have
/// it, over the engine's C table. Everything is `static`: a module owns no
/// state between calls (the engine keeps it all, which is what lets it swap
/// the code between two messages), so a game is a namespace of handlers.
///
///     enum Hello: Game {
///         struct Fields: FieldSet { ... }
///         static let name: StaticString = "hello"
///         static let version: StaticString = "1.0.0"
///         static let commands: [Command<Hello>] = [.ping, .help, .quit,
///             Command("ECHO", "text") { c, args throws(Refusal) in
///                 c.reply("+ECHO \(try args.rest())")
///             }]
///     }
///
/// Exports: the engine looks for plain C symbols, so a game's module has
/// one `Exports.swift` of one-line `@_cdecl` functions that call `Module<G>`
/// (the template from `make new-game` writes it).
public protocol Game {
    /// The game's fields, declared once (see `FieldSet`).
    associatedtype Fields: FieldSet

    /// The module's name as operators see it (STATUS, MODULES).
    @inlinable static var name: StaticString { get }
    /// The module's version; migrations and rollbacks name it.
    @inlinable static var version: StaticString { get }
    /// The verbs, matched in order. Declare with `static let` (built once
    /// per loaded image; a computed `var` would rebuild it every request).
    @inlinable static var commands: [Command<Self>] { get }
    /// Appended to HELP after the verb list.
    @inlinable static var helpNote: StaticString { get }
    /// Sessions a room holds at most (JOIN answers ROOM_FULL).
    @inlinable static var roomCapacity: Int { get }
    /// Longest player name the standard LOGIN accepts.
    @inlinable static var maxNameLength: Int { get }
    /// Longest room name the standard JOIN accepts.
    @inlinable static var maxRoomNameLength: Int { get }
    /// Field changes between versions, both ways (see `Migration`).
    @inlinable static var migrations: [Migration<Self>] { get }

    /// Every request, before it is routed (e.g. note the time of the
    /// player's last line). Throwing refuses the request.
    @inlinable static func received(_ c: Context<Self>, _ line: Text) throws(Refusal)
    /// A LOGIN (or a signed token) was verified and the player attached;
    /// append to the `+WELCOME name` reply (the resume token follows).
    @inlinable static func loggedIn(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>, _ player: Entity<PlayerKind, Fields>,
                         welcome: inout Line) throws(Refusal)
    /// A RESUME brought a session back; append to `+RESUMED name`.
    @inlinable static func resumed(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>, reply: inout Line)
    /// JOIN made a new room (Colyseus' onCreate).
    @inlinable static func roomCreated(_ c: Context<Self>, _ room: Entity<RoomKind, Fields>) throws(Refusal)
    /// May this session join? Throw to refuse (Nakama's join attempt).
    @inlinable static func canJoin(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>, _ room: Entity<RoomKind, Fields>)
        throws(Refusal)
    /// The session joined: tell the room, set it up, and append to the
    /// `+JOINED room` reply.
    @inlinable static func joined(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>, _ room: Entity<RoomKind, Fields>,
                       reply: inout Line) throws(Refusal)
    /// The session is leaving the room (LEAVE, JOIN elsewhere, QUIT, a
    /// dropped connection that was not resumed); it is still a member.
    @inlinable static func leaving(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>, _ room: Entity<RoomKind, Fields>,
                        _ why: LeaveReason)
    /// The connection dropped; the session waits for a RESUME.
    @inlinable static func away(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>)
    /// A RESUME brought the session back on a new connection.
    @inlinable static func back(_ c: Context<Self>, _ me: Entity<SessionKind, Fields>)
    /// A timer set with `c.after`/`c.every` came due (also one an earlier
    /// version of the module set: timers are data).
    @inlinable static func timer(_ c: Context<Self>, _ timer: TimerFired) throws(Refusal)
    /// A room's tick (`room.setTickRate(n)`).
    @inlinable static func tick(_ c: Context<Self>, _ room: Entity<RoomKind, Fields>, _ tick: Tick) throws(Refusal)
    /// The engine's answer to a login check (hotswap_auth). The standard
    /// one (for `Fields: LoginFields`) names the session and sends
    /// `+WELCOME`; implement it only for a login of your own.
    @inlinable static func authAnswered(_ c: Context<Self>, _ result: game_auth_result)
}

extension Game where Fields: LoginFields {
    @inlinable public static func authAnswered(_ c: Context<Self>, _ result: game_auth_result) {
        LoginAnswer<Self>.answer(c, result)
    }
}

/// Why a session leaves its room.
public enum LeaveReason: Sendable {
    /// LEAVE, or a JOIN of another room.
    case left
    /// QUIT or a closed connection.
    case quit
    /// Away too long: its RESUME grace ran out.
    case timeout
}

extension Game {
    public typealias Session = Entity<SessionKind, Fields>
    public typealias Room = Entity<RoomKind, Fields>
    public typealias Player = Entity<PlayerKind, Fields>
    public typealias Global = Entity<GlobalKind, Fields>

    @inlinable public static var helpNote: StaticString { "" }
    @inlinable public static var roomCapacity: Int { Int.max }
    @inlinable public static var maxNameLength: Int { 16 }
    @inlinable public static var maxRoomNameLength: Int { 24 }
    @inlinable public static var migrations: [Migration<Self>] { [] }
    @inlinable public static func received(_ c: Context<Self>, _ line: Text) throws(Refusal) {}
    @inlinable public static func loggedIn(_ c: Context<Self>, _ me: Session, _ player: Player, welcome: inout Line) throws(Refusal) {}
    @inlinable public static func resumed(_ c: Context<Self>, _ me: Session, reply: inout Line) {}
    @inlinable public static func roomCreated(_ c: Context<Self>, _ room: Room) throws(Refusal) {}
    @inlinable public static func canJoin(_ c: Context<Self>, _ me: Session, _ room: Room) throws(Refusal) {}
    @inlinable public static func joined(_ c: Context<Self>, _ me: Session, _ room: Room, reply: inout Line) throws(Refusal) {}
    @inlinable public static func leaving(_ c: Context<Self>, _ me: Session, _ room: Room, _ why: LeaveReason) {}
    @inlinable public static func away(_ c: Context<Self>, _ me: Session) {}
    @inlinable public static func back(_ c: Context<Self>, _ me: Session) {}
    @inlinable public static func timer(_ c: Context<Self>, _ timer: TimerFired) throws(Refusal) {}
    @inlinable public static func tick(_ c: Context<Self>, _ room: Room, _ tick: Tick) throws(Refusal) {}
    @inlinable public static func authAnswered(_ c: Context<Self>, _ result: game_auth_result) {
        c.reply(result.status == GAME_OK ? "+OK" : "-ERR BAD_SECRET login refused")
    }
}

/// A room tick (`hotswap_tick`).
public struct Tick: Sendable {
    /// 1, 2, ...; ticks skipped in a stall are counted too.
    public let number: UInt64
    /// The fixed step, 1000 / rate, in ms: simulate with this, not wall time.
    public let stepMilliseconds: Int
    /// Ticks skipped just before this one.
    public let skipped: Int

    @usableFromInline init(number: UInt64, stepMilliseconds: Int, skipped: Int) {
        self.number = number
        self.stepMilliseconds = stepMilliseconds
        self.skipped = skipped
    }
}

/// A timer that came due (`hotswap_timer`).
public struct TimerFired {
    public let id: game_id
    /// The session, room, player or global id it was set on.
    public let owner: game_id
    public let event: Text
    public let payload: Text
    /// How long after its due time it fired.
    public let lateMilliseconds: UInt64
    /// Times it has fired, this one included.
    public let count: UInt64

    @usableFromInline init(id: game_id, owner: game_id, event: Text, payload: Text, lateMilliseconds: UInt64, count: UInt64) {
        self.id = id
        self.owner = owner
        self.event = event
        self.payload = payload
        self.lateMilliseconds = lateMilliseconds
        self.count = count
    }

    /// The payload's blank-separated whole numbers, in order (missing or
    /// malformed ones are nil).
    @inlinable public func int(_ position: Int) -> Int? {
        var tokens = Arguments.tokenize(payload.bytes)
        var index = 0
        while let token = tokens.next() {
            if index == position { return Text(token).int }
            index += 1
        }
        return nil
    }
}
