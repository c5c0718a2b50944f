import GameABI

/// The state table's output and room members (ABI 1.0).
extension FakeHost {
    func reply(_ pointer: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
        run("reply") { () throws(FakeStatus) in
            let line = try outputLine(pointer, length, markers: "+-")
            guard var current = call, current.answersRequest else {
                throw FakeStatus(GAME_ERR_STATE, "reply outside a request (hooks, timers, ticks and migrations answer nobody)")
            }
            guard current.reply == nil else { throw FakeStatus(GAME_ERR_STATE, "a second reply to one request") }
            guard current.authAsk == nil else {
                throw FakeStatus(GAME_ERR_STATE, "the answer to this request is deferred (a login was asked): reply from hotswap_auth")
            }
            current.reply = line
            call = current
            // A reply also writes what a batching room held before it.
            state.deliver(line, to: current.session, isReply: true)
        }
    }

    func send(_ session: game_id, _ pointer: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
        run("send") { () throws(FakeStatus) in
            try checkServing("send")
            let line = try outputLine(pointer, length, markers: ">")
            try state.send(to: session, line)
        }
    }

    func closeSession(_ session: game_id) -> Int32 {
        run("close_session") { () throws(FakeStatus) in
            try checkServing("close_session")
            _ = try state.session(session)
            if state.isOpen(session) && !pendingCloses.contains(session) { pendingCloses.append(session) }
        }
    }

    func broadcast(_ room: game_id, _ except: game_id, _ pointer: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
        run("room_broadcast") { () throws(FakeStatus) in
            try checkServing("room_broadcast")
            let line = try outputLine(pointer, length, markers: ">")
            try state.broadcast(room, except: except, line)
        }
    }

    func log(_ level: Int32, _ pointer: UnsafePointer<UInt8>?, _ length: Int) {
        guard length <= Int(GAME_MAX_STRING), let text = bytes(pointer, length) else { return }
        let name = switch level {
        case GAME_LOG_DEBUG: "DEBUG"
        case GAME_LOG_INFO: "INFO"
        case GAME_LOG_WARNING: "WARNING"
        default: "ERROR"
        }
        logs.append("\(name) \(String(decoding: text, as: UTF8.self))")
    }

    // MARK: - Rooms

    func roomCreate(_ name: UnsafePointer<UInt8>?, _ length: Int, _ out: UnsafeMutablePointer<game_id>?) -> Int32 {
        run("room_create") { () throws(FakeStatus) in
            try checkServing("room_create")
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out_room") }
            out.pointee = try state.createRoom(try roomName(name, length), limit: limits.maxRooms)
        }
    }

    func roomFind(_ name: UnsafePointer<UInt8>?, _ length: Int, _ out: UnsafeMutablePointer<game_id>?) -> Int32 {
        run("room_find") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out_room") }
            guard let id = state.roomsByName[try roomName(name, length)] else { throw FakeStatus(GAME_ERR_NOT_FOUND, "no such room") }
            out.pointee = id
        }
    }

    func roomJoin(_ room: game_id, _ session: game_id) -> Int32 {
        run("room_join") { () throws(FakeStatus) in
            try checkServing("room_join")
            try state.join(session, room, limit: limits.maxRoomMembers)
        }
    }

    func roomLeave(_ session: game_id) -> Int32 {
        run("room_leave") { () throws(FakeStatus) in
            try checkServing("room_leave")
            try state.leaveRoom(session)
        }
    }

    func roomOf(_ session: game_id, _ out: UnsafeMutablePointer<game_id>?) -> Int32 {
        run("room_of") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out_room") }
            out.pointee = try state.session(session).room ?? 0
        }
    }

    func roomMembers(_ room: game_id, _ out: UnsafeMutablePointer<game_id>?, _ capacity: Int,
                     _ count: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("room_members") { () throws(FakeStatus) in
            let count = try checkOut(out, capacity, count)
            guard let record = state.rooms[room] else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(room))") }
            copyOut(record.members, out, capacity, count)
        }
    }

    func roomList(_ out: UnsafeMutablePointer<game_id>?, _ capacity: Int, _ count: UnsafeMutablePointer<Int>?) -> Int32 {
        run("room_list") { () throws(FakeStatus) in
            copyOut(state.rooms.ids, out, capacity, try checkOut(out, capacity, count))
        }
    }

    func roomName(_ room: game_id, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                  _ length: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("room_name") { () throws(FakeStatus) in
            let length = try checkOut(buffer, capacity, length)
            guard let record = state.rooms[room] else { throw FakeStatus(GAME_ERR_BAD_ROOM, "no live room \(hex(room))") }
            copyOut(record.name, buffer, capacity, length)
        }
    }
}
