import PropertyBased
import Testing
@testable import HotswapEngine

/// Every section of the handoff against random values (PropertyBased): what
/// one engine writes, the next reads back equal; every prefix of a valid
/// section is refused with a `HandoffError`; corrupted bytes (flipped bytes,
/// lengths and counts past the end) are refused or read as a value that
/// reads back the same again, never a crash. A failing case prints the seed
/// to pass to `.fixedSeed(...)`.
@Suite struct HandoffPropertyTests {
    @Test func theEngineSection() async { await checkSection(HandoffGen.engine) }
    @Test func theListenersSection() async { await checkSection(HandoffGen.listeners) }
    @Test func theConnectionsSection() async { await checkSection(HandoffGen.connections) }
    @Test func theWorldSection() async { await checkSection(HandoffGen.world) }
    @Test func theLogicSection() async { await checkSection(HandoffGen.logic) }
    @Test func theDatabaseSection() async { await checkSection(HandoffGen.database) }
    @Test func theResumeSection() async { await checkSection(HandoffGen.resume) }

    /// The world generator is not trivially small: across a few dozen
    /// worlds there are rooms with members, players and columns.
    @Test func theWorldGeneratorMakesWorldsWithEverything() {
        var rng = SystemRandomNumberGenerator()
        let worlds = (0..<40).map { _ in HandoffGen.world(&rng) }
        #expect(worlds.contains { $0.rooms.contains { $0.value?.members.isEmpty == false } })
        #expect(worlds.contains { $0.players.contains { $0.value?.session != nil } })
        #expect(worlds.contains { $0.sessions.contains { $0.value == nil } })
        #expect(worlds.contains { $0.store.tables.contains { !$0.columns.isEmpty && $0.rows > 0 } })
    }

    /// The sessions' records, on their own (they are framed by the
    /// connections section, whose test also covers them).
    /// The smallest table there is, last in the section: one player field
    /// with a two-letter name and no stored player. The count of its specs
    /// was bounded at 30 bytes each, and this one is 28: the section was
    /// refused, and an upgrade of such a server fell back every time.
    @Test func aLastTableOfShortFieldsAndNoRowsComesBack() throws {
        let world = World(limits: World.Limits(maxRooms: 8, maxRoomMembers: 4))
        _ = try world.bind([FieldSpec(kind: .player, name: "hp", type: .int, unique: false, defaultInt: 0,
                                      defaultString: [])])
        let section = world.handoff
        var writer = HandoffWriter()
        section.encode(into: &writer)
        #expect(try decode(WorldHandoff.self, writer.bytes) == section)
    }

    @Test func thePlayerAndAdminRecords() async {
        await propertyCheck(input: Generator(run: { HandoffGen.player(&$0) })) { try checkRecord($0) }
        await propertyCheck(input: Generator(run: { HandoffGen.admin(&$0) })) { try checkRecord($0) }
    }

    /// A whole handoff: the prefix, then every section in the engine's
    /// order, read back into equal sections.
    @Test func aWholeHandoffComesBackEqual() async {
        let plan = FallbackPlan(previousEngineFD: 3, previousEnginePath: "/srv/gs", arguments: ["--port", "0"],
                                environment: ["A=b"], passedFDs: [3, 4])
        await propertyCheck(count: 50, input: HandoffGen.sections) { sections in
            let bytes = HandoffFormat.encode(format: HandoffFormat.current, fallback: plan) { sections.encode(into: &$0) }
            let handoff = try HandoffFormat.decode(bytes, readable: HandoffFormat.readable)
            #expect(handoff.fallback == plan)
            #expect(try HandoffSections(decoding: handoff) == sections)
        }
    }

    /// Every section this engine writes is in a layout of the format it
    /// writes: bumping `HandoffFormat.current` means saying, per section,
    /// whether its layout still holds (`formats`).
    @Test func everySectionsLayoutBelongsToTheCurrentFormat() {
        var rng = SystemRandomNumberGenerator()
        let sections = HandoffGen.sections(&rng)
        #expect(sections.all.map { type(of: $0).section } == HandoffSection.allCases)
        for section in sections.all {
            #expect(type(of: section).formats.contains(HandoffFormat.current), "\(type(of: section).section)")
        }
    }

