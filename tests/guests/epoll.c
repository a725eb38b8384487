/* eventfd and epoll: counter semantics (and EFD_SEMAPHORE), epoll over a
 * pipe and an eventfd (level-triggered and EPOLLET), timeouts, a wake-up
 * from another process, EPOLL_CTL_MOD/DEL errors. Prints OK. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

int main(void) {
    int efd = eventfd(3, EFD_NONBLOCK);
    CHECK(efd >= 0);
    uint64_t v = 4;
    CHECK(write(efd, &v, 8) == 8);
    CHECK(read(efd, &v, 8) == 8 && v == 7);
    errno = 0;
    CHECK(read(efd, &v, 8) == -1 && errno == EAGAIN);
    int sem = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    CHECK(read(sem, &v, 8) == 8 && v == 1);
    CHECK(read(sem, &v, 8) == 8 && v == 1);
    CHECK(read(sem, &v, 8) == -1 && errno == EAGAIN);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    int p[2];
    CHECK(pipe(p) == 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 111};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 222;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0);
    errno = 0;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == -1 && errno == EEXIST);

    struct epoll_event out[4];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK(epoll_wait(ep, out, 4, 100) == 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    CHECK(ms >= 90);

    /* Another process makes the pipe readable while we sleep. */
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        write(p[1], "x", 1);
        _exit(0);
    }
    int n = epoll_wait(ep, out, 4, 5000);
    CHECK(n == 1 && out[0].data.u64 == 111 && (out[0].events & EPOLLIN));
    /* Level-triggered: still reported until drained. */
    CHECK(epoll_wait(ep, out, 4, 0) == 1);
    char ch;
    CHECK(read(p[0], &ch, 1) == 1);
    CHECK(epoll_wait(ep, out, 4, 0) == 0);
    waitpid(c, NULL, 0);

    /* Edge-triggered eventfd: one report per change. */
    v = 1;
    CHECK(write(efd, &v, 8) == 8);
    CHECK(epoll_wait(ep, out, 4, 0) == 1 && out[0].data.u64 == 222);
    CHECK(epoll_wait(ep, out, 4, 0) == 0);

    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, efd, NULL) == 0);
    errno = 0;
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, efd, &ev) == -1 && errno == ENOENT);
    errno = 0;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev) == -1 && errno == EINVAL);
    printf("OK\n");
    return 0;
}
