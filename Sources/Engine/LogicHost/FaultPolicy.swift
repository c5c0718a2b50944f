import Glibc

/// A fault in module code that the engine contained: what, where, whose.
struct FaultRecord: Sendable, Equatable, CustomStringConvertible {
    enum Cause: Sendable, Equatable {
        /// The module raised this signal (SIGSEGV, SIGILL, SIGTRAP, ...).
        case signal(Int32)
        /// The call ran past `--call-timeout` and was interrupted.
        case timeout(milliseconds: Int)
    }

    let cause: Cause
    /// The export that was running: `hotswap_handle`, `hotswap_migrate`, ...
    let export: String
    let moduleName: String
    let moduleVersion: String
    let moduleSHA256: String
    /// Fault address (0 for a timeout) and the faulting frames, described.
    let address: UInt
    let frames: [String]

    /// `SIGSEGV`, or `timeout`.
    var causeName: String {
        switch cause {
        case .signal(let number): FaultRecord.signalName(number)
        case .timeout: "timeout"
        }
    }

    var description: String {
        switch cause {
        case .signal: "\(causeName) in \(export) (\(moduleName) \(moduleVersion))"
        case .timeout(let ms): "timeout after \(ms) ms in \(export) (\(moduleName) \(moduleVersion))"
        }
    }

    static func signalName(_ number: Int32) -> String {
        switch number {
        case SIGSEGV: "SIGSEGV"
        case SIGBUS: "SIGBUS"
        case SIGILL: "SIGILL"
        case SIGTRAP: "SIGTRAP"
        case SIGFPE: "SIGFPE"
        case SIGABRT: "SIGABRT"
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        case SIGUSR1: "SIGUSR1"
        case SIGUSR2: "SIGUSR2"
        case SIGALRM: "SIGALRM"
        case SIGXFSZ: "SIGXFSZ"
        case SIGVTALRM: "SIGVTALRM"
        case SIGPROF: "SIGPROF"
        default: "signal \(number)"
        }
    }
}

/// When a module version has faulted too often: `maxFaults` contained
/// faults of one version (by SHA-256) within `window` milliseconds roll it
/// back to the previous version, if there is one. A version that faults
/// less often keeps serving, each fault contained.
struct FaultPolicy {
    let maxFaults: Int
    let windowMilliseconds: UInt64
    /// Loop times of the recent faults of each version (readable for an
    /// engine upgrade, which hands them over as ages).
    private(set) var recent: [String: [UInt64]] = [:]

    init(maxFaults: Int, windowSeconds: Int) {
        self.maxFaults = maxFaults
        self.windowMilliseconds = UInt64(windowSeconds) * 1000
    }

    /// Counts a fault of `sha256` at `now`; true when the version should go.
    mutating func record(sha256: String, now: UInt64) -> Bool {
        var times = recent[sha256, default: []].filter { now < $0 + windowMilliseconds }
        times.append(now)
        recent[sha256] = times
        return times.count >= maxFaults
    }

    /// Forgets a version's faults (after it was rolled back).
    mutating func forget(sha256: String) { recent[sha256] = nil }

    /// Takes over another engine's recent faults (an upgrade): each
    /// version's faults as ages in milliseconds, made loop times again.
    mutating func restore(ages: [String: [UInt64]], now: UInt64) {
        recent = ages.mapValues { $0.map { now.minus(age: $0) } }
    }
}
