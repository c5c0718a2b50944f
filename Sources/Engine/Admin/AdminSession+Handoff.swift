import Protocol

/// An admin session's part of a connection record in an upgrade's handoff:
///
///     authenticated, failed AUTH count, ms since it connected, ms since
///     its last request, unfinished line, waiting (it asked for the
///     upgrade: its reply comes from the next engine), the lines queued
///     behind that, and whether it half-closed meanwhile
extension AdminSession {
    func encodeHandoff(into writer: inout HandoffWriter, now: UInt64) {
        writer.bool(authenticated)
        writer.int(failedAuths)
        writer.u64(now.ageOf(openedAt))
        writer.u64(now.ageOf(lastRequest))
        writer.bytes(framer.bufferedBytes)
        writer.bool(waiting)
        writer.u32(UInt32(backlog.count))
        for entry in backlog {
            switch entry {
            case .line(let bytes):
                writer.u8(0)
                writer.bytes(bytes)
            case .lineTooLong:
                writer.u8(1)
            }
        }
        writer.bool(closeWhenAnswered)
    }

    static func restoreHandoff(from reader: inout HandoffReader, console: AdminConsole, connection: Connection,
                               now: UInt64) throws(HandoffError) -> AdminSession
    {
        let authenticated = try reader.bool("authenticated")
        let failedAuths = try reader.int("failed auths")
        let openedAt = now.minus(age: try reader.u64("admin age"))
        let lastRequest = now.minus(age: try reader.u64("admin idle time"))
        var framer = LineFramer(maxLineLength: console.limits.maxLineLength)
        guard framer.restore(buffered: try reader.bytes("unfinished admin line")) else {
            throw .invalid("an admin connection holds an unfinished line this engine's --max-line-length refuses")
        }
        let waiting = try reader.bool("waiting")
        let count = try reader.count("admin backlog", elementSize: 1)
        var backlog: [Backlog] = []
        for _ in 0..<count {
            switch try reader.u8("backlog entry") {
            case 0: backlog.append(.line(try reader.bytes("backlog line")))
            case 1: backlog.append(.lineTooLong)
            case let other: throw .invalid("backlog entry \(other)")
            }
        }
        return AdminSession(console: console, connection: connection, framer: framer, authenticated: authenticated,
                            failedAuths: failedAuths, openedAt: openedAt, lastRequest: lastRequest, waiting: waiting,
                            backlog: backlog, closeWhenAnswered: try reader.bool("close when answered"))
    }
}
