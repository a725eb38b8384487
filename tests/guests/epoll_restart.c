/* A timed epoll_wait interrupted by a checkpoint's kernel pause: the test
 * checkpoints the sandbox (--leave-running) about 1 s into a 3000 ms
 * wait. The pause must be invisible: the wait restarts silently with only
 * the time left and returns 0 events ~3000 ms after it began. Prints
 * "waiting" once the wait is about to start, then
 *   ckpt r=<ret> ms=<total wait>
 * (A stop and continue end an epoll wait with EINTR instead, as on Linux:
 * see kfix_stop.c.) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* A pipe nobody writes: never ready. */
    int q[2];
    CHECK(pipe(q) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event e = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &e) == 0);
    struct epoll_event ev;
    printf("waiting\n");
    long t0 = now_ms();
    int r = epoll_wait(ep, &ev, 1, 3000);
    printf("ckpt r=%d ms=%ld\n", r, now_ms() - t0);
    return 0;
}
