// fault_guard.c: the trampolines, signal handlers and watchdog described in
// include/fault_guard.h. Read the header first: it is the contract.
//
// Layout of the state:
//   fg__hot   (thread-local, in the header) call number, pending timeout,
//             engine-section depth: what the inline engine-section
//             functions and the handlers need.
//   fg__cold  (thread-local, here) the jump buffer, what the current call
//             is, and the fault record the handler fills.
//   g_*       process-wide: installation, watchdog, counters, module images
//             and identity.
// Cross-thread fields (the loop thread's call number, read by the watchdog;
// the counters) use the GCC/Clang __atomic builtins on plain integers, so
// the header stays importable by Swift.
#define _GNU_SOURCE
#include "fault_guard.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define FG_LIKELY(x) __builtin_expect(!!(x), 1)
#define FG_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- Per-thread state ------------------------------------------------------- */

/* pending_seq starts at a value no call number takes (they are odd and count
 * up from 1), so fg_leave_engine on a thread that never made a guarded call
 * does not see "pending == seq" (both would otherwise be 0). */
_Thread_local fg__thread_hot fg__hot __attribute__((tls_model("initial-exec"))) = {
    .seq = 0, .pending_seq = UINT64_MAX, .engine_depth = 0, .unused = 0};

typedef struct fg__thread_cold {
    sigjmp_buf env;         /* the running trampoline's jump point          */
    int32_t call_kind;      /* FG_CALL_* of the running call                */
    const void *call_ptr;   /* handle: the game_message; load: from_version */
    uint64_t call_id;       /* session_closed/migrate: the id; load: length */
    fg_fault fault;         /* filled by the handler before it jumps        */
    void *altstack;         /* our sigaltstack mapping on this thread, if any */
} fg__thread_cold;

static _Thread_local fg__thread_cold fg__cold __attribute__((tls_model("initial-exec")));

/* ---- Process-wide state ----------------------------------------------------- */

static const int guard_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGABRT};
#define GUARD_SIGNAL_COUNT ((int)(sizeof guard_signals / sizeof guard_signals[0]))

static pthread_mutex_t g_install_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_installed;                 /* atomic                            */
static sigset_t g_guard_set;            /* the six + the timeout signal      */
static pid_t g_pid;
static pthread_t g_loop_thread;
static fg__thread_hot *g_watched;       /* &fg__hot of the loop thread       */

/* Watchdog -> timeout handler. */
static uint32_t g_timeout_ms;           /* atomic                            */
static uint32_t g_stall_ms;             /* atomic: --stall-timeout, 0 off     */
static int g_stall_fired;               /* atomic: the watchdog sent SIGABRT  */
static uint64_t fg__loop_turns;         /* atomic: the loop's turns           */
static uint64_t g_target_seq;           /* atomic: the call meant            */
static uint64_t g_target_elapsed;       /* atomic: ms it had run             */
static int g_target_force;              /* atomic: no more waiting for a safe point */
static pthread_t g_watchdog;
static int g_watchdog_started;          /* under g_install_lock              */
static pthread_mutex_t g_watchdog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_watchdog_wake;

/* Counters (atomic). */
static uint64_t c_faults, c_timeouts, c_deferred;
static int c_last_signal, c_last_code;

/* The Swift runtime appends every fatalError message to one string it never
 * frees or clears (it expects to die): swift_getFatalErrorMessageBuffer()
 * returns its address, a std::atomic<const char *>. NULL when the runtime
 * is not loaded or too old to export it. */
static const char **g_swift_fatal_message;

/* The C library's own aborts (fg_install fills these; read in handlers).
 * A SIGABRT whose abort() was called from inside libc, other than by
 * assert(), is libc reporting corruption it found on the module's behalf:
 * malloc's "double free detected", a smashed stack, a failed fortify check.
 * malloc raises it with its arena lock held, so containing it would leave
 * the next allocation (anyone's) waiting forever: such aborts are fatal. */
typedef struct code_range {
    uintptr_t lo, hi;
} code_range;
static code_range g_abort_fn;           /* abort() itself                    */
static code_range g_assert_fns[2];      /* __assert_fail, __assert_perror_fail */
static code_range g_libc_text[4];       /* libc's executable segments        */

/* Module identity for crash reports. */
static char g_module_name[FG_MAX_IDENTITY + 1];
static char g_module_version[FG_MAX_IDENTITY + 1];
static char g_module_sha256[FG_MAX_IDENTITY + 1];

/* Module images: executable ranges where a timeout may interrupt. */
#define RANGES_PER_IMAGE 4
typedef struct image_slot {
    uintptr_t base;                     /* dlpi_addr: identifies the image   */
    int count;
    uintptr_t lo[RANGES_PER_IMAGE], hi[RANGES_PER_IMAGE];
} image_slot;
static pthread_mutex_t g_image_lock = PTHREAD_MUTEX_INITIALIZER;
static image_slot g_images[FG_MAX_IMAGES];
static int g_image_used[FG_MAX_IMAGES]; /* atomic: slot readable            */
static int g_image_count;               /* atomic                            */

#define LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

/* ---- Small helpers ------------------------------------------------------------ */

static uint64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const void *context_pc(const void *context) {
    const ucontext_t *uc = context;
    if (!uc) return NULL;
#if defined(__x86_64__)
    return (const void *)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (const void *)uc->uc_mcontext.pc;
#else
    return NULL;
#endif
}

