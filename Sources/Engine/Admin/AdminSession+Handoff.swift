import Protocol

/// An admin session's part of a connection record in an upgrade's handoff:
///
///     authenticated, failed AUTH count, ms since it connected, ms since
///     its last request, unfinished line, waiting (it asked for the
///     upgrade: its reply comes from the next engine), the lines queued
///     behind that, and whether it half-closed meanwhile
struct AdminSessionRecord: HandoffRecord, Equatable {
    var authenticated: Bool
    var failedAuths: Int
    var ageMilliseconds: UInt64
    var idleMilliseconds: UInt64
    var unfinishedLine: [UInt8]
    var waiting: Bool
    var backlog: [AdminSession.Backlog]
    var closeWhenAnswered: Bool

    init(authenticated: Bool, failedAuths: Int, ageMilliseconds: UInt64, idleMilliseconds: UInt64,
         unfinishedLine: [UInt8], waiting: Bool, backlog: [AdminSession.Backlog], closeWhenAnswered: Bool)
    {
        self.authenticated = authenticated
        self.failedAuths = failedAuths
        self.ageMilliseconds = ageMilliseconds
        self.idleMilliseconds = idleMilliseconds
        self.unfinishedLine = unfinishedLine
        self.waiting = waiting
        self.backlog = backlog
        self.closeWhenAnswered = closeWhenAnswered
    }

    func encode(into writer: inout HandoffWriter) {
        writer.bool(authenticated)
        writer.int(failedAuths)
        writer.u64(ageMilliseconds)
        writer.u64(idleMilliseconds)
        writer.bytes(unfinishedLine)
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

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        authenticated = try reader.bool("authenticated")
        failedAuths = try reader.int("failed auths")
        ageMilliseconds = try reader.u64("admin age")
        idleMilliseconds = try reader.u64("admin idle time")
        unfinishedLine = try reader.bytes("unfinished admin line")
        waiting = try reader.bool("waiting")
        let count = try reader.count("admin backlog", elementSize: 1)
        backlog = []
        for _ in 0..<count {
            switch try reader.u8("backlog entry") {
            case 0: backlog.append(.line(try reader.bytes("backlog line")))
            case 1: backlog.append(.lineTooLong)
            case let other: throw .invalid("backlog entry \(other)")
            }
        }
        closeWhenAnswered = try reader.bool("close when answered")
    }
}

extension AdminSession {
    /// The session as it goes over, ages taken at `now`.
    func handoffRecord(now: UInt64) -> AdminSessionRecord {
        AdminSessionRecord(authenticated: authenticated, failedAuths: failedAuths, ageMilliseconds: now.ageOf(openedAt),
                           idleMilliseconds: now.ageOf(lastRequest), unfinishedLine: framer.bufferedBytes,
                           waiting: waiting, backlog: backlog, closeWhenAnswered: closeWhenAnswered)
    }

    /// The session a record describes, on `connection`, under this
    /// engine's `--max-line-length`.
    static func restore(_ record: AdminSessionRecord, console: AdminConsole, connection: Connection,
                        now: UInt64) throws(HandoffError) -> AdminSession
    {
        var framer = LineFramer(maxLineLength: console.limits.maxLineLength)
        guard framer.restore(buffered: record.unfinishedLine) else {
            throw .invalid("an admin connection holds an unfinished line this engine's --max-line-length refuses")
        }
        return AdminSession(console: console, connection: connection, framer: framer,
                            authenticated: record.authenticated, failedAuths: record.failedAuths,
                            openedAt: now.minus(age: record.ageMilliseconds),
                            lastRequest: now.minus(age: record.idleMilliseconds), waiting: record.waiting,
                            backlog: record.backlog, closeWhenAnswered: record.closeWhenAnswered)
    }
}
