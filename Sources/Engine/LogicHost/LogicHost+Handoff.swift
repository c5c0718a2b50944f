import Glibc

/// The logic host's section of an upgrade's handoff:
///
///     current module    descriptor of its private copy, path named, SHA-256, name, version
///     previous module   flag, then the same
///     history           per entry: name, version, SHA-256, role (current, previous, other)
///     faults            counts, the last fault, condemned versions, recent faults (ages)
///     last load SHA-256, first call time, requests handled
///
/// Only the current and previous modules go over as images: the next
/// engine maps them again from their private copies (by descriptor: their
/// names were unlinked at load), so ROLLBACK still works, and every older
/// image stays behind with the old process. That is how an upgrade sheds
/// the images reloads accumulate (they are never unmapped otherwise).
extension LogicHost {
    /// Why this host cannot be handed over now, or nil.
    var handoffProblem: String? {
        // A load stuck on its worker (--load-timeout) is no reason: the
        // worker ends with this program, which is the only cure for it.
        if reloading && !loadStuck { return "a reload is in progress" }
        if module.file == nil { return "the current module's private copy is not open" }
        if let previousModule, previousModule.file == nil { return "the previous module's private copy is not open" }
        return nil
    }

    /// The descriptors of the private copies this section names.
    var handedOverDescriptors: [Int32] {
        [module.file?.descriptor, previousModule?.file?.descriptor].compactMap { $0 }
    }

    /// Writes the section; `handoffProblem` must be nil.
    func encodeHandoff(into writer: inout HandoffWriter) {
        LogicHost.encode(module, into: &writer)
        writer.bool(previousModule != nil)
        if let previousModule { LogicHost.encode(previousModule, into: &writer) }
        writer.u32(UInt32(history.count))
        for entry in history {
            writer.string(entry.name)
            writer.string(entry.version)
            writer.string(entry.sha256)
            let role: LogicHandoff.Role = entry.imagePath == nil ? .unmapped
                : entry.imagePath == module.imagePath ? .current
                : entry.imagePath == previousModule?.imagePath ? .previous : .unmapped
            writer.u8(role.rawValue)
        }
        writer.int(faultCounters.faults)
        writer.int(faultCounters.timeouts)
        writer.int(faultCounters.autoRollbacks)
        writer.bool(faultCounters.last != nil)
        if let last = faultCounters.last { last.encode(into: &writer) }
        writer.strings(condemned.sorted())
        writer.optionalString(lastLoadSHA256)
        writer.optionalU64(firstCallNanoseconds)
        writer.int(requestCount)
        let now = nowMilliseconds
        writer.u32(UInt32(faultPolicy.recent.count))
        for (sha256, times) in faultPolicy.recent.sorted(by: { $0.key < $1.key }) {
            writer.string(sha256)
            writer.u32(UInt32(times.count))
            for time in times { writer.u64(now.ageOf(time)) }
        }
    }

    private static func encode(_ module: LoadedModule, into writer: inout HandoffWriter) {
        writer.i32(module.file?.descriptor ?? -1)
        writer.string(module.sourcePath)
        writer.string(module.sha256)
        writer.string(module.name)
        writer.string(module.version)
    }
}

/// The logic host's section, decoded before anything is loaded: the
/// resumed engine maps the current and previous modules from their copies
/// first, then hands this to `LogicHost.adopt`.
struct LogicHandoff {
    /// A module to map again.
    struct Module {
        var descriptor: Int32
        var sourcePath: String
        var sha256: String
        var name: String
        var version: String
    }

    /// What a history entry was to the previous engine.
    enum Role: UInt8 {
        case unmapped = 0
        case current = 1
        case previous = 2
    }

    var current: Module
    var previous: Module?
    var history: [(entry: ModuleHistoryEntry, role: Role)] = []
    var faultCounters = FaultCounters()
    var condemned: [String] = []
    var lastLoadSHA256: String?
    var firstCallNanoseconds: UInt64?
    /// Player requests handed to modules so far (`hotswap_requests_total`).
    var requestCount = 0
    var recentFaults: [String: [UInt64]] = [:]

    init(from reader: inout HandoffReader) throws(HandoffError) {
        current = try LogicHandoff.module(&reader)
        previous = try reader.bool("previous module") ? try LogicHandoff.module(&reader) : nil
        let count = try reader.count("history", elementSize: 13)
        for _ in 0..<count {
            let entry = ModuleHistoryEntry(name: try reader.string("history name"), version: try reader.string("history version"),
                                           sha256: try reader.string("history sha256"))
            guard let role = Role(rawValue: try reader.u8("history role")) else { throw .invalid("history role") }
            history.append((entry, role))
        }
        guard history.filter({ $0.role == .current }).count == 1,
            history.filter({ $0.role == .previous }).count == (previous == nil ? 0 : 1)
        else { throw .invalid("the module history does not name the current and previous modules") }
        faultCounters.faults = try reader.int("faults")
        faultCounters.timeouts = try reader.int("timeouts")
        faultCounters.autoRollbacks = try reader.int("auto rollbacks")
        faultCounters.last = try reader.bool("last fault") ? try FaultRecord(from: &reader) : nil
        condemned = try reader.strings("condemned")
        lastLoadSHA256 = try reader.optionalString("last load sha256")
        firstCallNanoseconds = try reader.optionalU64("first call")
        requestCount = try reader.int("requests")
        let versions = try reader.count("recent faults", elementSize: 8)
        for _ in 0..<versions {
            let sha256 = try reader.string("recent fault version")
            let times = try reader.count("recent fault times", elementSize: 8)
            var ages: [UInt64] = []
            for _ in 0..<times { ages.append(try reader.u64("recent fault age")) }
            recentFaults[sha256] = ages
        }
        try reader.finish("logic section")
    }

    private static func module(_ reader: inout HandoffReader) throws(HandoffError) -> Module {
        let descriptor = try reader.i32("module descriptor")
        guard descriptor >= 0 else { throw .invalid("a module's private copy was not handed over") }
        return Module(descriptor: descriptor, sourcePath: try reader.string("module path"),
                      sha256: try reader.string("module sha256"), name: try reader.string("module name"),
                      version: try reader.string("module version"))
    }
}

extension FaultRecord {
    func encode(into writer: inout HandoffWriter) {
        switch cause {
        case .signal(let number):
            writer.u8(0)
            writer.i32(number)
        case .timeout(let milliseconds):
            writer.u8(1)
            writer.i32(Int32(clamping: milliseconds))
        }
        writer.string(export)
        writer.string(moduleName)
        writer.string(moduleVersion)
        writer.string(moduleSHA256)
        writer.u64(UInt64(address))
        writer.strings(frames)
    }

    init(from reader: inout HandoffReader) throws(HandoffError) {
        let kind = try reader.u8("fault cause")
        let value = try reader.i32("fault cause value")
        switch kind {
        case 0: cause = .signal(value)
        case 1: cause = .timeout(milliseconds: Int(value))
        default: throw .invalid("fault cause \(kind)")
        }
        export = try reader.string("fault export")
        moduleName = try reader.string("fault module")
        moduleVersion = try reader.string("fault version")
        moduleSHA256 = try reader.string("fault sha256")
        address = UInt(try reader.u64("fault address"))
        frames = try reader.strings("fault frames")
    }
}
