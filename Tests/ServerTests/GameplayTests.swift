import Foundation
import Testing

/// End to end: a real gameserver process with the real GameLogic dylib,
/// driven over TCP the way players drive it.
@Suite struct GameplayTests {
    @Test func pingAnswersExactlyPong() throws {
        let server = try TestServer()
        let client = try server.connect()
        #expect(try client.call("PING") == "+PONG")
        #expect(try client.call("ping") == "+PONG")
    }

    @Test func pipelinedAndSplitRequestsAreAnsweredInOrder() throws {
        let server = try TestServer()
        let client = try server.connect()
        try client.write(Array("PING\r\nLOGIN carol\nPI".utf8))
        try client.write(Array("NG\nWHO\n".utf8))
        #expect(try client.readLine() == "+PONG")
        #expect(try client.readLine()?.hasPrefix("+WELCOME carol login") == true)
        #expect(try client.readLine() == "+PONG")
        #expect(try client.readLine()?.hasPrefix("-ERR NOT_IN_ROOM") == true)
    }

    @Test func twoPlayersMeetChatAndPlay() throws {
        let server = try TestServer()
        let alice = try server.connect()
        let bob = try server.connect()
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try bob.call("LOGIN bob").hasPrefix("+WELCOME bob"))
        #expect(try alice.call("JOIN lobby").hasPrefix("+JOINED lobby"))
        #expect(try bob.call("join lobby").hasPrefix("+JOINED lobby"))
        #expect(try alice.event().hasPrefix(">JOIN bob "))
        #expect(try alice.call("ROOMS") == "+ROOMS lobby:2")
        #expect(try bob.call("WHO") == "+WHO alice bob")

        #expect(try alice.call("SAY hello   bob") == "+OK")
        #expect(try bob.event() == ">SAY alice hello   bob")

