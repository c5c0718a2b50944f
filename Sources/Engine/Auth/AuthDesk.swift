import CLibUV
import Foundation
import GameABI
import Logging
import UVKit

/// Where logins are checked (ABI 1.4's `auth_login` and `auth_set_secret`),
/// on the loop: the rules that cost nothing are applied here at once
/// (throttles, guests, `--require-secret`, new players per address), and
/// what costs (a scrypt hash, a token's signature) goes to a libuv worker;
/// the verdict comes back to the loop and `answer` hands it to the module
/// loaded then (`hotswap_auth`), which replies.
///
///     ask ──▶ plan ──▶ verdict now ─────────────────────────────▶ answer
///               └────▶ queue ──▶ worker (≤ 2 at once) ──▶ check ──┘
///                                                          └──▶ plan again (the player changed meanwhile)
///
/// At most `maxInFlight` checks run at once, so the database's and the
/// module loader's work on the same pool is never starved, and at most
/// `maxQueued` wait: past that a login is answered BUSY at once, which is
/// what a flood of logins costs the flooder instead of everyone.
final class AuthDesk {
    let mode: AuthMode
    let verifier: TokenVerifier?
    let cost: SecretHash.Cost
    let loop: UnsafeMutablePointer<uv_loop_t>
    let world: World
    let logger: Logger
    private let exemptLoopback: Bool
    private let newPlayersPerMinute: Int
    /// Hands a verdict to the module (Engine.answerLogin).
    var answer: (AuthAsk, AuthVerdict) -> Void = { _, _ in }
    /// Shared storage: a player is read, under a lease, before its login
    /// is checked (AuthDesk+Claim.swift).
    var shared: (any SharedPlayerStorage)?
    var lastClaimErrorLoggedAt: UInt64 = 0
    /// Shared storage: the key each login in progress uses, by session
    /// (one login at a time per session), so that its lease is not given
    /// back under it and is, once it ends unattached.
    var openKeys: [GameID: [UInt8]] = [:]
    /// Logins waiting for a release in a flush, or for an upgraded
    /// engine's leases to be read back (`leasesSettled`).
    var parked: [(ask: AuthAsk, address: PeerAddress?)] = []
    /// Claims on a worker, per key.
    var claimsInFlight: [[UInt8]: Int] = [:]

    private var failuresByAddress: FailureThrottle<PeerAddress>
    private var failuresByKey: FailureThrottle<[UInt8]>
    private var newPlayersByAddress: FailureThrottle<PeerAddress>
    /// Checks that cost a hash or a signature, per address and minute
    /// (`--max-login-checks-per-ip`): every kind, failed or not, so a
    /// client cannot keep the workers busy with logins that never fail
    /// (a right secret to a player online elsewhere, SECRET again and
    /// again, a LOGIN and a hang-up).
    private var checksByAddress: FailureThrottle<PeerAddress>
    /// Checks waiting or running per address: at most
    /// `maxPendingPerAddress`, so one address cannot fill the queue.
    private var pendingByAddress: [PeerAddress: Int] = [:]
    static let maxPendingPerAddress = 4

    static let maxInFlight = 2
    static let maxQueued = 256
    private var queue: [(ask: AuthAsk, address: PeerAddress?)] = []
    private var queueHead = 0
    var inFlight = 0

    /// For STATUS and /metrics.
    struct Counters {
        var verified = 0
        var failed = 0
        var throttled = 0
        var busy = 0
        var created = 0
        var newPlayersRefused = 0
    }

    private(set) var counters = Counters()
    var waiting: Int { queue.count - queueHead + inFlight }

