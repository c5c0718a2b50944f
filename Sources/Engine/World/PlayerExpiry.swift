import Logging

/// `--player-ttl-days`: records of players who have not logged in for that
/// long are forgotten, as an operator's FORGET would (the record leaves
/// memory now, its row the database at the next flush), each one audited.
/// Off by default: a game decides whether its players' progress may ever
/// vanish.
///
/// Work is sliced like redis's active expiry: each call (once a second,
/// from the engine's sweep) looks at `slotsPerStep` player slots from where
/// the last one stopped, so a million players take a pass of about eight
/// minutes and no call holds the loop for long. A player online is never
/// expired; a record with no login time yet (stored before this build, or
/// before the flag) gets the time of its first sight, so it has a full TTL
/// from then.
struct PlayerExpiry {
    let ttlMilliseconds: Int64
    var slotsPerStep = 2_000
    private var cursor = 0
    private(set) var expired = 0

    init(days: Int) { ttlMilliseconds = Int64(days) * 86_400_000 }

    /// One slice: returns the keys it forgot, for the log and the audit.
    mutating func step(_ world: World, now wallMilliseconds: Int64) -> [[UInt8]] {
        guard ttlMilliseconds > 0, world.playerSlots > 0 else { return [] }
        var forgotten: [[UInt8]] = []
        for _ in 0..<min(slotsPerStep, world.playerSlots) {
            if cursor >= world.playerSlots { cursor = 0 }
            let slot = cursor
            cursor += 1
            guard let seen = world.lastSeen(atSlot: slot), !world.isAttached(slot: slot) else { continue }
            if seen == 0 {
                world.setLastSeen(atSlot: slot, wallMilliseconds)
            } else if wallMilliseconds - seen > ttlMilliseconds {
                let key = world.key(atSlot: slot)
                do throws(EngineError) {
                    try world.forgetPlayer(key: key)
                    forgotten.append(key)
                    expired += 1
                } catch {
                    continue
                }
            }
        }
        return forgotten
    }
}
