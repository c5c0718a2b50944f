import CLibUV
import GameABI
import Logging
import UVKit

/// With shared storage (PostgreSQL), a login first reads the player, under
/// a lease, on a worker: only then does the desk know whether the name
/// exists, what its secret is, and that no other server is serving it.
///
///     plan ──▶ claim (worker: one statement) ──▶ claimed ──▶ plan again
///                                              ├▶ held elsewhere ──▶ EXISTS + GAME_AUTH_ELSEWHERE
///                                              └▶ database error ──▶ BUSY + GAME_AUTH_STORAGE
///
/// A claim counts as a check in flight (`maxInFlight`), so claims and
/// hashes together never take more than their share of libuv's pool. The
/// database answers within its timeouts (`PGConnection.connect`), so a
/// LOGIN against a database that is down is refused in bounded time.
extension AuthDesk {
    /// `address`: the ask's place in the per-address count, given back
    /// when the claim is done whatever its outcome (nil: given back
    /// already).
    func claim(_ key: [UInt8], for ask: AuthAsk, address: PeerAddress?, then claimed: @escaping () -> Void,
               refused: @escaping (AuthVerdict) -> Void)
    {
        guard let shared else { return claimed() }
        let box = ClaimBox(storage: shared, key: key, columns: world.store.columnSpecs(.player))
        inFlight += 1
        claimsInFlight[key, default: 0] += 1
        let status = UVWork.submit(on: loop, box, work: { $0.run() }, after: { [unowned(unsafe) self] box in
            self.inFlight -= 1
            self.claimDone(key)
            self.releaseAddress(address)
            self.claimFinished(box, ask, then: claimed, refused: refused)
            // Logins of the same name waited for this claim.
            self.leasesSettled()
            self.startQueued()
        })
        if status != 0 {
            inFlight -= 1
            claimDone(key)
            releaseAddress(address)
            logger.error("cannot queue a player's claim: \(UVError(status))")
            refused(.refused(GAME_ERR_BUSY, key: key, retryAfter: 1000))
        }
    }

    private func claimDone(_ key: [UInt8]) {
        if let count = claimsInFlight[key] { claimsInFlight[key] = count > 1 ? count - 1 : nil }
    }

    /// Shared storage: whether a login of `key` must wait: its release is
    /// in a flush (taken again now it would race it), another login's
    /// claim of it is on a worker (a second claim would move the epoch
    /// under the first), or an upgraded engine has not read its leases
    /// back yet.
    func mustWait(for key: [UInt8]) -> Bool {
        world.leases.adopting || world.leases.isReleasing(key) || claimsInFlight[key] != nil
    }

    /// A login refused at once: an upgraded engine could not read its
    /// leases back (the database is down), so no player can be read either.
    func storageRefusal(_ key: [UInt8]) -> AuthVerdict? {
        guard world.leases.adopting && world.leases.adoptionFailing else { return nil }
        world.leases.counters.claimErrors += 1
        var verdict = AuthVerdict.refused(GAME_ERR_BUSY, key: key, retryAfter: 1000)
        verdict.flags = GAME_AUTH_STORAGE
        return verdict
    }

    /// The ask uses `key`'s lease until it ends (once per ask).
    func noteLogin(_ ask: AuthAsk, _ key: [UInt8]) {
        guard openKeys[ask.session] == nil else { return }
        openKeys[ask.session] = key
        world.loginStarted(key)
    }

    /// The ask ended (answered, or its session gone): a lease it claimed
    /// and nothing attached goes back at the next flush.
    func closeLogin(_ ask: AuthAsk) {
        guard let key = openKeys.removeValue(forKey: ask.session) else { return }
        world.loginEnded(key)
    }

    /// Releases in a flush are over, or leases were read back: the logins
    /// that waited plan again, first in line.
    func leasesSettled() {
        guard !parked.isEmpty else { return }
        let waiting = parked
        parked = []
        for (ask, address) in waiting.reversed() { requeue(ask, address) }
    }

    private func claimFinished(_ box: ClaimBox, _ ask: AuthAsk, then claimed: () -> Void,
                               refused: (AuthVerdict) -> Void)
    {
        switch box.outcome {
        case .success(.claimed(let epoch, let record)):
            // Loaded even when the player hung up meanwhile: the lease is
            // ours now, and goes back at the next flush (`closeLogin`).
            // Two logins of one name may claim it at once: the later claim
            // moved the epoch on, and the record already loaded stays.
            if world.holdsLease(box.key) {
                world.raiseLeaseEpoch(box.key, to: epoch)
            } else {
                world.loadClaimed(box.key, epoch: epoch, record: record)
            }
            guard world.livePeer(of: ask.session) != nil else { return closeLogin(ask) }
            claimed()
        case .success(.heldElsewhere(let owner, let secondsLeft)):
            world.leases.counters.heldElsewhere += 1
            logger.info("login of \(String(decoding: box.key, as: UTF8.self)) refused: server \(owner) holds it (lease \(secondsLeft) s more unless renewed)")
            guard world.livePeer(of: ask.session) != nil else { return closeLogin(ask) }
            var verdict = AuthVerdict.refused(GAME_ERR_EXISTS, key: box.key, retryAfter: UInt64(secondsLeft) * 1000)
            verdict.flags = GAME_AUTH_ELSEWHERE
            refused(verdict)
        case .failure(let error):
            world.leases.counters.claimErrors += 1
            if lastClaimErrorLoggedAt == 0 || now - lastClaimErrorLoggedAt >= 10_000 {
                lastClaimErrorLoggedAt = now
                logger.error("login refused: cannot read the player from \(shared?.location ?? "the database"): \(error.description)")
            }
            guard world.livePeer(of: ask.session) != nil else { return closeLogin(ask) }
            var verdict = AuthVerdict.refused(GAME_ERR_BUSY, key: box.key, retryAfter: 1000)
            verdict.flags = GAME_AUTH_STORAGE
            refused(verdict)
        case nil:
            refused(.refused(GAME_ERR_BUSY, key: box.key, retryAfter: 1000))
        }
    }
}

/// One claim on its way through the worker: only Sendable values and the
/// storage (which locks its connection) go over.
final class ClaimBox: @unchecked Sendable {
    let storage: any SharedPlayerStorage
    let key: [UInt8]
    let columns: [FieldSpec]
    /// Written on the worker, read on the loop after it (libuv orders them).
    var outcome: Result<LeaseClaim, StorageError>?

    init(storage: any SharedPlayerStorage, key: [UInt8], columns: [FieldSpec]) {
        self.storage = storage
        self.key = key
        self.columns = columns
    }

    func run() {
        do {
            outcome = .success(try storage.claim(key, columns: columns))
        } catch {
            outcome = .failure(error)
        }
    }
}
