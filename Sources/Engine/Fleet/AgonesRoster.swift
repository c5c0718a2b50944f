import Foundation
import Logging

/// What the roster reads of the game: the engine's World, seen through
/// this (reading only: the roster never changes game state).
protocol AgonesRosterSource: AnyObject {
    /// Rooms open now.
    var roomCount: Int { get }
    /// Every player attached to a session (online, or away within the
    /// resume grace: either holds a place on this server).
    func forEachOnlinePlayer(_ body: (GameID) -> Void)
    /// The player's key (its name), as the list's value.
    func name(of player: GameID) -> String?
    /// The online player whose key is `name`, if any.
    func onlinePlayer(named name: String) -> GameID?
}

/// The `rooms` Counter and the `players` List of the GameServer (Agones'
/// beta Counters and Lists, the "high density" shape: many rooms per
/// process), kept current from the World.
///
/// **Sampled, not evented.** The roster compares the World with what it
/// last told the sidecar once per `sync()` (the health tick), so a burst of
/// joins costs one PATCH of the count, a player who comes and goes between
/// two ticks costs nothing, and no hook sits in World's hot paths (where a
/// fault's undo would have to take an event back). The List has no batch
/// call in Agones: its values change one `:addValue` / `:removeValue` at a
/// time (a PATCH of the list changes only its capacity: sdkserver.go), so
/// a sync sends at most `maxChangesPerSync` of them and the next sync waits
/// until they are answered. The sidecar's queue is therefore bounded by
/// one sync's worth, whatever the rate of logins, and every roster request
/// is `background`: health pings go first.
///
///     start       PATCH counters/rooms {"capacity": --max-rooms}
///                 PATCH lists/players {"capacity": min(--max-connections, 1000)}
///                 GET lists/players        (values left by an engine before this one)
///     each sync   PATCH counters/rooms {"count": n}      when n changed
///                 POST lists/players:removeValue, then :addValue
///     SIGTERM     PATCH counters/rooms {"capacity": count} (`fence`): full, so no
///                 allocation lands while the server drains; nothing after it
///
/// A counter or list the GameServer does not declare (the sidecar answers
/// its capacity PATCH with an error) is logged once and left alone. A lost
/// sidecar is the gateway's business: failures counted, logged once; the
/// roster sends nothing while the gateway is failing and catches up once
/// it answers, since it compares states, not events.
final class AgonesRoster {
    /// Agones' largest List capacity (apiserver.ListMaxCapacity).
    static let listMaxCapacity = 1000
    /// List changes sent per sync, at most.
    static let maxChangesPerSync = 64
    static let counterPath = "/v1beta1/counters/rooms"
    static let listPath = "/v1beta1/lists/players"

    /// Where one of the two stands.
    enum Setup: Equatable {
        /// Its capacity not yet acknowledged (the sidecar did not answer).
        case pending
        /// Acknowledged: kept current.
        case kept
        /// Refused by the sidecar (not declared, or the feature is off).
        case absent
    }

    private let gateway: AgonesGateway
    private let logger: Logger
    private let source: any AgonesRosterSource
    let roomCapacity: Int
    let listCapacity: Int
    private(set) var counter = Setup.pending
    private(set) var list = Setup.pending
    /// The values read back from the sidecar at start; nil until read.
    private var startValues: [String]?
    /// Setup requests, and a sync's changes, not answered yet.
    private var outstanding = 0
    /// The count last acknowledged or on its way; nil: send it.
    private var sentCount: Int?
    /// The players the List holds (as far as the answers say), by id.
    private(set) var listed: [GameID: String] = [:]
    /// Values the List holds that name no online player (from the start's read).
    private var strays: Set<String> = []
    /// Set by `fence()`: the server drains, nothing more is sent.
    private(set) var fenced = false
    private var fullLogged = false

    init(gateway: AgonesGateway, source: any AgonesRosterSource, maxRooms: Int, maxConnections: Int, logger: Logger) {
        self.gateway = gateway
        self.source = source
        self.logger = logger
        roomCapacity = maxRooms
        listCapacity = min(maxConnections, Self.listMaxCapacity)
    }

    /// Once per health tick: the setup until it is acknowledged, then the
    /// changes since the last sync.
    func sync() {
        guard !fenced, outstanding == 0, gateway.failingSince == 0 else { return }
        if counter == .pending || list == .pending || (list == .kept && startValues == nil) {
            setUp()
            return
        }
        if counter == .kept { syncCount() }
        if list == .kept { syncList() }
    }

