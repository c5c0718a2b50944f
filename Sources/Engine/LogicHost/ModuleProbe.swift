import FaultGuard
import GameABI
import Glibc

/// Loads a candidate module in a short-lived child process before the
/// server maps it, so a module that cannot even be loaded costs a refusal,
/// never the server.
///
/// Why a child: `dlopen` runs the image's ELF constructors, outside any
/// guard and on a worker thread. A constructor that writes through NULL,
/// calls `abort()` or `exit(0)`, or never returns would kill or wedge the
/// server and every player in it; the fault guard cannot help, since a
/// constructor is not a module call (nothing to jump back to, no module
/// identity yet). The child is this executable again (`gameserver
/// --probe-module PATH`: no other file to find or trust, and the same
/// dynamic linker and libraries), and it maps the candidate, calls
/// `hotswap_abi_version` and `hotswap_describe`, and says how far it got:
///
///     hotswap-probe: loading   (before dlopen)
///     hotswap-probe: abi       (dlopen returned: the constructors ran)
///     hotswap-probe: describe  (hotswap_abi_version returned)
///     hotswap-probe: ok        (hotswap_describe returned)
///     hotswap-probe: dlopen REASON
///
/// The last line it printed and how it ended (status, signal, or killed at
/// the timeout with its whole process group) become the refusal. Its
/// stderr goes into the same pipe, so a constructor's last words (glibc's
/// "double free detected", an assertion) are quoted too.
///
/// What it does not prove: a constructor that behaves in the child and
/// not in the server (it looks at its pid, its parent, the time) is
/// still mapped into the server. The probe catches the modules that fail
/// every time, which is what a broken build does.
///
/// The parent side blocks its thread (a libuv worker, or the start-up path
/// before the loop runs) for at most the timeout; never the loop.
enum ModuleProbe {
    /// The hidden argument that makes `gameserver` a probe.
    static let argument = "--probe-module"

    /// What the probe runs: this executable, by the path it was started
    /// from, resolved once. Not `/proc/self/exe` itself: under valgrind
    /// that is valgrind (which answers `readlink` for its client, not
    /// `execve`). When the file is gone (a deploy removed it), the running
    /// image through `/proc/self/exe`.
    private static let executable: String = {
        guard let path = ProcessImage.executablePath(), access(path, X_OK) == 0 else { return "/proc/self/exe" }
        return path
    }()
    private static let prefix = "hotswap-probe: "

    /// Why the probe refused a candidate, as the operator reads it.
    enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        case cannotSpawn(reason: String)
        case dlopenFailed(reason: String)
        case crashed(stage: Stage, signal: Int32, said: String?)
        case exited(stage: Stage, status: Int32, said: String?)
        case timedOut(stage: Stage, milliseconds: Int)

        /// How far the child got.
        enum Stage: Sendable, Equatable {
            case starting, constructors, abiVersion, describe
            var text: String {
                switch self {
                case .starting: "before loading it"
                case .constructors: "in its ELF constructors (dlopen)"
                case .abiVersion: "in hotswap_abi_version"
                case .describe: "in hotswap_describe"
                }
            }
        }

