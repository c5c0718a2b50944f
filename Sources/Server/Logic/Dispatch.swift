import CLibUV
import GameABI

/// Handing lines to the module, and the rules around each call.
extension Engine {
    /// Sends one request line to the current module and makes sure it gets
    /// exactly one reply, whatever the module does.
    func dispatch(_ line: UnsafeRawBufferPointer, from connection: Connection) {
        let session = connection.sessionID
        current = (session, connection)
        replied = false
        // An empty line still needs a valid pointer for C.
        let bytes = (line.baseAddress ?? readBufferBase).assumingMemoryBound(to: UInt8.self)
        var message = game_message(session: session.raw, line: bytes, length: line.count)
        let status: Int32
        if measureNextCall {
            // The first call into a freshly swapped image is the slow one.
            measureNextCall = false
            let started = uv_hrtime()
            status = withModuleCall { module.handle(&message, table) }
            stats.firstCallNanoseconds = uv_hrtime() - started
        } else {
            status = withModuleCall { module.handle(&message, table) }
        }
        if !replied {
            connection.enqueue(line: status == GAME_OK ? Replies.noReply : Replies.moduleFailed)
        }
        if status != GAME_OK {
            logger.warning("module returned an error", metadata: [
                "module": "\(module.name) \(module.version)", "status": "\(status)", "session": "\(session)"])
        }
        current = nil
    }

    /// Runs a module call, then applies what the module asked to happen
    /// after it (closes, empty rooms), so the module never re-enters itself.
    func withModuleCall<R>(_ call: () -> R) -> R {
        let result = call()
        let saved = current
        current = nil
        while let id = pendingCloses.popLast() {
            tearDown(id)
        }
        destroyRoomsLeftEmpty()
        current = saved
        return result
    }
}
