/*
 * fault_guard.h: contain a crash or a hang in game-module code, so a bad
 * module costs one request instead of the whole server.
 *
 * The engine (one libuv loop thread) calls every module export through a
 * trampoline declared here instead of calling the function pointer itself.
 * The trampoline records a jump point (sigsetjmp), marks the thread as "in a
 * module call", calls the export and clears the mark. If the module traps
 * (NULL write, __builtin_trap, abort(), integer division by zero, stack
 * overflow, Swift fatalError / index out of range / overflow), the signal
 * handler jumps back to the trampoline, which returns FG_FAULT and describes
 * the fault. If the call runs longer than the call timeout, a watchdog thread
 * signals the loop thread and the trampoline returns FG_TIMEOUT.
 *
 * This is an engine-internal C target, linked into the engine executable: no
 * struct here crosses the module boundary, so nothing carries a size or a
 * version. Modules never see this header.
 *
 * What "contained" means, and what it does not:
 *   - The module's frames are abandoned, not unwound: Swift values they held
 *     are never released (a small leak per fault), C cleanup never runs.
 *   - Everything the module did through the state table before the fault
 *     DID happen (fields written, lines queued). Undoing it is the engine's
 *     job (it knows the request; the guard does not).
 *   - An abort() that the C library raises itself (its caller lies in libc
 *     and is not assert()) is NOT contained: that is libc reporting
 *     corruption it found on the module's behalf (malloc's "double free
 *     detected", a smashed stack, a failed fortify check), and malloc
 *     raises it holding its arena lock, so the next allocation anywhere
 *     would wait forever. Crash report, the process dies with SIGABRT.
 *   - Any other fault inside libc or the Swift runtime (a NULL pointer
 *     passed to strlen, a Swift runtime check) is contained like a fault in
 *     module code, but the library may be left with a lock held; the guard
 *     cannot know. The engine treats a module that faults as suspect (rolls
 *     it back after --max-faults), and --stall-timeout ends a loop that
 *     then waits on such a lock.
 *   - A fault in ENGINE code is never contained: not outside a module call,
 *     and not inside an "engine section" (a state-table thunk running on
 *     behalf of the module, see fg_enter_engine). Engine memory may be
 *     half-updated there. The handler writes a crash report to fd 2 and the
 *     process dies with the signal (default action restored and re-raised),
 *     so the exit status and any core dump are honest.
 *
 * Threads: fg_install is called once, on the loop thread. The watchdog only
 * watches that thread. The trampolines keep their state in thread-locals, so
 * a trampoline used on another thread (a worker that loads a module and
 * calls its hotswap_describe) still contains faults there, but is never
 * timed out; a stack overflow there is contained only after that thread
 * called fg_attach_thread (without an alternate stack the kernel kills;
 * under ASan every thread has ASan's own small one). Calls must not nest:
 * a trampoline called while a guarded call is in progress on the same
 * thread returns FG_REFUSED without calling anything.
 *
 * Signals: the guard owns SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT
 * and fg_timeout_signal() (SIGRTMIN+4) for the whole process after
 * fg_install; it replaces any handler installed before (AddressSanitizer's,
 * the Swift runtime backtracer's, which Swift 6.3 on Linux installs at
 * start-up) and the loop thread's alternate signal stack. Nobody may
 * install handlers for these afterwards. The signals must stay unblocked
 * on the loop thread (fg_install unblocks them).
 *
 * Cost per guarded call (the success path): one sigsetjmp that does not save
 * the signal mask, five stores to thread-locals, no system call, no
 * allocation, no clock read (the watchdog measures time, not the caller).
 *
 * Functions that can fail return -errno. After fg_install returned, nothing
 * here allocates (the recovery path frees one string, see the trampolines).
 */
#ifndef HOTSWAP_FAULT_GUARD_H
#define HOTSWAP_FAULT_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include "game_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Statuses a trampoline returns -------------------------------------- */

