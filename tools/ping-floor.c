#define _GNU_SOURCE
// A floor for the redis-benchmark ping_inline rows: the least a server can
// do (one epoll loop, one read and one write per ready socket, "+PONG\r\n"
// per line, no framing across reads, no limits), polling without blocking
// for 50 us after the last event when the second argument is 1. Used in
// BENCHMARKS.md ("The -P 16 gap") to show what the client costs per request
// against any server.
//
//   cc -O2 -o /tmp/ping-floor tools/ping-floor.c && /tmp/ping-floor PORT 1
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
static long long nowns(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1000000000LL+t.tv_nsec;}
int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s PORT [1: busy-poll 50 us]\n", argv[0]); return 2; }
    int port = atoi(argv[1]), spin = argc > 2 ? atoi(argv[2]) : 0;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (bind(ls, (void *)&a, sizeof a) || listen(ls, 511)) { perror("bind"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    static char in[16384], out[16384 * 7];  // a "+PONG\r\n" for every byte of input at most
    struct epoll_event evs[1024];
    long long last = 0;
    for (;;) {
        // spin (timeout 0) only within 50 us of the last event, then block
        int n = epoll_wait(ep, evs, 1024, (spin && nowns() - last < 50000) ? 0 : -1);
        if (n > 0 && spin) last = nowns();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, 0, 0, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
                }
                continue;
            }
            ssize_t r = read(fd, in, sizeof in);
            if (r <= 0) { close(fd); continue; }
            int k = 0;
            for (ssize_t j = 0; j < r; j++) if (in[j] == '\n') { memcpy(out + k, "+PONG\r\n", 7); k += 7; }
            if (k) write(fd, out, k);
        }
    }
}
