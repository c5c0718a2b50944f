import CLibUV
import Glibc
import Logging
import UVKit

/// systemd's service notifications (`sd_notify(3)`), spoken directly: one
/// datagram of `KEY=value` lines to the unix socket `$NOTIFY_SOCKET` names
/// (an absolute path, or `@name` for an abstract socket).
///
/// Why not libsystemd: the protocol is a single `sendto`, which systemd
/// promises to keep stable (systemd.io/PORTABILITY_AND_STABILITY), while
/// linking libsystemd would make it a dependency of every build (tests,
/// fuzzers, machines without systemd), and its `sd_notify` opens a socket
/// and formats a message on each call, where the watchdog ping here sends
/// the same prebuilt bytes from a socket opened once.
///
/// What is sent, and when (contrib/hotswap.service, docs/ADMIN.md):
///
///     READY=1, STATUS=serving on port P, ...   once every port listens (the start-up's
///                                              step 8), by every engine of the process:
///                                              a first one, one an upgrade exec'd, and the
///                                              previous build run again after a failed one
///     RELOADING=1, MONOTONIC_USEC=, STATUS=    right before an upgrade's execve (same pid:
///                                              systemd shows "reloading" until the next
///                                              engine's READY=1; READY=1 at once if the
///                                              exec fails)
///     WATCHDOG=1                               every WATCHDOG_USEC / 2, from the loop's
///                                              thread (a libuv timer), when WATCHDOG_PID is
///                                              unset or this pid; also with READY=1 and
///                                              RELOADING=1, so an upgrade's hold starts
///                                              with a whole watchdog interval ahead of it
///     STATUS=...                               after a swap (RELOAD, ROLLBACK), and when it
///                                              changed, checked on the timer every 5 s (or
///                                              every ping, when pings are further apart)
///     STOPPING=1, STATUS=stopping: ...         at the start of a shutdown
///
/// The ping comes from the loop on purpose: a loop that stops turning
/// stops pinging, and systemd restarts the service (`WatchdogSec=`). The
/// engine's own `--stall-timeout` (FaultGuard's watchdog thread) is kept:
/// it fires first with a crash report naming the stall; systemd's is the
/// backstop for what a thread in the process cannot see (the whole
/// process stuck, the watchdog thread itself gone).
///
/// Nothing here ever blocks the loop: the socket is `SOCK_NONBLOCK` and
/// every send `MSG_DONTWAIT`; a send that fails (systemd's queue full, the
/// socket gone) is counted and logged the first time, never retried. A
/// ping allocates nothing (a `StaticString`, an address built once).
///
/// Configured by the environment only, which is systemd's contract. The
/// variables are read once and removed from the environment first thing
/// in `main` (`detachEnvironment`), so no child (an upgrade's
/// `--check-upgrade`, anything a module starts) inherits them and sends
/// READY=1 on our behalf; the upgrade's execve, the same process, gets
/// them back (`environmentForNextEngine`).
final class SystemdNotifier {
    /// What systemd put in the environment, read once.
    struct Settings: Sendable {
        static let names = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"]

        var socket: String?
        var watchdogMicroseconds: UInt64?
        var watchdogPID: Int32?
        /// The variables as found (`NAME=value`), for the next engine.
        var entries: [String] = []

        static func read() -> Settings {
            func value(_ name: String) -> String? {
                guard let found = getenv(name), found.pointee != 0 else { return nil }
                return String(cString: found)
            }
            var settings = Settings()
            settings.socket = value("NOTIFY_SOCKET")
            settings.watchdogMicroseconds = value("WATCHDOG_USEC").flatMap { UInt64($0) }
            settings.watchdogPID = value("WATCHDOG_PID").flatMap { Int32($0) }
            settings.entries = names.compactMap { name in value(name).map { "\(name)=\($0)" } }
            return settings
        }

        /// Milliseconds between two pings, as `sd_watchdog_enabled` decides
        /// it: `WATCHDOG_USEC` set and positive, `WATCHDOG_PID` unset or
        /// ours; half the interval, as sd_watchdog_enabled(3) advises.
        func pingInterval(pid: Int32) -> UInt64? {
            guard let microseconds = watchdogMicroseconds, microseconds > 0 else { return nil }
            if let watched = watchdogPID, watched != pid { return nil }
            return max(1, microseconds / 2000)
        }
    }

    private static let settings = Settings.read()
    /// Set by `detachEnvironment`: the variables are gone from `environ`
    /// and only this type can hand them on.
    nonisolated(unsafe) private static var detached = false

    /// Reads the variables, then removes them from the process
    /// environment. First thing in `main`, before any thread exists
    /// (`unsetenv` is not thread-safe); tests in process never call it.
    static func detachEnvironment() {
        _ = settings
        detached = true
        for name in Settings.names { unsetenv(name) }
    }

    /// What an upgrade's execve (and its fallback) adds to the environment
    /// it passes: the next engine is this process, and must notify.
    static var environmentForNextEngine: [String] { detached ? settings.entries : [] }

    /// The status line refreshed on the timer; nil from the shutdown on.
    private var statusSource: (() -> String)?
    private var lastStatus = ""
    private var nextStatusAt: UInt64 = 0
    static let statusIntervalMilliseconds: UInt64 = 5000

    /// Milliseconds between two `WATCHDOG=1`; nil: no watchdog for us.
    let pingInterval: UInt64?
    let socketName: String
    /// Notifications sent, and those that could not be.
    private(set) var sent = 0
    private(set) var failedSends = 0
    private var failureLogged = false

