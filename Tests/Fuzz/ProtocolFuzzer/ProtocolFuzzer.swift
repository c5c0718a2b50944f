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
import FuzzDriver
import ProtocolChecks

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let failures = protocolCheckFailures(UnsafeRawBufferPointer(start: data, count: size))
    if !failures.isEmpty { fatalError(failures.joined(separator: "\n")) }
    return 0
}

@main
struct ProtocolFuzzer {
    static func main() { fuzzMain { data, size in fuzzOneInput(data, size) } }
}
