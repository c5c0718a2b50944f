import Foundation
import Testing
@testable import HotswapEngine

/// The admin protocol's parser, and the limits' bounds, in process.
@Suite struct AdminCommandTests {
    private func parse(_ line: String) -> AdminCommand { line.withBytes { AdminCommand(line: $0) } }

    @Test func verbsIgnoreCaseAndArgumentsAreTrimmed() {
        #expect(parse("status") == .status)
        #expect(parse("  ReLoad   /tmp/x.so  ") == .reload(path: "/tmp/x.so"))
        #expect(parse("RELOAD") == .reload(path: nil))
        #expect(parse("AUTH  secret token ") == .auth(token: Array("secret token".utf8)))
        #expect(parse("   ") == .empty)
        #expect(parse("RELOADX") == .unknown)
        #expect(parse(" Save ") == .save)
        #expect(parse("forget  Bob ") == .forget(key: Array("Bob".utf8)))
    }

    @Test func onlyAuthPingAndQuitRunBeforeAuthentication() {
        #expect(parse("AUTH x").allowedBeforeAuth)
        #expect(parse("PING").allowedBeforeAuth)
        #expect(!parse("STATUS").allowedBeforeAuth)
        #expect(!parse("RELOAD").allowedBeforeAuth)
    }

    @Test func limitsRefuseValuesOutsideTheirBounds() throws {
        #expect(throws: (any Error).self) { try Limits.parse(["--max-line-length", "8"]) }
        #expect(throws: (any Error).self) { try Limits.parse(["--rate-limit", "-1"]) }
        let limits = try Limits.parse(["--max-rooms", "3"])
        #expect(limits.maxRooms == 3)
        #expect(Limits.defaults.maxLineLength == 4096)
    }
}

/// ELFCheck over bytes in memory: what a half-written module looks like.
@Suite struct ELFCheckTests {
    @Test func truncatedAndForeignFilesAreRefusedWithTypedReasons() throws {
        let library = try procBytes(Products.library("GameLogic").path)
        #expect(library.withUnsafeBytes { ELFCheck.problem(bytes: $0) } == nil)
        let half = Array(library.prefix(library.count / 2))
        let problem = half.withUnsafeBytes { ELFCheck.problem(bytes: $0) }
        #expect(problem?.isTransient == true)
        #expect(Array("not elf at all, just text....................................................".utf8)
            .withUnsafeBytes { ELFCheck.problem(bytes: $0) } == .notELF64)
        #expect([UInt8](repeating: 0x7F, count: 10).withUnsafeBytes { ELFCheck.problem(bytes: $0) } == .shorterThanHeader)
        // The same library, said to be for the other 64-bit processor
        // (e_machine is the two bytes at offset 18).
        var foreign = library
        let other: UInt16 = ELFCheck.nativeMachine == UInt16(EM_X86_64) ? UInt16(EM_AARCH64) : UInt16(EM_X86_64)
        foreign[18] = UInt8(other & 0xFF)
        foreign[19] = UInt8(other >> 8)
        let refusal = foreign.withUnsafeBytes { ELFCheck.problem(bytes: $0) }
        #expect(refusal == .wrongMachine(found: other))
        #expect("\(refusal!)".contains(ELFCheck.nativeMachine == UInt16(EM_X86_64) ? "built for AArch64" : "built for x86-64"))
    }

    /// A build for a big-endian or a 32-bit processor is refused for good,
    /// naming what it was built for (its e_machine read in its own byte
    /// order), not as a file still being written (which `--watch` would
    /// retry for ever). Byte 4 is EI_CLASS, byte 5 EI_DATA.
    @Test func bigEndianAnd32BitBuildsAreRefusedNamingTheirProcessor() throws {
        let library = try procBytes(Products.library("GameLogic").path)
        let ours = ELFCheck.machineName(ELFCheck.nativeMachine)
        func check(_ bytes: [UInt8]) -> ELFProblem? { bytes.withUnsafeBytes { ELFCheck.problem(bytes: $0) } }

        // Only EI_DATA flipped: e_machine's two bytes now read the other way.
        var big = library
        big[5] = 2
        let flipped = check(big)
        #expect(flipped == .bigEndian(machine: UInt16(library[18]) << 8 | UInt16(library[19])))
        #expect(flipped?.isTransient == false)
        #expect("\(flipped!)".contains("(big-endian)") && !"\(flipped!)".contains("truncated"), "\(flipped!)")
        // A big-endian PowerPC 64 build (EM_PPC64, 21, most significant byte first).
        big[18] = 0
        big[19] = UInt8(EM_PPC64)
        #expect("\(check(big)!)" == "built for PowerPC 64 (big-endian), but this server runs on \(ours) (little-endian)")

        // EI_CLASS 1 with e_machine EM_ARM (40): a 32-bit ARM build.
        var arm = library
        arm[4] = 1
        arm[18] = UInt8(EM_ARM)
        arm[19] = 0
        let armProblem = check(arm)
        #expect(armProblem == .thirtyTwoBit(machine: UInt16(EM_ARM), bigEndian: false))
        #expect(armProblem?.isTransient == false)
        #expect("\(armProblem!)".hasPrefix("built for 32-bit ARM (a 32-bit ELF file), but this server runs on \(ours)"))
        // An i386 file's 52-byte header, shorter than a 64-bit one: still named.
        var i386 = Array(library.prefix(52))
        i386[4] = 1
        i386[18] = UInt8(EM_386)
        i386[19] = 0
        #expect("\(check(i386)!)".hasPrefix("built for i386 (a 32-bit ELF file)"))

        // Neither class nor byte order known: not an ELF file one can read.
        var odd = library
        odd[4] = 3
        #expect(check(odd) == .unknownFormat(elfClass: 3, data: 1))
        #expect(check(odd)?.isTransient == false)
    }

    private func procBytes(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("cannot read \(path)") }
        return [UInt8](data)
    }
}

/// The engine fuzzer's committed corpus replays cleanly in every test run,
/// so a fixed crash stays fixed without running libFuzzer.
@Suite struct EngineCorpusTests {
    @Test func theEngineFuzzCorpusReplays() throws {
        let corpus = Products.packageRoot.appendingPathComponent("Tests/Fuzz/engine-corpus")
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus.path).sorted()
            .map { corpus.appendingPathComponent($0).path }
        #expect(files.count >= 5)
        let (status, output) = try runTool("EngineFuzzer", files)
        #expect(status == 0, "\(output)")
        #expect(output.contains("replayed \(files.count) inputs"))
    }
}
