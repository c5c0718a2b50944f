import Glibc
import Testing
@testable import HotswapEngine

/// Resume's parts in process: the handoff's resume section (round trip,
/// truncation, the rules it refuses, a format-3 handoff without it), an
/// away session's queued lines and their bound, and a live engine's away
/// session written into a handoff.
@Suite struct ResumeHandoffTests {
    static func hash(_ text: String) -> TokenHash { TokenHash(of: Array(text.utf8)) }

    static let sample = ResumeHandoff(
        counters: ResumeRegistry.Counters(resumes: 3, refused: 2, expired: 1),
        entries: [
            .init(session: GameID(kind: .session, generation: 1, index: 0), token: hash("a"), away: nil),
            .init(session: GameID(kind: .session, generation: 4, index: 2), token: hash("b"),
                  away: .init(remainingMilliseconds: 29_000, awayMilliseconds: 1000, identified: true, dropped: 0,
                              lines: [Array(">SAY bob one".utf8), Array(">SAY bob two".utf8)])),
            .init(session: GameID(kind: .session, generation: 2, index: 7), token: hash("c"),
                  away: .init(remainingMilliseconds: 0, awayMilliseconds: 30_000, identified: false, dropped: 12,
                              lines: [])),
        ])

    @Test func theSectionRoundTripsAndRefusesEveryTruncation() throws {
        var writer = HandoffWriter()
        Self.sample.encode(into: &writer)
        var reader = HandoffReader(writer.bytes)
        #expect(try ResumeHandoff.decode(from: &reader, format: HandoffFormat.current) == Self.sample)
        for length in 0..<writer.bytes.count {
            var truncated = HandoffReader(Array(writer.bytes[..<length]))
            #expect(throws: HandoffError.self) { try ResumeHandoff.decode(from: &truncated, format: HandoffFormat.current) }
        }
    }

    @Test func theSectionRefusesWhatCannotBe() {
        var twice = Self.sample
        twice.entries.append(twice.entries[0])
        var shared = Self.sample
        shared.entries[1].token = shared.entries[0].token
        var forged = Self.sample
        forged.entries[1].away?.lines.append(Array(">SAY x\r\n+OK".utf8))
        var room = Self.sample
        room.entries[0].session = GameID(kind: .room, generation: 1, index: 0)
        var long = Self.sample
        long.entries[1].away?.remainingMilliseconds = 86_400_001
        for bad in [twice, shared, forged, room, long] {
            #expect(throws: HandoffError.self) { try bad.validate() }
        }
        #expect(throws: Never.self) { try Self.sample.validate() }
    }

    @Test func awayLinesKeepTheNewestWithinTheBoundsAndCountTheRest() {
        let peer = AwayPeer(maxLines: 3, maxBytes: 1024, identified: true)
        for index in 1...5 { Array(">L\(index)".utf8).withUnsafeBytes { peer.deliver($0) } }
        #expect(peer.lines.map { String(decoding: $0, as: UTF8.self) } == [">L3", ">L4", ">L5"])
        #expect(peer.dropped == 2)
        #expect(peer.withPendingBytes { Array($0) } == Array(">L3\r\n>L4\r\n>L5\r\n".utf8))
        // A faulted call's lines are taken back; the older line one of them
        // pushed out stays counted as missed (it cannot come back).
        let mark = peer.outputMark()
        Array(">L6".utf8).withUnsafeBytes { peer.deliver($0) }
        peer.rollBackOutput(to: mark)
        #expect(peer.lines.map { String(decoding: $0, as: UTF8.self) } == [">L4", ">L5"])
        #expect(peer.dropped == 3)
        // The byte bound: 10 bytes hold two 3-byte lines with their CRLF.
        let small = AwayPeer(maxLines: 100, maxBytes: 10, identified: false)
        for index in 1...4 { Array("L\(index)x".utf8).withUnsafeBytes { small.deliver($0) } }
        #expect(small.lines == [Array("L3x".utf8), Array("L4x".utf8)])
        #expect(small.dropped == 2)
        // A handed-over peer is the same peer.
        let copy = AwayPeer(maxLines: 3, maxBytes: 1024, identified: true, lines: peer.lines, dropped: peer.dropped)
        #expect(copy.lines == peer.lines && copy.dropped == 3)
    }