    init(limits: Limits, verifier: TokenVerifier?, loop: UnsafeMutablePointer<uv_loop_t>, world: World, logger: Logger) {
        mode = verifier != nil ? .token : limits.requireSecret ? .secret : .open
        self.verifier = verifier
        cost = SecretHash.Cost(logRounds: limits.secretCost)
        self.loop = loop
        self.world = world
        self.logger = logger
        exemptLoopback = limits.exemptLoopback
        newPlayersPerMinute = limits.newPlayersPerMinute
        failuresByAddress = FailureThrottle(limit: limits.maxFailedLoginsPerIp, windowMilliseconds: 60_000)
        failuresByKey = FailureThrottle(limit: limits.maxFailedLoginsPerPlayer, windowMilliseconds: 60_000)
        newPlayersByAddress = FailureThrottle(limit: max(limits.newPlayersPerMinute, 1), windowMilliseconds: 60_000)
        checksByAddress = FailureThrottle(limit: limits.maxLoginChecksPerIp, windowMilliseconds: 60_000)
    }

    var now: UInt64 { uv_now(loop) }

    /// An address the per-address rules apply to (nil: none do).
    private func limited(_ address: PeerAddress?) -> PeerAddress? {
        guard let address, !(exemptLoopback && address.isLoopback) else { return nil }
        return address
    }

    // MARK: - Asking

    /// A request's login, after its call returned without a fault.
    func submit(_ ask: AuthAsk, address: PeerAddress?) {
        switch plan(ask, address: address) {
        case .answer(let verdict): settle(ask, verdict)
        case .work, .claim, .park:
            let limitedAddress = limited(address)
            let pending = limitedAddress.map { pendingByAddress[$0, default: 0] } ?? 0
            guard queue.count - queueHead < Self.maxQueued, pending < Self.maxPendingPerAddress else {
                counters.busy += 1
                return settle(ask, .refused(GAME_ERR_BUSY, key: ask.identity, retryAfter: 1000))
            }
            if let limitedAddress { pendingByAddress[limitedAddress] = pending + 1 }
            queue.append((ask, address))
            startQueued()
        }
    }

    /// An ask that was queued left the pipeline (answered, or its session gone).
    func releaseAddress(_ address: PeerAddress?) { release(address) }

    private func release(_ address: PeerAddress?) {
        guard let address = limited(address), let pending = pendingByAddress[address] else { return }
        pendingByAddress[address] = pending > 1 ? pending - 1 : nil
    }

    private enum Plan {
        case answer(AuthVerdict)
        case work(AuthJob)
        /// Read the player from shared storage first, then plan again.
        case claim([UInt8])
        /// Wait until the leases settle (AuthDesk+Claim.swift).
        case park
    }

