import Foundation
import Testing

/// One gem taken by `collectGem`: where, and the mover's new score.
struct GemTake: Equatable {
    let x: Int
    let y: Int
    let score: Int
}

extension LineClient {
    /// Walks this player (logged in as `name`, in a room of the default
    /// game) onto a gem and returns what it got. The walk reads the board
    /// with LOOK and steps toward the nearest gem; a gem hidden under
    /// another player's marker is found by visiting the `o` cells, one
    /// under this player by stepping off. Every watcher (the other members
    /// of the room, who must have no event pending) has to see each step as
    /// it was made (`>MOVE name x y`, `>GEM name x y score s`), and the
    /// mover nothing at all: on a calm server (`TestServer.calmGame`) no
    /// round ends and no gem comes back meanwhile.
    func collectGem(as name: String, watchers: [LineClient] = []) throws -> GemTake {
        var visited: [Board.Point] = []
        for _ in 0..<64 {
            let board = try Board(call("LOOK"))
            let here = board.position
            let target = board.nearest(board.gems) ?? board.nearest(board.others.filter { !visited.contains($0) })
            let direction: String
            if let target {
                direction = here.x < target.x ? "E" : here.x > target.x ? "W" : here.y < target.y ? "S" : "N"
            } else {
                direction = here.y > 0 ? "N" : "S"  // off the cell: a gem under us shows on the next LOOK
            }
            let reply = try call("MOVE \(direction)")
            if let moved = reply.wholeMatch(of: /\+MOVED (\d) (\d)/) {
                let point = Board.Point(x: Int(moved.1)!, y: Int(moved.2)!)
                if point == target, board.others.contains(point) { visited.append(point) }
                for watcher in watchers { try watcher.expectEvent(">MOVE \(name) \(point.x) \(point.y)") }
                continue
            }
            guard let gem = reply.wholeMatch(of: /\+GEM (\d) (\d) score (\d+)/) else {
                throw TestFailure("\(name): MOVE \(direction) from \(here) got '\(reply)'")
            }
            let take = GemTake(x: Int(gem.1)!, y: Int(gem.2)!, score: Int(gem.3)!)
            for watcher in watchers { try watcher.expectEvent(">GEM \(name) \(take.x) \(take.y) score \(take.score)") }
            // Nothing follows a gem for the mover (the last gem of a board
            // no longer starts a round: rounds are timed).
            let pong = try call("PING")
            let events = takeEvents()
            guard pong == "+PONG", events.isEmpty else {
                throw TestFailure("\(name): after a gem, '\(pong)' and events \(events)")
            }
            return take
        }
        throw TestFailure("\(name) found no gem in 64 steps")
    }

    /// Takes `count` gems, one `collectGem` after the other; returns them.
    @discardableResult
    func takeGems(_ count: Int, as name: String, watchers: [LineClient] = []) throws -> [GemTake] {
        try (0..<count).map { _ in try collectGem(as: name, watchers: watchers) }
    }

    /// JOINs `room`, which this JOIN creates: the `+JOINED` reply, then the
    /// room's first round, `>ROUND 1 ends_in S`. Returns the reply.
    @discardableResult
    func joinNewRoom(_ room: String) throws -> String {
        let reply = try call("JOIN \(room)")
        guard reply.hasPrefix("+JOINED \(room) at ") else { throw TestFailure("JOIN \(room): \(reply)") }
        let round = try event()
        guard round.wholeMatch(of: /\>ROUND 1 ends_in \d+/) != nil else {
            throw TestFailure("JOIN \(room) made the room, then '\(round)' instead of its first round")
        }
        return reply
    }

    /// The next event must be `expected`.
    func expectEvent(_ expected: String) throws {
        let seen = try event()
        guard seen == expected else { throw TestFailure("expected event '\(expected)', got '\(seen)'") }
    }

    /// True when nothing was pushed to this client: a PING round trip
    /// brings in every event queued for it before the PING was handled.
    func noEventsPending() throws -> Bool {
        let pong = try call("PING")
        return pong.hasPrefix("+PONG") && takeEvents().isEmpty
    }
}

