#ifndef HOTSWAP_CLIBPQ_SHIM_H
#define HOTSWAP_CLIBPQ_SHIM_H
/* PostgreSQL's C client (Debian's libpq-dev), for the shared player
   storage (Sources/Engine/Persistence/Postgres). Its calls block, so the
   engine makes them only on libuv's worker threads, never on the loop. */
#include <libpq-fe.h>
#endif