    /// What an ask needs, from the world as it is now.
    private func plan(_ ask: AuthAsk, address: PeerAddress?) -> Plan {
        let now = now
        let address = limited(address)
        if let address, failuresByAddress.isThrottled(address, now: now) {
            counters.throttled += 1
            return .answer(.refused(GAME_ERR_THROTTLED, key: ask.identity,
                                    retryAfter: failuresByAddress.retryAfter(address, now: now)))
        }
        if let address, checksByAddress.isThrottled(address, now: now) {
            counters.throttled += 1
            return .answer(.refused(GAME_ERR_THROTTLED, key: ask.identity,
                                    retryAfter: checksByAddress.retryAfter(address, now: now)))
        }
        if ask.kind == .setSecret {
            guard let player = try? world.player(of: ask.session) else {
                return .answer(.refused(GAME_ERR_STATE, key: []))
            }
            let key = (try? world.withKey(of: player) { [UInt8]($0) }) ?? []
            return .work(AuthJob(kind: .hash(ask.secret, cost), key: key, expected: world.storedSecret(of: player),
                                 flags: GAME_AUTH_SECRET_SET, address: address))
        }
        if mode == .token, let verifier {
            return .work(AuthJob(kind: .token(ask.identity, verifier), key: [], expected: [], flags: GAME_AUTH_VIA_TOKEN,
                                 address: address))
        }
        let key = ask.identity
        if failuresByKey.isThrottled(key, now: now) {
            counters.throttled += 1
            return .answer(.refused(GAME_ERR_THROTTLED, key: key, retryAfter: failuresByKey.retryAfter(key, now: now)))
        }
        // Shared storage: not this server's yet, read it (and take its
        // lease) first. A session here that holds it without a lease (lost
        // while the process was upgraded) keeps the name until it is closed.
        if shared != nil {
            if let refusal = storageRefusal(key) { return .answer(refusal) }
            if mustWait(for: key) { return .park }
            noteLogin(ask, key)
            if !world.holdsLease(key) {
                if let held = world.player(withKey: key), world.isAttached(slot: Int(held.index)) {
                    return .answer(.refused(GAME_ERR_EXISTS, key: key))
                }
                return .claim(key)
            }
        }
        let existing = world.player(withKey: key)
        // Held by another session (online, or away waiting for its RESUME):
        // refused before any hash is spent on it.
        if let existing, world.isAttached(slot: Int(existing.index)) {
            return .answer(.refused(GAME_ERR_EXISTS, key: key))
        }
        let stored = existing.map { world.storedSecret(of: $0) } ?? []
        if !stored.isEmpty {
            // A login without the secret to a player who set one is a wrong
            // guess like any other.
            guard !ask.secret.isEmpty else { return .answer(failed(key, address: address)) }
            return .work(AuthJob(kind: .verify(ask.secret, SecretHash(encoded: stored)), key: key, expected: stored,
                                 flags: 0, address: address))
        }
        // A new player, or a guest's name claimed with a secret: both take
        // a name for good, so both count as new players per address.
        if existing == nil || !ask.secret.isEmpty, let refusal = newPlayerRefusal(key, address: address) {
            return .answer(refusal)
        }
        let created: UInt32 = existing == nil ? GAME_AUTH_CREATED : 0
        if ask.secret.isEmpty {
            guard mode == .open else { return .answer(.refused(GAME_ERR_SECRET_REQUIRED, key: key)) }
            if existing == nil { countNewPlayer(address) }
            return .answer(AuthVerdict(status: GAME_OK, flags: created | GAME_AUTH_GUEST, key: key))
        }
        // A new player with a secret, or a guest's name claimed.
        return .work(AuthJob(kind: .hash(ask.secret, cost), key: key, expected: [],
                             flags: existing == nil ? GAME_AUTH_CREATED : GAME_AUTH_CLAIMED, address: address))
    }

    /// `--new-players-per-minute`: nil when this address may make one more.
    private func newPlayerRefusal(_ key: [UInt8], address: PeerAddress?) -> AuthVerdict? {
        guard newPlayersPerMinute > 0, let address, newPlayersByAddress.isThrottled(address, now: now) else { return nil }
        counters.newPlayersRefused += 1
        counters.throttled += 1
        return .refused(GAME_ERR_THROTTLED, key: key, retryAfter: newPlayersByAddress.retryAfter(address, now: now))
    }

    private func countNewPlayer(_ address: PeerAddress?, created: Bool = true) {
        if created { counters.created += 1 }
        if newPlayersPerMinute > 0, let address { newPlayersByAddress.failed(address, now: now) }
    }

    private func failed(_ key: [UInt8], address: PeerAddress?) -> AuthVerdict {
        counters.failed += 1
        if let address { failuresByAddress.failed(address, now: now) }
        if !key.isEmpty { failuresByKey.failed(key, now: now) }
        return .refused(GAME_ERR_BAD_SECRET, key: key)
    }

    // MARK: - The worker

