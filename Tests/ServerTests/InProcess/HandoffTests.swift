import Glibc
import Protocol
import Testing
import UpgradeSupport
@testable import HotswapEngine

/// The handoff format in process: what one engine writes, the next reads
/// back exactly, and anything else (truncated, garbage, another format) is
/// refused with a reason, never a crash.
@Suite struct HandoffFormatTests {
    private let plan = FallbackPlan(previousEngineFD: 9, previousEnginePath: "/srv/gameserver",
                                    arguments: ["--port", "7777"], environment: ["HOME=/root", "A=b c"],
                                    passedFDs: [5, 9, 12])

    /// A handoff with every section, each holding its tag and a string.
    private func sample(format: UInt32 = HandoffFormat.current) -> [UInt8] {
        HandoffFormat.encode(format: format, fallback: plan) { writer in
            for section in HandoffSection.allCases {
                writer.section(section) {
                    $0.u32(section.rawValue)
                    $0.string("section \(section)")
                    $0.optionalU64(nil)
                    $0.optionalString("x")
                }
            }
        }
    }

    @Test func everySectionAndTheFallbackComeBackAsWritten() throws {
        let handoff = try HandoffFormat.decode(sample(), readable: HandoffFormat.readable)
        #expect(handoff.fallback == plan)
        for section in HandoffSection.allCases {
            var reader = handoff.reader(section)
            #expect(try reader.u32("tag") == section.rawValue)
            #expect(try reader.string("text") == "section \(section)")
            #expect(try reader.optionalU64("none") == nil)
            #expect(try reader.optionalString("some") == "x")
            try reader.finish("section")
        }
    }