    /// Values the bytes can hold but a part refuses: the rules `validate`
    /// checks once a section is read.
    @Test func validReadsThatBreakAPartsRulesAreRefused() throws {
        var rng = SystemRandomNumberGenerator()
        var logic = HandoffGen.logic(&rng)
        logic.current.descriptor = -1
        #expect(throws: HandoffError.invalid("a module's private copy was not handed over")) { try roundTrip(logic) }
        logic = HandoffGen.logic(&rng)
        logic.history.removeAll { $0.role == .current }
        #expect(throws: HandoffError.self) { try roundTrip(logic) }

        let player = HandoffGen.player(&rng)
        let game = ConnectionsHandoff.Record(descriptor: 5, role: .game, closing: false, peer: "p", unsentOutput: [],
                                             handler: .player(player))
        #expect(throws: HandoffError.invalid("two connections for \(player.id)")) {
            try roundTrip(ConnectionsHandoff(connections: [game, game]))
        }
        var closing = game
        closing.closing = true
        #expect(throws: HandoffError.invalid("a closing connection has a session")) {
            try roundTrip(ConnectionsHandoff(connections: [closing]))
        }
        var onAdmin = game
        onAdmin.role = .admin
        #expect(throws: HandoffError.invalid("a player on the admin port")) {
            try roundTrip(ConnectionsHandoff(connections: [onAdmin]))
        }
        var notASession = player
        notASession.id = GameID(kind: .room, generation: 1, index: 0)
        #expect(throws: HandoffError.self) {
            try roundTrip(ConnectionsHandoff(connections: [.init(descriptor: 5, role: .game, closing: false, peer: "",
                                                                  unsentOutput: [], handler: .player(notASession))]))
        }
        var database = DatabaseHandoff(HandoffGen.writeBehind(&rng))
        database.writeBehind?.lockDescriptors = []
        // A shared database hands over no lock (StartPath refuses a SQLite
        // file without one, after the section is read).
        #expect(throws: Never.self) { try roundTrip(database) }
    }

    // MARK: - The properties

    /// Round trip, every truncation, and corruption, for one generator.
    private func checkSection<Section: HandoffSectionCodable & Equatable>(
        _ generator: Generator<Section, Shrink.None<Section>>, sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        await propertyCheck(input: generator) { value in
            var writer = HandoffWriter()
            value.encode(into: &writer)
            let bytes = writer.bytes
            // Round trip: equal, and written again byte for byte.
            let back = try decode(Section.self, bytes)
            #expect(back == value, sourceLocation: sourceLocation)
            var again = HandoffWriter()
            back.encode(into: &again)
            #expect(again.bytes == bytes, sourceLocation: sourceLocation)
            // Every prefix is refused, with a HandoffError (the decoder's
            // error type: nothing else can come out).
            for length in 0..<bytes.count {
                #expect(throws: HandoffError.self, sourceLocation: sourceLocation) {
                    try decode(Section.self, Array(bytes[..<length]))
                }
            }
            // Corruption: refused, or a value that is stable (what the
            // reader made of the bytes is written and read back as itself;
            // compared as bytes: a flipped double can be a NaN).
            for corrupted in corruptions(of: bytes) {
                if let odd = try? decode(Section.self, corrupted) {
                    var oddWriter = HandoffWriter()
                    odd.encode(into: &oddWriter)
                    var rewritten = HandoffWriter()
                    try decode(Section.self, oddWriter.bytes).encode(into: &rewritten)
                    #expect(rewritten.bytes == oddWriter.bytes, sourceLocation: sourceLocation)
                }
            }
        }
    }

    private func checkRecord<Record: HandoffRecord & Equatable>(_ value: Record) throws {
        var writer = HandoffWriter()
        value.encode(into: &writer)
        var reader = HandoffReader(writer.bytes)
        #expect(try Record(from: &reader, format: HandoffFormat.current) == value)
        #expect(reader.remaining == 0)
        for length in 0..<writer.bytes.count {
            var truncated = HandoffReader(Array(writer.bytes[..<length]))
            #expect(throws: HandoffError.self) { try Record(from: &truncated, format: HandoffFormat.current) }
        }
    }

    /// The section's bytes, decoded as the resumed engine does (whole, then
    /// checked).
    private func decode<Section: HandoffSectionCodable>(_ type: Section.Type, _ bytes: [UInt8]) throws(HandoffError) -> Section {
        var reader = HandoffReader(bytes)
        return try Section.decode(from: &reader, format: HandoffFormat.current)
    }

    private func roundTrip<Section: HandoffSectionCodable>(_ value: Section) throws(HandoffError) {
        var writer = HandoffWriter()
        value.encode(into: &writer)
        _ = try decode(Section.self, writer.bytes)
    }

    /// Each byte flipped (at most 64 places, spread over the bytes), and at
    /// 16 places a 32-bit length or count of 0xFFFFFFFF and of just past
    /// what is left.
    private func corruptions(of bytes: [UInt8]) -> [[UInt8]] {
        guard !bytes.isEmpty else { return [] }
        var out: [[UInt8]] = []
        let step = max(1, bytes.count / 64)
        for index in stride(from: 0, to: bytes.count, by: step) {
            var flipped = bytes
            flipped[index] ^= 0xFF
            out.append(flipped)
        }
        let lengthStep = max(1, bytes.count / 16)
        for index in stride(from: 0, to: max(bytes.count - 3, 0), by: lengthStep) {
            for value in [UInt32.max, UInt32(bytes.count - index)] {
                var long = bytes
                for offset in 0..<4 { long[index + offset] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(offset))) }
                out.append(long)
            }
        }
        return out
    }
}

