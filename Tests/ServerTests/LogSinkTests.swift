import Foundation
import Logging
import Testing
@testable import HotswapEngine

/// The log goes to stderr from a writer thread: a reader that stops reading
/// costs dropped lines, never a producer waiting (the loop thread logs).
@Suite struct LogSinkTests {
    /// 20,000 lines of 100 bytes from four threads, against a pipe that is
    /// full and not read, and a 16 KiB sink: every call returns at once and
    /// the overflow is counted; once the pipe is read again, everything the
    /// sink accepted arrives whole, and later lines too.
    @Test(.timeLimit(.minutes(1)))
    func aReaderThatStopsReadingCostsDroppedLinesNotWaiting() throws {
        let pipe = try TestPipe()
        // Full before the sink starts: how much its writer gets into the
        // pipe meanwhile must not depend on the scheduler.
        let filler = "-"
        let fillerLines = try pipe.fillUp(with: filler)
        let sink = LogSink(fileDescriptor: pipe.writer, capacity: 16 * 1024)
        let line = String(repeating: "x", count: 99) + "\n"
        let started = ContinuousClock.now
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<5000 { sink.enqueue(line) }
        }
        #expect(ContinuousClock.now - started < NotAHang.duration)
        let dropped = sink.droppedLines
        #expect(dropped < 20_000)
        #expect(20_000 - dropped <= 16 * 1024 / 100)  // the bound holds
        // Flushing into a full pipe gives up at its timeout.
        let flushStarted = ContinuousClock.now
        #expect(!sink.flush(timeout: .milliseconds(200)))
        #expect(ContinuousClock.now - flushStarted < NotAHang.duration)
        // What an upgrade then counts as dropped: every line accepted (none
        // got into the full pipe), queued or in the writer's hands.
        #expect(sink.queuedLines == 20_000 - dropped)

        let reader = pipe.startReading()
        #expect(sink.flush(timeout: .seconds(20)))
        #expect(sink.queuedLines == 0)
        #expect(sink.enqueue("after the reader came back\n"))
        #expect(sink.flush(timeout: .seconds(20)))
        sink.stop()
        let text = reader.finish(closing: pipe)
        #expect(text.hasSuffix("\n"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.prefix(fillerLines).allSatisfy { $0 == filler })
        let logged = lines.dropFirst(fillerLines)
        #expect(logged.last == "after the reader came back")
        // Nothing is split or lost between the sink and the reader: each
        // line was dropped whole or written whole.
        #expect(logged.dropLast().allSatisfy { $0 == line.dropLast() })
        #expect(logged.count - 1 == 20_000 - dropped)
        #expect(sink.droppedLines == dropped)
    }

    /// EPIPE: the writer discards and counts; the process (which, unlike
    /// the server, may not ignore SIGPIPE) lives on.
    @Test(.timeLimit(.minutes(1)))
    func aClosedReaderIsCountedAndNotFatal() throws {
        let pipe = try TestPipe()
        pipe.closeReader()
        let sink = LogSink(fileDescriptor: pipe.writer)
        for index in 0..<10 { #expect(sink.enqueue("line \(index)\n")) }
        #expect(sink.flush(timeout: .seconds(20)))
        #expect(sink.droppedLines == 10)
        #expect(sink.queuedBytes == 0 && sink.queuedLines == 0)
        sink.stop()
        pipe.closeWriter()
    }

    /// Byte for byte what `StreamLogHandler` writes: scripts read these lines.
    @Test(.timeLimit(.minutes(1)))
    func linesAreFormattedAsStreamLogHandlerFormatsThem() throws {
        let pipe = try TestPipe()
        let sink = LogSink(fileDescriptor: pipe.writer)
        let captured = CapturedStream()
        var reference = StreamLogHandler(label: "gameserver", stream: captured, metadataProvider: nil)
        reference.logLevel = .info
        var handler = AsyncLogHandler(label: "gameserver", sink: sink, metadataProvider: nil)
        handler.logLevel = .info
        handler[metadataKey: "pid"] = "7"
        reference[metadataKey: "pid"] = "7"
        let (referenceHandler, asyncHandler) = (reference, handler)
        let loggers = [Logger(label: "gameserver") { _ in referenceHandler }, Logger(label: "gameserver") { _ in asyncHandler }]
        for candidate in loggers {
            candidate.notice("listening on 127.0.0.1:7777")
            candidate.info("loaded module gems 1.0.0", metadata: ["protocol": "base"])
            candidate.debug("below the level")
        }
        #expect(handler.logLevel == .info && handler[metadataKey: "pid"] == "7")
        #expect(sink.flush(timeout: .seconds(20)))
        sink.stop()
        let reader = pipe.startReading()
        let written = reader.finish(closing: pipe)
        // The timestamps may straddle a second: compare what follows them.
        func withoutTimestamps(_ text: String) -> [Substring] {
            text.split(separator: "\n").map { $0.drop(while: { $0 != " " }) }
        }
        #expect(withoutTimestamps(written) == withoutTimestamps(captured.text))
        #expect(withoutTimestamps(written).count == 2)
        #expect(written.hasSuffix("\n"))
        let first = try #require(written.split(separator: "\n").first)
        #expect(first.wholeMatch(
            of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} notice gameserver: pid=7 \[ServerTests\] listening on 127\.0\.0\.1:7777/
        ) != nil)
    }

    /// The issue end to end: a server whose stderr pipe is never read after
    /// start-up answers 1,500 reloads (about two log lines each, far more
    /// than the pipe and the 64 KiB log buffer hold) while a player's PINGs
    /// keep being answered; STATUS counts the dropped lines, and SIGTERM
    /// still ends it in bounded time.
    @Test(.timeLimit(.minutes(3)))
    func fifteenHundredReloadsWithAnUnreadLogAreAllAnswered() throws {
        // No module probe: a process start per reload (slow under
        // AddressSanitizer) is not what this measures.
        let server = try TestServer(arguments: ["--rate-limit", "0", "--log-buffer-bytes", "65536", "--probe-timeout", "0"],
                                    keepReadingLog: false)
        let player = try server.connect()
        #expect(try player.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        let admin = try server.connectAdmin()
        var reloads = 0
        var pongs = 0
        var problems: [String] = []
        // Two builds that differ by a byte: each RELOAD is a real swap (the
        // serving file itself would answer "+OK unchanged").
        let builds = [try paddedCopy(of: "GameLogic", padding: 1), try paddedCopy(of: "GameLogic", padding: 2)]
        defer { for build in builds { try? FileManager.default.removeItem(at: build) } }
        for round in 0..<1500 {
            try admin.send("RELOAD \(builds[round % 2].path)")
            let pong = try player.call("PING")
            if pong == "+PONG" { pongs += 1 } else { problems.append("\(round): \(pong)") }
            let reloaded = try admin.reply()
            if reloaded.hasPrefix("+OK gems 1.2.0 -> gems 1.2.0") { reloads += 1 } else { problems.append("\(round): \(reloaded)") }
        }
        #expect(reloads == 1500)
        #expect(pongs == 1500)
        #expect(problems.isEmpty, "\(problems.prefix(5))")
        let status = try admin.call("STATUS")
        #expect(status.contains(" reloads=1500 "))
        let dropped = status.firstMatch(of: /log_dropped=(\d+)/).flatMap { Int($0.1) }
        #expect((dropped ?? 0) > 0, "\(status)")
        #expect(try player.call("PING") == "+PONG")
        // The shutdown flush gives up on the unread pipe after its timeout.
        let stopping = ContinuousClock.now
        #expect(server.stop(grace: 20) == 0)
        #expect(ContinuousClock.now - stopping < NotAHang.duration)
    }

    /// With a reader, the last lines (the shutdown notice) are flushed out
    /// before the process exits.
    @Test func theLastLinesReachALiveReaderAtExit() throws {
        let server = try TestServer()
        #expect(try server.connectAdmin().call("STATUS").contains(" log_dropped=0"))
        #expect(server.stop() == 0)
        #expect(server.logContains("shutting down"))
        #expect(server.logContains("notice gameserver: [HotswapEngine] stopped\n"))
    }
}

