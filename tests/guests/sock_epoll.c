/* epoll over a pipe and an eventfd: level-triggered items reported while
 * ready, edge-triggered ones once per change, one-shot until re-armed,
 * EPOLL_CTL_DEL/MOD errors, a timeout that really waits, a blocking wait
 * woken by another process's write, EINTR on a signal; eventfd counter,
 * semaphore mode and EFD_NONBLOCK. Prints OK when every check holds. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_alrm(int s) { (void)s; }

static void add(int ep, int fd, uint32_t ev, uint64_t data) {
    struct epoll_event e = {.events = ev, .data.u64 = data};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) == 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int p[2];
    CHECK(pipe(p) == 0);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    CHECK(efd >= 0);
    uint64_t v;
    CHECK(read(efd, &v, 8) == -1 && errno == EAGAIN);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    CHECK(epoll_create(0) == -1 && errno == EINVAL);
    add(ep, p[0], EPOLLIN, 100);                 /* level */
    add(ep, efd, EPOLLIN | EPOLLET, 200);        /* edge */
    struct epoll_event e = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e) == -1 && errno == EEXIST);
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &e) == -1 && errno == ENOENT);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &e) == -1 && errno == EINVAL);
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, 1000, &e) == -1 && errno == EBADF);
    CHECK(epoll_ctl(p[0], EPOLL_CTL_ADD, efd, &e) == -1 && errno == EINVAL);

    struct epoll_event out[8];
    /* Nothing ready: a 0 timeout returns at once, 150 ms waits. */
    CHECK(epoll_wait(ep, out, 8, 0) == 0);
    long t0 = now_ms();
    CHECK(epoll_wait(ep, out, 8, 150) == 0);
    long waited = now_ms() - t0;
    CHECK(waited >= 140 && waited < 2000);
    CHECK(epoll_wait(ep, out, 0, 0) == -1 && errno == EINVAL);

    /* Level: reported on every wait while data remains. */
    CHECK(write(p[1], "abc", 3) == 3);
    for (int i = 0; i < 3; i++) {
        CHECK(epoll_wait(ep, out, 8, 0) == 1);
        CHECK(out[0].events == EPOLLIN && out[0].data.u64 == 100);
    }
    char b[8];
    CHECK(read(p[0], b, sizeof b) == 3);
    CHECK(epoll_wait(ep, out, 8, 0) == 0);

    /* Edge: one report per write, even though the counter stays > 0. */
    v = 5;
    CHECK(write(efd, &v, 8) == 8);
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && out[0].data.u64 == 200 && out[0].events == EPOLLIN);
    CHECK(epoll_wait(ep, out, 8, 0) == 0);
    v = 2;
    CHECK(write(efd, &v, 8) == 8);
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && out[0].data.u64 == 200);
    CHECK(epoll_wait(ep, out, 8, 0) == 0);
    CHECK(read(efd, &v, 8) == 8 && v == 7);

    /* Both at once. */
    CHECK(write(p[1], "x", 1) == 1);
    v = 1;
    CHECK(write(efd, &v, 8) == 8);
    int n = epoll_wait(ep, out, 8, 0);
    CHECK(n == 2);
    CHECK(out[0].data.u64 + out[1].data.u64 == 300);
    CHECK(read(p[0], b, 1) == 1 && read(efd, &v, 8) == 8);

    /* One-shot: disabled after one report until EPOLL_CTL_MOD. */
    e.events = EPOLLIN | EPOLLONESHOT;
    e.data.u64 = 101;
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e) == 0);
    CHECK(write(p[1], "y", 1) == 1);
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && out[0].data.u64 == 101);
    CHECK(epoll_wait(ep, out, 8, 0) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e) == 0);
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && out[0].data.u64 == 101);
    CHECK(read(p[0], b, 1) == 1);
    e.events = EPOLLIN;
    e.data.u64 = 100;
    CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &e) == 0);

    /* A blocking wait woken by a child writing 100 ms later. */
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        usleep(100000);
        if (write(p[1], "z", 1) != 1) _exit(2);
        _exit(0);
    }
    /* Nothing was ready before the fork: only the child's write can end it. */
    CHECK(epoll_wait(ep, out, 8, -1) == 1 && out[0].data.u64 == 100);
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(read(p[0], b, 1) == 1);

    /* Hang-up: the write end closed. */
    close(p[1]);
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && (out[0].events & EPOLLHUP));
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == 0);
    CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) == -1 && errno == ENOENT);

    /* A signal with a handler interrupts a blocking wait: EINTR even
     * with SA_RESTART (epoll_wait is never restarted). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    struct itimerval it = {{0, 0}, {0, 50000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    CHECK(epoll_wait(ep, out, 8, -1) == -1 && errno == EINTR);

    /* epoll_pwait with a mask blocking SIGALRM: the timer does not
     * interrupt, the timeout expires. */
    sigset_t blk;
    sigemptyset(&blk);
    sigaddset(&blk, SIGALRM);
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    CHECK(epoll_pwait(ep, out, 8, 150, &blk) == 0);

    /* Semaphore eventfd: each read takes one. */
    int sem = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    CHECK(sem >= 0);
    CHECK(read(sem, &v, 8) == 8 && v == 1);
    CHECK(read(sem, &v, 8) == 8 && v == 1);
    CHECK(read(sem, &v, 8) == -1 && errno == EAGAIN);
    CHECK(read(sem, &v, 4) == -1 && errno == EINVAL);
    CHECK(eventfd(0, 0x12345) == -1 && errno == EINVAL);
    v = UINT64_MAX;
    CHECK(write(sem, &v, 8) == -1 && errno == EINVAL);
    /* Events to a bad buffer: EFAULT. */
    struct epoll_event *volatile bad = (struct epoll_event *)8;
    CHECK(epoll_wait(ep, bad, 8, 0) == 0);
    v = 1;
    CHECK(write(sem, &v, 8) == 8);
    add(ep, sem, EPOLLIN, 300);
    CHECK(epoll_wait(ep, bad, 8, 0) == -1 && errno == EFAULT);
    CHECK(epoll_wait(ep, out, 8, 0) == 1 && out[0].data.u64 == 300);
    printf("OK\n");
    return 0;
}