    @Test func everyTruncationIsRefused() throws {
        let bytes = sample()
        for length in 0..<bytes.count {
            #expect(throws: HandoffError.self, "\(length) bytes") {
                try HandoffFormat.decode(Array(bytes[..<length]), readable: HandoffFormat.readable)
            }
        }
        #expect(throws: HandoffError.badMagic) { try HandoffFormat.decode([], readable: HandoffFormat.readable) }
    }

    @Test func garbageIsRefusedWithoutAllocatingWhatItClaims() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let garbage = (0..<Int.random(in: 0..<512, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            #expect(throws: HandoffError.self) { try HandoffFormat.decode(garbage, readable: HandoffFormat.readable) }
            // The magic, then garbage: refused too.
            #expect(throws: HandoffError.self) {
                try HandoffFormat.decode(HandoffFormat.magic + garbage, readable: HandoffFormat.readable)
            }
        }
        // A list that claims four billion entries in a few bytes.
        var writer = HandoffWriter()
        writer.u32(.max)
        var reader = HandoffReader(writer.bytes)
        #expect(throws: HandoffError.truncated("arguments")) { try reader.strings("arguments") }
    }

    @Test func anotherFormatIsRefusedButItsFallbackCanStillBeRead() throws {
        let bytes = sample(format: 7)
        #expect(throws: HandoffError.formatMismatch(found: 7, readable: HandoffFormat.readable)) {
            try HandoffFormat.decode(bytes, readable: HandoffFormat.readable)
        }
        let prefix = try HandoffFormat.decodePrefix(bytes)
        #expect(prefix.format == 7)
        #expect(prefix.fallback == plan)
    }

    /// A reader takes every format of its range, and says which one it got
    /// (what a section reader branches on); the range's ends are inclusive.
    @Test func everyFormatOfTheReadableRangeIsAcceptedAndNamed() throws {
        for format: UInt32 in [3, 4, 5] {
            #expect(try HandoffFormat.decode(sample(format: format), readable: 3...5).format == format)
        }
        for format: UInt32 in [2, 6] {
            #expect(throws: HandoffError.formatMismatch(found: format, readable: 3...5)) {
                try HandoffFormat.decode(sample(format: format), readable: 3...5)
            }
        }
        #expect(HandoffFormat.readable.contains(HandoffFormat.current))
        #expect("\(HandoffError.formatMismatch(found: 9, readable: 1...2))" == "the handoff is in format 9, this engine reads formats 1-2")
    }

    /// The writer's limit is the reader's: what one engine may write, any
    /// engine reads, and the fallback needs only the block in front.
    @Test func theSizeLimitIsOneForWriterAndReaderAndTheFallbackReadsOnlyItsBlock() throws {
        #expect(EngineIdentity.handoffLimit == HandoffFormat.maxBytes)
        let bytes = sample()
        let memfd = hs_memfd_create("handoff-test")
        #expect(memfd >= 0)
        defer { close(memfd) }
        // Only the prefix: the body is cut off, as if it were too large to read.
        let prefixLength = 16 + Int(bytes[12]) + Int(bytes[13]) << 8
        _ = bytes.withUnsafeBytes { write(memfd, $0.baseAddress!, prefixLength + 3) }
        #expect(try Resume.readFallbackPlan(memfd) == plan)
        #expect(throws: StartRefused.self) { try Resume.open(memfd: memfd, failedUpgrade: nil) }
    }

    @Test func sectionsMustBeKnownPresentOnceAndAlone() throws {
        func handoff(_ tags: [UInt32], trailing: [UInt8] = []) -> [UInt8] {
            var body = HandoffWriter()
            for tag in tags {
                body.u32(tag)
                body.u64(1)
                body.u8(0)
            }
            var block = HandoffWriter()
            plan.encode(into: &block)
            var out = HandoffWriter()
            out.raw(HandoffFormat.magic)
            out.u32(HandoffFormat.current)
            out.u32(UInt32(block.bytes.count))
            out.raw(block.bytes)
            out.u64(UInt64(body.bytes.count))
            out.raw(body.bytes)
            out.raw(trailing)
            return out.bytes
        }
        let all = HandoffSection.allCases.map(\.rawValue)
        #expect(try HandoffFormat.decode(handoff(all), readable: HandoffFormat.readable).sections.count == all.count)
        #expect(throws: HandoffError.unknownSection(99)) { try HandoffFormat.decode(handoff(all + [99]), readable: HandoffFormat.readable) }
        #expect(throws: HandoffError.duplicateSection(3)) { try HandoffFormat.decode(handoff(all + [3]), readable: HandoffFormat.readable) }
        #expect(throws: HandoffError.missingSection(.world)) {
            try HandoffFormat.decode(handoff(all.filter { $0 != 4 }), readable: HandoffFormat.readable)
        }
        #expect(throws: HandoffError.invalid("bytes after the body")) {
            try HandoffFormat.decode(handoff(all, trailing: [0]), readable: HandoffFormat.readable)
        }
    }

    @Test func theEngineSectionComesBackWholeAndRefusesEveryTruncation() throws {
        var admin = AdminCounters()
        admin.reloads = 3
        admin.upgrades = 2
        admin.lastUpgradeHeldMicroseconds = 8_500
        admin.lastReloadWallSeconds = 1_790_000_000
        let section = EngineHandoff(
            fromVersion: "1.1.0+abc", holdStartedNanoseconds: 42, startedNanoseconds: 7, enginePath: "/srv/gs",
            paths: UpgradePaths(modulePath: "/srv/m.so", modulesDirectory: "/srv", enginesDirectory: "/srv/engines"),
            arguments: ["--port", "0"], counters: EngineCounters(lineTooLong: 1, serverFull: 2, rateLimited: 3,
                                                                 rateLimitCloses: 4, idleCloses: 5),
            admin: admin, outputOverflows: 6)
        var writer = HandoffWriter()
        section.encode(into: &writer)
        var reader = HandoffReader(writer.bytes)
        let back = try EngineHandoff(from: &reader, format: HandoffFormat.current)
        #expect(back.fromVersion == "1.1.0+abc" && back.enginePath == "/srv/gs" && back.arguments == ["--port", "0"])
        #expect(back.paths.enginesDirectory == "/srv/engines" && back.holdStartedNanoseconds == 42)
        #expect(back.counters.idleCloses == 5 && back.outputOverflows == 6)
        #expect(back.admin.reloads == 3 && back.admin.upgrades == 2 && back.admin.lastUpgradeHeldMicroseconds == 8_500)
        #expect(back.admin.lastReloadWallSeconds == 1_790_000_000 && back.admin.lastHeldMicroseconds == nil)
        for length in 0..<writer.bytes.count {
            var truncated = HandoffReader(Array(writer.bytes[..<length]))
            #expect(throws: HandoffError.self) { try EngineHandoff(from: &truncated, format: HandoffFormat.current) }
        }
        // Format 1 had no first-poll time: a section written by such an
        // engine (the same bytes without the last field) still reads.
        var formatOne = HandoffWriter()
        section.encode(into: &formatOne)
        var oldReader = HandoffReader(Array(formatOne.bytes.dropLast(1)))
        let old = try EngineHandoff(from: &oldReader, format: 1)
        #expect(old.admin.lastUpgradeFirstPollMicroseconds == nil && old.outputOverflows == 6)
        var newReader = HandoffReader(Array(formatOne.bytes.dropLast(1)))
        #expect(throws: HandoffError.self) { try EngineHandoff(from: &newReader, format: 2) }
    }

    @Test func theCheckLineIsExactlyOneShape() {
        // One number (as engines before ranges printed it) is a range of one.
        #expect(EngineIdentity.parseCheckLine("hotswap-engine 1.1.0+ab handoff 1\n")! == ("1.1.0+ab", 1...1))
        #expect(EngineIdentity.parseCheckLine("hotswap-engine 1.1.0+ab handoff 2-5\n")! == ("1.1.0+ab", 2...5))
        #expect(EngineIdentity.parseCheckLine(EngineIdentity.checkLine)! == (EngineIdentity.version, EngineIdentity.readableFormats))
        for wrong in ["", "hello", "hotswap-engine 1 handoff", "hotswap-engine 1 handoff x", "hotswap-engine  handoff 1",
                      "hotswap-engine 1 handoff 1 extra", "engine 1 handoff 1", "hotswap-engine 1 handoff 3-2",
                      "hotswap-engine 1 handoff 1-", "hotswap-engine 1 handoff -1", "hotswap-engine 1 handoff 1-2-3"]
        {
            #expect(EngineIdentity.parseCheckLine(wrong) == nil, "\(wrong)")
        }
    }
}

