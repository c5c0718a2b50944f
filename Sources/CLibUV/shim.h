#ifndef HOTSWAP_CLIBUV_SHIM_H
#define HOTSWAP_CLIBUV_SHIM_H
#include <uv.h>
/* timerfd: the load tool's pacer wakes the loop to the microsecond, which
   libuv's millisecond timers cannot (tools/loadtest/Core/Pacer.swift).
   Swift's Glibc module does not export this header. */
#include <sys/timerfd.h>
#endif
