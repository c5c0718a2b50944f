import GameABI

/// Resume tokens and the move of a connection to the session it resumed
/// (ABI 1.4).
extension FakeHost {
    /// A new token for the session; its previous one stops working. Tokens
    /// are deterministic per host (22 bytes of base64url from a counter):
    /// it is a fake, the engine takes 128 bits from the OS.
    func issueToken(for session: game_id) -> String {
        if let old = state.tokenOf[session] { state.tokens[old] = nil }
        tokenCounter += 1
        var seed = tokenCounter &* 0x9E37_79B9_7F4A_7C15 ^ session
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var token = ""
        for _ in 0..<Int(GAME_RESUME_TOKEN_LENGTH) {
            // SplitMix64 steps: spread, not secret.
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            token.append(alphabet[Int((z ^ (z >> 31)) & 63)])
        }
        state.tokens[token] = session
        state.tokenOf[session] = token
        return token
    }

    /// After a request whose RESUME was checked returned: a connection
    /// still serving the target is told REPLACED and closed, the requesting
    /// connection now serves the target (and reads what it was sent while
    /// away), the fresh session ends, and `sessionBack` runs if it was away.
    func applyResume(_ resume: FakeResume, to connection: FakeSession) {
        guard state.isOpen(resume.fresh), state.isOpen(resume.target) else { return }
        let wasAway = state.sessions[resume.target]?.awayUntil != nil
        for old in connections where old.isConnected && old.id == resume.target {
            old.isConnected = false
            old.leftover += (state.outbox[resume.target] ?? []) + [FakeReplies.replaced]
            state.outbox[resume.target] = []
        }
        connections.removeAll { !$0.isConnected }
        state.sessions[resume.target]?.awayUntil = nil
        connection.id = resume.target
        tearDown(resume.fresh)
        if wasAway { callHook(module.sessionBack, resume.target) }
    }
}