    func startQueued() {
        while inFlight < Self.maxInFlight, queueHead < queue.count {
            let (ask, address) = queue[queueHead]
            queueHead += 1
            if queueHead > 64, queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            // The player hung up while it waited: no hash is spent on it.
            guard world.livePeer(of: ask.session) != nil else {
                release(address)
                closeLogin(ask)
                continue
            }
            // Planned again now: the world may have changed while it waited.
            switch plan(ask, address: address) {
            case .answer(let verdict):
                release(address)
                settle(ask, verdict)
            case .work(let job):
                if let counted = job.address { checksByAddress.failed(counted, now: now) }
                run(job, for: ask, address: address)
            case .claim(let key):
                // A claim writes a row: it counts as a check of the address.
                if let counted = limited(address) { checksByAddress.failed(counted, now: now) }
                claim(key, for: ask, address: address) { [unowned(unsafe) self] in
                    self.requeue(ask, address)
                } refused: { [unowned(unsafe) self] verdict in
                    self.settle(ask, verdict)
                }
            case .park:
                release(address)
                parked.append((ask, address))
            }
        }
    }

    private func run(_ job: AuthJob, for ask: AuthAsk, address: PeerAddress?) {
        let box = AuthJobBox(job: job, wallNow: Date().timeIntervalSince1970)
        inFlight += 1
        let status = UVWork.submit(on: loop, box, work: { $0.run() }, after: { [unowned(unsafe) self] box in
            self.inFlight -= 1
            self.release(address)
            self.finished(box, ask, address: address)
            self.startQueued()
        })
        if status != 0 {
            inFlight -= 1
            release(address)
            logger.error("cannot queue a login check: \(UVError(status))")
            counters.busy += 1
            settle(ask, .refused(GAME_ERR_BUSY, key: ask.identity, retryAfter: 1000))
        }
    }

    /// A worker's result, on the loop.
    private func finished(_ box: AuthJobBox, _ ask: AuthAsk, address: PeerAddress?) {
        let job = box.job
        guard world.livePeer(of: ask.session) != nil else { return closeLogin(ask) }  // the player left meanwhile
        switch (job.kind, box.outcome) {
        case (.token, .subject(let key)):
            if let stillThrottled = limited(job.address), failuresByAddress.isThrottled(stillThrottled, now: now) {
                counters.throttled += 1
                return settle(ask, .refused(GAME_ERR_THROTTLED, key: key,
                                            retryAfter: failuresByAddress.retryAfter(stillThrottled, now: now)))
            }
            if shared != nil {
                if let refusal = storageRefusal(key) { return settle(ask, refusal) }
                // Checked again from the start once the leases settle.
                if mustWait(for: key) { return parked.append((ask, address)) }
                noteLogin(ask, key)
                if !world.holdsLease(key) {
                    // The subject's record, under its lease, before the answer.
                    return claim(key, for: ask, address: nil) { [unowned(unsafe) self] in
                        self.tokenAccepted(ask, key: key, flags: job.flags)
                    } refused: { [unowned(unsafe) self] verdict in
                        self.settle(ask, verdict)
                    }
                }
            }
            tokenAccepted(ask, key: key, flags: job.flags)
        case (.token, .refused(let why)):
            logger.debug("login token refused: \(why)")
            settle(ask, failed([], address: job.address))
        case (.verify, .matched(let matched)):
            // The secret changed while it was checked: check again.
            guard currentSecret(job.key) == job.expected else { return requeue(ask, address) }
            guard matched else { return settle(ask, failed(job.key, address: job.address)) }
            counters.verified += 1
            settle(ask, AuthVerdict(status: GAME_OK, flags: job.flags, key: job.key))
        case (.hash, .hashed(let encoded)):
            let existing = world.player(withKey: job.key)
            let stillAsPlanned = switch job.flags {
            case GAME_AUTH_CREATED: existing == nil
            case GAME_AUTH_CLAIMED: existing != nil && currentSecret(job.key).isEmpty
            default: (try? world.player(of: ask.session)) == existing && currentSecret(job.key) == job.expected
            }
            guard stillAsPlanned else { return requeue(ask, address) }
            if job.flags == GAME_AUTH_CREATED || job.flags == GAME_AUTH_CLAIMED {
                if let refusal = newPlayerRefusal(job.key, address: job.address) { return settle(ask, refusal) }
                countNewPlayer(job.address, created: job.flags == GAME_AUTH_CREATED)
            }
            settle(ask, AuthVerdict(status: GAME_OK, flags: job.flags, key: job.key, newSecret: encoded))
        default:
            logger.error("a login check could not be done")
            settle(ask, .refused(GAME_ERR_BUSY, key: job.key, retryAfter: 1000))
        }
    }

