import Foundation
import Testing

/// systemd's notifications (`SystemdNotifier`) from a real server to a
/// socket bound where `NOTIFY_SOCKET` points, as systemd's own would be:
/// READY=1 once the port accepts, WATCHDOG=1 from the loop (none when the
/// loop is frozen, none for another WATCHDOG_PID), STOPPING=1 at the start
/// of a shutdown, and RELOADING=1 then READY=1 again from the same pid
/// across an engine upgrade, with the upgrade's check left out.
@Suite struct SystemdNotifyTests {
    /// WATCHDOG_USEC of 200 ms: a ping every 100 ms.
    static let watchdog = "200000"

    @Test func readyComesOnceTheGamePortAccepts() throws {
        let notify = try NotifySocket()
        var answered: String?
        var ready: NotifySocket.Message?
        // Waits for READY=1 while the server starts, before the test knows
        // the port from the ready file: the port comes from READY's STATUS,
        // and a request to it must be answered right away.
        let server = try TestServer(environment: ["NOTIFY_SOCKET": notify.path]) { _ in
            let message = try notify.waitFor { $0.has("READY=1") }
            ready = message
            guard let port = message.status?.firstMatch(of: /serving on port (\d+),/).flatMap({ Int($0.1) }) else {
                throw TestFailure("no port in \(message.text)")
            }
            answered = try LineClient(port: port).call("PING")
        }
        #expect(answered == "+PONG")
        let message = try #require(ready)
        #expect(message.pid == server.process.processIdentifier)
        #expect(message.status?.hasPrefix("serving on port \(server.port), engine ") == true, "\(message.text)")
        #expect(message.status?.hasSuffix(", 0 players") == true, "\(message.text)")
        // No WATCHDOG_USEC: no watchdog.
        #expect(!message.has("WATCHDOG=1"))
        #expect(server.logContains("systemd: READY=1 sent to \(notify.path), no watchdog"))
    }

    /// A leading `@` names an abstract socket (no file).
    @Test func anAbstractSocketIsNotifiedToo() throws {
        let notify = try NotifySocket(abstract: true)
        let server = try TestServer(environment: ["NOTIFY_SOCKET": notify.path])
        let ready = try notify.waitFor { $0.has("READY=1") }
        #expect(ready.pid == server.process.processIdentifier)
    }