/// Random values of every section, valid by each part's rules (the rules
/// themselves are tested with values built to break them).
enum HandoffGen {
    static let engine = Generator(run: { rng in engine(&rng) })
    static let listeners = Generator(run: { rng in listeners(&rng) })
    static let connections = Generator(run: { rng in connections(&rng) })
    static let world = Generator(run: { rng in world(&rng) })
    static let logic = Generator(run: { rng in logic(&rng) })
    static let database = Generator(run: { rng in DatabaseHandoff(Bool.random(using: &rng) ? writeBehind(&rng) : nil) })
    static let resume = Generator(run: { rng in resume(&rng) })
    static let sections = Generator(run: { rng in sections(&rng) })

    static func sections(_ rng: inout some RandomNumberGenerator) -> HandoffSections {
        HandoffSections(engine: engine(&rng), listeners: listeners(&rng), connections: connections(&rng),
                        world: world(&rng), logic: logic(&rng),
                        database: DatabaseHandoff(Bool.random(using: &rng) ? writeBehind(&rng) : nil),
                        resume: resume(&rng))
    }

    /// Resume entries on distinct sessions and tokens, connected or away
    /// (queued lines without CR, LF or NUL).
    static func resume(_ rng: inout some RandomNumberGenerator) -> ResumeHandoff {
        let count = Int.random(in: 0...6, using: &rng)
        let entries = (0..<count).map { index -> ResumeHandoff.Entry in
            let token = TokenHash(a: rng.next(), b: rng.next(), c: rng.next(), d: UInt64(index))
            let session = GameID(kind: .session, generation: UInt32.random(in: 1...1000, using: &rng), index: UInt32(index))
            guard Bool.random(using: &rng) else { return .init(session: session, token: token, away: nil) }
            let lines = (0..<Int.random(in: 0...4, using: &rng)).map { _ in bytes(&rng).filter { $0 != 0x0A && $0 != 0x0D && $0 != 0 } }
            return .init(session: session, token: token,
                         away: .init(remainingMilliseconds: UInt64.random(in: 0...86_400_000, using: &rng),
                                     awayMilliseconds: UInt64.random(in: 0...1_000_000, using: &rng),
                                     identified: Bool.random(using: &rng), dropped: Int.random(in: 0...1000, using: &rng),
                                     lines: lines))
        }
        return ResumeHandoff(counters: .init(resumes: Int.random(in: 0...100, using: &rng),
                                             refused: Int.random(in: 0...100, using: &rng),
                                             expired: Int.random(in: 0...100, using: &rng)),
                             entries: entries)
    }

