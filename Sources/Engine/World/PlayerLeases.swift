/// This server's leases on players' rows that World does not hold as a
/// player record, and the players to give back (`SharedPlayerStorage`).
///
/// A player World holds carries its lease's epoch itself
/// (`World.PlayerRecord.leaseEpoch`). What is here:
/// - `pending`: leases claimed for a key World has no record for: a new
///   player whose login is still being answered (its record is made when
///   the module attaches it and takes the epoch from here), or one whose
///   login was refused after the claim. Given back once older than
///   `pendingGraceMilliseconds`: a login answered after that still has its
///   epoch, and its first write takes the row again if nobody else did.
/// - `toRelease`: keys whose player left (its session closed or detached):
///   at the next flush, still detached, the lease goes back with the
///   player's last changes, in one transaction, and World lets go of the
///   record once that is written.
struct PlayerLeases {
    static let pendingGraceMilliseconds: Int64 = 10_000

    private(set) var pending: [[UInt8]: (epoch: Int64, since: Int64)] = [:]
    private(set) var toRelease: [[UInt8]] = []

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

    mutating func keepPending(_ key: [UInt8], epoch: Int64, now: Int64) { pending[key] = (epoch, now) }

    /// The epoch of a pending lease on `key`, handed to the record made
    /// for it (0: none).
    mutating func takePending(_ key: [UInt8]) -> Int64 { pending.removeValue(forKey: key)?.epoch ?? 0 }

    func isPending(_ key: [UInt8]) -> Bool { pending[key] != nil }

    /// Whether a flush has leases to give back.
    func hasReleases(now: Int64) -> Bool {
        !toRelease.isEmpty || pending.values.contains { now - $0.since >= Self.pendingGraceMilliseconds }
    }

    /// Empties `toRelease`, and takes the pending leases past their grace.
    mutating func drain(now: Int64) -> (keys: [[UInt8]], pending: [LeaseRelease]) {
        let keys = toRelease
        toRelease = []
        var expired: [LeaseRelease] = []
        for (key, lease) in pending where now - lease.since >= Self.pendingGraceMilliseconds {
            expired.append(LeaseRelease(key: key, epoch: lease.epoch))
        }
        for lease in expired { pending[lease.key] = nil }
        return (keys, expired)
    }

    /// A failed flush's releases, to be tried again.
    mutating func retry(_ released: [LeaseRelease]) { toRelease += released.map(\.key) }
}