    private func tokenAccepted(_ ask: AuthAsk, key: [UInt8], flags: UInt32) {
        guard world.livePeer(of: ask.session) != nil else { return closeLogin(ask) }
        counters.verified += 1
        let created = world.player(withKey: key) == nil ? GAME_AUTH_CREATED : 0
        if created != 0 { counters.created += 1 }
        settle(ask, AuthVerdict(status: GAME_OK, flags: flags | created, key: key))
    }

    private func currentSecret(_ key: [UInt8]) -> [UInt8] {
        world.player(withKey: key).map { world.storedSecret(of: $0) } ?? []
    }

    /// Back to the front of the queue, planned again from the world as it
    /// is now (two logins that made the same new player, say).
    func requeue(_ ask: AuthAsk, _ address: PeerAddress?) {
        if let limitedAddress = limited(address) { pendingByAddress[limitedAddress, default: 0] += 1 }
        queue.insert((ask, address), at: queueHead)
        startQueued()
    }

    /// Every verdict goes out through here: the answer to a SECRET says so
    /// whatever it is (GAME_AUTH_SECRET_SET), and a refused token is never
    /// handed back (a crash report prints the key hotswap_auth got).
    func settle(_ ask: AuthAsk, _ verdict: AuthVerdict) {
        var verdict = verdict
        if ask.kind == .setSecret { verdict.flags |= GAME_AUTH_SECRET_SET }
        if mode == .token, ask.kind == .login, verdict.status != GAME_OK { verdict.key = [] }
        // Closed first: the answer may replay the session's next lines,
        // another LOGIN among them, which notes its own (a release is taken
        // only at a flush, never during the answer).
        closeLogin(ask)
        answer(ask, verdict)
    }
}

/// What a worker does for one login: only `Sendable` values (the secret,
/// the stored hash, the verifier) and never the world.
struct AuthJob: Sendable {
    enum Kind: Sendable {
        case verify([UInt8], SecretHash?)
        case hash([UInt8], SecretHash.Cost)
        case token([UInt8], TokenVerifier)
    }

    let kind: Kind
    /// The player's key (empty for a token: its subject says).
    let key: [UInt8]
    /// The stored hash the plan saw: the answer stands only if it is still
    /// the one stored.
    let expected: [UInt8]
    let flags: UInt32
    let address: PeerAddress?
}

/// The job and, once the worker is done, its outcome (written by the
/// worker, read by the loop after it: libuv orders the two).
final class AuthJobBox: @unchecked Sendable {
    enum Outcome {
        case pending
        case matched(Bool)
        case hashed([UInt8])
        case subject([UInt8])
        case refused(String)
    }

    let job: AuthJob
    let wallNow: Double
    var outcome = Outcome.pending

    init(job: AuthJob, wallNow: Double) {
        self.job = job
        self.wallNow = wallNow
    }

    /// On the worker thread.
    func run() {
        switch job.kind {
        case .verify(let secret, let stored):
            outcome = .matched(stored?.matches(secret) ?? false)
        case .hash(let secret, let cost):
            outcome = (try? SecretHash.make(secret, cost: cost)).map { .hashed($0.encoded) } ?? .refused("scrypt failed")
        case .token(let token, let verifier):
            do {
                outcome = .subject(try verifier.subject(of: token, now: wallNow))
            } catch {
                outcome = .refused(error.description)
            }
        }
    }
}
