import Foundation
import Testing

/// Timers and room ticks (ABI 1.3) in a real server, driven by the
/// TimeProbeModule fixture (its header comment lists its requests and the
/// events it sends for each timer and tick it is handed).
@Suite struct TimeTests {
    static func module(_ name: String) -> String { Products.library(name).path }

    private func probeServer(_ extra: [String] = []) throws -> TestServer {
        try TestServer(arguments: ["--module", Self.module("TimeProbeModule")] + extra)
    }

    /// A tick event's number and skipped count.
    static func tickNumbers(_ tick: String) throws -> (n: UInt64, skipped: UInt64) {
        let match = try #require(tick.wholeMatch(of: /\>TICK v\d n=(\d+) skipped=(\d+) step=\d+/), "\(tick)")
        return (UInt64(match.1)!, UInt64(match.2)!)
    }

    /// The next event with `prefix`, skipping others.
    private func event(_ client: LineClient, _ prefix: String) throws -> String {
        for _ in 0..<10_000 {
            let line = try client.event()
            if line.hasPrefix(prefix) { return line }
        }
        throw TestFailure("no event starting with \(prefix)")
    }

    @Test func aTimerFiresOnceWithItsPayloadAndAPeriodicOneKeepsFiring() throws {
        let server = try probeServer()
        let alice = try server.connect()
        #expect(try alice.call("TIMER me 20 0 ping hello world").hasPrefix("+TIMER "))
        let fired = try event(alice, ">TIMER")
        #expect(fired.hasPrefix(">TIMER v1 ping hello world late="), "\(fired)")
        #expect(fired.hasSuffix(" fired=1"))
        let periodic = try alice.call("TIMER me 5 5 beat")
        for n in 1...5 { #expect(try event(alice, ">TIMER v1 beat").hasSuffix("fired=\(n)")) }
        let id = String(periodic.dropFirst("+TIMER ".count))
        #expect(try alice.call("CANCEL \(id)") == "+OK")
        #expect(try alice.call("CANCEL \(id)") == "-ERR -6")
        // Nothing more comes from it once cancelled (one may have been
        // queued in the same turn as the cancel's reply: drained first).
        _ = alice.takeEvents()
        #expect(!alice.hasInput(within: 0.2))
        let status = try server.statusFields()
        #expect(status["timers"] == "0")
        #expect(Int(status["timers_fired"] ?? "") ?? 0 >= 6)
    }

    @Test func badTimersAreRefusedWithAClearStatus() throws {
        let server = try probeServer(["--max-timers-per-owner", "5"])
        let alice = try server.connect()
        // Event names are [a-z0-9_.:-]; the payload at most 256 bytes.
        #expect(try alice.call("TIMER me 10 0 BAD") == "-ERR -5")
        #expect(try alice.call("TIMER me 10 0 ok \(String(repeating: "x", count: 257))") == "-ERR -5")
        // Not in a room: the owner is 0, not a session.
        #expect(try alice.call("TIMER room 10 0 ok") == "-ERR -1")
        // A flood from one owner stops at the limit, with GAME_ERR_LIMIT.
        #expect(try alice.call("TIMERS 100 60000 flood") == "+TIMERS set=5 status=-8")
        #expect(try server.statusFields()["timers"] == "5")
    }

    @Test func aTimerEndsWithItsOwner() throws {
        let server = try probeServer()
        let alice = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        #expect(try alice.call("TIMER me 60000 0 mine").hasPrefix("+TIMER"))
        #expect(try alice.call("TIMER room 60000 0 ours").hasPrefix("+TIMER"))
        #expect(try alice.call("TICK 10").hasPrefix("+OK"))
        var status = try server.statusFields()
        #expect(status["timers"] == "2")
        #expect(status["ticking_rooms"] == "1")
        alice.reset()
        // The session closed: its timer, and (the room left empty) the
        // room's timer and tick, are gone.
        #expect(try waitUntil { try server.statusFields()["timers"] == "0" })
        status = try server.statusFields()
        #expect(status["ticking_rooms"] == "0")
        #expect(status["rooms"] == "0")
    }

    @Test func ticksAreNumberedAtAFixedStepAndStopWithRateZero() throws {
        let server = try probeServer()
        let alice = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        #expect(try alice.call("TICK 50 echo") == "+OK")
        // Numbered 1, 2, ...; a stall of the loaded test machine may skip
        // some, which the next tick counts.
        var last: UInt64 = 0
        for _ in 1...10 {
            let tick = try event(alice, ">TICK")
            let (n, skipped) = try Self.tickNumbers(tick)
            #expect(n == last + 1 + skipped, "\(tick) after n=\(last)")
            #expect(tick.hasSuffix(" step=20"))
            last = n
        }
        #expect(try alice.call("TICK 0") == "+OK")
        _ = alice.takeEvents()
        #expect(!alice.hasInput(within: 0.2))
        #expect(try alice.call("TICK 61") == "-ERR -5")
        #expect(try server.statusFields()["ticks"].flatMap { Int($0) } ?? 0 >= 10)
    }

    /// A timer set by version 1 is handled by version 2 after a RELOAD;
    /// a module without hotswap_timer is refused while timers are pending,
    /// and without hotswap_tick while a room ticks.
    @Test func pendingTimersAreHandledByTheModuleLoadedWhenTheyFire() throws {
        let server = try probeServer()
        let alice = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        // Long enough to outlast the admin's connection and two reloads on
        // a loaded machine, short enough to wait for.
        #expect(try alice.call("TIMER me 4000 0 later").hasPrefix("+TIMER"))
        let admin = try server.connectAdmin()
        let refused = try admin.call("RELOAD \(Self.module("TimeProbeNoTimerModule"))")
        #expect(refused.contains("exports no hotswap_timer, and 1 pending timers would have no handler"), "\(refused)")
        #expect(try admin.call("RELOAD \(Self.module("TimeProbeModuleV2"))").hasPrefix("+OK timeprobe 1 -> timeprobe 2"))
        #expect(try event(alice, ">TIMER").hasPrefix(">TIMER v2 later - late="))
        // Now a ticking room: refused for the missing hotswap_tick.
        #expect(try alice.call("TICK 10") == "+OK")
        let tickRefused = try admin.call("RELOAD \(Self.module("TimeProbeNoTimerModule"))")
        #expect(tickRefused.contains("exports no hotswap_tick, and 1 ticking rooms would have no handler"), "\(tickRefused)")
        #expect(try alice.call("TICK 0") == "+OK")
        #expect(try admin.call("RELOAD \(Self.module("TimeProbeNoTimerModule"))").hasPrefix("+OK timeprobe 2 -> timeprobe 1"))
        // A module that could not handle a timer or a tick cannot set one.
        #expect(try alice.call("TIMER me 10 0 orphan") == "-ERR -9")
        #expect(try alice.call("TICK 10") == "-ERR -9")
        #expect(try server.statusFields()["timers"] == "0")
    }

    /// A fault in a timer's call is contained and undone like a request's:
    /// the timer it set inside is gone, the session is still connected,
    /// and the fault is counted.
    @Test func aFaultOrHangInATimerOrTickIsContainedAndUndone() throws {
        let server = try probeServer(["--call-timeout", "100", "--max-faults", "100"])
        let alice = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        #expect(try alice.call("TIMER me 1 0 setcrash").hasPrefix("+TIMER"))
        #expect(try waitUntil { try server.statusFields()["time_faults"] == "1" })
        // The timer set inside the faulted call was undone: none is pending,
        // and its "ghost" never fires.
        #expect(try server.statusFields()["timers"] == "0")
        #expect(try alice.call("PING") == "+PONG")
        // Its output was taken back with the rest of the call.
        #expect(alice.takeEvents().isEmpty)
        #expect(try alice.call("TIMER me 1 0 hang").hasPrefix("+TIMER"))
        #expect(try waitUntil { try server.statusFields()["timeouts"] == "1" })
        #expect(try alice.call("TICK 20 crash") == "+OK")
        #expect(try waitUntil { Int(try server.statusFields()["time_faults"] ?? "") ?? 0 >= 4 })
        #expect(try alice.call("TICK 0") == "+OK")
        // A hung tick is interrupted, undone and counted like a hung request,
        // and requests are still served between the hung ticks.
        #expect(try alice.call("TICK 20 hang") == "+OK")
        #expect(try waitUntil { Int(try server.statusFields()["timeouts"] ?? "") ?? 0 >= 3 })
        #expect(try alice.call("PING") == "+PONG")
        #expect(try alice.call("TICK 0") == "+OK")
        #expect(try server.statusFields()["last_fault"]?.hasSuffix(":hotswap_tick") == true)
        let status = try server.statusFields()
        #expect(status["last_fault"]?.hasSuffix(":hotswap_tick") == true, "\(status["last_fault"] ?? "")")
        #expect(try alice.call("PING") == "+PONG")
        #expect(server.process.isRunning)
    }

    /// Ticks and timers are counted toward the automatic rollback like
    /// requests: three faults roll the version back.
    @Test func faultingTicksRollTheVersionBack() throws {
        let server = try probeServer(["--max-faults", "3"])
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Self.module("TimeProbeModuleV2"))").hasPrefix("+OK"))
        let alice = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        #expect(try alice.call("TICK 20 crash") == "+OK")
        #expect(try waitUntil { try server.statusFields()["auto_rollbacks"] == "1" })
        #expect(try server.statusFields()["version"] == "1")
        #expect(try alice.call("PING") == "+PONG")
    }