/// A pipe whose two ends the test closes itself.
private final class TestPipe: @unchecked Sendable {
    let reader: Int32
    let writer: Int32
    private var readerOpen = true
    private var writerOpen = true

    init() throws {
        var ends: [Int32] = [0, 0]
        guard Glibc.pipe(&ends) == 0 else { throw TestFailure("pipe: errno \(errno)") }
        reader = ends[0]
        writer = ends[1]
    }

    /// Writes `line` and a newline until the pipe takes no more; returns
    /// how many lines it took.
    func fillUp(with line: String) throws -> Int {
        let flags = fcntl(writer, F_GETFL)
        _ = fcntl(writer, F_SETFL, flags | O_NONBLOCK)
        defer { _ = fcntl(writer, F_SETFL, flags) }
        let bytes = Array((line + "\n").utf8)
        // A page at a time, then a line at a time (each write is atomic).
        let page = Array(repeating: bytes, count: 4096 / bytes.count).flatMap { $0 }
        var lines = 0
        for (chunk, count) in [(page, 4096 / bytes.count), (bytes, 1)] {
            while true {
                let written = chunk.withUnsafeBytes { Glibc.write(writer, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                if written < 0 && errno == EAGAIN { break }
                guard written == chunk.count else { throw TestFailure("write to the pipe: \(written), errno \(errno)") }
                lines += count
            }
        }
        return lines
    }

    func closeReader() {
        if readerOpen { close(reader) }
        readerOpen = false
    }

    func closeWriter() {
        if writerOpen { close(writer) }
        writerOpen = false
    }

    /// Reads everything on a background thread until end of file.
    func startReading() -> PipeReader { PipeReader(self) }

    deinit {
        closeReader()
        closeWriter()
    }
}

/// Collects what a pipe delivers until its writer is closed.
private final class PipeReader: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var bytes: [UInt8] = []

    init(_ pipe: TestPipe) {
        let descriptor = pipe.reader
        Thread.detachNewThread { [self] in
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let got = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if got < 0 && errno == EINTR { continue }
                if got <= 0 { break }
                bytes.append(contentsOf: chunk[..<got])
            }
            done.signal()
        }
    }

    /// Closes the writer (the sink must be stopped), waits for end of file
    /// and returns the text read.
    func finish(closing pipe: TestPipe) -> String {
        pipe.closeWriter()
        done.wait()
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// What `StreamLogHandler` writes, for comparison.
private final class CapturedStream: TextOutputStream, @unchecked Sendable {
    private let lock = NSLock()
    private var written = ""
    var text: String { lock.withLock { written } }
    func write(_ string: String) { lock.withLock { written += string } }
}