/// What World and the pieces under it hand over, in process.
@Suite struct WorldHandoffTests {
    private let fields = [
        FieldSpec(kind: .session, name: "name", type: .string, unique: true, defaultInt: 0, defaultString: []),
        FieldSpec(kind: .session, name: "score", type: .int, unique: false, defaultInt: 5, defaultString: []),
        FieldSpec(kind: .room, name: "round", type: .int, unique: false, defaultInt: 1, defaultString: []),
        FieldSpec(kind: .global, name: "logins", type: .int, unique: false, defaultInt: 0, defaultString: []),
    ]

    private func world() -> World { World(limits: World.Limits(maxRooms: 10, maxRoomMembers: 4)) }

    private func encoded(_ world: World) -> [UInt8] {
        var writer = HandoffWriter()
        world.encodeHandoff(into: &writer)
        return writer.bytes
    }

    @Test func sessionsRoomsAndEveryColumnComeBackWithTheSameIds() throws {
        let old = world()
        let bindings = try old.bind(fields)
        let peers = (0..<4).map { _ in RecordingPeer() }
        var ids = peers.map { old.openSession(peer: $0) }
        old.closeSession(ids[1])  // a free slot, whose old id must stay stale
        let stale = ids.remove(at: 1)
        let lobby = try "lobby".withBytes { try old.createRoom(named: $0) }
        try old.join(ids[2], lobby)
        try old.join(ids[0], lobby)
        for (index, id) in ids.enumerated() {
            try "p\(index)".withBytes { try old.setString(bindings[0], row: old.row(of: id, for: bindings[0], type: .string), $0) }
            old.setInt(bindings[1], row: try old.row(of: id, for: bindings[1], type: .int), Int64(10 * index))
        }
        old.setInt(bindings[2], row: try old.row(of: lobby, for: bindings[2], type: .int), 3)
        old.setInt(bindings[3], row: 0, 7)
        // A field the next module dropped stays as a hidden column.
        let hidden = FieldSpec(kind: .session, name: "title", type: .string, unique: false, defaultInt: 0,
                               defaultString: Array("rookie".utf8))
        _ = try old.bind([hidden])

        let new = world()
        var reader = HandoffReader(encoded(old))
        let byID = Dictionary(uniqueKeysWithValues: zip(ids, [peers[0], peers[2], peers[3]]))
        try new.restoreHandoff(from: &reader) { byID[$0] }
        let rebound = try new.bind(fields)
        #expect(rebound.map(\.column) == bindings.map(\.column))
        #expect(new.sessionIDs() == ids)
        #expect(!new.contains(session: stale))
        #expect(try new.withMembers(of: lobby) { $0 } == [ids[2], ids[0]])
        #expect("lobby".withBytes { new.findRoom(named: $0) } == lobby)
        for (index, id) in ids.enumerated() {
            #expect(try "p\(index)".withBytes { try new.find(rebound[0], holding: $0) } == id)
            #expect(new.int(rebound[1], row: try new.row(of: id, for: rebound[1], type: .int)) == Int64(10 * index))
        }
        #expect(new.int(rebound[2], row: try new.row(of: lobby, for: rebound[2], type: .int)) == 3)
        #expect(new.int(rebound[3], row: 0) == 7)
        #expect(new.fieldNames(.session) == old.fieldNames(.session))
        // The next session takes the freed slot with the next generation,
        // as it would have in the old world.
        let next = new.openSession(peer: RecordingPeer())
        #expect(next == old.openSession(peer: RecordingPeer()))
        #expect(next != stale)
        // Output reaches the same peers: the room's members (the first and
        // last session), not the one outside it.
        try "hi".withBytes { try new.broadcast(lobby, except: nil, $0) }
        #expect([peers[0].take(), peers[2].take(), peers[3].take()] == [["hi"], [], ["hi"]])
    }