    /// Batching holds a room's events until its tick and writes them in
    /// one go; a reply is never held, and carries what waited before it.
    @Test func batchedEventsWaitForTheTickAndRepliesDoNot() throws {
        let server = try probeServer()
        let alice = try server.connect(), bob = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        #expect(try bob.call("JOIN r") == "+JOINED")
        // One tick a second: events wait up to a second.
        #expect(try alice.call("TICK 1 echo") == "+OK")
        #expect(try alice.call("BATCH on") == "+OK")
        // Right after a tick, the next is about a second away.
        _ = try event(alice, ">TICK")
        #expect(try alice.call("SAY one") == "+OK")
        #expect(try alice.call("SAY two") == "+OK")
        // Alice's replies came at once, with her own events held before
        // them; Bob, who asked nothing, gets both at the next tick.
        #expect(alice.takeEvents() == [">SAID one", ">SAID two"])
        _ = try event(bob, ">TICK")
        #expect(!bob.hasInput(within: 0.3))
        #expect(try event(bob, ">SAID") == ">SAID one")
        #expect(try bob.event() == ">SAID two")
        #expect(try bob.event().hasPrefix(">TICK"))
        #expect(try alice.call("TICK 1") == "+OK")
        #expect(try alice.call("BATCH off") == "+OK")
        #expect(try alice.call("SAY three") == "+OK")
        #expect(bob.hasInput(within: 0.5))
        #expect(try bob.event() == ">SAID three")
        // Batching needs a tick.
        #expect(try alice.call("TICK 0") == "+OK")
        #expect(try alice.call("BATCH on") == "-ERR -9")
    }

