import GameABI

/// The state table as a test module calls it: thin wrappers over the C
/// function pointers, taking Swift strings (a C module would pass bytes).
typealias Table = UnsafePointer<game_state_table>

extension UnsafePointer where Pointee == game_state_table {
    @discardableResult
    func reply(_ line: String) -> Int32 { withBytes(line) { pointee.reply!(self, $0, $1) } }

    @discardableResult
    func send(_ session: game_id, _ line: String) -> Int32 { withBytes(line) { pointee.send!(self, session, $0, $1) } }

    @discardableResult
    func broadcast(_ room: game_id, _ line: String, except: game_id = 0) -> Int32 {
        withBytes(line) { pointee.room_broadcast!(self, room, except, $0, $1) }
    }

    @discardableResult
    func close(_ session: game_id) -> Int32 { pointee.close_session!(self, session) }

    func createRoom(_ name: String) -> (Int32, game_id) {
        var id: game_id = 0
        let status = withBytes(name) { pointee.room_create!(self, $0, $1, &id) }
        return (status, id)
    }

    func findRoom(_ name: String) -> (Int32, game_id) {
        var id: game_id = 0
        let status = withBytes(name) { pointee.room_find!(self, $0, $1, &id) }
        return (status, id)
    }

    /// Finds the room or makes it, then joins it.
    @discardableResult
    func enter(_ name: String, _ session: game_id) -> Int32 {
        var (status, room) = findRoom(name)
        if status != GAME_OK { (status, room) = createRoom(name) }
        if status != GAME_OK { return status }
        return pointee.room_join!(self, room, session)
    }

    func roomOf(_ session: game_id) -> game_id {
        var room: game_id = 0
        _ = pointee.room_of!(self, session, &room)
        return room
    }

    func getInt(_ entity: game_id, _ field: Int32) -> (Int32, Int64) {
        var value: Int64 = 0
        let status = pointee.get_int!(self, entity, field, &value)
        return (status, value)
    }

    @discardableResult
    func setInt(_ entity: game_id, _ field: Int32, _ value: Int64) -> Int32 { pointee.set_int!(self, entity, field, value) }

    func getString(_ entity: game_id, _ field: Int32) -> (Int32, String) {
        var buffer = [UInt8](repeating: 0, count: Int(GAME_MAX_STRING))
        var length = 0
        let status = pointee.get_string!(self, entity, field, &buffer, buffer.count, &length)
        return (status, String(decoding: buffer.prefix(min(length, buffer.count)), as: UTF8.self))
    }

    @discardableResult
    func setString(_ entity: game_id, _ field: Int32, _ value: String) -> Int32 {
        withBytes(value) { pointee.set_string!(self, entity, field, $0, $1) }
    }

    func find(_ field: Int32, _ value: String) -> (Int32, game_id) {
        var id: game_id = 0
        let status = withBytes(value) { pointee.find_by_string!(self, field, $0, $1, &id) }
        return (status, id)
    }

    func attach(_ session: game_id, _ key: String) -> (Int32, game_id) {
        var id: game_id = 0
        let status = withBytes(key) { pointee.player_attach!(self, session, $0, $1, &id) }
        return (status, id)
    }

    func playerOf(_ session: game_id) -> game_id {
        var id: game_id = 0
        _ = pointee.player_of!(self, session, &id)
        return id
    }

    func setTimer(_ owner: game_id, _ event: String, payload: String = "", delay: UInt64, period: UInt64 = 0) -> (Int32, game_id) {
        var id: game_id = 0
        let status = withBytes(event) { e, el in
            withBytes(payload) { p, pl in pointee.timer_set!(self, owner, e, el, p, pl, delay, period, &id) }
        }
        return (status, id)
    }

    @discardableResult
    func cancelTimer(_ id: game_id) -> Int32 { pointee.timer_cancel!(self, id) }

    @discardableResult
    func tickRate(_ room: game_id, _ rate: UInt32) -> Int32 { pointee.room_set_tick_rate!(self, room, rate) }

    @discardableResult
    func batching(_ room: game_id, _ on: Bool) -> Int32 { pointee.room_set_batching!(self, room, on ? 1 : 0) }

    func setting(_ key: String) -> (Int32, String) {
        var buffer = [UInt8](repeating: 0, count: 256)
        var length = 0
        let status = withBytes(key) { pointee.setting!(self, $0, $1, &buffer, buffer.count, &length) }
        return (status, String(decoding: buffer.prefix(min(length, buffer.count)), as: UTF8.self))
    }

    @discardableResult
    func login(_ session: game_id, _ identity: String, secret: String = "") -> Int32 {
        withBytes(identity) { i, il in withBytes(secret) { s, sl in pointee.auth_login!(self, session, i, il, s, sl) } }
    }

    func token(_ session: game_id) -> (Int32, String) {
        var buffer = [UInt8](repeating: 0, count: Int(GAME_RESUME_TOKEN_LENGTH))
        var length = 0
        let status = pointee.session_token!(self, session, &buffer, buffer.count, &length)
        return (status, String(decoding: buffer.prefix(min(length, buffer.count)), as: UTF8.self))
    }

    func resume(_ session: game_id, _ token: String) -> (Int32, game_id, String) {
        var target: game_id = 0
        var buffer = [UInt8](repeating: 0, count: Int(GAME_RESUME_TOKEN_LENGTH))
        var length = 0
        let status = withBytes(token) { pointee.session_resume!(self, session, $0, $1, &target, &buffer, buffer.count, &length) }
        return (status, target, String(decoding: buffer.prefix(min(length, buffer.count)), as: UTF8.self))
    }

    func sessionStatus(_ session: game_id) -> (Int32, UInt32) {
        var status: UInt32 = 0
        let code = pointee.session_status!(self, session, &status)
        return (code, status)
    }

    @discardableResult
    func undo() -> Int32 { pointee.undo!(self) }
}

/// Lends a string's UTF-8 bytes as C would pass them (a pointer, a length).
func withBytes<R>(_ text: String, _ body: (UnsafePointer<UInt8>?, Int) -> R) -> R {
    var text = text
    return text.withUTF8 { body($0.baseAddress, $0.count) }
}