    @Test func aWorldThatBreaksItsOwnRulesIsRefused() throws {
        let old = world()
        let id = old.openSession(peer: RecordingPeer())
        let room = try "r".withBytes { try old.createRoom(named: $0) }
        try old.join(id, room)
        let bytes = encoded(old)

        // A live session without its connection.
        var reader = HandoffReader(bytes)
        #expect(throws: HandoffError.self) { try world().restoreHandoff(from: &reader) { _ in nil } }

        // A room that lists a session which says it is in no room: the
        // session's room id is the first 8 bytes after its slot header.
        var broken = bytes
        let roomAt = 4 + 4 + 1
        for offset in 0..<8 { broken[roomAt + offset] = 0 }
        var brokenReader = HandoffReader(broken)
        #expect(throws: HandoffError.invalid("room#0.1 lists session#0.1, which is not in it")) {
            try world().restoreHandoff(from: &brokenReader) { _ in RecordingPeer() }
        }
        // Truncated anywhere: refused.
        for length in 0..<bytes.count {
            var truncated = HandoffReader(Array(bytes[..<length]))
            #expect(throws: HandoffError.self) { try world().restoreHandoff(from: &truncated) { _ in RecordingPeer() } }
        }
    }

    @Test func anArenaWhoseFreeListContradictsItsSlotsIsRefused() throws {
        typealias Arena = GenerationalArena<Int>
        let live = Arena.Slot(generation: 1, value: 1)
        let free = Arena.Slot(generation: 2, value: nil)
        let arena = try Arena(kind: .room, slots: [live, free], freeList: [1])
        #expect(arena.count == 1 && arena.capacity == 2)
        #expect(throws: HandoffError.self) { try Arena(kind: .room, slots: [live, free], freeList: []) }
        #expect(throws: HandoffError.self) { try Arena(kind: .room, slots: [live, free], freeList: [0]) }
        #expect(throws: HandoffError.self) { try Arena(kind: .room, slots: [live, free], freeList: [1, 1]) }
        #expect(throws: HandoffError.self) { try Arena(kind: .room, slots: [live], freeList: [4]) }
    }

    @Test func anUnfinishedLineGoesOverWithinTheLimitOnly() throws {
        var framer = LineFramer(maxLineLength: 16)
        let restored = framer.restore(buffered: Array("SAY he".utf8))
        #expect(restored)
        var lines: [String] = []
        _ = Array("llo\r\n".utf8).withUnsafeBytes { bytes in
            framer.feed(bytes) { lines.append(String(decoding: $0, as: UTF8.self)); return true }
        }
        #expect(lines == ["SAY hello"])
        var other = LineFramer(maxLineLength: 8)
        let outcomes = [other.restore(buffered: Array("a\nb".utf8)), other.restore(buffered: Array("123456789".utf8)),
                        other.restore(buffered: Array("12345678\r".utf8))]
        #expect(outcomes == [false, false, true])
    }
}

/// The world's section as bytes, for the in-process tests (the engine itself
/// writes and reads the `WorldHandoff` value through its section).
extension World {
    func encodeHandoff(into writer: inout HandoffWriter) { handoff.encode(into: &writer) }

    func restoreHandoff(from reader: inout HandoffReader, peer: (GameID) -> (any SessionPeer)?)
        throws(HandoffError)
    {
        try restore(WorldHandoff.decode(from: &reader, format: HandoffFormat.current), peer: peer)
    }
}
