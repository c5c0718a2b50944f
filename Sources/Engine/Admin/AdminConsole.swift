import CLibUV
import Glibc
import Logging

/// How the admin port is guarded and where modules may come from.
struct AdminSettings: Sendable {
    /// Required with `AUTH token` before any command; nil: no token needed.
    var token: [UInt8]?
    /// Real path of the only directory modules are loaded from.
    var modulesDirectory: String
    /// The module path configured at start: what a bare RELOAD reads again.
    var defaultModulePath: String
    /// The server's log, for STATUS `log_dropped` (none in unit tests).
    var logSink: LogSink? = nil
    /// `--audit-log`: every admin action as a JSON line (nil: off).
    var auditLog: AuditLog? = nil
    /// Where `UPGRADE` may take engines from, and what they are started with.
    var upgrade = UpgradeSettings()
}

/// Counters of admin actions, for STATUS.
struct AdminCounters {
    var reloads = 0
    var unchanged = 0
    var refused = 0
    var rollbacks = 0
    var evicted = 0
    var timedOut = 0
    var lastReloadWallSeconds: Int?
    var lastHeldMicroseconds: UInt64?
    /// Engine upgrades this process went through, and those refused.
    var upgrades = 0
    var upgradesRefused = 0
    /// The last upgrade's hold: from the old engine's last write to the
    /// new one having restored everything (its reply queued, its first
    /// bytes written right after).
    var lastUpgradeHeldMicroseconds: UInt64?
    /// From the same start to the new loop's first poll returning: every
    /// socket registered with the new epoll instance, input read from here.
    var lastUpgradeFirstPollMicroseconds: UInt64?
    /// Log and audit lines earlier engines of this process dropped.
    var logDroppedBefore = 0
    var auditDroppedBefore = 0
}

/// The operator's console on the admin port: same line grammar as the game
/// port, one reply per request, every action logged with its outcome.
///
/// It keeps the list of admin sessions so that silent ones cannot lock the
/// operator out: each has a deadline (see `AdminSession`), and when every
/// slot is taken a new connection takes the place of the stalest one
/// (unauthenticated first, then the longest idle), never of one waiting on
/// a reload.
final class AdminConsole {
    unowned(unsafe) let engine: any AdminTarget
    let settings: AdminSettings
    var limits: Limits { engine.limits }
    var logger: Logger { engine.logger }
    var now: UInt64 { engine.now }
    private(set) var counters = AdminCounters()
    private var sessions = SlotList<AdminSession>()

    init(engine: any AdminTarget, settings: AdminSettings) {
        self.engine = engine
        self.settings = settings
    }

    var connectionCount: Int { sessions.count }
    /// Wrong tokens per client address (`--max-failed-auths-per-ip`).
    private lazy var authThrottle = FailureThrottle<PeerAddress>(limit: limits.maxFailedAuthsPerIp, windowMilliseconds: 60_000)

    // MARK: - Sessions

    /// A new admin connection: gets a session, after evicting the stalest
    /// one when every slot is taken.
    func accept(_ connection: Connection) {
        if sessions.count >= limits.maxAdminConnections {
            guard let victim = stalest() else {
                connection.enqueue(line: Replies.serverFull)
                connection.closeAfterFlush()
                return
            }
            counters.evicted += 1
            logger.warning("admin: every slot taken; closing the stalest admin connection for a new one")
            victim.connection.enqueue(line: Replies.adminEvicted)
            victim.connection.closeAfterFlush()
            remove(victim)
        }
        let session = AdminSession(console: self, connection: connection, now: now,
                                   authenticated: settings.token == nil)
        sessions.insert(session)
        connection.handler = session
        do {
            try connection.startReading()
        } catch {
            connection.abort()
        }
    }

    private func stalest() -> AdminSession? {
        let candidates = sessions.filter { !$0.waiting }
        return candidates.filter { !$0.authenticated }.min { $0.openedAt < $1.openedAt }
            ?? candidates.min { $0.lastRequest < $1.lastRequest }
    }

    private func remove(_ session: AdminSession) { sessions.remove(session) }

    func sessionClosed(_ session: AdminSession) { remove(session) }

    /// An admin connection passed its deadline (the engine's sweep found it).
    func sessionTimedOut(_ session: AdminSession) {
        counters.timedOut += 1
        logger.notice("admin: closing a connection silent past its deadline",
                      metadata: ["authenticated": "\(session.authenticated)"])
        remove(session)
    }

