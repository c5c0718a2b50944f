import GameABI

/// The state table's session, player, login and resume members
/// (ABI 1.1, 1.2, 1.4) and `undo` (1.5).
extension FakeHost {
    func sessionIdentified(_ session: game_id) -> Int32 {
        run("session_identified") { () throws(FakeStatus) in
            try checkServing("session_identified")
            _ = try state.session(session)
            state.sessions[session]?.identified = true
        }
    }

    func playerAttach(_ session: game_id, _ key: UnsafePointer<UInt8>?, _ length: Int,
                      _ out: UnsafeMutablePointer<game_id>?) -> Int32
    {
        run("player_attach") { () throws(FakeStatus) in
            try checkServing("player_attach")
            guard let out, let key, length >= 1, length <= Int(GAME_MAX_PLAYER_KEY) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a player key is 1...\(GAME_MAX_PLAYER_KEY) bytes (or NULL out_player)")
            }
            out.pointee = 0
            let bytes = Array(UnsafeBufferPointer(start: key, count: length))
            // A module attaches players itself only where logins need no proof.
            guard authMode == .open else { throw FakeStatus(GAME_ERR_STATE, "player_attach outside the open auth mode: use auth_login") }
            if let player = state.playersByKey[bytes], state.players[player]?.secret.isEmpty == false {
                throw FakeStatus(GAME_ERR_BAD_SECRET, "the player has a secret: use auth_login")
            }
            out.pointee = try state.attachPlayer(session, key: bytes, limit: limits.maxPlayers)
        }
    }

    func playerOf(_ session: game_id, _ out: UnsafeMutablePointer<game_id>?) -> Int32 {
        run("player_of") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out_player") }
            out.pointee = try state.session(session).player ?? 0
        }
    }

    func playerDetach(_ session: game_id) -> Int32 {
        run("player_detach") { () throws(FakeStatus) in
            try checkServing("player_detach")
            try state.detachPlayer(session)
        }
    }

    func playerKey(_ player: game_id, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                   _ length: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("player_key") { () throws(FakeStatus) in
            let length = try checkOut(buffer, capacity, length)
            guard let record = state.players[player] else { throw FakeStatus(GAME_ERR_BAD_PLAYER, "no stored player \(hex(player))") }
            copyOut(record.key, buffer, capacity, length)
        }
    }

    // MARK: - Logins (answered in FakeHost+Auth.swift)

    func authLogin(_ session: game_id, _ identity: UnsafePointer<UInt8>?, _ identityLength: Int,
                   _ secret: UnsafePointer<UInt8>?, _ secretLength: Int) -> Int32
    {
        run("auth_login") { () throws(FakeStatus) in
            let isToken = authMode.code == UInt32(GAME_AUTH_TOKEN)
            let most = isToken ? Int(GAME_MAX_AUTH_TOKEN) : Int(GAME_MAX_PLAYER_KEY)
            guard let identity, identityLength >= 1, identityLength <= most, secretLength >= 0,
                secretLength <= Int(GAME_MAX_SECRET), secret != nil || secretLength == 0, !isToken || secretLength == 0
            else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "identity is 1...\(most) bytes, secret 0...\(GAME_MAX_SECRET) (none with a token)") }
            let key = Array(UnsafeBufferPointer(start: identity, count: identityLength))
            guard isToken || (String(validating: key, as: UTF8.self) != nil && !key.contains(0)) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a player key is UTF-8 without NUL")
            }
            let secretBytes = secretLength == 0 ? [] : Array(UnsafeBufferPointer(start: secret!, count: secretLength))
            try askAuth(FakeAuthAsk(isLogin: true, session: session, identity: key, secret: secretBytes))
        }
    }

    func authSetSecret(_ session: game_id, _ secret: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
        run("auth_set_secret") { () throws(FakeStatus) in
            guard let secret, length >= 1, length <= Int(GAME_MAX_SECRET) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a secret is 1...\(GAME_MAX_SECRET) bytes")
            }
            let bytes = Array(UnsafeBufferPointer(start: secret, count: length))
            try askAuth(FakeAuthAsk(isLogin: false, session: session, identity: [], secret: bytes))
        }
    }

    /// Records a login for the request being handled, whose answer is then deferred.
    func askAuth(_ ask: FakeAuthAsk) throws(FakeStatus) {
        try checkServing(ask.isLogin ? "auth_login" : "auth_set_secret")
        guard var current = call, current.kind == .request, module.auth != nil, current.authAsk == nil,
            current.reply == nil, ask.session == current.session
        else {
            throw FakeStatus(GAME_ERR_STATE, "a login is asked once, from hotswap_handle, for the requesting session, before any reply, by a module exporting hotswap_auth")
        }
        let holds = try state.session(ask.session).player != nil
        if ask.isLogin && holds { throw FakeStatus(GAME_ERR_STATE, "the session holds a player already") }
        if !ask.isLogin {
            if authMode.code == UInt32(GAME_AUTH_TOKEN) { throw FakeStatus(GAME_ERR_STATE, "no secrets in the token auth mode") }
            if !holds { throw FakeStatus(GAME_ERR_NOT_FOUND, "the session holds no player") }
        }
        current.authAsk = ask
        call = current
    }

    // MARK: - Resume

    func sessionToken(_ session: game_id, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                      _ length: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("session_token") { () throws(FakeStatus) in
            guard let buffer, let length, capacity >= Int(GAME_RESUME_TOKEN_LENGTH) else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "the token buffer holds at least \(GAME_RESUME_TOKEN_LENGTH) bytes")
            }
            try checkServing("session_token")
            // The engine's documented answer when the operator turned
            // resume off; a module asking anyway (to offer a token if there
            // is one) does nothing wrong.
            guard limits.resumeGraceMilliseconds > 0 else {
                throw FakeStatus(GAME_ERR_STATE, "resume is off (resumeGraceMilliseconds 0)", isAnswer: true)
            }
            guard state.isOpen(session) else { throw FakeStatus(GAME_ERR_BAD_SESSION, "no live session \(hex(session))") }
            copyOut(Array(issueToken(for: session).utf8), buffer, capacity, length)
        }
    }

    func sessionResume(_ session: game_id, _ token: UnsafePointer<UInt8>?, _ tokenLength: Int,
                       _ out: UnsafeMutablePointer<game_id>?, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                       _ length: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("session_resume") { () throws(FakeStatus) in
            guard let out, let buffer, let length, capacity >= Int(GAME_RESUME_TOKEN_LENGTH), tokenLength >= 0,
                token != nil || tokenLength == 0
            else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out-pointer or a token buffer under \(GAME_RESUME_TOKEN_LENGTH) bytes") }
            out.pointee = 0
            try checkServing("session_resume")
            guard limits.resumeGraceMilliseconds > 0 else { throw FakeStatus(GAME_ERR_STATE, "resume is off (resumeGraceMilliseconds 0)") }
            guard var current = call, current.kind == .request, session == current.session else {
                throw FakeStatus(GAME_ERR_STATE, "session_resume is for the requesting session, from hotswap_handle")
            }
            let fresh = try state.session(session)
            guard !fresh.identified, fresh.room == nil, fresh.player == nil else {
                throw FakeStatus(GAME_ERR_STATE, "only a fresh session (not identified, in no room, holding no player) resumes")
            }
            let presented = String(decoding: UnsafeBufferPointer(start: token, count: tokenLength), as: UTF8.self)
            guard let target = state.tokens[presented], target != session, state.isOpen(target) else {
                throw FakeStatus(GAME_ERR_NOT_FOUND, "unknown, spent or expired token")
            }
            let next = issueToken(for: target)
            current.resume = FakeResume(fresh: session, target: target)
            call = current
            out.pointee = target
            copyOut(Array(next.utf8), buffer, capacity, length)
        }
    }

    func sessionStatus(_ session: game_id, _ out: UnsafeMutablePointer<UInt32>?) -> Int32 {
        run("session_status") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out_status") }
            let record = try state.session(session)
            out.pointee = UInt32(record.awayUntil != nil ? GAME_SESSION_AWAY : GAME_SESSION_CONNECTED)
        }
    }

    func undo() -> Int32 {
        run("undo") { () throws(FakeStatus) in try undoCall() }
    }
}
