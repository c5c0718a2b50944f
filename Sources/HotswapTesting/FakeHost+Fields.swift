import GameABI

/// The state table's field members.
extension FakeHost {
    func getInt(_ entity: game_id, _ field: Int32, _ out: UnsafeMutablePointer<Int64>?) -> Int32 {
        run("get_int") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out") }
            let b = try fieldBinding(field)
            out.pointee = state.store.int(b, row: try state.row(of: entity, for: b, type: UInt32(GAME_TYPE_INT)))
        }
    }

    func setInt(_ entity: game_id, _ field: Int32, _ value: Int64) -> Int32 {
        run("set_int") { () throws(FakeStatus) in
            try checkWrite(entity)
            let b = try fieldBinding(field)
            state.store.setInt(b, row: try state.row(of: entity, for: b, type: UInt32(GAME_TYPE_INT)), value)
        }
    }

    func getString(_ entity: game_id, _ field: Int32, _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                   _ length: UnsafeMutablePointer<Int>?) -> Int32
    {
        run("get_string") { () throws(FakeStatus) in
            let length = try checkOut(buffer, capacity, length)
            let b = try fieldBinding(field)
            let row = try state.row(of: entity, for: b, type: UInt32(GAME_TYPE_STRING))
            copyOut(state.store.string(b, row: row), buffer, capacity, length)
        }
    }

    func setString(_ entity: game_id, _ field: Int32, _ pointer: UnsafePointer<UInt8>?, _ length: Int) -> Int32 {
        run("set_string") { () throws(FakeStatus) in
            let value = try fieldValue(pointer, length)
            try checkWrite(entity)
            let b = try fieldBinding(field)
            let row = try state.row(of: entity, for: b, type: UInt32(GAME_TYPE_STRING))
            guard state.store.setString(b, row: row, value) else {
                throw FakeStatus(GAME_ERR_EXISTS, "the field is unique and another entity holds the value")
            }
        }
    }

    func findByString(_ field: Int32, _ pointer: UnsafePointer<UInt8>?, _ length: Int,
                      _ out: UnsafeMutablePointer<game_id>?) -> Int32
    {
        run("find_by_string") { () throws(FakeStatus) in
            guard let out else { throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out_entity") }
            let value = try fieldValue(pointer, length)
            let b = try fieldBinding(field)
            guard b.type == UInt32(GAME_TYPE_STRING) else { throw FakeStatus(GAME_ERR_BAD_TYPE, "find_by_string on an int field") }
            out.pointee = 0
            guard state.store.isUnique(b) else { throw FakeStatus(GAME_ERR_BAD_FIELD, "find_by_string on a field that is not unique") }
            guard let row = state.store.row(b, holding: value), let id = state.liveID(kind: b.kind, row: row) else {
                throw FakeStatus(GAME_ERR_NOT_FOUND, "no entity holds the value")
            }
            out.pointee = id
        }
    }

    /// `field_index` (ABI 1.5): the index of a field of the schema this
    /// table writes (the candidate's, during a reload or rollback hook).
    func fieldIndex(_ kind: UInt32, _ name: UnsafePointer<UInt8>?, _ length: Int, _ type: UnsafeMutablePointer<UInt32>?)
        -> Int32
    {
        var index = GAME_ERR_NOT_FOUND
        let status = run("field_index") { () throws(FakeStatus) in
            guard let name, length >= 0, length <= Int(GAME_MAX_FIELD_NAME), kind >= 1 && kind <= 4 else {
                throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a field name is at most \(GAME_MAX_FIELD_NAME) bytes, of kind 1...4")
            }
            let wanted = String(decoding: UnsafeBufferPointer(start: name, count: length), as: UTF8.self)
            guard let found = fields.firstIndex(where: { $0.kind == kind && $0.name == wanted }) else {
                throw FakeStatus(GAME_ERR_NOT_FOUND, "no field '\(wanted)' of kind \(kind)")
            }
            index = Int32(found)
            type?.pointee = fields[found].type
        }
        return status == GAME_OK ? index : status
    }
}
