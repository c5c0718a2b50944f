// libFuzzer target for the engine's parsers of untrusted bytes: ELFCheck
// (a module file), the admin command parser (an admin line) and the
// upgrade handoff (a memfd another engine wrote: corrupt, truncated or of
// another format, it must be refused, never trusted or trapped on).
//
//   swift build --product EngineFuzzer --scratch-path .build-fuzz \
//       -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING
//   .build-fuzz/debug/EngineFuzzer -max_total_time=60 Tests/Fuzz/engine-corpus
//
// Without FUZZING it builds as a corpus replayer (`EngineFuzzer FILE...`).
// Byte 0 picks the target (0 mod 3: ELFCheck, 1: admin parser, 2: handoff).
// Each answer is checked against a reference, so the fuzzer finds wrong
// answers too.
import FuzzDriver
import Glibc
import HotswapEngine

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzEngineInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size > 0, let data else { return 0 }
    let body = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    switch data[0] % 3 {
    case 0: checkELF(body)
    case 1: checkAdmin(body)
    default: checkHandoff(body)
    }
    return 0
}

/// ELFCheck must never trap on hostile headers, and whatever it accepts must
/// have the shape it promises: an ELF64 shared object whose section table
/// lies within the bytes.
func checkELF(_ bytes: UnsafeRawBufferPointer) {
    guard ELFCheck.problem(bytes: bytes) == nil else { return }
    precondition(bytes.count >= MemoryLayout<Elf64_Ehdr>.size, "accepted a file shorter than its header")
    precondition(Array(bytes.prefix(5)) == [0x7F, 0x45, 0x4C, 0x46, 2], "accepted a file without the ELF64 magic")
    let type = UInt16(bytes[16]) | UInt16(bytes[17]) << 8
    precondition(type == UInt16(ET_DYN), "accepted a file that is not a shared object")
    func little(_ offset: Int, _ count: Int) -> UInt64 {
        (0..<count).reduce(UInt64(0)) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }
    let sectionsEnd = little(40, 8).addingReportingOverflow(little(60, 2) * little(58, 2))
    precondition(!sectionsEnd.overflow && sectionsEnd.partialValue <= UInt64(bytes.count),
                 "accepted section headers past the end")
}

/// The admin parser against a reference written separately: trim blanks,
/// the first token upper-cased is the verb, the rest trimmed is the argument.
func checkAdmin(_ line: UnsafeRawBufferPointer) {
    let parsed = AdminCommand(line: line)
    let bytes = Array(line)
    func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
    guard let start = bytes.firstIndex(where: { !isBlank($0) }) else {
        precondition(parsed == .empty, "blank line not parsed as empty")
        return
    }
    let verbEnd = bytes[start...].firstIndex(where: isBlank) ?? bytes.count
    let verb = String(decoding: bytes[start..<verbEnd].map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    var rest = Array(bytes[verbEnd...])
    while let first = rest.first, isBlank(first) { rest.removeFirst() }
    while let last = rest.last, isBlank(last) { rest.removeLast() }
    let expected: AdminCommand = switch verb {
    case "AUTH": .auth(token: rest)
    case "PING": .ping
    case "QUIT": .quit
    case "HELP": .help
    case "STATUS": .status
    case "MODULES": .modules
    case "ROLLBACK": .rollback
    case "RELOAD": .reload(path: rest.isEmpty ? nil : String(decoding: rest, as: UTF8.self))
    case "UPGRADE": .upgrade(path: rest.isEmpty ? nil : String(decoding: rest, as: UTF8.self))
    case "SAVE": .save
    case "FORGET": .forget(key: rest)
    default: .unknown
    }
    precondition(parsed == expected, "admin parser differs from the reference")
}

/// The handoff decoder must refuse what it cannot read, and what it
/// accepts must hold together: the prefix decodes alone to the same
/// fallback, every section is there, and the sections and their headers
/// account for every byte of the body.
func checkHandoff(_ bytes: UnsafeRawBufferPointer) {
    let input = Array(bytes)
    guard let handoff = try? HandoffFormat.decode(input, readable: HandoffFormat.readable) else { return }
    guard let prefix = try? HandoffFormat.decodePrefix(input) else {
        preconditionFailure("accepted a handoff whose prefix alone is refused")
    }
    precondition(HandoffFormat.readable.contains(handoff.format), "accepted a format it does not read")
    precondition(prefix.format == handoff.format && prefix.fallback == handoff.fallback, "prefix differs")
    precondition(handoff.sections.count == HandoffSection.allCases.count, "accepted a handoff missing a section")
    var block = HandoffWriter()
    handoff.fallback.encode(into: &block)
    let body = handoff.sections.values.reduce(0) { $0 + 12 + $1.remaining }
    precondition(16 + block.bytes.count + 8 + body == input.count, "sections do not account for the bytes")
}

@main
struct EngineFuzzer {
    static func main() { fuzzMain { data, size in fuzzEngineInput(data, size) } }
}
