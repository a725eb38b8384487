/* ITIMER_REAL and alarm: a periodic timer delivers SIGALRM repeatedly,
 * getitimer reports the time left, alarm returns the previous alarm's
 * remaining seconds, an unhandled SIGALRM kills, and fork children do not
 * inherit timers; a relative futex timeout interrupted by a stop keeps
 * counting instead of starting over. Prints OK. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static volatile sig_atomic_t ticks;
static void on_alrm(int s) { (void)s; ticks++; }

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);

    struct itimerval it = {{0, 50000}, {0, 50000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    struct itimerval cur;
    CHECK(getitimer(ITIMER_REAL, &cur) == 0);
    CHECK(cur.it_interval.tv_usec == 50000);
    CHECK(cur.it_value.tv_sec == 0 && cur.it_value.tv_usec > 0 && cur.it_value.tv_usec <= 50000);
    while (ticks < 4) pause();
    struct itimerval off = {{0, 0}, {0, 0}};
    CHECK(setitimer(ITIMER_REAL, &off, &cur) == 0);
    CHECK(cur.it_interval.tv_usec == 50000);
    int seen = ticks;
    usleep(150000);
    CHECK(ticks == seen); /* disarmed */

    CHECK(alarm(10) == 0);
    CHECK(alarm(0) == 10);


    /* A child does not inherit the parent's timer; its own alarm kills it. */
    CHECK(alarm(5) == 0);
    pid_t c = fork();
    if (c == 0) {
        if (alarm(0) != 0) _exit(3);
        signal(SIGALRM, SIG_DFL);
        alarm(1);
        for (;;) pause();
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM);
    CHECK(alarm(0) >= 3);

    /* SIGSTOP/SIGCONT restart a relative FUTEX_WAIT through the restart
       block: it times out 1 s after it started, not 1 s after SIGCONT
       (Linux futex_wait_restart). */
    /* The child reports (through a pipe) that it is about to wait; the
       parent stops it 200 ms later, well inside the wait even on a loaded
       machine, and continues it 800 ms after that. With the restart block
       the wait ends ~1 s after it began; restarted with the full timeout
       it would end ~2 s after. */
    int ready[2];
    CHECK(pipe(ready) == 0);
    c = fork();
    if (c == 0) {
        static int word;
        struct timespec t0, t1, to = {1, 0};
        close(ready[0]);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (write(ready[1], "r", 1) != 1) _exit(7);
        long r = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &to, NULL, 0);
        int e = errno;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double took = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (r != -1 || e != ETIMEDOUT) _exit(4);
        _exit(took < 0.95 ? 5 : took > 1.6 ? 6 : 0);
    }
    close(ready[1]);
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);
    usleep(200000);
    CHECK(kill(c, SIGSTOP) == 0);
    CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st));
    usleep(800000);
    CHECK(kill(c, SIGCONT) == 0);
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
    printf("OK\n");
    return 0;
}
