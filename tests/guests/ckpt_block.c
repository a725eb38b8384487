/* Checkpoint guest: blocks in one syscall that a checkpoint must
 * interrupt and rewind. Mode (argv[1]):
 *   sleep       nanosleep(5 s); prints the sandbox-monotonic time slept.
 *   pipe        read(2) on a pipe a child writes to after 3 s.
 *   wait        wait4 for a child that exits with 7 after 3 s.
 *   sigsuspend  sigsuspend until a child sends SIGUSR1 after 3 s.
 *   poll        poll(2) (timeout 10 s) on a pipe a child writes after 3 s.
 *   select      select(2) (timeout 10 s), same pipe.
 *   futex       FUTEX_WAIT (timeout 3 s) on a word nobody changes.
 * Prints "blocked" just before blocking and "done ..." after. */
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long mono_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static void child_sleep(void) {
    struct timespec ts = {3, 0};
    while (nanosleep(&ts, &ts) != 0) {}
}

static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got = 1; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "sleep";
    setvbuf(stdout, 0, _IONBF, 0);
    if (!strcmp(mode, "sleep")) {
        long long t0 = mono_ms();
        printf("blocked\n");
        struct timespec ts = {5, 0};
        int r = nanosleep(&ts, 0);
        printf("done r=%d slept_ms=%lld\n", r, mono_ms() - t0);
        return 0;
    }
    if (!strcmp(mode, "pipe")) {
        int p[2];
        if (pipe(p)) return 2;
        if (fork() == 0) {
            close(p[0]);
            child_sleep();
            write(p[1], "hello", 5);
            _exit(0);
        }
        close(p[1]);
        char buf[16] = {0};
        printf("blocked\n");
        ssize_t n = read(p[0], buf, sizeof buf - 1);
        printf("done n=%zd data=%s\n", n, buf);
        wait(0);
        return 0;
    }
    if (!strcmp(mode, "wait")) {
        pid_t c = fork();
        if (c == 0) {
            child_sleep();
            _exit(7);
        }
        int st = 0;
        printf("blocked\n");
        pid_t w = wait4(c, &st, 0, 0);
        printf("done same_pid=%d exit=%d\n", w == c, WEXITSTATUS(st));
        return 0;
    }
    if (!strcmp(mode, "sigsuspend")) {
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR1);
        sigprocmask(SIG_BLOCK, &block, &old);
        signal(SIGUSR1, on_usr1);
        pid_t parent = getpid();
        if (fork() == 0) {
            child_sleep();
            kill(parent, SIGUSR1);
            _exit(0);
        }
        printf("blocked\n");
        int r = sigsuspend(&old);
        printf("done r=%d got=%d\n", r, (int)got);
        wait(0);
        return 0;
    }
    if (!strcmp(mode, "poll") || !strcmp(mode, "select")) {
        int p[2];
        if (pipe(p)) return 2;
        if (fork() == 0) {
            close(p[0]);
            child_sleep();
            write(p[1], "x", 1);
            _exit(0);
        }
        close(p[1]);
        printf("blocked\n");
        int r;
        if (mode[0] == 'p') {
            struct pollfd pfd = {p[0], POLLIN, 0};
            r = poll(&pfd, 1, 10000);
            printf("done r=%d revents=%d\n", r, pfd.revents);
        } else {
            fd_set rd;
            FD_ZERO(&rd);
            FD_SET(p[0], &rd);
            struct timeval tv = {10, 0};
            r = select(p[0] + 1, &rd, 0, 0, &tv);
            printf("done r=%d ready=%d\n", r, FD_ISSET(p[0], &rd) ? 1 : 0);
        }
        wait(0);
        return 0;
    }
    if (!strcmp(mode, "futex")) {
        static int word = 0;
        struct timespec ts = {3, 0};
        printf("blocked\n");
        long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &ts, 0, 0);
        printf("done r=%ld timedout=%d\n", r, errno == ETIMEDOUT);
        return 0;
    }
    return 3;
}
