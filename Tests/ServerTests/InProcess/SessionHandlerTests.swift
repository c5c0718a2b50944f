import CLibUV
import Foundation
import Logging
import Testing
@testable import HotswapEngine

/// The session handlers in process: a real Engine with the real default game,
/// its transport fed through one end of a socketpair and its loop pumped by
/// the test, without ports, threads or timing. In the spirit of swift-nio's
/// `EmbeddedChannel`.
final class EmbeddedEngine {
    let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
    let loader: ModuleLoader
    let engine: Engine

    init(_ arguments: [String] = [], token: String? = nil) throws {
        uv_loop_init(loop)
        loader = try ModuleLoader(limits: ModuleLoadLimits(probeExecutable: Products.server.path))
        let module = try loader.load(path: Products.library("GameLogic").path)
        let settings = AdminSettings(token: token.map { Array($0.utf8) }, modulesDirectory: Products.directory.path,
                                     defaultModulePath: Products.library("GameLogic").path)
        // No waiting at the end: the test's own deinit shuts it down.
        // Resume off unless asked for, as in TestServer.
        let resume = arguments.contains("--resume-grace") ? [] : ["--resume-grace", "0"]
        let limits = try Limits.parse(["--shutdown-grace-ms", "0", "--linger-ms", "0"] + resume + arguments)
        engine = try Engine(loop: loop, limits: limits, maxConnections: limits.maxConnections, admin: settings,
                            logger: Logger(label: "embedded"), loader: loader, module: module)
    }

    /// A client end whose server end the engine adopted as `role`.
    func connect(_ role: ListenerRole = .game) throws -> EmbeddedClient {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, streamSocketType, 0, &fds) == 0 else { throw TestFailure("socketpair") }
        try engine.transport.adopt(fds[0], as: role)
        return EmbeddedClient(fd: fds[1], owner: self)
    }

    /// Runs the loop without blocking until `done` holds (bounded).
    func pump(until done: () -> Bool) {
        for _ in 0..<10_000 where !done() { uv_run(loop, UV_RUN_NOWAIT) }
    }

    deinit {
        engine.shutdown()
        pump { false }
        loader.removePrivateCopies()
    }
}

/// The test's end of a socketpair: lines in, lines out.
final class EmbeddedClient {
    let fd: Int32
    unowned let owner: EmbeddedEngine
    private var buffer: [UInt8] = []

    init(fd: Int32, owner: EmbeddedEngine) {
        self.fd = fd
        self.owner = owner
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(fd) }

    func send(_ text: String) { _ = Array(text.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }

    /// The next line, pumping the engine's loop until it arrives; nil when
    /// the engine closed its end.
    func line() -> String? {
        var closed = false
        owner.pump {
            if buffer.contains(0x0A) || closed { return true }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { buffer += chunk[..<n] } else if n == 0 { closed = true }
            return buffer.contains(0x0A)
        }
        guard let end = buffer.firstIndex(of: 0x0A) else { return nil }
        var line = Array(buffer[..<end])
        buffer.removeSubrange(...end)
        if line.last == 0x0D { line.removeLast() }
        return String(decoding: line, as: UTF8.self)
    }

    func call(_ text: String) -> String? {
        send(text + "\r\n")
        return line()
    }
}

@Suite struct SessionHandlerTests {
    @Test func aPlayerSessionFramesSplitLinesAndAnswersInOrder() throws {
        let embedded = try EmbeddedEngine()
        let client = try embedded.connect()
        client.send("PI")
        client.send("NG\r\nLOGIN al")
        client.send("ice\r\nPING\r\n")
        #expect(client.line() == "+PONG")
        #expect(client.line() == "+WELCOME alice login 1 score 0")
        #expect(client.line() == "+PONG")
    }

    @Test func aLineOverTheLimitIsRefusedAndTheSessionEnds() throws {
        let embedded = try EmbeddedEngine(["--max-line-length", "32"])
        let client = try embedded.connect()
        #expect(client.call("LOGIN alice") == "+WELCOME alice login 1 score 0")
        client.send(String(repeating: "x", count: 64) + "\r\n")
        #expect(client.line()?.hasPrefix("-ERR LINE_TOO_LONG") == true)
        #expect(client.line() == nil)
        #expect(embedded.engine.world.sessionCount == 0)
        #expect(embedded.engine.counters.lineTooLong == 1)
    }

    @Test func floodsAreRefusedThenClosedAtTheStrikeLimit() throws {
        let embedded = try EmbeddedEngine(["--rate-limit", "1", "--rate-burst", "2", "--rate-strikes", "3"])
        let client = try embedded.connect()
        client.send(String(repeating: "PING\r\n", count: 6))
        #expect(client.line() == "+PONG")
        #expect(client.line() == "+PONG")
        #expect(client.line()?.hasPrefix("-ERR RATE_LIMITED too many requests, slow down") == true)
        #expect(client.line()?.hasPrefix("-ERR RATE_LIMITED too many requests, slow down") == true)
        #expect(client.line()?.hasPrefix("-ERR RATE_LIMITED too many requests; closing") == true)
        #expect(client.line() == nil)
        #expect(embedded.engine.counters.rateLimitCloses == 1)
    }

    @Test func anAdminSessionNeedsTheTokenAndKeepsRepliesInOrder() throws {
        let embedded = try EmbeddedEngine(token: "correct-horse-battery-staple")
        let admin = try embedded.connect(.admin)
        #expect(admin.call("STATUS")?.hasPrefix("-ERR AUTH_REQUIRED") == true)
        #expect(admin.call("PING") == "+PONG")
        #expect(admin.call("AUTH wrong") == "-ERR AUTH_FAILED wrong token")
        #expect(admin.call("AUTH correct-horse-battery-staple") == "+OK authenticated")
        admin.send("MODULES\r\nSTATUS\r\n")
        #expect(admin.line()?.hasPrefix("+MODULES gems@1.2.0:") == true)
        #expect(admin.line()?.hasPrefix("+STATUS module=gems") == true)
    }
}