    /// An engine upgrade hands timers and ticks over with the time they
    /// have left: none lost, none fired twice, ids still valid.
    @Test func timersAndTicksSurviveAnEngineUpgrade() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let server = try TestServer(arguments: builds.serverArguments + ["--module", Self.module("TimeProbeModule")])
        let alice = try server.connect(), bob = try server.connect()
        #expect(try alice.call("JOIN r") == "+JOINED")
        // Bob hears only of his timers: one that fires after the upgrade,
        // one that is still pending then.
        let reply = try bob.call("TIMER me 4000 0 across")
        let id = String(reply.dropFirst("+TIMER ".count))
        let keep = try bob.call("TIMER me 60000 0 kept")
        #expect(try alice.call("TICK 20 echo") == "+OK")
        var last = try Self.tickNumbers(try event(alice, ">TICK")).n
        let admin = try server.connectAdmin()
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine"))
        #expect(try server.statusFields()["engine"] == "next")
        #expect(!bob.hasInput(within: 0), "the timer fired before the new engine took over")
        // Ticks go on from where they were, numbered on, none doubled: 3 s
        // of them, most from the new engine.
        for _ in 0..<60 {
            let tick = try event(alice, ">TICK")
            let (n, skipped) = try Self.tickNumbers(tick)
            #expect(n == last + 1 + skipped, "\(tick) after n=\(last)")
            last = n
        }
        #expect(try alice.call("TICK 0") == "+OK")
        // The one-shot timer fires once, in the new engine.
        #expect(try event(bob, ">TIMER").hasPrefix(">TIMER v1 across - late="))
        #expect(try bob.call("CANCEL \(id)") == "-ERR -6")
        // The other's id still names it.
        #expect(try bob.call("CANCEL \(keep.dropFirst("+TIMER ".count))") == "+OK")
    }

    /// A module built for ABI 1.2 (no timers) still loads on this engine,
    /// at start and by RELOAD once no timer is pending.
    @Test func aModuleBuiltForABI12StillLoads() throws {
        let old = try TestServer(arguments: ["--module", Self.module("ABI12Module")])
        #expect(try old.connect().call("PING") == "+PONG old")
        let server = try probeServer()
        let alice = try server.connect()
        let timer = try alice.call("TIMER me 60000 0 pending")
        let admin = try server.connectAdmin()
        #expect(try admin.call("RELOAD \(Self.module("ABI12Module"))").contains("exports no hotswap_timer"))
        #expect(try alice.call("CANCEL \(timer.dropFirst("+TIMER ".count))") == "+OK")
        #expect(try admin.call("RELOAD \(Self.module("ABI12Module"))").hasPrefix("+OK timeprobe 1 -> old 1.2"))
        #expect(try alice.call("PING") == "+PONG old")
    }

    @Test func gameSettingsAreListedInStatusAndBadOnesRefuseTheStart() throws {
        let server = try probeServer(["--game-setting", "round_seconds=60", "--game-setting", "mode=fast"])
        #expect(try server.statusFields()["settings"] == "round_seconds=60,mode=fast")
        let refused = try runServerExpectingExit(["--port", "0", "--admin-port", "0", "--database", ":memory:",
                                                  "--game-setting", "Bad Key=1"])
        #expect(refused.status != 0)
        #expect(refused.log.contains("--game-setting 'Bad Key=1'"), "\(refused.log)")
    }
}

