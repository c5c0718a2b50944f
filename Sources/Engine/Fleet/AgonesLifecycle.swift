import CLibUV
import Glibc
import Logging
import UVKit

/// The engine as an Agones GameServer (issue 22), through the SDK sidecar's
/// REST gateway on 127.0.0.1:`$AGONES_SDK_HTTP_PORT` (`AgonesGateway`).
/// Without that variable nothing here exists.
///
///     POST /ready                 once every port listens (the start-up's step 8, with
///                                 systemd's READY=1), retried until the sidecar answers;
///                                 not again by the engine an UPGRADE execs: the same
///                                 GameServer, perhaps Allocated, which a Ready would
///                                 put back into the pool (HOTSWAP_AGONES_READY=1 in
///                                 the next engine's environment says it was sent)
///     POST /health {}             every --agones-health-interval ms from a loop timer:
///                                 a frozen loop stops them and Agones marks the
///                                 GameServer Unhealthy (an empty body gets 400)
///     PUT /metadata/label         engine, module: the versions, made into label values
///     PUT /metadata/annotation    engine, module: the versions exactly
///                                 at start (every engine: an UPGRADE changes the first),
///                                 after each swap (RELOAD, ROLLBACK)
///     counters/rooms, lists/players   kept current at each health tick (`AgonesRoster`)
///     SIGTERM                     first the rooms Counter's capacity set to its count
///                                 (`draining`: no allocation lands here any more), then
///                                 the engine stops taking players and drains
///     POST /shutdown              after the final flush (`shutDownAfterFlush`)
///
/// A sidecar that does not answer is logged once and counted
/// (`agones_failures`); nothing waits for it but the final Shutdown, which
/// runs the loop for at most a few attempts after the flush.
final class AgonesLifecycle {
    /// What the environment says, read once.
    struct Settings: Sendable {
        static let portVariable = "AGONES_SDK_HTTP_PORT"
        /// Set by an upgrade for the next engine (and the fallback): Ready
        /// was acknowledged for this process's GameServer.
        static let readyVariable = "HOTSWAP_AGONES_READY"

        var port: Int?
        var readySent = false
        /// A value of AGONES_SDK_HTTP_PORT that is not a port (logged at start).
        var badPort: String?

        static func read() -> Settings {
            var settings = Settings()
            if let value = getenv(portVariable), value.pointee != 0 {
                let text = String(cString: value)
                if let port = Int(text), (1...65_535).contains(port) { settings.port = port } else { settings.badPort = text }
            }
            if let value = getenv(readyVariable) { settings.readySent = String(cString: value) == "1" }
            return settings
        }
    }

    private static let settings = Settings.read()

    /// Reads the variables and removes the engine's own (the port stays:
    /// children do not act on it, and the next engine needs it). First
    /// thing in `main`, before any thread exists.
    static func detachEnvironment() {
        _ = settings
        unsetenv(Settings.readyVariable)
    }

    let gateway: AgonesGateway
    /// The rooms Counter and players List (set by the engine before `start`).
    var roster: AgonesRoster?
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let logger: Logger
    let healthIntervalMilliseconds: UInt64
    /// Ready acknowledged by the sidecar, by this engine or one before it
    /// in this process.
    private(set) var readySent: Bool
    private(set) var shutdownSent = false
    private var healthTimer: UnsafeMutablePointer<uv_timer_t>?
    /// The versions last published (a swap that changed nothing sends nothing).
    private var published: [String: String] = [:]

    /// A lifecycle for this process's settings; nil without
    /// `AGONES_SDK_HTTP_PORT` (or with one that is not a port: logged).
    init?(loop: UnsafeMutablePointer<uv_loop_t>, healthIntervalMilliseconds: Int, logger: Logger,
          settings: Settings = AgonesLifecycle.settings)
    {
        if let bad = settings.badPort {
            logger.error("agones: \(Settings.portVariable)=\(bad) is not a port; not talking to Agones")
        }
        guard let port = settings.port else { return nil }
        self.loop = loop
        self.logger = logger
        self.healthIntervalMilliseconds = UInt64(healthIntervalMilliseconds)
        readySent = settings.readySent
        gateway = AgonesGateway(loop: loop, port: port, logger: logger)
    }

    deinit { close() }

    /// The variables the next engine of this process (an upgrade's exec,
    /// or its fallback) gets: Ready is not sent twice to one GameServer.
    var environmentForNextEngine: [String] { readySent ? ["\(Settings.readyVariable)=1"] : [] }

