#include <time.h>
#include "probe_support.h"

uint64_t probe_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t probe_time_direct(hotswap_handle_fn fn, const game_message *m, const game_state_table *t,
                           uint64_t iterations) {
    hotswap_handle_fn volatile target = fn;
    volatile int32_t sink = 0;
    uint64_t start = probe_now_ns();
    for (uint64_t i = 0; i < iterations; i++) sink = target(m, t);
    (void)sink;
    return probe_now_ns() - start;
}

uint64_t probe_time_guarded(hotswap_handle_fn fn, const game_message *m, const game_state_table *t,
                            uint64_t iterations) {
    hotswap_handle_fn volatile target = fn;
    volatile int32_t sink = 0;
    int32_t result = 0;
    uint64_t start = probe_now_ns();
    for (uint64_t i = 0; i < iterations; i++) {
        if (fg_call_handle(target, m, t, &result, 0) != FG_OK) return 0;
        sink = result;
    }
    (void)sink;
    return probe_now_ns() - start;
}

uint64_t probe_time_sections(uint64_t iterations) {
    uint64_t start = probe_now_ns();
    for (uint64_t i = 0; i < iterations; i++) {
        fg_enter_engine();
        __asm__ volatile("" ::: "memory");
        fg_leave_engine();
    }
    return probe_now_ns() - start;
}
