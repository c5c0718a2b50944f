import GameABI
import LogicKit
import Protocol

/// The default game: log in, meet in rooms, chat, and race the others to
/// the gems on an 8x8 board in timed rounds. One value per call; all state
/// (timers included) is in the engine.
struct Game {
    static let version: StaticString = "1.2.0"
    static let maxNameLength = 16
    static let maxRoomName = 24
    /// Members read per room for WHO, SCORE and LOOK.
    static let memberBatch = 256

    let host: Host
    let session: game_id

    /// Dispatches one request line. Every path replies exactly once.
    func handle(_ line: UnsafeRawBufferPointer) -> Int32 {
        // Any line counts as activity for the AFK rule: one field write,
        // no timer per request (Timers.checkAFK reads it when the timer fires).
        host.setInt(session, Field.lastRequest.rawValue, Int64(bitPattern: host.nowMilliseconds()))
        guard Bytes.isValidUTF8(line) else { return fail("BAD_UTF8", "request is not valid UTF-8") }
        guard let request = Request(line: line) else { return fail("EMPTY", "empty request, try HELP") }

        if request.verbIs("PING") { return host.reply("+PONG") }
        if request.verbIs("HELP") { return help() }
        if request.verbIs("LOGIN") { return login(request) }
        if request.verbIs("SECRET") { return setSecret(request) }
        if request.verbIs("RESUME") { return resume(request) }
        if request.verbIs("QUIT") { return quit() }
        if request.verbIs("ROOMS") { return listRooms() }

        // Everything below needs a name.
        let verbKnown = request.verbIs("JOIN") || request.verbIs("LEAVE") || request.verbIs("WHO")
            || request.verbIs("SAY") || request.verbIs("MOVE") || request.verbIs("LOOK") || request.verbIs("SCORE")
        guard verbKnown else { return fail("UNKNOWN_COMMAND", "unknown command, try HELP") }
        guard isLoggedIn else { return fail("NOT_LOGGED_IN", "LOGIN name first") }

        if request.verbIs("JOIN") { return join(request) }
        if request.verbIs("SCORE") { return score() }

        // Everything below needs a room.
        guard let room = host.room(of: session) else { return fail("NOT_IN_ROOM", "JOIN a room first") }
        if request.verbIs("LEAVE") { return leave(room) }
        Timers(host: host).ensureClocks(room: room, session: session)
        if request.verbIs("WHO") { return who(room) }
        if request.verbIs("SAY") { return say(request, room) }
        if request.verbIs("MOVE") { return move(request, room) }
        return look(room)
    }

    // MARK: Session

    var isLoggedIn: Bool {
        withScratch(Game.maxNameLength) { host.string(session, Field.name.rawValue, into: $0)?.isEmpty == false }
    }

    func help() -> Int32 {
        host.reply("+HELP PING | LOGIN name [secret] | SECRET secret | RESUME token | ROOMS | JOIN room | LEAVE | WHO | SAY text | MOVE N|S|E|W (or UP|DOWN|RIGHT|LEFT) | LOOK | SCORE | QUIT -- rounds are timed, taken gems come back, idle players are moved out of their room; your score is saved under your name across logins and restarts; after a dropped connection, RESUME with the token WELCOME gave you brings back your session (room, place, missed events)")
    }

