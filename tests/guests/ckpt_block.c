/* Checkpoint guest: blocks in one syscall that a checkpoint must
 * interrupt and rewind. Mode (argv[1]):
 *   sleep       nanosleep(5 s); prints the sandbox-monotonic time slept.
 *   pipe        read(2) on a pipe a child writes to after 3 s.
 *   wait        wait4 for a child that exits with 7 after 3 s.
 *   sigsuspend  sigsuspend until a child sends SIGUSR1 after 3 s.
 * Prints "blocked" just before blocking and "done ..." after. */
#include <signal.h>
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
    return 3;
}
