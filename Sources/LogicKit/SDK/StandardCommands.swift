import Protocol
import GameABI

/// The verbs most games share, ready to list in `commands`:
///
///     static let commands: [Command<MyGame>] = [
///         .ping, .help, .login, .secret, .resume, .rooms, .join, .leave, .who, .quit,
///         Command("MOVE", "N|S|E|W", needs: .room) { c, args throws(Refusal) in ... },
///     ]
///
/// Their replies and error codes are the default game's protocol; a game
/// shapes them through its hooks (`loggedIn`, `joined`, `leaving`, ...).
extension Command {
    /// `PING` → `+PONG`.
    @inlinable public static var ping: Command {
        Command("PING") { c, args throws(Refusal) in c.reply("+PONG") }
    }

    /// `HELP` → `+HELP VERB usage | ...` and the game's `helpNote`.
    @inlinable public static var help: Command {
        Command("HELP", listed: false) { c, args throws(Refusal) in
            var line: Line = "+HELP"
            var first = true
            for command in G.commands where command.listed {
                line.append(first ? " " : " | ")
                first = false
                line.append(command.verb)
                if command.usage.utf8CodeUnitCount > 0 {
                    line.append(" ")
                    line.append(command.usage)
                }
            }
            if G.helpNote.utf8CodeUnitCount > 0 {
                line.append(" -- ")
                line.append(G.helpNote)
            }
            c.reply(line)
        }
    }

    /// `QUIT` → `+BYE`, then the connection closes.
    @inlinable public static var quit: Command {
        Command("QUIT") { c, args throws(Refusal) in
            c.reply("+BYE")
            c.me.close()
        }
    }

    /// `ROOMS` → `+ROOMS name:members ...` (up to 64 rooms).
    @inlinable public static var rooms: Command {
        Command("ROOMS") { c, args throws(Refusal) in
            var line: Line = "+ROOMS"
            c.forEachRoom(limit: 64) { room in
                room.withName { name in line.append(line: " \(raw: name):\(room.memberCount)") }
            }
            c.reply(line)
        }
    }
}

extension Command where G.Fields: LoginFields {
    /// `LOGIN name [secret]` (or `LOGIN token` with --auth-jwt-key),
    /// checked by the engine; `+WELCOME name ... resume TOKEN` after
    /// the game's `loggedIn` hook.
    @inlinable public static var login: Command {
        Command("LOGIN", "name [secret]") { c, args throws(Refusal) in try Login<G>.login(c, &args) }
    }

    /// `SECRET secret`: a guest claims its name, or a player changes it.
    @inlinable public static var secret: Command {
        Command("SECRET", "secret") { c, args throws(Refusal) in try Login<G>.setSecret(c, &args) }
    }

    /// `RESUME token`: takes back a session whose connection dropped.
    @inlinable public static var resume: Command {
        Command("RESUME", "token") { c, args throws(Refusal) in try LoginAnswer<G>.resume(c, &args) }
    }

    /// `JOIN room`: makes the room if needed (`roomCreated`), asks
    /// `canJoin`, leaves the current room (`leaving`), joins (`joined`,
    /// which may reply; otherwise `+JOINED room`). A refusal at any step
    /// undoes all of it: the player stays where it was.
    @inlinable public static var join: Command {
        Command("JOIN", "room", needs: .login) { c, args throws(Refusal) in
            let name = try args.word()
            try args.end()
            guard name.isIdentifier(maxLength: G.maxRoomNameLength) else {
                c.refuse("-ERR BAD_ROOM a room name is 1 to \(G.maxRoomNameLength) letters, digits, _ or -")
                return
            }
            let me = c.me
            let previous = me.room
            var room = c.room(named: name)
            if let previous, previous == room { throw Refusal("ALREADY_IN_ROOM", "you are already in that room") }
            if room == nil {
                let created = c.host.createRoom(name.bytes)
                guard created.status == GAME_OK else { throw Refusal("ROOM_LIMIT", "no more rooms can be created") }
                room = c.room(created.room)
                try G.roomCreated(c, room!)
            }
            guard let room else { return }
            guard room.memberCount < G.roomCapacity else { throw Refusal("ROOM_FULL", "that room is full") }
            try G.canJoin(c, me, room)
            if let previous {
                G.leaving(c, me, previous, .left)
                c.host.leave(me.id)
            }
            let joined = c.host.join(room.id, me.id)
            guard joined == GAME_OK else {
                throw joined == GAME_ERR_LIMIT ? Refusal("ROOM_FULL", "that room is full") : Refusal("JOIN_FAILED", "cannot join that room")
            }
            var line: Line = "+JOINED \(raw: name)"
            try G.joined(c, me, room, reply: &line)
            if !c.hasReplied { c.reply(line) }
        }
    }

    /// `LEAVE` → `+LEFT room` after the game's `leaving` hook.
    @inlinable public static var leave: Command {
        Command("LEAVE", needs: .room) { c, args throws(Refusal) in
            guard let room = c.me.room else { throw Refusal.notInRoom }
            G.leaving(c, c.me, room, .left)
            c.host.leave(c.me.id)
            room.withName { name in c.reply("+LEFT \(raw: name)") }
        }
    }

    /// `WHO` → `+WHO name name ...`, the room's members in join order.
    @inlinable public static var who: Command {
        Command("WHO", needs: .room) { c, args throws(Refusal) in
            guard let room = c.me.room else { throw Refusal.notInRoom }
            var line: Line = "+WHO"
            try room.forEachMember(limit: 256) { member throws(Refusal) in line.append(line: " \(member.text(\.name))") }
            c.reply(line)
        }
    }
}
