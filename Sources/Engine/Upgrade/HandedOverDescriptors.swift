import Glibc

/// The descriptors a handoff's sections name, checked as the resumed
/// engine takes each one: it must be one the previous engine listed as
/// passed (the fallback block's `passedFDs`: the only ones it kept open
/// across the exec), taken once, and a socket where a socket is expected.
///
/// Why: a section that names a descriptor the old engine did not pass (a
/// bug, or a handoff of another build that got past the format check)
/// would have the new engine adopt whatever happens to be open under that
/// number, its own SQLite file or log pipe, as a player's connection. One
/// `fstat` per socket: 0.25 µs each on the 2-core machine of
/// docs/BENCHMARKS.md, 2.5 ms at 10,000 sessions, inside the hold (a loop
/// of fstat over 10,000 socketpair ends, measured alone).
struct HandedOverDescriptors {
    /// Per descriptor number: 0 not passed, 1 passed, 2 taken. An array,
    /// not a set: 10,000 lookups and inserts into a hashed set cost the
    /// hold about as much as the fstat calls.
    private var state: [UInt8]

    init(passed: [Int32]) {
        state = [UInt8](repeating: 0, count: Int(passed.max() ?? -1) + 1)
        for fd in passed where fd >= 0 { state[Int(fd)] = 1 }
    }

    /// Takes `fd` for `what`: passed, not taken before, open.
    mutating func take(_ fd: Int32, _ what: String) throws(HandoffError) {
        guard fd >= 0, Int(fd) < state.count, state[Int(fd)] != 0 else {
            throw .invalid("\(what) names descriptor \(fd), which was not passed")
        }
        guard state[Int(fd)] == 1 else { throw .invalid("\(what) names descriptor \(fd) a second time") }
        state[Int(fd)] = 2
    }

    /// Takes `fd` for `what`, which must be a socket.
    mutating func takeSocket(_ fd: Int32, _ what: String) throws(HandoffError) {
        try take(fd, what)
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw .invalid("\(what) descriptor \(fd): \(String(cString: strerror(errno)))")
        }
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw .invalid("\(what) descriptor \(fd) is not a socket") }
    }
}
