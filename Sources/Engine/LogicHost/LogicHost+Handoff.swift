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

    /// The section's value; `handoffProblem` must be nil. Recent faults
    /// go over as ages (the next engine's clock reads differently).
    var handoff: LogicHandoff {
        let now = nowMilliseconds
        return LogicHandoff(
            current: LogicHandoff.Module(module), previous: previousModule.map(LogicHandoff.Module.init),
            history: history.map { entry in
                let role: LogicHandoff.Role = entry.imagePath == nil ? .unmapped
                    : entry.imagePath == module.imagePath ? .current
                    : entry.imagePath == previousModule?.imagePath ? .previous : .unmapped
                return LogicHandoff.HistoryItem(entry: entry, role: role)
            },
            faultCounters: faultCounters, condemned: condemned.sorted(), lastLoadSHA256: lastLoadSHA256,
            firstCallNanoseconds: firstCallNanoseconds, requestCount: requestCount,
            recentFaults: faultPolicy.recent.mapValues { times in times.map { now.ageOf($0) } })
    }
}

/// The logic host's section, decoded before anything is loaded: the
/// resumed engine maps the current and previous modules from their copies
/// first, then hands this to `LogicHost.adopt`.
struct LogicHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.logic

    /// A module to map again.
    struct Module: Equatable {
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

    /// A history entry as it goes over: what MODULES shows, and its role.
    struct HistoryItem: Equatable {
        var entry: ModuleHistoryEntry
        var role: Role

        /// What goes over only (the image and handle stay behind).
        static func == (a: HistoryItem, b: HistoryItem) -> Bool {
            a.role == b.role && a.entry.name == b.entry.name && a.entry.version == b.entry.version
                && a.entry.sha256 == b.entry.sha256
        }
    }

    var current: Module
    var previous: Module?
    var history: [HistoryItem] = []
    var faultCounters = FaultCounters()
    var condemned: [String] = []
    var lastLoadSHA256: String?
    var firstCallNanoseconds: UInt64?
    /// Player requests handed to modules so far (`hotswap_requests_total`).
    var requestCount = 0
    /// Ages (ms) of each version's recent faults, by SHA-256; written in
    /// key order.
    var recentFaults: [String: [UInt64]] = [:]

    init(current: Module, previous: Module?, history: [HistoryItem], faultCounters: FaultCounters,
         condemned: [String], lastLoadSHA256: String?, firstCallNanoseconds: UInt64?, requestCount: Int,
         recentFaults: [String: [UInt64]])
    {
        self.current = current
        self.previous = previous
        self.history = history
        self.faultCounters = faultCounters
        self.condemned = condemned
        self.lastLoadSHA256 = lastLoadSHA256
        self.firstCallNanoseconds = firstCallNanoseconds
        self.requestCount = requestCount
        self.recentFaults = recentFaults
    }

    ///     current module    descriptor, path named, SHA-256, name, version
    ///     previous module   flag, then the same
    ///     history           per entry: name, version, SHA-256, role
    ///     faults            counts, the last fault, condemned versions
    ///     last load SHA-256, first call time, requests handled
    ///     recent faults     per version (by SHA-256, sorted): ages
    func encode(into writer: inout HandoffWriter) {
        current.encode(into: &writer)
        writer.bool(previous != nil)
        previous?.encode(into: &writer)
        writer.u32(UInt32(history.count))
        for item in history {
            writer.string(item.entry.name)
            writer.string(item.entry.version)
            writer.string(item.entry.sha256)
            writer.u8(item.role.rawValue)
        }
        writer.int(faultCounters.faults)
        writer.int(faultCounters.timeouts)
        writer.int(faultCounters.autoRollbacks)
        writer.bool(faultCounters.last != nil)
        if let last = faultCounters.last { last.encode(into: &writer) }
        writer.strings(condemned)
        writer.optionalString(lastLoadSHA256)
        writer.optionalU64(firstCallNanoseconds)
        writer.int(requestCount)
        writer.u32(UInt32(recentFaults.count))
        for (sha256, ages) in recentFaults.sorted(by: { $0.key < $1.key }) {
            writer.string(sha256)
            writer.u32(UInt32(ages.count))
            for age in ages { writer.u64(age) }
        }
    }

    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        current = try Module(from: &reader)
        previous = try reader.bool("previous module") ? try Module(from: &reader) : nil
        let count = try reader.count("history", elementSize: 13)
        for _ in 0..<count {
            let entry = ModuleHistoryEntry(name: try reader.string("history name"), version: try reader.string("history version"),
                                           sha256: try reader.string("history sha256"))
            guard let role = Role(rawValue: try reader.u8("history role")) else { throw .invalid("history role") }
            history.append(HistoryItem(entry: entry, role: role))
        }
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
    }

    /// Both modules came over as private copies, and the history names
    /// each once.
    func validate() throws(HandoffError) {
        guard current.descriptor >= 0, (previous?.descriptor ?? 0) >= 0 else {
            throw .invalid("a module's private copy was not handed over")
        }
        guard history.filter({ $0.role == .current }).count == 1,
            history.filter({ $0.role == .previous }).count == (previous == nil ? 0 : 1)
        else { throw .invalid("the module history does not name the current and previous modules") }
    }
}

extension LogicHandoff.Module {
    /// The module's private copy as the section names it (-1 when it is
    /// not open: `handoffProblem` refuses the upgrade then).
    init(_ module: LoadedModule) {
        self.init(descriptor: module.file?.descriptor ?? -1, sourcePath: module.sourcePath, sha256: module.sha256,
                  name: module.name, version: module.version)
    }

    func encode(into writer: inout HandoffWriter) {
        writer.i32(descriptor)
        writer.string(sourcePath)
        writer.string(sha256)
        writer.string(name)
        writer.string(version)
    }

    init(from reader: inout HandoffReader) throws(HandoffError) {
        self.init(descriptor: try reader.i32("module descriptor"), sourcePath: try reader.string("module path"),
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