    /// `LOGIN name [secret]`, or `LOGIN token` where the studio signs
    /// tokens (--auth-jwt-key). The engine checks who it is, off its loop,
    /// and answers in `loggedIn` (hotswap_auth): nothing is replied here
    /// unless the request is refused before the check.
    func login(_ request: Request) -> Int32 {
        var tokens = request.argumentTokens
        let token = host.authMode == UInt32(GAME_AUTH_TOKEN)
        guard let first = tokens.next() else {
            return token ? fail("SYNTAX", "usage: LOGIN token") : fail("SYNTAX", "usage: LOGIN name [secret]")
        }
        let secret = tokens.next()
        guard tokens.next() == nil, !(token && secret != nil) else {
            return token ? fail("SYNTAX", "usage: LOGIN token") : fail("SYNTAX", "usage: LOGIN name [secret]")
        }
        if isLoggedIn { return fail("ALREADY_LOGGED_IN", "you are already logged in") }
        if token {
            let status = host.login(session, identity: first, secret: UnsafeRawBufferPointer(start: nil, count: 0))
            return status == GAME_ERR_BAD_ARGUMENT ? fail("BAD_SECRET", "that is not a login token") : status
        }
        guard Bytes.isIdentifier(first, maxLength: Game.maxNameLength) else {
            return fail("BAD_NAME", "a name is 1 to 16 letters, digits, _ or -")
        }
        if let secret, secret.count < Game.minSecretLength || secret.count > Int(GAME_MAX_SECRET) {
            return fail("BAD_SECRET", "a secret is 4 to 256 characters without spaces")
        }
        if host.authMode == UInt32(GAME_AUTH_SECRET) && secret == nil {
            return fail("SECRET_REQUIRED", "this server needs LOGIN name secret")
        }
        // Names are unique ignoring case: the lower-cased name is the
        // player's key, the durable record (score) the engine keeps across
        // logouts and restarts, and the session's unique name_key.
        host.setString(session, Field.loginName.rawValue, first)
        return withScratch(Game.maxNameLength) { scratch in
            for index in 0..<first.count {
                let byte = first[index]
                scratch[index] = (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
            }
            let key = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[0..<first.count])
            return host.login(session, identity: key, secret: secret ?? UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    static let minSecretLength = 4

    /// `SECRET secret`: sets or changes the secret of the player logged in
    /// (a guest claims its name: from now on LOGIN needs it).
    func setSecret(_ request: Request) -> Int32 {
        var tokens = request.argumentTokens
        guard let secret = tokens.next(), tokens.next() == nil else { return fail("SYNTAX", "usage: SECRET secret") }
        guard isLoggedIn else { return fail("NOT_LOGGED_IN", "LOGIN name first") }
        guard host.authMode != UInt32(GAME_AUTH_TOKEN) else {
            return fail("NOT_ALLOWED", "players log in with tokens here; there is no secret to set")
        }
        guard secret.count >= Game.minSecretLength, secret.count <= Int(GAME_MAX_SECRET) else {
            return fail("BAD_SECRET", "a secret is 4 to 256 characters without spaces")
        }
        return host.setSecret(session, secret)
    }

    /// The engine's answer to LOGIN or SECRET (hotswap_auth): on success
    /// the player is attached already; this names the session and replies.
    func loggedIn(_ result: game_auth_result) -> Int32 {
        if result.flags & GAME_AUTH_SECRET_SET != 0 {
            return result.status == GAME_OK
                ? host.reply("+OK secret set: from now on log in with LOGIN name secret")
                : refused(result)
        }
        guard result.status == GAME_OK else {
            host.setString(session, Field.loginName.rawValue, UnsafeRawBufferPointer(start: nil, count: 0))
            return refused(result)
        }
        let key = UnsafeRawBufferPointer(start: result.key, count: result.key_length)
        return withScratch(Game.maxNameLength) { typed in
            // The name as typed; a token's subject is its own name.
            var name = key
            if result.flags & GAME_AUTH_VIA_TOKEN == 0, let asked = host.string(session, Field.loginName.rawValue, into: typed),
                asked.count == key.count { name = asked }
            guard Bytes.isIdentifier(name, maxLength: Game.maxNameLength) else {
                host.detachPlayer(session)
                return fail("BAD_NAME", "the token's subject is not a name (1 to 16 letters, digits, _ or -)")
            }
            return withScratch(Game.maxNameLength) { lowered in
                for index in 0..<name.count {
                    let byte = name[index]
                    lowered[index] = (byte >= 0x41 && byte <= 0x5A) ? byte + 0x20 : byte
                }
                let nameKey = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(lowered)[0..<name.count])
                guard host.setString(session, Field.nameKey.rawValue, nameKey) == GAME_OK else {
                    host.detachPlayer(session)
                    return fail("NAME_TAKEN", "that name is in use")
                }
                let status = host.setString(session, Field.name.rawValue, name)
                guard status == GAME_OK else { return status }
                host.identified(session)
                let logins = (host.int(GAME_GLOBAL_ID, Field.logins.rawValue) ?? 0) + 1
                host.setInt(GAME_GLOBAL_ID, Field.logins.rawValue, logins)
                return withScratch(128) { buffer in
                    var line = LineWriter.reply(buffer)
                    line.append("WELCOME ")
                    line.append(raw: name)
                    line.append(" login ")
                    line.append(logins)
                    line.append(" score ")
                    line.append(host.int(result.player, Field.score.rawValue) ?? 0)
                    // The engine keeps the session for a while if the
                    // connection drops; this token brings it back (RESUME).
                    // None when the operator turned resume off.
                    withScratch(Int(GAME_RESUME_TOKEN_LENGTH)) { scratch in
                        if let token = host.resumeToken(session, into: scratch) {
                            line.append(" resume ")
                            line.append(raw: token)
                        }
                    }
                    return host.reply(line)
                }
            }
        }
    }

    /// A login the engine refused, in the game's words.
    func refused(_ result: game_auth_result) -> Int32 {
        switch result.status {
        case GAME_ERR_BAD_SECRET:
            return host.authMode == UInt32(GAME_AUTH_TOKEN)
                ? fail("BAD_SECRET", "that token is not valid (forged, expired or for no one)")
                : fail("BAD_SECRET", "wrong secret for that name")
        case GAME_ERR_THROTTLED:
            return withScratch(128) { buffer in
                var line = LineWriter.error(buffer, code: "THROTTLED")
                line.append(" too many attempts; retry in ")
                line.append(Int64((result.retry_after_ms + 999) / 1000))
                line.append(" s")
                return host.reply(line)
            }
        case GAME_ERR_SECRET_REQUIRED: return fail("SECRET_REQUIRED", "this server needs LOGIN name secret")
        case GAME_ERR_BUSY: return fail("BUSY", "too many logins at once; retry in a moment")
        case GAME_ERR_EXISTS:
            // Held by a session whose connection dropped: it is kept for
            // its own RESUME (a token brings back the session, its room
            // and events; a LOGIN starts a new one), and the player is told.
            let key = UnsafeRawBufferPointer(start: result.key, count: result.key_length)
            if host.find(Field.nameKey.rawValue, key).map(host.isAway) ?? false {
                return fail("NAME_TAKEN", "that name's connection dropped; its session waits for RESUME with its token, then the name is free")
            }
            return fail("NAME_TAKEN", "that name is in use")
        case GAME_ERR_LIMIT: return fail("PLAYER_LIMIT", "the server stores no more new players")
        default: return result.status
        }
    }

    /// `RESUME token` on a fresh connection: the engine checks the token
    /// and, once this call returns, moves this connection to the session it
    /// names (the missed events follow this reply). The reply says what a
    /// client needs to carry on: who, where, the score, and the next token.
    func resume(_ request: Request) -> Int32 {
        var tokens = request.argumentTokens
        guard let token = tokens.next(), tokens.next() == nil else { return fail("SYNTAX", "usage: RESUME token") }
        if isLoggedIn { return fail("ALREADY_LOGGED_IN", "you are already logged in") }
        return withScratch(Int(GAME_RESUME_TOKEN_LENGTH)) { next in
            let outcome = host.resume(session, token: token, newToken: next)
            switch outcome.status {
            case GAME_OK: break
            case GAME_ERR_LIMIT: return fail("RESUME_THROTTLED", "too many failed RESUMEs from your address; wait a minute")
            case GAME_ERR_STATE: return fail("RESUME_OFF", "this server keeps no sessions to resume; LOGIN again")
            default: return fail("BAD_TOKEN", "that resume token is unknown, already used or expired; LOGIN again")
            }
            let resumed = outcome.session
            return withScratch(160) { buffer in
                var line = LineWriter.reply(buffer)
                line.append("RESUMED ")
                appendName(of: resumed, to: &line)
                if let room = host.room(of: resumed) {
                    line.append(" room ")
                    withScratch(Game.maxRoomName) { name in
                        line.append(raw: host.name(of: room, into: name) ?? UnsafeRawBufferPointer(start: nil, count: 0))
                    }
                    line.append(" at ")
                    line.append(host.int(resumed, Field.x.rawValue) ?? 0)
                    line.space()
                    line.append(host.int(resumed, Field.y.rawValue) ?? 0)
                }
                line.append(" score ")
                line.append(host.player(of: resumed).flatMap { host.int($0, Field.score.rawValue) } ?? 0)
                line.append(" resume ")
                line.append(raw: outcome.token)
                return host.reply(line)
            }
        }
    }

    func quit() -> Int32 {
        host.reply("+BYE")
        return host.close(session)
    }

    // MARK: Rooms

    func listRooms() -> Int32 {
        withIDs(64) { rooms in
            let count = min(host.rooms(into: rooms), rooms.count)
            return withScratch(64 * (Game.maxRoomName + 8) + 16) { buffer in
                var line = LineWriter.reply(buffer)
                line.append("ROOMS")
                for room in rooms[0..<count] {
                    line.space()
                    withScratch(Game.maxRoomName) { name in
                        line.append(raw: host.name(of: room, into: name) ?? UnsafeRawBufferPointer(start: nil, count: 0))
                    }
                    line.append(":")
                    line.append(host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0)))
                }
                return host.reply(line)
            }
        }
    }

