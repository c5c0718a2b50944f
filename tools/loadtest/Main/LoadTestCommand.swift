import ArgumentParser
import Foundation
import LoadTestCore

extension LoadConfig.Scenario: ExpressibleByArgument {}
extension LoadConfig.Target: ExpressibleByArgument {}
extension ArrivalSchedule.Kind: ExpressibleByArgument {}
extension PlayWalk.Pattern: ExpressibleByArgument {}

/// `loadtest`: how much one instance carries, and whether a reload under
/// load loses anything.
///
///     swift run -c release loadtest ping --clients 50 --pipeline 16 --duration 10
///     swift run -c release loadtest chat --rooms 10 --members 5 --rate 5000
///     swift run -c release loadtest play --clients 10000 --members 16 --rate 100000 --server-pid PID
///     swift run -c release loadtest cycles --rooms 1000 --bots-per-room 4 --server-pid PID
///     swift run -c release loadtest ping --reload-at 3 --admin-port 7778
///     swift run -c release loadtest ping --upgrade-at 3 --upgrades 20 --admin-port 7778
///     swift run -c release loadtest ping --target redis --port 6379
@main
struct LoadTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadtest",
        abstract: "Load generator for the game server (and redis-server), with latency percentiles.")

    @Argument(help: "Scenario: ping, chat, play or cycles (light-cycles bots; serve libCycles.so).") var scenario: LoadConfig.Scenario
    @Option(help: "hotswap (our server) or redis (inline PING, pub/sub for chat).") var target = LoadConfig.Target.hotswap
    @Option var host = "127.0.0.1"
    @Option var port = 7777
    @Option(help: "Connections (ping, play; default 50, or --rooms x --members for play).") var clients: Int?
    @Option(help: "Seconds to measure.") var duration = 10.0
    @Option(help: "Seconds of load before measuring (sent, not recorded).") var warmup = 0.0
    @Option(help: "Stop after this many requests in all (overrides --duration).") var requests: Int?
    @Option(help: "Requests in flight per connection (closed loop).") var pipeline = 1
    @Option(help: "Total requests per second, open loop; 0 = closed loop.") var rate = 0.0
    @Option(help: "Open loop: poisson, uniform (evenly spread) or lockstep (every client at once: bursts).")
    var arrivals = ArrivalSchedule.Kind.poisson
    @Option(help: "Seed of the open-loop schedule.") var seed: UInt64 = 1
    @Option(help: "Rooms (chat, default 10; play: --clients is --rooms x --members).") var rooms: Int?
    @Option(help: "Members per room (chat, default 5; play, default 16; cycles, default 4).") var members: Int?
    @Option(help: "Cycles: bots per room (the same as --members).") var botsPerRoom: Int?
    @Option(help: "Cycles: the game's tick rate, the interval ticks should keep.") var tickRate = 10
    @Option(help: "Play: square (a loop over four cells: scores soon stop changing) or sweep (row after row over the whole board: gems are taken and scores change all the time).")
    var walk = PlayWalk.Pattern.square
    @Option(help: "The server's process id: its CPU over the run is reported.") var serverPid: Int32?
    @Option(help: "Send RELOAD on the admin port after this many seconds.") var reloadAt: Double?
    @Option var adminPort = 7778
    @Option(help: "Admin token (default: $GAMESERVER_ADMIN_TOKEN).") var adminToken: String?
    @Option(help: "Module path for RELOAD (default: the server's own).") var reloadPath: String?
    @Option(help: "Send UPGRADE on the admin port after this many seconds.") var upgradeAt: Double?
    @Option(help: "Engine path for UPGRADE (default: the server's own).") var upgradePath: String?
    @Option(help: "UPGRADEs in a row (each after the previous reply); the run lasts until the last is answered.")
    var upgrades = 1
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Flag(help: "No progress lines.") var quiet = false

    func run() throws {
        // A server that drops connections must be reported (dropped
        // connections, exit 1), not end this process: a write to a socket
        // the peer closed raises SIGPIPE, whose default action kills.
        signal(SIGPIPE, SIG_IGN)
        var config = LoadConfig()
        config.scenario = scenario
        config.target = target
        config.host = host
        config.port = port
        switch scenario {
        case .chat:
            config.rooms = rooms ?? 10
            config.members = members ?? 5
        case .play:
            config.members = members ?? 16
            if let rooms {
                if let clients, clients != rooms * config.members {
                    throw ValidationError("--clients \(clients) is not --rooms \(rooms) x --members \(config.members)")
                }
                config.clients = rooms * config.members
            } else {
                config.clients = clients ?? 50
            }
        case .ping:
            config.clients = clients ?? 50
        case .cycles:
            config.rooms = rooms ?? 10
            config.members = botsPerRoom ?? members ?? 4
            config.clients = config.rooms * config.members
        }
        guard config.members > 0, config.rooms > 0, config.clients > 0 else {
            throw ValidationError("--clients, --rooms and --members must be positive")
        }
        // With --requests the run ends on the count; an hour caps a server
        // that stops answering.
        config.seconds = requests == nil ? duration : 3600
        config.requests = requests
        config.warmup = max(warmup, 0)
        config.pipeline = max(pipeline, 1)
        config.rate = rate
        config.arrivals = arrivals
        config.seed = seed
        config.walk = walk
        config.tickRate = max(tickRate, 1)
        config.serverPID = serverPid
        config.reloadAt = reloadAt
        config.adminPort = adminPort
        config.adminToken = adminToken ?? ProcessInfo.processInfo.environment["GAMESERVER_ADMIN_TOKEN"]
        config.reloadPath = reloadPath
        config.upgradeAt = upgradeAt
        config.upgradePath = upgradePath
        config.upgrades = max(upgrades, 1)
        config.quiet = quiet

        let report = LoadDriver(config: config).run()
        print(Summary.table(report, config))
        if let json {
            try Summary.json(report, config).write(toFile: json, atomically: true, encoding: .utf8)
        }
        let upgradesFailed = upgradeAt != nil
            && report.upgradeReplies.filter({ $0.hasPrefix("+OK") }).count != config.upgrades
        if !report.clean || (reloadAt != nil && report.reloadReply?.hasPrefix("+OK") != true) || upgradesFailed {
            throw ExitCode(1)
        }
    }
}
