import Glibc
import UpgradeSupport

/// Who this engine is, as an upgrade names it: in the reply
/// (`+OK engine A -> B`), in STATUS, and in the one line a candidate prints
/// for `--check-upgrade`:
///
///     hotswap-engine 1.1.0+eaaee0c814a3 handoff 1
///
/// The version is the release plus the first 12 hex digits of the
/// executable's GNU build id, so two builds of one release differ (the
/// linker derives the id from the contents: an identical rebuild keeps it).
enum EngineIdentity {
    static let release = "1.1.0"

    /// `HOTSWAP_ENGINE_VERSION`, when set, names the engine instead: an
    /// operator may tag a build, and tests tell two copies of one build
    /// apart by it (a wrapper script that sets it and execs the server).
    static let version: String = {
        if let named = getenv("HOTSWAP_ENGINE_VERSION"), named.pointee != 0 { return String(cString: named) }
        var digits = [CChar](repeating: 0, count: 129)
        let count = hs_build_id(&digits, digits.count)
        guard count > 0 else { return release }
        let hex = String(decoding: digits.prefix(min(count, 12)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return "\(release)+\(hex)"
    }()

    /// The handoff format this engine writes and reads. Tests may set
    /// `HOTSWAP_TEST_HANDOFF_FORMAT` to make a real build disagree with the
    /// engine before it (the only way to reach the fallback path with a
    /// binary that passed its check); nothing else reads it.
    static let handoffFormat: UInt32 = {
        if let forced = getenv("HOTSWAP_TEST_HANDOFF_FORMAT"), let value = UInt32(String(cString: forced)) { return value }
        return HandoffFormat.current
    }()

    /// The line `--check-upgrade` prints.
    static var checkLine: String { "hotswap-engine \(version) handoff \(handoffFormat)" }

    /// What a candidate said for `--check-upgrade`: its version and format,
    /// or nil when its output's first line is not exactly that line's shape.
    static func parseCheckLine(_ output: String) -> (version: String, format: UInt32)? {
        let line = output.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let words = line.split(separator: " ", omittingEmptySubsequences: false)
        guard words.count == 4, words[0] == "hotswap-engine", !words[1].isEmpty, words[2] == "handoff",
            let format = UInt32(words[3])
        else { return nil }
        return (String(words[1]), format)
    }
}