    func join(_ request: Request) -> Int32 {
        var tokens = request.argumentTokens
        guard let name = tokens.next(), tokens.next() == nil else { return fail("SYNTAX", "usage: JOIN room") }
        guard Bytes.isIdentifier(name, maxLength: Game.maxRoomName) else {
            return fail("BAD_ROOM", "a room name is 1 to 24 letters, digits, _ or -")
        }
        let existing = host.findRoom(name)
        let previous = host.room(of: session)
        if let previous, previous == existing {
            return fail("ALREADY_IN_ROOM", "you are already in that room")
        }
        // A refused JOIN changes nothing. A new room is made before the old
        // one is left, so ROOM_LIMIT is refused in place.
        let room: game_id
        var roundSeconds: Int64?  // set when this JOIN made the room: round 1 starts
        if let existing {
            room = existing
        } else {
            let created = host.createRoom(name)
            guard created.status == GAME_OK else { return fail("ROOM_LIMIT", "no more rooms can be created") }
            room = created.room
            roundSeconds = startRound(room, 1)
            // `batch_hz`: the room's events go out once per tick (one
            // write per member) instead of with each request.
            let batchHz = Settings.batchHz(host)
            if batchHz > 0 && host.setTickRate(room, UInt32(batchHz)) == GAME_OK { host.setBatching(room, true) }
        }
        // Only the engine knows a room's capacity, and it refuses a join from
        // a session still in a room: leave first, and on ROOM_FULL go back
        // to the same place in the old room's join order.
        let place = previous.map { position(of: session, in: $0) }
        if previous != nil { host.leave(session) }
        let joined = host.join(room, session)
        guard joined == GAME_OK else {
            if let previous, let place { rejoin(previous, at: place) }
            return joined == GAME_ERR_LIMIT ? fail("ROOM_FULL", "that room is full") : joined
        }
        if let previous { announce(in: previous, "LEAVE") }

        let spawn = Grid.spawn(seed: session ^ host.nowMilliseconds())
        host.setInt(session, Field.x.rawValue, spawn.x)
        host.setInt(session, Field.y.rawValue, spawn.y)
        // Points from another room's round do not count in this one.
        host.setInt(session, Field.roundPoints.rawValue, 0)
        Timers(host: host).armAFK(session, in: room)
        let players = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
        withScratch(96) { buffer in
            var line = LineWriter.reply(buffer)
            line.append("JOINED ")
            line.append(raw: name)
            line.append(" at ")
            line.append(spawn.x)
            line.space()
            line.append(spawn.y)
            line.append(" players ")
            line.append(players)
            host.reply(line)
        }
        announce(in: room, "JOIN", position: spawn)
        if let roundSeconds { announceRound(in: room, 1, endsIn: roundSeconds) }
        return GAME_OK
    }