    // MARK: Pieces

    static func string(_ rng: inout some RandomNumberGenerator, max: Int = 12) -> String {
        let alphabet: [Character] = ["a", "Z", "0", " ", "-", "/", "=", "é", "✓", "🎮"]
        return String((0..<Int.random(in: 0...max, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
    }

    static func bytes(_ rng: inout some RandomNumberGenerator, max: Int = 24) -> [UInt8] {
        (0..<Int.random(in: 0...max, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    static func strings(_ rng: inout some RandomNumberGenerator) -> [String] {
        (0..<Int.random(in: 0...4, using: &rng)).map { _ in string(&rng) }
    }

    static func fds(_ rng: inout some RandomNumberGenerator, min: Int = 0) -> [Int32] {
        (0..<Int.random(in: min...4, using: &rng)).map { _ in Int32.random(in: 0...65535, using: &rng) }
    }

    static func u64(_ rng: inout some RandomNumberGenerator) -> UInt64 { rng.next() }
    static func int(_ rng: inout some RandomNumberGenerator) -> Int { Int(truncatingIfNeeded: rng.next()) }

    // MARK: Sections

    static func engine(_ rng: inout some RandomNumberGenerator) -> EngineHandoff {
        var admin = AdminCounters()
        admin.reloads = int(&rng)
        admin.unchanged = int(&rng)
        admin.refused = int(&rng)
        admin.rollbacks = int(&rng)
        admin.evicted = int(&rng)
        admin.timedOut = int(&rng)
        admin.upgrades = int(&rng)
        admin.upgradesRefused = int(&rng)
        admin.logDroppedBefore = int(&rng)
        admin.auditDroppedBefore = int(&rng)
        // Wall-clock seconds go over unsigned: never negative.
        admin.lastReloadWallSeconds = Bool.random(using: &rng) ? Int.random(in: 0...Int.max, using: &rng) : nil
        admin.lastHeldMicroseconds = Bool.random(using: &rng) ? u64(&rng) : nil
        admin.lastUpgradeHeldMicroseconds = Bool.random(using: &rng) ? u64(&rng) : nil
        admin.lastUpgradeFirstPollMicroseconds = Bool.random(using: &rng) ? u64(&rng) : nil
        return EngineHandoff(
            fromVersion: string(&rng), holdStartedNanoseconds: u64(&rng), startedNanoseconds: u64(&rng),
            enginePath: string(&rng),
            paths: UpgradePaths(modulePath: string(&rng), modulesDirectory: string(&rng), enginesDirectory: string(&rng)),
            arguments: strings(&rng), inheritedDescriptors: fds(&rng), retiredDescriptors: fds(&rng),
            counters: EngineCounters(lineTooLong: int(&rng), serverFull: int(&rng), rateLimited: int(&rng),
                                     rateLimitCloses: int(&rng), idleCloses: int(&rng)),
            admin: admin, outputOverflows: int(&rng))
    }

    static func listeners(_ rng: inout some RandomNumberGenerator) -> ListenersHandoff {
        ListenersHandoff(listeners: (0..<Int.random(in: 0...3, using: &rng)).map { _ in
            .init(role: ListenerRole.allCases.randomElement(using: &rng)!, descriptor: Int32.random(in: 0...4096, using: &rng),
                  host: string(&rng), port: Int.random(in: 0...65535, using: &rng), backlog: Int32.random(in: 0...4096, using: &rng))
        })
    }

    static func player(_ rng: inout some RandomNumberGenerator) -> PlayerSessionRecord {
        let id = GameID(kind: .session, generation: UInt32.random(in: 1...1000, using: &rng), index: UInt32.random(in: 0...1000, using: &rng))
        // Half of them wait for a login check, some with lines behind it.
        let awaiting = Bool.random(using: &rng)
            ? AuthAsk(kind: Bool.random(using: &rng) ? .login : .setSecret, session: id, identity: bytes(&rng), secret: bytes(&rng))
            : nil
        let held: [UInt8] = awaiting != nil && Bool.random(using: &rng) ? bytes(&rng).filter { $0 != 10 } + [10] : []
        return PlayerSessionRecord(
            id: id,
            unfinishedLine: bytes(&rng), idleMilliseconds: u64(&rng), milliTokens: Int64(truncatingIfNeeded: u64(&rng)),
            refillAgeMilliseconds: u64(&rng), strikes: int(&rng), identified: Bool.random(using: &rng),
            awaiting: awaiting, heldLines: held)
    }

    static func admin(_ rng: inout some RandomNumberGenerator) -> AdminSessionRecord {
        AdminSessionRecord(
            authenticated: Bool.random(using: &rng), failedAuths: int(&rng), ageMilliseconds: u64(&rng),
            idleMilliseconds: u64(&rng), unfinishedLine: bytes(&rng), waiting: Bool.random(using: &rng),
            backlog: (0..<Int.random(in: 0...3, using: &rng)).map { _ in Bool.random(using: &rng) ? .line(bytes(&rng)) : .lineTooLong },
            closeWhenAnswered: Bool.random(using: &rng))
    }

    /// Connections whose handlers fit their roles, each player session once.
    static func connections(_ rng: inout some RandomNumberGenerator) -> ConnectionsHandoff {
        var used = Set<GameID>()
        return ConnectionsHandoff(connections: (0..<Int.random(in: 0...6, using: &rng)).map { _ in
            let role = ListenerRole.allCases.randomElement(using: &rng)!
            let closing = Bool.random(using: &rng)
            var handler = ConnectionHandlerRecord.none
            if !closing && role == .game {
                var session = player(&rng)
                while !used.insert(session.id).inserted { session = player(&rng) }
                handler = .player(session)
            } else if !closing && role == .admin {
                handler = .admin(admin(&rng))
            }
            return .init(descriptor: Int32.random(in: 0...65535, using: &rng), role: role, closing: closing,
                         peer: string(&rng), unsentOutput: bytes(&rng, max: 64), handler: handler)
        })
    }

    /// A world made by its own operations (fields of every kind, sessions
    /// opened and closed, rooms, players), so every rule holds.
    static func world(_ rng: inout some RandomNumberGenerator) -> WorldHandoff {
        let world = World(limits: World.Limits(maxRooms: 8, maxRoomMembers: 4))
        let specs = [EntityKind.global, .session, .room, .player].flatMap { kind in
            (0..<Int.random(in: 0...2, using: &rng)).map { index in
                let type: FieldType = Bool.random(using: &rng) ? .int : .string
                return FieldSpec(kind: kind, name: "f\(index)", type: type, unique: type == .string && Bool.random(using: &rng),
                                 defaultInt: Int64(truncatingIfNeeded: u64(&rng)), defaultString: type == .string ? bytes(&rng, max: 4) : [])
            }
        }
        let bindings = (try? world.bind(specs)) ?? []
        var sessions: [GameID] = []
        var rooms: [GameID] = []
        var serial = 0
        for _ in 0..<Int.random(in: 0...24, using: &rng) {
            serial += 1
            switch Int.random(in: 0...5, using: &rng) {
            case 0, 1: sessions.append(world.openSession(peer: RecordingPeer()))
            case 2 where !sessions.isEmpty:
                _ = world.closeSession(sessions.remove(at: Int.random(in: 0..<sessions.count, using: &rng)))
            case 3:
                if let room = try? "room\(serial)".withBytes({ try world.createRoom(named: $0) }) { rooms.append(room) }
            case 4 where !sessions.isEmpty && !rooms.isEmpty:
                try? world.join(sessions.randomElement(using: &rng)!, rooms.randomElement(using: &rng)!)
            case 5 where !sessions.isEmpty:
                _ = try? "key\(Int.random(in: 0...6, using: &rng))".withBytes {
                    try world.attachPlayer(sessions.randomElement(using: &rng)!, key: $0)
                }
            default: break
            }
        }
        // Field values on random live entities.
        let entities: [GameID] = sessions + rooms
        for binding in bindings {
            let targets: [GameID?] = binding.kind == .global ? [nil] : entities.filter { $0.kind == binding.kind }
            for (index, target) in targets.enumerated() {
                let row = target.flatMap { try? world.row(of: $0, for: binding, type: binding.type) } ?? 0
                if binding.type == .int {
                    world.setInt(binding, row: row, Int64(truncatingIfNeeded: u64(&rng)))
                } else {
                    _ = try? "v\(index)-\(Int.random(in: 0...99, using: &rng))".withBytes { try world.setString(binding, row: row, $0) }
                }
            }
        }
        return world.handoff
    }

    static func module(_ rng: inout some RandomNumberGenerator) -> LogicHandoff.Module {
        LogicHandoff.Module(descriptor: Int32.random(in: 0...4096, using: &rng), sourcePath: string(&rng), sha256: string(&rng),
                            name: string(&rng), version: string(&rng))
    }

    static func fault(_ rng: inout some RandomNumberGenerator) -> FaultRecord {
        FaultRecord(cause: Bool.random(using: &rng) ? .signal(Int32.random(in: 1...64, using: &rng))
                        : .timeout(milliseconds: Int.random(in: 0...Int(Int32.max), using: &rng)),
                    export: string(&rng), moduleName: string(&rng), moduleVersion: string(&rng),
                    moduleSHA256: string(&rng), address: UInt(u64(&rng)), frames: strings(&rng))
    }

    /// A history naming the current module once and the previous one once
    /// if there is one, among unmapped entries.
    static func logic(_ rng: inout some RandomNumberGenerator) -> LogicHandoff {
        let previous = Bool.random(using: &rng) ? module(&rng) : nil
        var roles: [LogicHandoff.Role] = [.current] + (previous == nil ? [] : [.previous])
        roles += (0..<Int.random(in: 0...3, using: &rng)).map { _ in .unmapped }
        roles.shuffle(using: &rng)
        let history = roles.map { role in
            LogicHandoff.HistoryItem(entry: ModuleHistoryEntry(name: string(&rng), version: string(&rng), sha256: string(&rng)),
                                     role: role)
        }
        var faults = FaultCounters()
        faults.faults = int(&rng)
        faults.timeouts = int(&rng)
        faults.autoRollbacks = int(&rng)
        faults.last = Bool.random(using: &rng) ? fault(&rng) : nil
        var recent: [String: [UInt64]] = [:]
        for _ in 0..<Int.random(in: 0...3, using: &rng) {
            recent[string(&rng)] = (0..<Int.random(in: 0...3, using: &rng)).map { _ in u64(&rng) }
        }
        return LogicHandoff(current: module(&rng), previous: previous, history: history, faultCounters: faults,
                            condemned: strings(&rng), lastLoadSHA256: Bool.random(using: &rng) ? string(&rng) : nil,
                            firstCallNanoseconds: Bool.random(using: &rng) ? u64(&rng) : nil, requestCount: int(&rng),
                            recentFaults: recent)
    }

    static func fieldSpec(_ rng: inout some RandomNumberGenerator) -> FieldSpec {
        var spec = FieldSpec(kind: EntityKind.allCases.randomElement(using: &rng)!, name: string(&rng),
                             type: Bool.random(using: &rng) ? .int : .string, unique: Bool.random(using: &rng),
                             defaultInt: Int64(truncatingIfNeeded: u64(&rng)), defaultString: bytes(&rng))
        spec.migrated = Bool.random(using: &rng)
        return spec
    }

    /// With at least one lock descriptor (`DatabaseHandoff.validate`).
    static func writeBehind(_ rng: inout some RandomNumberGenerator) -> WriteBehindHandoff {
        WriteBehindHandoff(
            lockDescriptors: fds(&rng, min: 1), globalColumns: int(&rng), playerColumns: int(&rng),
            declared: (0..<Int.random(in: 0...3, using: &rng)).map { _ in fieldSpec(&rng) },
            counters: FlushCounters(flushes: int(&rng), recordsWritten: int(&rng), errors: int(&rng),
                                    lastFlushMilliseconds: Double.random(in: 0...1e9, using: &rng),
                                    lastBatchRecords: int(&rng), lastHeldMicroseconds: u64(&rng),
                                    lastError: Bool.random(using: &rng) ? string(&rng) : nil))
    }
}
