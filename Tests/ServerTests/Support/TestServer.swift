import Foundation
import Testing

/// The folder holding the package's build products (the gameserver binary,
/// libGameLogic.so and the fixture modules): the test runner lives there.
enum Products {
    static let directory: URL = {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            .deletingLastPathComponent()
    }()

    static var server: URL { directory.appendingPathComponent("gameserver") }

    /// The package root (products live in <root>/.build/<triple>/debug).
    static var packageRoot: URL {
        directory.resolvingSymlinksInPath().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }

    /// GameLogicV2 built by `make test` with HOTSWAP_PROTOCOL_VARIANT defined.
    static var variantV2: URL {
        packageRoot.appendingPathComponent(".build-variant/debug/libGameLogicV2.so")
    }
    static func library(_ name: String) -> URL { directory.appendingPathComponent("lib\(name).so") }
}

/// A real `gameserver` process on a free port, with its log captured.
final class TestServer: @unchecked Sendable {
    let process = Process()
    private let errors = Pipe()
    private let lock = NSLock()
    private var logText = ""
    private(set) var port = 0
    private(set) var adminPort = 0
    /// The metrics port (`--metrics-port`); 0 when the server has none.
    private(set) var metricsPort = 0

    /// Where the server writes its bound ports (`--ready-file`).
    let readyFile = FileManager.default.temporaryDirectory
        .appendingPathComponent("hotswap-ready-\(UUID().uuidString).json")

    /// The server's own temporary database, unless the test named one
    /// with `--database` (removed with the server).
    private(set) var ownDatabase: URL?

