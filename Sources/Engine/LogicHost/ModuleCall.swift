import CLibUV
import FaultGuard
import GameABI
import Logging
import UVKit

/// What the state table's resume calls (ABI 1.4) need of the engine,
/// which owns the tokens (`ResumeRegistry`) and moves the connections.
protocol SessionResumer: AnyObject {
    /// `--resume-grace` is above 0.
    var resumeEnabled: Bool { get }
    func issueToken(for session: GameID) -> [UInt8]
    /// The session `token` names and the new token it gets, or why not.
    func checkResume(token: UnsafeRawBufferPointer, by fresh: GameID) throws(EngineError) -> (GameID, [UInt8])
    func isAway(_ session: GameID) -> Bool
    /// Where the tokens issued so far stand (taken before a call).
    var pendingMark: Int { get }
    /// A call ended: keep what it issued (and apply its RESUME), or drop
    /// what it issued since `mark`.
    func callEnded(committed: Bool, mark: Int)
}

/// The call into module code in progress, and the state table whose
/// thunks (StateTable.swift) land here: which session asked, whether it
/// was answered, what closes it asked for, and the rules around a call:
/// exactly one reply per request, closes and empty rooms applied after the
/// call returns (the module is never re-entered), output and room changes
/// refused while a reload runs module code on staged state.
///
/// It holds the serving module and its bindings because every call and
/// every field access needs them (the hot path reads them here, one hop
/// from the thunk); `LogicHost` changes them only at a swap's commit and
/// around a candidate's hooks (`asCandidate`).
final class ModuleCall {
    /// `.migrating` while a reload runs module code on staged state.
    enum Phase { case serving, migrating }

    let world: World
    let logger: Logger
    let loop: UnsafeMutablePointer<uv_loop_t>
    /// The table every module call gets; its `engine` points here.
    let table: UnsafeMutablePointer<game_state_table>
    /// Where a trampoline describes a fault: one record, reused (it is a
    /// few hundred bytes; clearing one per request would cost a memset).
    let faultBuffer: UnsafeMutablePointer<fg_fault>
    /// Told of a contained fault, and of the closes a call asked for.
    unowned(unsafe) var owner: LogicHost?

    // `@exclusivity(unchecked)` on the properties touched on every request:
    // the class is used from the loop thread only, and Swift's dynamic
    // exclusivity checks on them cost about 10% of a PING (BENCHMARKS.md,
    // "Current build (exclusivity checks off on the hot properties)").
    /// The module serving.
    @exclusivity(unchecked) var module: LoadedModule
    /// The store columns of the serving module's fields, by declared index.
    @exclusivity(unchecked) var bindings: [FieldBinding]
    private(set) var phase = Phase.serving
    @exclusivity(unchecked) private var currentSession = GameID(raw: 0)
    @exclusivity(unchecked) private var currentPeer: (any SessionPeer)?
    @exclusivity(unchecked) private var replied = false
    /// Sessions whose close was asked during a module call.
    private var pendingCloses: [GameID] = []
    /// A login the request being handled asked for (`auth_login`): its
    /// answer is deferred, and the engine takes the ask once the call
    /// returned without a fault (`takeAuthAsk`).
    private var authAsk: AuthAsk?
    /// Set while `hotswap_handle` runs: only a request may ask for a login.
    @exclusivity(unchecked) private var inRequest = false
    /// Where the call in progress began, for `undo` (ABI 1.5): nil when no
    /// call that may undo runs (reload hooks run as `.migrating`).
    private var undoMarks: UndoMarks?
    /// How players log in here (the state table's `auth_mode`), and
    /// whether a module may attach players itself (`player_attach`): not
    /// when every login must be checked.
    var authMode = AuthMode.open
    /// The engine's resume tokens (ABI 1.4); nil in tests without an engine.
    unowned(unsafe) var resumer: (any SessionResumer)?
    /// The one entity module code may write, during a staged slice (0: any).
    @exclusivity(unchecked) var onlyWritable: UInt64 = 0

    /// Requests handed to a module (`hotswap_requests_total`): a plain
    /// counter, read when metrics are scraped (BENCHMARKS.md, "Metrics").
    @exclusivity(unchecked) var requestCount = 0
    /// Which calls are timed for `hotswap_request_duration_seconds`.
    @exclusivity(unchecked) var sampler = CallSampler.off
    /// Set by a swap: the next handle call is timed (the first call into a
    /// new image pays for the Swift runtime's emptied caches).
    var measureNextCall = false
    var firstCallNanoseconds: UInt64?