#define FG_OK 0        /* the export returned; *result holds its value       */
#define FG_FAULT 1     /* the export trapped; *fault describes it            */
#define FG_TIMEOUT 2   /* the export ran past the call timeout and was left  */
#define FG_REFUSED 3   /* not called: a guarded call is already running on
                          this thread (calls must not nest), or fn is NULL  */

/* ---- Which export a call was (fg_fault.call) ---------------------------- */

#define FG_CALL_NONE 0
#define FG_CALL_DESCRIBE 1
#define FG_CALL_HANDLE 2
#define FG_CALL_SESSION_CLOSED 3
#define FG_CALL_MIGRATE 4
#define FG_CALL_LOAD 5
#define FG_CALL_ABI_VERSION 6
#define FG_CALL_TIMER 7
#define FG_CALL_TICK 8
#define FG_CALL_AUTH 9

/* ---- How a timed-out call was stopped (fg_fault.stop) ------------------- */

#define FG_STOP_NONE 0            /* a fault, not a timeout                  */
#define FG_STOP_MODULE_PC 1       /* interrupted at an instruction of a
                                     registered module image (or anywhere in
                                     the call when no image is registered)   */
#define FG_STOP_ENGINE_BOUNDARY 2 /* stopped when the module's state-table
                                     call returned (fg_leave_engine)         */
#define FG_STOP_FORCED 3          /* no safe point came within a second
                                     timeout period: interrupted wherever the
                                     thread was (outside engine sections)    */

/* The most frames a fault record keeps. */
#define FG_MAX_FRAMES 32

/* Bytes of each module identity string kept for crash reports. */
#define FG_MAX_IDENTITY 64

/* Bytes kept of the Swift runtime's message for a contained fatalError. */
#define FG_MAX_MESSAGE 256

/* Module images (fg_register_module_image) the guard can tell apart. */
#define FG_MAX_IMAGES 8

/*
 * What went wrong in a call that returned FG_FAULT or FG_TIMEOUT. Filled by
 * the trampoline on its recovery path, never on success.
 */
typedef struct fg_fault {
    int32_t status;      /* FG_FAULT or FG_TIMEOUT                            */
    int32_t signal;      /* SIGSEGV, SIGILL, ...; fg_timeout_signal() for a
                            timeout                                          */
    int32_t code;        /* siginfo si_code (SEGV_MAPERR, ILL_ILLOPN, FPE_INTDIV,
                            SI_TKILL for abort() and for a timeout stopped by
                            the signal); 0 for a timeout stopped at an engine
                            boundary                                          */
    int32_t call;        /* FG_CALL_*                                         */
    int32_t stop;        /* FG_STOP_* (timeouts); FG_STOP_NONE for faults     */
    int32_t frame_count; /* entries used in frames[], 0...FG_MAX_FRAMES       */
    uint64_t sequence;   /* the call's number: odd, grows by 2 per call on a
                            thread                                           */
    uint64_t elapsed_ms; /* timeouts: how long the watchdog saw the call run
                            (a lower bound); 0 for faults                    */
    const void *address; /* si_addr: the bad address (SIGSEGV, SIGBUS) or the
                            trapping instruction (SIGILL, SIGTRAP, SIGFPE);
                            NULL for SIGABRT and timeouts                    */
    const void *pc;      /* the interrupted instruction, from the signal's
                            ucontext; NULL when unknown                       */
    void *frames[FG_MAX_FRAMES]; /* backtrace taken in the handler, innermost
                            first, starting at `pc` when the unwinder found it;
                            frames[1...] are return addresses. Turn them into
                            text with fg_describe_frame, outside any handler. */
    char message[FG_MAX_MESSAGE]; /* what the Swift runtime printed for a
                            fatalError, precondition failure, force unwrap of
                            nil, ... (its fatal-error message buffer, cut and
                            NUL-terminated); empty for other faults          */
} fg_fault;

