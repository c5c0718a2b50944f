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
        // The JOIN made the room: its first round starts (an hour on a calm server).
        #expect(try alice.event() == ">ROUND 1 ends_in 3600")
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
        #expect(try alice.call("LOGIN al ice cream").hasPrefix("-ERR SYNTAX"))
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
        #expect(try alice.event() == ">ROUND 1 ends_in 3600")
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

    /// A refused JOIN changes nothing anyone can see: the player stays at
    /// their place in the old room's join order, and no member of either
    /// room hears a >LEAVE or a >JOIN.
    @Test func joiningAFullRoomKeepsYouWhereYouWere() throws {
        let server = try TestServer(arguments: ["--max-room-members", "3"])
        var rooms: [String: [LineClient]] = ["full": [], "home": []]
        for (name, room) in [("alice", "full"), ("carol", "full"), ("frank", "full"),
                             ("dave", "home"), ("bob", "home"), ("erin", "home")] {
            let client = try server.connect()
            _ = try client.call("LOGIN \(name)")
            #expect(try client.call("JOIN \(room)").hasPrefix("+JOINED \(room) "))
            if rooms[room]!.isEmpty { #expect(try client.event() == ">ROUND 1 ends_in 3600") }  // made it
            for member in rooms[room]! { #expect(try member.event().hasPrefix(">JOIN \(name) ")) }
            rooms[room]!.append(client)
        }
        let (alice, carol, frank) = (rooms["full"]![0], rooms["full"]![1], rooms["full"]![2])
        let (dave, bob, erin) = (rooms["home"]![0], rooms["home"]![1], rooms["home"]![2])
        let map = try bob.call("LOOK")

        // bob, in the middle of home's join order, is refused the full room.
        #expect(try bob.call("JOIN full") == "-ERR ROOM_FULL that room is full")
        #expect(try bob.call("WHO") == "+WHO dave bob erin")
        #expect(try bob.call("SCORE") == "+SCORE dave:0 bob:0 erin:0")
        #expect(try bob.call("LOOK") == map)
        for member in [alice, carol, frank, dave, erin] { #expect(try member.noEventsPending()) }
        #expect(try alice.call("WHO") == "+WHO alice carol frank")
        // bob still hears his room, and only his room.
        #expect(try erin.call("SAY still here?") == "+OK")
        #expect(try bob.event() == ">SAY erin still here?")
        #expect(try alice.call("SAY full up") == "+OK")
        #expect(try bob.noEventsPending())
    }

    /// --max-rooms refuses only a room that would be new, changes nothing
    /// for the player refused, and a room that goes away frees its slot.
    @Test func theRoomLimitRefusesOnlyNewRoomsAndChangesNothing() throws {
        let server = try TestServer(arguments: ["--max-rooms", "2"])
        let dave = try server.connect()
        let alice = try server.connect()
        let bob = try server.connect()
        let carol = try server.connect()
        for (client, name) in [(dave, "dave"), (alice, "alice"), (bob, "bob"), (carol, "carol")] {
            _ = try client.call("LOGIN \(name)")
        }
        try dave.joinNewRoom("a")
        _ = try alice.call("JOIN a")
        try bob.joinNewRoom("b")
        #expect(try dave.event().hasPrefix(">JOIN alice "))

        #expect(try carol.call("JOIN c") == "-ERR ROOM_LIMIT no more rooms can be created")
        #expect(try carol.call("WHO").hasPrefix("-ERR NOT_IN_ROOM"))
        #expect(try carol.call("JOIN a").hasPrefix("+JOINED a at "))
        #expect(try dave.event().hasPrefix(">JOIN carol "))
        #expect(try alice.event().hasPrefix(">JOIN carol "))

        // dave, first in his room, is refused a new one and keeps his place.
        let map = try dave.call("LOOK")
        #expect(try dave.call("JOIN c") == "-ERR ROOM_LIMIT no more rooms can be created")
        #expect(try dave.call("WHO") == "+WHO dave alice carol")
        #expect(try dave.call("LOOK") == map)
        for other in [alice, bob, carol] { #expect(try other.noEventsPending()) }
        #expect(try server.statusFields()["rooms"] == "2")

        // A room that goes away frees its slot.
        #expect(try bob.call("LEAVE") == "+LEFT b")
        #expect(try carol.joinNewRoom("c").hasPrefix("+JOINED c at "))
        #expect(try dave.event() == ">LEAVE carol")
        #expect(try alice.event() == ">LEAVE carol")
        #expect(try bob.call("JOIN d") == "-ERR ROOM_LIMIT no more rooms can be created")
        #expect(Set(try bob.call("ROOMS").split(separator: " ").dropFirst()) == ["a:2", "c:1"])
    }

    /// Rounds are timed now: taking the last gem of the board deals no new
    /// one and starts no round. On a calm server (gems come back after an
    /// hour) the board stays empty, positions and scores stay as they are,
    /// and nobody hears anything but the moves.
    @Test func theLastGemNoLongerEndsTheRound() throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        let bobAt = try Board(bob.call("LOOK")).position
        // collectGem checks that bob sees each step, and that nothing
        // follows a gem for alice (no >ROUND).
        let takes = try alice.takeGems(6, as: "alice", watchers: [bob])
        #expect(takes.map(\.score) == [1, 2, 3, 4, 5, 6])
        let board = try Board(alice.call("LOOK"))
        #expect(board.gems.isEmpty, "\(board.gems)")
        #expect(board.position == Board.Point(x: takes[5].x, y: takes[5].y))
        #expect(try Board(bob.call("LOOK")).position == bobAt)
        #expect(try Board(bob.call("LOOK")).gems.isEmpty)
        #expect(try bob.call("SCORE") == "+SCORE alice:6 bob:0")
        #expect(try alice.noEventsPending())
        #expect(try bob.noEventsPending())
    }

    @Test func switchingRoomsTellsBothRoomsAndKeepsTheScore() throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob(in: "first")
        let carol = try server.connect()
        _ = try carol.call("LOGIN carol")
        try carol.joinNewRoom("second")
        #expect(try bob.collectGem(as: "bob", watchers: [alice]).score == 1)

        let joined = try bob.call("JOIN second")
        let spot = try #require(joined.wholeMatch(of: /\+JOINED second at (\d) (\d) players 2/))
        #expect(try alice.event() == ">LEAVE bob")
        #expect(try carol.event() == ">JOIN bob \(spot.1) \(spot.2)")
        #expect(try bob.noEventsPending())  // no +LEFT, no event from either room
        #expect(try alice.call("WHO") == "+WHO alice")
        #expect(try carol.call("WHO") == "+WHO carol bob")
        #expect(try bob.call("SCORE") == "+SCORE carol:0 bob:1")
        #expect(try Board(bob.call("LOOK")).position == Board.Point(x: Int(spot.1)!, y: Int(spot.2)!))
        #expect(try bob.call("SAY moved") == "+OK")
        #expect(try carol.event() == ">SAY bob moved")
        #expect(try alice.noEventsPending())
        #expect(try carol.noEventsPending())
    }

    /// However a player goes, the others in the room see `>LEAVE`, the
    /// room's member list drops them and their name is free again.
    enum Departure: String, CaseIterable, Sendable {
        case quit, idleTimeout, flood, overLongLine, reset, slowReader
    }

    @Test(arguments: Departure.allCases)
    func everyWayOfLeavingIsAnnounced(_ departure: Departure) throws {
        let arguments: [String] = switch departure {
        case .quit, .reset: []
        case .idleTimeout: ["--idle-timeout", "2"]
        case .flood: ["--rate-limit", "10", "--rate-burst", "5"]
        case .overLongLine: ["--max-line-length", "64"]
        case .slowReader: ["--max-output-bytes", "65536", "--rate-limit", "0"]
        }
        let server = try TestServer(arguments: arguments)
        let alice = try server.connect()
        let bob = try server.connect(receiveBuffer: departure == .slowReader ? 4096 : nil)
        _ = try alice.call("LOGIN alice")
        _ = try bob.call("LOGIN bob")
        try alice.joinNewRoom("r")
        _ = try bob.call("JOIN r")
        #expect(try alice.event().hasPrefix(">JOIN bob "))

        var last: String?
        switch departure {
        case .quit:
            last = try bob.call("QUIT")
        case .idleTimeout:
            // alice keeps talking (so only bob is idle) until she hears bob go.
            var beats = 0
            while !alice.hasInput(within: 0.25), beats < 60 {
                #expect(try alice.call("PING") == "+PONG")
                beats += 1
            }
            last = try bob.readLine()
        case .flood:
            try bob.write(Array(String(repeating: "PING\n", count: 300).utf8))
            while let line = try bob.readLine() { last = line }
        case .overLongLine:
            try bob.write(Array(repeating: UInt8(ascii: "x"), count: 4096))
            last = try bob.readLine()
        case .reset:
            bob.reset()
        case .slowReader:
            // bob never reads what alice says; alice talks until he is cut off.
            let text = String(repeating: "x", count: 3000)
            for _ in 0..<4000 {
                #expect(try alice.call("SAY \(text)") == "+OK")
                if alice.events.contains(">LEAVE bob") { break }
            }
        }
        switch departure {
        case .quit: #expect(last == "+BYE")
        case .idleTimeout: #expect(last == ">TIMEOUT idle for too long; closing")
        case .flood: #expect(last == "-ERR RATE_LIMITED too many requests; closing")
        case .overLongLine: #expect(last == "-ERR LINE_TOO_LONG line exceeds the maximum length; closing")
        case .reset, .slowReader: break
        }
        if departure != .reset && departure != .slowReader { #expect(try bob.closedByServer()) }
        #expect(try alice.event() == ">LEAVE bob")
        #expect(try alice.call("WHO") == "+WHO alice")
        #expect(try alice.noEventsPending())
        #expect(try server.connect().call("LOGIN bob").hasPrefix("+WELCOME bob "))
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

    /// SIGTERM and SIGINT alike: every connection hears >SHUTDOWN before
    /// any departure, is closed, and the server exits with status 0.
    @Test(arguments: [SIGTERM, SIGINT])
    func shutdownTellsEveryoneAndExitsCleanly(_ signal: Int32) throws {
        let server = try TestServer()
        let (alice, bob) = try server.aliceAndBob()
        let frank = try server.connect()
        _ = try frank.call("LOGIN frank")
        kill(server.process.processIdentifier, signal)
        for (client, other) in [(alice, "bob"), (bob, "alice"), (frank, nil)] {
            #expect(try client.readLine() == ">SHUTDOWN the server is shutting down")
            // After it, at most the other member's departure, then the end.
            var rest: [String] = []
            while let line = try client.readLine() { rest.append(line) }
            #expect(rest.isEmpty || (other != nil && rest == [">LEAVE \(other!)"]), "\(rest)")
        }
        #expect(server.waitForExit() == 0)
        #expect(server.process.terminationReason == .exit)
    }
}

/// A parsed `+MAP x y row0 ... row7` reply.
struct Board {
    struct Point: Equatable, CustomStringConvertible {
        var x: Int
        var y: Int
        var description: String { "(\(x), \(y))" }
    }
    let position: Point
    let gems: [Point]
    /// Cells showing another player (`o`); gems under them do not show.
    let others: [Point]

    init(_ reply: String) throws {
        let parts = reply.split(separator: " ")
        guard parts.count == 11, parts[0] == "+MAP", let x = Int(parts[1]), let y = Int(parts[2]) else {
            throw TestFailure("not a map: \(reply)")
        }
        position = Point(x: x, y: y)
        var gems: [Point] = []
        var others: [Point] = []
        for (row, cells) in parts[3...].enumerated() {
            for (column, cell) in cells.enumerated() {
                if cell == "*" { gems.append(Point(x: column, y: row)) }
                if cell == "o" { others.append(Point(x: column, y: row)) }
            }
        }
        self.gems = gems
        self.others = others
    }

    func positionAndNearestGem() throws -> (Point, Point) {
        guard let gem = nearest(gems) else { throw TestFailure("no gems on the board") }
        return (position, gem)
    }

    /// The point of `points` fewest steps away (nil when there is none).
    func nearest(_ points: [Point]) -> Point? { points.min(by: { distance($0) < distance($1) }) }

    private func distance(_ p: Point) -> Int { abs(p.x - position.x) + abs(p.y - position.y) }
}