        var description: String {
            func quote(_ said: String?) -> String { said.map { "; it said: \($0)" } ?? "" }
            return switch self {
            case .cannotSpawn(let reason): "cannot start a probe process: \(reason)"
            case .dlopenFailed(let reason): reason
            case .crashed(let stage, let signal, let said):
                "it crashed (\(FaultRecord.signalName(signal))) \(stage.text) in a probe process\(quote(said))"
            case .exited(let stage, let status, let said):
                "it ended the probe process (exit status \(status)) \(stage.text)\(quote(said))"
            case .timedOut(let stage, let ms):
                "it did not finish loading within \(ms) ms (--probe-timeout) in a probe process, stuck \(stage.text); the probe was killed"
            }
        }
    }

    // MARK: - Parent

    /// Probes `path` in a child; nil when it loaded and described itself.
    /// `executable`: what to run (nil: this executable; an engine embedded
    /// in another program, such as a test runner, names a `gameserver`).
    static func check(path: String, timeoutMilliseconds: Int, executable: String? = nil) -> Refusal? {
        let executable = executable ?? ModuleProbe.executable
        var pipeEnds: [Int32] = [-1, -1]
        guard pipe(&pipeEnds) == 0 else { return .cannotSpawn(reason: "pipe: \(errnoText())") }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        // Close-on-exec, so no other child (an upgrade check) inherits them;
        // the child gets its end through the dup2 below, which clears it.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(readEnd) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)

        // Its own process group (so a timeout ends whatever it started),
        // every signal at its default and none blocked (a worker thread
        // blocks most; the child must die of a crash, not inherit that).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let words: [String] = ["gameserver-probe", argument, path]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = childEnvironment().map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(writeEnd)
        guard spawned == 0 else { return .cannotSpawn(reason: String(cString: strerror(spawned))) }

        var output: [UInt8] = []
        let deadline = monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        var ended = false
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            var info = siginfo_t()
            // WNOWAIT: the child stays a zombie, so its group id cannot be
            // reused before the group is killed below.
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid {
                ended = true
            }
            var poller = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let now = monotonicNanoseconds()
            if ended || now >= deadline {
                drain(readEnd, into: &output, buffer: &buffer)
                timedOut = !ended
                break
            }
            let wait = Int32(min((deadline - now) / 1_000_000 + 1, 20))
            if poll(&poller, 1, wait) > 0 { drain(readEnd, into: &output, buffer: &buffer) }
        }
        // Whatever it started goes with it; then reap.
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return verdict(output: output, status: status, timedOut: timedOut, timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Reads what is there without blocking (the read end is polled).
    private static func drain(_ fd: Int32, into output: inout [UInt8], buffer: inout [UInt8]) {
        var flags = fcntl(fd, F_GETFL)
        if flags & O_NONBLOCK == 0 { flags |= O_NONBLOCK; _ = fcntl(fd, F_SETFL, flags) }
        while output.count < 16384 {
            let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if got <= 0 { break }
            output += buffer[0..<got]
        }
    }

    /// The child's environment: ours, minus what would make it act as the
    /// server (systemd's notify socket: a READY=1 from it would be a lie)
    /// and with the Swift runtime's backtracer off (a crash in the child
    /// is the expected outcome; the backtracer would take seconds).
    private static func childEnvironment() -> [String] {
        var result: [String] = []
        var entry = environ
        while let text = entry.pointee {
            let line = String(cString: text)
            if !line.hasPrefix("NOTIFY_SOCKET=") && !line.hasPrefix("WATCHDOG_") && !line.hasPrefix("SWIFT_BACKTRACE=") {
                result.append(line)
            }
            entry += 1
        }
        result.append("SWIFT_BACKTRACE=enable=no")
        return result
    }

    static func verdict(output: [UInt8], status: Int32, timedOut: Bool, timeoutMilliseconds: Int) -> Refusal? {
        let lines = output.split(separator: 0x0A).map { String(decoding: $0.prefix(300), as: UTF8.self) }
        var stage = Refusal.Stage.starting
        var said: String?
        for line in lines {
            if line.hasPrefix(prefix) {
                let word = line.dropFirst(prefix.count)
                switch word {
                case "loading": stage = .constructors
                case "abi": stage = .abiVersion
                case "describe": stage = .describe
                case "ok" where !timedOut: return nil
                default:
                    if word.hasPrefix("dlopen ") { return .dlopenFailed(reason: String(word.dropFirst(7))) }
                }
            } else if !line.allSatisfy({ $0 == " " || $0 == "\t" }) {
                said = line.trimmingSpaces
            }
        }
        if timedOut { return .timedOut(stage: stage, milliseconds: timeoutMilliseconds) }
        // WIFSIGNALED / WEXITSTATUS, spelled out (Glibc's are macros).
        if status & 0x7F != 0 { return .crashed(stage: stage, signal: status & 0x7F, said: said) }
        return .exited(stage: stage, status: (status >> 8) & 0xFF, said: said)
    }

    // MARK: - Child

    /// The probe itself (`gameserver --probe-module PATH`): never returns.
    /// No guard is installed: a crash here is the answer.
    static func runAsChild(path: String) -> Never {
        say("loading")
        guard let image = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            say("dlopen " + (dlerror().map { String(cString: $0) } ?? "dlopen failed"))
            _exit(3)
        }
        say("abi")
        if let address = dlsym(image, "hotswap_abi_version") {
            _ = unsafeBitCast(address, to: hotswap_abi_version_fn.self)()
        }
        say("describe")
        if let address = dlsym(image, "hotswap_describe") {
            _ = SchemaCollector().collect(with: unsafeBitCast(address, to: hotswap_describe_fn.self))
        }
        say("ok")
        // _exit: the module's destructors are not part of loading it.
        _exit(0)
    }

    private static func say(_ word: String) {
        _ = (prefix + word + "\n").withCString { write(STDOUT_FILENO, $0, strlen($0)) }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

private extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" }.reversed())
    }
}