    /// Contained faults reach every authenticated operator as an event line
    /// (`>FAULT ...`, `>ROLLBACK ...`), between replies, like game events.
    /// A fault policy's rollback that was refused (ABI 1.5: a retyped
    /// field without `hotswap_migrate_down`, or any swap refusal) is
    /// audited with its reason: the faulting version keeps serving.
    func faulted(_ fault: FaultRecord, rolledBack: SwapReport?, refused: SwapError? = nil) {
        if let rolledBack {
            engine.swapped(rolledBack)
            audit(AuditLog.Entry(peer: "engine", action: "AUTO_ROLLBACK", module: rolledBack.to.sourcePath,
                                 sha256Before: rolledBack.from.sha256, sha256After: rolledBack.to.sha256, result: "ok",
                                 reason: "\(fault)", heldMicroseconds: rolledBack.heldMicroseconds))
        }
        if let refused {
            audit(AuditLog.Entry(peer: "engine", action: "AUTO_ROLLBACK",
                                 module: engine.host.previousModule?.sourcePath ?? "",
                                 sha256Before: fault.moduleSHA256, sha256After: fault.moduleSHA256, result: "refused",
                                 reason: "\(fault): \(refused)"))
        }
        var event = ">FAULT \(fault.causeName) in \(fault.export) module=\(fault.moduleName)@\(fault.moduleVersion)"
        if let rolledBack {
            event += "; rolled back to \(rolledBack.to.name)@\(rolledBack.to.version) after "
                + "\(limits.maxFaults) faults within \(limits.faultWindow) s"
        } else if let refused {
            event += "; not rolled back after \(limits.maxFaults) faults within \(limits.faultWindow) s: \(refused)"
        }
        for session in sessions where session.authenticated { session.send(AdminConsole.oneLine(event)) }
    }

    /// A reload's staged migration reaches every authenticated operator as
    /// an event line, about once a second, until its reply.
    func migrating(_ candidate: LoadedModule, done: Int, of total: Int) {
        let event = ">MIGRATING \(candidate.name)@\(candidate.version) \(done)/\(total) stored players"
        for session in sessions where session.authenticated { session.send(AdminConsole.oneLine(event)) }
    }

    // MARK: - Commands

    /// The reply, or nil when `later` will be called with it. Every action
    /// goes to the audit log: swaps from `record`, the rest from here.
    func execute(_ command: AdminCommand, for session: AdminSession, later: @escaping (String) -> Void) -> String? {
        let reply = run(command, for: session, later: later)
        if let reply, reply != "", !command.isSwap || reply.hasPrefix("-ERR AUTH_REQUIRED") {
            let ok = reply.hasPrefix("+")
            var subject = ""
            if case .forget(let key) = command { subject = String(decoding: key, as: UTF8.self) }
            audit(AuditLog.Entry(peer: session.connection.peer, action: command.verb,
                                 result: ok ? "ok" : "refused", reason: ok ? "" : String(reply.dropFirst(5)),
                                 subject: subject))
        }
        return reply
    }

    private func audit(_ entry: AuditLog.Entry) { settings.auditLog?.record(entry) }

    private func run(_ command: AdminCommand, for session: AdminSession, later: @escaping (String) -> Void) -> String? {
        guard session.authenticated || command.allowedBeforeAuth else {
            return logged(command, "-ERR AUTH_REQUIRED send AUTH token first")
        }
        let peer = session.connection.peer
        switch command {
        case .empty: return "-ERR EMPTY empty request, try HELP"
        case .auth(let token): return authenticate(token, session)
        case .ping: return "+PONG"
        case .quit:
            session.connection.closeAfterFlush()
            return "+BYE"
        case .help:
            return "+HELP AUTH token | STATUS | RELOAD [path] | ROLLBACK | MODULES | UPGRADE [path] | SAVE | FORGET key | PING | QUIT"
        case .save:
            return save(peer: peer, later: later)
        case .forget(let key):
            return forget(key)
        case .status: return logged(command, status())
        case .modules: return logged(command, modulesLine())
        case .unknown: return logged(command, "-ERR UNKNOWN_COMMAND unknown admin command, try HELP")
        case .rollback:
            let outcome: Result<SwapOutcome, SwapError>
            do throws(SwapError) {
                outcome = .success(.swapped(try engine.host.rollback()))
            } catch {
                outcome = .failure(error)
            }
            return record("ROLLBACK", outcome, peer: peer, path: engine.host.previousModule?.sourcePath ?? "")
        case .upgrade(let path):
            engine.upgrade(path: path) { [unowned(unsafe) self] refusal in
                later(recordUpgradeRefused(refusal.description, path: path ?? settings.upgrade.enginePath, peer: peer))
            }
            return nil
        case .reload(let argument):
            let path = argument ?? settings.defaultModulePath
            let action = "RELOAD \(AdminConsole.oneLine(path))"
            let confined: String
            do throws(SwapError) {
                confined = try confine(path)
            } catch {
                return record(action, .failure(error), peer: peer, path: path)
            }
            engine.host.reload(path: confined) { [unowned(unsafe) self] outcome in
                later(record(action, outcome, peer: peer, path: confined))
            }
            return nil
        }
    }