    /// The session's index in the room's join order.
    func position(of member: game_id, in room: game_id) -> Int {
        let count = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
        return withIDs(max(count, 1)) { members in
            let count = min(host.members(of: room, into: members), members.count)
            return members[0..<count].firstIndex(of: member) ?? count
        }
    }

    /// Puts this session back into `room` at index `place` of its join
    /// order, as if it had never left: an emptied room lives until this call
    /// returns, so it is still there. The session rejoins at the end, then
    /// each member who had joined after it leaves and rejoins, in order.
    /// Nobody is told: to the players nothing happened.
    func rejoin(_ room: game_id, at place: Int) {
        host.join(room, session)
        let count = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
        withIDs(max(count, 1)) { members in
            let count = min(host.members(of: room, into: members), members.count)
            guard place < count else { return }
            for member in members[place..<count] where member != session {
                host.leave(member)
                host.join(room, member)
            }
        }
    }

    func leave(_ room: game_id) -> Int32 {
        announce(in: room, "LEAVE")
        host.leave(session)
        Timers(host: host).disarmAFK(session)
        return withScratch(64) { buffer in
            var line = LineWriter.reply(buffer)
            line.append("LEFT ")
            withScratch(Game.maxRoomName) { name in
                line.append(raw: host.name(of: room, into: name) ?? UnsafeRawBufferPointer(start: nil, count: 0))
            }
            return host.reply(line)
        }
    }

