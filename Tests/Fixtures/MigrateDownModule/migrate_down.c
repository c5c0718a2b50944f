// Test fixture "faulty 2.0.0": FaultyModule's session score retyped to a
// string, with hotswap_migrate and hotswap_migrate_down (ABI 1.5), so a
// ROLLBACK to faulty 1.0.0 converts the scores back. See faulty_retyped.h.
#define FAULTY_RETYPED_VERSION "2.0.0"
#define WITH_MIGRATE_DOWN 1
#include "../Shared/faulty_retyped.h"
