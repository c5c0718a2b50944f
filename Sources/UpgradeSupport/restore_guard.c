#define _GNU_SOURCE
#include "restore_guard.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_CRASH_SIGNALS 8

// 0: not armed; 1: armed; 2: a handler is handing back (one thread only).
enum { DISARMED = 0, ARMED = 1, HANDING_BACK = 2 };
static int g_state;

static hs_restore_plan g_plan;
static int g_crash_signals[MAX_CRASH_SIGNALS];
static const char *g_crash_reasons[MAX_CRASH_SIGNALS];
static int g_crash_count;
static struct sigaction g_saved[MAX_CRASH_SIGNALS];
static struct sigaction g_saved_alarm;
static sigset_t g_exec_mask;
static timer_t g_timer;
static const char *g_cleanup;  // atomic
static int g_crashed;          // atomic: the signal the fatal hook noted

// ---- async-signal-safe helpers ---------------------------------------------

static size_t text_length(const char *s) {
    size_t n = 0;
    while (s && s[n]) n++;
    return n;
}

static void say(const char *text) {
    size_t left = text_length(text);
    while (left > 0) {
        ssize_t n = write(2, text, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        text += n;
        left -= (size_t)n;
    }
}

struct dirent64_record {
    unsigned long long inode;
    long long offset;
    unsigned short length;
    unsigned char type;
    char name[];
};

// Unlinks every entry of `path` (a flat directory of module copies), then
// the directory.
static void remove_directory(const char *path) {
    if (!path) return;
    int directory = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (directory >= 0) {
        char buffer[4096] __attribute__((aligned(8)));
        for (;;) {
            long count = syscall(SYS_getdents64, directory, buffer, sizeof buffer);
            if (count <= 0) break;
            for (long at = 0; at < count;) {
                struct dirent64_record *entry = (struct dirent64_record *)(buffer + at);
                const char *name = entry->name;
                int dots = name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0));
                if (!dots) unlinkat(directory, name, 0);
                at += entry->length;
            }
        }
        close(directory);
    }
    rmdir(path);
}

static const char *reason_for(int signal) {
    for (int i = 0; i < g_crash_count; i++)
        if (g_crash_signals[i] == signal) return g_crash_reasons[i];
    return g_plan.timeout_reason;
}

// Execs the previous engine; returns only if it cannot (or the guard is not
// armed). A second thread arriving while one hands back waits for the exec.
static void hand_back(const char *reason) {
    int expected = ARMED;
    if (!__atomic_compare_exchange_n(&g_state, &expected, HANDING_BACK, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        if (expected == HANDING_BACK)
            for (;;) pause();
        return;
    }
    struct itimerspec off;
    memset(&off, 0, sizeof off);
    timer_settime(g_timer, 0, &off, NULL);
    // A SIGALRM already generated would stay pending across the exec and
    // kill the previous engine (its default action): setting SIG_IGN
    // discards it, then the default goes back.
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_IGN;
    sigaction(SIGALRM, &action, NULL);
    action.sa_handler = SIG_DFL;
    sigaction(SIGALRM, &action, NULL);
    for (int i = 0; i < g_plan.descriptor_count; i++) fcntl(g_plan.descriptors[i], F_SETFD, 0);
    remove_directory(__atomic_load_n(&g_cleanup, __ATOMIC_ACQUIRE));
    say("hotswap: ");
    say(reason);
    say("; handing everything back to the previous engine\n");
    g_plan.argv[g_plan.reason_slot] = (char *)reason;
    // The mask survives the exec: the signal being handled (blocked while
    // its handler runs) must not stay blocked in the previous engine, the
    // deferred ones must, until its handlers are in place.
    sigprocmask(SIG_SETMASK, &g_exec_mask, NULL);
    execve(g_plan.path, g_plan.argv, g_plan.envp);
    say("hotswap: cannot hand back: execve of the previous engine failed\n");
}

static void on_crash(int signal, siginfo_t *info, void *context) {
    (void)info;
    (void)context;
    hand_back(reason_for(signal));
    // Not armed any more, or the exec failed: die of the signal.
    struct sigaction fallback;
    memset(&fallback, 0, sizeof fallback);
    fallback.sa_handler = SIG_DFL;
    sigaction(signal, &fallback, NULL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signal);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    raise(signal);
}

static void on_alarm(int signal) {
    (void)signal;
    int crashed = __atomic_load_n(&g_crashed, __ATOMIC_ACQUIRE);
    hand_back(crashed ? reason_for(crashed) : g_plan.timeout_reason);
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == HANDING_BACK) {
        // The exec failed: a hung engine with nobody to hand back to.
        _exit(70);
    }
}