    func who(_ room: game_id) -> Int32 {
        forEachMember(of: room, header: "WHO") { member, line in
            appendName(of: member, to: &line)
        }
    }

    func say(_ request: Request, _ room: game_id) -> Int32 {
        guard !request.arguments.isEmpty else { return fail("SYNTAX", "usage: SAY text") }
        withScratch(StateLimits.maxChat) { buffer in
            var line = LineWriter.event(buffer)
            line.append("SAY ")
            appendName(of: session, to: &line)
            line.space()
            line.appendText(request.arguments)
            host.broadcast(room, except: session, line)
        }
        return host.reply("+OK")
    }

    /// Called as a session ends, while it is still in its room: an away
    /// session whose grace ran out left by timeout.
    func announceDeparture() {
        guard let room = host.room(of: session) else { return }
        if host.isAway(session) {
            announce(in: room, "LEAVE", reason: "timeout")
        } else {
            announce(in: room, "LEAVE")
        }
    }

    /// The session's connection dropped; it may come back (RESUME).
    func announceAway() {
        if let room = host.room(of: session) { announce(in: room, "AWAY") }
    }

    /// The session came back on a new connection. Its time away does not
    /// count as silence for the AFK rule: it starts again from now.
    func announceBack() {
        host.setInt(session, Field.lastRequest.rawValue, Int64(bitPattern: host.nowMilliseconds()))
        if let room = host.room(of: session) { announce(in: room, "BACK") }
    }

    // MARK: The board