static int pc_in_module_images(const void *pc) {
    uintptr_t address = (uintptr_t)pc;
    for (int i = 0; i < FG_MAX_IMAGES; i++) {
        if (!LOAD(&g_image_used[i])) continue;
        const image_slot *slot = &g_images[i];
        for (int r = 0; r < slot->count && r < RANGES_PER_IMAGE; r++)
            if (address >= slot->lo[r] && address < slot->hi[r]) return 1;
    }
    return 0;
}

static int in_range(const code_range *r, uintptr_t address) {
    return r->hi > r->lo && address >= r->lo && address < r->hi;
}

static int in_libc(uintptr_t address) {
    for (int t = 0; t < 4; t++)
        if (in_range(&g_libc_text[t], address)) return 1;
    return 0;
}

/* 1 when this SIGABRT is the C library aborting on its own (see g_abort_fn):
 * the frame that called abort() lies in libc, and no libc frame between it
 * and the code that called into libc is assert's (__assert_fail calls a
 * private __assert_fail_base, which calls abort). Frames are return
 * addresses, each just after its call instruction: hence the - 1. */
static int libc_raised_abort(void) {
    if (g_abort_fn.hi == 0) return 0; /* not resolved at install: cannot tell */
    void *raw[32];
    int n = backtrace(raw, 32);
    for (int i = 0; i < n; i++) {
        if (!in_range(&g_abort_fn, (uintptr_t)raw[i])) continue;
        int callers_in_libc = 0;
        for (int j = i + 1; j < n && in_libc((uintptr_t)raw[j] - 1); j++) {
            for (int a = 0; a < 2; a++) {
                if (!in_range(&g_assert_fns[a], (uintptr_t)raw[j] - 1)) continue;
                /* assert()'s own frame: contained when the module called it,
                 * fatal when libc did (pthread_mutex_lock's own asserts:
                 * corrupt state, possibly a lock held). */
                return j + 1 < n && in_libc((uintptr_t)raw[j + 1] - 1);
            }
            callers_in_libc++;
        }
        return callers_in_libc > 0;
    }
    return 0;
}

/* backtrace() into the record, starting at `pc` if the unwinder reached it
 * (it does through the kernel's signal frame), else at our own frame. */
static void capture_frames(fg_fault *fault, const void *pc) {
    void *raw[FG_MAX_FRAMES + 16];
    int n = backtrace(raw, FG_MAX_FRAMES + 16);
    int start = 0;
    if (pc)
        for (int i = 0; i < n; i++)
            if (raw[i] == pc) { start = i; break; }
    int count = n - start;
    if (count > FG_MAX_FRAMES) count = FG_MAX_FRAMES;
    if (count < 0) count = 0;
    for (int i = 0; i < count; i++) fault->frames[i] = raw[start + i];
    fault->frame_count = count;
}

static void record(int32_t status, int signal, int code, const void *address, const void *pc,
                   int32_t stop, uint64_t seq, uint64_t elapsed_ms) {
    fg__thread_cold *c = &fg__cold;
    fg_fault *f = &c->fault;
    f->status = status;
    f->signal = signal;
    f->code = code;
    f->call = c->call_kind;
    f->stop = stop;
    f->sequence = seq;
    f->elapsed_ms = elapsed_ms;
    f->address = address;
    f->pc = pc;
    capture_frames(f, pc);
    ADD(status == FG_TIMEOUT ? &c_timeouts : &c_faults, 1);
    STORE(&c_last_signal, signal);
    STORE(&c_last_code, code);
}

/* Ends the running call on the way out of a jump: the thread is no longer in
 * a call, so a late timeout signal finds nothing to stop. */
static void end_call_abnormally(fg__thread_hot *h, uint64_t seq) {
    h->engine_depth = 0;
    __atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELEASE);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* ---- Crash report ------------------------------------------------------------
 *
 * What the handlers below really call, and how safe each is in a handler:
 *   - write(2), on fd 2 only, through a fixed buffer: async-signal-safe.
 *   - backtrace(3) (here and in capture_frames): NOT on POSIX's list. It is
 *     safe enough in practice because fg_install calls it once first, so
 *     libgcc_s is already loaded and the unwinder allocates nothing; it does
 *     read the unwind tables, and a fault inside the unwinder itself is a
 *     second fault while the guard signals are masked (install_handler's
 *     sa_mask): the kernel then kills the process, it cannot hang.
 *   - backtrace_symbols_fd(3): NOT async-signal-safe. It calls dladdr, which
 *     takes the dynamic linker's lock: if the fault happened while that lock
 *     was held (inside dlopen or dlsym), it would wait forever. That is why
 *     the raw addresses are written first and flushed: the report has what
 *     it needs before the one call that could block, which runs last.
 * Nothing here allocates, takes a stdio lock or calls back into Swift. */

typedef struct out {
    char buffer[512];
    size_t length;
    int fd; /* where out_flush writes: 2 for the crash report */
} out;

static void out_flush(out *o) {
    size_t done = 0;
    while (done < o->length) {
        ssize_t n = write(o->fd, o->buffer + done, o->length - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += (size_t)n;
    }
    o->length = 0;
}

static void out_char(out *o, char ch) {
    if (o->length == sizeof o->buffer) out_flush(o);
    o->buffer[o->length++] = ch;
}

static void out_str(out *o, const char *s) {
    while (s && *s) out_char(o, *s++);
}

static void out_dec(out *o, int64_t value) {
    char digits[24];
    int n = 0;
    uint64_t v = value < 0 ? (uint64_t)(-(value + 1)) + 1 : (uint64_t)value;
    if (value < 0) out_char(o, '-');
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) out_char(o, digits[--n]);
}

