// C helpers for FaultGuardProbe: timing loops that must not be Swift (so the
// measured difference is the trampoline alone), and faults the probe needs
// outside any module.
#ifndef HOTSWAP_PROBE_SUPPORT_H
#define HOTSWAP_PROBE_SUPPORT_H

#include <stdint.h>
#include "game_abi.h"
#include "fault_guard.h"

/* A hotswap_handle that does nothing, in another translation unit than the
 * loops, called through a volatile pointer so nothing is inlined. */
int32_t probe_noop_handle(const game_message *m, const game_state_table *t);

/* Nanoseconds for `iterations` calls of fn(m, t): directly, and through
 * fg_call_handle. */
uint64_t probe_time_direct(hotswap_handle_fn fn, const game_message *m, const game_state_table *t,
                           uint64_t iterations);
uint64_t probe_time_guarded(hotswap_handle_fn fn, const game_message *m, const game_state_table *t,
                            uint64_t iterations);
/* Nanoseconds for `iterations` fg_enter_engine/fg_leave_engine pairs. */
uint64_t probe_time_sections(uint64_t iterations);

/* Writes through a NULL pointer (SIGSEGV). */
void probe_null_write(void);

/* The load address of the image containing pc (dladdr), or NULL. */
const void *probe_image_base(const void *pc);

/* Runs fn on a new thread (default attributes) and joins it. 0 or an errno. */
int probe_run_on_thread(void (*fn)(void));

/* Monotonic nanoseconds. */
uint64_t probe_now_ns(void);

#endif
