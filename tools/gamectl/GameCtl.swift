import ArgumentParser
import Glibc

/// `gamectl`: the operator's client for the gameserver admin port.
///
///     gamectl status
///     gamectl reload [path]
///     gamectl rollback
///     gamectl modules
///     gamectl upgrade [path]
///     gamectl save
///     gamectl forget KEY
///
/// It prints the server's reply and exits non-zero when the reply is an
/// `-ERR` (or the server cannot be reached), so scripts can trust it.
@main
struct GameCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gamectl",
        abstract: "Talk to a running gameserver's admin port.",
        subcommands: [Status.self, Reload.self, Rollback.self, Modules.self, Upgrade.self, Save.self, Forget.self])

    struct Connection: ParsableArguments {
        @Option(help: "Admin host.") var host = "127.0.0.1"
        @Option(help: "Admin port.") var port = 7778
        @Option(help: "Admin token (default: $GAMESERVER_ADMIN_TOKEN).") var token: String?

        /// Sends AUTH when a token is known, then `command`; returns the reply.
        func run(_ command: String) throws {
            let client = try AdminClient(host: host, port: port)
            if let token = token ?? getenv("GAMESERVER_ADMIN_TOKEN").map({ String(cString: $0) }) {
                let auth = try client.call("AUTH \(token)")
                guard auth.hasPrefix("+") else { throw Failure(auth) }
            }
            let reply = try client.call(command)
            guard reply.hasPrefix("+") else { throw Failure(reply) }
            print(reply)
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Module, sessions, reload counters.")
        @OptionGroup var connection: Connection
        func run() throws { try connection.run("STATUS") }
    }

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Load a new module build (default: the path the server started with).")
        @OptionGroup var connection: Connection
        @Argument(help: "Module path, inside the server's modules directory.") var path: String?
        func run() throws { try connection.run(path.map { "RELOAD \($0)" } ?? "RELOAD") }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Swap back to the previous module.")
        @OptionGroup var connection: Connection
        func run() throws { try connection.run("ROLLBACK") }
    }

    struct Modules: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The modules loaded so far; * is current.")
        @OptionGroup var connection: Connection
        func run() throws { try connection.run("MODULES") }
    }

    struct Upgrade: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Replace the running engine with another build, players and state kept (default: the build installed at the server's own path).")
        @OptionGroup var connection: Connection
        @Argument(help: "Engine executable, inside the server's engines directory.") var path: String?
        func run() throws { try connection.run(path.map { "UPGRADE \($0)" } ?? "UPGRADE") }
    }

    struct Save: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write every changed player to the database now; answers once it is in the file.")
        @OptionGroup var connection: Connection
        func run() throws { try connection.run("SAVE") }
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a stored player for good (an erasure request); `save` then waits until the file has it.")
        @OptionGroup var connection: Connection
        @Argument(help: "The player's key, exactly (the default game: the lower-cased login name).") var key: String
        func run() throws { try connection.run("FORGET \(key)") }
    }
}

/// An `-ERR` reply or a connection problem: printed to stderr, exit 1.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A minimal blocking line client for the admin port.
final class AdminClient {
    private let socket: Int32
    private var buffer: [UInt8] = []

    init(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            throw Failure("cannot resolve \(host)")
        }
        defer { freeaddrinfo(list) }
        socket = Glibc.socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard socket >= 0, connect(socket, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            throw Failure("cannot connect to \(host):\(port): \(String(cString: strerror(errno)))")
        }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(socket, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(socket) }

    func call(_ line: String) throws -> String {
        let bytes = Array((line + "\r\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure("send failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                var reply = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                if reply.last == 0x0D { reply.removeLast() }
                // Events (`>FAULT ...`) may arrive between replies: show
                // them, and keep reading for the reply.
                if reply.first == UInt8(ascii: ">") {
                    _ = (reply + [0x0A]).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                    continue
                }
                return String(decoding: reply, as: UTF8.self)
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw Failure("connection closed before a reply") }
            buffer.append(contentsOf: chunk[..<n])
        }
    }
}
