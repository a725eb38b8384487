/* Blocking calls stopped (SIGSTOP) and continued (SIGCONT) with no
 * handler: which fail with EINTR and which go on, per signal(7)
 * ("Interruption of system calls and library functions by stop
 * signals"). In each case a child stops this process STOP_AT_MS into a
 * call with a TIMEOUT_MS timeout and continues it CONT_AFTER_MS later.
 * Linux ends epoll_wait/epoll_pwait/epoll_pwait2 (timed or not) and
 * sigtimedwait with EINTR right after the continue; poll, select,
 * nanosleep, a timed FUTEX_WAIT and a pipe read carry on, the timed ones
 * with only the time left (restart_syscall or the updated timeout).
 * One line per case:
 *   CASE stop=<in|missed> r=<ret> errno=<errno> when=<cont|timeout|late|data>
 * `stop=in`: the stop came while the call was still waiting (the child
 * reports when it stopped and continued this process); `cont`: the call
 * returned within SOON_MS of the continue, before the timeout;
 * `timeout`: about TIMEOUT_MS after the call began; `late`: later (the
 * whole timeout again after the continue); `data`: the untimed call
 * returned what the child wrote DATA_AT_MS after the start (it was not
 * interrupted).
 * A handler case shows epoll_wait is not restarted with SA_RESTART
 * either, and a signal sent while blocked does not end a FUTEX_WAIT. The
 * cases run in a child of main (never init in a sandbox). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

/* Generous margins: the test runs on a loaded 2-CPU machine. A silent
 * restart with the whole timeout would end at STOP_AT_MS + CONT_AFTER_MS
 * + TIMEOUT_MS = 2600 ms, past TIMEOUT_MS + SLACK_MS. */
#define TIMEOUT_MS 2000
#define STOP_AT_MS 500
#define CONT_AFTER_MS 100
/* Untimed calls: the child makes them ready this long after the start. */
#define DATA_AT_MS 2500
/* "Right after the continue". */
#define SOON_MS 600
/* Slack around the timeout. */
#define SLACK_MS 400

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

static void sleep_until(long t) {
    long d = t - now_ms();
    if (d > 0)
        msleep(d);
}

static volatile sig_atomic_t usr1;
static void on_usr1(int s) { (void)s; usr1++; }

enum act { STOP_CONT, HANDLER, BLOCKED_SIG };

/* A child that, relative to `t0`, stops and continues the caller (or
 * sends it SIGUSR1, or the blocked SIGUSR2) at STOP_AT_MS, writes when it stopped and continued
 * (ms after t0) to `times_fd`, then writes a byte to `data_fd` at
 * DATA_AT_MS (if >= 0). */
