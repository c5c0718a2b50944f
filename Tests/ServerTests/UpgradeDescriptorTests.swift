import Foundation
import Testing

/// What the descriptors handed over by an upgrade look like once the next
/// engine serves: close-on-exec again, so no later child (the next
/// upgrade's check, anything a candidate spawns) inherits the players'
/// sockets, the listeners or the database lock. Seen from outside, in
/// /proc, and from inside a candidate's `--check-upgrade`.
@Suite struct UpgradeDescriptorTests {
    /// The server's descriptors from 3 up that are sockets or the database
    /// (its lock and SQLite's own), and which of them lack O_CLOEXEC.
    private func inheritable(_ pid: Int32) throws -> (watched: Int, inheritable: [String]) {
        var watched = 0
        var found: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") {
            guard let fd = Int(name), fd > 2,
                  let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(name)"),
                  target.hasPrefix("socket:") || target.contains(".sqlite"),
                  let info = try? String(contentsOfFile: "/proc/\(pid)/fdinfo/\(name)", encoding: .utf8),
                  let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags:") }),
                  let flags = Int(line.dropFirst("flags:".count).trimmingCharacters(in: .whitespaces), radix: 8)
            else { continue }
            watched += 1
            if flags & 0o2000000 == 0 { found.append("\(fd) -> \(target)") }
        }
        return (watched, found)
    }

    /// A candidate that lists its own descriptors ("N -> target") into `log`
    /// when checked, then is the real server. The listing runs in a
    /// subshell: a redirected `for` would have the shell save its standard
    /// output (the check's socket) in a descriptor of its own first.
    private func spy(_ builds: EngineBuilds, log: URL) throws -> String {
        try builds.script("engine-spy", """
            if [ "$1" = --check-upgrade ]; then
              (for f in /proc/$$/fd/*; do echo "${f##*/} -> $(readlink "$f")"; done) > '\(log.path)'
            fi
            HOTSWAP_ENGINE_VERSION=spy exec '\(Products.server.path)' "$@"
            """)
    }

    @Test func handedOverDescriptorsAreCloseOnExecAgainAfterAnUpgradeAndAFallback() throws {
        let builds = try EngineBuilds()
        let scratch = try PersistenceTests.Scratch()
        let log = builds.directory.appendingPathComponent("check-fds.txt")
        let spy = try spy(builds, log: log)
        let liar = try builds.engineThatCannotRestore()
        let server = try TestServer(arguments: builds.serverArguments + ["--database", scratch.database.path,
                                                                         "--metrics-port", "0"])
        let (alice, bob) = try playedRoom(server)
        let admin = try server.connectAdmin()
        let pid = server.process.processIdentifier
        // What the process inherited from the test runner (if anything)
        // passes on as it came; nothing of the engine's own does.
        let inherited = try inheritable(pid).inheritable
        /// The check's own standard descriptors aside, the sockets and
        /// database descriptors it was given that the process did not inherit.
        func leaked(_ log: URL) throws -> [Substring] {
            try String(contentsOf: log, encoding: .utf8).split(separator: "\n").filter { line in
                guard let fd = Int(line.prefix { $0 != " " }), fd > 2 else { return false }
                let target = line.drop { $0 != ">" }.dropFirst(2)
                return (target.hasPrefix("socket:") || target.contains(".sqlite"))
                    && !inherited.contains { $0.hasSuffix(" " + target) }
            }
        }

        // Twice into the spy: the second check runs under an engine that was
        // itself handed everything, and sees none of it.
        for round in 1...2 {
            #expect(try admin.call("UPGRADE \(spy)").hasPrefix("+OK engine"), "round \(round)")
            let seen = try leaked(log)
            #expect(seen.isEmpty, "round \(round): \(seen)")
            var now = try inheritable(pid)
            #expect(try waitUntil { now = try inheritable(pid); return now.inheritable == inherited }, "\(now.inheritable)")
            // 3 listeners, alice, bob, the admin, the database lock and SQLite's own.
            #expect(now.watched >= 8, "\(now.watched)")
        }
        #expect(server.logContains("handed-over descriptors close-on-exec again in"))

        // A fallback: the previous engine resumes on the same descriptors.
        #expect(try admin.call("UPGRADE \(liar)").hasPrefix("-ERR UPGRADE_FAILED the new engine could not restore"))
        var now = try inheritable(pid)
        #expect(try waitUntil { now = try inheritable(pid); return now.inheritable == inherited }, "\(now.inheritable)")
        try FileManager.default.removeItem(at: log)
        #expect(try admin.call("UPGRADE \(spy)").hasPrefix("+OK engine spy -> spy"))
        let seen = try leaked(log)
        #expect(seen.isEmpty, "after the fallback: \(seen)")
        #expect(try alice.call("PING") == "+PONG")
        withExtendedLifetime(bob) {}
    }
}