/// Everything the members of one room can see of the game: each member's
/// board (own position, the others, the gems), the scores and the member
/// order. Equal snapshots mean no visible state changed.
struct RoomSnapshot: Equatable, CustomStringConvertible {
    let maps: [String]
    let scores: String
    let members: String

    init(_ players: [LineClient]) throws {
        maps = try players.map { try $0.call("LOOK") }
        scores = try players[0].call("SCORE")
        members = try players[0].call("WHO")
    }

    var description: String { "\(members) | \(scores) | \(maps.joined(separator: " | "))" }
}

/// alice and bob in `room` with a game behind them: alice took all six gems
/// of the room's first board, both left (the room went with them) and came
/// back to it made afresh, where bob took one of its six gems. Scores
/// (alice 6, bob 1), positions and the board (five gems) all differ from a
/// fresh start. On a calm server (TestServer's default) nothing changes
/// them but requests: the round lasts an hour and taken gems stay taken.
func playedRoom(_ server: TestServer, in room: String = "r") throws -> (alice: LineClient, bob: LineClient) {
    let (alice, bob) = try server.aliceAndBob(in: room)
    let takes = try alice.takeGems(6, as: "alice", watchers: [bob])
    guard takes.map(\.score) == [1, 2, 3, 4, 5, 6] else { throw TestFailure("alice's six gems: \(takes)") }
    let cleared = try Board(alice.call("LOOK"))
    guard cleared.gems.isEmpty else { throw TestFailure("gems left after six: \(cleared.gems)") }
    guard try alice.call("LEAVE") == "+LEFT \(room)" else { throw TestFailure("alice could not leave \(room)") }
    try bob.expectEvent(">LEAVE alice")
    guard try bob.call("LEAVE") == "+LEFT \(room)" else { throw TestFailure("bob could not leave \(room)") }
    try alice.joinNewRoom(room)
    guard try bob.call("JOIN \(room)").hasPrefix("+JOINED \(room) at ") else { throw TestFailure("bob's JOIN \(room)") }
    let joined = try alice.event()
    guard joined.hasPrefix(">JOIN bob ") else { throw TestFailure("alice heard '\(joined)' instead of bob's JOIN") }
    let bobs = try bob.collectGem(as: "bob", watchers: [alice])
    guard bobs.score == 1 else { throw TestFailure("bob's first gem: \(bobs)") }
    return (alice, bob)
}

/// The `key=value` fields of an admin `+STATUS` line.
func statusFields(_ line: String) -> [String: String] {
    var fields: [String: String] = [:]
    for word in line.split(separator: " ").dropFirst() {
        guard let equals = word.firstIndex(of: "=") else { continue }
        fields[String(word[..<equals])] = String(word[word.index(after: equals)...])
    }
    return fields
}

extension TestServer {
    /// The admin STATUS fields, over a new admin connection.
    func statusFields() throws -> [String: String] {
        let line = try connectAdmin().call("STATUS")
        guard line.hasPrefix("+STATUS ") else { throw TestFailure("STATUS: \(line)") }
        return ServerTests.statusFields(line)
    }
}

/// Polls `condition` until it holds or `seconds` pass (for effects with no
/// event to wait on, such as a close reaching the server). Returns the last
/// answer.
func waitUntil(_ seconds: TimeInterval = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    var pause = 0.002
    while true {
        if try condition() { return true }
        if Date() > deadline { return false }
        Thread.sleep(forTimeInterval: pause)
        pause = min(pause * 2, 0.1)
    }
}

/// The SHA-256 of a file in hex, as `sha256sum` prints it.
func sha256(of path: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    process.arguments = [path]
    let output = Pipe()
    process.standardOutput = output
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0, let hex = String(decoding: data, as: UTF8.self).split(separator: " ").first else {
        throw TestFailure("sha256sum \(path) failed")
    }
    return String(hex)
}
