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
/// `fstat` per socket (about 0.3 µs each: 3 ms at 10,000, in the restore).
struct HandedOverDescriptors {
    private let passed: Set<Int32>
    private var taken: Set<Int32> = []

    init(passed: [Int32]) {
        self.passed = Set(passed)
        taken.reserveCapacity(passed.count)
    }

    /// Takes `fd` for `what`: passed, not taken before, open.
    mutating func take(_ fd: Int32, _ what: String) throws(HandoffError) {
        guard passed.contains(fd) else { throw .invalid("\(what) names descriptor \(fd), which was not passed") }
        guard taken.insert(fd).inserted else { throw .invalid("\(what) names descriptor \(fd) a second time") }
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
