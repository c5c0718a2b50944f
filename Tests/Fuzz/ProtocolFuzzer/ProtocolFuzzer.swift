// libFuzzer target for the wire format: the line framer, the request
// tokenizer, the UTF-8 check and the line writer, on arbitrary bytes.
//
//   swift build --product ProtocolFuzzer --scratch-path .build-fuzz \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
//   .build-fuzz/debug/ProtocolFuzzer -max_total_time=60 Tests/Fuzz/corpus
//
// Without FUZZING it builds as a corpus replayer (`ProtocolFuzzer FILE...`),
// so the normal build and the test suite keep it compiling and running.
//
// Every input is checked against simple reference implementations, so the
// fuzzer finds wrong answers, not only crashes.
import Protocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    guard size > 0 else { return 0 }
    // Byte 0 picks the line limit and byte 1 how the rest is split into reads.
    let maxLine = Int(input[0] % 64) + 1
    let step = size > 1 ? Int(input[1] % 17) + 1 : 1
    let body = UnsafeRawBufferPointer(rebasing: input[min(2, size)...])

    var framer = LineFramer(maxLineLength: maxLine)
    var lines: [[UInt8]] = []
    var outcome = LineFramer.Outcome.needMoreData
    var offset = 0
    while offset < body.count, outcome == .needMoreData {
        let chunk = UnsafeRawBufferPointer(rebasing: body[offset..<min(offset + step, body.count)])
        outcome = framer.feed(chunk) { line in
            lines.append(Array(line))
            checkRequest(line)
            return true
        }
        offset += step
    }
    let expected = referenceFrames(Array(body), maxLine: maxLine)
    precondition(lines == expected.lines, "framer lines differ from the reference")
    precondition((outcome == .lineTooLong) == expected.tooLong, "framer limit differs from the reference")
    precondition(framer.bufferedByteCount <= maxLine + 1, "framer buffered past its limit")

    let valid = Bytes.isValidUTF8(body)
    precondition(valid == (String(validating: Array(body), as: UTF8.self) != nil), "UTF-8 check differs from Swift's")
    return 0
}

/// Splits on LF, drops one CR before it; stops at the first line over the
/// limit (or an unterminated tail that can no longer fit).
func referenceFrames(_ bytes: [UInt8], maxLine: Int) -> (lines: [[UInt8]], tooLong: Bool) {
    var lines: [[UInt8]] = []
    var current: [UInt8] = []
    for byte in bytes {
        if byte == 0x0A {
            if current.last == 0x0D { current.removeLast() }
            if current.count > maxLine { return (lines, true) }
            lines.append(current)
            current = []
        } else {
            current.append(byte)
            if current.count > maxLine + 1 || (current.count == maxLine + 1 && byte != 0x0D) {
                return (lines, true)
            }
        }
    }
    return (lines, false)
}

/// Tokenizes and re-encodes a line, checking what must always hold.
func checkRequest(_ line: UnsafeRawBufferPointer) {
    guard let request = Request(line: line) else {
        precondition(line.allSatisfy(Bytes.isBlank), "a line with content parsed as blank")
        return
    }
    precondition(!request.verb.isEmpty && !request.verb.contains(where: Bytes.isBlank), "bad verb")
    var total = request.verb.count
    var tokens = request.argumentTokens
    while let token = tokens.next() {
        precondition(!token.isEmpty && !token.contains(where: Bytes.isBlank), "bad token")
        total += token.count
    }
    precondition(total <= line.count, "tokens longer than the line")
    withUnsafeTemporaryAllocation(byteCount: 32, alignment: 1) { buffer in
        var writer = LineWriter.event(buffer)
        writer.appendText(request.arguments)
        precondition(writer.count <= 32, "writer overflowed")
        precondition(!writer.bytes.contains(where: { $0 == 0x0A || $0 == 0x0D || $0 == 0 }), "control byte written")
        if Bytes.isValidUTF8(request.arguments) {
            precondition(Bytes.isValidUTF8(writer.bytes), "writer broke a UTF-8 sequence")
        }
    }
}

import Glibc

#if FUZZING
/// libFuzzer's driver: SwiftPM names every executable's entry point, so the
/// fuzzer is started from ours rather than through libFuzzer's own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif

@main
struct ProtocolFuzzer {
    static func main() {
        #if FUZZING
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, { data, size in fuzzOneInput(data, size) }))
        #else
        replay(CommandLine.arguments.dropFirst())
        #endif
    }

    /// Replays corpus files through the fuzz function (no libFuzzer needed).
    static func replay<Paths: Sequence<String>>(_ paths: Paths) {
        var count = 0
        for path in paths {
            guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = fread(&chunk, 1, chunk.count, file)
                if n == 0 { break }
                bytes.append(contentsOf: chunk[..<n])
            }
            fclose(file)
            _ = bytes.withUnsafeBufferPointer { fuzzOneInput($0.baseAddress, $0.count) }
            count += 1
        }
        print("replayed \(count) inputs")
    }
}