static void out_hex(out *o, uint64_t v) {
    static const char hex[] = "0123456789abcdef";
    char digits[16];
    int n = 0;
    do { digits[n++] = hex[v & 15]; v >>= 4; } while (v);
    out_str(o, "0x");
    while (n) out_char(o, digits[--n]);
}

/* At most `limit` bytes, printable ASCII kept, the rest as \xNN. */
static void out_escaped(out *o, const uint8_t *bytes, size_t length, size_t limit) {
    static const char hex[] = "0123456789abcdef";
    out_char(o, '"');
    for (size_t i = 0; i < length && i < limit; i++) {
        uint8_t b = bytes[i];
        if (b >= 0x20 && b < 0x7f && b != '"' && b != '\\') {
            out_char(o, (char)b);
        } else {
            out_char(o, '\\');
            out_char(o, 'x');
            out_char(o, hex[b >> 4]);
            out_char(o, hex[b & 15]);
        }
    }
    out_char(o, '"');
    if (length > limit) out_str(o, "...");
}

static const char *call_name(int32_t kind) {
    switch (kind) {
    case FG_CALL_ABI_VERSION: return "hotswap_abi_version";
    case FG_CALL_DESCRIBE: return "hotswap_describe";
    case FG_CALL_HANDLE: return "hotswap_handle";
    case FG_CALL_SESSION_CLOSED: return "hotswap_session_closed";
    case FG_CALL_MIGRATE: return "hotswap_migrate";
    case FG_CALL_LOAD: return "hotswap_load";
    case FG_CALL_TIMER: return "hotswap_timer";
    case FG_CALL_TICK: return "hotswap_tick";
    case FG_CALL_AUTH: return "hotswap_auth";
    default: return "none";
    }
}

static void write_report(int signal, const siginfo_t *info, const void *context, const char *why,
                         int hooked) {
    out o = {.length = 0, .fd = 2};
    fg__thread_hot *h = &fg__hot;
    fg__thread_cold *c = &fg__cold;
    const void *pc = context_pc(context);

    out_str(&o, "\nhotswap: ==== fatal signal in the game server: not contained ====\n");
    out_str(&o, "hotswap: signal ");
    out_str(&o, fg_signal_name(signal));
    out_str(&o, " (");
    out_dec(&o, signal);
    out_str(&o, "), si_code ");
    out_dec(&o, info ? info->si_code : 0);
    out_str(&o, ", fault address ");
    out_hex(&o, info ? (uint64_t)(uintptr_t)info->si_addr : 0);
    out_str(&o, ", pc ");
    out_hex(&o, (uint64_t)(uintptr_t)pc);
    out_str(&o, "\nhotswap: where: ");
    out_str(&o, why);
    out_str(&o, h == g_watched ? " (loop thread)" : " (not the loop thread)");
    out_str(&o, "\nhotswap: module: ");
    out_str(&o, g_module_name[0] ? g_module_name : "(unknown)");
    out_char(&o, ' ');
    out_str(&o, g_module_version[0] ? g_module_version : "(unknown)");
    out_str(&o, " sha256 ");
    out_str(&o, g_module_sha256[0] ? g_module_sha256 : "(unknown)");
    if (h->seq & 1) {
        out_str(&o, "\nhotswap: call: ");
        out_str(&o, call_name(c->call_kind));
        out_str(&o, " #");
        out_dec(&o, (int64_t)(h->seq / 2 + 1));
        if (c->call_kind == FG_CALL_HANDLE && c->call_ptr) {
            const game_message *m = c->call_ptr;
            out_str(&o, " session ");
            out_hex(&o, m->session);
            /* Its first word only (at most 32 bytes) and its length: the
             * rest of a request may be a player's secret (LOGIN name
             * secret, SECRET s), which no report may hold. */
            size_t word = 0;
            if (m->line) {
                while (word < m->length && word < 32 && m->line[word] != ' ' && m->line[word] != '\t') word++;
            }
            out_str(&o, "\nhotswap: request (");
            out_dec(&o, (int64_t)m->length);
            out_str(&o, " bytes; its first word, the rest withheld): ");
            if (m->line) out_escaped(&o, m->line, word, 32);
        } else if (c->call_kind == FG_CALL_SESSION_CLOSED || c->call_kind == FG_CALL_MIGRATE) {
            out_str(&o, c->call_kind == FG_CALL_MIGRATE ? " entity " : " session ");
            out_hex(&o, c->call_id);
        } else if (c->call_kind == FG_CALL_TIMER && c->call_ptr) {
            const game_timer_event *e = c->call_ptr;
            out_str(&o, " timer ");
            out_hex(&o, e->timer);
            out_str(&o, " owner ");
            out_hex(&o, e->owner);
            out_str(&o, " event ");
            if (e->event) out_escaped(&o, e->event, e->event_length, 32);
        } else if (c->call_kind == FG_CALL_TICK && c->call_ptr) {
            const game_tick *k = c->call_ptr;
            out_str(&o, " room ");
            out_hex(&o, k->room);
            out_str(&o, " tick ");
            out_dec(&o, (int64_t)k->tick);
        } else if (c->call_kind == FG_CALL_AUTH && c->call_ptr) {
            /* The key only: a secret never reaches the module or a report. */
            const game_auth_result *r = c->call_ptr;
            out_str(&o, " session ");
            out_hex(&o, r->session);
            out_str(&o, " status ");
            out_dec(&o, r->status);
            out_str(&o, " key ");
            if (r->key) out_escaped(&o, r->key, r->key_length, 64);
        } else if (c->call_kind == FG_CALL_LOAD && c->call_ptr) {
            out_str(&o, " from version ");
            out_escaped(&o, c->call_ptr, (size_t)c->call_id, 64);
        }
        if (h->engine_depth > 0) {
            out_str(&o, "\nhotswap: engine sections open: ");
            out_dec(&o, h->engine_depth);
        }
    }
    out_str(&o, "\nhotswap: backtrace (innermost first):\n");
    out_flush(&o);

    void *frames[64];
    int n = backtrace(frames, 64);
    int start = 0;
    for (int i = 0; pc && i < n; i++)
        if (frames[i] == pc) { start = i; break; }
    /* Raw addresses first: backtrace_symbols_fd uses dladdr, which could
     * block if the crash happened inside the dynamic loader. */
    for (int i = start; i < n; i++) {
        out_str(&o, "  #");
        out_dec(&o, i - start);
        out_char(&o, ' ');
        out_hex(&o, (uint64_t)(uintptr_t)frames[i]);
        out_char(&o, '\n');
    }
    out_flush(&o);
    if (n > start) backtrace_symbols_fd(frames + start, n - start, 2);
    if (hooked) {
        out_str(&o, "hotswap: ==== end of report: the fatal hook takes over ====\n");
    } else {
        out_str(&o, "hotswap: ==== end of report: the process dies with ");
        out_str(&o, fg_signal_name(signal));
        out_str(&o, " ====\n");
    }
    out_flush(&o);
}

