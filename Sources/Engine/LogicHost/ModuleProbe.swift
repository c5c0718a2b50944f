import FaultGuard
import GameABI
import Glibc
import UpgradeSupport

/// Loads a candidate module in a short-lived child process before the
/// server maps it, so a module that cannot even be loaded costs a refusal,
/// never the server.
///
/// Why a child: `dlopen` runs the image's ELF constructors, outside any
/// guard and on a worker thread. A constructor that writes through NULL,
/// calls `abort()` or `exit(0)`, or never returns would kill or wedge the
/// server and every player in it; the fault guard cannot help, since a
/// constructor is not a module call (nothing to jump back to, no module
/// identity yet). The child is the running engine image again
/// (`gameserver --probe-module PATH`, run through a descriptor opened on
/// it at start: a build installed over the file meanwhile is not what
/// probes), and it maps the candidate, calls `hotswap_abi_version` and
/// `hotswap_describe`, and says how far it got on descriptor 3, a pipe of
/// its own:
///
///     loading    before dlopen
///     abi        dlopen returned: the constructors ran
///     describe   hotswap_abi_version returned
///     ok         hotswap_describe returned
///     dlopen REASON
///
/// The last stage it reached and how it ended (status, signal, or killed
/// at the timeout with its whole process group) become the refusal; only
/// `ok` and exit status 0 together pass. Its stdout and stderr go to a
/// second pipe, read to the end and kept in part, so a constructor's last
/// words (glibc's "double free detected", an assertion) are quoted, and a
/// module that prints a lot neither blocks it nor fakes a stage.
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
    /// The child's descriptor for its stages.
    private static let stageDescriptor: Int32 = 3

    /// What the probe runs: the running image, through a descriptor opened
    /// once on `/proc/self/exe` (the first load opens it, at start-up).
    /// `/proc/self/fd/N` then names that image even after a deploy
    /// replaced or removed the file. Under valgrind, opening
    /// `/proc/self/exe` gives the client program, not valgrind.
    private static let executable: String = {
        let fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC)
        return fd >= 0 ? "/proc/self/fd/\(fd)" : "/proc/self/exe"
    }()

    /// Why the probe refused a candidate, as the operator reads it.
    enum Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        /// The probe itself could not run (no process, no pipe): not the
        /// module's fault, and worth retrying.
        case cannotSpawn(reason: String)
        /// The probe process ended before it reached the module (a broken
        /// engine install, a library missing for it): not the module's
        /// fault either.
        case probeFailed(status: Int32, signal: Int32, said: String?)
        case dlopenFailed(reason: String)
        case crashed(stage: Stage, signal: Int32, said: String?)
        case exited(stage: Stage, status: Int32, said: String?)
        case timedOut(stage: Stage, milliseconds: Int)

        /// How far the child got.
        enum Stage: Sendable, Equatable {
            case constructors, abiVersion, describe, described
            var text: String {
                switch self {
                case .constructors: "in its ELF constructors (dlopen)"
                case .abiVersion: "in hotswap_abi_version"
                case .describe: "in hotswap_describe"
                case .described: "after hotswap_describe returned"
                }
            }
        }

        /// A refusal that says nothing about the module: the watcher tries
        /// again.
        var isTransient: Bool {
            switch self {
            case .cannotSpawn, .probeFailed: true
            default: false
            }
        }

        var description: String {
            func quote(_ said: String?) -> String { said.map { "; it said: \($0)" } ?? "" }
            return switch self {
            case .cannotSpawn(let reason): "cannot start a probe process: \(reason)"
            case .probeFailed(let status, let signal, let said):
                "the probe process ended before loading it ("
                    + (signal != 0 ? FaultRecord.signalName(signal) : "exit status \(status)")
                    + "): the engine's own install is broken, not the module\(quote(said))"
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
    /// `executable`: what to run (nil: the running engine; an engine
    /// embedded in another program, such as a test runner, names a
    /// `gameserver`).
    static func check(path: String, timeoutMilliseconds: Int, executable: String? = nil) -> Refusal? {
        let executable = executable ?? ModuleProbe.executable
        var stages: [Int32] = [-1, -1]
        var output: [Int32] = [-1, -1]
        guard hs_pipe_cloexec(&stages) == 0 else { return .cannotSpawn(reason: "pipe2: \(errnoText())") }
        guard hs_pipe_cloexec(&output) == 0 else {
            close(stages[0]); close(stages[1])
            return .cannotSpawn(reason: "pipe2: \(errnoText())")
        }
        defer { close(stages[0]); close(output[0]) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, output[1], 2)
        posix_spawn_file_actions_adddup2(&actions, stages[1], stageDescriptor)

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

        let words: [String] = ["gameserver-probe", argument, path, "--probe-parent", "\(getpid())"]
        let argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = childEnvironment().map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        close(stages[1])
        close(output[1])
        guard spawned == 0 else { return .cannotSpawn(reason: String(cString: strerror(spawned))) }

        var stageBytes = Capped(limit: 4096)
        var said = Capped(limit: 16384)
        let deadline = monotonicNanoseconds() + UInt64(timeoutMilliseconds) * 1_000_000
        var ended = false
        while true {
            var info = siginfo_t()
            // WNOWAIT: the child stays a zombie, so its group id cannot be
            // reused before the group is killed below.
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid {
                ended = true
            }
            let now = monotonicNanoseconds()
            if ended || now >= deadline {
                stageBytes.drain(stages[0])
                said.drain(output[0])
                break
            }
            var pollers = [pollfd(fd: stages[0], events: Int16(POLLIN), revents: 0),
                           pollfd(fd: output[0], events: Int16(POLLIN), revents: 0)]
            let wait = Int32(min((deadline - now) / 1_000_000 + 1, 20))
            if poll(&pollers, 2, wait) > 0 {
                stageBytes.drain(stages[0])
                said.drain(output[0])
            }
        }
        // Whatever it started goes with it; then reap.
        kill(-pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return verdict(stages: stageBytes.bytes, output: said.bytes, status: status, timedOut: !ended,
                       timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Bytes read from a pipe, of which the first `limit` are kept: the
    /// rest is read and dropped, so the child never blocks on a full pipe
    /// and the parent never spins on one it no longer reads.
    private struct Capped {
        let limit: Int
        private(set) var bytes: [UInt8] = []
        private var buffer = [UInt8](repeating: 0, count: 4096)

        init(limit: Int) { self.limit = limit }

        mutating func drain(_ fd: Int32) {
            let flags = fcntl(fd, F_GETFL)
            if flags & O_NONBLOCK == 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
            while true {
                let got = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { return }
                bytes += buffer[0..<min(got, max(limit - bytes.count, 0))]
            }
        }
    }

    /// The child's environment: ours, with the Swift runtime's backtracer
    /// off (a crash in the child is the expected outcome; the backtracer
    /// would take seconds). systemd's variables are already gone
    /// (`SystemdNotifier.detachEnvironment`).
    ///
    /// An AddressSanitizer build (the test suite's second run) would turn
    /// the child's crash into its own report and exit status 1: its fault
    /// handlers are switched off in the child, so the child dies of the
    /// signal, as a release build's does. Other builds ignore the variable.
    private static func childEnvironment() -> [String] {
        let inherited = ProcessImage.environment()
        let sanitizer = inherited.first { $0.hasPrefix("ASAN_OPTIONS=") }.map { String($0.dropFirst(13)) + ":" } ?? ""
        return inherited.filter { !$0.hasPrefix("SWIFT_BACKTRACE=") && !$0.hasPrefix("ASAN_OPTIONS=") }
            + ["SWIFT_BACKTRACE=enable=no",
               "ASAN_OPTIONS=\(sanitizer)handle_segv=0:handle_sigbus=0:handle_sigill=0:handle_sigfpe=0:handle_abort=0"]
    }

    static func verdict(stages: [UInt8], output: [UInt8], status: Int32, timedOut: Bool,
                        timeoutMilliseconds: Int) -> Refusal?
    {
        let reached = stages.split(separator: 0x0A).map { String(decoding: $0.prefix(600), as: UTF8.self) }
        // What it printed last (its stdout and stderr), on one line.
        let said = output.split(separator: 0x0A).map { String(decoding: $0.prefix(300), as: UTF8.self) }
            .last { !$0.allSatisfy { $0 == " " || $0 == "\t" || $0 == "\r" } }
            .map(AdminConsole.oneLine)
        var stage: Refusal.Stage?
        for line in reached {
            switch line {
            case "loading": stage = .constructors
            case "abi": stage = .abiVersion
            case "describe": stage = .describe
            case "ok": stage = .described
            default:
                if line.hasPrefix("dlopen ") { return .dlopenFailed(reason: String(line.dropFirst(7))) }
            }
        }
        // WIFSIGNALED / WEXITSTATUS, spelled out (Glibc's are macros).
        let signal = status & 0x7F
        let exitStatus = (status >> 8) & 0xFF
        if stage == .described, !timedOut, signal == 0, exitStatus == 0 { return nil }
        guard let stage else {
            return timedOut ? .cannotSpawn(reason: "the probe process did not start within \(timeoutMilliseconds) ms")
                : .probeFailed(status: exitStatus, signal: signal, said: said)
        }
        if timedOut { return .timedOut(stage: stage, milliseconds: timeoutMilliseconds) }
        if signal != 0 { return .crashed(stage: stage, signal: signal, said: said) }
        return .exited(stage: stage, status: exitStatus, said: said)
    }

    // MARK: - Child

    /// The probe itself (`gameserver --probe-module PATH --probe-parent PID`): never
    /// returns. No guard is installed: a crash here is the answer. It ends
    /// with the server (PR_SET_PDEATHSIG), so a probe stuck in a
    /// constructor does not outlive a server that was killed meanwhile.
    static func runAsChild(path: String, parent: Int32?) -> Never {
        if let parent, hs_die_with_parent(parent) != 0 { _exit(125) }
        say("loading")
        guard let image = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            say("dlopen " + AdminConsole.oneLine(dlerror().map { String(cString: $0) } ?? "dlopen failed"))
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
        _ = (word + "\n").withCString { write(stageDescriptor, $0, strlen($0)) }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}
