// engine_signals.h: the engine's own handlers for the signals that stop it
// (SIGTERM, SIGINT, SIGHUP), upgrade it (SIGUSR2), or that it logs and
// ignores (SIGUSR1, SIGALRM, SIGXFSZ, SIGVTALRM, SIGPROF): the list is
// ProcessImage.deferredSignals. None is lost around an engine upgrade's
// execve, and none kills the process by its default action.
//
// Why not libuv's uv_signal: its handler writes the signal into a pipe the
// loop reads on its next turn. A signal that arrives while the loop thread
// is inside the upgrade's callback is in that pipe, unread, when the
// process execs: it is gone with the pipe. Here the handler sets a flag the
// engine can look at before the exec, and wakes the loop (uv_async_send,
// which libuv documents as async-signal-safe) to act on it otherwise.
//
//     main                block them all (every thread made later inherits it)
//     Engine.run          hs_signals_install, the libuv pool made, then unblock
//                         on the loop thread only: only it ever takes them
//     handler             flag[signal] = 1; uv_async_send
//     loop (async cb)     hs_signal_take: shut down, or upgrade
//     before the exec     block on the loop thread (now nobody takes them: a
//                         signal stays pending, and pending signals survive
//                         execve), then look at the flags (hs_signal_seen)
#ifndef HOTSWAP_ENGINE_SIGNALS_H
#define HOTSWAP_ENGINE_SIGNALS_H

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Installs the handler (SA_RESTART) for each of `signals`; each arrival
/// sets its flag and, while `wake` is set, sends it. Returns 0 or -errno.
int hs_signals_install(const int *signals, int count, uv_async_t *wake);

/// Stops waking (the async handle is about to close): the signals are still
/// caught, and only flagged, from here on (a shutting-down server is not
/// killed by a second SIGTERM).
void hs_signals_detach(void);

/// Whether `signal` arrived since it was last taken; clears the flag.
int hs_signal_take(int signal);

/// Whether `signal` arrived since it was last taken; leaves the flag.
int hs_signal_seen(int signal);

#ifdef __cplusplus
}
#endif

#endif