    private var fd: Int32
    /// The socket's address, built once (a ping must not build it again).
    private let address: UnsafeMutablePointer<sockaddr_un>
    private let addressLength: socklen_t
    private var timer: UnsafeMutablePointer<uv_timer_t>?
    private let logger: Logger

    private static let ping: StaticString = "WATCHDOG=1"

    /// A notifier for `settings` (this process's, by default); nil when
    /// `NOTIFY_SOCKET` is unset (not started by systemd) or unusable (said
    /// in the log: the server runs on without notifying).
    init?(logger: Logger, settings: Settings = SystemdNotifier.settings) {
        guard let name = settings.socket else { return nil }
        var path = Array(name.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        let capacity = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        // An abstract name has no terminating NUL; a path needs one.
        guard abstract || path.first == UInt8(ascii: "/"), path.count > 1, path.count + (abstract ? 0 : 1) <= capacity else {
            logger.error("systemd: NOTIFY_SOCKET=\(name) is not an absolute path or @name of at most \(capacity - 1) bytes; not notifying")
            return nil
        }
        if abstract { path[0] = 0 }
        let socketType = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        fd = socket(AF_UNIX, socketType, 0)
        guard fd >= 0 else {
            logger.error("systemd: cannot make a socket to notify \(name): \(String(cString: strerror(errno))); not notifying")
            return nil
        }
        address = .allocate(capacity: 1)
        address.initialize(to: sockaddr_un())
        address.pointee.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.pointee.sun_path) { $0.copyBytes(from: path) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        addressLength = socklen_t(pathOffset + path.count + (abstract ? 0 : 1))
        socketName = name
        pingInterval = settings.pingInterval(pid: getpid())
        self.logger = logger
    }

    deinit {
        close()
        address.deallocate()
    }

    /// Starts the timer that pings the watchdog (when systemd wants one)
    /// and refreshes the status from `status` (at most every 5 s, sent
    /// only when it changed). The timer alone does not keep the loop alive.
    func start(on loop: UnsafeMutablePointer<uv_loop_t>, status: @escaping () -> String) {
        statusSource = status
        nextStatusAt = uv_now(loop) + Self.statusIntervalMilliseconds
        let period = pingInterval ?? Self.statusIntervalMilliseconds
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = UVContext.pointer(to: self)
        uvMust(uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: SystemdNotifier.self).tick(now: uv_now(timer!.pointee.loop))
        }, period, period), "uv_timer_start")
        uv_unref(timer.handle)
        self.timer = timer
    }

    private func tick(now: UInt64) {
        if pingInterval != nil { pingWatchdog() }
        if now >= nextStatusAt {
            nextStatusAt = now + Self.statusIntervalMilliseconds
            refreshStatus()
        }
    }

    /// `WATCHDOG=1`: a prebuilt message, one `sendto`, no allocation.
    func pingWatchdog() {
        transmit(UnsafeRawPointer(Self.ping.utf8Start), Self.ping.utf8CodeUnitCount)
    }

    /// `READY=1`: serving (again, after an upgrade or a failed exec).
    func ready(status: String) {
        lastStatus = status
        send(["READY=1", watchdogField, "STATUS=\(Self.oneLine(status))"])
    }

    /// `READY=1` with the current status: an upgrade's exec failed, and
    /// this engine serves on.
    func readyAgain() { ready(status: statusSource?() ?? lastStatus) }

    /// `RELOADING=1` with the monotonic time systemd pairs it with (it
    /// ignores a reload it cannot place after its own request otherwise):
    /// an upgrade's exec follows, and the next engine's READY=1 ends it.
    func reloading(status: String) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        lastStatus = status
        send(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)", watchdogField, "STATUS=\(Self.oneLine(status))"])
    }

    /// `STOPPING=1`: the shutdown began. The status is not refreshed any
    /// more, so this one stays until the process exits.
    func stopping(status: String) {
        statusSource = nil
        lastStatus = status
        send(["STOPPING=1", "STATUS=\(Self.oneLine(status))"])
        if failedSends > 0 { logger.warning("systemd: \(failedSends) of \(sent + failedSends) notifications could not be sent") }
    }

    /// Sends the status line now if it changed (after a swap; and on the
    /// timer).
    func refreshStatus() {
        guard let status = statusSource?(), status != lastStatus else { return }
        lastStatus = status
        send(["STATUS=\(Self.oneLine(status))"])
    }

    /// Stops the timer and closes the socket (at the end of a shutdown).
    func close() {
        timer?.closeAndFree()
        timer = nil
        statusSource = nil
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// `WATCHDOG=1` with READY=1 and RELOADING=1 when the watchdog is ours
    /// (an empty field otherwise, dropped by `send`).
    private var watchdogField: String { pingInterval == nil ? "" : "WATCHDOG=1" }

    /// A STATUS= value holds no line break: a newline would start a field.
    private static func oneLine(_ text: String) -> String { AdminConsole.oneLine(text) }

    private func send(_ fields: [String]) {
        var message = fields.filter { !$0.isEmpty }.joined(separator: "\n")
        message.withUTF8 { transmit($0.baseAddress!, $0.count) }
    }

    /// One datagram; never waits, never retries.
    private func transmit(_ bytes: UnsafeRawPointer, _ count: Int) {
        guard fd >= 0 else { return }
        let result = address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            sendto(fd, bytes, count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), $0, addressLength)
        }
        if result == count {
            sent += 1
            return
        }
        failedSends += 1
        guard !failureLogged else { return }
        failureLogged = true
        let reason = result < 0 ? String(cString: strerror(errno)) : "short send"
        logger.warning("systemd: cannot notify \(socketName): \(reason) (not retried; further failures are counted, not logged)")
    }
}