    /// SAVE: writes every changed player and global now (the write-behind
    /// would within `--flush-interval`), on the database worker, and
    /// answers once it is in the file: before a backup or maintenance, an
    /// operator knows the file holds everything up to the reply.
    private func save(peer: String, later: @escaping (String) -> Void) -> String? {
        guard let writeBehind = engine.writeBehind else {
            return logged(.save, "-ERR SAVE_FAILED persistence is off (--database :memory:)")
        }
        guard !writeBehind.paused else {
            return logged(.save, "-ERR SAVE_FAILED an engine upgrade is writing the database; try again after it")
        }
        writeBehind.flushNow { [unowned(unsafe) self] outcome in
            let reply = switch outcome {
            case .nothingDirty: "+OK saved records=0 write_ms=0.00"
            case .wrote(let records, let milliseconds):
                "+OK saved records=\(records) write_ms=\(AdminConsole.milliseconds(milliseconds))"
            case .failed(let error) where error.lostFile:
                "-ERR SAVE_FAILED \(AdminConsole.oneLine(error.description)); the records stay dirty in memory (the log says what to do)"
            case .failed(let error): "-ERR SAVE_FAILED \(AdminConsole.oneLine(error.description)); the records stay dirty and are retried"
            }
            logger.notice("admin: SAVE -> \(reply)")
            let ok = reply.hasPrefix("+")
            audit(AuditLog.Entry(peer: peer, action: "SAVE", result: ok ? "ok" : "refused",
                                 reason: ok ? "" : String(reply.dropFirst(5))))
            later(reply)
        }
        return nil
    }

    /// FORGET key: deletes a stored player for good, for an erasure
    /// request. The record leaves memory now and its row the database at
    /// the next flush (SAVE to wait for it). Refused while a session holds
    /// the player, while a reload migrates the stored players, and while an
    /// upgrade writes the database. The key is the logic's (the default
    /// game: the lower-cased login name), given exactly; it goes to the
    /// audit log as the action's subject.
    private func forget(_ key: [UInt8]) -> String {
        let name = AdminConsole.oneLine(String(decoding: key, as: UTF8.self))
        let reply: String
        if key.isEmpty {
            reply = "-ERR FORGET_FAILED give the player's key: FORGET key"
        } else if engine.host.reloading {
            reply = "-ERR FORGET_FAILED a reload is in progress; try again after it"
        } else if engine.writeBehind?.paused == true {
            reply = "-ERR FORGET_FAILED an engine upgrade is writing the database; try again after it"
        } else {
            do throws(EngineError) {
                try engine.world.forgetPlayer(key: key)
                reply = "+OK forgot \(name)"
            } catch .notFound where engine.world.sharesPlayers {
                // Players live in the shared database: this server holds
                // only those online (docs/SCALING.md).
                reply = "-ERR FORGET_FAILED this server does not hold \(name); with a shared database, delete the row there while no server holds it: DELETE FROM players WHERE key = '\(name.replacingOccurrences(of: "'", with: "''"))' AND owner IS NULL"
            } catch .notFound {
                reply = "-ERR FORGET_FAILED no stored player has the key \(name)"
            } catch .exists {
                reply = "-ERR FORGET_FAILED \(name) is playing (a live session holds the player); try again once they have left"
            } catch {
                reply = "-ERR FORGET_FAILED \(error)"
            }
        }
        logger.notice("admin: FORGET \(name) -> \(reply)")
        return reply
    }

    /// Logs a command and its outcome's first word; returns the reply.
    private func logged(_ command: AdminCommand, _ reply: String) -> String {
        logger.info("admin: \(command.verb) -> \(reply.prefix(while: { $0 != " " }))")
        return reply
    }

