import CLibUV
import Glibc
import Logging
import Protocol

/// How the admin port is guarded and where modules may come from.
struct AdminSettings {
    /// Required with `AUTH token` before any command; nil: no token needed.
    var token: [UInt8]?
    /// Real path of the only directory modules are loaded from.
    var modulesDirectory: String
    /// The module path configured at start: what a bare RELOAD reads again.
    var defaultModulePath: String
    /// The server's log, for STATUS `log_dropped` (none in unit tests).
    var logSink: LogSink? = nil

    /// Operators connected at once; an admin port is not a public service.
    static let maxConnections = 16
    /// Wrong tokens before the connection is closed.
    static let maxFailedAuths = 3
    /// Lines an admin may send ahead while a reload runs.
    static let maxBacklog = 64
}

/// What waits on an admin connection behind a pending RELOAD.
enum AdminBacklogEntry {
    case line([UInt8])
    /// The line after the queued ones was over the limit: answer, then close.
    case lineTooLong
}

/// Counters the admin STATUS reports.
struct EngineStats {
    var reloads = 0
    var refused = 0
    var rollbacks = 0
    var lastReloadWallSeconds: Int?
    var firstCallNanoseconds: UInt64?
    var lastHeldMicroseconds: UInt64?
    var adminConnections = 0
    /// The loader's count, copied on the loop thread after each load (the
    /// loader itself is busy on a worker thread during one).
    var imagesMapped = 0
    var lineTooLong = 0
    var serverFull = 0
    var outputOverflows = 0
    var rateLimited = 0
    var rateLimitCloses = 0
    var idleCloses = 0
    let startedNanoseconds = uv_hrtime()
}

/// The operator's console on the admin port: same line grammar as the game
/// port, one reply per request, every action logged with its outcome.
///
///     AUTH token        STATUS        RELOAD [path]
///     ROLLBACK          MODULES       PING       HELP       QUIT
extension Engine {
    func adminReceived(_ connection: Connection, _ bytes: UnsafeRawBufferPointer) {
        let outcome = connection.framer.feed(bytes) { line in
            if connection.adminWaiting {
                guard connection.adminBacklog.count < AdminSettings.maxBacklog else {
                    connection.adminBacklog.removeAll()
                    connection.closeWhenAnswered = true
                    connection.stopReading()
                    return false
                }
                connection.adminBacklog.append(.line(Array(line)))
            } else {
                adminLine(line, connection)
            }
            return connection.state == .open && !connection.closeWhenAnswered
        }
        if outcome == .lineTooLong {
            // Behind a pending reload, the reload's reply must come first.
            connection.adminBacklog.append(.lineTooLong)
            if !connection.adminWaiting { drainAdminBacklog(connection) }
        }
    }

    /// Runs one admin line; a RELOAD answers later, and the lines after it
    /// wait in the backlog until it has.
    private func adminLine(_ line: UnsafeRawBufferPointer, _ connection: Connection) {
        let verb = Request(line: line).map { String(decoding: $0.verb, as: UTF8.self).uppercased() }
        var answered = false
        connection.adminWaiting = true
        let reply = adminCommand(line, connection) { [unowned self] later in
            answered = true
            adminReply(later, verb: verb, connection)
            connection.adminWaiting = false
            drainAdminBacklog(connection)
        }
        if let reply {
            connection.adminWaiting = false
            adminReply(reply, verb: verb, connection)
        } else if answered {
            // The command failed before anything was queued; its reply is out.
            connection.adminWaiting = false
        }
    }

    /// Runs the lines that waited behind a reload, in order, until one
    /// waits again; then closes if the operator had already hung up.
    private func drainAdminBacklog(_ connection: Connection) {
        while !connection.adminWaiting, connection.state == .open, !connection.adminBacklog.isEmpty {
            switch connection.adminBacklog.removeFirst() {
            case .line(let bytes):
                bytes.withUnsafeBytes { adminLine($0, connection) }
            case .lineTooLong:
                connection.enqueue(line: Replies.lineTooLong)
                connection.closeAfterFlush()
                return
            }
        }
        if !connection.adminWaiting && connection.closeWhenAnswered {
            if connection.adminBacklog.isEmpty {
                connection.closeAfterFlush()
            } else {
                connection.enqueue(line: Replies.backlogFull)
                connection.closeAfterFlush()
            }
        }
    }

