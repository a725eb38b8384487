/* A timed sigtimedwait interrupted by a checkpoint's kernel pause: the
 * test checkpoints the sandbox (--leave-running) about 1 s into a
 * 3000 ms wait for a signal nobody sends. The pause must be invisible:
 * the wait restarts with only the time left and fails with EAGAIN ~3000 ms
 * after it began (not ~4000 ms, nor EINTR). Prints "waiting" once the
 * wait is about to start, then
 *   sigtimedwait r=<ret> errno=<errno> ms=<total wait> */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0);
    struct timespec ts = {3, 0};
    printf("waiting\n");
    long t0 = now_ms();
    int r = sigtimedwait(&s, NULL, &ts);
    int e = r < 0 ? errno : 0;
    printf("sigtimedwait r=%d errno=%d ms=%ld\n", r, e, now_ms() - t0);
    return 0;
}
