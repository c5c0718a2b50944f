#ifndef HOTSWAP_CLIBUV_SHIM_H
#define HOTSWAP_CLIBUV_SHIM_H
#include <uv.h>
#endif
