import Glibc
import Testing
@testable import HotswapEngine

/// The bytes did not change when the parts' sections became values
/// (`HandoffSectionCodable`): a live engine's handoff, written through the
/// values, is byte for byte what the hand-ordered writers of format 2 wrote
/// (kept below, verbatim but for names, as the reference), followed in
/// format 3 by the time section (timers, ABI 1.3) and in format 4 by the
/// resume section (tokens and away sessions, ABI 1.4). When a section's
/// layout changes, `HandoffFormat.current` is bumped and this reference
/// goes with the format it describes.
@Suite struct HandoffWireTests {
    @Test func aLiveEnginesHandoffIsTheBytesFormat2Wrote() throws {
        let embedded = try EmbeddedEngine(token: "correct-horse-battery-staple")
        let engine = embedded.engine
        _ = try engine.listen(.game, host: "127.0.0.1", port: 0)
        _ = try engine.listen(.admin, host: "127.0.0.1", port: 0)
        let alice = try embedded.connect()
        let bob = try embedded.connect()
        let carol = try embedded.connect()
        let admin = try embedded.connect(.admin)
        #expect(alice.call("LOGIN alice")?.hasPrefix("+WELCOME") == true)
        #expect(bob.call("LOGIN bob")?.hasPrefix("+WELCOME") == true)
        #expect(alice.call("JOIN lobby")?.hasPrefix("+") == true)
        #expect(bob.call("JOIN lobby")?.hasPrefix("+") == true)
        #expect(carol.call("PING") == "+PONG")
        #expect(admin.call("AUTH correct-horse-battery-staple") == "+OK authenticated")
        // An unfinished line on a player and on the admin session.
        bob.send("SCO")
        admin.send("STAT")
        embedded.pump { false }
        #expect(engine.world.sessionCount == 3)

        var admins = AdminCounters()
        admins.reloads = 2
        admins.lastUpgradeFirstPollMicroseconds = 1234
        let section = EngineHandoff(
            fromVersion: "1.2.3", holdStartedNanoseconds: 42, startedNanoseconds: 7, enginePath: "/srv/gs",
            paths: UpgradePaths(modulePath: "/m.so", modulesDirectory: "/m", enginesDirectory: "/e"),
            arguments: ["--port", "0"], inheritedDescriptors: [3], retiredDescriptors: [9],
            counters: EngineCounters(lineTooLong: 1, serverFull: 0, rateLimited: 2, rateLimitCloses: 0, idleCloses: 3),
            admin: admins, outputOverflows: 4)
        // One reading of the engine (the time section holds time left, which
        // moves between two readings), written as the engine writes it.
        let sections = engine.handoffSections(engine: section)
        var now = HandoffWriter()
        sections.encode(into: &now)
        var reference = HandoffWriter()
        Format2Reference.encode(engine, section: section, into: &reference)
        // Format 3 is format 2's sections, then the time section; format 4
        // ends each player's record with its login being checked and adds the
        // resume section after the time section.
        sections.time.encodeSection(into: &reference)
        sections.resume.encodeSection(into: &reference)
        #expect(now.bytes.count > 500)
        #expect(sections.time.slots.contains { $0.live }, "the game's JOIN set a round timer")
        #expect(now.bytes == reference.bytes)
        // And it reads back into the same sections.
        let bytes = HandoffFormat.encode(format: HandoffFormat.current,
                                         fallback: FallbackPlan(previousEngineFD: 1, previousEnginePath: "/", arguments: [],
                                                                environment: [], passedFDs: [])) { $0.raw(now.bytes) }
        let decoded = try HandoffSections(decoding: HandoffFormat.decode(bytes, readable: HandoffFormat.readable))
        #expect(decoded == sections)
    }
}

/// How the engine wrote its handoff in format 2 before the sections were
/// values: each part straight from its live state, in this order.
private enum Format2Reference {
    static func encode(_ engine: Engine, section: EngineHandoff, into writer: inout HandoffWriter) {
        let now = engine.now
        writer.section(.engine) { section.encode(into: &$0) }
        writer.section(.listeners) { listeners(engine.transport, into: &$0) }
        writer.section(.connections) { writer in
            let live = engine.transport.connections.filter { $0.state != .closed }
            writer.u32(UInt32(live.count))
            for connection in live {
                writer.i32(connection.fileDescriptor)
                writer.string(connection.role.rawValue)
                writer.bool(connection.state != .open)
                writer.string(connection.peer)
                writer.bytes(connection.unsentOutput)
                if connection.state == .open, let player = connection.handler as? PlayerSession {
                    writer.u8(1)
                    self.player(player, now: now, into: &writer)
                } else if connection.state == .open, let admin = connection.handler as? AdminSession {
                    writer.u8(2)
                    self.admin(admin, now: now, into: &writer)
                } else {
                    writer.u8(0)
                }
            }
        }
        writer.section(.world) { world(engine.world, into: &$0) }
        writer.section(.logic) { logic(engine.host, into: &$0) }
        writer.section(.database) { writer in
            writer.bool(engine.writeBehind != nil)
            guard let state = engine.writeBehind.map(WriteBehindHandoff.init) else { return }
            writer.u32(UInt32(state.lockDescriptors.count))
            for fd in state.lockDescriptors { writer.i32(fd) }
            writer.int(state.globalColumns)
            writer.int(state.playerColumns)
            writer.u32(UInt32(state.declared.count))
            for spec in state.declared { spec.encode(into: &writer) }
            let counters = state.counters
            writer.int(counters.flushes)
            writer.int(counters.recordsWritten)
            writer.int(counters.errors)
            writer.u64(counters.lastFlushMilliseconds.bitPattern)
            writer.int(counters.lastBatchRecords)
            writer.u64(counters.lastHeldMicroseconds)
            writer.optionalString(counters.lastError)
        }
    }

