// What an engine upgrade (and the module probe) needs from Linux and glibc
// that Swift's Glibc module does not show (it is built without
// _GNU_SOURCE): memfd_create, close_range, pipe2, PR_SET_PDEATHSIG, the
// process environment, and the main executable's GNU build id. Each is a thin call; the policy is in Sources/Engine/Upgrade.
// The target's other headers: engine_signals.h (the stop and upgrade
// signals, none lost across the exec) and restore_guard.h (a crash or hang
// of a resumed engine hands everything back).
#ifndef HOTSWAP_UPGRADE_SUPPORT_H
#define HOTSWAP_UPGRADE_SUPPORT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// An anonymous in-memory file (memfd_create with MFD_CLOEXEC): where the
/// engine writes its state for the next one. Returns the descriptor, or
/// -errno.
int hs_memfd_create(const char *name);

/// Marks every descriptor from `first` up close-on-exec, in one call
/// (close_range with CLOSE_RANGE_CLOEXEC, Linux 5.11). The upgrade then
/// clears the flag on exactly the descriptors it passes. Returns 0 or
/// -errno (ENOSYS, EINVAL on older kernels: the caller then marks each
/// descriptor listed in /proc/self/fd, and refuses the upgrade if it
/// cannot).
int hs_cloexec_from(unsigned int first);

/// Names the calling thread (and, on the main thread, the process as
/// `ps -C`, `pgrep -x`, `pidof` and `top` see it: /proc/PID/comm) after the
/// last component of `path`, cut to 15 bytes (PR_SET_NAME). An engine that
/// was exec'd through /proc/self/fd/N is otherwise named "N". Returns 0 or
/// -errno.
int hs_set_process_name(const char *path);

/// A pipe whose two ends are close-on-exec from the start (pipe2 with
/// O_CLOEXEC): no child another thread spawns meanwhile inherits them.
/// Returns 0 or -errno.
int hs_pipe_cloexec(int fds[2]);

/// Gives the heap's free pages back to the system (glibc's malloc_trim(0),
/// which Swift's Glibc module does not show). Returns 1 when memory was
/// released. For MemoryReturn, after a burst of queued output.
int hs_malloc_trim(void);

/// Asks the kernel to SIGKILL the calling process when the thread that
/// spawned it ends (PR_SET_PDEATHSIG), and returns 1 if that parent is
/// already gone (the caller should exit), else 0.
int hs_die_with_parent(int original_parent);

/// The process environment (`environ`), NULL-terminated.
char *const *hs_environ(void);

/// The GNU build id of the main executable (its NT_GNU_BUILD_ID note), as
/// lowercase hex into `out` with a terminating NUL. Returns the number of
/// hex digits written: 0 when the executable has no build id or `capacity`
/// is too small. Takes the dynamic linker's lock (dl_iterate_phdr): call it
/// at start-up, not while a module load may hold that lock.
size_t hs_build_id(char *out, size_t capacity);

#ifdef __cplusplus
}
#endif

#endif
