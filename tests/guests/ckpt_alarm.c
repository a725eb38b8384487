/* Checkpoint guest: an interval timer (setitimer ITIMER_REAL, 200 ms)
 * whose SIGALRMs are counted; prints "alarms N" after every one, forever. */
#include <signal.h>
#include <stdio.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t n;
static void on_alarm(int s) { (void)s; n++; }

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 200000}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, 0);
    int seen = 0;
    for (;;) {
        pause();
        if (n != seen) {
            seen = n;
            printf("alarms %d\n", seen);
        }
    }
}
