/// The engine's own section of a handoff, decoded: who handed over, when
/// the game stopped being served, what the next engine is configured with
/// beyond its arguments, and the counters STATUS shows.
///
///     from version, hold start, engine start, engine path,
///     module path, modules directory, engines directory, arguments,
///     inherited descriptors, retired descriptors,
///     engine counters (5), admin counters (10), last reload, last held,
///     last upgrade held, output overflows,
///     last upgrade first poll                 (format 2 on)
struct EngineHandoff: HandoffSectionCodable, Equatable {
    static let section = HandoffSection.engine
    /// Format 2 added the first-poll time at the end; format 1 is read by
    /// leaving it out.
    static var formats: ClosedRange<UInt32> { 2...HandoffFormat.current }

    /// The version of the engine that wrote the handoff.
    var fromVersion: String
    /// CLOCK_MONOTONIC (shared by both engines) when the old engine wrote
    /// its last byte: the next engine's first byte ends the hold.
    var holdStartedNanoseconds: UInt64
    /// When the first engine of this process started (uptime goes on).
    var startedNanoseconds: UInt64
    /// The path the next engine was exec'd from: its own path from now on.
    var enginePath: String
    /// Paths the first engine resolved at start (a default module path
    /// next to the executable must not move with the executable).
    var paths: UpgradePaths
    /// The arguments the first engine was started with.
    var arguments: [String]
    /// Descriptors the process was started with (see `UpgradeSettings`).
    var inheritedDescriptors: [Int32]
    /// Descriptors handed over only to be closed, off the loop: the old
    /// engine's epoll instance (see `Engine.closeOffTheLoop`).
    var retiredDescriptors: [Int32]
    var counters: EngineCounters
    var admin: AdminCounters
    var outputOverflows: Int

    func encode(into writer: inout HandoffWriter) {
        writer.string(fromVersion)
        writer.u64(holdStartedNanoseconds)
        writer.u64(startedNanoseconds)
        writer.string(enginePath)
        writer.string(paths.modulePath)
        writer.string(paths.modulesDirectory)
        writer.string(paths.enginesDirectory)
        writer.strings(arguments)
        writer.descriptors(inheritedDescriptors)
        writer.descriptors(retiredDescriptors)
        for value in [counters.lineTooLong, counters.serverFull, counters.rateLimited, counters.rateLimitCloses,
                      counters.idleCloses]
        {
            writer.int(value)
        }
        for value in [admin.reloads, admin.unchanged, admin.refused, admin.rollbacks, admin.evicted, admin.timedOut,
                      admin.upgrades, admin.upgradesRefused, admin.logDroppedBefore, admin.auditDroppedBefore]
        {
            writer.int(value)
        }
        writer.optionalU64(admin.lastReloadWallSeconds.map { UInt64(clamping: $0) })
        writer.optionalU64(admin.lastHeldMicroseconds)
        writer.optionalU64(admin.lastUpgradeHeldMicroseconds)
        writer.int(outputOverflows)
        // Format 2.
        writer.optionalU64(admin.lastUpgradeFirstPollMicroseconds)
    }

    init(fromVersion: String, holdStartedNanoseconds: UInt64, startedNanoseconds: UInt64, enginePath: String,
         paths: UpgradePaths, arguments: [String], inheritedDescriptors: [Int32] = [], retiredDescriptors: [Int32] = [],
         counters: EngineCounters, admin: AdminCounters, outputOverflows: Int)
    {
        self.inheritedDescriptors = inheritedDescriptors
        self.retiredDescriptors = retiredDescriptors
        self.fromVersion = fromVersion
        self.holdStartedNanoseconds = holdStartedNanoseconds
        self.startedNanoseconds = startedNanoseconds
        self.enginePath = enginePath
        self.paths = paths
        self.arguments = arguments
        self.counters = counters
        self.admin = admin
        self.outputOverflows = outputOverflows
    }

    /// Reads the section as an engine writing `format` wrote it (format 1
    /// has no first-poll time).
    init(from reader: inout HandoffReader, format: UInt32) throws(HandoffError) {
        fromVersion = try reader.string("engine version")
        holdStartedNanoseconds = try reader.u64("hold start")
        startedNanoseconds = try reader.u64("engine start")
        enginePath = try reader.string("engine path")
        paths = UpgradePaths(modulePath: try reader.string("module path"),
                             modulesDirectory: try reader.string("modules directory"),
                             enginesDirectory: try reader.string("engines directory"))
        arguments = try reader.strings("arguments")
        inheritedDescriptors = try reader.descriptors("inherited descriptors")
        retiredDescriptors = try reader.descriptors("retired descriptors")
        counters = EngineCounters(lineTooLong: try reader.int("counter"), serverFull: try reader.int("counter"),
                                  rateLimited: try reader.int("counter"), rateLimitCloses: try reader.int("counter"),
                                  idleCloses: try reader.int("counter"))
        admin = AdminCounters()
        admin.reloads = try reader.int("counter")
        admin.unchanged = try reader.int("counter")
        admin.refused = try reader.int("counter")
        admin.rollbacks = try reader.int("counter")
        admin.evicted = try reader.int("counter")
        admin.timedOut = try reader.int("counter")
        admin.upgrades = try reader.int("counter")
        admin.upgradesRefused = try reader.int("counter")
        admin.logDroppedBefore = try reader.int("counter")
        admin.auditDroppedBefore = try reader.int("counter")
        admin.lastReloadWallSeconds = try reader.optionalU64("last reload").map { Int(clamping: $0) }
        admin.lastHeldMicroseconds = try reader.optionalU64("last held")
        admin.lastUpgradeHeldMicroseconds = try reader.optionalU64("last upgrade held")
        outputOverflows = try reader.int("output overflows")
        if format >= 2 { admin.lastUpgradeFirstPollMicroseconds = try reader.optionalU64("last upgrade first poll") }
    }
}