    private func authenticate(_ given: [UInt8], _ session: AdminSession) -> String {
        guard let token = settings.token else {
            session.authenticationSucceeded()
            return "+OK no token is required"
        }
        // Per address too: a guesser opening connection after connection
        // gets --max-failed-auths-per-ip tries a minute, then no token is
        // even compared.
        let address = session.connection.address
        if let address, authThrottle.isThrottled(address, now: now) {
            logger.warning("admin: AUTH from \(session.connection.peer) refused unchecked: too many wrong tokens from its address")
            session.connection.closeAfterFlush()
            return "-ERR AUTH_THROTTLED too many wrong tokens from your address (--max-failed-auths-per-ip); try again in a minute; closing"
        }
        if given.withUnsafeBytes({ constantTimeEqual($0, token) }) {
            session.authenticationSucceeded()
            logger.notice("admin: AUTH ok")
            return "+OK authenticated"
        }
        if let address { authThrottle.failed(address, now: now) }
        let tooMany = session.authenticationFailed()
        logger.warning("admin: AUTH refused", metadata: ["attempt": "\(session.failedAttempts)"])
        if tooMany { session.connection.closeAfterFlush() }
        return "-ERR AUTH_FAILED wrong token"
    }

    /// Logs a swap's outcome, counts it, writes its audit line and words the
    /// operator's reply. `peer` is who asked (`watch` for --watch).
    func record(_ action: String, _ outcome: Result<SwapOutcome, SwapError>, peer: String, path: String) -> String {
        let verb = String(action.prefix { $0 != " " })
        let before = engine.host.module.sha256
        switch outcome {
        case .success(.swapped(let report)):
            audit(AuditLog.Entry(peer: peer, action: verb, module: report.to.sourcePath, sha256Before: report.from.sha256,
                                 sha256After: report.to.sha256, result: "ok", heldMicroseconds: report.heldMicroseconds))
        case .success(.unchanged(let module)):
            audit(AuditLog.Entry(peer: peer, action: verb, module: path, sha256Before: module.sha256,
                                 sha256After: module.sha256, result: "unchanged"))
        case .failure(let error):
            audit(AuditLog.Entry(peer: peer, action: verb, module: path, sha256Before: before, sha256After: before,
                                 result: "refused", reason: AdminConsole.oneLine("\(error)")))
        }
        switch outcome {
        case .success(.swapped(let report)):
            if action == "ROLLBACK" { counters.rollbacks += 1 } else { counters.reloads += 1 }
            engine.swapped(report)
            counters.lastReloadWallSeconds = time(nil)
            counters.lastHeldMicroseconds = report.heldMicroseconds
            let summary = "\(report.from.name) \(report.from.version) -> \(report.to.name) \(report.to.version) "
                + "held_us=\(report.heldMicroseconds) load_us=\(report.loadMicroseconds) migrated=\(report.migrated)"
                + (report.staged.map {
                    " staged=\($0.players) remigrated=\($0.remigrated.map(String.init) ?? "all") slices=\($0.slices)"
                        + " slice_max_us=\($0.longestSliceMicroseconds) staged_ms=\($0.milliseconds)"
                } ?? "")
            logger.notice("admin: \(action) done: \(summary)", metadata: ["sha256": "\(report.to.sha256)"])
            return "+OK \(summary)"
        case .success(.unchanged(let module)):
            counters.unchanged += 1
            let summary = "\(module.name) \(module.version) sha256=\(module.sha256.prefix(12))"
            logger.notice("admin: \(action): unchanged, \(summary) is already serving")
            return "+OK unchanged \(summary) is already serving; nothing was swapped"
        case .failure(let error):
            counters.refused += 1
            logger.warning("admin: \(action) refused: \(error)")
            return "-ERR RELOAD_FAILED \(AdminConsole.oneLine("\(error)"))"
        }
    }

    /// Resolves `path` (symlinks and `..` included) and refuses anything
    /// outside the modules directory.
    func confine(_ path: String) throws(SwapError) -> String {
        switch PathConfinement.resolve(path, in: settings.modulesDirectory) {
        case .inside(let real): return real
        case .notFound(let full): throw .load(.notFound(path: full))
        case .outside(let full, let real):
            throw .outsideModulesDirectory(path: full, resolved: real, directory: settings.modulesDirectory)
        }
    }