/* The exit record (fg_set_exit_record): one line replacing the file's
 * content. lseek, ftruncate and write are all async-signal-safe. */
static int g_exit_record_fd = -1; /* atomic */

void fg_set_exit_record(int fd) { STORE(&g_exit_record_fd, fd); }

static void write_exit_record(int signal, const char *why) {
    int fd = LOAD(&g_exit_record_fd);
    if (fd < 0) return;
    fg__thread_hot *h = &fg__hot;
    /* Built whole before the file is touched: out_char flushes at 512
     * bytes, which must not happen before the seek (hence the room kept). */
    out o = {.length = 0, .fd = fd};
    out_str(&o, "crash signal=");
    out_str(&o, fg_signal_name(signal));
    out_str(&o, " pid=");
    out_dec(&o, g_pid ? g_pid : getpid());
    if (h->seq & 1) {
        /* Only a crash during a module call is the module's to carry. */
        out_str(&o, " module=");
        out_str(&o, g_module_name[0] ? g_module_name : "(unknown)");
        out_char(&o, '@');
        out_str(&o, g_module_version[0] ? g_module_version : "(unknown)");
        out_str(&o, " call=");
        out_str(&o, call_name(fg__cold.call_kind));
    } else {
        out_str(&o, " call=none");
    }
    out_str(&o, " why=");
    for (const char *c = why; *c && o.length < sizeof o.buffer - 2; c++) out_char(&o, *c);
    out_char(&o, '\n');
    if (lseek(fd, 0, SEEK_SET) != 0) return;
    (void)ftruncate(fd, 0);
    out_flush(&o);
}

static fg_fatal_hook g_fatal_hook; /* atomic */

void fg_set_fatal_hook(fg_fatal_hook hook) { STORE(&g_fatal_hook, hook); }

/* Reports once, gives the fatal hook its chance, restores the default
 * action, and dies of the signal. */
__attribute__((noreturn)) static void die(int signal, const siginfo_t *info, const void *context,
                                          const char *why) {
    static int reporting;
    fg_fatal_hook hook = LOAD(&g_fatal_hook);
    if (__atomic_exchange_n(&reporting, 1, __ATOMIC_SEQ_CST) == 0) {
        /* First: the short record cannot block, the report's last part can.
         * Not while a hook may still carry the process on (the restore
         * guard execs the previous engine): then only once it gave up. */
        if (!hook) write_exit_record(signal, why);
        if (hook) {
            hook(signal, 0);
        } else {
            /* If the report itself hangs (say, a lock held by the crashed
             * code), SIGALRM's default action still ends the process. */
            struct sigaction alarm_default;
            memset(&alarm_default, 0, sizeof alarm_default);
            alarm_default.sa_handler = SIG_DFL;
            sigaction(SIGALRM, &alarm_default, NULL);
            alarm(10);
        }
        write_report(signal, info, context, why, hook != NULL);
    }
    if (hook) {
        hook(signal, 1);
        write_exit_record(signal, why); /* it returned: the process dies */
    }
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigemptyset(&fallback.sa_mask);
    sigaction(signal, &fallback, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal);
    pthread_sigmask(SIG_UNBLOCK, &only, NULL);
    raise(signal);
    _exit(128 + signal); /* not reached: every guard signal's default kills */
}

/* ---- Handlers ---------------------------------------------------------------- */

