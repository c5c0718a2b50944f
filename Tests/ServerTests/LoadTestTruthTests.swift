import Foundation
import Testing

/// The load tool must report the latency the server has. A truth check, not
/// a speed target: at a low open-loop rate the server is idle most of the
/// time, so the tool's median must agree with a plain blocking client's
/// measured at the same time, within a factor generous enough for a debug
/// or ASan build on two busy cores.
///
/// The old tool failed it: its clients all came due at the same instants
/// (256 requests at once each second here, each heard by 15 room members),
/// so its median was the time to work through a burst, and its millisecond
/// timer added 1.7 ms more (docs/BENCHMARKS.md, "The load tool's latency").
@Suite struct LoadTestTruthTests {
    @Test func openLoopMedianAgreesWithADirectClient() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0"])
        // The direct client plays alone in its own room: no fan-out to wait for.
        let direct = try server.connect()
        _ = try direct.call("LOGIN direct")
        // +JOINED directroom at x y players 1: step east and back, or west
        // and back from the east edge.
        let joined = try direct.call("JOIN directroom").split(separator: " ")
        let x = try #require(joined.count > 3 ? Int(joined[3]) : nil, "\(joined)")
        let steps = x < 7 ? ["MOVE E", "MOVE W"] : ["MOVE W", "MOVE E"]

        let json = FileManager.default.temporaryDirectory.appendingPathComponent("lt-truth-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: json) }
        let tool = ToolRun("loadtest", ["play", "--port", "\(server.port)", "--clients", "256", "--members", "16",
                                        "--rate", "256", "--duration", "4", "--json", json.path])
        // Measure while the tool is in its measured phase: from its first
        // progress line (t=1s) to its end.
        #expect(tool.waitForOutput("t=1s", within: 60), "\(tool.output)")
        var directMicros: [Double] = []
        var step = 0
        while tool.isRunning {
            let started = DispatchTime.now().uptimeNanoseconds
            let reply = try direct.call(steps[step % 2])
            directMicros.append(Double(DispatchTime.now().uptimeNanoseconds - started) / 1000)
            #expect(reply.hasPrefix("+MOVED") || reply.hasPrefix("+GEM"), "\(reply)")  // a gem, sometimes
            step += 1
            Thread.sleep(forTimeInterval: 0.005)
        }
        let status = tool.wait()
        #expect(status == 0, "\(tool.output)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let latency = try #require(report["latency_us"] as? [String: Int])
        let toolMedian = Double(try #require(latency["p50"]))
        #expect(report["errors"] as? Int == 0)
        #expect(report["replies"] as? Int == report["requests"] as? Int)

        try #require(directMicros.count >= 50, "only \(directMicros.count) direct samples")
        let directMedian = directMicros.sorted()[directMicros.count / 2]
        #expect(toolMedian <= 5 * directMedian + 2000,
                "tool median \(toolMedian) us, direct median \(directMedian) us over \(directMicros.count) requests")
    }

    @Test func playRoomsAreShapedByMembersAndRefusalsAreToldByCode() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0", "--max-room-members", "4"])
        // Eight players in rooms of four fit, and every MOVE stays on the board.
        let fits = try runTool("loadtest", ["play", "--port", "\(server.port)", "--clients", "8", "--members", "4",
                                            "--rate", "80", "--duration", "1", "--quiet"])
        #expect(fits.status == 0, "\(fits.output)")
        #expect(fits.output.contains("8 clients in 2 rooms of 4"), "\(fits.output)")
        #expect(fits.output.contains("errors        0\n"), "\(fits.output)")
        // In rooms of eight, the fifth to join each room is refused: the run
        // stops and says why, by code.
        let overflows = try runTool("loadtest", ["play", "--port", "\(server.port)", "--rooms", "1", "--members", "8",
                                                 "--rate", "80", "--duration", "1", "--quiet"])
        #expect(overflows.status == 1, "\(overflows.output)")
        #expect(overflows.output.contains(/set-up refused [1-4] \(ROOM_FULL [1-4]\)/), "\(overflows.output)")
    }
}

/// A tool running in the background, its output collected as it comes.
final class ToolRun: @unchecked Sendable {
    private let process = Process()
    private let pipe = Pipe()
    private let lock = NSLock()
    private var text = ""

    init(_ name: String, _ arguments: [String]) {
        process.executableURL = Products.directory.appendingPathComponent(name)
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.withLock { self.text += String(decoding: data, as: UTF8.self) }
        }
        do { try process.run() } catch { lock.withLock { text = "could not start \(name): \(error)" } }
    }

    var output: String { lock.withLock { text } }
    var isRunning: Bool { process.isRunning }

    /// True once the output contains `marker`; false if the tool ended first
    /// or `seconds` passed.
    func waitForOutput(_ marker: String, within seconds: TimeInterval) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !output.contains(marker) {
            if !process.isRunning || Date() > deadline { return output.contains(marker) }
            Thread.sleep(forTimeInterval: 0.01)
        }
        return true
    }

    /// Waits for the end and returns the exit status (the output is complete).
    func wait() -> Int32 {
        process.waitUntilExit()
        // The last bytes may still be in the pipe: read them before reporting.
        pipe.fileHandleForReading.readabilityHandler = nil
        let rest = pipe.fileHandleForReading.readDataToEndOfFile()
        lock.withLock { text += String(decoding: rest, as: UTF8.self) }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
