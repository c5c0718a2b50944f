#include "engine_signals.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

// Indexed by signal number; a flag per signal, set by the handler and
// taken by the loop (atomic: an arrival between a read and a clear would
// be lost).
#define HS_SIGNAL_SLOTS 65
static int g_arrived[HS_SIGNAL_SLOTS];
static uv_async_t *g_wake; // atomic

static void on_signal(int signal) {
    int saved = errno;
    if (signal > 0 && signal < HS_SIGNAL_SLOTS) __atomic_store_n(&g_arrived[signal], 1, __ATOMIC_SEQ_CST);
    uv_async_t *wake = __atomic_load_n(&g_wake, __ATOMIC_ACQUIRE);
    if (wake) uv_async_send(wake);
    errno = saved;
}

int hs_signals_install(const int *signals, int count, uv_async_t *wake) {
    __atomic_store_n(&g_wake, wake, __ATOMIC_RELEASE);
    for (int i = 0; i < count; i++) {
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = on_signal;
        action.sa_flags = SA_RESTART;
        sigemptyset(&action.sa_mask);
        if (sigaction(signals[i], &action, NULL) != 0) return -errno;
    }
    return 0;
}

void hs_signals_detach(void) { __atomic_store_n(&g_wake, NULL, __ATOMIC_RELEASE); }

int hs_signal_take(int signal) {
    if (signal <= 0 || signal >= HS_SIGNAL_SLOTS) return 0;
    return __atomic_exchange_n(&g_arrived[signal], 0, __ATOMIC_SEQ_CST);
}

int hs_signal_seen(int signal) {
    return signal > 0 && signal < HS_SIGNAL_SLOTS && __atomic_load_n(&g_arrived[signal], __ATOMIC_SEQ_CST);
}
