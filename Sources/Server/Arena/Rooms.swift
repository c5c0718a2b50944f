import GameABI

/// Room operations: the engine owns membership so that it survives reloads
/// and a disconnect always leaves the room, whatever the module does.
extension Engine {
    func createRoom(named name: UnsafeRawBufferPointer) -> Result<GameID, RoomError> {
        let key = [UInt8](name)
        if roomsByName[key] != nil { return .failure(.exists) }
        if rooms.count >= limits.maxRooms { return .failure(.limit) }
        let id = rooms.insert(Room(name: key, members: []))
        roomsByName[key] = id
        store.ensureRows(.room, rooms.capacity)
        // Until someone joins, the room is empty: collected after this call.
        roomsToCheck.append(id)
        return .success(id)
    }

    func findRoom(named name: UnsafeRawBufferPointer) -> GameID? {
        roomsByName[[UInt8](name)]
    }

    func join(_ session: GameID, _ room: GameID) -> Int32 {
        guard let sessionSlot = sessions.slotIndex(of: session) else { return GAME_ERR_BAD_SESSION }
        guard let roomSlot = rooms.slotIndex(of: room) else { return GAME_ERR_BAD_ROOM }
        if sessions[slot: sessionSlot].room != nil { return GAME_ERR_EXISTS }
        if rooms[slot: roomSlot].members.count >= limits.maxRoomMembers { return GAME_ERR_LIMIT }
        rooms[slot: roomSlot].members.append(session)
        sessions[slot: sessionSlot].room = room
        return GAME_OK
    }

    /// Takes a session out of its room; GAME_ERR_NOT_FOUND when in none.
    func leaveRoom(_ session: GameID) -> Int32 {
        guard let sessionSlot = sessions.slotIndex(of: session) else { return GAME_ERR_BAD_SESSION }
        guard let room = sessions[slot: sessionSlot].room else { return GAME_ERR_NOT_FOUND }
        sessions[slot: sessionSlot].room = nil
        if let roomSlot = rooms.slotIndex(of: room) {
            rooms[slot: roomSlot].members.removeAll { $0 == session }
            if rooms[slot: roomSlot].members.isEmpty { roomsToCheck.append(room) }
        }
        return GAME_OK
    }

    /// Destroys the rooms that ended the last module call empty; their
    /// names become free and their fields reset.
    func destroyRoomsLeftEmpty() {
        while let id = roomsToCheck.popLast() {
            guard let slot = rooms.slotIndex(of: id), rooms[slot: slot].members.isEmpty else { continue }
            roomsByName[rooms[slot: slot].name] = nil
            rooms.remove(id)
            store.resetRow(.room, slot)
        }
    }

    /// Appends `line` to every member but `except`.
    func broadcast(_ room: GameID, except: GameID?, _ line: UnsafeRawBufferPointer) -> Int32 {
        guard let slot = rooms.slotIndex(of: room) else { return GAME_ERR_BAD_ROOM }
        for member in rooms[slot: slot].members where member != except {
            if let memberSlot = sessions.slotIndex(of: member) {
                sessions[slot: memberSlot].connection.enqueue(line: line)
            }
        }
        return GAME_OK
    }
}

enum RoomError: Error {
    case exists
    case limit
}