    private func adminReply(_ reply: String, verb: String?, _ connection: Connection) {
        if let verb, verb != "AUTH" {
            // Reloads log their own detailed line; this one records every
            // command and its outcome (never an AUTH line: it holds the token).
            logger.info("admin: \(Engine.oneLine(verb)) -> \(reply.prefix(while: { $0 != " " }))")
        }
        reply.utf8CString.withUnsafeBufferPointer { text in
            connection.enqueue(line: UnsafeRawBufferPointer(start: text.baseAddress, count: text.count - 1))
        }
    }

    /// The reply, or nil when `later` will be called with it.
    private func adminCommand(
        _ line: UnsafeRawBufferPointer, _ connection: Connection, later: @escaping (String) -> Void
    ) -> String? {
        guard let request = Request(line: line) else { return "-ERR EMPTY empty request, try HELP" }
        if request.verbIs("AUTH") { return authenticate(request, connection) }
        if request.verbIs("PING") { return "+PONG" }
        if request.verbIs("QUIT") {
            connection.closeAfterFlush()
            return "+BYE"
        }
        guard connection.authenticated || admin.token == nil else {
            return "-ERR AUTH_REQUIRED send AUTH token first"
        }
        if request.verbIs("HELP") { return "+HELP AUTH token | STATUS | RELOAD [path] | ROLLBACK | MODULES | PING | QUIT" }
        if request.verbIs("STATUS") { return status() }
        if request.verbIs("MODULES") { return modulesLine() }
        if request.verbIs("RELOAD") {
            let argument = String(decoding: request.arguments, as: UTF8.self)
            let path = argument.isEmpty ? admin.defaultModulePath : argument
            let action = "RELOAD \(Engine.oneLine(path))"
            let confined: String
            do throws(SwapError) {
                confined = try confine(path)
            } catch {
                return record(action, .failure(error))
            }
            reloadInBackground(path: confined) { [unowned self] outcome in later(record(action, outcome)) }
            return nil
        }
        if request.verbIs("ROLLBACK") { return rollbackCommand() }
        return "-ERR UNKNOWN_COMMAND unknown admin command, try HELP"
    }

    private func authenticate(_ request: Request, _ connection: Connection) -> String {
        guard let token = admin.token else {
            connection.authenticated = true
            return "+OK no token is required"
        }
        if constantTimeEqual(request.arguments, token) {
            connection.authenticated = true
            logger.notice("admin: AUTH ok")
            return "+OK authenticated"
        }
        connection.failedAuths += 1
        logger.warning("admin: AUTH refused", metadata: ["attempt": "\(connection.failedAuths)"])
        if connection.failedAuths >= AdminSettings.maxFailedAuths { connection.closeAfterFlush() }
        return "-ERR AUTH_FAILED wrong token"
    }

    private func rollbackCommand() -> String {
        let outcome: Result<SwapReport, SwapError>
        do throws(SwapError) {
            outcome = .success(try rollback())
        } catch {
            outcome = .failure(error)
        }
        return record("ROLLBACK", outcome)
    }

