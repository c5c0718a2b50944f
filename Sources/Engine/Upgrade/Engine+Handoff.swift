import CLibUV
import Glibc

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
    /// Every part's section, as it is now (`engine` is the engine's own,
    /// which the upgrader composes).
    func handoffSections(engine section: EngineHandoff) -> HandoffSections {
        let now = now
        let connections = transport.connectionsHandoff { connection in
            // A closing connection's session is gone already: it only has
            // output left to write.
            guard connection.state == .open else { return .none }
            if let player = connection.handler as? PlayerSession { return .player(player.handoffRecord(now: now)) }
            if let admin = connection.handler as? AdminSession { return .admin(admin.handoffRecord(now: now)) }
            return .none
        }
        return HandoffSections(engine: section, listeners: transport.listenersHandoff, connections: connections,
                               world: world.handoff, logic: host.handoff,
                               database: DatabaseHandoff(writeBehind.map(WriteBehindHandoff.init)),
                               time: world.timers.handoff(now: clock.now(), counters: clock.counters,
                                                          batchingRooms: world.batchingRoomIDs()),
                               resume: resumeHandoff(now: now))
    }

    /// Every section of the handoff.
    func encodeHandoff(into writer: inout HandoffWriter, engine section: EngineHandoff) {
        handoffSections(engine: section).encode(into: &writer)
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
    func restoreHandoff(_ sections: HandoffSections, sockets: [Int32], previous: LoadedModule?) throws -> ResumeSummary {
        let database = sections.database.writeBehind
        guard (database != nil) == (writeBehind != nil) else {
            throw HandoffError.invalid("the previous engine \(database == nil ? "had no" : "had a") database, this one \(writeBehind == nil ? "has none" : "has one")")
        }
        var summary = ResumeSummary()
        var descriptors = HandedOverDescriptors(passed: sockets)
        try transport.restore(sections.listeners, descriptors: &descriptors)
        summary.listeners = sections.listeners.listeners.map { ($0.role, $0.host, $0.port) }
        let now = now
        var peers: [GameID: any SessionPeer] = [:]
        peers.reserveCapacity(sections.connections.connections.count)
        try transport.restore(sections.connections, descriptors: &descriptors) { connection, record in
            switch record {
            case .none where connection.role == .metrics:
                summary.scrapers += 1
            case .none:
                summary.closing += 1
            case .player(let record):
                let session = try PlayerSession.restore(record, engine: self, connection: connection, now: now)
                peers[session.id] = session
                connection.handler = session
                summary.players += 1
            case .admin(let record):
                admin.adopt(try AdminSession.restore(record, console: admin, connection: connection, now: now))
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
        // Away sessions have no connection: their lines wait in a peer of
        // their own (the resume section).
        let away = awayPeers(sections.resume)
        for (id, peer) in away {
            guard peers.updateValue(peer, forKey: id) == nil else { throw HandoffError.invalid("\(id) is away but has a connection") }
        }
        try world.restore(sections.world) { peers[$0] }
        guard world.sessionCount == peers.count else {
            throw HandoffError.invalid("\(peers.count) player connections and away sessions for \(world.sessionCount) sessions")
        }
        try restoreResume(sections.resume, away: away)
        try world.restoreTime(sections.time, now: clock.now())
        clock.counters = sections.time.counters
        // What the file holds of them is not known here (the previous
        // engine's last flush may have failed, or come before a cancel):
        // the first flush rewrites them.
        writeBehind?.timersWrittenVersion = world.timers.durableVersion &- 1
        try host.adopt(sections.logic, previous: previous)
        if let database { writeBehind?.adopt(database) }
        counters = sections.engine.counters
        admin.adopt(counters: sections.engine.admin)
        transport.adopt(outputOverflows: sections.engine.outputOverflows)
        startedNanoseconds = sections.engine.startedNanoseconds
        return summary
    }
}