    init(world: World, module: LoadedModule, bindings: [FieldBinding], loop: UnsafeMutablePointer<uv_loop_t>,
         logger: Logger)
    {
        self.world = world
        self.loop = loop
        self.module = module
        self.bindings = bindings
        self.logger = logger
        table = .allocate(capacity: 1)
        faultBuffer = .allocate(capacity: 1)
        faultBuffer.initialize(to: fg_fault())
        table.initialize(to: StateTable.make(call: UVContext.pointer(to: self)))
    }

    /// The loop's cached clock (the table's `now_ms`).
    var nowMilliseconds: UInt64 { uv_now(loop) }
    /// The clock timers are set on (ns, monotonic): `TimerClock.now`,
    /// replaced by tests that drive time.
    var timeNow: () -> UInt64 = { uv_hrtime() }

    deinit {
        table.deallocate()
        faultBuffer.deallocate()
    }

    // MARK: - Calls

    /// Hands one request line to the module and makes sure it gets exactly
    /// one reply, whatever the module does.
    func handle(_ line: UnsafeRawBufferPointer, from session: GameID, peer: any SessionPeer) {
        currentSession = session
        currentPeer = peer
        replied = false
        // An empty line still needs a valid pointer for C.
        let bytes = (line.baseAddress ?? UnsafeRawPointer(table)).assumingMemoryBound(to: UInt8.self)
        var message = game_message(session: session.raw, line: bytes, length: line.count)
        var status: Int32 = GAME_OK
        requestCount &+= 1
        let sampled = sampler.due()
        let timed = sampled || measureNextCall
        let started = timed ? uv_hrtime() : 0
        let tokenMark = resumer?.pendingMark ?? 0
        world.beginJournal()
        inRequest = true
        undoMarks = UndoMarks(closes: pendingCloses.count, tokens: tokenMark)
        let outcome = fg_call_handle(module.handle, &message, table, &status, faultBuffer)
        undoMarks = nil
        inRequest = false
        if timed {
            let elapsed = uv_hrtime() - started
            if sampled { sampler.record(nanoseconds: elapsed) }
            if measureNextCall {
                // The first call into a freshly swapped image is the slow one.
                measureNextCall = false
                firstCallNanoseconds = elapsed
            }
        }
        if outcome == FG_OK {
            world.commitJournal()
            // A deferred answer comes from hotswap_auth.
            if !replied && authAsk == nil { peer.deliver(status == GAME_OK ? Replies.noReply : Replies.moduleFailed) }
        } else {
            // Everything the call did is undone, its reply included; the
            // request gets exactly one answer, the engine's.
            world.rollBackJournal()
            pendingCloses.removeAll()
            authAsk = nil
            peer.deliver(outcome == FG_TIMEOUT ? Replies.moduleTimedOut : Replies.moduleFaulted)
        }
        currentPeer = nil
        currentSession = GameID(raw: 0)
        // Tokens issued and a RESUME checked in the call are kept only if
        // it returned normally; a RESUME is applied now, after its reply.
        resumer?.callEnded(committed: outcome == FG_OK, mark: tokenMark)
        if outcome != FG_OK {
            owner?.contained(outcome, export: "hotswap_handle")
        } else if status != GAME_OK {
            logger.warning("module returned an error", metadata: [
                "module": "\(module.name) \(module.version)", "status": "\(status)", "session": "\(session)"])
        }
        afterCall()
    }

    /// The login the request just handled asked for, if any (once).
    @inline(__always)
    func takeAuthAsk() -> AuthAsk? {
        guard authAsk != nil else { return nil }
        defer { authAsk = nil }
        return authAsk
    }

