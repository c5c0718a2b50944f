import Glibc

/// Descriptors kept free for the admin and metrics ports, the database and
/// module files when the open-file limit (RLIMIT_NOFILE) is what caps
/// connections.
///
/// Why: `--max-connections` (lowered to the limit minus 64 at start) counts
/// sessions, but a refused connection holds a descriptor too, until its
/// `-ERR SERVER_FULL` is written and its handle closed, a turn later. In a
/// connect flood libuv accepts everything in the backlog in one turn, so
/// the process reached its limit; then libuv's own last resort (it keeps a
/// spare descriptor, closes it on EMFILE, and accepts-and-closes what
/// waits on that port so the backlog does not spin) hit whichever port
/// was being accepted on: operators' STATUS connections were closed
/// unanswered (issue #20: 2 of 20 answered).
///
/// So the game listener stops accepting at `gameConnectionCap` game
/// descriptors (sessions and refusals still closing): the limit, less the
/// descriptors open when the loop starts (the loop's own, listeners, logs,
/// the database), less `--fd-reserve`. It stops the libuv way: its
/// connection callback does not call `uv_accept`, so libuv keeps the one
/// connection it took and stops polling the socket (no spinning, one
/// descriptor held); the next game connection to close resumes it
/// (`Listener.resumeAccepting`). Meanwhile new players wait in the kernel's
/// backlog, and the admin and metrics ports accept as usual.
enum DescriptorReserve {
    /// The soft open-file limit; nil when unknown or unlimited.
    static func fileLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
        return Int(min(limit.rlim_cur, rlim_t(Int.max)))
    }

    /// Descriptors this process has open (/proc/self/fd, less the one
    /// reading it); nil when it cannot be read.
    static func openDescriptors() -> Int? {
        directoryEntries("/proc/self/fd").map { max($0.count - 1, 0) }
    }

    /// Game connections allowed at once by the open-file limit: at least 1.
    static func gameConnectionCap(fileLimit: Int?, open: Int?, reserve: Int) -> Int {
        guard let fileLimit else { return Int.max }
        return max(fileLimit - (open ?? 64) - reserve, 1)
    }
}
