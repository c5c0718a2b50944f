import Foundation
import Testing

/// Engine upgrades that go wrong, over real sockets and a real execve:
/// refused before the exec, or handed back by a new engine that cannot
/// read the handoff, crashes or hangs while restoring. Either way the
/// players keep their connections and their game, and the admin who asked
/// hears the true reason.
@Suite struct UpgradeFallbackTests {
    /// The private module directories (`hotswap-modules-*`) in `directory`,
    /// the server's TMPDIR: one per running program, none left behind.
    private func privateDirectories(in directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("hotswap-modules-") }
    }

    /// A server whose TMPDIR is `scratch`, plus `environment` (NAME=value).
    private func server(_ builds: EngineBuilds, _ scratch: PersistenceTests.Scratch, environment: [String] = [],
                        arguments: [String] = []) throws -> TestServer
    {
        let exports = (["TMPDIR=\(scratch.directory.path)"] + environment).map { "export '\($0)'" }
        return try TestServer(arguments: builds.serverArguments + arguments, shell: exports.joined(separator: " && "))
    }

    @Test func aHandoffOverTheLimitIsRefusedBeforeTheExecWithNothingChanged() throws {
        let builds = try EngineBuilds()
        let scratch = try PersistenceTests.Scratch()
        // A limit of 1,000 bytes for this engine (HandoffFormat.maxBytes is
        // 1 GiB): the same refusal, without a gigabyte.
        let server = try server(builds, scratch, environment: ["HOTSWAP_TEST_HANDOFF_LIMIT=1000"])
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let status = try server.statusFields()
        let directories = try privateDirectories(in: scratch.directory)
        #expect(directories.count == 1)

        let reply = try server.connectAdmin().call("UPGRADE")
        let match = try #require(reply.wholeMatch(
            of: /-ERR UPGRADE_FAILED handoff is (\d+) bytes, over the limit of 1000 bytes an engine reads; nothing was changed/),
            "\(reply)")
        #expect(Int(match.1)! > 1000)
        #expect(try RoomSnapshot([alice, bob]) == before)
        let after = try server.statusFields()
        for key in ["engine", "pid"] { #expect(after[key] == status[key], "\(key)") }
        #expect(after["upgrades"] == "0" && after["upgrades_refused"] == "1")
        #expect(!server.log.contains("upgrade: exec"))
        #expect(try privateDirectories(in: scratch.directory) == directories)
        // The upgrade paused the database's flushes; the refusal resumed them.
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        #expect(try waitUntil { try server.statusFields()["dirty"] == "0" })
    }

    /// A new engine that reads less than the old one wrote refuses it, and
    /// its fallback reads only the block in front (never the body): the
    /// old engine comes back and says why.
    @Test func aNewEngineThatCannotReadSoLargeAHandoffHandsItBack() throws {
        let builds = try EngineBuilds()
        let scratch = try PersistenceTests.Scratch()
        let small = try builds.script("engine-small", """
            HOTSWAP_ENGINE_VERSION=small HOTSWAP_TEST_HANDOFF_LIMIT=1000 exec '\(Products.server.path)' "$@"
            """)
        let next = try builds.engine("next")
        let server = try server(builds, scratch)
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let version = try #require(try server.statusFields()["engine"])
        let admin = try server.connectAdmin()

        let reply = try admin.call("UPGRADE \(small)")
        #expect(reply.wholeMatch(of: /-ERR UPGRADE_FAILED the new engine could not restore \(cannot resume: the handoff is \d+ bytes, over the limit of 1000 bytes this engine reads\); engine \S+ resumed held_ms=\d+/) != nil, "\(reply)")
        #expect(reply.contains("engine \(version) resumed"), "\(reply)")
        #expect(try RoomSnapshot([alice, bob]) == before)
        #expect(try privateDirectories(in: scratch.directory).count == 1)
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine \(version) -> next"))
        #expect(try RoomSnapshot([alice, bob]) == before)
        #expect(try privateDirectories(in: scratch.directory).count == 1)
    }

    /// The fault-injection knob `HOTSWAP_TEST_RESTORE_FAULT` makes the new
    /// engine fault for real while restoring: a SIGSEGV before the fault
    /// guard is armed (the restore guard's own handler), abort() half-way
    /// through the restore (the fault guard's crash report, then its fatal
    /// hook), or a loop that never ends (the restore guard's timer). The
    /// previous engine comes back with the whole game.
    @Test(arguments: [("segv", "the new engine crashed while restoring (SIGSEGV)"),
                      ("abort", "the new engine crashed while restoring (SIGABRT)"),
                      ("socket-check-segv", "the new engine crashed while restoring (SIGSEGV)"),
                      ("hang", "the new engine did not finish restoring within 1000 ms")])
    func aNewEngineThatCrashesOrHangsWhileRestoringHandsEverythingBack(fault: String, reason: String) throws {
        let builds = try EngineBuilds()
        let scratch = try PersistenceTests.Scratch()
        let faulty = try builds.script("engine-\(fault)", """
            HOTSWAP_ENGINE_VERSION=faulty HOTSWAP_TEST_RESTORE_FAULT=\(fault) exec '\(Products.server.path)' "$@"
            """)
        let next = try builds.engine("next")
        // The check passes (it does not restore); the timer is short for
        // the hang only: a crash must hand back long before any timer.
        let server = try server(builds, scratch, arguments: fault == "hang" ? ["--upgrade-restore-timeout", "1000"] : [])
        let (alice, bob) = try playedRoom(server)
        let before = try RoomSnapshot([alice, bob])
        let status = try server.statusFields()
        let version = try #require(status["engine"])
        let admin = try server.connectAdmin()

        let reply = try admin.call("UPGRADE \(faulty)")
        let match = try #require(reply.wholeMatch(of: /-ERR UPGRADE_FAILED (.+); engine (\S+) resumed held_ms=(\d+)/), "\(reply)")
        #expect(String(match.1) == reason)
        #expect(String(match.2) == version)
        if fault == "hang" { #expect(Int(match.3)! >= 1000) }
        // Same process, same sockets, same game; the engine that asked is back.
        #expect(try RoomSnapshot([alice, bob]) == before)
        #expect(try alice.call("SAY still here") == "+OK")
        #expect(try bob.event() == ">SAY alice still here")
        let after = try server.statusFields()
        for key in ["engine", "pid"] { #expect(after[key] == status[key], "\(key)") }
        #expect(after["upgrades"] == "0" && after["upgrades_refused"] == "1")
        #expect(server.logContains("hotswap: \(reason); handing everything back to the previous engine"))
        if fault == "abort" { #expect(server.logContains("==== end of report: the fatal hook takes over ====")) }
        // The faulty engine's private directory went with it.
        #expect(try privateDirectories(in: scratch.directory).count == 1)
        // The engine that came back upgrades for real, and the new one's
        // guard is gone once it serves: no timer left to fire.
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine \(version) -> next"))
        #expect(try procFile("/proc/\(server.process.processIdentifier)/timers").isEmpty)
        #expect(try RoomSnapshot([alice, bob]) == before)
    }

    @Test func anUpgradeLeavesNoPrivateDirectoryOfTheOldEngineBehind() throws {
        let builds = try EngineBuilds()
        let scratch = try PersistenceTests.Scratch()
        let server = try server(builds, scratch)
        let player = try server.connect()
        #expect(try player.call("LOGIN alice").hasPrefix("+WELCOME"))
        let admin = try server.connectAdmin()
        var seen = Set(try privateDirectories(in: scratch.directory))
        #expect(seen.count == 1)
        for _ in 0..<3 {
            #expect(try admin.call("UPGRADE").hasPrefix("+OK engine"))
            let now = try privateDirectories(in: scratch.directory)
            // One directory: the new program's own, not one seen before.
            #expect(now.count == 1 && !seen.contains(now[0]), "\(now), before \(seen)")
            seen.formUnion(now)
        }
        #expect(try player.call("PING") == "+PONG")
        // And none once the server stops.
        #expect(server.stop() == 0)
        #expect(try privateDirectories(in: scratch.directory).isEmpty)
    }

    /// The variables that name or shape an engine are its own: the next
    /// engine does not inherit them (a plain build after a tagged one is
    /// not named after it), the fallback gets them back (the tagged build
    /// run again is still named so).
    @Test func anEnginesNameGoesToItsFallbackButNotToTheNextEngine() throws {
        let builds = try EngineBuilds()
        let next = try builds.engine("next")
        let plain = try builds.script("engine-plain", "exec '\(Products.server.path)' \"$@\"")
        let liar = try builds.engineThatCannotRestore()
        let server = try TestServer(arguments: builds.serverArguments)
        let player = try server.connect()
        #expect(try player.call("LOGIN alice").hasPrefix("+WELCOME"))
        let version = try #require(try server.statusFields()["engine"])
        let admin = try server.connectAdmin()
        #expect(try admin.call("UPGRADE \(next)").hasPrefix("+OK engine \(version) -> next "))
        let refused = try admin.call("UPGRADE \(liar)")
        #expect(refused.hasPrefix("-ERR UPGRADE_FAILED the new engine could not restore (") && refused.contains("; engine next resumed"),
                "\(refused)")
        #expect(try server.statusFields()["engine"] == "next")
        #expect(try admin.call("UPGRADE \(plain)").hasPrefix("+OK engine next -> \(version) "))
        #expect(try player.call("PING") == "+PONG")
    }
}
