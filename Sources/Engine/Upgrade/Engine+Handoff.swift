import CLibUV
import Glibc

/// The engine's own section of a handoff, decoded: who handed over, when
/// the game stopped being served, what the next engine is configured with
/// beyond its arguments, and the counters STATUS shows.
struct EngineHandoff {
    /// The version of the engine that wrote the handoff.
    var fromVersion: String
    /// CLOCK_MONOTONIC (shared by both engines) when the old engine wrote
    /// its last byte: the next engine's first byte ends the hold.
    var holdStartedNanoseconds: UInt64
    /// When the first engine of this process started (uptime goes on).
    var startedNanoseconds: UInt64
    /// The path the next engine was exec'd from: its own path from now on.
    var enginePath: String
    /// Paths the first engine resolved at start (a default module path
    /// next to the executable must not move with the executable).
    var paths: UpgradePaths
    /// The arguments the first engine was started with.
    var arguments: [String]
    /// Descriptors the process was started with (see `UpgradeSettings`).
    var inheritedDescriptors: [Int32]
    /// Descriptors handed over only to be closed, off the loop: the old
    /// engine's epoll instance (see `Engine.closeOffTheLoop`).
    var retiredDescriptors: [Int32]
    var counters: EngineCounters
    var admin: AdminCounters
    var outputOverflows: Int

    func encode(into writer: inout HandoffWriter) {
        writer.string(fromVersion)
        writer.u64(holdStartedNanoseconds)
        writer.u64(startedNanoseconds)
        writer.string(enginePath)
        writer.string(paths.modulePath)
        writer.string(paths.modulesDirectory)
        writer.string(paths.enginesDirectory)
        writer.strings(arguments)
        writer.u32(UInt32(inheritedDescriptors.count))
        for fd in inheritedDescriptors { writer.i32(fd) }
        writer.u32(UInt32(retiredDescriptors.count))
        for fd in retiredDescriptors { writer.i32(fd) }
        for value in [counters.lineTooLong, counters.serverFull, counters.rateLimited, counters.rateLimitCloses,
                      counters.idleCloses]
        {
            writer.int(value)
        }
        for value in [admin.reloads, admin.unchanged, admin.refused, admin.rollbacks, admin.evicted, admin.timedOut,
                      admin.upgrades, admin.upgradesRefused, admin.logDroppedBefore, admin.auditDroppedBefore]
        {
            writer.int(value)
        }
        writer.optionalU64(admin.lastReloadWallSeconds.map { UInt64(clamping: $0) })
        writer.optionalU64(admin.lastHeldMicroseconds)
        writer.optionalU64(admin.lastUpgradeHeldMicroseconds)
        writer.int(outputOverflows)
        // Format 2.
        writer.optionalU64(admin.lastUpgradeFirstPollMicroseconds)
    }

    init(fromVersion: String, holdStartedNanoseconds: UInt64, startedNanoseconds: UInt64, enginePath: String,
         paths: UpgradePaths, arguments: [String], inheritedDescriptors: [Int32] = [], retiredDescriptors: [Int32] = [],
         counters: EngineCounters, admin: AdminCounters, outputOverflows: Int)
    {
        self.inheritedDescriptors = inheritedDescriptors
        self.retiredDescriptors = retiredDescriptors
        self.fromVersion = fromVersion
        self.holdStartedNanoseconds = holdStartedNanoseconds
        self.startedNanoseconds = startedNanoseconds
        self.enginePath = enginePath
        self.paths = paths
        self.arguments = arguments
        self.counters = counters
        self.admin = admin
        self.outputOverflows = outputOverflows
    }

    /// Reads the section as an engine writing `format` wrote it (format 1
    /// has no first-poll time).
    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        fromVersion = try reader.string("engine version")
        holdStartedNanoseconds = try reader.u64("hold start")
        startedNanoseconds = try reader.u64("engine start")
        enginePath = try reader.string("engine path")
        paths = UpgradePaths(modulePath: try reader.string("module path"),
                             modulesDirectory: try reader.string("modules directory"),
                             enginesDirectory: try reader.string("engines directory"))
        arguments = try reader.strings("arguments")
        inheritedDescriptors = try EngineHandoff.descriptors(&reader, "inherited descriptors")
        retiredDescriptors = try EngineHandoff.descriptors(&reader, "retired descriptors")
        counters = EngineCounters(lineTooLong: try reader.int("counter"), serverFull: try reader.int("counter"),
                                  rateLimited: try reader.int("counter"), rateLimitCloses: try reader.int("counter"),
                                  idleCloses: try reader.int("counter"))
        admin = AdminCounters()
        admin.reloads = try reader.int("counter")
        admin.unchanged = try reader.int("counter")
        admin.refused = try reader.int("counter")
        admin.rollbacks = try reader.int("counter")
        admin.evicted = try reader.int("counter")
        admin.timedOut = try reader.int("counter")
        admin.upgrades = try reader.int("counter")
        admin.upgradesRefused = try reader.int("counter")
        admin.logDroppedBefore = try reader.int("counter")
        admin.auditDroppedBefore = try reader.int("counter")
        admin.lastReloadWallSeconds = try reader.optionalU64("last reload").map { Int(clamping: $0) }
        admin.lastHeldMicroseconds = try reader.optionalU64("last held")
        admin.lastUpgradeHeldMicroseconds = try reader.optionalU64("last upgrade held")
        outputOverflows = try reader.int("output overflows")
        if format >= 2 { admin.lastUpgradeFirstPollMicroseconds = try reader.optionalU64("last upgrade first poll") }
        try reader.finish("engine section")
    }

    private static func descriptors(_ reader: inout HandoffReader, _ what: String) throws(HandoffError) -> [Int32] {
        let count = try reader.count(what, elementSize: 4)
        var fds: [Int32] = []
        for _ in 0..<count { fds.append(try reader.i32(what)) }
        return fds
    }
}

