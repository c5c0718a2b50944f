/// Fault injection and format forcing for the upgrade tests, compiled into
/// test builds only.
///
/// `HOTSWAP_TEST_KNOBS` is defined for debug builds (Package.swift), which
/// are what `make test` builds and runs. A release `gameserver` has none of
/// this: no environment variable can make a production upgrade hang, crash
/// or write an unreadable handoff (`make check-release` greps the release
/// binary for the names below and fails if one is there).
///
/// - `HOTSWAP_TEST_HANDOFF_FORMAT=N`: writes and reads format N only (a
///   real build that disagrees with the engine before it: the only way to
///   reach the fallback with a binary that passed its check).
/// - `HOTSWAP_TEST_HANDOFF_LIMIT=BYTES`: a lower handoff size limit, for
///   writing and reading (the over-limit refusal and fallback, tested
///   without a gigabyte).
/// - `HOTSWAP_TEST_STAGING_GATE=PATH`: a reload's staged migration does not
///   commit while the file PATH exists (its slices are done; it waits), so
///   a test can play against a migration in progress for as long as it
///   needs, then remove the file, instead of racing the slices.
/// - `HOTSWAP_TEST_RESTORE_FAULT=segv|abort|hang|socket-check-segv`: read
///   only by an engine resumed by an upgrade: it crashes (SIGSEGV before the
///   fault guard is armed, abort() after, SIGSEGV on the socket-check
///   thread) or hangs while restoring, so the restore guard's hand-back can
///   be tested.
enum TestKnobs {
    #if HOTSWAP_TEST_KNOBS
    /// What the restore fault knob asks for.
    enum RestoreFault: String {
        case segv, abort, hang
        case socketCheckSegv = "socket-check-segv"
    }

    /// The variables EngineIdentity reads once and removes from the
    /// environment (a candidate's check and the next engine must not
    /// inherit them), with whether the fallback gets each back (the fault
    /// knob does not: the engine handed back to must not fault again).
    static let environmentNames: [(name: String, keptForFallback: Bool)] = [
        ("HOTSWAP_TEST_HANDOFF_FORMAT", true), ("HOTSWAP_TEST_HANDOFF_LIMIT", true),
        ("HOTSWAP_TEST_RESTORE_FAULT", false), ("HOTSWAP_TEST_STAGING_GATE", true),
    ]

    static func handoffFormat(_ values: [String: String]) -> UInt32? {
        values["HOTSWAP_TEST_HANDOFF_FORMAT"].flatMap { UInt32($0) }
    }

    static func handoffLimit(_ values: [String: String]) -> Int? {
        values["HOTSWAP_TEST_HANDOFF_LIMIT"].flatMap { Int($0) }
    }

    static func restoreFault(_ values: [String: String]) -> RestoreFault? {
        values["HOTSWAP_TEST_RESTORE_FAULT"].flatMap(RestoreFault.init)
    }

    static func stagingGate(_ values: [String: String]) -> String? { values["HOTSWAP_TEST_STAGING_GATE"] }
    #else
    static let environmentNames: [(name: String, keptForFallback: Bool)] = []
    static func handoffFormat(_ values: [String: String]) -> UInt32? { nil }
    static func handoffLimit(_ values: [String: String]) -> Int? { nil }
    #endif
}
