import GameABI

/// The rules every state table call goes through: arguments, the phase of
/// the call, and how a refusal becomes a status code (and a violation).
extension FakeHost {
    /// Codes that mean the module broke the contract (recorded in
    /// `violations`); the others (NOT_FOUND, EXISTS, ...) answer questions.
    static let violationCodes: Set<Int32> = [
        GAME_ERR_BAD_SESSION, GAME_ERR_BAD_ROOM, GAME_ERR_BAD_FIELD, GAME_ERR_BAD_TYPE, GAME_ERR_BAD_ARGUMENT,
        GAME_ERR_LIMIT, GAME_ERR_STATE, GAME_ERR_BAD_PLAYER,
    ]

    /// Runs a table call's body and turns its outcome into a status code.
    func run(_ member: String, _ body: () throws(FakeStatus) -> Void) -> Int32 {
        do {
            try body()
            return GAME_OK
        } catch {
            if Self.violationCodes.contains(error.code), !error.isAnswer {
                let place = call.map { " in \($0.kind.rawValue)" } ?? " outside any module call"
                violations.append("\(member)\(place): \(FakeStatus.name(error.code)): \(error.why)")
            }
            return error.code
        }
    }

    /// Output, room changes, closes, timers and logins are refused while a
    /// reload runs module code on staged state.
    func checkServing(_ what: String) throws(FakeStatus) {
        if let call, call.isMigrating {
            throw FakeStatus(GAME_ERR_STATE, "\(what) is not allowed during \(call.kind.rawValue)")
        }
    }

    /// While a stored player migrates, only that player may be written.
    func checkWrite(_ entity: game_id) throws(FakeStatus) {
        if let call, call.onlyWritable != 0, call.onlyWritable != entity {
            throw FakeStatus(GAME_ERR_STATE, "while a stored player migrates only that player may be written")
        }
    }

    func fieldBinding(_ index: Int32) throws(FakeStatus) -> FakeBinding {
        guard index >= 0, Int(index) < bindings.count else {
            throw FakeStatus(GAME_ERR_BAD_FIELD, "field index \(index) is not declared (0..<\(bindings.count))")
        }
        return bindings[Int(index)]
    }

    /// A line to send: 1...GAME_MAX_OUTPUT_LINE bytes starting with one of
    /// `markers`, without CR, LF or NUL.
    func outputLine(_ pointer: UnsafePointer<UInt8>?, _ length: Int, markers: String) throws(FakeStatus) -> String {
        guard let pointer, length > 0, length <= Int(GAME_MAX_OUTPUT_LINE) else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "an output line is 1...\(GAME_MAX_OUTPUT_LINE) bytes (got \(length))")
        }
        let line = UnsafeBufferPointer(start: pointer, count: length)
        guard markers.utf8.contains(line[0]) else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "this line must begin with one of \"\(markers)\"")
        }
        guard !line.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }) else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "an output line holds CR, LF or NUL")
        }
        return String(decoding: line, as: UTF8.self)
    }

    /// A string field's value: 0...GAME_MAX_STRING bytes.
    func fieldValue(_ pointer: UnsafePointer<UInt8>?, _ length: Int) throws(FakeStatus) -> [UInt8] {
        guard length >= 0, length <= Int(GAME_MAX_STRING), let value = bytes(pointer, length) else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a string value is 0...\(GAME_MAX_STRING) bytes (got \(length))")
        }
        return value
    }

    func roomName(_ pointer: UnsafePointer<UInt8>?, _ length: Int) throws(FakeStatus) -> [UInt8] {
        guard length >= 1, length <= Int(GAME_MAX_ROOM_NAME), let name = bytes(pointer, length, limit: Int(GAME_MAX_ROOM_NAME)) else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "a room name is 1...\(GAME_MAX_ROOM_NAME) bytes (got \(length))")
        }
        return name
    }

    /// An out-buffer pair is usable: a length pointer, and a buffer unless
    /// the capacity is 0.
    func checkOut<T>(_ buffer: UnsafeMutablePointer<T>?, _ capacity: Int, _ length: UnsafeMutablePointer<Int>?)
        throws(FakeStatus) -> UnsafeMutablePointer<Int>
    {
        guard let length, capacity >= 0, buffer != nil || capacity == 0 else {
            throw FakeStatus(GAME_ERR_BAD_ARGUMENT, "NULL out-pointer, or a NULL buffer with a capacity")
        }
        return length
    }

    /// Copies at most `capacity` bytes out and always stores the full length.
    func copyOut(_ source: [UInt8], _ buffer: UnsafeMutablePointer<UInt8>?, _ capacity: Int,
                 _ length: UnsafeMutablePointer<Int>)
    {
        let taken = min(capacity, source.count)
        if taken > 0, let buffer { source.withUnsafeBufferPointer { buffer.update(from: $0.baseAddress!, count: taken) } }
        length.pointee = source.count
    }

    /// Ids copied out, at most `capacity`; the full count stored.
    func copyOut(_ ids: [game_id], _ out: UnsafeMutablePointer<game_id>?, _ capacity: Int,
                 _ count: UnsafeMutablePointer<Int>)
    {
        for (index, id) in ids.prefix(capacity).enumerated() { out![index] = id }
        count.pointee = ids.count
    }

    /// 1...GAME_MAX_TIMER_EVENT bytes of [a-z0-9_.:-].
    static func isTimerEvent(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 1 && bytes.count <= Int(GAME_MAX_TIMER_EVENT) && bytes.allSatisfy {
            ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F || $0 == 0x2E || $0 == 0x3A || $0 == 0x2D
        }
    }
}
