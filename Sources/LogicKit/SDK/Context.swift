import GameABI
import Protocol

/// What a handler can do during one call: reply, push events, read and
/// write entities, set timers, read settings. Valid for that call only.
public struct Context<G: Game> {
    /// The low-level table wrapper, for what the SDK does not cover.
    public let host: Host
    @usableFromInline let fieldsPointer: UnsafePointer<G.Fields>
    /// The session whose request is handled (0 in timers and ticks).
    public let sessionID: game_id
    @usableFromInline let state: UnsafeMutablePointer<CallState>

    @inlinable init(host: Host, fields: UnsafePointer<G.Fields>, session: game_id,
                           state: UnsafeMutablePointer<CallState>) {
        self.host = host
        self.fieldsPointer = fields
        self.sessionID = session
        self.state = state
    }

    /// The game's field handles.
    @inlinable public var fields: G.Fields { fieldsPointer.pointee }

    /// The session whose request this is.
    @inlinable public var me: G.Session { G.Session(sessionID, host, fieldsPointer) }
    /// The server-wide entity (global fields).
    @inlinable public var global: G.Global { G.Global(GAME_GLOBAL_ID, host, fieldsPointer) }

    @inlinable public func session(_ id: game_id) -> G.Session { G.Session(id, host, fieldsPointer) }
    @inlinable public func room(_ id: game_id) -> G.Room { G.Room(id, host, fieldsPointer) }
    @inlinable public func player(_ id: game_id) -> G.Player { G.Player(id, host, fieldsPointer) }

    /// The loop's clock, in ms (monotonic).
    @inlinable public var now: Int { Int(truncatingIfNeeded: host.nowMilliseconds()) }

    // MARK: Output

    /// Answers the request (exactly once; a second reply is refused).
    @discardableResult
    @inlinable public func reply(_ literal: StaticString) -> Int32 {
        let status = host.reply(literal)
        if status == GAME_OK { state.pointee.replied = true }
        return status
    }

    /// Answers with a line built at run time: `reply("+MOVED \(x) \(y)")`.
    @discardableResult
    @_disfavoredOverload
    @inlinable public func reply(_ line: Line) -> Int32 {
        let status = line.withBytes { host.reply($0) }
        if status == GAME_OK { state.pointee.replied = true }
        return status
    }

    /// Whether this request has been answered.
    @inlinable public var hasReplied: Bool { state.pointee.replied }

    /// Undoes everything this call did so far (ABI 1.5), its reply
    /// included; a thrown `Refusal` does this for you.
    @discardableResult
    @inlinable public func undo() -> Int32 {
        let status = host.undo()
        if status == GAME_OK { state.pointee.replied = false }
        return status
    }

    /// Undoes the call, then replies with `line`: what a thrown `Refusal`
    /// does, for a refusal whose text is built at run time. What the
    /// game's `received` hook noted for the request is noted again.
    @inlinable public func refuse(_ line: Line) {
        undo()
        if let request = state.pointee.request { try? G.received(self, request) }
        reply(line)
    }

    // MARK: Rooms

    /// The room called `name`.
    @inlinable public func room(named name: Text) -> G.Room? { host.findRoom(name.bytes).map { room($0) } }

    /// Calls `body` for every room (up to `limit`, on the stack).
    @inlinable public func forEachRoom(limit: Int = 256, _ body: (G.Room) -> Void) {
        withIDs(limit) { ids in
            let count = min(host.rooms(into: ids), ids.count)
            for id in ids[0..<count] { body(room(id)) }
        }
    }

    /// The session whose unique string field holds `value`.
    @inlinable @inline(__always) public func find(_ path: KeyPath<G.Fields, SessionField<String>>, _ value: Text) -> G.Session? {
        host.find(fields[keyPath: path].index, value.bytes).map { session($0) }
    }

    // MARK: Timers (timers are data: whichever module is loaded when one
    // comes due handles it, in `G.timer`)

    /// `event` fires once on `owner` after `milliseconds`; it dies with
    /// its owner. The payload (at most 256 bytes) comes back with it.
    @discardableResult
    @inlinable public func after<K>(_ milliseconds: Int, _ event: StaticString, on owner: Entity<K, G.Fields>,
                         payload: Line = Line()) -> game_id? {
        setTimer(owner.id, event, payload, UInt64(max(milliseconds, 0)), 0)
    }

    /// `event` fires on `owner` every `milliseconds` (first after one
    /// period), until cancelled or its owner goes.
    @discardableResult
    @inlinable public func every<K>(_ milliseconds: Int, _ event: StaticString, on owner: Entity<K, G.Fields>,
                         payload: Line = Line()) -> game_id? {
        let period = UInt64(max(milliseconds, 1))
        return setTimer(owner.id, event, payload, period, period)
    }

    /// Cancels a timer (a stale id is ignored).
    @discardableResult
    @inlinable public func cancel(_ timer: game_id) -> Int32 { host.cancelTimer(timer) }

    @inlinable func setTimer(_ owner: game_id, _ event: StaticString, _ payload: Line, _ delay: UInt64, _ period: UInt64)
        -> game_id?
    {
        payload.withBytes { bytes in
            let set = host.setTimer(on: owner, event, payload: bytes, delay: delay, period: period)
            return set.status == GAME_OK ? set.timer : nil
        }
    }

    // MARK: Settings

    /// The operator's `--game-setting key=value` as a whole number in
    /// `range`, or `fallback`.
    @inlinable public func setting(_ key: StaticString, default fallback: Int, in range: ClosedRange<Int>) -> Int {
        Int(host.intSetting(key, default: Int64(fallback), in: Int64(range.lowerBound)...Int64(range.upperBound)))
    }

    /// Writes a line to the server's log.
    @inlinable public func log(_ message: StaticString, level: Int32 = GAME_LOG_INFO) { host.log(level, message) }
}

extension Arguments {
    @inlinable static func tokenize(_ bytes: UnsafeRawBufferPointer) -> Tokens { Tokens(bytes) }
}

/// What the SDK tracks during one call (on the caller's stack).
public struct CallState {
    /// The request has its reply.
    public var replied = false
    /// The request line, in `hotswap_handle`.
    public var request: Text?
    @inlinable init() {}
}
