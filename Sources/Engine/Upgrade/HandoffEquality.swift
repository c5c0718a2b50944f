/// Equality for the handoff's values whose types live in files another
/// refactor owns (Engine.swift, AdminConsole.swift, LogicHost.swift):
/// synthesized conformance must be declared in the type's own file, so
/// these compare field by field. A field added to one of these types must
/// be added here too (the round-trip property tests then check it goes
/// over; they cannot notice one missing from both the encoding and here).

extension EngineCounters: Equatable {
    static func == (a: EngineCounters, b: EngineCounters) -> Bool {
        a.lineTooLong == b.lineTooLong && a.serverFull == b.serverFull && a.rateLimited == b.rateLimited
            && a.rateLimitCloses == b.rateLimitCloses && a.idleCloses == b.idleCloses
    }
}

extension AdminCounters: Equatable {
    static func == (a: AdminCounters, b: AdminCounters) -> Bool {
        a.reloads == b.reloads && a.unchanged == b.unchanged && a.refused == b.refused && a.rollbacks == b.rollbacks
            && a.evicted == b.evicted && a.timedOut == b.timedOut && a.lastReloadWallSeconds == b.lastReloadWallSeconds
            && a.lastHeldMicroseconds == b.lastHeldMicroseconds && a.upgrades == b.upgrades
            && a.upgradesRefused == b.upgradesRefused && a.lastUpgradeHeldMicroseconds == b.lastUpgradeHeldMicroseconds
            && a.lastUpgradeFirstPollMicroseconds == b.lastUpgradeFirstPollMicroseconds
            && a.logDroppedBefore == b.logDroppedBefore && a.auditDroppedBefore == b.auditDroppedBefore
    }
}

extension FaultCounters: Equatable {
    static func == (a: FaultCounters, b: FaultCounters) -> Bool {
        a.faults == b.faults && a.timeouts == b.timeouts && a.autoRollbacks == b.autoRollbacks && a.last == b.last
    }
}