/* Counters since fg_install. Read with fg_get_counters (any thread). */
typedef struct fg_counters {
    uint64_t faults;            /* FG_FAULT returned                          */
    uint64_t timeouts;          /* FG_TIMEOUT returned                        */
    uint64_t deferred;          /* timeout signals that found the loop thread
                                   at an unsafe point and were postponed      */
    uint64_t calls;             /* guarded calls started on the loop thread   */
    int32_t last_signal;        /* signal of the last fault or timeout, or 0  */
    int32_t last_code;          /* its si_code                                */
    uint32_t call_timeout_ms;   /* current timeout, 0 = disabled              */
    int32_t installed;          /* 1 after a successful fg_install            */
} fg_counters;

/* ---- Setup (loop thread) ------------------------------------------------- */

/*
 * Installs the guard for the calling thread (the loop thread):
 *   - maps an alternate signal stack (128 KiB + SIGSTKSZ, with a guard page)
 *     and makes it the thread's sigaltstack, so a stack overflow is caught;
 *   - installs SA_SIGINFO|SA_ONSTACK handlers for SIGSEGV, SIGBUS, SIGILL,
 *     SIGTRAP, SIGFPE, SIGABRT, and SA_SIGINFO|SA_ONSTACK|SA_RESTART for
 *     fg_timeout_signal(); each handler blocks all seven while it runs;
 *     reads every handler back and fails with -EPERM if something (ASan with
 *     handle_segv=2, say) silently refused it;
 *   - unblocks those seven signals on the calling thread;
 *   - loads the unwinder once (backtrace() dlopens libgcc_s on first use,
 *     which must not happen inside a handler);
 *   - starts the watchdog thread (all signals blocked in it).
 * `call_timeout_ms` as in fg_set_call_timeout_ms (0 = no watchdog timeouts).
 *
 * Returns 0, or -errno: -ENOMEM (stack), -EAGAIN (thread), -EPERM (a
 * handler did not stick), -ENOTSUP (no SIGRTMIN+4). A failed install may
 * leave the stack, the watchdog or some handlers in place, and is not
 * "installed": treat it as fatal, or retry (the retry reuses what exists).
 * After a success, calling it again on the same thread only sets the
 * timeout and returns 0; on another thread it returns -EBUSY.
 */
int fg_install(uint32_t call_timeout_ms);

/*
 * For a thread other than the loop thread that will use the trampolines:
 * gives it an alternate signal stack like the loop thread's (once; the
 * mapping lives as long as the process) and unblocks the guard signals on
 * it. Returns 0, -EINVAL before fg_install, or -errno from mmap/sigaltstack.
 */
int fg_attach_thread(void);

/*
 * Sets the call timeout for later and running calls; 0 disables timeouts
 * (the watchdog then sleeps until re-enabled). The watchdog samples the loop
 * thread every timeout/8 ms (clamped to 1...10 ms), so a call is stopped
 * after at least `ms` and at most about `ms` + 10 ms, plus the time to reach
 * a safe point (see "Hangs" below). Any thread.
 */
void fg_set_call_timeout_ms(uint32_t ms);

/*
 * The loop stall watchdog (`--stall-timeout`): the same watchdog thread
 * also watches the loop's turn counter, which the loop bumps once per turn
 * (fg_loop_turn). When it has not moved for `ms` (0: off), whatever the
 * loop is doing (engine code in a busy loop, a deadlock, a module call
 * with the call timeout off), the watchdog sends SIGABRT to the loop
 * thread, whose handler writes the crash report (where: "the event loop
 * stalled", and the loop thread's own backtrace) and ends the process: a
 * supervisor restarts it, instead of players facing a silent hang. Never
 * contained, even inside a module call. The loop must turn at least every
 * `ms`: the engine keeps a timer of its own firing every second, and turns
 * the watchdog off before it blocks on purpose (the exit's last flush).
 * Any thread.
 */
