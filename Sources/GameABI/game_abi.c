// The GameABI target is header-only in spirit; this file pins the layout
// promises the header makes, so a change that breaks them fails the build.
#include "game_abi.h"

_Static_assert(offsetof(game_state_table, size) == 0, "size must come first");
_Static_assert(offsetof(game_state_table, abi_version) == 4, "abi_version must be second");
_Static_assert(offsetof(game_describer, size) == 0, "size must come first");
_Static_assert(sizeof(game_id) == 8, "ids are 64-bit");