        // Walk alice to a gem read off the map; her score must go up and
        // stay up for later commands, and bob must see every step. (A gem
        // hidden under bob's marker may be picked up on the way: count.)
        let (start, gem) = try Board(alice.call("LOOK")).positionAndNearestGem()
        var position = start
        var lastReply = ""
        var gemsTaken = 0
        while position != gem {
            let direction = position.x < gem.x ? "E" : position.x > gem.x ? "W" : position.y < gem.y ? "S" : "N"
            lastReply = try alice.call("MOVE \(direction)")
            if lastReply.hasPrefix("+GEM") { gemsTaken += 1 }
            position = try Board(alice.call("LOOK")).position
            let seen = try bob.event()
            #expect(seen.hasPrefix(">MOVE alice ") || seen.hasPrefix(">GEM alice "))
            #expect(seen.contains("alice \(position.x) \(position.y)"))
        }
        #expect(lastReply == "+GEM \(gem.x) \(gem.y) score \(gemsTaken)")
        #expect(try alice.call("SCORE") == "+SCORE alice:\(gemsTaken) bob:0")
        #expect(try Board(alice.call("LOOK")).gems.contains(gem) == false)
        #expect(try bob.call("SCORE") == "+SCORE alice:\(gemsTaken) bob:0")
    }

    @Test func movingOffTheBoardIsBlocked() throws {
        let server = try TestServer()
        let client = try server.connect()
        _ = try client.call("LOGIN dave")
        _ = try client.call("JOIN edge")
        var reply = ""
        for _ in 0..<9 {
            reply = try client.call("MOVE N")
            if reply.hasPrefix("-") { break }
        }
        #expect(reply.hasPrefix("-ERR BLOCKED"))
        #expect(try Board(client.call("LOOK")).position.y == 0)
    }

    @Test func mistakesGetErrorsAndTheSessionGoesOn() throws {
        let server = try TestServer()
        let alice = try server.connect()
        let other = try server.connect()
        #expect(try alice.call("SAY hi").hasPrefix("-ERR NOT_LOGGED_IN"))
        #expect(try alice.call("DANCE").hasPrefix("-ERR UNKNOWN_COMMAND"))
        #expect(try alice.call("").hasPrefix("-ERR EMPTY"))
        #expect(try alice.call("   ").hasPrefix("-ERR EMPTY"))
        #expect(try alice.call("LOGIN al ice").hasPrefix("-ERR SYNTAX"))
        #expect(try alice.call("LOGIN a\u{7}b").hasPrefix("-ERR BAD_NAME"))
        #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
        #expect(try alice.call("LOGIN alice2").hasPrefix("-ERR ALREADY_LOGGED_IN"))
        #expect(try other.call("LOGIN ALICE").hasPrefix("-ERR NAME_TAKEN"))
        #expect(try alice.call("SAY hi").hasPrefix("-ERR NOT_IN_ROOM"))
        #expect(try alice.call("MOVE N").hasPrefix("-ERR NOT_IN_ROOM"))
        #expect(try alice.call("JOIN no/slash").hasPrefix("-ERR BAD_ROOM"))
        #expect(try alice.call("JOIN lobby").hasPrefix("+JOINED lobby"))
        #expect(try alice.call("JOIN lobby").hasPrefix("-ERR ALREADY_IN_ROOM"))
        #expect(try alice.call("MOVE sideways").hasPrefix("-ERR SYNTAX"))
        #expect(try alice.call("SAY").hasPrefix("-ERR SYNTAX"))
        try alice.write([0x53, 0x41, 0x59, 0x20, 0xFF, 0xFE, 0x0A])  // "SAY " + invalid UTF-8
        #expect(try alice.reply().hasPrefix("-ERR BAD_UTF8"))
        #expect(try alice.call("PING") == "+PONG")
    }

    @Test func controlCharactersNeverReachAnotherScreen() throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        #expect(try bob.call("SAY \u{1B}[2Jgotcha\u{7}") == "+OK")
        #expect(try alice.event() == ">SAY bob  [2Jgotcha ")
    }

    @Test func leavingAndDisconnectingAreAnnounced() throws {
        let server = try TestServer()
        let alice = try server.connect()
        var bob: LineClient? = try server.connect()
        let carol = try server.connect()
        for (client, name) in [(alice, "alice"), (bob!, "bob"), (carol, "carol")] {
            _ = try client.call("LOGIN \(name)")
            _ = try client.call("JOIN arena")
        }
        #expect(try alice.event().hasPrefix(">JOIN bob"))
        #expect(try alice.event().hasPrefix(">JOIN carol"))

        #expect(try carol.call("LEAVE") == "+LEFT arena")
        #expect(try alice.event() == ">LEAVE carol")

        bob = nil  // the socket closes without a word
        #expect(try alice.event() == ">LEAVE bob")
        #expect(try alice.call("WHO") == "+WHO alice")
        // The name is free again and the empty room is gone with its last member.
        #expect(try carol.call("ROOMS") == "+ROOMS arena:1")
        let newBob = try server.connect()
        #expect(try newBob.call("LOGIN bob").hasPrefix("+WELCOME bob"))
        _ = try alice.call("LEAVE")
        #expect(try carol.call("ROOMS") == "+ROOMS")
    }

    @Test func joiningAFullRoomKeepsYouWhereYouWere() throws {
        let server = try TestServer(arguments: ["--max-room-members", "1"])
        let alice = try server.connect()
        let bob = try server.connect()
        let carol = try server.connect()
        _ = try alice.call("LOGIN alice")
        _ = try bob.call("LOGIN bob")
        _ = try carol.call("LOGIN carol")
        _ = try alice.call("JOIN full")
        _ = try bob.call("JOIN home")
        #expect(try bob.call("JOIN full").hasPrefix("-ERR ROOM_FULL"))
        #expect(try bob.call("WHO") == "+WHO bob")
        // Nobody saw bob leave home: carol joins it and finds him there.
        #expect(try carol.call("JOIN home").hasPrefix("-ERR ROOM_FULL"))
        #expect(try carol.call("ROOMS").contains("home:1"))
    }

    @Test func quitSaysByeAndCloses() throws {
        let server = try TestServer()
        let client = try server.connect()
        try client.write(Array("QUIT\nPING\n".utf8))
        #expect(try client.readLine() == "+BYE")
        #expect(try client.closedByServer())
    }

    @Test func halfClosedClientStillGetsItsReplies() throws {
        let server = try TestServer()
        let client = try server.connect()
        try client.write(Array("PING\nLOGIN erin\nPING\n".utf8))
        client.halfClose()
        #expect(try client.readLine() == "+PONG")
        #expect(try client.readLine()?.hasPrefix("+WELCOME erin") == true)
        #expect(try client.readLine() == "+PONG")
        #expect(try client.closedByServer())
    }

    @Test func overLongLineIsRefusedAndClosed() throws {
        let server = try TestServer(arguments: ["--max-line-length", "64"])
        let client = try server.connect()
        #expect(try client.call("PING") == "+PONG")
        try client.write(Array(repeating: UInt8(ascii: "x"), count: 4096))
        #expect(try client.readLine()?.hasPrefix("-ERR LINE_TOO_LONG") == true)
        #expect(try client.closedByServer())
        let next = try server.connect()
        #expect(try next.call("PING") == "+PONG")
    }

    @Test func shutdownTellsEveryoneAndExitsCleanly() throws {
        let server = try TestServer()
        let client = try server.connect()
        _ = try client.call("LOGIN frank")
        kill(server.process.processIdentifier, SIGTERM)
        #expect(try client.readLine() == ">SHUTDOWN the server is shutting down")
        #expect(try client.closedByServer())
        #expect(server.waitForExit() == 0)
    }
}

/// A parsed `+MAP x y row0 ... row7` reply.
struct Board {
    struct Point: Equatable { var x: Int; var y: Int }
    let position: Point
    let gems: [Point]

    init(_ reply: String) throws {
        let parts = reply.split(separator: " ")
        guard parts.count == 11, parts[0] == "+MAP", let x = Int(parts[1]), let y = Int(parts[2]) else {
            throw TestFailure("not a map: \(reply)")
        }
        position = Point(x: x, y: y)
        var gems: [Point] = []
        for (row, cells) in parts[3...].enumerated() {
            for (column, cell) in cells.enumerated() where cell == "*" { gems.append(Point(x: column, y: row)) }
        }
        self.gems = gems
    }

    func positionAndNearestGem() throws -> (Point, Point) {
        guard let gem = gems.min(by: { distance($0) < distance($1) }) else { throw TestFailure("no gems on the board") }
        return (position, gem)
    }

    private func distance(_ p: Point) -> Int { abs(p.x - position.x) + abs(p.y - position.y) }
}