static void on_fault(int signal, siginfo_t *info, void *context) {
    fg__thread_hot *h = &fg__hot;
    uint64_t seq = h->seq;
    /* The stall watchdog's abort is never contained, even inside a call. */
    if (signal == SIGABRT && LOAD(&g_stall_fired) && info->si_code == SI_TKILL && info->si_pid == g_pid)
        die(signal, info, context, "the event loop stalled: no loop turn for longer than --stall-timeout");
    if (!(seq & 1)) die(signal, info, context, "outside any module call");
    if (h->engine_depth > 0)
        die(signal, info, context,
            "inside an engine section of a module call: engine state may be inconsistent");
    if (info->si_code <= 0 && info->si_pid != g_pid)
        die(signal, info, context, "sent by another process during a module call");
    if (signal == SIGABRT && libc_raised_abort())
        die(signal, info, context,
            "the C library aborted during a module call (heap corruption such as a double free, "
            "a smashed stack or a failed fortify check): it may hold the allocator's lock and "
            "memory is corrupt, so this cannot be contained");

    const void *address = NULL;
    if (signal != SIGABRT && info->si_code > 0) address = info->si_addr;
    record(FG_FAULT, signal, info->si_code, address, context_pc(context), FG_STOP_NONE, seq, 0);
    end_call_abnormally(h, seq);
    siglongjmp(fg__cold.env, FG_FAULT);
}

static void on_timeout(int signal, siginfo_t *info, void *context) {
    fg__thread_hot *h = &fg__hot;
    uint64_t seq = h->seq;
    if (!(seq & 1) || h != g_watched) return;
    if (LOAD(&g_target_seq) != seq) return; /* an older call's signal */
    if (h->engine_depth > 0) {
        h->pending_seq = seq;
        ADD(&c_deferred, 1);
        return;
    }
    const void *pc = context_pc(context);
    int32_t stop = FG_STOP_MODULE_PC;
    if (LOAD(&g_image_count) > 0 && !pc_in_module_images(pc)) {
        if (!LOAD(&g_target_force)) {
            h->pending_seq = seq;
            ADD(&c_deferred, 1);
            return;
        }
        stop = FG_STOP_FORCED;
    }
    int saved_errno = errno; /* backtrace may touch it; we never return, but
                                the interrupted code's errno is not ours. */
    record(FG_TIMEOUT, signal, info->si_code, NULL, pc, stop, seq, LOAD(&g_target_elapsed));
    errno = saved_errno;
    end_call_abnormally(h, seq);
    siglongjmp(fg__cold.env, FG_TIMEOUT);
}

void fg__stop_at_boundary(void) {
    fg__thread_hot *h = &fg__hot;
    uint64_t seq = h->seq;
    if (!(seq & 1) || h->engine_depth != 0 || h->pending_seq != seq) return; /* defensive */
    record(FG_TIMEOUT, fg_timeout_signal(), 0, NULL,
           __builtin_return_address(0), FG_STOP_ENGINE_BOUNDARY, seq, LOAD(&g_target_elapsed));
    end_call_abnormally(h, seq);
    siglongjmp(fg__cold.env, FG_TIMEOUT);
}

/* ---- Watchdog ------------------------------------------------------------------ */

static void *watchdog_main(void *unused) {
    (void)unused;
    fg__thread_hot *watched = g_watched;
    uint64_t seen_seq = 0, seen_at = 0;
    uint64_t seen_turns = 0, turns_at = 0, sampled_at = 0;
    for (;;) {
        uint32_t timeout = LOAD(&g_timeout_ms);
        uint32_t stall = LOAD(&g_stall_ms);
        if (timeout == 0 && stall == 0) {
            pthread_mutex_lock(&g_watchdog_lock);
            while (LOAD(&g_timeout_ms) == 0 && LOAD(&g_stall_ms) == 0)
                pthread_cond_wait(&g_watchdog_wake, &g_watchdog_lock);
            pthread_mutex_unlock(&g_watchdog_lock);
            seen_seq = 0;
            turns_at = 0;
            continue;
        }
        uint32_t tick = timeout ? timeout / 8 : 10;
        if (tick < 1) tick = 1;
        if (tick > 10) tick = 10;
        struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)tick * 1000000L};
        while (clock_nanosleep(CLOCK_MONOTONIC, 0, &pause, &pause) == EINTR) {}

        if (stall == 0) {
            turns_at = 0;
            sampled_at = 0;
        } else if (!LOAD(&g_stall_fired)) {
            uint64_t turns = LOAD(&fg__loop_turns);
            uint64_t at = monotonic_ms();
            /* This thread slept 10 ms and woke a second or more later: the
             * whole process was stopped (SIGSTOP, a debugger, a paused VM),
             * the loop with it. Count from now, not from before. */
            uint64_t overslept = sampled_at && at - sampled_at >= 1000;
            sampled_at = at;
            if (turns_at == 0 || turns != seen_turns || overslept) {
                seen_turns = turns;
                turns_at = at;
            } else if (at - turns_at >= stall) {
                STORE(&g_stall_fired, 1);
                pthread_kill(g_loop_thread, SIGABRT);
            }
        }
        if (timeout == 0) { seen_seq = 0; continue; }

        uint64_t seq = __atomic_load_n(&watched->seq, __ATOMIC_ACQUIRE);
        if (!(seq & 1)) { seen_seq = 0; continue; }
        uint64_t now = monotonic_ms();
        if (seq != seen_seq) { seen_seq = seq; seen_at = now; continue; }
        uint64_t ran = now - seen_at;
        if (ran < timeout) continue;
        uint64_t grace = timeout > 50 ? timeout : 50;
        STORE(&g_target_elapsed, ran);
        STORE(&g_target_force, ran >= (uint64_t)timeout + grace);
        STORE(&g_target_seq, seq);
        pthread_kill(g_loop_thread, fg_timeout_signal());
    }
    return NULL;
}

/* ---- Setup ------------------------------------------------------------------------ */

int fg_timeout_signal(void) { return SIGRTMIN + 4; }

