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
// The checks live in ProtocolChecks (Tests/Fuzz/ProtocolChecks), shared
// with the corpus replay that `make test` runs: every input is compared
// with independent reference implementations, so the fuzzer finds wrong
// answers, not only crashes. A failed check traps, and libFuzzer keeps the
// input.
import ProtocolChecks

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let failures = protocolCheckFailures(UnsafeRawBufferPointer(start: data, count: size))
    if !failures.isEmpty { fatalError(failures.joined(separator: "\n")) }
    return 0
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