static pid_t disturber(long t0, enum act act, int times_fd, int data_fd) {
    pid_t target = getpid();
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        sleep_until(t0 + STOP_AT_MS);
        long times[2];
        times[0] = now_ms() - t0;
        if (act == STOP_CONT) {
            kill(target, SIGSTOP);
            msleep(CONT_AFTER_MS);
            kill(target, SIGCONT);
        } else if (act == HANDLER) {
            kill(target, SIGUSR1);
        } else {
            kill(target, SIGUSR2);
        }
        times[1] = now_ms() - t0;
        if (write(times_fd, times, sizeof times) != sizeof times)
            _exit(1);
        if (data_fd >= 0) {
            sleep_until(t0 + DATA_AT_MS);
            if (write(data_fd, "d", 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    return c;
}

enum call { EPOLL, EPOLL_PWAIT, EPOLL_PWAIT2, EPOLL_UNTIMED, SIGTIMEDWAIT, POLL, SELECT,
            NANOSLEEP, FUTEX, READ };

static uint32_t futex_word;

static void run(const char *name, enum call call, enum act act) {
    int p[2], tp[2];
    CHECK(pipe(p) == 0 && pipe(tp) == 0);
    int ep = epoll_create1(0);
    CHECK(ep >= 0);
    struct epoll_event e = {.events = EPOLLIN};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e) == 0);
    int untimed = call == EPOLL_UNTIMED || call == READ;
    usr1 = 0;
    long t0 = now_ms();
    pid_t c = disturber(t0, act, tp[1], untimed ? p[1] : -1);
    int r = 0;
    struct epoll_event ev;
    struct timespec ts = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000000L};
    switch (call) {
    case EPOLL:
        r = epoll_wait(ep, &ev, 1, TIMEOUT_MS);
        break;
    case EPOLL_PWAIT: {
        sigset_t s;
        sigemptyset(&s);
        r = epoll_pwait(ep, &ev, 1, TIMEOUT_MS, &s);
        break;
    }
    case EPOLL_PWAIT2:
        r = epoll_pwait2(ep, &ev, 1, &ts, NULL);
        break;
    case EPOLL_UNTIMED:
        r = epoll_wait(ep, &ev, 1, -1);
        break;
    case SIGTIMEDWAIT: {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR2);
        r = sigtimedwait(&s, NULL, &ts);
        break;
    }
    case POLL: {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        r = poll(&pf, 1, TIMEOUT_MS);
        break;
    }
    case SELECT: {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(p[0], &rd);
        struct timeval tv = {TIMEOUT_MS / 1000, (TIMEOUT_MS % 1000) * 1000};
        r = select(p[0] + 1, &rd, NULL, NULL, &tv);
        break;
    }
    case NANOSLEEP:
        r = nanosleep(&ts, NULL);
        break;
    case FUTEX:
        futex_word = 0;
        r = syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
        break;
    case READ: {
        char b;
        r = read(p[0], &b, 1);
        break;
    }
    }
    int err = r < 0 ? errno : 0;
    long ms = now_ms() - t0;
    int st;
    CHECK(waitpid(c, &st, 0) == c);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    long times[2];
    CHECK(read(tp[0], times, sizeof times) == sizeof times);
    long stop_at = times[0], cont_at = times[1];
    /* The stop must come well before the timeout and the call's end. */
    int stop_in = stop_at <= ms && stop_at < TIMEOUT_MS - SOON_MS;
    const char *when;
    if (untimed && r > 0)
        when = "data";
    else if (ms < cont_at + SOON_MS && ms < TIMEOUT_MS - SLACK_MS)
        when = "cont";
    else if (ms < TIMEOUT_MS + SLACK_MS)
        when = "timeout";
    else
        when = "late";
    printf("%s stop=%s r=%d errno=%d when=%s usr1=%d\n", name, stop_in ? "in" : "missed", r,
           err, when, (int)usr1);
    close(ep);
    close(p[0]);
    close(p[1]);
    close(tp[0]);
    close(tp[1]);
}

static void cases(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    /* SIGUSR2 is what sigtimedwait waits for: blocked, never sent. */
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0);

    run("epoll_wait", EPOLL, STOP_CONT);
    run("epoll_pwait", EPOLL_PWAIT, STOP_CONT);
    run("epoll_pwait2", EPOLL_PWAIT2, STOP_CONT);
    run("epoll_wait_untimed", EPOLL_UNTIMED, STOP_CONT);
    run("sigtimedwait", SIGTIMEDWAIT, STOP_CONT);
    run("poll", POLL, STOP_CONT);
    run("select", SELECT, STOP_CONT);
    run("nanosleep", NANOSLEEP, STOP_CONT);
    run("futex_wait", FUTEX, STOP_CONT);
    run("read", READ, STOP_CONT);
    run("epoll_wait_handler", EPOLL, HANDLER);
    /* Last: SIGUSR2 stays pending (blocked) afterwards. */
    run("futex_wait_blocked_signal", FUTEX, BLOCKED_SIG);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t w = fork();
    CHECK(w >= 0);
    if (w == 0) {
        alarm(60);
        cases();
        _exit(0);
    }
    int st;
    CHECK(waitpid(w, &st, 0) == w);
    if (WIFSIGNALED(st))
        printf("worker killed by signal %d\n", WTERMSIG(st));
    else
        printf("worker exit %d\n", WEXITSTATUS(st));
    return 0;
}