void fg_set_call_timeout_ms(uint32_t ms) {
    pthread_mutex_lock(&g_watchdog_lock);
    STORE(&g_timeout_ms, ms);
    pthread_cond_broadcast(&g_watchdog_wake);
    pthread_mutex_unlock(&g_watchdog_lock);
}

void fg_loop_turn(void) { STORE(&fg__loop_turns, LOAD(&fg__loop_turns) + 1); }

void fg_set_stall_timeout_ms(uint32_t ms) {
    pthread_mutex_lock(&g_watchdog_lock);
    STORE(&g_stall_ms, ms);
    pthread_cond_broadcast(&g_watchdog_wake);
    pthread_mutex_unlock(&g_watchdog_lock);
}

/* Maps and installs an alternate signal stack for the calling thread, once
 * per thread. The mapping is never unmapped: the thread's handlers may need
 * it until the thread ends (and ASan unmaps whatever sigaltstack is current
 * when one of its threads exits, which is fine for an mmap'd region). */
static int map_alternate_stack(void) {
    fg__thread_cold *c = &fg__cold;
    if (c->altstack) return 0;
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    size_t size = (size_t)128 * 1024 + (size_t)SIGSTKSZ;
    size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
    /* One PROT_NONE page below the stack: an overflow of the handler itself
     * faults (and kills, since the signal is blocked there) instead of
     * scribbling on whatever is mapped below. */
    void *mapping = mmap(NULL, size + (size_t)page, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapping == MAP_FAILED) return -errno;
    if (mprotect(mapping, (size_t)page, PROT_NONE) != 0) {
        int error = errno;
        munmap(mapping, size + (size_t)page);
        return -error;
    }
    stack_t stack = {.ss_sp = (char *)mapping + page, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&stack, NULL) != 0) {
        int error = errno;
        munmap(mapping, size + (size_t)page);
        return -error;
    }
    c->altstack = mapping;
    return 0;
}

int fg_attach_thread(void) {
    if (!LOAD(&g_installed)) return -EINVAL;
    int result = map_alternate_stack();
    if (result == 0) pthread_sigmask(SIG_UNBLOCK, &g_guard_set, NULL);
    return result;
}

static int install_handler(int signal, void (*handler)(int, siginfo_t *, void *), int flags) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = handler;
    action.sa_mask = g_guard_set;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK | flags;
    if (sigaction(signal, &action, NULL) != 0) return -errno;
    struct sigaction now;
    memset(&now, 0, sizeof now);
    if (sigaction(signal, NULL, &now) != 0) return -errno;
    /* A sanitizer that owns the signal (ASan handle_segv=2) reports success
     * and keeps its own handler: refuse rather than pretend. */
    if (!(now.sa_flags & SA_SIGINFO) || now.sa_sigaction != handler) return -EPERM;
    return 0;
}

static void resolve_libc_ranges(void);

int fg_install(uint32_t call_timeout_ms) {
    pthread_mutex_lock(&g_install_lock);
    if (LOAD(&g_installed)) {
        int same = pthread_equal(g_loop_thread, pthread_self());
        pthread_mutex_unlock(&g_install_lock);
        if (!same) return -EBUSY;
        fg_set_call_timeout_ms(call_timeout_ms);
        return 0;
    }
    int result = 0;
    if (fg_timeout_signal() > SIGRTMAX) { result = -ENOTSUP; goto done; }

    /* backtrace() dlopens libgcc_s on first use: do it here, not in a
     * handler. */
    void *warm[4];
    (void)backtrace(warm, 4);

    typedef const char **(*message_buffer_fn)(void);
    message_buffer_fn buffer = (message_buffer_fn)dlsym(RTLD_DEFAULT, "swift_getFatalErrorMessageBuffer");
    g_swift_fatal_message = buffer ? buffer() : NULL;
    resolve_libc_ranges();

    sigemptyset(&g_guard_set);
    for (int i = 0; i < GUARD_SIGNAL_COUNT; i++) sigaddset(&g_guard_set, guard_signals[i]);
    sigaddset(&g_guard_set, fg_timeout_signal());
    g_pid = getpid();

    if ((result = map_alternate_stack()) != 0) goto done;

    if (!g_watchdog_started) {
        pthread_condattr_t attributes;
        pthread_condattr_init(&attributes);
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
        pthread_cond_init(&g_watchdog_wake, &attributes);
        pthread_condattr_destroy(&attributes);
    }
    STORE(&g_timeout_ms, call_timeout_ms);

    g_loop_thread = pthread_self();
    STORE(&g_watched, &fg__hot);

    /* The watchdog inherits a full signal mask but for the synchronous
     * faults: no signal meant for the process lands on it, and a fault on it
     * still reaches the crash handler (Linux kills a thread that faults with
     * the fault's signal blocked, with no report). Started once, even if
     * fg_install is retried. */
    if (!g_watchdog_started) {
        sigset_t all, old;
        sigfillset(&all);
        sigdelset(&all, SIGSEGV); sigdelset(&all, SIGBUS); sigdelset(&all, SIGILL);
        sigdelset(&all, SIGFPE); sigdelset(&all, SIGTRAP); sigdelset(&all, SIGABRT);
        sigdelset(&all, SIGSYS);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        pthread_attr_t thread_attributes;
        pthread_attr_init(&thread_attributes);
        pthread_attr_setstacksize(&thread_attributes, 256 * 1024);
        int created = pthread_create(&g_watchdog, &thread_attributes, watchdog_main, NULL);
        pthread_attr_destroy(&thread_attributes);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (created != 0) { result = -created; goto done; }
        g_watchdog_started = 1;
        pthread_setname_np(g_watchdog, "fault-watchdog");
    }

    for (int i = 0; i < GUARD_SIGNAL_COUNT && result == 0; i++)
        result = install_handler(guard_signals[i], on_fault, 0);
    if (result == 0) result = install_handler(fg_timeout_signal(), on_timeout, SA_RESTART);
    if (result != 0) goto done; /* the watchdog stays: harmless without handlers */

    pthread_sigmask(SIG_UNBLOCK, &g_guard_set, NULL);
    STORE(&g_installed, 1);
done:
    pthread_mutex_unlock(&g_install_lock);
    return result;
}