    /// Once every port listens: Ready (unless an engine before this one
    /// in the process sent it), the versions, and the health pings.
    func start(versions: [(key: String, exact: String)]) {
        if readySent {
            logger.notice("agones: Ready was sent by an earlier engine of this process (the same GameServer); not sent again")
        } else {
            gateway.send(.init(method: "POST", path: "/ready", body: "{}", retries: Int.max, coalescing: "ready") { [weak self] answer in
                guard let self, answer.ok else { return }
                readySent = true
                logger.notice("agones: Ready (sidecar on 127.0.0.1:\(gateway.port))")
            })
        }
        publish(versions)
        let timer = UnsafeMutablePointer<uv_timer_t>.allocateHandle()
        uvMust(uv_timer_init(loop, timer), "uv_timer_init")
        timer.context = UVContext.pointer(to: self)
        uvMust(uv_timer_start(timer, { timer in
            UVContext.object(timer!.pointee.data, as: AgonesLifecycle.self).health()
        }, healthIntervalMilliseconds, healthIntervalMilliseconds), "uv_timer_start")
        // The pings alone must not keep the loop alive at shutdown.
        uv_unref(timer.handle)
        healthTimer = timer
        logger.info("agones: sidecar on 127.0.0.1:\(gateway.port), health every \(healthIntervalMilliseconds) ms")
    }

    /// `{}`: the gateway refuses an empty body. Not retried: the next
    /// tick sends another; a queued one is replaced. The roster's changes
    /// follow (behind the ping: they are `background`).
    private func health() {
        gateway.send(.init(method: "POST", path: "/health", body: "{}", retries: 0, coalescing: "health"))
        roster?.sync()
    }

    /// SIGTERM, before the engine stops taking players: the rooms Counter
    /// is made full (`AgonesRoster.fence`). Health pings go on while the
    /// players drain.
    func draining() {
        roster?.fence()
    }

    /// Labels (valid label values) and annotations (exact) for each
    /// version that changed since last published.
    func publish(_ versions: [(key: String, exact: String)]) {
        for (key, exact) in versions where published[key] != exact {
            published[key] = exact
            for (kind, value) in [("label", Self.labelValue(exact)), ("annotation", exact)] {
                let body = "{\"key\":\(Self.jsonString(key)),\"value\":\(Self.jsonString(value))}"
                gateway.send(.init(method: "PUT", path: "/metadata/\(kind)", body: body, retries: 5,
                                   coalescing: "\(kind):\(key)"))
            }
        }
    }

    /// The loop is closing its handles: nothing more is sent until the
    /// final Shutdown (a Ready or a label still retrying is dropped). What
    /// is in flight, and the drain's capacity, go on: the loop runs until
    /// they are answered (a few seconds at most), then the Shutdown follows
    /// them in order.
    func stop() {
        healthTimer?.closeAndFree()
        healthTimer = nil
        gateway.dropQueued { $0.coalescing == AgonesRoster.fenceKey }
    }

    /// After the final flush, on the stopped loop: POST /shutdown, running
    /// the loop until it is answered or its attempts are spent (a few
    /// seconds at most), then everything closes.
    func shutDownAfterFlush() {
        stop()
        gateway.send(.init(method: "POST", path: "/shutdown", body: "{}", retries: 3) { [weak self] answer in
            guard let self else { return }
            shutdownSent = answer.ok
            if answer.ok {
                logger.notice("agones: Shutdown sent")
            } else {
                logger.error("agones: Shutdown could not be sent; Agones will find the GameServer by its health")
            }
        })
        while !gateway.idle {
            if uv_run(loop, UV_RUN_ONCE) == 0 && !gateway.idle { break }
        }
        close()
        // The handles' close callbacks, before the loop is closed.
        uv_run(loop, UV_RUN_DEFAULT)
    }

    func close() {
        healthTimer?.closeAndFree()
        healthTimer = nil
        gateway.close()
    }

    /// A Kubernetes label value: at most 63 of [A-Za-z0-9._-], starting
    /// and ending with a letter or digit (`1.1.0+eaaee0c8` → `1.1.0_eaaee0c8`).
    static func labelValue(_ text: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        var value = String(text.map { allowed.contains($0) ? $0 : "_" }.prefix(63))
        while let first = value.first, !first.isLetter && !first.isNumber { value.removeFirst() }
        while let last = value.last, !last.isLetter && !last.isNumber { value.removeLast() }
        return value
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