    /// Logs a swap's outcome, counts it and words the operator's reply.
    func record(_ action: String, _ outcome: Result<SwapReport, SwapError>) -> String {
        switch outcome {
        case .success(let report):
            if action == "ROLLBACK" { stats.rollbacks += 1 } else { stats.reloads += 1 }
            stats.lastReloadWallSeconds = time(nil)
            stats.lastHeldMicroseconds = report.heldMicroseconds
            let summary = "\(report.from.name) \(report.from.version) -> \(report.to.name) \(report.to.version) "
                + "held_us=\(report.heldMicroseconds) load_us=\(report.loadMicroseconds) migrated=\(report.migrated)"
            logger.notice("admin: \(action) done: \(summary)", metadata: ["sha256": "\(report.to.sha256)"])
            return "+OK \(summary)"
        case .failure(let error):
            stats.refused += 1
            logger.warning("admin: \(action) refused: \(error)")
            return "-ERR RELOAD_FAILED \(Engine.oneLine("\(error)"))"
        }
    }

    /// Resolves `path` (symlinks and `..` included) and refuses anything
    /// outside the modules directory.
    func confine(_ path: String) throws(SwapError) -> String {
        // A relative path names a file in the modules directory.
        let path = path.hasPrefix("/") ? path : "\(admin.modulesDirectory)/\(path)"
        guard let resolved = realpath(path, nil) else {
            throw .load(.notFound(path: path))
        }
        defer { free(resolved) }
        let real = String(cString: resolved)
        let directory = admin.modulesDirectory.hasSuffix("/") ? admin.modulesDirectory : admin.modulesDirectory + "/"
        guard real.hasPrefix(directory) else {
            throw .path("module path \(path) resolves to \(real), outside the modules directory \(admin.modulesDirectory)")
        }
        return real
    }

    private func status() -> String {
        let uptime = (uv_hrtime() - stats.startedNanoseconds) / 1_000_000_000
        var fields = [
            "module=\(module.name)", "version=\(module.version)", "sha256=\(module.sha256)",
            "path=\(module.sourcePath)", "sessions=\(sessions.count)", "rooms=\(rooms.count)",
            "connections=\(openConnections)", "uptime_s=\(uptime)", "reloads=\(stats.reloads)",
            "rollbacks=\(stats.rollbacks)", "refused=\(stats.refused)", "images=\(stats.imagesMapped)",
            "previous=\(previousModule.map { "\($0.name)@\($0.version)" } ?? "none")",
            "max_connections=\(limits.maxConnections)", "line_too_long=\(stats.lineTooLong)",
            "server_full=\(stats.serverFull)", "output_overflows=\(stats.outputOverflows)",
            "rate_limited=\(stats.rateLimited)", "rate_limit_closes=\(stats.rateLimitCloses)",
            "idle_closes=\(stats.idleCloses)", "log_dropped=\(admin.logSink?.droppedLines ?? 0)",
        ]
        if let last = stats.lastReloadWallSeconds { fields.append("last_reload=\(Engine.iso8601(last))") }
        if let held = stats.lastHeldMicroseconds { fields.append("last_held_us=\(held)") }
        if let first = stats.firstCallNanoseconds { fields.append("first_call_ns=\(first)") }
        return "+STATUS " + fields.map(Engine.oneLine).joined(separator: " ")
    }

    private func modulesLine() -> String {
        let entries = loadHistory.map { entry in
            let marker = entry.imagePath == module.imagePath ? "*" : ""
            return "\(entry.name)@\(entry.version):\(entry.sha256.prefix(12))\(marker)"
        }
        return "+MODULES " + entries.joined(separator: " ")
    }

    /// Keeps a reply on one line whatever a dlerror or path contains.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline || $0.asciiValue.map { $0 < 0x20 } == true ? " " : $0 })
    }

    static func iso8601(_ seconds: Int) -> String {
        var value = time_t(seconds)
        var parts = tm()
        gmtime_r(&value, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T"
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}

/// Compares a secret without an early exit, so the time taken does not
/// reveal how much of a guess was right.
func constantTimeEqual(_ given: UnsafeRawBufferPointer, _ secret: [UInt8]) -> Bool {
    var difference = UInt8(truncatingIfNeeded: given.count ^ secret.count)
    for index in 0..<secret.count {
        let byte = index < given.count ? given[index] : 0
        difference |= byte ^ secret[index]
    }
    return difference == 0 && given.count == secret.count
}