    @Test func theWatchdogIsPingedEveryHalfInterval() throws {
        let notify = try NotifySocket()
        let server = try TestServer(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": Self.watchdog])
        let pid = server.process.processIdentifier
        // READY=1 pings too: the watchdog interval starts afresh with it.
        #expect(try notify.waitFor { $0.has("READY=1") }.has("WATCHDOG=1"))
        for _ in 0..<5 { #expect(try notify.waitFor { $0.isPing }.pid == pid) }
        #expect(server.logContains("WATCHDOG=1 every 100 ms"))
        // Not a flood: in a second, about ten.
        notify.drain()
        let pings = notify.collect(for: 1).filter(\.isPing).count
        #expect((2...12).contains(pings), "\(pings) pings in a second")
    }

    /// The pings come from the loop's thread: a loop stuck in a module call
    /// (the call timeout and the stall timeout off) stops them, though the
    /// process lives on, which is what systemd's WatchdogSec restarts.
    @Test func aFrozenLoopStopsThePings() throws {
        let notify = try NotifySocket()
        let server = try TestServer(arguments: ["--module", Products.library("FaultyModule").path,
                                                "--call-timeout", "0", "--stall-timeout", "0"],
                                    environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": Self.watchdog])
        defer {
            kill(server.process.processIdentifier, SIGKILL)
            _ = server.waitForExit()
        }
        _ = try notify.waitFor(\.isPing)
        let alice = try server.connect()
        #expect(try alice.call("LOGIN alice") == "+OK")
        notify.drain()
        try alice.send("FAULT loop")
        // A ping already due in the turn that reads the line may come; a
        // loop that went on would send fifteen.
        let pings = notify.collect(for: 1.5).filter(\.isPing).count
        #expect(pings <= 2, "\(pings) pings from a frozen loop")
        #expect(server.process.isRunning)
    }

    /// sd_watchdog_enabled's rule: WATCHDOG_PID names the process to ping
    /// for; another one means no pings here.
    @Test func aWatchdogForAnotherPidIsNotPinged() throws {
        let notify = try NotifySocket()
        let server = try TestServer(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": Self.watchdog,
                                                  "WATCHDOG_PID": "\(getpid())"])
        let ready = try notify.waitFor { $0.has("READY=1") }
        #expect(!ready.has("WATCHDOG=1"))
        #expect(try server.connect().call("PING") == "+PONG")
        let pings = notify.collect(for: 1).filter(\.isPing).count
        #expect(pings == 0)
        #expect(server.logContains("no watchdog"))
    }

    /// STOPPING=1 comes as the shutdown starts: while a player who has not
    /// closed her end still holds the server (--linger-ms), with what is
    /// left to do; nothing comes after it, READY=1 or a STATUS.
    @Test func sigtermSendsStoppingFirst() throws {
        let notify = try NotifySocket()
        let server = try TestServer(arguments: ["--linger-ms", "30000", "--shutdown-grace-ms", "30000",
                                                "--flush-interval", "60000"],
                                    environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": Self.watchdog])
        let pid = server.process.processIdentifier
        _ = try notify.waitFor { $0.has("READY=1") }
        do {
            let alice = try server.connect()
            #expect(try alice.call("LOGIN alice").hasPrefix("+WELCOME alice"))
            kill(pid, SIGTERM)
            #expect(try alice.readLine() == ">SHUTDOWN the server is shutting down")
            let stopping = try notify.waitFor { $0.has("STOPPING=1") }
            #expect(server.process.isRunning)
            #expect(stopping.pid == pid)
            #expect(stopping.status?.wholeMatch(of: /stopping: telling 1 players, then a final flush of [1-9]\d* changed players/) != nil,
                    "\(stopping.text)")
        }
        #expect(server.waitForExit() == 0)
        let after = notify.drain()
        #expect(!after.contains { $0.has("READY=1") || $0.status != nil }, "\(after.map(\.text))")
    }

    /// An upgrade execs in place: RELOADING=1 (with MONOTONIC_USEC) before
    /// the exec, READY=1 from the next engine, the same pid throughout, and
    /// the next engine pings. The candidate's `--check-upgrade` (a child)
    /// had none of systemd's variables.
    @Test func anUpgradeReloadsThenIsReadyAgainFromTheSamePid() throws {
        let builds = try EngineBuilds()
        let seen = builds.directory.appendingPathComponent("check-environment")
        let next = try builds.script("engine-next", """
            if [ "$1" = --check-upgrade ]; then
                echo "NOTIFY_SOCKET=${NOTIFY_SOCKET-unset} WATCHDOG_USEC=${WATCHDOG_USEC-unset}" > '\(seen.path)'
            fi
            HOTSWAP_ENGINE_VERSION=next exec '\(Products.server.path)' "$@"
            """)
        let notify = try NotifySocket()
        let server = try TestServer(arguments: builds.serverArguments,
                                    environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": Self.watchdog])
        let pid = server.process.processIdentifier
        #expect(try notify.waitFor { $0.has("READY=1") }.pid == pid)
        #expect(try server.connectAdmin().call("UPGRADE \(next)").hasPrefix("+OK engine "))

        let reloading = try notify.waitFor { $0.has("RELOADING=1") }
        #expect(reloading.pid == pid)
        #expect(reloading.fields.contains { $0.hasPrefix("MONOTONIC_USEC=") }, "\(reloading.text)")
        #expect(reloading.has("WATCHDOG=1"))
        #expect(reloading.status?.contains(" -> next, 0 players held") == true, "\(reloading.text)")
        let ready = try notify.waitFor { $0.has("READY=1") }
        #expect(ready.pid == pid)
        #expect(ready.status?.contains(", engine next, ") == true, "\(ready.text)")
        #expect(try notify.waitFor(\.isPing).pid == pid)
        #expect(try String(contentsOf: seen, encoding: .utf8) == "NOTIFY_SOCKET=unset WATCHDOG_USEC=unset\n")
    }

    /// A new engine that cannot restore hands everything back: the
    /// previous build, run again with systemd's variables (the fallback's
    /// environment), ends the reload with READY=1.
    @Test func aFailedUpgradeIsReadyAgainFromThePreviousEngine() throws {
        let builds = try EngineBuilds()
        let liar = try builds.engineThatCannotRestore()
        let notify = try NotifySocket()
        let server = try TestServer(arguments: builds.serverArguments, environment: ["NOTIFY_SOCKET": notify.path])
        let pid = server.process.processIdentifier
        let first = try notify.waitFor { $0.has("READY=1") }
        let refused = try server.connectAdmin().call("UPGRADE \(liar)")
        #expect(refused.hasPrefix("-ERR UPGRADE_FAILED the new engine could not restore ("), "\(refused)")
        #expect(try notify.waitFor { $0.has("RELOADING=1") }.pid == pid)
        let ready = try notify.waitFor { $0.has("READY=1") }
        #expect(ready.pid == pid)
        #expect(ready.status == first.status, "\(ready.text)")
    }
}

/// A unix datagram socket bound where `NOTIFY_SOCKET` points, as systemd's
/// is: each message comes with its sender's pid (SO_PASSCRED: the kernel
/// attaches the sender's credentials to every datagram).
final class NotifySocket {
    /// One notification: its text, its `KEY=value` lines, who sent it.
    struct Message {
        let pid: Int32
        let text: String
        var fields: [String] { text.split(separator: "\n").map(String.init) }
        func has(_ field: String) -> Bool { fields.contains(field) }
        var status: String? { fields.first { $0.hasPrefix("STATUS=") }.map { String($0.dropFirst("STATUS=".count)) } }
        /// A watchdog ping alone (READY=1 and RELOADING=1 carry one too).
        var isPing: Bool { text == "WATCHDOG=1" }
    }

    /// What `NOTIFY_SOCKET` is set to: a path, or `@name`.
    let path: String
    private let fd: Int32
    private let file: String?
    /// `SCM_CREDENTIALS`, as a number (an enum in Glibc's headers, like
    /// `SOCK_DGRAM`: see `datagramSocketType`).
    private static let credentialsMessage: Int32 = 2

    init(abstract: Bool = false) throws {
        let name = "hotswap-notify-\(UUID().uuidString.prefix(8))"
        // sun_path holds 108 bytes: a short directory.
        let directory = FileManager.default.temporaryDirectory.path
        path = abstract ? "@\(name)" : "\(directory.utf8.count < 60 ? directory : "/tmp")/\(name)"
        file = abstract ? nil : path
        fd = socket(AF_UNIX, datagramSocketType, 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else {
            close(fd)
            throw TestFailure("bind \(path): errno \(errno)")
        }
    }

    deinit {
        close(fd)
        if let file { unlink(file) }
    }

    /// The next message, waiting up to `seconds`; nil if none came.
    func next(within seconds: TimeInterval) -> Message? {
        var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&descriptor, 1, Int32(max(0, seconds) * 1000)) > 0 else { return nil }
        var data = [UInt8](repeating: 0, count: 4096)
        var control = [UInt8](repeating: 0, count: 64)
        var controlLength = 0
        let count = data.withUnsafeMutableBytes { buffer in
            control.withUnsafeMutableBytes { controlBuffer in
                var vector = iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
                return withUnsafeMutablePointer(to: &vector) { vector in
                    var header = msghdr()
                    header.msg_iov = vector
                    header.msg_iovlen = 1
                    header.msg_control = controlBuffer.baseAddress
                    header.msg_controllen = controlBuffer.count
                    let received = recvmsg(fd, &header, 0)
                    controlLength = Int(header.msg_controllen)
                    return received
                }
            }
        }
        guard count >= 0 else { return nil }
        return Message(pid: Self.senderPID(control, length: controlLength), text: String(decoding: data[..<count], as: UTF8.self))
    }

    /// Messages until one matches `condition` (that one is returned);
    /// throws if none does within `seconds`.
    func waitFor(within seconds: TimeInterval = NotAHang.seconds, _ condition: (Message) -> Bool) throws -> Message {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let message = next(within: left) else { throw TestFailure("no such notification within \(seconds) s") }
            if condition(message) { return message }
        }
    }

    /// Every message that comes within `seconds` (a window in which to
    /// count pings, or see none).
    func collect(for seconds: TimeInterval) -> [Message] {
        let deadline = Date().addingTimeInterval(seconds)
        var messages: [Message] = []
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let message = next(within: left) else { return messages }
            messages.append(message)
        }
    }

    /// The messages already queued, without waiting.
    @discardableResult
    func drain() -> [Message] {
        var messages: [Message] = []
        while let message = next(within: 0) { messages.append(message) }
        return messages
    }

    /// The pid in an SCM_CREDENTIALS control message (struct cmsghdr: an
    /// 8-byte length, level and type, then struct ucred: pid, uid, gid).
    private static func senderPID(_ control: [UInt8], length: Int) -> Int32 {
        let header = 16
        guard length >= header + 4 else { return -1 }
        func int32(at offset: Int) -> Int32 {
            control.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: Int32.self) }
        }
        guard int32(at: 8) == SOL_SOCKET, int32(at: 12) == credentialsMessage else { return -1 }
        return int32(at: header)
    }
}
