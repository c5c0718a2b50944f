// Test fixture: a module whose hotswap_describe never returns (a load that
// hangs on the reload's worker thread, where no watchdog reaches). It waits
// without using CPU; the engine must give up on it, tell the operator, keep
// serving, and still shut down.
#include <unistd.h>
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    (void)d;
    for (;;) pause();
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    return t->reply(t, (const uint8_t *)"+OK", 3);
}
