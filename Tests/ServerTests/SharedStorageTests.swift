import Foundation
import Testing

/// Players shared by several servers through PostgreSQL (docs/SCALING.md):
/// real servers, a real throwaway PostgreSQL cluster (`TestPostgres`), and
/// a database of each test's own.
@Suite struct SharedStorageTests {
    /// Two servers on one database, with a short lease and quick flushes.
    static func servers(_ url: String, lease: Int = 15, extra: [String] = []) throws -> (a: TestServer, b: TestServer) {
        let common = ["--database", url, "--flush-interval", "50", "--lease-seconds", "\(lease)"] + extra
        let a = try TestServer(arguments: common + ["--server-name", "a"])
        let b = try TestServer(arguments: common + ["--server-name", "b"])
        return (a, b)
    }

    static func waitForFlush(_ server: TestServer) throws {
        let flushed = try waitUntil(10) {
            let status = try server.statusFields()
            return status["dirty"] == "0" && status["in_flight"] == "0" && status["flush"] == "idle"
        }
        guard flushed else { throw TestFailure("no flush: \(try server.statusFields())") }
    }

    /// The owner and epoch of a player's row.
    static func lease(_ pg: TestPostgres, _ url: String, _ key: String) throws -> String {
        try pg.psql("SELECT coalesce(split_part(owner, '/', 1), '-') || ' ' || epoch FROM players WHERE key = '\(key)'", database: url)
    }