void fg_set_stall_timeout_ms(uint32_t ms);

/* The loop thread calls this once per turn (a relaxed atomic increment of
 * the counter the watchdog reads). Loop thread only. */
void fg_loop_turn(void);

/* The real-time signal the watchdog uses: SIGRTMIN+4. Valid before install. */
int fg_timeout_signal(void);

/*
 * A last chance before a fault in engine code kills the process (see
 * "A fault in ENGINE code" above). While a hook is set, the handler calls
 * it twice on the faulting thread: hook(signal, 0) before the crash report
 * (the report then does not arm its own 10 s SIGALRM limit: the hook owns
 * SIGALRM and its own deadline), and hook(signal, 1) after it. The hook may
 * not return (it may execve); if it returns, the process dies with the
 * signal as without one. A second thread faulting meanwhile calls
 * hook(signal, 1) too, without a report. The hook runs in a signal handler:
 * async-signal-safe code only. NULL removes it. Any thread, any time.
 *
 * What uses it: an engine resumed by an upgrade, until it serves, hands the
 * whole handoff back to the previous engine instead of dying
 * (Sources/UpgradeSupport/include/restore_guard.h).
 */
typedef void (*fg_fatal_hook)(int signal, int after_report);
void fg_set_fatal_hook(fg_fatal_hook hook);

/*
 * The exit record: a file the next start reads to say how this process
 * ended (STATUS previous_exit). When a fault ends the process, the handler
 * replaces the file's content with one line, before the crash report:
 *     crash signal=SIGABRT pid=123 module=NAME@VERSION call=hotswap_handle why=TEXT
 * `fd` must be open for writing (O_CLOEXEC is the caller's business); -1
 * stops writing. The handler uses only lseek, ftruncate and write.
 */
void fg_set_exit_record(int fd);

/*
 * Module identity for crash reports: NUL-terminated strings, each copied
 * (cut to FG_MAX_IDENTITY bytes) into static buffers; NULL stores "". The
 * engine calls it when the module it is about to call changes: after a
 * swap, and around the new module's migrate/load during a reload. Loop
 * thread, outside guarded calls. No per-request call is needed: the request
 * bytes reach the report through fg_call_handle's message.
 */
void fg_set_module(const char *name, const char *version, const char *sha256);

/*
 * Registers the executable segments of the loaded image that contains
 * `address_in_image` (any function of the module, e.g. its hotswap_handle)
 * as module code. Only used to choose where a timeout may interrupt the
 * thread (see "Hangs"); faults are contained wherever they happen. Call it
 * after dlopen, and fg_unregister_module_image before dlclose. Returns the
 * slot (>= 0), -ENOENT if no loaded image contains the address, -ENOSPC
 * when FG_MAX_IMAGES are registered. Registering an image twice is a no-op
 * that returns its slot. Any thread; not from a signal handler.
 */
int fg_register_module_image(const void *address_in_image);
void fg_unregister_module_image(const void *address_in_image);

/* ---- Trampolines (one per module export) --------------------------------- */

/*
 * Each calls `fn` with the given arguments and returns:
 *   FG_OK       `fn` returned; its value is in *result (if result != NULL).
 *               *fault is not touched.
 *   FG_FAULT    `fn` trapped; *fault (if fault != NULL) describes it;
 *               *result is not touched.
 *   FG_TIMEOUT  `fn` ran past the call timeout; *fault describes where it
 *               was stopped.
 *   FG_REFUSED  `fn` was not called (nested call, or fn == NULL).
 *
 * Rules:
 *   - Before fg_install the call is made unguarded (a fault kills the
 *     process as it would without the guard): FG_OK or FG_REFUSED.
 *   - On FG_FAULT/FG_TIMEOUT the trampoline restores the signal mask the
 *     handler left (sigsetjmp does not save it: that would be a system call
 *     per message) by unblocking the seven guard signals.
 *   - Arguments are passed through untouched. The message (`m`) must stay
 *     valid during the call: the crash report reads its first 64 bytes.
 *   - On FG_FAULT/FG_TIMEOUT it also clears and frees the Swift runtime's
 *     fatal-error message (swift_getFatalErrorMessageBuffer): the runtime
 *     appends every fatalError message to that one string and never frees
 *     it, which after 10,000 contained fatalErrors had grown the process
 *     by 3 GB (quadratic: each append copies the whole string).
 *   - Not async-signal-safe; never call from a handler.
 */
