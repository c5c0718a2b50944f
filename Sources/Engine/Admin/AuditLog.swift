import Glibc

/// `--audit-log PATH`: every admin action as one JSON line, appended to a
/// file the operator keeps (the normal log keeps its own lines too).
///
///     {"time":"2026-11-26T02:31:07.120Z","peer":"127.0.0.1:50312","action":"RELOAD",
///      "module":"/srv/game/libGameLogic.so","sha256_before":"3d7a…","sha256_after":"1073…",
///      "result":"ok","reason":"","held_us":24}
///
/// Lines go through a `LogSink` on the file: the loop never waits for the
/// disk, and a line that does not fit the sink's bound is dropped and counted
/// (`audit_dropped=` in STATUS) rather than delaying the game.
final class AuditLog: Sendable {
    private let sink: LogSink

    /// Opens (creating, appending) the file; nil and the reason on failure.
    static func open(path: String) -> Result<AuditLog, AuditLogError> {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return .failure(AuditLogError(path: path, reason: String(cString: strerror(errno)))) }
        return .success(AuditLog(sink: LogSink(fileDescriptor: fd)))
    }

    private init(sink: LogSink) { self.sink = sink }

    var droppedLines: Int { sink.droppedLines }
    /// Lines not written yet (LogSink.queuedLines).
    var queuedLines: Int { sink.queuedLines }

    /// One action. Empty strings stand for "not applicable".
    struct Entry {
        var peer: String
        var action: String
        var module = ""
        var sha256Before = ""
        var sha256After = ""
        var result: String
        var reason = ""
        var heldMicroseconds: UInt64?
        /// What the action was about when it is not a module: the key of a
        /// player forgotten.
        var subject = ""
    }

    func record(_ entry: Entry) {
        var line = "{\"time\":\"\(AuditLog.now())\",\"peer\":\(JSON.string(entry.peer)),"
        line += "\"action\":\(JSON.string(entry.action)),\"module\":\(JSON.string(entry.module)),"
        line += "\"sha256_before\":\(JSON.string(entry.sha256Before)),\"sha256_after\":\(JSON.string(entry.sha256After)),"
        line += "\"result\":\(JSON.string(entry.result)),\"reason\":\(JSON.string(entry.reason)),"
        line += "\"held_us\":\(entry.heldMicroseconds.map(String.init) ?? "null")"
        if !entry.subject.isEmpty { line += ",\"subject\":\(JSON.string(entry.subject))" }
        line += "}\n"
        _ = sink.enqueue(line)
    }

    /// Writes what is queued, waiting at most `timeout` (at exit).
    func flush(timeout: Duration) { _ = sink.flush(timeout: timeout) }

    /// UTC with milliseconds.
    private static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let base = AdminConsole.iso8601(spec.tv_sec).dropLast()  // no "Z"
        let millis = spec.tv_nsec / 1_000_000
        return "\(base).\(millis < 10 ? "00" : millis < 100 ? "0" : "")\(millis)Z"
    }
}

/// Why the audit log cannot be opened (the server refuses to start).
struct AuditLogError: Error, CustomStringConvertible {
    let path: String
    let reason: String
    var description: String { "cannot open --audit-log \(path): \(reason)" }
}

/// The little JSON the engine writes by hand (the ready file, audit lines).
enum JSON {
    /// A JSON string literal, quotes included.
    static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                out += "\\u00" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
