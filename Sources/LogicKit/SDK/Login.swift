import Protocol
import GameABI

/// The fields the standard LOGIN, SECRET, RESUME, WHO and JOIN need: a
/// game using them declares these three session fields.
public protocol LoginFields: FieldSet {
    /// The name as the player typed it (shown to others).
    @inlinable var name: SessionField<String> { get }
    /// The lower-cased name: unique, so two sessions cannot share it.
    @inlinable var nameKey: SessionField<String> { get }
    /// The name typed at LOGIN while the engine checks it.
    @inlinable var loginName: SessionField<String> { get }
}

/// The standard login, through the engine's verification (ABI 1.4): the
/// engine checks the secret (a salted scrypt hash) or the signed token
/// off its loop and answers in `hotswap_auth`; names are unique ignoring
/// case; the lower-cased name is the player's durable key.
@usableFromInline enum Login<G: Game> {
    @inlinable static var minSecretLength: Int { 4 }

    @inlinable static func loggedIn(_ c: Context<G>) -> Bool { c.host.player(of: c.sessionID) != nil }

    @inlinable static func usage(_ c: Context<G>) -> Refusal {
        c.host.authMode == UInt32(GAME_AUTH_TOKEN) ? .usage("LOGIN", "token") : .usage("LOGIN", "name [secret]")
    }

    /// `LOGIN name [secret]`, or `LOGIN token` where tokens are required.
    @inlinable static func login(_ c: Context<G>, _ args: inout Arguments) throws(Refusal) where G.Fields: LoginFields {
        let token = c.host.authMode == UInt32(GAME_AUTH_TOKEN)
        guard let first = args.optionalWord() else { throw usage(c) }
        let secret = args.optionalWord()
        guard args.optionalWord() == nil, !(token && secret != nil) else { throw usage(c) }
        if loggedIn(c) || c.me.withText(\.name, { !$0.isEmpty }) {
            throw Refusal("ALREADY_LOGGED_IN", "you are already logged in")
        }
        if token {
            let status = c.host.login(c.sessionID, identity: first.bytes, secret: Text.empty.bytes)
            if status == GAME_ERR_BAD_ARGUMENT { throw Refusal("BAD_SECRET", "that is not a login token") }
            try checkAsked(c, status)
            return
        }
        guard first.isIdentifier(maxLength: G.maxNameLength) else {
            c.refuse("-ERR BAD_NAME a name is 1 to \(G.maxNameLength) letters, digits, _ or -")
            return
        }
        if let secret, secret.count < minSecretLength || secret.count > Int(GAME_MAX_SECRET) {
            throw Refusal("BAD_SECRET", "a secret is 4 to 256 characters without spaces")
        }
        if c.host.authMode == UInt32(GAME_AUTH_SECRET) && secret == nil {
            throw Refusal("SECRET_REQUIRED", "this server needs LOGIN name secret")
        }
        c.me.set(\.loginName, text: first)
        let status = first.withLowercased { key in
            c.host.login(c.sessionID, identity: key.bytes, secret: (secret ?? .empty).bytes)
        }
        try checkAsked(c, status)
    }

    /// The engine took the check (its answer comes in `hotswap_auth`), or
    /// the request is refused now, saying so: never a silent no-reply.
    @inlinable static func checkAsked(_ c: Context<G>, _ status: Int32) throws(Refusal) {
        guard status != GAME_OK else { return }
        throw status == GAME_ERR_STATE
            ? Refusal("LOGIN_IN_PROGRESS", "a login or secret change is already being checked, or this server cannot check one")
            : Refusal("LOGIN_FAILED", "the server could not start checking this login")
    }

    /// `SECRET secret`: sets or changes the logged-in player's secret (a
    /// guest claims its name).
    @inlinable static func setSecret(_ c: Context<G>, _ args: inout Arguments) throws(Refusal) where G.Fields: LoginFields {
        let secret = try args.word()
        try args.end()
        guard loggedIn(c) else { throw Refusal.notLoggedIn }
        guard c.host.authMode != UInt32(GAME_AUTH_TOKEN) else {
            throw Refusal("NOT_ALLOWED", "players log in with tokens here; there is no secret to set")
        }
        guard secret.count >= minSecretLength, secret.count <= Int(GAME_MAX_SECRET) else {
            throw Refusal("BAD_SECRET", "a secret is 4 to 256 characters without spaces")
        }
        try checkAsked(c, c.host.setSecret(c.sessionID, secret.bytes))
    }
}

