import Dispatch
import Glibc
import UVKit

/// The descriptors a handoff's sections name, checked as the resumed
/// engine takes each one: it must be one the previous engine listed as
/// passed (the fallback block's `passedFDs`: the only ones it kept open
/// across the exec), and taken once. Those left once the engine's own
/// (the memfd, the previous build, module copies, the database lock, the
/// old loop) are taken are the sockets: `SocketCheck` makes sure they are.
///
/// Why: a section that names a descriptor the old engine did not pass (a
/// bug, or a handoff of another build that got past the format check)
/// would have the new engine adopt whatever happens to be open under that
/// number, its own SQLite file or log pipe, as a player's connection.
struct HandedOverDescriptors {
    /// Per descriptor number: 0 not passed, 1 passed, 2 taken. An array,
    /// not a set: 10,000 lookups and inserts into a hashed set would cost
    /// the hold about a millisecond.
    private var state: [UInt8]

    init(passed: [Int32]) {
        state = [UInt8](repeating: 0, count: Int(passed.max() ?? -1) + 1)
        for fd in passed where fd >= 0 { state[Int(fd)] = 1 }
    }

    /// Takes `fd` for `what`: passed, not taken before.
    mutating func take(_ fd: Int32, _ what: String) throws(HandoffError) {
        guard fd >= 0, Int(fd) < state.count, state[Int(fd)] != 0 else {
            throw .invalid("\(what) names descriptor \(fd), which was not passed")
        }
        guard state[Int(fd)] == 1 else { throw .invalid("\(what) names descriptor \(fd) a second time") }
        state[Int(fd)] = 2
    }

    /// The descriptors passed and not taken, in order.
    var untaken: [Int32] {
        state.indices.filter { state[$0] == 1 }.map { Int32($0) }
    }
}

/// Checks that every descriptor of `fds` is a stream socket, on a thread of
/// its own, while the resumed engine goes on restoring; the engine waits
/// for the verdict before it commits (nothing is read from or written to a
/// socket before that, so one that is not a socket costs nothing but the
/// refusal).
///
/// Why a thread: one `getsockopt` (or `fstat`) per socket, on sockets the
/// new program has not touched yet, took 5.5–6.5 ms at 10,000 sessions,
/// inside the hold (docs/BENCHMARKS.md, "Engine upgrade"); overlapped with
/// the rest of the restore (World, modules, the database, taking the
/// sockets over), it costs the hold nearly nothing when a core is free.
final class SocketCheck: @unchecked Sendable {
    let fds: [Int32]
    /// Written by the checking thread, read after joining it.
    private var problem: String?
    private var thread = pthread_t()
    private var running = false

    /// The fault-injection knob (EngineIdentity): a real SIGSEGV on the
    /// thread, once `restoring` lets it (the engine is restoring then, its
    /// private module directory known to the restore guard).
    private let fault: Bool
    private let faultGate = DispatchSemaphore(value: 0)

    init(fds: [Int32], fault: Bool = false) {
        self.fds = fds
        self.fault = fault
        guard !fds.isEmpty else { return }
        // No signal for it: SIGALRM (the restore guard's timer) and the
        // stop signals belong to the engine's threads. But not the
        // synchronous faults: blocked, a fault on this thread kills the
        // process outright (Linux resets the handler to the default), with
        // every player's connection; unblocked, the restore guard's handler
        // takes it here and hands everything back, as on any other thread.
        var mask = sigset_t()
        sigfillset(&mask)
        for signal in SocketCheck.synchronousFaults { sigdelset(&mask, signal) }
        var previous = sigset_t()
        pthread_sigmask(SIG_BLOCK, &mask, &previous)
        let started = pthread_create(&thread, nil, { context in
            UVContext.release(context!, as: SocketCheck.self).check()
            return nil
        }, UVContext.retainedPointer(to: self))
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        if started == 0 {
            running = true
        } else {
            _ = UVContext.release(UVContext.pointer(to: self), as: SocketCheck.self)
            check()  // no thread: here, then
        }
    }

    /// Raised by the thread's own instruction, never sent: never blocked.
    static let synchronousFaults: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT, SIGSYS]

    private func check() {
        if fault {
            faultGate.wait()
            UnsafeMutablePointer<Int>(bitPattern: 16)!.pointee = 1
        }
        for fd in fds {
            var type: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
                problem = errno == ENOTSOCK ? "descriptor \(fd) is not a socket"
                    : "descriptor \(fd): \(String(cString: strerror(errno)))"
                return
            }
            guard type == Int32(SOCK_STREAM.rawValue) else {
                problem = "descriptor \(fd) is not a stream socket"
                return
            }
        }
    }

    /// The restore has begun (for the fault-injection knob only).
    func restoring() {
        if fault { faultGate.signal() }
    }

    /// Waits for the check; the first descriptor that is not a stream
    /// socket, or nil.
    func wait() -> String? {
        if running {
            pthread_join(thread, nil)
            running = false
        }
        return problem
    }
}
