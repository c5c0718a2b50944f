// Test fixture: a module built for ABI 1.2, before timers (1.3): it says
// 0x00010002 and reads nothing of the state table past `player_key`, as a
// 1.2 build could not. It must keep loading on a 1.3 engine (minor
// versions only append), and a reload to it is refused only while timers
// are pending, for want of hotswap_timer.
#include <string.h>
#include "game_abi.h"

uint32_t hotswap_abi_version(void) { return 0x00010002; }

int32_t hotswap_describe(const game_describer *d) {
    static const char name[] = "old", version[] = "1.2";
    return d->module(d, (const uint8_t *)name, sizeof name - 1, (const uint8_t *)version, sizeof version - 1);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    if (m->length == 4 && !memcmp(m->line, "PING", 4)) return t->reply(t, (const uint8_t *)"+PONG old", 9);
    return t->reply(t, (const uint8_t *)"-ERR unknown", 12);
}
