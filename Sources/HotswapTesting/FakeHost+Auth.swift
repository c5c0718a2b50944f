import GameABI

/// The deferred answer to a login (`auth_login`, `auth_set_secret`): the
/// fake's check (plain-text secrets, a table of valid tokens; no
/// throttling), then `hotswap_auth` as the engine calls it.
extension FakeHost {
    struct Verdict {
        var status: Int32
        var flags: UInt32
        var key: [UInt8]
        var newSecret: [UInt8]? = nil
    }

    /// What the engine's AuthDesk would find.
    func verdict(for ask: FakeAuthAsk) -> Verdict {
        let secretSet = UInt32(GAME_AUTH_SECRET_SET)
        guard ask.isLogin else {
            guard let player = state.sessions[ask.session]?.player, let record = state.players[player] else {
                return Verdict(status: GAME_ERR_STATE, flags: secretSet, key: [])
            }
            return Verdict(status: GAME_OK, flags: secretSet, key: record.key, newSecret: ask.secret)
        }
        if case .token(let valid) = authMode {
            guard let subject = valid[String(decoding: ask.identity, as: UTF8.self)], !subject.isEmpty,
                subject.utf8.count <= Int(GAME_MAX_PLAYER_KEY), !subject.utf8.contains(0)
            else { return Verdict(status: GAME_ERR_BAD_SECRET, flags: 0, key: []) }
            let key = Array(subject.utf8)
            let created = state.playersByKey[key] == nil ? UInt32(GAME_AUTH_CREATED) : 0
            return Verdict(status: GAME_OK, flags: UInt32(GAME_AUTH_VIA_TOKEN) | created, key: key)
        }
        let key = ask.identity
        let existing = state.playersByKey[key].flatMap { state.players[$0] }
        if existing?.session != nil { return Verdict(status: GAME_ERR_EXISTS, flags: 0, key: key) }
        let stored = existing?.secret ?? []
        if !stored.isEmpty {
            return Verdict(status: ask.secret == stored ? GAME_OK : GAME_ERR_BAD_SECRET, flags: 0, key: key)
        }
        let created = existing == nil ? UInt32(GAME_AUTH_CREATED) : 0
        if ask.secret.isEmpty {
            guard authMode == .open else { return Verdict(status: GAME_ERR_SECRET_REQUIRED, flags: 0, key: key) }
            return Verdict(status: GAME_OK, flags: created | UInt32(GAME_AUTH_GUEST), key: key)
        }
        return Verdict(status: GAME_OK, flags: existing == nil ? created : UInt32(GAME_AUTH_CLAIMED), key: key,
                       newSecret: ask.secret)
    }

    /// Attaches the player (on success) and calls `hotswap_auth`, as the
    /// answer to the request that asked; returns its reply. A fault-free
    /// `undo` in the hook takes the attach back too.
    func answerAuth(_ ask: FakeAuthAsk) -> String {
        guard state.isOpen(ask.session), let hook = module.auth else { return "" }
        var verdict = verdict(for: ask)
        beginCall(.auth, session: ask.session)
        var player: game_id = 0
        if verdict.status == GAME_OK {
            do throws(FakeStatus) {
                if ask.isLogin {
                    player = try state.attachPlayer(ask.session, key: verdict.key, limit: limits.maxPlayers)
                } else if let held = state.sessions[ask.session]?.player {
                    player = held
                } else {
                    throw FakeStatus(GAME_ERR_NOT_FOUND, "the session holds no player")
                }
                if let secret = verdict.newSecret { state.players[player]?.secret = secret }
            } catch {
                player = 0
                verdict.status = error.code
                verdict.flags &= UInt32(GAME_AUTH_SECRET_SET)
            }
        }
        let status = verdict.key.withUnsafeBufferPointer { key in
            var result = game_auth_result(
                size: UInt32(MemoryLayout<game_auth_result>.size), abi_version: UInt32(GAME_ABI_VERSION),
                session: ask.session, player: player, status: verdict.status, flags: verdict.flags,
                key: key.baseAddress, key_length: key.count, retry_after_ms: 0)
            return hook(&result, table)
        }
        let done = endCall()
        let answer = done.reply ?? defaultReply(status, export: "hotswap_auth")
        afterCall()
        return answer
    }
}