/// What a handoff carried, for the resumed engine's log and reply.
struct ResumeSummary {
    var listeners: [(role: ListenerRole, host: String, port: Int)] = []
    var players = 0
    var admins = 0
    /// Metrics connections: closed once their queued answers are out.
    var scrapers = 0
    /// Connections that were closing already.
    var closing = 0
}

/// The engine composes the handoff from its parts' sections, and restores
/// them in the order each needs the others: listeners, connections (each
/// with its session or admin state), World (whose sessions write to those
/// connections), then the logic host (which binds to World's store).
extension Engine {
    /// Kind of handler record after a connection's transport record.
    private enum HandlerRecord: UInt8 {
        case none = 0
        case player = 1
        case admin = 2
    }

    /// Every section of the handoff.
    func encodeHandoff(into writer: inout HandoffWriter, engine section: EngineHandoff) {
        let now = now
        writer.section(.engine) { section.encode(into: &$0) }
        writer.section(.listeners) { transport.encodeListeners(into: &$0) }
        writer.section(.connections) { sectionWriter in
            transport.encodeConnections(into: &sectionWriter) { connection, writer in
                // A closing connection's session is gone already: it only
                // has output left to write.
                if connection.state == .open, let player = connection.handler as? PlayerSession {
                    writer.u8(HandlerRecord.player.rawValue)
                    player.encodeHandoff(into: &writer, now: now)
                } else if connection.state == .open, let admin = connection.handler as? AdminSession {
                    writer.u8(HandlerRecord.admin.rawValue)
                    admin.encodeHandoff(into: &writer, now: now)
                } else {
                    writer.u8(HandlerRecord.none.rawValue)
                }
            }
        }
        writer.section(.world) { world.encodeHandoff(into: &$0) }
        writer.section(.logic) { host.encodeHandoff(into: &$0) }
        writer.section(.database) { WriteBehindHandoff.encode(writeBehind.map(WriteBehindHandoff.init), into: &$0) }
    }

    /// The descriptors the sections name besides the sockets and module
    /// copies: the database's one-server lock.
    var handedOverStorageDescriptors: [Int32] { writeBehind?.storage.handedOverDescriptors ?? [] }

    /// Takes over the handed-over state into this fresh engine (its module
    /// loaded from the handed-over copy, `previous` likewise). Throws with
    /// the reason, leaving every handed-over descriptor open, when the
    /// state cannot be taken: the caller then falls back.
    /// `sockets`: the passed descriptors that are not the engine's own (each
    /// listener and connection must name one of them, once).
    func restoreHandoff(_ handoff: Handoff, engine section: EngineHandoff, logic: LogicHandoff,
                        database: WriteBehindHandoff?, sockets: [Int32], previous: LoadedModule?) throws -> ResumeSummary
    {
        guard (database != nil) == (writeBehind != nil) else {
            throw HandoffError.invalid("the previous engine \(database == nil ? "had no" : "had a") database, this one \(writeBehind == nil ? "has none" : "has one")")
        }
        var summary = ResumeSummary()
        var descriptors = HandedOverDescriptors(passed: sockets)
        var listeners = handoff.reader(.listeners)
        summary.listeners = try transport.restoreListeners(from: &listeners, descriptors: &descriptors)
        let now = now
        var peers: [GameID: PlayerSession] = [:]
        peers.reserveCapacity(handoff.reader(.connections).remaining / 40)
        var connections = handoff.reader(.connections)
        _ = try transport.restoreConnections(from: &connections, descriptors: &descriptors) { connection, closing, reader in
            guard let kind = HandlerRecord(rawValue: try reader.u8("handler kind")) else {
                throw HandoffError.invalid("handler kind")
            }
            guard !closing || kind == .none else { throw HandoffError.invalid("a closing connection has a session") }
            switch kind {
            case .none where connection.role == .metrics:
                summary.scrapers += 1
            case .none:
                summary.closing += 1
            case .player:
                guard connection.role == .game else { throw HandoffError.invalid("a player on the admin port") }
                let session = try PlayerSession.restoreHandoff(from: &reader, engine: self, connection: connection, now: now)
                guard peers.updateValue(session, forKey: session.id) == nil else {
                    throw HandoffError.invalid("two connections for \(session.id)")
                }
                connection.handler = session
                summary.players += 1
            case .admin:
                guard connection.role == .admin else { throw HandoffError.invalid("an admin on the game port") }
                admin.adopt(try AdminSession.restoreHandoff(from: &reader, console: admin, connection: connection, now: now))
                summary.admins += 1
            }
        }
        #if HOTSWAP_TEST_KNOBS
        switch EngineIdentity.restoreFault {
        // The fault-injection knob (TestKnobs), half-way through the
        // restore: the fault guard is armed, its report runs, then the
        // restore guard hands back; or nothing returns, and its timer does.
        case .abort: abort()
        case .hang: while monotonicNanoseconds() > 0 {}
        case .segv, .socketCheckSegv, nil: break
        }
        #endif
        var worldSection = handoff.reader(.world)
        try world.restoreHandoff(from: &worldSection) { peers[$0] }
        guard world.sessionCount == peers.count else {
            throw HandoffError.invalid("\(peers.count) player connections for \(world.sessionCount) sessions")
        }
        try host.adopt(logic, previous: previous)
        if let database { writeBehind?.adopt(database) }
        counters = section.counters
        admin.adopt(counters: section.admin)
        transport.adopt(outputOverflows: section.outputOverflows)
        startedNanoseconds = section.startedNanoseconds
        return summary
    }
}