    /// Hands a login's verdict to the module (`hotswap_auth`), as the
    /// answer to the request that asked: the player is attached (and a new
    /// secret stored) first, inside the call's journal, so a fault or hang
    /// in the module undoes the login too, and the engine answers. A
    /// module without the export (a RELOAD meanwhile) cannot say what a
    /// login means to its game: nothing is attached, and the player is
    /// told to try again.
    func answerAuth(_ ask: AuthAsk, _ given: AuthVerdict, peer: any SessionPeer) {
        guard let hook = module.auth else {
            peer.deliver(Replies.authUnavailable)
            return
        }
        currentSession = ask.session
        currentPeer = peer
        replied = false
        var verdict = given
        var player = GameID(raw: 0)
        let tokenMark = resumer?.pendingMark ?? 0
        world.beginJournal()
        if verdict.status == GAME_OK {
            do throws(EngineError) {
                switch ask.kind {
                case .login:
                    let attached = verdict.key.withUnsafeBytes { key in
                        Result { () throws(EngineError) in try world.attachPlayer(ask.session, key: key) }
                    }
                    player = try attached.get()
                case .setSecret:
                    guard let held = try world.player(of: ask.session) else { throw .notFound }
                    player = held
                }
                if let secret = verdict.newSecret { try world.setStoredSecret(of: player, secret) }
            } catch {
                player = GameID(raw: 0)
                verdict.status = error.code
                verdict.flags &= GAME_AUTH_SECRET_SET
            }
        }
        var status: Int32 = GAME_OK
        undoMarks = UndoMarks(closes: pendingCloses.count, tokens: tokenMark)
        defer { undoMarks = nil }
        let outcome = verdict.key.withUnsafeBufferPointer { key in
            var result = game_auth_result(
                size: UInt32(MemoryLayout<game_auth_result>.size), abi_version: UInt32(GAME_ABI_VERSION),
                session: ask.session.raw, player: player.raw, status: verdict.status, flags: verdict.flags,
                key: key.baseAddress, key_length: key.count, retry_after_ms: verdict.retryAfterMilliseconds)
            return fg_call_auth(hook, &result, table, &status, faultBuffer)
        }
        if outcome == FG_OK {
            world.commitJournal()
            if !replied { peer.deliver(status == GAME_OK ? Replies.noReply : Replies.moduleFailed) }
        } else {
            world.rollBackJournal()
            pendingCloses.removeAll()
            peer.deliver(outcome == FG_TIMEOUT ? Replies.moduleTimedOut : Replies.moduleFaulted)
        }
        currentPeer = nil
        currentSession = GameID(raw: 0)
        // A resume token issued for the WELCOME is kept only if the call
        // returned normally (as in a request).
        resumer?.callEnded(committed: outcome == FG_OK, mark: tokenMark)
        if outcome != FG_OK { owner?.contained(outcome, export: "hotswap_auth") }
        afterCall()
    }

    /// Tells the module a session is going away (its room and fields are
    /// still there to read). No reply is expected or allowed.
    func sessionClosed(_ session: GameID) {
        guard let hook = module.sessionClosed else { return }
        let outcome = guardedHookCall { _ in fg_call_session_closed(hook, session.raw, table, faultBuffer) }
        if outcome != FG_OK { owner?.contained(outcome, export: "hotswap_session_closed") }
        afterCall()
    }

    /// Tells the module a session's connection dropped and it waits for a
    /// RESUME (ABI 1.4 `hotswap_session_away`).
    func sessionAway(_ session: GameID) {
        guard let hook = module.sessionAway else { return }
        let outcome = guardedHookCall { _ in fg_call_session_closed(hook, session.raw, table, faultBuffer) }
        if outcome != FG_OK { owner?.contained(outcome, export: "hotswap_session_away") }
        afterCall()
    }

    /// Tells the module a RESUME reattached a session that was away
    /// (ABI 1.4 `hotswap_session_back`).
    func sessionBack(_ session: GameID) {
        guard let hook = module.sessionBack else { return }
        let outcome = guardedHookCall { _ in fg_call_session_closed(hook, session.raw, table, faultBuffer) }
        if outcome != FG_OK { owner?.contained(outcome, export: "hotswap_session_back") }
        afterCall()
    }

    /// Hands a due timer to the module (`hotswap_timer`), as a request
    /// without a reply: what it does is journaled and undone if it faults
    /// or hangs. Returns the guard's outcome (FG_REFUSED: no export).
    /// The caller then settles the timer and calls `finishTimeCall`.
    func fireTimer(_ event: UnsafePointer<game_timer_event>) -> Int32 {
        guard let hook = module.timer else { return FG_REFUSED }
        return guardedHookCall { status in fg_call_timer(hook, event, table, &status, faultBuffer) }
    }