void hs_restore_guard_fatal(int signal, int after_report) {
    if (!after_report) {
        __atomic_store_n(&g_crashed, signal, __ATOMIC_RELEASE);
        return;
    }
    hand_back(reason_for(signal));
}

// ---- arming -------------------------------------------------------------------

// The calling thread's alternate signal stack, if it has none: a stack
// overflow while restoring must reach the handler too.
static int ensure_alternate_stack(void) {
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return 0;
    size_t size = (size_t)64 * 1024 + (size_t)SIGSTKSZ;
    void *mapping = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (mapping == MAP_FAILED) return -errno;
    stack_t stack = {.ss_sp = mapping, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&stack, NULL) != 0) {
        int error = errno;
        munmap(mapping, size);
        return -error;
    }
    return 0;  // kept for the life of the process (a handler may be on it)
}

static int install(int signal, struct sigaction *action, struct sigaction *saved) {
    if (sigaction(signal, action, saved) != 0) return -errno;
    struct sigaction now;
    if (sigaction(signal, NULL, &now) != 0) return -errno;
    // A sanitizer that owns the signal may report success and keep its own.
    int ours = (action->sa_flags & SA_SIGINFO) ? now.sa_sigaction == action->sa_sigaction
                                               : now.sa_handler == action->sa_handler;
    return ours ? 0 : -EPERM;
}

int hs_restore_guard_arm(const hs_restore_plan *plan) {
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != DISARMED) return -EBUSY;
    if (plan->crash_count > MAX_CRASH_SIGNALS || plan->reason_slot < 0) return -EINVAL;
    g_plan = *plan;
    g_crash_count = plan->crash_count;
    for (int i = 0; i < plan->crash_count; i++) {
        g_crash_signals[i] = plan->crash_signals[i];
        g_crash_reasons[i] = plan->crash_reasons[i];
    }
    sigemptyset(&g_exec_mask);
    for (int i = 0; i < plan->deferred_count; i++) sigaddset(&g_exec_mask, plan->deferred[i]);

    int result = ensure_alternate_stack();
    if (result != 0) return result;

    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGALRM);
    for (int i = 0; i < g_crash_count; i++) sigaddset(&handled, g_crash_signals[i]);

    struct sigaction crash;
    memset(&crash, 0, sizeof crash);
    crash.sa_sigaction = on_crash;
    crash.sa_mask = handled;
    crash.sa_flags = SA_SIGINFO | SA_ONSTACK;
    int installed = 0;
    for (; installed < g_crash_count && result == 0; installed++)
        result = install(g_crash_signals[installed], &crash, &g_saved[installed]);
    struct sigaction alarm_action;
    memset(&alarm_action, 0, sizeof alarm_action);
    alarm_action.sa_handler = on_alarm;
    alarm_action.sa_mask = handled;
    alarm_action.sa_flags = SA_ONSTACK;
    if (result == 0) result = install(SIGALRM, &alarm_action, &g_saved_alarm);

    struct sigevent event;
    memset(&event, 0, sizeof event);
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGALRM;
    if (result == 0 && timer_create(CLOCK_MONOTONIC, &event, &g_timer) != 0) result = -errno;
    if (result != 0) {
        for (int i = 0; i < installed; i++) sigaction(g_crash_signals[i], &g_saved[i], NULL);
        sigaction(SIGALRM, &g_saved_alarm, NULL);
        return result;
    }
    __atomic_store_n(&g_state, ARMED, __ATOMIC_SEQ_CST);
    pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
    struct itimerspec deadline;
    memset(&deadline, 0, sizeof deadline);
    deadline.it_value.tv_sec = plan->timeout_ms / 1000;
    deadline.it_value.tv_nsec = (long)(plan->timeout_ms % 1000) * 1000000L;
    timer_settime(g_timer, 0, &deadline, NULL);
    return 0;
}

void hs_restore_guard_set_cleanup(const char *directory) {
    __atomic_store_n(&g_cleanup, directory, __ATOMIC_RELEASE);
}

int hs_restore_guard_armed(void) { return __atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == ARMED; }

void hs_restore_guard_disarm(void) {
    int expected = ARMED;
    if (!__atomic_compare_exchange_n(&g_state, &expected, DISARMED, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
        if (expected == HANDING_BACK)
            for (;;) pause();
        return;
    }
    timer_delete(g_timer);
    for (int i = 0; i < g_crash_count; i++) {
        struct sigaction now;
        if (sigaction(g_crash_signals[i], NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_crash)
            sigaction(g_crash_signals[i], &g_saved[i], NULL);
    }
    // Linux may leave a signal the deleted timer generated pending: SIG_IGN
    // discards it before the previous action (the default: terminate) is
    // back.
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    sigaction(SIGALRM, &ignore, NULL);
    sigaction(SIGALRM, &g_saved_alarm, NULL);
}