    @Test func aPlayerMovesBetweenServersThroughLogin() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let (a, b) = try Self.servers(url)
        let (alice, bob) = try playedRoom(a)
        #expect(try Self.lease(pg, url, "alice") == "a 1")
        // Held by a: b refuses, saying where she is.
        let elsewhere = try b.connect()
        let refused = try elsewhere.call("LOGIN alice")
        #expect(refused.hasPrefix("-ERR NAME_TAKEN that player is online on another server"), "\(refused)")
        #expect(try b.statusFields()["logins_elsewhere"] == "1")
        // She leaves a: her last changes and her lease go back together.
        #expect(try alice.call("QUIT") == "+BYE")
        #expect(try waitUntil(10) { try Self.lease(pg, url, "alice") == "- 1" })
        #expect(try waitUntil(10) { try a.statusFields()["leases_released"] == "1" })
        // b reads her at login, with what a wrote.
        #expect(try elsewhere.call("LOGIN alice").hasPrefix("+WELCOME alice login 1 score 6"))
        #expect(try Self.lease(pg, url, "alice") == "b 2")
        #expect(try b.statusFields()["leases_claimed"] == "1")
        // a let go of her record, and kept bob's (online).
        let status = try a.statusFields()
        #expect(status["players_stored"] == "1" && status["leases_held"] == "1", "\(status)")
        _ = bob
    }

    @Test func playersAreReadAtLoginNotAtStart() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        do {
            let first = try TestServer(arguments: ["--database", url, "--flush-interval", "50"])
            let (alice, bob) = try playedRoom(first)
            #expect(try alice.call("QUIT") == "+BYE")
            #expect(try bob.call("QUIT") == "+BYE")
            try Self.waitForFlush(first)
            #expect(first.stop() == 0)
        }
        #expect(try pg.psql("SELECT count(*) FROM players WHERE owner IS NOT NULL", database: url) == "0")
        let server = try TestServer(arguments: ["--database", url])
        #expect(try server.statusFields()["players_stored"] == "0")
        let bob = try server.connect()
        // The same --server-name (the host's): its global row goes on.
        #expect(try bob.call("LOGIN bob").hasPrefix("+WELCOME bob login 3 score 1"))
        #expect(try server.statusFields()["players_stored"] == "1")
        // A name never seen is a new player, as with a file.
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol").hasPrefix("+WELCOME carol login 4 score 0"))
        #expect(try server.statusFields()["players_stored"] == "2")
    }

    @Test func aKilledServersPlayersAreTakenAfterTheLeaseWithTheirLastFlush() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let (a, b) = try Self.servers(url, lease: 2)
        let (alice, _) = try playedRoom(a)
        try Self.waitForFlush(a)
        kill(a.process.processIdentifier, SIGKILL)
        a.process.waitUntilExit()
        let client = try b.connect()
        let started = Date()
        // Refused while a's lease runs, then taken, with the flushed score.
        #expect(try client.call("LOGIN alice").hasPrefix("-ERR NAME_TAKEN that player is online on another server"))
        var welcome = ""
        #expect(try waitUntil(10) {
            welcome = try client.call("LOGIN alice")
            return welcome.hasPrefix("+WELCOME")
        })
        #expect(welcome.hasPrefix("+WELCOME alice login 1 score 6"), "\(welcome)")
        #expect(Date().timeIntervalSince(started) < 6)
        #expect(try Self.lease(pg, url, "alice") == "b 2")
        _ = alice
    }

    @Test func aServerThatLostALeaseClosesThePlayersSession() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let server = try TestServer(arguments: ["--database", url, "--flush-interval", "50", "--lease-seconds", "3"])
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME"))
        #expect(try Self.lease(pg, url, "alice").hasSuffix(" 1"))
        // Another server took her (as one would after this one's lease ran
        // out while it was cut off): this one stops serving her.
        _ = try pg.psql("UPDATE players SET owner = 'other/1/1', epoch = epoch + 1, lease_expires = now() + interval '1 minute' WHERE key = 'alice'", database: url)
        #expect(try alice.event() == ">KICKED ELSEWHERE your player is now served by another server; this connection closes")
        #expect(try alice.closedByServer())
        #expect(try server.statusFields()["leases_lost"] == "1")
        #expect(server.logContains("player(s) taken by another server (alice)"))
        // Its stale copy is never written: the row stays the taker's.
        #expect(try Self.lease(pg, url, "alice") == "other 2")
    }

    @Test func aDatabaseThatCannotBeReachedRefusesTheStartWithTheReason() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        // The same cluster, a database that does not exist.
        let missing = url.replacingOccurrences(of: #"/[^/]+$"#, with: "/no_such_database", options: .regularExpression)
        let result = try runServerExpectingExit(["--port", "0", "--admin-port", "0", "--database", missing])
        #expect(result.status != 0)
        #expect(result.log.contains("refusing to start") && result.log.contains("no_such_database"), "\(result.log)")
    }

    @Test func theGameGoesOnWhileTheDatabaseIsDownAndFlushesResume() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let name = String(url.split(separator: "/").last!)
        let server = try TestServer(arguments: ["--database", url, "--flush-interval", "50"])
        let (alice, bob) = try playedRoom(server)
        try Self.waitForFlush(server)
        // The database refuses connections, and drops the server's.
        _ = try pg.psql("ALTER DATABASE \(name) ALLOW_CONNECTIONS false", database: "postgres")
        _ = try pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'", database: "postgres")
        #expect(try waitUntil(10) { Int(try server.statusFields()["db_errors"] ?? "0")! > 0 })
        // Play goes on; a new player cannot be read, and is told why.
        let score = try alice.call("SCORE")
        #expect(score.hasPrefix("+SCORE alice:6"), "\(score)")
        let carol = try server.connect()
        #expect(try carol.call("LOGIN carol") == "-ERR UNAVAILABLE player records cannot be read just now; retry in a moment")
        #expect(try server.statusFields()["login_db_errors"] == "1")
        #expect(try bob.call("QUIT") == "+BYE")
        // Back: the server connects again by itself and writes what waited.
        _ = try pg.psql("ALTER DATABASE \(name) ALLOW_CONNECTIONS true", database: "postgres")
        try Self.waitForFlush(server)
        #expect(try waitUntil(10) { try Self.lease(pg, url, "bob").hasPrefix("- ") })
        // Each connection comes back after its own backoff (at most 5 s):
        // a LOGIN refused meanwhile says to retry, and the retry works.
        #expect(try waitUntil(10) { try carol.call("LOGIN carol").hasPrefix("+WELCOME carol") })
    }

    @Test func anUpgradeKeepsThePlayersLeases() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let (a, b) = try Self.servers(url)
        let (alice, _) = try playedRoom(a)
        let pid = a.process.processIdentifier
        let upgraded = (try? a.connectAdmin().call("UPGRADE")) ?? "closed"
        #expect(upgraded.hasPrefix("+OK engine"), "\(upgraded)\n\(a.log)")
        // The same process, the same leases: b still refuses her, and her
        // next flush on a is not fenced.
        #expect(a.process.processIdentifier == pid)
        #expect(try b.connect().call("LOGIN alice").hasPrefix("-ERR NAME_TAKEN that player is online on another server"))
        #expect(try alice.call("SCORE").hasPrefix("+SCORE alice:6"))
        #expect(try alice.call("QUIT") == "+BYE")
        let released = try waitUntil(10) { try Self.lease(pg, url, "alice") == "- 1" }
        let seen = try Self.lease(pg, url, "alice")
        let status = try a.statusFields()
        #expect(released, "\(seen) \(status) \(a.log)")
        #expect(try a.statusFields()["leases_lost"] == "0")
    }

    @Test func sigtermGivesThePlayersBackAtOnce() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let (a, b) = try Self.servers(url)
        _ = try playedRoom(a)
        #expect(a.stop() == 0)
        // No lease to wait for: the final flush released them with their data.
        #expect(try pg.psql("SELECT count(*) FROM players WHERE owner IS NOT NULL", database: url) == "0")
        #expect(try b.connect().call("LOGIN alice").hasPrefix("+WELCOME alice login 1 score 6"))
    }

    @Test func aReloadThatWouldMigrateSharedPlayersIsRefused() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let server = try TestServer(arguments: ["--database", url])
        let alice = try server.connect()
        _ = try alice.call("LOGIN alice")
        let reply = try server.connectAdmin().call("RELOAD \(Products.library("GameLogicV3").path)")
        #expect(reply.contains("player field 'score' changes type, and players live in a shared database"), "\(reply)")
        #expect(try alice.call("SCORE") == "+SCORE alice:0")
    }

    /// The upgrade's hold asks nothing of the database: with it down, the
    /// upgrade goes through, the game goes on, and the next engine reads its
    /// leases back once the database answers, before it writes.
    @Test func anUpgradeWhileTheDatabaseIsDownLosesNothing() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let name = String(url.split(separator: "/").last!)
        let server = try TestServer(arguments: ["--database", url, "--flush-interval", "50", "--server-name", "a"])
        let (alice, _) = try playedRoom(server)
        try Self.waitForFlush(server)
        _ = try pg.psql("ALTER DATABASE \(name) ALLOW_CONNECTIONS false", database: "postgres")
        _ = try pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(name)'", database: "postgres")
        let upgraded = try server.connectAdmin().call("UPGRADE")
        #expect(upgraded.hasPrefix("+OK engine"), "\(upgraded)")
        #expect(try alice.call("SCORE").hasPrefix("+SCORE alice:6"))
        let save = try server.connectAdmin().call("SAVE")
        #expect(save.hasPrefix("-ERR"), "\(save)")
        #expect(try waitUntil(10) { Int(try server.statusFields()["db_errors"] ?? "0")! > 0 })
        _ = try pg.psql("ALTER DATABASE \(name) ALLOW_CONNECTIONS true", database: "postgres")
        #expect(try waitUntil(10) { server.logContains("leases this process holds", within: 0) }, "\(server.log)")
        try Self.waitForFlush(server)
        #expect(try alice.call("QUIT") == "+BYE")
        #expect(try waitUntil(10) { try Self.lease(pg, url, "alice") == "- 1" })
        #expect(try server.statusFields()["leases_lost"] == "0")
    }

    // MARK: - Leases that nothing uses go back

    @Test func aWrongSecretDoesNotKeepThePlayer() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let (a, b) = try Self.servers(url)
        let alice = try a.connect()
        #expect(try alice.call("LOGIN alice s3cret-word").hasPrefix("+WELCOME alice"))
        #expect(try alice.call("QUIT") == "+BYE")
        #expect(try waitUntil(10) { try Self.lease(pg, url, "alice") == "- 1" })
        // A wrong guess on a claims her, and gives her back once refused.
        #expect(try a.connect().call("LOGIN alice wrong-guess").hasPrefix("-ERR BAD_SECRET"))
        #expect(try waitUntil(10) { try Self.lease(pg, url, "alice") == "- 2" })
        #expect(try b.connect().call("LOGIN alice s3cret-word").hasPrefix("+WELCOME alice"))
    }

    @Test func loginsAbandonedDuringTheirClaimGiveTheLeaseBackAndTheAddressItsTurn() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        // Loopback counts like any address here (--max-login-checks-per-ip
        // and the per-address queue apply).
        let server = try TestServer(arguments: ["--database", url, "--flush-interval", "50", "--no-exempt-loopback"])
        for index in 0..<8 {
            let client = try server.connect()
            try client.send("LOGIN gone\(index)")
            client.reset()
        }
        // Every claim ended with its client gone: the rows, never written,
        // are deleted, and the address is not left with 8 logins pending.
        #expect(try waitUntil(10) { try pg.psql("SELECT count(*) FROM players", database: url) == "0" })
        #expect(try server.connect().call("LOGIN carol").hasPrefix("+WELCOME carol"))
    }

    @Test func twoLoginsOfOneNameAtOnceLeaveOneServedAndNotKicked() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let server = try TestServer(arguments: ["--database", url, "--flush-interval", "50"])
        do {
            let alice = try server.connect()
            _ = try alice.call("LOGIN alice")
            #expect(try alice.call("QUIT") == "+BYE")
            #expect(try waitUntil(10) { try Self.lease(pg, url, "alice").hasPrefix("- ") })
        }
        let one = try server.connect(), two = try server.connect()
        try one.send("LOGIN alice")
        try two.send("LOGIN alice")
        let answers = [try one.reply(), try two.reply()]
        #expect(answers.filter { $0.hasPrefix("+WELCOME alice") }.count == 1, "\(answers)")
        #expect(answers.filter { $0.hasPrefix("-ERR NAME_TAKEN") }.count == 1, "\(answers)")
        let winner = answers[0].hasPrefix("+WELCOME") ? one : two
        #expect(try winner.call("JOIN lobby").hasPrefix("+JOINED lobby"))
        try Self.waitForFlush(server)
        // Its lease is the row's: a write and a check later, still served.
        #expect(try winner.call("PING") == "+PONG")
        #expect(try server.statusFields()["leases_lost"] == "0")
    }

    /// A player who logs out and straight back in while the release is in
    /// a flush is served under a new lease, never under the one given back
    /// (another server could take the row between the two).
    @Test func aLoginWaitsForItsPlayersReleaseInAFlush() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        // A long lease: no held-lease check (every 20 s) lands in the
        // test, so the flush that waits on the table is the release's.
        let (a, b) = try Self.servers(url, lease: 60)
        // Bob stays: his leaving would be a flush of its own.
        let (alice, bob) = try playedRoom(a)
        try Self.waitForFlush(a)
        // The release's flush waits on the table for a moment.
        let locked = DispatchSemaphore(value: 0)
        let held = Thread {
            _ = try? pg.psql("BEGIN; LOCK TABLE players IN EXCLUSIVE MODE; SELECT pg_sleep(2); COMMIT;", database: url)
            locked.signal()
        }
        held.start()
        #expect(try waitUntil(5) {
            try pg.psql("SELECT count(*) FROM pg_locks WHERE mode = 'ExclusiveLock' AND relation = 'players'::regclass", database: url) == "1"
        })
        #expect(try alice.call("QUIT") == "+BYE")
        // Her release is in the flush, which waits on the table.
        #expect(try waitUntil(5) { try a.statusFields()["flush"] == "writing" })
        let again = try a.connect()
        try again.send("LOGIN alice")
        #expect(try b.connect().call("LOGIN alice").hasPrefix("-ERR NAME_TAKEN that player is online on another server"))
        let welcome = try again.reply()
        #expect(welcome.hasPrefix("+WELCOME alice login 3 score 6"), "\(welcome)")
        locked.wait()
        let lease = try Self.lease(pg, url, "alice")
        #expect(lease == "a 2", "\(lease) \(a.log)")
        #expect(try b.connect().call("LOGIN alice").hasPrefix("-ERR NAME_TAKEN that player is online on another server"))
        #expect(try again.call("SCORE").hasPrefix("+SCORE alice:6"))
        try Self.waitForFlush(a)
        #expect(try a.statusFields()["leases_lost"] == "0")
        #expect(try bob.call("PING") == "+PONG")
    }

    /// The fence itself: a write under a lease another server took changes
    /// nothing, and its session is closed (the held-lease check, every 20 s
    /// here, is not what finds it).
    @Test func aStaleWriteIsFencedAndItsSessionClosed() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let server = try TestServer(arguments: ["--database", url, "--flush-interval", "50", "--lease-seconds", "60"])
        let (alice, bob) = try playedRoom(server)
        try Self.waitForFlush(server)
        _ = try pg.psql("UPDATE players SET owner = 'other/1/1', epoch = epoch + 1 WHERE key = 'alice'", database: url)
        _ = try alice.collectGem(as: "alice", watchers: [bob])
        var event = ""
        #expect(try waitUntil(5) {
            event = try alice.event()
            return event.hasPrefix(">KICKED")
        })
        #expect(event == ">KICKED ELSEWHERE your player is now served by another server; this connection closes")
        #expect(try pg.psql("SELECT owner || ' ' || epoch || ' ' || \"score:int\" FROM players WHERE key = 'alice'", database: url)
            == "other/1/1 2 6")
        #expect(try server.statusFields()["leases_lost"] == "1")
    }

    @Test func twoLiveServersCannotShareAName() throws {
        let pg = try TestPostgres.shared()
        let url = try pg.makeDatabase()
        let first = try TestServer(arguments: ["--database", url, "--server-name", "one", "--lease-seconds", "2"])
        let second = try runServerExpectingExit(["--port", "0", "--admin-port", "0", "--database", url,
                                                 "--server-name", "one", "--lease-seconds", "2"])
        #expect(second.status != 0)
        #expect(second.log.contains("server name one is in use by a live server"), "\(second.log)")
        // Taken while the first was cut off (by hand here): it says so.
        _ = try pg.psql("UPDATE servers SET owner = 'one/2/2', lease_expires = now() + interval '1 minute' WHERE name = 'one'", database: url)
        #expect(first.logContains("this server's --server-name is held by another live server (one/2/2)", within: 5))
        _ = try pg.psql("UPDATE servers SET lease_expires = now() - interval '1 second' WHERE name = 'one'", database: url)
        // A clean exit frees the name at once.
        #expect(first.stop() == 0)
        let third = try TestServer(arguments: ["--database", url, "--server-name", "one"])
        #expect(try third.statusFields()["players_stored"] == "0")
    }
}
