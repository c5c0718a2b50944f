import Foundation
import Testing

/// Hostile clients and broken logic, over real sockets: each limit answers
/// clearly, counts in STATUS, and leaves everyone else served.
@Suite struct HardeningTests {
    private func status(_ server: TestServer) throws -> String {
        try server.connectAdmin().call("STATUS")
    }

    @Test func floodsAreRateLimitedAndPersistentAbuseIsClosed() throws {
        let server = try TestServer(arguments: ["--rate-limit", "10", "--rate-burst", "5"])
        let flooder = try server.connect()
        try flooder.write(Array(String(repeating: "PING\n", count: 10).utf8))
        var replies: [String] = []
        for _ in 0..<10 { replies.append(try #require(try flooder.readLine())) }
        #expect(replies.prefix(5).allSatisfy { $0 == "+PONG" })
        #expect(replies.suffix(5).allSatisfy { $0.hasPrefix("-ERR RATE_LIMITED") })

        try flooder.write(Array(String(repeating: "PING\n", count: 300).utf8))
        var last = ""
        while let line = try flooder.readLine() { last = line }
        #expect(last == "-ERR RATE_LIMITED too many requests; closing")

        let calm = try server.connect()
        #expect(try calm.call("PING") == "+PONG")
        let report = try status(server)
        #expect(report.contains("rate_limit_closes=1"))
        #expect(!report.contains("rate_limited=0 "))
    }

    /// A client that never logs in goes after --login-timeout, a logged-in
    /// one after --idle-timeout without a request, neither before its time,
    /// and a client that keeps making requests stays. Each is waited for as
    /// it happens (the sweep runs once a second).
    @Test func silentClientsTimeOutBeforeAndAfterLogin() throws {
        let server = try TestServer(arguments: ["--login-timeout", "1", "--idle-timeout", "3"])
        let connected = Date()
        let silent = try server.connect()
        let idle = try server.connect()
        let busy = try server.connect()
        _ = try idle.call("LOGIN idle")
        let loggedIn = Date()
        _ = try busy.call("LOGIN busy")
        /// busy keeps making requests while `client` waits for its timeout.
        func waitForTimeout(_ client: LineClient) throws {
            var beats = 0
            while !client.hasInput(within: 0.2), beats < 50 {
                #expect(try busy.call("PING") == "+PONG")
                beats += 1
            }
        }

        try waitForTimeout(silent)
        #expect(try silent.readLine() == ">TIMEOUT no login in time; closing")
        let silentAfter = Date().timeIntervalSince(connected)
        #expect(try silent.closedByServer())
        #expect(silentAfter > 0.9 && silentAfter < 5, "\(silentAfter) s")

        try waitForTimeout(idle)
        #expect(try idle.readLine() == ">TIMEOUT idle for too long; closing")
        let idleAfter = Date().timeIntervalSince(loggedIn)
        #expect(try idle.closedByServer())
        #expect(idleAfter > 2.8 && idleAfter < 7, "\(idleAfter) s")

        #expect(try busy.call("PING") == "+PONG")
        #expect(try status(server).contains("idle_closes=2"))
    }

    /// The docs count idle time "without a request": bytes of a line that
    /// never ends are not a request, so trickling them must not keep a
    /// session alive.
    // Fails until the engine counts idle time from the last request
    @Test func aClientTricklingAnUnfinishedLineStillTimesOut() throws {
        let server = try TestServer(arguments: ["--idle-timeout", "2"])
        let client = try server.connect()
        _ = try client.call("LOGIN trickle")
        let loggedIn = Date()
        // One byte every 0.2 s, never a LF, until the server speaks; give up
        // after the timeout, a sweep and slack.
        while !client.hasInput(within: 0.2), Date().timeIntervalSince(loggedIn) < 6 {
            try client.write(Array("x".utf8))
        }
        try #require(client.hasInput(within: 0), "still open after 6 s of trickling")
        #expect(try client.readLine() == ">TIMEOUT idle for too long; closing")
        #expect(try client.closedByServer())
        #expect(try status(server).contains("idle_closes=1"))
    }

    @Test func aClientThatDoesNotReadIsCutOffAndOthersAreNot() throws {
        let server = try TestServer(arguments: ["--max-output-bytes", "65536", "--rate-limit", "0"])
        let (talker, deaf) = try talkerAndDeaf(server)
        let text = String(repeating: "x", count: 3000)
        var cutOff = false
        for round in 0..<4000 {
            #expect(try talker.call("SAY \(text)") == "+OK")
            if round % 100 == 99, try talker.call("WHO") == "+WHO talker" {
                cutOff = true
                break
            }
        }
        #expect(cutOff)
        #expect(try talker.call("PING") == "+PONG")
        #expect(try status(server).contains("output_overflows=1"))
        withExtendedLifetime(deaf) {}  // it was cut off by the server, not by closing
    }

    /// Shutdown waits at most its 2-second grace for output to drain: a
    /// client that never reads, with megabytes queued for it (more than the
    /// kernel buffers hold), cannot keep the server from exiting.
    @Test func aClientThatNeverReadsCannotHoldUpShutdown() throws {
        let server = try TestServer(arguments: ["--max-output-bytes", "\(64 << 20)", "--rate-limit", "0"])
        let (talker, deaf) = try talkerAndDeaf(server)
        // About 9 MB for deaf (the loopback send buffer grows to 4 MiB at
        // most), written in batches; every +OK means its line was queued.
        let say = Array("SAY \(String(repeating: "x", count: 3000))\n".utf8)
        for _ in 0..<30 {
            try talker.write(Array([[UInt8]](repeating: say, count: 100).joined()))
            for _ in 0..<100 { #expect(try talker.reply() == "+OK") }
        }
        #expect(try talker.call("WHO") == "+WHO talker deaf")  // not cut off: under the output limit

        let signalled = Date()
        kill(server.process.processIdentifier, SIGTERM)
        #expect(try talker.readLine() == ">SHUTDOWN the server is shutting down")
        let status = server.waitForExit(grace: 10)
        let took = Date().timeIntervalSince(signalled)
        #expect(status == 0)
        #expect(server.process.terminationReason == .exit)
        #expect(took < 5, "exited \(took) s after SIGTERM")
        withExtendedLifetime(deaf) {}
    }

    @Test func connectionsOverTheLimitAreRefused() throws {
        let server = try TestServer(arguments: ["--max-connections", "2"])
        let first = try server.connect()
        let second = try server.connect()
        let third = try server.connect()
        #expect(try third.readLine() == "-ERR SERVER_FULL too many connections, try again later")
        #expect(try third.closedByServer())
        #expect(try first.call("PING") == "+PONG")
        #expect(try second.call("PING") == "+PONG")
        #expect(try status(server).contains("server_full=1"))
    }

    @Test func theOpenFileLimitCapsConnections() throws {
        let server = try TestServer(shell: "ulimit -n 80")
        #expect(server.logContains("--max-connections lowered from 10000 to 16"))
        var clients: [LineClient] = []
        for _ in 0..<16 { clients.append(try server.connect()) }
        for client in clients { #expect(try client.call("PING") == "+PONG") }
        let extra = try server.connect()
        #expect(try extra.readLine()?.hasPrefix("-ERR SERVER_FULL") == true)
    }

    @Test func resetInTheMiddleOfAWriteHurtsNobodyElse() throws {
        let server = try TestServer(arguments: ["--rate-limit", "0"])
        let player = try server.connect()
        _ = try player.call("LOGIN stays")
        for _ in 0..<5 {
            let rude = try server.connect(receiveBuffer: 4096)
            _ = try rude.call("LOGIN rude")
            _ = try rude.call("JOIN x")
            try rude.write(Array(String(repeating: "LOOK\n", count: 5000).utf8))
            rude.reset()
        }
        #expect(try player.call("PING") == "+PONG")
        #expect(try status(server).contains("sessions=1 "))
    }

    @Test func nulAndControlBytesGetClearAnswers() throws {
        let server = try TestServer()
        let alice = try server.connect()
        let bob = try server.connect()
        try alice.write(Array("LOGIN a\u{0}b\n".utf8))
        #expect(try alice.reply().hasPrefix("-ERR BAD_NAME"))
        _ = try alice.call("LOGIN alice")
        _ = try bob.call("LOGIN bob")
        try alice.joinNewRoom("r")
        _ = try bob.call("JOIN r")
        #expect(try alice.event().hasPrefix(">JOIN bob "))
        try bob.write(Array("SAY nul\u{0}here\n".utf8))
        #expect(try bob.reply() == "+OK")
        #expect(try alice.event() == ">SAY bob nul here")
    }
}

/// A module that makes bad calls on purpose: the engine answers each with
/// an error code, never a crash, and the request still gets one reply.
@Suite struct BrokenLogicTests {
    private func badServer() throws -> TestServer {
        try TestServer(arguments: ["--module", Products.library("BadCallsModule").path])
    }

    @Test func everyBadStateTableCallGetsAnErrorCode() throws {
        let server = try badServer()
        let client = try server.connect()
        let codes = try client.call("CHECK")
        // Order as in bad_calls.c. -1 session, -2 room, -3 field, -4 type, -5 argument.
        let expected = [-1, -3, -3, -4, -4, -3, -3, -5, -5, -5, -5, -5, -5, -5, -1, -1, -2, -5, -2, -2, -2, -3, -2, -5]
        #expect(codes == "+CODES " + expected.map(String.init).joined(separator: " "))
        #expect(try client.call("PING") == "+PONG")
    }

    @Test func oneReplyPerRequestWhateverTheModuleDoes() throws {
        let server = try badServer()
        let client = try server.connect()
        try client.send("TWICE")
        try client.send("NOREPLY")
        try client.send("FAIL")
        try client.send("FAILAFTERREPLY")
        try client.send("BADREPLY")
        try client.send("PING")
        #expect(try client.readLine() == "+ONE")
        #expect(try client.readLine() == "-ERR INTERNAL the game logic sent no reply")
        #expect(try client.readLine() == "-ERR INTERNAL the game logic failed on this request")
        #expect(try client.readLine() == "+REPLIED")
        #expect(try client.readLine() == "+CODE -5")
        #expect(try client.readLine() == "+PONG")
        #expect(server.logContains("second reply refused"))
    }

    /// The close hook runs once, with the session still there to read
    /// (its own close_session does not run it again, and its reply, with no
    /// request to answer, is refused); afterwards the id is stale.
    @Test func callsOnAClosedSessionAreRefused() throws {
        let server = try badServer()
        let other = try server.connect()
        var gone: LineClient? = try server.connect()
        let id = try #require(try gone!.call("ID").split(separator: " ").last)
        #expect(try other.call("HOOK") == "+HOOK runs=0 read=99 reply=99")
        gone = nil  // disconnects; the careless close hook runs
        // The disconnect is seen asynchronously; a session's teardown, hook
        // included, is done once its id is refused.
        #expect(try waitUntil { try other.call("SENDTO \(id)") == "+CODE -1 -1 -1" })
        #expect(try other.call("HOOK") == "+HOOK runs=1 read=0 reply=-9")
        #expect(try other.call("PING") == "+PONG")
    }

}

/// talker and deaf in room hall; deaf's receive buffer is small and it
/// never reads, so what talker says piles up in the server for it.
func talkerAndDeaf(_ server: TestServer) throws -> (talker: LineClient, deaf: LineClient) {
    let talker = try server.connect()
    let deaf = try server.connect(receiveBuffer: 4096)
    _ = try talker.call("LOGIN talker")
    _ = try deaf.call("LOGIN deaf")
    try talker.joinNewRoom("hall")
    _ = try deaf.call("JOIN hall")
    guard try talker.event().hasPrefix(">JOIN deaf ") else { throw TestFailure("talker did not hear deaf join") }
    return (talker, deaf)
}
