/// This server's bookkeeping of leases on players' rows, beside the epoch
/// each player record carries (`World.PlayerRecord.leaseEpoch`); see
/// `SharedPlayerStorage` for the protocol.
///
/// A lease lives exactly as long as something on this server uses it:
///
///     claimed at LOGIN ──▶ held by a login in progress (`logins`)
///                           ├─▶ attached: held while the session lives
///                           └─▶ the login ends without an attach ──┐
///     the session ends (QUIT, a drop past its resume grace) ───────┤
///                                                                  ▼
///                      queued (`toRelease`) ──▶ in a flush (`releasing`)
///                      ──▶ written: World lets go of the record
///
/// No timer decides: a refused login (a wrong secret, a throttle, the
/// client gone) gives its lease back at the next flush, and a login that
/// takes long (a queue of scrypt checks) keeps it until it is answered.
/// While a release is in a flush, a new login of that player waits for
/// the flush (`AuthDesk`): taken again at once it would race the release.
struct PlayerLeases {
    /// Leases for keys World has no record of: a new player whose login
    /// is in progress (its record is made at the attach and takes the
    /// epoch from here), or one a login claimed and did not attach.
    private(set) var pending: [[UInt8]: Int64] = [:]
    /// Keys to give back at the next flush (checked then: still unused).
    private(set) var toRelease: [[UInt8]] = []
    /// Keys whose release is in the flush under way, with its epoch.
    private(set) var releasing: [[UInt8]: Int64] = [:]
    /// Logins in progress, per key (two sessions may log in to one name).
    private(set) var logins: [[UInt8]: Int] = [:]
    /// Set until an upgraded engine has read back the leases its process
    /// holds (WriteBehind+Leases.swift): logins wait for it.
    var adopting = false
    /// The read-back failed (the database is down): logins are refused,
    /// as a claim would be, instead of waiting without bound.
    var adoptionFailing = false
    /// Leases read back for keys World has no record of (a claim that
    /// committed as the previous engine exec'd): given back at the next
    /// flush, and invisible to `holdsLease`, so a login of the key claims
    /// again and reads the player, rather than take it for a new one.
    private(set) var orphans: [[UInt8]: Int64] = [:]

    mutating func keepOrphan(_ key: [UInt8], epoch: Int64) { orphans[key] = epoch }

    mutating func takeOrphans() -> [LeaseRelease] {
        defer { orphans = [:] }
        return orphans.map { LeaseRelease(key: $0.key, epoch: $0.value) }
    }

    /// For STATUS and the metrics.
    struct Counters: Equatable {
        /// Leases taken at LOGIN.
        var claimed = 0
        /// Logins refused: another live server holds the player.
        var heldElsewhere = 0
        /// Claims that failed (the database did not answer).
        var claimErrors = 0
        /// Leases given back.
        var released = 0
        /// Players another server took while this one held them (fenced
        /// writes): their sessions were closed.
        var lost = 0
    }

    var counters = Counters()

    mutating func queueRelease(_ key: [UInt8]) { toRelease.append(key) }

    mutating func keepPending(_ key: [UInt8], epoch: Int64) { pending[key] = epoch }

    /// The epoch of a pending lease on `key`, handed to the record made
    /// for it (0: none).
    mutating func takePending(_ key: [UInt8]) -> Int64 { pending.removeValue(forKey: key) ?? 0 }

    func isPending(_ key: [UInt8]) -> Bool { pending[key] != nil }
    func isReleasing(_ key: [UInt8]) -> Bool { releasing[key] != nil }
    func inLogin(_ key: [UInt8]) -> Bool { logins[key] != nil }

    mutating func loginStarted(_ key: [UInt8]) { logins[key, default: 0] += 1 }

    /// True when it was the key's last login in progress.
    mutating func loginEnded(_ key: [UInt8]) -> Bool {
        guard let count = logins[key] else { return false }
        logins[key] = count > 1 ? count - 1 : nil
        return count == 1
    }

    var hasReleases: Bool { !toRelease.isEmpty || !orphans.isEmpty }

    /// Empties the queue (World decides which still go).
    mutating func drainQueue() -> [[UInt8]] {
        defer { toRelease = [] }
        return toRelease
    }

    mutating func markReleasing(_ lease: LeaseRelease) { releasing[lease.key] = lease.epoch }

    /// A flush that carried releases is over: written or not.
    mutating func releaseSettled(_ key: [UInt8]) { releasing[key] = nil }

    /// A failed (or abandoned) flush's releases, to be tried again: a
    /// pending lease's epoch, taken out for it, comes back.
    mutating func retry(_ released: [LeaseRelease], hasRecord: ([UInt8]) -> Bool) {
        for lease in released {
            releasing[lease.key] = nil
            if !hasRecord(lease.key) && pending[lease.key] == nil { pending[lease.key] = lease.epoch }
            toRelease.append(lease.key)
        }
    }
}