    /// SIGTERM: the capacity becomes the current count, so Agones allocates
    /// no new room here while the players drain; the roster stops (a count
    /// falling as rooms close would open capacity again).
    func fence() {
        guard !fenced else { return }
        fenced = true
        guard counter != .absent else { return }
        let count = source.roomCount
        logger.notice("agones: draining, the rooms Counter's capacity set to its count (\(count))")
        // Not background: it goes before anything queued, and is kept
        // through the shutdown until answered (`keptAtShutdown`).
        gateway.send(.init(method: "PATCH", path: Self.counterPath, body: "{\"count\":\(count),\"capacity\":\(count)}",
                           retries: gateway.failingSince == 0 ? 2 : 0, coalescing: Self.fenceKey))
    }

    static let fenceKey = "rooms:fence"

    // MARK: - Setup

    private func setUp() {
        if counter == .pending {
            request("PATCH", Self.counterPath, "{\"capacity\":\(roomCapacity)}") { [unowned self] answer in
                counter = settle("rooms Counter", answer) ?? counter
            }
        }
        if list == .pending {
            request("PATCH", Self.listPath, "{\"capacity\":\(listCapacity)}") { [unowned self] answer in
                list = settle("players List", answer) ?? list
            }
        }
        if startValues == nil {
            request("GET", Self.listPath, "") { [unowned self] answer in
                guard answer.ok else {
                    // Refused (no such List): nothing to adopt; no answer: read again.
                    if answer.status != nil { startValues = [] }
                    return
                }
                startValues = Self.values(answer.body)
                adopt(startValues ?? [])
            }
        }
    }

    /// `.kept` on success, `.absent` when the sidecar refused (logged),
    /// nil when it did not answer (tried again next sync).
    private func settle(_ what: String, _ answer: AgonesGateway.Answer) -> Setup? {
        if answer.ok {
            logger.info("agones: the \(what) is kept current")
            return .kept
        }
        guard let status = answer.status else { return nil }
        logger.warning("agones: the sidecar refused the \(what)'s capacity (HTTP \(status)); not kept. Declare it in the GameServer spec (contrib/agones/fleet.yaml) with the CountsAndLists feature on")
        return .absent
    }

    /// The values an earlier engine of this process (an upgrade) or an
    /// earlier container of the pod left: those naming an online player
    /// are listed already, the rest are strays to remove.
    private func adopt(_ values: [String]) {
        for value in values {
            if let player = source.onlinePlayer(named: value) { listed[player] = value } else { strays.insert(value) }
        }
    }

    // MARK: - Sync

    private func syncCount() {
        let count = source.roomCount
        guard count != sentCount else { return }
        sentCount = count
        request("PATCH", Self.counterPath, "{\"count\":\(count)}") { [unowned self] answer in
            if !answer.ok && sentCount == count { sentCount = nil }
        }
    }

    private func syncList() {
        var online: Set<GameID> = []
        online.reserveCapacity(listed.count)
        source.forEachOnlinePlayer { online.insert($0) }
        var budget = Self.maxChangesPerSync
        // Removals first: they make room for additions.
        for value in strays where budget > 0 {
            budget -= 1
            strays.remove(value)
            change(value, add: false) { [unowned self] ok in if !ok { strays.insert(value) } }
        }
        for (player, value) in listed where !online.contains(player) && budget > 0 {
            budget -= 1
            listed[player] = nil
            change(value, add: false) { [unowned self] ok in if !ok { strays.insert(value) } }
        }
        guard budget > 0 else { return }
        var unlisted = 0
        for player in online where listed[player] == nil {
            guard listed.count + strays.count < listCapacity else {
                unlisted += 1
                continue
            }
            guard budget > 0, let value = source.name(of: player) else { continue }
            budget -= 1
            listed[player] = value
            change(value, add: true) { [unowned self] ok in if !ok && listed[player] == value { listed[player] = nil } }
        }
        if unlisted > 0 && !fullLogged {
            fullLogged = true
            logger.warning("agones: the players List is full (capacity \(listCapacity)); \(unlisted) online players are not listed (logged once)")
        }
    }

    /// One value added or removed; `done(false)` when it did not happen.
    private func change(_ value: String, add: Bool, done: @escaping (Bool) -> Void) {
        let action = add ? "addValue" : "removeValue"
        request("POST", "\(Self.listPath):\(action)", "{\"value\":\(AgonesLifecycle.jsonString(value))}",
                accepted: [add ? 409 : 404]) { answer in done(answer.ok) }
    }

    private func request(_ method: String, _ path: String, _ body: String, accepted: Set<Int> = [],
                         done: @escaping (AgonesGateway.Answer) -> Void) {
        outstanding += 1
        gateway.send(.init(method: method, path: path, body: body, retries: 1, background: true, accepted: accepted) {
            [weak self] answer in
            guard let self else { return }
            outstanding -= 1
            done(answer)
        })
    }

    /// `values` of a List as the gateway returns it (`{"name", "capacity", "values": [...]}`).
    static func values(_ body: [UInt8]) -> [String] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return [] }
        return object["values"] as? [String] ?? []
    }
}