void fg_set_module(const char *name, const char *version, const char *sha256) {
    const char *sources[3] = {name, version, sha256};
    char *targets[3] = {g_module_name, g_module_version, g_module_sha256};
    for (int i = 0; i < 3; i++) {
        size_t n = 0;
        if (sources[i])
            while (n < FG_MAX_IDENTITY && sources[i][n]) n++;
        memcpy(targets[i], sources[i] ? sources[i] : "", n);
        targets[i][n] = 0;
    }
}

/* ---- Module images ---------------------------------------------------------------- */

typedef struct image_search {
    uintptr_t address;
    image_slot slot;
    int found;
} image_search;

static int find_image(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    image_search *search = data;
    int contains = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (search->address >= lo && search->address < lo + ph->p_memsz) contains = 1;
    }
    if (!contains) return 0;
    search->slot.base = info->dlpi_addr;
    search->slot.count = 0;
    for (int i = 0; i < info->dlpi_phnum && search->slot.count < RANGES_PER_IMAGE; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        search->slot.lo[search->slot.count] = info->dlpi_addr + ph->p_vaddr;
        search->slot.hi[search->slot.count] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        search->slot.count++;
    }
    search->found = 1;
    return 1;
}

/* A function's code range, from its symbol's size (dladdr1 with
 * RTLD_DL_SYMENT); an empty range when the symbol or its size is unknown. */
static code_range function_range(const char *symbol) {
    code_range range = {0, 0};
    void *address = dlsym(RTLD_DEFAULT, symbol);
    Dl_info info;
    const ElfW(Sym) *entry = NULL;
    if (address && dladdr1(address, &info, (void **)&entry, RTLD_DL_SYMENT) && entry && entry->st_size) {
        range.lo = (uintptr_t)address;
        range.hi = (uintptr_t)address + entry->st_size;
    }
    return range;
}

/* Where libc's abort, its assert functions and its code are: looked up once
 * at install, since dladdr and dl_iterate_phdr may not run in a handler. */
static void resolve_libc_ranges(void) {
    g_abort_fn = function_range("abort");
    g_assert_fns[0] = function_range("__assert_fail");
    g_assert_fns[1] = function_range("__assert_perror_fail");
    image_search search;
    memset(&search, 0, sizeof search);
    search.address = g_abort_fn.lo;
    if (search.address) dl_iterate_phdr(find_image, &search);
    for (int r = 0; r < 4; r++) {
        code_range none = {0, 0};
        g_libc_text[r] = none;
        if (search.found && r < search.slot.count) {
            g_libc_text[r].lo = search.slot.lo[r];
            g_libc_text[r].hi = search.slot.hi[r];
        }
    }
}

int fg_register_module_image(const void *address_in_image) {
    image_search search;
    memset(&search, 0, sizeof search);
    search.address = (uintptr_t)address_in_image;
    dl_iterate_phdr(find_image, &search);
    if (!search.found) return -ENOENT;
    pthread_mutex_lock(&g_image_lock);
    int free_slot = -1, result = -ENOSPC;
    for (int i = 0; i < FG_MAX_IMAGES; i++) {
        if (LOAD(&g_image_used[i])) {
            if (g_images[i].base == search.slot.base) { result = i; goto done; }
        } else if (free_slot < 0) {
            free_slot = i;
        }
    }
    if (free_slot >= 0) {
        g_images[free_slot] = search.slot;
        STORE(&g_image_used[free_slot], 1);
        ADD(&g_image_count, 1);
        result = free_slot;
    }
done:
    pthread_mutex_unlock(&g_image_lock);
    return result;
}

void fg_unregister_module_image(const void *address_in_image) {
    uintptr_t address = (uintptr_t)address_in_image;
    pthread_mutex_lock(&g_image_lock);
    for (int i = 0; i < FG_MAX_IMAGES; i++) {
        if (!LOAD(&g_image_used[i])) continue;
        const image_slot *slot = &g_images[i];
        int match = 0;
        for (int r = 0; r < slot->count; r++)
            if (address >= slot->lo[r] && address < slot->hi[r]) match = 1;
        if (!match) continue;
        STORE(&g_image_used[i], 0);
        ADD(&g_image_count, -1);
    }
    pthread_mutex_unlock(&g_image_lock);
}

/* ---- Trampolines ------------------------------------------------------------------- */