@usableFromInline enum LoginAnswer<G: Game> where G.Fields: LoginFields {
    @inlinable static func answer(_ c: Context<G>, _ result: game_auth_result) {
        if result.flags & GAME_AUTH_SECRET_SET != 0 {
            if result.status == GAME_OK {
                c.reply("+OK secret set: from now on log in with LOGIN name secret")
            } else {
                refused(c, result)
            }
            return
        }
        let me = c.me
        guard result.status == GAME_OK else {
            me.set(\.loginName, text: .empty)
            refused(c, result)
            return
        }
        let key = Text(UnsafeRawBufferPointer(start: result.key, count: result.key_length))
        me.withText(\.loginName) { typed in
            // The name as typed; a token's subject is its own name.
            let name = result.flags & GAME_AUTH_VIA_TOKEN == 0 && typed.count == key.count ? typed : key
            guard name.isIdentifier(maxLength: G.maxNameLength) else {
                c.host.detachPlayer(c.sessionID)
                c.reply("-ERR BAD_NAME the token's subject is not a name (1 to \(G.maxNameLength) letters, digits, _ or -)")
                return
            }
            name.withLowercased { lowered in
                guard me.set(\.nameKey, text: lowered) == GAME_OK else {
                    c.host.detachPlayer(c.sessionID)
                    c.reply(Refusal("NAME_TAKEN", "that name is in use").line)
                    return
                }
                me.set(\.name, text: name)
                c.host.identified(c.sessionID)
                var welcome: Line = "+WELCOME \(raw: name)"
                do throws(Refusal) {
                    try G.loggedIn(c, me, c.player(result.player), welcome: &welcome)
                } catch {
                    c.refuse(error.line)
                    return
                }
                // The engine keeps the session for a while if the connection
                // drops; this token brings it back (RESUME). None when the
                // operator turned resume off.
                withScratch(Int(GAME_RESUME_TOKEN_LENGTH)) { scratch in
                    if let token = c.host.resumeToken(c.sessionID, into: scratch) {
                        welcome.append(" resume ")
                        welcome.append(raw: token)
                    }
                }
                c.reply(welcome)
            }
        }
    }

    /// A login the engine refused, in the player's words.
    @inlinable static func refused(_ c: Context<G>, _ result: game_auth_result) {
        switch result.status {
        case GAME_ERR_BAD_SECRET:
            c.reply(c.host.authMode == UInt32(GAME_AUTH_TOKEN)
                ? Refusal("BAD_SECRET", "that token is not valid (forged, expired or for no one)").line
                : Refusal("BAD_SECRET", "wrong secret for that name").line)
        case GAME_ERR_THROTTLED:
            c.reply("-ERR THROTTLED too many attempts; retry in \(Int((result.retry_after_ms + 999) / 1000)) s")
        case GAME_ERR_SECRET_REQUIRED: c.reply(Refusal("SECRET_REQUIRED", "this server needs LOGIN name secret").line)
        case GAME_ERR_BUSY where result.flags & UInt32(GAME_AUTH_STORAGE) != 0:
            c.reply(Refusal("UNAVAILABLE", "player records cannot be read just now; retry in a moment").line)
        case GAME_ERR_BUSY: c.reply(Refusal("BUSY", "too many logins at once; retry in a moment").line)
        case GAME_ERR_EXISTS where result.flags & UInt32(GAME_AUTH_ELSEWHERE) != 0:
            c.reply("-ERR NAME_TAKEN that player is online on another server; retry after it logs out (its hold ends within \(Int((result.retry_after_ms + 999) / 1000)) s if that server stops)")
        case GAME_ERR_EXISTS:
            // Held by a session whose connection dropped: it is kept for its
            // own RESUME, and the player is told.
            let key = Text(UnsafeRawBufferPointer(start: result.key, count: result.key_length))
            if c.find(\.nameKey, key)?.isAway ?? false {
                c.reply(Refusal("NAME_TAKEN", "that name's connection dropped; its session waits for RESUME with its token, then the name is free").line)
            } else {
                c.reply(Refusal("NAME_TAKEN", "that name is in use").line)
            }
        case GAME_ERR_LIMIT: c.reply(Refusal("PLAYER_LIMIT", "the server stores no more new players").line)
        default: c.reply("-ERR LOGIN_FAILED status \(result.status)")
        }
    }

    /// `RESUME token` on a fresh connection (see game_abi.h, resume).
    @inlinable static func resume(_ c: Context<G>, _ args: inout Arguments) throws(Refusal) {
        let token = try args.word()
        try args.end()
        if c.host.player(of: c.sessionID) != nil || c.me.withText(\.name, { !$0.isEmpty }) {
            throw Refusal("ALREADY_LOGGED_IN", "you are already logged in")
        }
        try withScratchThrowing(Int(GAME_RESUME_TOKEN_LENGTH)) { (next: UnsafeMutableRawBufferPointer) throws(Refusal) in
            let outcome = c.host.resume(c.sessionID, token: token.bytes, newToken: next)
            switch outcome.status {
            case GAME_OK: break
            case GAME_ERR_LIMIT: throw Refusal("RESUME_THROTTLED", "too many failed RESUMEs from your address; wait a minute")
            case GAME_ERR_STATE: throw Refusal("RESUME_OFF", "this server keeps no sessions to resume; LOGIN again")
            default: throw Refusal("BAD_TOKEN", "that resume token is unknown, already used or expired; LOGIN again")
            }
            let resumed = c.session(outcome.session)
            var line: Line = "+RESUMED \(resumed.text(\.name))"
            G.resumed(c, resumed, reply: &line)
            line.append(" resume ")
            line.append(raw: outcome.token)
            c.reply(line)
        }
    }
}

/// A `withScratch` that lets its body throw a `Refusal`.

@usableFromInline func withScratchThrowing<R>(_ byteCount: Int, _ body: (UnsafeMutableRawBufferPointer) throws(Refusal) -> R) throws(Refusal) -> R {
    let result: Result<R, Refusal> = withScratch(byteCount) { buffer in
        do throws(Refusal) { return .success(try body(buffer)) } catch { return .failure(error) }
    }
    return try result.get()
}