    func move(_ request: Request, _ room: game_id) -> Int32 {
        var tokens = request.argumentTokens
        guard let direction = tokens.next(), tokens.next() == nil, let step = Game.step(direction) else {
            return fail("SYNTAX", "usage: MOVE N|S|E|W (or UP|DOWN|RIGHT|LEFT)")
        }
        guard let x = host.int(session, Field.x.rawValue), let y = host.int(session, Field.y.rawValue) else {
            return GAME_ERR_STATE
        }
        let (nx, ny) = (x + step.dx, y + step.dy)
        guard Grid.inside(nx, ny) else { return fail("BLOCKED", "that is the edge of the board") }
        host.setInt(session, Field.x.rawValue, nx)
        host.setInt(session, Field.y.rawValue, ny)

        let gems = host.int(room, Field.gems.rawValue) ?? 0
        let found = gems & Grid.bit(nx, ny) != 0
        let player = host.player(of: session) ?? 0
        var score = host.int(player, Field.score.rawValue) ?? 0
        if found {
            score += 1
            host.setInt(player, Field.score.rawValue, score)
            host.setInt(session, Field.roundPoints.rawValue, (host.int(session, Field.roundPoints.rawValue) ?? 0) + 1)
            host.setInt(room, Field.gems.rawValue, gems & ~Grid.bit(nx, ny))
            Timers(host: host).scheduleRespawn(in: room)
        }
        // "x y" and, with a gem, "score n": the tail of the reply and the event.
        func appendOutcome(_ line: inout LineWriter) {
            line.append(nx)
            line.space()
            line.append(ny)
            if found {
                line.append(" score ")
                line.append(score)
            }
        }
        withScratch(64) { buffer in
            var line = LineWriter.reply(buffer)
            line.append(found ? "GEM " : "MOVED ")
            appendOutcome(&line)
            host.reply(line)
        }
        withScratch(96) { buffer in
            var line = LineWriter.event(buffer)
            line.append(found ? "GEM " : "MOVE ")
            appendName(of: session, to: &line)
            line.space()
            appendOutcome(&line)
            host.broadcast(room, except: session, line)
        }
        return GAME_OK
    }