    /// Starts the server and waits for its ready file, which names the bound
    /// ports. Each server gets a fresh temporary database unless
    /// `arguments` names one with `--database`. `shell`, if given, runs first in the same shell (for example
    /// `ulimit -n 80`). `keepReadingLog: false` stops reading stderr once the
    /// server is ready, as a supervisor that stops reading would: the pipe
    /// stays open and fills up (`log` then holds the start-up lines only).
    /// `launcher` runs the shell (and so the server) under another program,
    /// such as `unshare -m` for a private mount namespace; it must exec.
    /// `whileStarting` runs once the process is launched, before waiting
    /// for the ready file (a test that signals a server still starting).
    /// `calm` runs the default game's clock at `calmGame`'s pace for every
    /// setting `arguments` does not give (`false`: the game's own defaults);
    /// a server started with another `--module` gets no setting from it.
    /// Resume is off (`--resume-grace 0`) unless `arguments` gives the flag.
    /// `environment` is added to the test runner's environment, from which
    /// systemd's variables (`NOTIFY_SOCKET`, `WATCHDOG_*`) are removed: a
    /// suite run under systemd must not have every server notify it.
    init(arguments: [String] = [], calm: Bool = true, shell: String? = nil, launcher: [String] = [],
         keepReadingLog: Bool = true, environment: [String: String] = [:],
         whileStarting: ((Process) throws -> Void)? = nil) throws
    {
        var full = ["--port", "0", "--admin-port", "0", "--ready-file", readyFile.path] + arguments
        let module = arguments.firstIndex(of: "--module").flatMap { arguments.indices.contains($0 + 1) ? arguments[$0 + 1] : nil }
        if calm, module.map({ $0.hasSuffix("/libGameLogic.so") }) ?? true {
            let given = Set(zip(arguments, arguments.dropFirst()).filter { $0.0 == "--game-setting" }
                .map { String($0.1.prefix { $0 != "=" }) })
            for (key, value) in Self.calmGame.sorted(by: { $0.key < $1.key }) where !given.contains(key) {
                full += ["--game-setting", "\(key)=\(value)"]
            }
        }
        // Resume is off unless the test asks (`--resume-grace`): every test
        // written before it then checks that a server with it off behaves
        // as before (a drop ends the session, no token in WELCOME).
        if !arguments.contains("--resume-grace") { full += ["--resume-grace", "0"] }
        if !arguments.contains("--database") {
            let database = FileManager.default.temporaryDirectory
                .appendingPathComponent("hotswap-db-\(UUID().uuidString).sqlite")
            ownDatabase = database
            full += ["--database", database.path]
        }
        if let shell {
            let script = ["/bin/sh", "-c", "\(shell) && exec \"$0\" \"$@\"", Products.server.path] + full
            process.executableURL = URL(fileURLWithPath: launcher.first ?? script[0])
            process.arguments = Array((launcher.isEmpty ? Array(script.dropFirst()) : Array(launcher.dropFirst()) + script))
        } else {
            process.executableURL = Products.server
            process.arguments = full
        }
        var inherited = ProcessInfo.processInfo.environment
        for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] { inherited[name] = nil }
        process.environment = inherited.merging(environment) { $1 }
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        errors.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.logText += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        try whileStarting?(process)
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let data = FileManager.default.contents(atPath: readyFile.path),
                let ready = try? JSONDecoder().decode(ReadyFile.self, from: data)
            {
                port = ready.game.port
                adminPort = ready.admin.port
                metricsPort = ready.metrics?.port ?? 0
                if !keepReadingLog { errors.fileHandleForReading.readabilityHandler = nil }
                return
            }
            if !process.isRunning { break }
            Thread.sleep(forTimeInterval: 0.01)
        }
        process.terminate()
        throw TestFailure("server did not start; log:\n\(log)")
    }

    /// The default game's clock at a pace no test notices unless it asks
    /// for it: a round lasts an hour, a taken gem stays gone for an hour and
    /// a silent player keeps its room for a day. Otherwise a round could end
    /// (a new board) or a gem come back between two snapshots a test
    /// compares, or across the reload or upgrade it makes: what a test sees
    /// changes only by its own requests. Tests of the clock give their own
    /// `--game-setting`s, which win key by key.
    static let calmGame = ["round_seconds": "3600", "gem_respawn_ms": "3600000", "afk_seconds": "86400"]

    /// The `--ready-file` JSON.
    private struct ReadyFile: Decodable {
        struct Endpoint: Decodable {
            let host: String
            let port: Int
        }
        let pid: Int32
        let game: Endpoint
        let admin: Endpoint
        let metrics: Endpoint?
    }

    var log: String { lock.withLock { logText } }

    /// True once the log contains `text` (the log arrives asynchronously).
    func logContains(_ text: String, within seconds: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !log.contains(text) {
            if Date() > deadline { return false }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return true
    }

    func connect(receiveBuffer: Int32? = nil) throws -> LineClient {
        try LineClient(port: port, receiveBuffer: receiveBuffer)
    }

    func connectAdmin() throws -> LineClient { try LineClient(port: adminPort) }

    func connectMetrics(timeout: TimeInterval = 10) throws -> HTTPClient {
        try HTTPClient(port: metricsPort, timeout: timeout)
    }

    /// alice and bob, logged in and together in `room`, which alice made;
    /// alice has already seen the room's first `>ROUND` and bob's `>JOIN`,
    /// so both start with no pending events.
    func aliceAndBob(in room: String = "r") throws -> (alice: LineClient, bob: LineClient) {
        let alice = try connect()
        let bob = try connect()
        _ = try alice.call("LOGIN alice")
        _ = try bob.call("LOGIN bob")
        try alice.joinNewRoom(room)
        _ = try bob.call("JOIN \(room)")
        let joined = try alice.event()
        guard joined.hasPrefix(">JOIN bob ") else { throw TestFailure("alice heard '\(joined)' instead of bob's JOIN") }
        return (alice, bob)
    }

    /// Sends SIGTERM and waits for the exit status. A server that has not
    /// exited after `grace` seconds is killed, and the status says so.
    @discardableResult
    func stop(grace: TimeInterval = 10) -> Int32 {
        if process.isRunning { process.terminate() }
        return waitForExit(grace: grace)
    }

    /// Waits for the server to exit by itself; kills it after `grace`.
    func waitForExit(grace: TimeInterval = 10) -> Int32 {
        let deadline = Date().addingTimeInterval(grace)
        while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(at: readyFile)
        if let ownDatabase { removeDatabase(ownDatabase) }
    }
}

