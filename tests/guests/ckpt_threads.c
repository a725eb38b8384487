/* Checkpoint guest: a multi-threaded process.
 * Four counter threads each increment their own counter every 100 ms up
 * to LIMIT and print "c T N"; one thread waits in pthread_cond_wait
 * (futex) for `go`, one blocks in read(2) on a pipe. When every counter
 * is done, main sets `go`, signals the condition, writes "hello" to the
 * pipe, joins everyone and prints "sentinel end".
 * Prints "ready" once every thread runs. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COUNTERS 4
#define LIMIT 50

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;
static int pipefd[2];
static volatile long counters[COUNTERS];

/* One write(2) per line, so lines of different threads never mix. */
static void say(const char *fmt, ...) {
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, n) != n) _exit(3);
}

static void *counter(void *arg) {
    long t = (long)arg;
    while (counters[t] < LIMIT) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0) {}
        counters[t]++;
        say("c %ld %ld\n", t, counters[t]);
    }
    return 0;
}

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!go) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    say("futex woke go=%d\n", go);
    return 0;
}

static void *reader(void *arg) {
    (void)arg;
    char buf[16] = {0};
    ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
    if (n == 5 && !memcmp(buf, "hello", 5))
        say("read hello n=%ld\n", (long)n);
    else
        say("read bad n=%ld\n", (long)n);
    return 0;
}

int main(void) {
    pthread_t th[COUNTERS + 2];
    if (pipe(pipefd)) return 2;
    if (pthread_create(&th[COUNTERS], 0, waiter, 0)) return 2;
    if (pthread_create(&th[COUNTERS + 1], 0, reader, 0)) return 2;
    for (long i = 0; i < COUNTERS; i++)
        if (pthread_create(&th[i], 0, counter, (void *)i)) return 2;
    say("ready\n");
    for (int i = 0; i < COUNTERS; i++) pthread_join(th[i], 0);
    pthread_mutex_lock(&mu);
    go = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    if (write(pipefd[1], "hello", 5) != 5) return 2;
    pthread_join(th[COUNTERS], 0);
    pthread_join(th[COUNTERS + 1], 0);
    long sum = 0;
    for (int i = 0; i < COUNTERS; i++) sum += counters[i];
    say("sentinel end sum=%ld\n", sum);
    return 0;
}