    /// Hands a room's tick to the module (`hotswap_tick`), like `fireTimer`.
    func tick(_ tick: UnsafePointer<game_tick>) -> Int32 {
        guard let hook = module.tick else { return FG_REFUSED }
        return guardedHookCall { status in fg_call_tick(hook, tick, table, &status, faultBuffer) }
    }

    /// After a timer's or tick's call was settled: a contained fault counts
    /// toward the automatic rollback like a request's; then what the call
    /// asked for happens (closes, empty rooms).
    func finishTimeCall(_ outcome: Int32, export: String) {
        if outcome != FG_OK && outcome != FG_REFUSED { owner?.contained(outcome, export: export) }
        afterCall()
    }

    /// A call into module code that answers no request (a closing
    /// session, a timer, a tick), journaled like a request: a fault or hang
    /// undoes what it did. Closes other hooks asked for are still waiting:
    /// a fault takes back only those this call asked for. Returns the
    /// guard's outcome; `call` gets the status the export returns.
    private func guardedHookCall(_ call: (inout Int32) -> Int32) -> Int32 {
        let saved = (currentSession, currentPeer)
        currentSession = GameID(raw: 0)
        currentPeer = nil
        let closesBefore = pendingCloses.count
        let tokenMark = resumer?.pendingMark ?? 0
        var status: Int32 = GAME_OK
        world.beginJournal()
        let savedMarks = undoMarks
        undoMarks = UndoMarks(closes: closesBefore, tokens: tokenMark)
        let outcome = call(&status)
        undoMarks = savedMarks
        if outcome == FG_OK {
            world.commitJournal()
        } else {
            world.rollBackJournal()
            if pendingCloses.count > closesBefore { pendingCloses.removeSubrange(closesBefore...) }
        }
        // A hook cannot RESUME (no request): only its tokens settle here.
        resumer?.callEnded(committed: outcome == FG_OK, mark: tokenMark)
        (currentSession, currentPeer) = saved
        if outcome == FG_OK && status != GAME_OK {
            logger.warning("module returned an error from a timer or tick", metadata: [
                "module": "\(module.name) \(module.version)", "status": "\(status)"])
        }
        return outcome
    }

    /// Applies what the module asked to happen after its call (closes, then
    /// empty rooms), so the module is never re-entered from inside itself.
    private func afterCall() {
        while let id = pendingCloses.popLast() {
            owner?.delegate?.logicRequestedClose(id)
        }
        world.destroyRoomsLeftEmpty()
    }

    /// Runs `body` (a candidate's hooks) as a swap does between its bind
    /// and its commit: the table reads and writes `candidateBindings`, and
    /// output, room changes and closes are refused. The serving module is
    /// back when it returns or throws; `restored` runs then (the guard is
    /// told which module serves again).
    func asCandidate<R>(_ candidate: LoadedModule, bindings candidateBindings: [FieldBinding], restored: () -> Void,
                        _ body: () throws(SwapError) -> R) throws(SwapError) -> R
    {
        let saved = (bindings: bindings, module: module)
        bindings = candidateBindings
        module = candidate
        phase = .migrating
        fg_set_module(candidate.name, candidate.version, candidate.sha256)
        // Its hooks are module code: a hang in them is interrupted where it is.
        _ = fg_register_module_image(unsafeBitCast(candidate.handle, to: UnsafeRawPointer.self))
        defer {
            bindings = saved.bindings
            module = saved.module
            phase = .serving
            restored()
        }
        return try body()
    }

    // MARK: - What the state table may do (called from StateTable's thunks)

    /// Where a call began: the closes it found waiting and the resume
    /// tokens issued before it, which `undo` keeps.
    struct UndoMarks {
        let closes: Int
        let tokens: Int
    }

    /// `undo` (ABI 1.5): everything the call did so far is undone exactly
    /// as a contained fault would undo it (the journal: fields, rooms,
    /// players, timers, ticks, output with the reply; and what waits for
    /// the call's end: closes, resume tokens, a RESUME, a login asked for),
    /// then a fresh journal starts, so what the call does next is undone by
    /// a later fault or undo as well. The call goes on and may reply. In
    /// reload hooks (`.migrating`) there is nothing of the call's own to
    /// undo: they return an error instead, and the whole reload is undone.
    func undo() throws(EngineError) {
        guard phase == .serving, world.journaling, let marks = undoMarks else { throw .notNow }
        world.rollBackJournal()
        if pendingCloses.count > marks.closes { pendingCloses.removeSubrange(marks.closes...) }
        authAsk = nil
        // Its output is gone, the reply with it: the request is owed one.
        replied = false
        resumer?.callEnded(committed: false, mark: marks.tokens)
        world.beginJournal()
    }