    func look(_ room: game_id) -> Int32 {
        let size = Int(Grid.size)
        return withScratch(size * size) { cells in
            let gems = host.int(room, Field.gems.rawValue) ?? 0
            for cell in 0..<(size * size) {
                cells[cell] = gems & (1 << Int64(cell)) != 0 ? UInt8(ascii: "*") : UInt8(ascii: ".")
            }
            withIDs(Game.memberBatch) { members in
                let count = min(host.members(of: room, into: members), members.count)
                for member in members[0..<count] where member != session {
                    if let x = host.int(member, Field.x.rawValue), let y = host.int(member, Field.y.rawValue),
                        Grid.inside(x, y)
                    {
                        cells[Int(y) * size + Int(x)] = UInt8(ascii: "o")
                    }
                }
            }
            let x = host.int(session, Field.x.rawValue) ?? 0
            let y = host.int(session, Field.y.rawValue) ?? 0
            if Grid.inside(x, y) { cells[Int(y) * size + Int(x)] = UInt8(ascii: "@") }
            return withScratch(32 + size * (size + 1)) { buffer in
                var line = LineWriter.reply(buffer)
                line.append("MAP ")
                line.append(x)
                line.space()
                line.append(y)
                for row in 0..<size {
                    line.space()
                    line.append(raw: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(cells)[(row * size)..<((row + 1) * size)]))
                }
                return host.reply(line)
            }
        }
    }

    func score() -> Int32 {
        guard let room = host.room(of: session) else {
            return withScratch(64) { buffer in
                var line = LineWriter.reply(buffer)
                line.append("SCORE ")
                appendScore(of: session, to: &line)
                return host.reply(line)
            }
        }
        return forEachMember(of: room, header: "SCORE") { member, line in
            appendScore(of: member, to: &line)
        }
    }

    /// Starts round `round` of `room`: a fresh board, every member's round
    /// points back to 0, and the room's `round_end` timer. Returns the
    /// round's length in seconds, for `announceRound` (which the caller
    /// sends once the room's members are who should hear it).
    @discardableResult
    func startRound(_ room: game_id, _ round: Int64) -> Int64 {
        host.setInt(room, Field.round.rawValue, round)
        host.setInt(room, Field.gems.rawValue, Grid.gems(seed: room ^ UInt64(bitPattern: round) ^ host.nowMilliseconds()))
        let count = host.members(of: room, into: UnsafeMutableBufferPointer(start: nil, count: 0))
        if count > 0 {
            withIDs(count) { members in
                let count = min(host.members(of: room, into: members), members.count)
                for member in members[0..<count] { host.setInt(member, Field.roundPoints.rawValue, 0) }
            }
        }
        let seconds = Settings.roundSeconds(host)
        Timers(host: host).scheduleRoundEnd(of: room, round, after: seconds)
        return seconds
    }

    /// `>ROUND n ends_in S` to every member of the room.
    func announceRound(in room: game_id, _ round: Int64, endsIn seconds: Int64) {
        withScratch(64) { buffer in
            var line = LineWriter.event(buffer)
            line.append("ROUND ")
            line.append(round)
            line.append(" ends_in ")
            line.append(seconds)
            host.broadcast(room, line)
        }
    }

    // MARK: Helpers

    static func step(_ direction: UnsafeRawBufferPointer) -> (dx: Int64, dy: Int64)? {
        if Bytes.equalsIgnoringCase(direction, upper: "N") || Bytes.equalsIgnoringCase(direction, upper: "UP") { return (0, -1) }
        if Bytes.equalsIgnoringCase(direction, upper: "S") || Bytes.equalsIgnoringCase(direction, upper: "DOWN") { return (0, 1) }
        if Bytes.equalsIgnoringCase(direction, upper: "E") || Bytes.equalsIgnoringCase(direction, upper: "RIGHT") { return (1, 0) }
        if Bytes.equalsIgnoringCase(direction, upper: "W") || Bytes.equalsIgnoringCase(direction, upper: "LEFT") { return (-1, 0) }
        return nil
    }

    /// `>VERB name` (and `x y` for a join, or a reason such as `afk`) to
    /// everyone else in the room.
    func announce(in room: game_id, _ verb: StaticString, position: (x: Int64, y: Int64)? = nil,
                  reason: StaticString? = nil) {
        withScratch(64) { buffer in
            var line = LineWriter.event(buffer)
            line.append(verb)
            line.space()
            appendName(of: session, to: &line)
            if let position {
                line.space()
                line.append(position.x)
                line.space()
                line.append(position.y)
            }
            if let reason {
                line.space()
                line.append(reason)
            }
            host.broadcast(room, except: session, line)
        }
    }

    func appendName(of member: game_id, to line: inout LineWriter) {
        withScratch(Game.maxNameLength) { name in
            if let bytes = host.string(member, Field.name.rawValue, into: name) { line.append(raw: bytes) }
        }
    }

    func appendScore(of member: game_id, to line: inout LineWriter) {
        appendName(of: member, to: &line)
        line.append(":")
        line.append(host.player(of: member).flatMap { host.int($0, Field.score.rawValue) } ?? 0)
    }

    /// `+HEADER item item ...` over the room's members, in join order.
    func forEachMember(of room: game_id, header: StaticString, _ item: (game_id, inout LineWriter) -> Void) -> Int32 {
        withIDs(Game.memberBatch) { members in
            let count = min(host.members(of: room, into: members), members.count)
            return withScratch(16 + count * (Game.maxNameLength + 12)) { buffer in
                var line = LineWriter.reply(buffer)
                line.append(header)
                for member in members[0..<count] {
                    line.space()
                    item(member, &line)
                }
                return host.reply(line)
            }
        }
    }

    /// `-ERR CODE text`, then GAME_OK: a refused request is a handled one.
    func fail(_ code: StaticString, _ text: StaticString) -> Int32 {
        withScratch(160) { buffer in
            var line = LineWriter.error(buffer, code: code)
            line.space()
            line.append(text)
            host.reply(line)
        }
        return GAME_OK
    }
}

/// Bounds on what one player can make the game store or send.
enum StateLimits {
    /// A chat event: verb, name and the longest text a request can carry.
    static let maxChat = 4096 + 64
}
