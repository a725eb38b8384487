/* epoll waits with a timeout interrupted by a stop: a child stops this
 * process (SIGSTOP) while it waits 1000 ms and continues it (SIGCONT)
 * 100 ms later. Under sbx the wait restarts silently and keeps only the
 * time left, so it returns 0 events after ~1000 ms in all, not after
 * ~1000 ms + the time before the stop. For epoll_pwait, the restart keeps
 * its temporary mask (a SIGUSR1 sent after the continue stays blocked
 * until the call returns). A handler that runs after the restart still
 * gives EINTR (epoll_wait is never restarted after a handler, even with
 * SA_RESTART). Prints one line per case for the test to judge:
 *   CASE r=<ret> errno=<errno> ms=<total wait> stop_at=<ms> usr1=<n>
 * (Natively Linux returns EINTR right after the continue, signal(7).) */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

/* When the child stops the parent, after the parent's wait began. */
#define STOP_AFTER_MS 500

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1++; }

/* Forks a child that stops and continues this process STOP_AFTER_MS
 * after `t0`, then (if `send_usr1`) sends SIGUSR1 200 ms later; it writes
 * the time of the stop to `fd`. */
static pid_t stopper(long t0, int send_usr1, int fd) {
    pid_t parent = getpid();
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        long d = t0 + STOP_AFTER_MS - now_ms();
        if (d > 0)
            msleep(d);
        long at = now_ms();
        kill(parent, SIGSTOP);
        msleep(100);
        kill(parent, SIGCONT);
        if (send_usr1) {
            msleep(200);
            kill(parent, SIGUSR1);
        }
        if (write(fd, &at, sizeof at) != sizeof at)
            _exit(1);
        _exit(0);
    }
    return c;
}

enum mode { WAIT, PWAIT, PWAIT2, HANDLER };

static void run(const char *name, enum mode m, int ep) {
    int p[2];
    CHECK(pipe(p) == 0);
    struct epoll_event ev;
    usr1 = 0;
    long t0 = now_ms();
    pid_t c = stopper(t0, m == PWAIT || m == HANDLER, p[1]);
    int r;
    if (m == PWAIT) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        r = epoll_pwait(ep, &ev, 1, 1000, &s);
    } else if (m == PWAIT2) {
        struct timespec ts = {1, 0};
        r = epoll_pwait2(ep, &ev, 1, &ts, NULL);
    } else {
        r = epoll_wait(ep, &ev, 1, 1000);
    }
    int e = r < 0 ? errno : 0;
    long ms = now_ms() - t0;
    int st;
    CHECK(waitpid(c, &st, 0) == c);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    long at = 0;
    CHECK(read(p[0], &at, sizeof at) == sizeof at);
    close(p[0]);
    close(p[1]);
    printf("%s r=%d errno=%d ms=%ld stop_at=%ld usr1=%d\n", name, r, e, ms, at - t0, (int)usr1);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    /* A pipe nobody writes: never ready. */
    int q[2];
    CHECK(pipe(q) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    struct epoll_event e = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, q[0], &e) == 0);
    if (argc > 1 && strcmp(argv[1], "ckpt") == 0) {
        /* The test checkpoints (--leave-running) during this wait. */
        struct epoll_event ev;
        printf("waiting\n");
        long t0 = now_ms();
        int r = epoll_wait(ep, &ev, 1, 3000);
        printf("ckpt r=%d ms=%ld\n", r, now_ms() - t0);
        return 0;
    }
    run("wait", WAIT, ep);
    run("pwait", PWAIT, ep);
    run("pwait2", PWAIT2, ep);
    run("handler", HANDLER, ep);
    return 0;
}
