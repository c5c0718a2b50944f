import Glibc
import UpgradeSupport

/// Who this engine is, as an upgrade names it: in the reply
/// (`+OK engine A -> B`), in STATUS, and in the one line a candidate prints
/// for `--check-upgrade`:
///
///     hotswap-engine 1.1.0+eaaee0c814a3 handoff 1-1
///
/// The version is the release plus the first 12 hex digits of the
/// executable's GNU build id, so two builds of one release differ (the
/// linker derives the id from the contents: an identical rebuild keeps it).
/// `handoff A-B` is the range of handoff formats the engine reads (a single
/// `N`, as engines before ranges printed it, means N-N); the running engine
/// refuses a candidate whose range does not hold the format it writes.
enum EngineIdentity {
    static let release = "1.1.0"

    /// The environment variables that name or shape an engine. Each is read
    /// once at start and removed from the environment (`detachEnvironment`):
    /// a candidate's check, and the next engine of an upgrade, must not
    /// inherit this engine's name or test knobs. Only the fallback (this
    /// build run again with this environment, see `fallbackEnvironment`)
    /// gets them back.
    ///
    /// - `HOTSWAP_ENGINE_VERSION`: names the engine instead of the build id
    ///   (an operator's tag; tests tell two copies of one build apart by it).
    /// - in test builds only, the knobs of `TestKnobs`.
    private struct Environment {
        static let names = [(name: "HOTSWAP_ENGINE_VERSION", keptForFallback: true)] + TestKnobs.environmentNames
        /// Whether an entry goes back to the fallback.
        static func keptForFallback(_ name: String) -> Bool {
            names.first { $0.name == name }?.keptForFallback ?? false
        }

        var values: [String: String] = [:]

        static func read() -> Environment {
            var environment = Environment()
            for (name, _) in names {
                if let value = getenv(name), value.pointee != 0 { environment.values[name] = String(cString: value) }
            }
            return environment
        }
    }

    private static let environment = Environment.read()

    /// Reads the variables above, then removes them from the process
    /// environment. First thing in `main`, before any thread exists
    /// (`unsetenv` is not thread-safe); tests in process never call it.
    static func detachEnvironment() {
        _ = environment
        // Now, too: it takes the dynamic linker's lock (dl_iterate_phdr),
        // which a module load on a worker may hold later.
        _ = version
        for (name, _) in Environment.names { unsetenv(name) }
    }

    /// The entries the fallback gets back (`NAME=value`), so the build run
    /// again is named and shaped as it was.
    static var fallbackEnvironment: [String] {
        environment.values.filter { Environment.keptForFallback($0.key) }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value)" }
    }

    /// `HOTSWAP_ENGINE_VERSION`, or the release and build id.
    static let version: String = {
        if let named = environment.values["HOTSWAP_ENGINE_VERSION"] { return named }
        var digits = [CChar](repeating: 0, count: 129)
        let count = hs_build_id(&digits, digits.count)
        guard count > 0 else { return release }
        let hex = String(decoding: digits.prefix(min(count, 12)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(release)+\(hex)"
    }()

    private static let forcedFormat: UInt32? = TestKnobs.handoffFormat(environment.values)

    /// The handoff format this engine writes.
    static let handoffFormat: UInt32 = forcedFormat ?? HandoffFormat.current

    /// The handoff formats this engine reads.
    static let readableFormats: ClosedRange<UInt32> = forcedFormat.map { $0...$0 } ?? HandoffFormat.readable

    /// The largest handoff this engine writes or reads.
    static let handoffLimit: Int = TestKnobs.handoffLimit(environment.values)
        .map { min(max($0, 0), HandoffFormat.maxBytes) } ?? HandoffFormat.maxBytes

    #if HOTSWAP_TEST_KNOBS
    /// What the restore fault knob asks for, if anything (test builds only).
    static let restoreFault = TestKnobs.restoreFault(environment.values)
    /// The staging gate's file, if any (test builds only).
    static let stagingGate = TestKnobs.stagingGate(environment.values)
    #endif

    /// The line `--check-upgrade` prints.
    static var checkLine: String { "hotswap-engine \(version) handoff \(HandoffFormat.describe(readableFormats))" }

    /// What `--version` prints.
    static var versionLine: String {
        "gameserver \(version): reads handoff formats \(HandoffFormat.describe(readableFormats)), writes \(handoffFormat)"
    }

    /// What a candidate said for `--check-upgrade`: its version and the
    /// formats it reads, or nil when its output's first line is not exactly
    /// that line's shape.
    static func parseCheckLine(_ output: String) -> (version: String, formats: ClosedRange<UInt32>)? {
        let line = output.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 4, words[0] == "hotswap-engine", !words[1].isEmpty, words[2] == "handoff",
            let formats = HandoffFormat.parseRange(words[3])
        else { return nil }
        return (String(words[1]), formats)
    }
}