    static func listeners(_ transport: Transport, into writer: inout HandoffWriter) {
        writer.u32(UInt32(transport.listeners.count))
        for listener in transport.listeners {
            writer.string(listener.role.rawValue)
            writer.i32(listener.fileDescriptor)
            writer.string(listener.host)
            writer.u32(UInt32(listener.boundPort))
            writer.i32(listener.backlog)
        }
    }

    static func player(_ session: PlayerSession, now: UInt64, into writer: inout HandoffWriter) {
        writer.u64(session.id.raw)
        writer.bytes(session.framer.bufferedBytes)
        writer.u64(now.ageOf(session.lastRequest))
        writer.i64(session.limiter.milliTokens)
        writer.u64(now.ageOf(session.limiter.lastRefill))
        writer.int(session.limiter.strikes)
        writer.bool(session.identified)
        // Format 4: no login being checked (kind 0), no lines held behind one.
        writer.u8(0)
        writer.bytes([UInt8]())
    }

    static func admin(_ session: AdminSession, now: UInt64, into writer: inout HandoffWriter) {
        writer.bool(session.authenticated)
        writer.int(session.failedAttempts)
        writer.u64(now.ageOf(session.openedAt))
        writer.u64(now.ageOf(session.lastRequest))
        writer.bytes(session.framer.bufferedBytes)
        writer.bool(session.waiting)
        writer.u32(UInt32(session.backlog.count))
        for entry in session.backlog {
            switch entry {
            case .line(let bytes):
                writer.u8(0)
                writer.bytes(bytes)
            case .lineTooLong:
                writer.u8(1)
            }
        }
        writer.bool(session.closeWhenAnswered)
    }

    static func world(_ world: World, into writer: inout HandoffWriter) {
        func freeList(_ list: [UInt32]) {
            writer.u32(UInt32(list.count))
            for index in list { writer.u32(index) }
        }
        writer.u32(UInt32(world.sessions.slots.count))
        for slot in world.sessions.slots {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let record = slot.value {
                writer.u64(record.room?.raw ?? 0)
                writer.u64(record.player?.raw ?? 0)
            }
        }
        freeList(world.sessions.freeList)
        writer.u32(UInt32(world.rooms.slots.count))
        for slot in world.rooms.slots {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let room = slot.value {
                writer.bytes(room.name)
                writer.u32(UInt32(room.members.count))
                for member in room.members { writer.u64(member.raw) }
            }
        }
        freeList(world.rooms.freeList)
        writer.u32(UInt32(world.players.slots.count))
        for slot in world.players.slots {
            writer.u32(slot.generation)
            writer.bool(slot.value != nil)
            if let player = slot.value {
                writer.bytes(player.key)
                writer.u64(player.session?.raw ?? 0)
            }
        }
        freeList(world.players.freeList)
        writer.u32(UInt32(world.playerDirty.count))
        for flag in world.playerDirty { writer.bool(flag) }
        writer.u32(UInt32(world.dirtySlots.count))
        for slot in world.dirtySlots { writer.u32(UInt32(slot)) }
        writer.bool(world.globalDirty)
        world.snapshot().encodeHandoff(into: &writer)
    }

    static func logic(_ host: LogicHost, into writer: inout HandoffWriter) {
        func module(_ module: LoadedModule) {
            writer.i32(module.file?.descriptor ?? -1)
            writer.string(module.sourcePath)
            writer.string(module.sha256)
            writer.string(module.name)
            writer.string(module.version)
        }
        module(host.module)
        writer.bool(host.previousModule != nil)
        if let previous = host.previousModule { module(previous) }
        writer.u32(UInt32(host.history.count))
        for entry in host.history {
            writer.string(entry.name)
            writer.string(entry.version)
            writer.string(entry.sha256)
            let role: LogicHandoff.Role = entry.imagePath == nil ? .unmapped
                : entry.imagePath == host.module.imagePath ? .current
                : entry.imagePath == host.previousModule?.imagePath ? .previous : .unmapped
            writer.u8(role.rawValue)
        }
        writer.int(host.faultCounters.faults)
        writer.int(host.faultCounters.timeouts)
        writer.int(host.faultCounters.autoRollbacks)
        writer.bool(host.faultCounters.last != nil)
        if let last = host.faultCounters.last { last.encode(into: &writer) }
        writer.strings(host.condemned.sorted())
        writer.optionalString(host.lastLoadSHA256)
        writer.optionalU64(host.firstCallNanoseconds)
        writer.int(host.requestCount)
        let now = host.nowMilliseconds
        writer.u32(UInt32(host.faultPolicy.recent.count))
        for (sha256, times) in host.faultPolicy.recent.sorted(by: { $0.key < $1.key }) {
            writer.string(sha256)
            writer.u32(UInt32(times.count))
            for time in times { writer.u64(now.ageOf(time)) }
        }
    }
}
