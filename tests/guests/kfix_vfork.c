/* A vfork parent waiting for its child is a clean boundary for a
 * checkpoint. The child (sharing the parent's memory) says it is
 * sleeping, sleeps CHILD_SLEEP_MS (the test checkpoints the sandbox in
 * that window, kills it and restores it), then sets a variable in the
 * shared memory and exits with 7. The parent, resumed only once the child
 * exited, prints what it sees:
 *   child sleeping
 *   parent resumed shared=1 status=7 waited=1
 * `shared=1`: the child's store happened before the parent went on (the
 * vfork wait held across the checkpoint); `waited=1`: vfork returned no
 * sooner than CHILD_SLEEP_MS after the call. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

#define CHILD_SLEEP_MS 2000

static volatile int shared;

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    long t0 = now_ms();
    pid_t c = vfork();
    CHECK(c >= 0);
    if (c == 0) {
        /* Only async-signal-safe calls in a vfork child: write, nanosleep,
         * _exit. */
        static const char msg[] = "child sleeping\n";
        if (write(1, msg, strlen(msg)) < 0)
            _exit(1);
        struct timespec ts = {CHILD_SLEEP_MS / 1000, (CHILD_SLEEP_MS % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        shared = 1;
        _exit(7);
    }
    long waited = now_ms() - t0;
    int st;
    CHECK(waitpid(c, &st, 0) == c);
    printf("parent resumed shared=%d status=%d waited=%d\n", shared,
           WIFEXITED(st) ? WEXITSTATUS(st) : -1, waited >= CHILD_SLEEP_MS);
    return 0;
}