int32_t fg_call_abi_version(hotswap_abi_version_fn fn, uint32_t *result, fg_fault *fault);
int32_t fg_call_describe(hotswap_describe_fn fn, const game_describer *d,
                         int32_t *result, fg_fault *fault);
int32_t fg_call_handle(hotswap_handle_fn fn, const game_message *m,
                       const game_state_table *t, int32_t *result, fg_fault *fault);
int32_t fg_call_session_closed(hotswap_session_closed_fn fn, game_id session,
                               const game_state_table *t, fg_fault *fault);
int32_t fg_call_migrate(hotswap_migrate_fn fn, const game_migration *m, game_id entity,
                        const game_state_table *t, int32_t *result, fg_fault *fault);
int32_t fg_call_load(hotswap_load_fn fn, const game_state_table *t,
                     const uint8_t *from_version, size_t length,
                     int32_t *result, fg_fault *fault);
int32_t fg_call_timer(hotswap_timer_fn fn, const game_timer_event *e,
                      const game_state_table *t, int32_t *result, fg_fault *fault);
int32_t fg_call_tick(hotswap_tick_fn fn, const game_tick *k,
                     const game_state_table *t, int32_t *result, fg_fault *fault);
int32_t fg_call_auth(hotswap_auth_fn fn, const game_auth_result *r,
                     const game_state_table *t, int32_t *result, fg_fault *fault);

/* ---- Engine sections ------------------------------------------------------ */

/*
 * Every state-table thunk (engine code the module calls back into) brackets
 * its body with fg_enter_engine() ... fg_leave_engine():
 *
 *     int32_t thunk_get_int(...) {
 *         fg_enter_engine();
 *         ... engine work ...
 *         fg_leave_engine();   // last statement: may not return (see below)
 *         return status;
 *     }
 *
 * Inside a section:
 *   - a fault is NOT contained: crash report, the process dies with the
 *     signal (engine memory may be half-updated);
 *   - a timeout is postponed: fg_leave_engine, when it closes the outermost
 *     section of a call whose timeout is pending, does not return: it jumps
 *     to the trampoline, which returns FG_TIMEOUT (stop =
 *     FG_STOP_ENGINE_BOUNDARY). So a module that loops calling the table is
 *     stopped at its next table call. Whatever the thunk still had to do
 *     after fg_leave_engine is skipped: make it the last statement, after
 *     the engine's state is consistent (from Swift: Swift values still
 *     alive in the thunk's frame are not released; keep them to trivial
 *     types or accept the leak of a reference count on a timeout).
 * Sections nest (a thunk calling another thunk) and must be balanced on
 * every path. Outside a guarded call they only count. The timeout signal
 * can still arrive inside a section: a blocking system call there returns
 * EINTR if it is one SA_RESTART does not restart (nanosleep, poll,
 * epoll_wait, ...); thunks should not block anyway. Cost: a thread-local
 * increment, decrement and compare (0.5 ns a pair, optimized).
 * fg_check_pending() is the same jump without leaving a section, for a
 * thunk that wants a stop point elsewhere; it returns if nothing is pending
 * or a section is open.
 */

/* Per-thread state the inline functions below touch. Private: use the
 * functions, not the fields. */
