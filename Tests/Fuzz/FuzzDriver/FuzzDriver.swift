// The entry point both fuzz targets share. Built with -DFUZZING (and
// -sanitize=fuzzer), it hands the process to libFuzzer's driver: SwiftPM
// names every executable's entry point, so the fuzzer is started from ours
// rather than through libFuzzer's own `main`. Without FUZZING it replays
// the files named on the command line through the same test function, so
// the normal build keeps every target compiling and corpora replayable.
import Glibc

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32
#endif

/// Runs libFuzzer on `testOneInput` (FUZZING), or replays the corpus files
/// given as arguments through it and prints how many.
public func fuzzMain(_ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Never {
    #if FUZZING
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(runFuzzerDriver(&argc, &argv, testOneInput))
    #else
    var count = 0
    for path in CommandLine.arguments.dropFirst() {
        guard let file = fopen(path, "rb") else { fatalError("cannot open \(path)") }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n == 0 { break }
            bytes.append(contentsOf: chunk[..<n])
        }
        fclose(file)
        _ = bytes.withUnsafeBufferPointer { testOneInput($0.baseAddress, $0.count) }
        count += 1
    }
    print("replayed \(count) inputs")
    exit(0)
    #endif
}