/// Durable timers: a player's or the global entity's timers are written
/// with the write-behind, deadlines on the wall clock, and come back after
/// a kill -9 or a SIGTERM; session and room timers end with the process.
@Suite struct DurableTimerTests {
    typealias Persistence = PersistenceTests

    private func server(_ database: String) throws -> TestServer {
        try TestServer(arguments: ["--module", TimeTests.module("TimeProbeModule"), "--database", database,
                                   "--flush-interval", "50"])
    }

    @Test func playerAndGlobalTimersSurviveAKillAndOverdueOnesFireOnce() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let first = try server(database)
        let alice = try first.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        #expect(try alice.call("TIMER player 600000 0 energy full").hasPrefix("+TIMER"))
        #expect(try alice.call("TIMER global 30000 0 soon").hasPrefix("+TIMER"))
        #expect(try alice.call("TIMER me 30000 0 mine").hasPrefix("+TIMER"))
        #expect(try first.statusFields()["timers_durable"] == "2")
        #expect(try waitUntil { try Persistence.sql(database, "SELECT count(*) FROM timers") == "2" })
        #expect(try Persistence.sql(database, "SELECT owner_kind || ':' || owner_key || ':' || event FROM timers ORDER BY event")
                    == "player:alice:energy\nglobal::soon")
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        // As if the server had been down for 100 s past its deadline.
        _ = try Persistence.sql(database, "UPDATE timers SET due_unix_ms = due_unix_ms - 130000 WHERE event = 'soon'")

        let second = try server(database)
        // The overdue global timer fires once, at start, about 100 s late;
        // the session's timer is gone.
        #expect(try waitUntil { try second.statusFields()["timers_fired"] == "1" })
        let status = try second.statusFields()
        #expect(Int(status["timer_lag_max_us"] ?? "") ?? 0 >= 90_000_000, "\(status)")
        #expect(status["timers"] == "1")
        #expect(status["timers_durable"] == "1")
        #expect(try waitUntil { try Persistence.sql(database, "SELECT count(*) FROM timers") == "1" })
        #expect(!second.logContains("stored timers dropped", within: 0.1))
    }

    @Test func aTimerSetJustBeforeSIGTERMIsWrittenByTheFinalFlush() throws {
        let scratch = try Persistence.Scratch()
        let database = scratch.database.path
        let first = try TestServer(arguments: ["--module", TimeTests.module("TimeProbeModule"), "--database", database,
                                               "--flush-interval", "60000"])
        let alice = try first.connect()
        #expect(try alice.call("TIMER global 600000 60000 daily").hasPrefix("+TIMER"))
        #expect(first.stop() == 0)
        #expect(try Persistence.sql(database, "SELECT event || ' ' || period_ms FROM timers") == "daily 60000")
        // A module without hotswap_timer would drop them: the start is refused.
        let refused = try runServerExpectingExit(["--port", "0", "--admin-port", "0", "--database", database,
                                                  "--module", TimeTests.module("TimeProbeNoTimerModule")])
        #expect(refused.status == 2)
        #expect(refused.log.contains("exports no hotswap_timer, and the database holds 1 timers it would drop"), "\(refused.log)")
        let second = try server(database)
        #expect(try second.statusFields()["timers_durable"] == "1")
    }
}