    func reply(_ line: UnsafeRawBufferPointer) throws(EngineError) {
        guard phase == .serving, let peer = currentPeer, !replied, authAsk == nil else { throw .notNow }
        replied = true
        world.deliver(line, to: peer)
    }

    /// Output, room changes and closes are refused while a reload runs
    /// module code on staged state: a refused reload must leave no trace.
    func checkServing() throws(EngineError) {
        guard phase == .serving else { throw .notNow }
    }

    func requestClose(_ session: GameID) throws(EngineError) {
        try checkServing()
        guard world.contains(session: session) else { throw .badSession }
        if world.isOpen(session: session) && !pendingCloses.contains(session) { pendingCloses.append(session) }
    }

    /// `auth_login` and `auth_set_secret`: recorded for the request being
    /// handled, whose answer is then deferred.
    func askAuth(_ ask: AuthAsk) throws(EngineError) {
        try checkServing()
        guard inRequest, module.auth != nil, authAsk == nil, !replied, ask.session == currentSession else {
            throw .notNow
        }
        let holds = try world.player(of: ask.session) != nil
        switch ask.kind {
        case .login: if holds { throw .notNow }
        case .setSecret:
            if authMode == .token { throw .notNow }
            if !holds { throw .notFound }
        }
        authAsk = ask
    }

    /// `player_attach` by a module itself: only where logins need no proof
    /// (the open mode), and never to a player who set a secret.
    /// With a shared database, only to a player this server holds under a
    /// lease (a login's claim reads it): one attached without would start
    /// from defaults and be fenced at its first write.
    func checkAttach(_ key: UnsafeRawBufferPointer) throws(EngineError) {
        guard authMode == .open else { throw .notNow }
        if world.sharesPlayers && !world.holdsLease([UInt8](key)) { throw .notNow }
        if let player = world.player(withKey: [UInt8](key)), !world.storedSecret(of: player).isEmpty { throw .badSecret }
    }

    /// The operator's `--game-setting`s.
    var settings = GameSettings()

    // MARK: - Resume (ABI 1.4)

    /// A fresh token for `session` (kept if the call returns normally).
    func issueToken(for session: GameID) throws(EngineError) -> [UInt8] {
        try checkServing()
        guard let resumer, resumer.resumeEnabled else { throw .notNow }
        guard world.isOpen(session: session) else { throw .badSession }
        return resumer.issueToken(for: session)
    }

    /// Checks a RESUME by the session whose request is being handled.
    func resume(token: UnsafeRawBufferPointer, by session: GameID) throws(EngineError) -> (GameID, [UInt8]) {
        try checkServing()
        guard let resumer, resumer.resumeEnabled else { throw .notNow }
        guard inRequest, currentPeer != nil, session == currentSession else { throw .notNow }
        return try resumer.checkResume(token: token, by: session)
    }

    func sessionStatus(_ session: GameID) throws(EngineError) -> UInt32 {
        guard world.contains(session: session) else { throw .badSession }
        return resumer?.isAway(session) == true ? UInt32(GAME_SESSION_AWAY) : UInt32(GAME_SESSION_CONNECTED)
    }

    func identified(_ session: GameID) throws(EngineError) {
        try checkServing()
        try world.markIdentified(session)
    }

    /// In a staged migration's slice a hook may write only the player it
    /// migrates: a slice's writes elsewhere would land in a store whose
    /// other rows are not kept (see StagedMigration.swift).
    @inline(__always)
    func checkWrite(_ entity: UInt64) throws(EngineError) {
        if onlyWritable != 0 && onlyWritable != entity { throw .notNow }
    }

    /// The binding of the serving module's field `index`.
    @inline(__always)
    func binding(_ index: Int32) throws(EngineError) -> FieldBinding {
        guard index >= 0, Int(index) < bindings.count else { throw .badField }
        return bindings[Int(index)]
    }
}
