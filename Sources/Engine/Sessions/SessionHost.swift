import Logging

/// What a player session needs of the engine, and nothing more: the rules
/// it enforces, where an admitted request goes, how its end is made, and
/// the counters it feeds. `Engine` is the one implementation; a session
/// never sees the rest of it (the console, the upgrader, the database).
protocol SessionHost: AnyObject {
    /// The loop's cached clock, in milliseconds.
    var now: UInt64 { get }
    var logger: Logger { get }
    /// The per-player limits, shared by every session.
    var sessionRules: SessionRules { get }
    /// Hands an admitted request line to the logic.
    func dispatch(_ line: UnsafeRawBufferPointer, from session: PlayerSession)
    /// Ends a session: torn down now, its connection closed after its output
    /// is written (`flush`) or at once.
    func endSession(_ session: PlayerSession, flush: Bool)
    /// The peer half-closed (`clean`) or the socket broke: the session
    /// goes away if it can be resumed, else it ends; the connection closes.
    func connectionDropped(_ session: PlayerSession, clean: Bool)
    /// The connection is closing, for any reason: a session still on it
    /// goes away if it can be resumed, else it is removed from the world.
    func connectionLost(_ session: PlayerSession)
    /// Counts something a session did to itself (STATUS, metrics).
    func count(_ event: SessionEvent)
}

/// What a session counts (`EngineCounters`).
enum SessionEvent {
    case rateLimited
    case rateLimitClose
    case lineTooLong
    case idleClose
}

/// The limits every player session enforces, read once from the command
/// line (`Limits` keeps them behind ArgumentParser's property wrappers,
/// too slow to read on every request). One instance, shared.
final class SessionRules {
    let maxLineLength: Int
    /// Seconds; 0: none.
    let loginTimeout: Int
    let idleTimeout: Int
    /// Requests per second, the bucket's size, and how many refusals in a
    /// row close the session.
    let rateLimit: Int
    let rateBurst: Int
    let rateStrikes: Int
    /// `--resume-grace` in milliseconds; 0: resume is off.
    let resumeGraceMilliseconds: UInt64
    /// Bytes told to other sessions that cost one more request (0: none).
    let rateFanOutBytes: Int

    init(_ limits: Limits) {
        maxLineLength = limits.maxLineLength
        loginTimeout = limits.loginTimeout
        idleTimeout = limits.idleTimeout
        rateLimit = limits.rateLimit
        rateBurst = limits.rateBurst
        rateStrikes = limits.rateStrikes
        resumeGraceMilliseconds = UInt64(limits.resumeGrace) * 1000
        rateFanOutBytes = limits.rateFanOutBytes
    }
}
