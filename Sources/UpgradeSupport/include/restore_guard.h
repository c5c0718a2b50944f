// restore_guard.h: an engine resumed by an upgrade that crashes or hangs
// before it serves hands everything back to the previous engine instead of
// taking the players' connections with it.
//
// Until the new engine commits to serving, the old engine's state is whole
// in the handoff: the memfd, and every descriptor it names (the new engine
// reads them, never writes, closes or serves from them before it commits).
// So a crash or a hang there can be undone the way a refused restore is:
// execve the previous build (kept open by descriptor) with the same memfd
// and a reason (`--resume-failed REASON`), which it answers the operator
// with. This guard does that from a signal handler:
//
//     main (resumed)        hs_restore_guard_arm: everything the exec needs
//                           prepared (path, argv, envp, reasons), handlers
//                           for SIGSEGV SIGBUS SIGILL SIGFPE SIGTRAP SIGABRT
//                           and SIGALRM, a one-shot POSIX timer (deleted by
//                           execve, unlike setitimer's, which would survive
//                           into the previous engine)
//     fg_install            replaces the crash handlers: its fatal hook
//                           (hs_restore_guard_fatal) hands back after its
//                           crash report instead of dying
//     crash / timer         hand back: timer off, a SIGALRM already pending
//                           discarded, close-on-exec cleared on the handed-
//                           over descriptors, this engine's private module
//                           directory removed, one line to stderr, the
//                           signal mask set to exactly the deferred signals,
//                           execve
//     commit                hs_restore_guard_disarm: from here a crash is a
//                           crash (the handoff's descriptors get closed)
//
// Only async-signal-safe calls happen in the handlers (write, fcntl,
// unlinkat, rmdir, sigaction, sigprocmask, timer_settime, execve, getdents64
// through syscall). One thread hands back; a second one that faults or
// times out meanwhile waits for the exec.
#ifndef HOTSWAP_RESTORE_GUARD_H
#define HOTSWAP_RESTORE_GUARD_H

#ifdef __cplusplus
extern "C" {
#endif

/// What handing back needs, prepared before anything can go wrong. The
/// guard keeps the pointers: everything must live as long as the process.
typedef struct hs_restore_plan {
    /// The previous engine's build ("/proc/self/fd/N").
    const char *path;
    /// Its argument vector, NULL-terminated; `argv[reason_slot]` is set to
    /// the reason before the exec.
    char **argv;
    int reason_slot;
    /// Its environment, NULL-terminated.
    char **envp;
    /// Descriptors handed over: close-on-exec is cleared on each.
    const int *descriptors;
    int descriptor_count;
    /// Signals that stay blocked across the exec (ProcessImage.
    /// deferredSignals: SIGTERM, SIGINT, SIGHUP, SIGUSR2 and the ignored
    /// ones); every other signal is unblocked.
    const int *deferred;
    int deferred_count;
    /// The crash signals to catch, each with its reason
    /// ("the new engine crashed while restoring (SIGSEGV)").
    const int *crash_signals;
    const char *const *crash_reasons;
    int crash_count;
    /// The reason when the timer fires first.
    const char *timeout_reason;
    unsigned timeout_ms;
} hs_restore_plan;

/// Arms the guard on the calling thread (the main thread, first thing):
/// gives it an alternate signal stack if it has none, installs the
/// handlers and starts the timer. Returns 0 or -errno (nothing armed).
int hs_restore_guard_arm(const hs_restore_plan *plan);

/// The directory of this engine's private module copies, removed with its
/// contents before handing back (the guard keeps the pointer).
void hs_restore_guard_set_cleanup(const char *directory);

/// Whether the guard is armed.
int hs_restore_guard_armed(void);

/// Disarms (the engine commits to serving, or hands back by itself): the
/// timer is deleted and the crash handlers still the guard's are put back
/// as they were. If a handler is handing back at that moment, this never
/// returns: the exec replaces the process.
void hs_restore_guard_disarm(void);

/// FaultGuard's fatal hook (fg_set_fatal_hook): before the crash report
/// it notes the signal (a timer firing during the report hands back with
/// the crash as the reason), after it it hands back.
void hs_restore_guard_fatal(int signal, int after_report);

#ifdef __cplusplus
}
#endif

#endif
