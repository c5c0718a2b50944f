import FaultGuard
import Glibc
import UpgradeSupport

/// The Swift side of the restore guard (restore_guard.h): an engine resumed
/// by an upgrade that crashes or hangs before it serves hands the handoff
/// back to the previous engine, which answers the operator
/// `-ERR UPGRADE_FAILED the new engine crashed while restoring (SIGSEGV);
/// engine A resumed held_ms=N` (or `... did not finish restoring within
/// N ms; ...`).
///
/// Armed first thing in `main` (before the arguments are parsed: a crash
/// anywhere from there is covered), disarmed when the engine commits to
/// serving (`Resume.commit`) or falls back by itself (`Resume.fallBack`).
/// Everything the handler needs is built here, in ordinary code: the
/// previous engine's argv and envp as C strings, a reason per signal. They
/// live as long as the process (a few KiB).
enum RestoreGuard {
    /// What the guard catches: what the fault guard catches.
    static let crashSignals: [Int32] = [SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGABRT]

    /// Arms the guard for the handoff in `memfd`, with the deadline
    /// `timeoutMilliseconds`; the reason when it cannot (the engine then
    /// resumes unguarded, as before the guard existed).
    static func arm(memfd: Int32, timeoutMilliseconds: Int) -> String? {
        let plan: FallbackPlan
        do {
            plan = try Resume.readFallbackPlan(memfd)
        } catch {
            return "cannot read the fallback block: \(error)"
        }
        let arguments = [plan.previousEnginePath] + plan.arguments + ["--resume", "\(memfd)", "--resume-failed", ""]
        let argv = cStrings(arguments)
        let envp = cStrings(plan.environment)
        let path = strdup("/proc/self/fd/\(plan.previousEngineFD)")
        let descriptors = permanent(plan.passedFDs)
        let deferred = permanent(ProcessImage.deferredSignals)
        let signals = permanent(crashSignals)
        let reasons = permanent(crashSignals.map { UnsafePointer(strdup(
            "the new engine crashed while restoring (\(FaultRecord.signalName($0)))")) })
        let timeoutReason = strdup("the new engine did not finish restoring within \(timeoutMilliseconds) ms")
        var settings = hs_restore_plan(
            path: path, argv: argv, reason_slot: Int32(arguments.count - 1), envp: envp,
            descriptors: descriptors, descriptor_count: Int32(plan.passedFDs.count),
            deferred: deferred, deferred_count: Int32(ProcessImage.deferredSignals.count),
            crash_signals: signals, crash_reasons: reasons, crash_count: Int32(crashSignals.count),
            timeout_reason: timeoutReason, timeout_ms: UInt32(timeoutMilliseconds))
        let status = hs_restore_guard_arm(&settings)
        guard status == 0 else { return "cannot arm the restore guard: \(String(cString: strerror(-status)))" }
        // A crash in engine code once the fault guard owns the signals goes
        // through its crash report first, then here.
        fg_set_fatal_hook(hs_restore_guard_fatal)
        return nil
    }

    /// This engine's private module directory: removed before handing back
    /// (nobody would remove it after the exec).
    static func removeOnHandBack(_ directory: String) {
        guard hs_restore_guard_armed() != 0 else { return }
        hs_restore_guard_set_cleanup(strdup(directory))
    }

    /// The engine commits to serving, or falls back by itself.
    static func disarm() {
        guard hs_restore_guard_armed() != 0 else { return }
        fg_set_fatal_hook(nil)
        hs_restore_guard_disarm()
    }

    private static func cStrings(_ strings: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        permanent(strings.map { strdup($0) } + [nil])
    }

    private static func permanent<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
        let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(values.count, 1))
        pointer.initialize(from: values, count: values.count)
        return pointer
    }
}
