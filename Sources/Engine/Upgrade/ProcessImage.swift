import Glibc
import UpgradeSupport

/// Replacing this process's program in place (`execve`): the pid stays, so
/// systemd, containers and supervisors keep seeing one long-lived process,
/// and so do the descriptors that are not close-on-exec.
enum ProcessImage {
    /// The signals that end or upgrade the server. They are blocked across
    /// the exec: one that arrives meanwhile stays pending, and the next
    /// engine takes it once its own handlers are in place (a signal's
    /// handler resets to the default at exec, which for these would kill
    /// the process with every player's connection).
    static let deferredSignals: [Int32] = [SIGTERM, SIGINT, SIGUSR2]

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

    /// Makes `fds` (and standard input, output and error) the only
    /// descriptors that survive the exec: every other one from 3 up gets
    /// close-on-exec in one call, then these lose it. Returns the reason if
    /// one of them could not be kept.
    static func keepAcrossExec(_ fds: [Int32]) -> String? {
        // Descriptors are opened with O_CLOEXEC throughout (libuv, the
        // loader, the logs); this also covers one inherited from a parent.
        _ = hs_cloexec_from(3)
        for fd in fds {
            let flags = fcntl(fd, F_GETFD)
            guard flags >= 0, fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0 else {
                return "descriptor \(fd): \(String(cString: strerror(errno)))"
            }
        }
        return nil
    }

    /// Puts close-on-exec back on `fds` (the exec failed; they are this
    /// engine's again).
    static func closeOnExec(_ fds: [Int32]) {
        for fd in fds {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
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
