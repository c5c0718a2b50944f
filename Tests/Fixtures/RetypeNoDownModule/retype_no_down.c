// Test fixture "faulty 2.1.0": FaultyModule's session score retyped to a
// string, with hotswap_migrate but no hotswap_migrate_down, so a ROLLBACK to
// faulty 1.0.0 (the operator's or the fault policy's) is refused: it would
// bring back the scores from before the upgrade. See faulty_retyped.h.
#define FAULTY_RETYPED_VERSION "2.1.0"
#include "../Shared/faulty_retyped.h"