    /// STATUS: the serving module, then every number of an `EngineSnapshot`
    /// that has a STATUS name (`EngineReading.all`, the rows `/metrics`
    /// renders too), then what only exists sometimes.
    private func status() -> String {
        let host = engine.host
        let module = host.module
        let snapshot = engine.snapshot()
        var fields = [
            "module=\(module.name)", "version=\(module.version)", "sha256=\(module.sha256)", "path=\(module.sourcePath)",
            "previous=\(host.previousModule.map { "\($0.name)@\($0.version)" } ?? "none")",
            "engine=\(EngineIdentity.version)", "pid=\(getpid())",
            "database=\(snapshot.databaseLocation ?? ":memory:")", "previous_exit=\(engine.previousExit)",
        ]
        for reading in EngineReading.all {
            guard let name = reading.status else { continue }
            fields.append("\(name)=\(reading.statusValue(snapshot))")
        }
        for (name, state) in snapshot.lifecycles { fields.append("\(name)=\(state)") }
        if let error = snapshot.flush?.lastError {
            // One token: no spaces, and no '=' to split on.
            fields.append("last_db_error=" + String(error.map { $0 == " " || $0 == "=" ? "_" : $0 }))
        }
        if let fault = snapshot.faults.last {
            fields.append("last_fault=\(fault.causeName):\(fault.moduleName)@\(fault.moduleVersion):\(fault.export)")
        }
        if let last = snapshot.admin.lastReloadWallSeconds { fields.append("last_reload=\(AdminConsole.iso8601(last))") }
        if let held = snapshot.admin.lastHeldMicroseconds { fields.append("last_held_us=\(held)") }
        if let first = host.firstCallNanoseconds { fields.append("first_call_ns=\(first)") }
        if let staged = host.staged {
            // While a reload migrates the stored players between messages.
            fields.append("migrating=\(staged.candidate.name)@\(staged.candidate.version):\(staged.migrated)/\(staged.total)")
        }
        if let held = snapshot.admin.lastUpgradeHeldMicroseconds { fields.append("last_upgrade_held_us=\(held)") }
        // The operator's --game-setting pairs (printable, no spaces).
        if !host.call.settings.isEmpty { fields.append("settings=\(host.call.settings.summary)") }
        if let poll = snapshot.admin.lastUpgradeFirstPollMicroseconds { fields.append("last_upgrade_first_poll_us=\(poll)") }
        return "+STATUS " + fields.map(AdminConsole.oneLine).joined(separator: " ")
    }

    private func modulesLine() -> String {
        let host = engine.host
        let entries = host.history.map { entry in
            let marker = entry.imagePath == host.module.imagePath ? "*" : ""
            return "\(entry.name)@\(entry.version):\(entry.sha256.prefix(12))\(marker)"
        }
        return "+MODULES " + entries.joined(separator: " ")
    }

    // MARK: - Engine upgrades

    /// A refused upgrade: counted, logged, audited; returns the reply.
    func recordUpgradeRefused(_ reason: String, path: String, peer: String) -> String {
        counters.upgradesRefused += 1
        logger.warning("admin: UPGRADE \(path) refused: \(reason)")
        audit(AuditLog.Entry(peer: peer, action: "UPGRADE", module: path, result: "refused",
                             reason: AdminConsole.oneLine(reason)))
        return "-ERR UPGRADE_FAILED \(AdminConsole.oneLine(reason))"
    }

    /// An upgrade this engine completed (it is the new engine): counted,
    /// audited; returns the reply for whoever asked.
    func recordUpgrade(from version: String, path: String, heldMicroseconds: UInt64, sessions: Int) -> String {
        counters.upgrades += 1
        counters.lastUpgradeHeldMicroseconds = heldMicroseconds
        let summary = "engine \(version) -> \(EngineIdentity.version)"
        audit(AuditLog.Entry(peer: "engine", action: "UPGRADE", module: path, result: "ok", reason: summary,
                             heldMicroseconds: heldMicroseconds))
        return "+OK \(summary) held_ms=\((heldMicroseconds + 500) / 1000) sessions=\(sessions)"
    }

    /// The new loop's first poll after an upgrade this engine completed.
    func recordFirstPoll(microseconds: UInt64) { counters.lastUpgradeFirstPollMicroseconds = microseconds }

    /// Gives the upgrade's reply to the session that asked (restored
    /// waiting for it), which then runs what it sent behind it.
    func answerWaiting(_ reply: String) {
        for session in sessions where session.waiting { session.answer(AdminConsole.oneLine(reply)) }
    }

    /// An admin session the previous engine served (an upgrade).
    func adopt(_ session: AdminSession) {
        sessions.insert(session)
        session.connection.handler = session
    }

    /// The counters the previous engine had.
    func adopt(counters restored: AdminCounters) { counters = restored }

    /// Milliseconds with two decimals ("0.42").
    static func milliseconds(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
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