    @Test func tokensAreURLSafeAndUnrelated() {
        let tokens = (0..<1000).map { _ in ResumeToken.make() }
        #expect(Set(tokens).count == 1000)
        for token in tokens {
            #expect(token.count == ResumeToken.length)
            #expect(token.withUnsafeBytes { ResumeToken.isWellFormed($0) })
        }
        #expect(ResumeToken.encode([0xFB, 0xFF, 0xBF]) == Array("-_-_".utf8))
    }

    /// A live engine's away session goes into the handoff with its lines
    /// and its grace; a handoff in format 3 reads as having no tokens.
    @Test func aLiveAwaySessionIsWrittenAndOldFormatsReadWithoutIt() throws {
        let embedded = try EmbeddedEngine(["--resume-grace", "30"])
        let engine = embedded.engine
        let alice = try embedded.connect()
        let bob = try embedded.connect()
        #expect(alice.call("LOGIN alice")?.contains(" resume ") == true)
        #expect(bob.call("LOGIN bob")?.contains(" resume ") == true)
        #expect(alice.call("JOIN r")?.hasPrefix("+JOINED") == true)
        #expect(bob.call("JOIN r")?.hasPrefix("+JOINED") == true)
        _ = Glibc.shutdown(alice.fd, 2)  // SHUT_RDWR
        embedded.pump { engine.resumes.awayCount == 1 }
        #expect(engine.resumes.awayCount == 1)
        #expect(bob.line() == ">AWAY alice")
        #expect(bob.call("SAY hi") == "+OK")
        let section = EngineHandoff(
            fromVersion: "1.2.3", holdStartedNanoseconds: 42, startedNanoseconds: 7, enginePath: "/srv/gs",
            paths: UpgradePaths(modulePath: "/m.so", modulesDirectory: "/m", enginesDirectory: "/e"),
            arguments: [], counters: EngineCounters(), admin: AdminCounters(), outputOverflows: 0)
        let sections = engine.handoffSections(engine: section)
        let away = try #require(sections.resume.entries.first { $0.away != nil }?.away)
        #expect(sections.resume.entries.count == 2)
        #expect(away.lines.map { String(decoding: $0, as: UTF8.self) } == [">SAY bob hi"])
        #expect(away.remainingMilliseconds > 25_000 && away.remainingMilliseconds <= 30_000)
        let plan = FallbackPlan(previousEngineFD: 1, previousEnginePath: "/", arguments: [], environment: [], passedFDs: [])
        let current = HandoffFormat.encode(format: HandoffFormat.current, fallback: plan) { sections.encode(into: &$0) }
        let decoded = try HandoffSections(decoding: HandoffFormat.decode(current, readable: HandoffFormat.readable))
        #expect(decoded.resume == sections.resume)
        // Format 3: every section but resume.
        let old = HandoffFormat.encode(format: 3, fallback: plan) { writer in
            for part in sections.all where type(of: part).section != .resume { part.encodeSection(into: &writer) }
        }
        let three = try HandoffSections(decoding: HandoffFormat.decode(old, readable: HandoffFormat.readable))
        #expect(three.resume == ResumeHandoff())
        #expect(three.world == sections.world)
        // Format 4 without its resume section is refused as incomplete.
        let missing = HandoffFormat.encode(format: 4, fallback: plan) { writer in
            for part in sections.all where type(of: part).section != .resume { part.encodeSection(into: &writer) }
        }
        #expect(throws: HandoffError.missingSection(.resume)) { try HandoffFormat.decode(missing, readable: HandoffFormat.readable) }
    }
}