/// Runs one of the package's executables (gamectl, loadtest) to completion
/// and returns its exit status and everything it printed.
func runTool(_ name: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    try runProgram(Products.directory.appendingPathComponent(name).path, arguments)
}

/// Runs a program to completion; its exit status and combined output.
func runProgram(_ path: String, _ arguments: [String], timeout: Double = 60) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    return try runToCompletion(process, reading: output, timeout: timeout)
}

/// Runs `gameserver` to completion (for start-up failures) and returns its
/// exit status and log. A start that neither serves nor exits within
/// `timeout` seconds is killed and fails the test (a frozen start-up must
/// fail the suite, not hang it).
func runServerExpectingExit(_ arguments: [String], timeout: Double = 60) throws -> (status: Int32, log: String) {
    let process = Process()
    process.executableURL = Products.server
    process.arguments = ["--port", "0", "--admin-port", "0"] + arguments
        + (arguments.contains("--database") ? [] : ["--database", ":memory:"])
    let errors = Pipe()
    process.standardError = errors
    process.standardOutput = FileHandle.nullDevice
    let result = try runToCompletion(process, reading: errors, timeout: timeout)
    return (result.status, result.output)
}

/// Starts `process`, reads `pipe` to its end and waits for the exit; past
/// `timeout` seconds the process is killed (SIGKILL) and the call throws,
/// with what it had written so far.
func runToCompletion(_ process: Process, reading pipe: Pipe, timeout: Double) throws -> (status: Int32, output: String) {
    let started = Date()
    try process.run()
    let deadline = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
    DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: deadline)
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    deadline.cancel()
    let output = String(decoding: data, as: UTF8.self)
    if process.terminationReason == .uncaughtSignal, process.terminationStatus == SIGKILL,
        Date().timeIntervalSince(started) >= timeout
    {
        throw TestFailure("\(process.executableURL?.lastPathComponent ?? "process") did not exit within \(timeout) s; killed. Output:\n\(output)")
    }
    return (process.terminationStatus, output)
}

/// Removes an SQLite database and its WAL and shared-memory files.
func removeDatabase(_ url: URL) {
    for suffix in ["", "-wal", "-shm", ".last-exit"] {
        try? FileManager.default.removeItem(atPath: url.path + suffix)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reads a /proc file whole (they report a size of 0, so read to the end).
func procFile(_ path: String) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: path) else { throw TestFailure("cannot open \(path)") }
    defer { try? handle.close() }
    return String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
}

/// A copy of a product library beside the server (inside its modules
/// directory) with `padding` bytes appended: the same code with another
/// SHA-256, as a rebuild that changed nothing would be. A reload of it is a
/// real swap, where a reload of the serving file answers `+OK unchanged`.
func paddedCopy(of library: String, padding: Int = 1) throws -> URL {
    let copy = Products.directory.appendingPathComponent("padded-\(UUID().uuidString)-lib\(library).so")
    var bytes = try Data(contentsOf: Products.library(library))
    bytes.append(Data(repeating: 0, count: padding))
    try bytes.write(to: copy)
    return copy
}

/// The upper bound a test puts on something that must merely not hang (a
/// call interrupted after 200 ms, a deadline of a second, a shutdown): the
/// suite runs in parallel on 2 cores and again under AddressSanitizer,
/// where the expected second can take several, so the bound is generous;
/// only a hang, or a wait on the wrong (minutes-long) deadline, reaches it.
enum NotAHang {
    static let seconds: Double = 20
    static let duration: Duration = .seconds(20)
}

/// The staging gate (`HOTSWAP_TEST_STAGING_GATE`, a test knob of debug
/// builds): while its file exists a reload's staged migration does not
/// commit, so a test plays against a migration in progress for as long as
/// it needs instead of racing its slices. Pass `shell` to `TestServer`;
/// `open()` lets the commit happen.
final class StagingGate {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("staging-gate-\(UUID().uuidString)").path
        guard FileManager.default.createFile(atPath: path, contents: Data()) else {
            throw TestFailure("cannot create \(path)")
        }
    }

    var shell: String { "export HOTSWAP_TEST_STAGING_GATE='\(path)'" }

    func open() { try? FileManager.default.removeItem(atPath: path) }

    deinit { open() }
}
