import Foundation

/// A throwaway PostgreSQL cluster for the tests: tools/pg-throwaway.sh (one
/// implementation for tests, benchmarks and humans) run by the test process.
///
/// `shared()` starts one cluster per test process on first use, however
/// many tests ask at once; each test then takes a database of its own with
/// `makeDatabase()`. The cluster lives in a fresh temporary directory on a
/// port the script finds free, so two test processes (two developers, or
/// a plain and an ASan run) never collide.
///
/// It is stopped when the test process ends: by an atexit handler on a
/// normal exit, and otherwise by the script itself, which watches its
/// parent (this process) and stops the cluster and removes its directory
/// once it is gone, whether it crashed or was killed with SIGKILL.
///
/// A test that needs PostgreSQL fails, with the script's reason, when it
/// cannot be started: `make deps` installs it, so CI always has it.
final class TestPostgres: @unchecked Sendable {
    /// The superuser's URL, `postgresql://postgres@127.0.0.1:PORT/postgres`.
    let adminURL: String
    /// The TCP port on 127.0.0.1.
    let port: Int
    /// The directory holding the cluster, its unix socket and its logs
    /// (`postgres.log`); removed when the cluster stops.
    let directory: String
    /// The process started for the cluster (by default the script itself).
    /// Immutable after init, hence `@unchecked Sendable`.
    let watchdog: Process

    /// The test process's cluster, started on first use (thread-safe: a
    /// static `let` is initialized exactly once). A failed start is kept
    /// too, so every test that asks fails with the same reason instead of
    /// each trying again.
    static func shared() throws -> TestPostgres { try sharedCluster.get() }

    private static let sharedCluster: Result<TestPostgres, any Error> = Result {
        let cluster = try TestPostgres.start()
        // Registered once, after a successful start: reading sharedCluster
        // at exit cannot start anything.
        atexit {
            if case .success(let cluster) = TestPostgres.sharedCluster { cluster.stop() }
        }
        return cluster
    }

    /// tools/pg-throwaway.sh in this package.
    static var script: URL { Products.packageRoot.appendingPathComponent("tools/pg-throwaway.sh") }

    /// Starts a cluster of the caller's own, which the caller stops with
    /// `stop()` (tests should use `shared()`; this is for tests of the
    /// cluster's own life). `shell` runs under `/bin/sh -c` with the
    /// script's path as `$0`; the default execs it, so `watchdog` is the
    /// script; `"\"$0\" & wait"` keeps the shell as the script's parent.
    static func start(shell: String = "exec \"$0\"") throws -> TestPostgres {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", shell, script.path]
        var environment = ProcessInfo.processInfo.environment
        environment["PG_THROWAWAY_UNBLOCKED"] = nil  // the script's own re-exec marker
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // The script prints the URL, then the directory, once it serves;
        // an end of output before that means it gave up (its reason is on
        // stderr). Its own steps are bounded (pg_ctl -w -t 60).
        let lines = readLines(2, from: output.fileHandleForReading)
        guard lines.count == 2, lines[0].hasPrefix("postgresql://"),
            let port = URLComponents(string: lines[0])?.port
        else {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            let reason = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            throw TestFailure("""
                PostgreSQL for the tests did not start (\(script.path) exited \(process.terminationStatus), \
                printed \(lines)): \(reason.trimmingCharacters(in: .whitespacesAndNewlines))
                """)
        }
        return TestPostgres(adminURL: lines[0], port: port, directory: lines[1], watchdog: process)
    }

    private init(adminURL: String, port: Int, directory: String, watchdog: Process) {
        self.adminURL = adminURL
        self.port = port
        self.directory = directory
        self.watchdog = watchdog
    }

    /// A fresh, empty database (a unique name, so tests in parallel and
    /// runs of other processes never share one); returns its URL,
    /// `postgresql://postgres@127.0.0.1:PORT/NAME`.
    func makeDatabase() throws -> String {
        let name = "test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try psql("CREATE DATABASE \(name)", database: adminURL)
        return "postgresql://postgres@127.0.0.1:\(port)/\(name)"
    }

    /// Runs `sql` with psql in `database` (a URL from `makeDatabase()`, or a
    /// database name in this cluster) and returns its output unaligned and
    /// tuples only (`-At`: one row a line, columns split by `|`), without
    /// the last newline. `sql` is sent as one request (`psql -c`): several
    /// statements run in one transaction and only the last one's rows are
    /// printed. An error throws with psql's message; past 60 s psql is
    /// killed and the call throws.
    @discardableResult
    func psql(_ sql: String, database: String) throws -> String {
        let process = Process()
        process.executableURL = Self.psqlBinary
        let target = database.hasPrefix("postgresql://") ? database
            : "postgresql://postgres@127.0.0.1:\(port)/\(database)"
        process.arguments = ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", target, "-c", sql]
        // Nothing from the caller's environment (PGOPTIONS, PGSSLMODE, ...)
        // may change what the URL says.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("PG") }
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        process.standardError = errors
        // stderr is read alongside, so a long error cannot fill its pipe
        // while stdout is being read.
        let errorText = LockedText()
        let drained = DispatchGroup()
        drained.enter()
        DispatchQueue.global().async {
            errorText.set(String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
            drained.leave()
        }
        let result = try runToCompletion(process, reading: output, timeout: 60)
        drained.wait()
        guard result.status == 0 else {
            throw TestFailure("psql in \(database) failed (\(result.status)) for \(sql): \(errorText.get())")
        }
        return result.output.hasSuffix("\n") ? String(result.output.dropLast()) : result.output
    }

    /// psql: Debian's /usr/bin/psql (pg_wrapper), else the one on PATH.
    private static let psqlBinary: URL = {
        let candidates = ["/usr/bin/psql"]
            + (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map { "\($0)/psql" }
        return URL(fileURLWithPath: candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/bin/psql")
    }()

    /// The postmaster's pid while the cluster runs (the first line of
    /// postmaster.pid), nil once it has stopped.
    var postmasterPID: pid_t? {
        guard let text = try? String(contentsOfFile: directory + "/data/postmaster.pid", encoding: .utf8) else { return nil }
        return text.split(separator: "\n").first.flatMap { pid_t($0) }
    }

    /// Stops the cluster and waits (up to 15 s) until the script has
    /// removed its directory, the last thing it does. Safe at exit: no
    /// Foundation run loop, only signals, access() and sleeps. If the
    /// script does not finish, it is killed and its guard process stops
    /// the cluster instead.
    func stop() {
        let pid = watchdog.processIdentifier
        kill(pid, SIGTERM)
        for _ in 0..<1500 where access(directory, F_OK) == 0 { usleep(10_000) }
        if access(directory, F_OK) == 0 { kill(pid, SIGKILL) }
    }
}

/// Reads up to `count` lines (without their newlines) from `handle`,
/// stopping early at the end of the stream.
private func readLines(_ count: Int, from handle: FileHandle) -> [String] {
    var buffer = Data()
    while buffer.filter({ $0 == UInt8(ascii: "\n") }).count < count {
        let chunk = handle.availableData
        if chunk.isEmpty { break }
        buffer.append(chunk)
    }
    return String(decoding: buffer, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .prefix(count).map(String.init).filter { !$0.isEmpty }
}

/// A string written by one thread and read by another.
private final class LockedText: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func set(_ value: String) { lock.withLock { text = value } }
    func get() -> String { lock.withLock { text } }
}
