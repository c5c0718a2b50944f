import Testing
@testable import LoadTestCore

/// The open-loop schedule: requests spread in time at the asked rate, and
/// never the lock-step bursts the tool used to send unless asked for.
@Suite struct ArrivalScheduleTests {
    private func arrivals(_ kind: ArrivalSchedule.Kind, rate: Double, clients: Int, count: Int, seed: UInt64 = 1)
        -> [(offset: UInt64, client: Int)]
    {
        var schedule = ArrivalSchedule(kind: kind, rate: rate, clients: clients, seed: seed)
        return (0..<count).map { _ in schedule.next() }
    }

    /// The largest number of requests due at the very same nanosecond.
    private func largestBurst(_ list: [(offset: UInt64, client: Int)]) -> Int {
        var largest = 0
        var run = 0
        for index in list.indices {
            run = index > 0 && list[index].offset == list[index - 1].offset ? run + 1 : 1
            largest = max(largest, run)
        }
        return largest
    }

    @Test(arguments: [ArrivalSchedule.Kind.poisson, .uniform, .lockstep])
    func timesNeverGoBackAndTheRateIsTheAskedOne(kind: ArrivalSchedule.Kind) {
        let list = arrivals(kind, rate: 2000, clients: 1000, count: 20_000)
        #expect(zip(list, list.dropFirst()).allSatisfy { $0.offset <= $1.offset })
        // 20,000 requests at 2,000/s span ten seconds (a Poisson sum within 3%).
        let seconds = Double(list.last!.offset) / 1e9
        #expect(abs(seconds - 10) < 0.3, "\(kind): \(seconds) s")
        #expect(list.allSatisfy { (0..<1000).contains($0.client) })
    }

    @Test func poissonAndUniformSpreadRequestsWhereLockstepBursts() {
        // The tool's old schedule: 1,000 clients at 2,000/s were 1,000 at once.
        #expect(largestBurst(arrivals(.lockstep, rate: 2000, clients: 1000, count: 5000)) == 1000)
        #expect(largestBurst(arrivals(.uniform, rate: 2000, clients: 1000, count: 5000)) == 1)
        #expect(largestBurst(arrivals(.poisson, rate: 2000, clients: 1000, count: 5000)) <= 2)
    }

    @Test func uniformGivesEveryClientItsShareAtEvenIntervals() {
        let list = arrivals(.uniform, rate: 1000, clients: 10, count: 1000)
        #expect(zip(list, list.dropFirst()).allSatisfy { $1.offset - $0.offset == 1_000_000 })
        for client in 0..<10 {
            let times = list.filter { $0.client == client }.map(\.offset)
            #expect(times.count == 100)
            #expect(zip(times, times.dropFirst()).allSatisfy { $1 - $0 == 10_000_000 })
        }
        // Shuffled: the round-robin order is not simply 0, 1, 2, ...
        #expect(list.prefix(10).map(\.client) != Array(0..<10))
    }

    @Test func poissonGapsAreExponential() {
        let list = arrivals(.poisson, rate: 1000, clients: 50, count: 50_000)
        let gaps = zip(list, list.dropFirst()).map { Double($1.offset - $0.offset) / 1e6 }  // ms
        let mean = gaps.reduce(0, +) / Double(gaps.count)
        #expect(abs(mean - 1) < 0.03, "mean gap \(mean) ms")
        // Exponential: P(gap > mean) = e^-1, about 0.368.
        let above = Double(gaps.filter { $0 > 1 }.count) / Double(gaps.count)
        #expect(abs(above - 0.368) < 0.02, "\(above)")
        // Every client gets a share; none is starved.
        var perClient = [Int](repeating: 0, count: 50)
        for arrival in list { perClient[arrival.client] += 1 }
        #expect(perClient.min()! > 800 && perClient.max()! < 1200, "\(perClient)")
    }

    @Test func aSeedRepeatsARunAndAnotherSeedDoesNot() {
        let first = arrivals(.poisson, rate: 500, clients: 7, count: 100, seed: 42)
        let again = arrivals(.poisson, rate: 500, clients: 7, count: 100, seed: 42)
        let other = arrivals(.poisson, rate: 500, clients: 7, count: 100, seed: 43)
        #expect(first.map(\.offset) == again.map(\.offset) && first.map(\.client) == again.map(\.client))
        #expect(first.map(\.offset) != other.map(\.offset))
    }
}

/// The play walk stays on the board, so every MOVE is answered MOVED.
@Suite struct PlayWalkTests {
    @Test func theWalkNeverLeavesTheBoard() {
        for x in Int64(0)..<8 {
            for y in Int64(0)..<8 {
                var walk = PlayWalk(x: x, y: y)
                for _ in 0..<20 {
                    _ = walk.next()
                    #expect(PlayWalk.inside(walk.x, walk.y), "from \(x),\(y)")
                }
            }
        }
    }

    /// A sweep stays on the board and, from any start, covers all 64
    /// cells within two passes, moving every time.
    @Test func aSweepCoversTheWholeBoardFromAnyStart() {
        for x in Int64(0)..<8 {
            for y in Int64(0)..<8 {
                var walk = PlayWalk(x: x, y: y, pattern: .sweep)
                var seen: Set<Int64> = [y * 8 + x]
                for _ in 0..<128 {
                    let (px, py) = (walk.x, walk.y)
                    _ = walk.next()
                    #expect(PlayWalk.inside(walk.x, walk.y), "from \(x),\(y)")
                    #expect(abs(walk.x - px) + abs(walk.y - py) == 1)
                    seen.insert(walk.y * 8 + walk.x)
                }
                #expect(seen.count == 64, "from \(x),\(y)")
            }
        }
    }

    @Test func aCornerTurnsAround() {
        var walk = PlayWalk(x: 0, y: 0)
        #expect(walk.next().description == "MOVE S")  // N would leave the board
        #expect(walk.next().description == "MOVE E")
        #expect(walk.next().description == "MOVE S")
        #expect(walk.next().description == "MOVE W")
        #expect((walk.x, walk.y) == (0, 2))
    }

    @Test func theSpawnIsReadFromTheJoinReply() {
        func spawn(_ line: String) -> (x: Int64, y: Int64)? {
            Array(line.utf8).withUnsafeBytes { PlayWalk.spawn(inJoinReply: $0) }
        }
        #expect(spawn("+JOINED ltplay3 at 4 7 players 12")! == (4, 7))
        #expect(spawn("+JOINED at at 1 2 players 1")! == (1, 2))
        #expect(spawn("-ERR ROOM_FULL that room is full") == nil)
        #expect(spawn("+JOINED r at 4") == nil)
    }
}

@Suite struct ErrorCodeTests {
    @Test func theCodeIsTheWordAfterERR() {
        func code(_ line: String) -> String { Array(line.utf8).withUnsafeBytes { LoadClient.errorCode($0) } }
        #expect(code("-ERR ROOM_FULL that room is full") == "ROOM_FULL")
        #expect(code("-ERR NOT_IN_ROOM") == "NOT_IN_ROOM")
        #expect(code("-WRONGTYPE Operation against a key") == "WRONGTYPE")
        #expect(code("-ERR") == "ERR")
    }
}