__attribute__((noinline, cold)) static int32_t recover(fg_fault *fault) {
    /* The handler ran with the seven guard signals blocked and jumped out
     * without sigreturn; sigsetjmp(env, 0) saved no mask to restore. */
    pthread_sigmask(SIG_UNBLOCK, &g_guard_set, NULL);
    /* A contained fatalError must not leave its message in the Swift
     * runtime's crash message: repeated, the string and the heap behind it
     * grow quadratically (measured: 10,000 contained fatalErrors, +3 GB). */
    fg__thread_cold *c = &fg__cold;
    c->fault.message[0] = 0;
    if (g_swift_fatal_message) {
        const char *message = __atomic_exchange_n(g_swift_fatal_message, NULL, __ATOMIC_ACQ_REL);
        if (message && c->fault.status == FG_FAULT) {
            size_t n = strnlen(message, FG_MAX_MESSAGE - 1);
            memcpy(c->fault.message, message, n);
            c->fault.message[n] = 0;
        }
        free((void *)message);
    }
    c->call_kind = FG_CALL_NONE;
    if (fault) *fault = c->fault;
    return c->fault.status;
}

static inline void call_begins(fg__thread_hot *h) {
    __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELEASE);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void call_ends(fg__thread_hot *h) {
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&h->seq, h->seq + 1, __ATOMIC_RELEASE);
}

/* The part every trampoline shares. sigsetjmp must run in the trampoline's
 * own frame (the frame must be live when the handler jumps), hence a macro. */
#define GUARDED_CALL_PROLOGUE(KIND, PTR, ID)                              \
    fg__thread_hot *const h = &fg__hot;                                   \
    fg__thread_cold *const c = &fg__cold;                                 \
    if (FG_UNLIKELY((h->seq & 1) != 0 || fn == NULL)) return FG_REFUSED;  \
    c->call_kind = (KIND);                                                \
    c->call_ptr = (PTR);                                                  \
    c->call_id = (ID);                                                    \
    if (sigsetjmp(c->env, 0) != 0) return recover(fault);                 \
    call_begins(h)

int32_t fg_call_abi_version(hotswap_abi_version_fn fn, uint32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_ABI_VERSION, NULL, 0);
    uint32_t value = fn();
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_describe(hotswap_describe_fn fn, const game_describer *d, int32_t *result,
                         fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_DESCRIBE, NULL, 0);
    int32_t value = fn(d);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_handle(hotswap_handle_fn fn, const game_message *m, const game_state_table *t,
                       int32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_HANDLE, m, 0);
    int32_t value = fn(m, t);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_session_closed(hotswap_session_closed_fn fn, game_id session,
                               const game_state_table *t, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_SESSION_CLOSED, NULL, session);
    fn(session, t);
    call_ends(h);
    return FG_OK;
}

int32_t fg_call_migrate(hotswap_migrate_fn fn, const game_migration *m, game_id entity,
                        const game_state_table *t, int32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_MIGRATE, m, entity);
    int32_t value = fn(m, entity, t);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_load(hotswap_load_fn fn, const game_state_table *t, const uint8_t *from_version,
                     size_t length, int32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_LOAD, from_version, (uint64_t)length);
    int32_t value = fn(t, from_version, length);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_timer(hotswap_timer_fn fn, const game_timer_event *e, const game_state_table *t,
                      int32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_TIMER, e, e ? e->timer : 0);
    int32_t value = fn(e, t);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_tick(hotswap_tick_fn fn, const game_tick *k, const game_state_table *t,
                     int32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_TICK, k, k ? k->room : 0);
    int32_t value = fn(k, t);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

int32_t fg_call_auth(hotswap_auth_fn fn, const game_auth_result *r, const game_state_table *t,
                     int32_t *result, fg_fault *fault) {
    GUARDED_CALL_PROLOGUE(FG_CALL_AUTH, r, r ? r->session : 0);
    int32_t value = fn(r, t);
    call_ends(h);
    if (result) *result = value;
    return FG_OK;
}

/* ---- Reading ------------------------------------------------------------------------- */

void fg_get_counters(fg_counters *out) {
    if (!out) return;
    out->faults = LOAD(&c_faults);
    out->timeouts = LOAD(&c_timeouts);
    out->deferred = LOAD(&c_deferred);
    fg__thread_hot *watched = LOAD(&g_watched);
    uint64_t seq = watched ? __atomic_load_n(&watched->seq, __ATOMIC_ACQUIRE) : 0;
    out->calls = (seq + 1) / 2;
    out->last_signal = LOAD(&c_last_signal);
    out->last_code = LOAD(&c_last_code);
    out->call_timeout_ms = LOAD(&g_timeout_ms);
    out->installed = LOAD(&g_installed);
}

const char *fg_signal_name(int signal) {
    switch (signal) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGFPE: return "SIGFPE";
    case SIGABRT: return "SIGABRT";
    case SIGALRM: return "SIGALRM";
    case SIGKILL: return "SIGKILL";
    default: break;
    }
    if (signal == SIGRTMIN + 4) return "SIGRTMIN+4";
    return "signal";
}

int fg_describe_frame(const void *pc, char *buf, size_t capacity) {
    Dl_info info;
    memset(&info, 0, sizeof info);
    if (!dladdr(pc, &info) || !info.dli_fname) {
        if (buf && capacity) snprintf(buf, capacity, "%p", pc);
        return -1;
    }
    uintptr_t offset = (uintptr_t)pc - (uintptr_t)info.dli_fbase;
    const char *path = info.dli_fname[0] ? info.dli_fname : "(main executable)";
    if (info.dli_sname && info.dli_saddr)
        return snprintf(buf, buf ? capacity : 0, "%s+0x%zx (%s+0x%zx)", path, (size_t)offset,
                        info.dli_sname, (size_t)((uintptr_t)pc - (uintptr_t)info.dli_saddr));
    return snprintf(buf, buf ? capacity : 0, "%s+0x%zx", path, (size_t)offset);
}
