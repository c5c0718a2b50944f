// Test fixture: a module whose ELF constructor misbehaves, chosen by the
// name of the file it was loaded from (a test copies the library to
// ctor-segv.so, ctor-abort.so, ...; the engine's private copy keeps that
// name): the behaviour then needs no environment and no second build.
//   ctor-segv    writes through NULL              SIGSEGV inside dlopen
//   ctor-abort   abort()                          SIGABRT inside dlopen
//   ctor-exit    exit(0)                          ends the loading process, status 0
//   ctor-hang    waits forever                    dlopen never returns
//   ctor-spawn   starts a child that sleeps for a minute (its pid appended to
//                $CTOR_SPAWN_PIDFILE), then loads fine
//   ctor-fine    nothing: loads and plays (+OK to anything)
// Each says what it is about to do on stderr first ("ctor: segv").
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>
#include "game_abi.h"

static int named(const char *name, const char *what) {
    const char *base = strrchr(name, '/');
    return strstr(base ? base : name, what) != NULL;
}

__attribute__((constructor)) static void misbehave(void) {
    Dl_info info;
    if (!dladdr((void *)misbehave, &info) || !info.dli_fname) return;
    const char *name = info.dli_fname;
    if (named(name, "ctor-segv")) {
        fputs("ctor: segv\n", stderr);
        *(volatile int *)0 = 1;
    } else if (named(name, "ctor-abort")) {
        fputs("ctor: abort\n", stderr);
        abort();
    } else if (named(name, "ctor-exit")) {
        fputs("ctor: exit\n", stderr);
        exit(0);
    } else if (named(name, "ctor-hang")) {
        fputs("ctor: hang\n", stderr);
        for (;;) pause();
    } else if (named(name, "ctor-spawn")) {
        pid_t child = fork();
        if (child == 0) {
            execl("/bin/sleep", "sleep", "60", (char *)NULL);
            _exit(127);
        }
        /* One line per load (the probe's first, then the server's own). */
        const char *file = getenv("CTOR_SPAWN_PIDFILE");
        FILE *out = file ? fopen(file, "a") : NULL;
        if (out) {
            fprintf(out, "%d\n", (int)child);
            fclose(out);
        }
    }
}

uint32_t hotswap_abi_version(void) { return GAME_ABI_VERSION; }

int32_t hotswap_describe(const game_describer *d) {
    static const uint8_t name[] = "ctor", version[] = "1.0.0";
    return d->module(d, name, sizeof name - 1, version, sizeof version - 1);
}

int32_t hotswap_handle(const game_message *m, const game_state_table *t) {
    (void)m;
    return t->reply(t, (const uint8_t *)"+OK", 3);
}
