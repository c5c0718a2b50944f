import GameABI

/// The fake's `game_state_table`: one C-callable thunk per member (ABI 1.5,
/// all of them), each finding its `FakeHost` through the table's `engine`
/// pointer and handing the arguments to it.
enum FakeTable {
    static func make(engine: UnsafeMutableRawPointer?) -> game_state_table {
        game_state_table(
            size: UInt32(MemoryLayout<game_state_table>.size),
            abi_version: UInt32(GAME_ABI_VERSION),
            engine: engine,
            reply: { t, bytes, length in FakeHost.of(t).reply(bytes, length) },
            send: { t, session, bytes, length in FakeHost.of(t).send(session, bytes, length) },
            close_session: { t, session in FakeHost.of(t).closeSession(session) },
            room_create: { t, name, length, out in FakeHost.of(t).roomCreate(name, length, out) },
            room_find: { t, name, length, out in FakeHost.of(t).roomFind(name, length, out) },
            room_join: { t, room, session in FakeHost.of(t).roomJoin(room, session) },
            room_leave: { t, session in FakeHost.of(t).roomLeave(session) },
            room_of: { t, session, out in FakeHost.of(t).roomOf(session, out) },
            room_members: { t, room, out, capacity, count in FakeHost.of(t).roomMembers(room, out, capacity, count) },
            room_broadcast: { t, room, except, bytes, length in FakeHost.of(t).broadcast(room, except, bytes, length) },
            room_list: { t, out, capacity, count in FakeHost.of(t).roomList(out, capacity, count) },
            room_name: { t, room, buffer, capacity, length in FakeHost.of(t).roomName(room, buffer, capacity, length) },
            get_int: { t, entity, field, out in FakeHost.of(t).getInt(entity, field, out) },
            set_int: { t, entity, field, value in FakeHost.of(t).setInt(entity, field, value) },
            get_string: { t, entity, field, buffer, capacity, length in
                FakeHost.of(t).getString(entity, field, buffer, capacity, length)
            },
            set_string: { t, entity, field, bytes, length in FakeHost.of(t).setString(entity, field, bytes, length) },
            find_by_string: { t, field, bytes, length, out in FakeHost.of(t).findByString(field, bytes, length, out) },
            now_ms: { t in FakeHost.of(t).nowMilliseconds },
            log: { t, level, bytes, length in FakeHost.of(t).log(level, bytes, length) },
            session_identified: { t, session in FakeHost.of(t).sessionIdentified(session) },
            player_attach: { t, session, key, length, out in FakeHost.of(t).playerAttach(session, key, length, out) },
            player_of: { t, session, out in FakeHost.of(t).playerOf(session, out) },
            player_detach: { t, session in FakeHost.of(t).playerDetach(session) },
            player_key: { t, player, buffer, capacity, length in FakeHost.of(t).playerKey(player, buffer, capacity, length) },
            timer_set: { t, owner, event, eventLength, payload, payloadLength, delay, period, out in
                FakeHost.of(t).timerSet(owner, event, eventLength, payload, payloadLength, delay, period, out)
            },
            timer_cancel: { t, timer in FakeHost.of(t).timerCancel(timer) },
            room_set_tick_rate: { t, room, rate in FakeHost.of(t).setTickRate(room, rate) },
            room_set_batching: { t, room, on in FakeHost.of(t).roomSetBatching(room, on) },
            setting: { t, key, keyLength, buffer, capacity, length in
                FakeHost.of(t).setting(key, keyLength, buffer, capacity, length)
            },
            auth_mode: { t in FakeHost.of(t).authMode.code },
            auth_login: { t, session, identity, identityLength, secret, secretLength in
                FakeHost.of(t).authLogin(session, identity, identityLength, secret, secretLength)
            },
            auth_set_secret: { t, session, secret, length in FakeHost.of(t).authSetSecret(session, secret, length) },
            session_token: { t, session, buffer, capacity, length in
                FakeHost.of(t).sessionToken(session, buffer, capacity, length)
            },
            session_resume: { t, session, token, tokenLength, out, buffer, capacity, length in
                FakeHost.of(t).sessionResume(session, token, tokenLength, out, buffer, capacity, length)
            },
            session_status: { t, session, out in FakeHost.of(t).sessionStatus(session, out) },
            undo: { t in FakeHost.of(t).undo() },
            field_index: { t, kind, name, length, type in FakeHost.of(t).fieldIndex(kind, name, length, type) })
    }
}