typedef struct fg__thread_hot {
    uint64_t seq;          /* odd while a guarded call runs                  */
    uint64_t pending_seq;  /* == seq when that call's timeout is pending     */
    int32_t engine_depth;  /* open engine sections                           */
    int32_t unused;
} fg__thread_hot;

extern _Thread_local fg__thread_hot fg__hot __attribute__((tls_model("initial-exec")));

/* Jumps out of the current call with FG_TIMEOUT (stop = engine boundary);
 * returns only if nothing is pending after all. */
void fg__stop_at_boundary(void);

static inline void fg_enter_engine(void) {
    fg__hot.engine_depth += 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void fg_leave_engine(void) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    int32_t depth = fg__hot.engine_depth - 1;
    fg__hot.engine_depth = depth;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(depth == 0 && fg__hot.pending_seq == fg__hot.seq, 0))
        fg__stop_at_boundary();
}

static inline void fg_check_pending(void) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    if (__builtin_expect(fg__hot.engine_depth == 0 && fg__hot.pending_seq == fg__hot.seq, 0))
        fg__stop_at_boundary();
}

/* 1 while the calling thread is inside a guarded call. */
static inline int fg_in_guarded_call(void) { return (int)(fg__hot.seq & 1); }

/* ---- Hangs ------------------------------------------------------------------
 *
 * The watchdog thread samples the loop thread's call number. When the same
 * call has been running for call_timeout_ms it sends fg_timeout_signal() to
 * the loop thread (pthread_kill), again at every sample until the call ends.
 * The handler:
 *   - not in a guarded call, or a call other than the one the watchdog
 *     meant: returns (the signal is dropped);
 *   - in an engine section: marks the timeout pending and returns
 *     (fg_leave_engine stops the call, see above);
 *   - at an instruction of a registered module image, or anywhere when no
 *     image is registered: jumps out, FG_TIMEOUT, stop = FG_STOP_MODULE_PC;
 *   - elsewhere (libc, the Swift runtime: possibly holding malloc's lock):
 *     marks the timeout pending and returns; the next sample tries again.
 *     Once the call is overdue by a second timeout period (at least 50 ms)
 *     the jump is forced wherever the thread is outside engine sections
 *     (stop = FG_STOP_FORCED): a server stuck forever is worse than the
 *     small chance of a held lock.
 * A hang inside an engine section itself is never interrupted.
 */

/* ---- Reading ------------------------------------------------------------------ */

void fg_get_counters(fg_counters *out);

/* "SIGSEGV", "SIGILL", ..., "SIGRTMIN+4" for the timeout signal, "signal"
 * for others. Async-signal-safe. */
const char *fg_signal_name(int signal);

/*
 * Describes a code address as "<image path>+0x<offset> (<symbol>+0x<offset>)"
 * (symbol part only when dladdr found one) into buf, NUL-terminated, cut to
 * `capacity`. Returns the length the full text has (like snprintf), or -1
 * when no loaded image contains `pc` (buf then holds "0x<pc>"). Uses dladdr:
 * call it after the trampoline returned, never from a handler. A return
 * address (frames[1...]) points after its call instruction: pass frame - 1
 * when mapping to a source line.
 */
int fg_describe_frame(const void *pc, char *buf, size_t capacity);

/* ---- Layout checks ------------------------------------------------------- */

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(FG_MAX_FRAMES >= 1 && FG_MAX_FRAMES <= 256, "frame count fits the record");
_Static_assert(sizeof(game_id) == 8, "game ids are 64 bits");
#ifdef GAME_MAX_MODULE_NAME
_Static_assert(FG_MAX_IDENTITY >= GAME_MAX_MODULE_NAME, "a module name or version fits");
#endif
_Static_assert(offsetof(fg__thread_hot, seq) == 0, "seq first: one load for the watchdog");
#endif

#ifdef __cplusplus
}
#endif

#endif /* HOTSWAP_FAULT_GUARD_H */
