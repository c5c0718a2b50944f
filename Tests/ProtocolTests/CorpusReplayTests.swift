import Foundation
import ProtocolChecks
import Testing

/// The committed fuzz corpus (Tests/Fuzz/corpus), replayed through the very
/// checks the fuzzer runs, so a regression found once stays found in
/// `make test` without libFuzzer.
@Suite struct CorpusReplayTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fuzz/corpus")
    static let files = ((try? FileManager.default.contentsOfDirectory(atPath: corpus.path)) ?? []).sorted()

    @Test func theCorpusIsFound() {
        #expect(Self.files.count >= 9, "\(Self.corpus.path): \(Self.files)")
    }

    @Test(arguments: files)
    func corpusInputPassesEveryCheck(_ name: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent(name)))
        let failures = bytes.withUnsafeBytes { protocolCheckFailures($0) }
        #expect(failures.isEmpty, "\(failures)")
    }
}

/// The references the checks compare with must themselves be right, or the
/// fuzzer would miss what they get wrong too.
@Suite struct ProtocolReferenceTests {
    private func text(_ bytes: [UInt8], room: Int = 64) -> (String, Bool) {
        let result = referenceText(bytes, room: room)
        return (String(decoding: result.text, as: UTF8.self), result.truncated)
    }

    @Test func controlsOfEveryKindBecomeOneSpaceEach() {
        // ESC, BEL, TAB, DEL, U+0085 (NEL) and U+009B (CSI, as C2 9B).
        #expect(text(Array("a\u{1B}[2J\u{7}\tb\u{7F}c".utf8) + [0xC2, 0x85, 0x64, 0xC2, 0x9B]) == ("a [2J  b c d ", false))
        // U+00A0 and other characters outside the control ranges are kept.
        #expect(text(Array("\u{A0}é✓🎮".utf8)) == ("\u{A0}é✓🎮", false))
    }

    @Test func malformedBytesBecomeOneSpaceEach() {
        // Truncated E2 82, overlong C0 AF, surrogate ED A0 80, F4 90 (above U+10FFFF), a lone continuation.
        #expect(text([0xE2, 0x82, 0x41, 0xC0, 0xAF, 0xED, 0xA0, 0x80, 0xF4, 0x90, 0x80, 0x80, 0x80]) == ("  A          ", false))
    }

    @Test func textIsCutBeforeTheFirstCharacterThatDoesNotFit() {
        #expect(text(Array("abé".utf8), room: 3) == ("ab", true))
        #expect(text(Array("abé".utf8), room: 4) == ("abé", false))
        #expect(text(Array("ab\u{1}c".utf8), room: 3) == ("ab ", true))
    }

    @Test func tokensAndArgumentsFollowBlanks() {
        let line = Array(" \tMOVE\t\tn  x \t".utf8)
        #expect(referenceTokens(line).map { String(decoding: $0, as: UTF8.self) } == ["MOVE", "n", "x"])
        #expect(String(decoding: referenceArguments(line), as: UTF8.self) == "n  x")
        #expect(referenceArguments(Array("LOOK   ".utf8)).isEmpty)
    }
}
