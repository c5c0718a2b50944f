// What execve costs a process that holds many sockets, with and without an
// epoll instance (close-on-exec) watching them: the measurement behind
// handing the old engine's epoll descriptor to the new engine instead of
// letting the exec close it (docs/BENCHMARKS.md, "Engine upgrade").
//
//   cc -O2 -o /tmp/exec-cost tools/exec-cost.c
//   /tmp/exec-cost 10000 0    # 10,000 sockets, no epoll instance
//   /tmp/exec-cost 10000 1    # the same, watched by an epoll instance
//   /tmp/exec-cost 10000 2    # close the epoll instance first, timed alone
//
// The program execs itself; the new image prints how long the exec took
// (CLOCK_MONOTONIC is the same on both sides of it).
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static unsigned long long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000ull + t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "exec-done") == 0) {
        printf("exec took %.2f ms\n", (now() - strtoull(argv[2], 0, 10)) / 1e6);
        return 0;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOCKETS 0|1|2\n", argv[0]);
        return 2;
    }
    int sockets = atoi(argv[1]), mode = atoi(argv[2]);
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < sockets / 2; i++) {
        int pair[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0) { perror("socketpair"); return 1; }
        for (int k = 0; mode > 0 && k < 2; k++) {
            struct epoll_event event = {.events = EPOLLIN, .data.fd = pair[k]};
            epoll_ctl(epoll, EPOLL_CTL_ADD, pair[k], &event);
        }
    }
    if (mode == 2) {
        unsigned long long started = now();
        close(epoll);
        printf("close(epoll) took %.2f ms\n", (now() - started) / 1e6);
    }
    char stamp[32];
    snprintf(stamp, sizeof stamp, "%llu", now());
    char *args[] = {argv[0], "exec-done", stamp, NULL};
    execv("/proc/self/exe", args);
    perror("execv");
    return 1;
}
