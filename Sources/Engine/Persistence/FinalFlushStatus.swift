import Synchronization

/// Whether the exit's final flush failed, so that the process says so in
/// its exit status: a supervisor (systemd, a deploy script) that sees 0
/// takes the stop for a clean one, and a server whose last records were
/// lost (or whose file was gone, with everything it held) must not look
/// like one. `WriteBehind.flushAll` sets it, on the main thread once the
/// loop has stopped; `GameServerCommand.main` reads it after the engine
/// has returned and exits with `exitStatus`. An atomic, not a plain
/// static: tests run engines in one process, on several threads.
enum FinalFlushStatus {
    /// The exit status of a stop whose final flush failed. 1, apart from 2
    /// (a refused start) and the signals' 128+N.
    static let exitStatus: Int32 = 1

    private static let failure = Atomic<Bool>(false)

    static func failed() { failure.store(true, ordering: .relaxed) }

    static var hasFailed: Bool { failure.load(ordering: .relaxed) }
}
