import Glibc
import UpgradeSupport

/// Replacing this process's program in place (`execve`): the pid stays, so
/// systemd, containers and supervisors keep seeing one long-lived process,
/// and so do the descriptors that are not close-on-exec.
enum ProcessImage {
    /// The signals the engine catches: those that end it (SIGTERM, SIGINT,
    /// SIGHUP), the one that upgrades it (SIGUSR2), and those it logs and
    /// otherwise ignores (`ignoredSignals`: their default would kill the
    /// process with every player's connection). Blocked first thing in
    /// `main` (every thread made later inherits the mask: a worker thread
    /// never takes one) and unblocked on the loop thread only once the
    /// engine's handlers are in place; blocked on it again across an
    /// upgrade's exec: one that arrives meanwhile stays pending, and the
    /// next engine takes it once its own handlers are in place (a signal's
    /// handler resets to the default at exec, which for these would kill
    /// the process with every player's connection). See engine_signals.h.
    static let deferredSignals: [Int32] = stopSignals + [SIGUSR2] + ignoredSignals

    /// A graceful stop: every player is told, the final flush is written,
    /// exit 0. SIGHUP is one (a closed terminal ends the server cleanly;
    /// there is no configuration file to reload: the logic is reloaded
    /// with `gamectl reload`, the engine replaced with SIGUSR2).
    static let stopSignals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    /// Logged and otherwise ignored. SIGXFSZ too: a write past the file
    /// size limit then fails with EFBIG, which the database's write reports
    /// (`db_errors=`, `last_db_error=`), instead of killing the process.
    static let ignoredSignals: [Int32] = [SIGUSR1, SIGALRM, SIGXFSZ, SIGVTALRM, SIGPROF]

    /// Runs `path` in place of this program. Returns only if that failed,
    /// with the reason.
    static func exec(path: String, arguments: [String], environment: [String]) -> String {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        _ = execve(path, argv, envp)
        return "execve \(path): \(String(cString: strerror(errno)))"
    }

    /// Makes `fds`, the descriptors the process inherited (`inherited`)
    /// and standard input, output and error the only ones that survive the
    /// exec: every other one from 3 up gets close-on-exec in one call, then
    /// these lose it. Returns the reason if one of `fds` could not be kept.
    ///
    /// Why the inherited ones: whoever started the process may watch a
    /// descriptor it handed over (a test runner's Foundation `Process`
    /// takes the close of one as the child's exit and then waits for it;
    /// a supervisor's socket): they survived the first exec and must
    /// survive this one, as they were.
    static func keepAcrossExec(_ fds: [Int32], inherited: [Int32]) -> String? {
        // The engine opens everything with O_CLOEXEC (libuv, the loader, the
        // logs); this also covers a descriptor a library opened without it.
        // close_range(CLOSE_RANGE_CLOEXEC) is Linux 5.11: before that, one
        // fcntl per open descriptor. Neither working refuses the upgrade: a
        // descriptor the next engine does not know of would stay open in it
        // for good (a database file's, a client socket's).
        let status = hs_cloexec_from(3)
        if status != 0, let problem = markCloseOnExec(from: 3) {
            return "cannot mark descriptors close-on-exec (close_range: \(String(cString: strerror(-status))); \(problem))"
        }
        // One they closed since is simply gone.
        for fd in inherited { _ = fcntl(fd, F_SETFD, 0) }
        return clearCloseOnExec(fds)
    }

    /// Sets close-on-exec on every open descriptor from `first` up, one
    /// `fcntl` each, listed from /proc/self/fd (where close_range cannot).
    /// The reason when the list cannot be read or a descriptor refuses.
    static func markCloseOnExec(from first: Int32) -> String? {
        guard let directory = opendir("/proc/self/fd") else {
            return "cannot list /proc/self/fd: \(String(cString: strerror(errno)))"
        }
        defer { closedir(directory) }
        let own = dirfd(directory)
        while let entry = readdir(directory) {
            let name = direntName(entry)
            guard let fd = Int32(name), fd >= first, fd != own else { continue }
            // EBADF: closed since it was listed (another thread's).
            if fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 && errno != EBADF {
                return "descriptor \(fd): \(String(cString: strerror(errno)))"
            }
        }
        return nil
    }

    /// Clears close-on-exec on `fds` (FD_CLOEXEC is the only descriptor
    /// flag: one call each, no read first; an upgrade makes 10,000 of them).
    static func clearCloseOnExec(_ fds: [Int32]) -> String? {
        for fd in fds where fcntl(fd, F_SETFD, 0) != 0 {
            return "descriptor \(fd): \(String(cString: strerror(errno)))"
        }
        return nil
    }

    /// The descriptors from 3 up that are open without close-on-exec: at
    /// start, those are what the process inherited (see `keepAcrossExec`).
    static func descriptorsKeptAcrossExec() -> [Int32] {
        guard let directory = opendir("/proc/self/fd") else { return [] }
        defer { closedir(directory) }
        var found: [Int32] = []
        while let entry = readdir(directory) {
            let name = direntName(entry)
            guard let fd = Int32(name), fd >= 3 else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { found.append(fd) }
        }
        return found.sorted()
    }

    /// Puts close-on-exec back on `fds` (the exec failed; they are this
    /// engine's again).
    static func closeOnExec(_ fds: [Int32]) {
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    }

    /// Blocks `deferredSignals`; returns the mask to restore.
    static func blockDeferredSignals() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in deferredSignals { sigaddset(&set, signal) }
        var old = sigset_t()
        pthread_sigmask(SIG_BLOCK, &set, &old)
        return old
    }

    static func restoreSignalMask(_ mask: sigset_t) {
        var mask = mask
        pthread_sigmask(SIG_SETMASK, &mask, nil)
    }

    /// This process's environment, `NAME=value` each.
    static func environment() -> [String] {
        var entries: [String] = []
        guard let environ = hs_environ() else { return entries }
        var index = 0
        while let entry = environ[index] {
            entries.append(String(cString: entry))
            index += 1
        }
        return entries
    }

    /// The real path of the running executable.
    static func executablePath() -> String? {
        guard let real = realpath("/proc/self/exe", nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }
}
