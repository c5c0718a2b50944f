import Testing
@testable import Protocol

/// Feeds `chunks` to a framer and returns the lines (as strings) and the
/// outcome of the last feed.
private func frame(_ chunks: [[UInt8]], max: Int = 64, stopAfter: Int? = nil) -> (lines: [String], outcome: LineFramer.Outcome) {
    var framer = LineFramer(maxLineLength: max)
    var lines: [String] = []
    var outcome = LineFramer.Outcome.needMoreData
    for chunk in chunks {
        outcome = chunk.withUnsafeBytes { bytes in
            framer.feed(bytes) { line in
                lines.append(String(decoding: line, as: UTF8.self))
                return stopAfter.map { lines.count < $0 } ?? true
            }
        }
        if outcome != .needMoreData { break }
    }
    return (lines, outcome)
}

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct LineFramerTests {
    @Test func manyLinesInOneRead() {
        let result = frame([bytes("PING\nLOGIN alice\nJOIN lobby\n")])
        #expect(result.lines == ["PING", "LOGIN alice", "JOIN lobby"])
        #expect(result.outcome == .needMoreData)
    }

    @Test func lineSplitByteByByte() {
        let text = "SAY hello world\r\nPING\n"
        let result = frame(text.utf8.map { [$0] })
        #expect(result.lines == ["SAY hello world", "PING"])
    }

    @Test func crlfAndLfAreBothTerminators() {
        let result = frame([bytes("A\r\nB\nC\r\n")])
        #expect(result.lines == ["A", "B", "C"])
    }

    @Test func crlfSplitBetweenReads() {
        let result = frame([bytes("PING\r"), bytes("\nPONG\r"), bytes("\n")])
        #expect(result.lines == ["PING", "PONG"])
    }

    @Test func onlyOneCarriageReturnIsDropped() {
        let result = frame([bytes("A\r\r\n")])
        #expect(result.lines == ["A\r"])
    }

    @Test func emptyLinesAreDelivered() {
        let result = frame([bytes("\n\r\n \n")])
        #expect(result.lines == ["", "", " "])
    }

    @Test func partialLineIsKeptUntilItsEnd() {
        var framer = LineFramer(maxLineLength: 64)
        var lines: [String] = []
        for chunk in ["LOG", "IN al", "ice"] {
            _ = bytes(chunk).withUnsafeBytes { framer.feed($0) { lines.append(String(decoding: $0, as: UTF8.self)); return true } }
        }
        #expect(lines.isEmpty)
        #expect(framer.bufferedByteCount == 11)
        _ = bytes("\nPI").withUnsafeBytes { framer.feed($0) { lines.append(String(decoding: $0, as: UTF8.self)); return true } }
        #expect(lines == ["LOGIN alice"])
        #expect(framer.bufferedByteCount == 2)
    }

    @Test func lineAtTheLimitIsAccepted() {
        let line = String(repeating: "x", count: 8)
        #expect(frame([bytes(line + "\r\n")], max: 8).lines == [line])
        #expect(frame(bytes(line + "\r\n").map { [$0] }, max: 8).lines == [line])
    }

    @Test func overLongLineInOneRead() {
        let result = frame([bytes("OK\n" + String(repeating: "x", count: 9) + "\nPING\n")], max: 8)
        #expect(result.lines == ["OK"])
        #expect(result.outcome == .lineTooLong)
    }

    @Test func overLongLineWithoutTerminatorIsRefusedBeforeBuffering() {
        var framer = LineFramer(maxLineLength: 8)
        let outcome = bytes(String(repeating: "x", count: 100)).withUnsafeBytes { framer.feed($0) { _ in true } }
        #expect(outcome == .lineTooLong)
        #expect(framer.bufferedByteCount == 0)
    }

    @Test func overLongLineAcrossReads() {
        let result = frame([bytes("xxxxx"), bytes("xxxx"), bytes("\n")], max: 8)
        #expect(result.lines.isEmpty)
        #expect(result.outcome == .lineTooLong)
    }

    @Test func framerStaysFailedAfterOverLongLine() {
        var framer = LineFramer(maxLineLength: 4)
        _ = bytes("xxxxxxx").withUnsafeBytes { framer.feed($0) { _ in true } }
        var delivered = 0
        let outcome = bytes("PING\n").withUnsafeBytes { framer.feed($0) { _ in delivered += 1; return true } }
        #expect(outcome == .lineTooLong)
        #expect(delivered == 0)
    }

    @Test func handlerCanStopFraming() {
        let result = frame([bytes("QUIT\nPING\nPING\n")], stopAfter: 1)
        #expect(result.lines == ["QUIT"])
        #expect(result.outcome == .stopped)
    }
}
