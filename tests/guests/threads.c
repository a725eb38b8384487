/* pthreads: shared memory and a mutex, condition variables (futex
 * wait/wake), distinct tids, pthread_kill to one thread, join via
 * CLONE_CHILD_CLEARTID, fork from a threaded process, exec from a
 * non-main thread, and exit_group while threads block. Prints OK. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)
#define NTHREADS 4
#define ITERS 20000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter;
static int ready;
static pid_t tids[NTHREADS];
static volatile sig_atomic_t usr1_tid;

static void *worker(void *arg) {
    long i = (long)arg;
    tids[i] = (pid_t)syscall(SYS_gettid);
    for (int k = 0; k < ITERS; k++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    return (void *)(i * 10);
}

static void *waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!ready) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return (void *)7;
}

static void on_usr1(int s) { (void)s; usr1_tid = (pid_t)syscall(SYS_gettid); }

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void *pdeathsig_of_thread(void *arg) {
    (void)arg;
    int sig = -1;
    if (prctl(PR_GET_PDEATHSIG, &sig) != 0) return (void *)-1L;
    return (void *)(long)sig;
}

static void *execer(void *arg) {
    (void)arg;
    execl("/usr/bin/busybox", "busybox", "sh", "-c", "exit 42", (char *)NULL);
    return NULL;
}

int main(void) {
    pthread_t th[NTHREADS];
    for (long i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&th[i], NULL, worker, (void *)i) == 0);
    for (long i = 0; i < NTHREADS; i++) {
        void *ret;
        CHECK(pthread_join(th[i], &ret) == 0);
        CHECK((long)ret == i * 10);
    }
    CHECK(counter == (long)NTHREADS * ITERS);
    for (int i = 0; i < NTHREADS; i++) {
        CHECK(tids[i] > 0 && tids[i] != getpid());
        for (int j = 0; j < i; j++) CHECK(tids[i] != tids[j]);
    }

    /* Condition variable. */
    pthread_t w;
    CHECK(pthread_create(&w, NULL, waiter, NULL) == 0);
    usleep(50000);
    pthread_mutex_lock(&mu);
    ready = 1;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
    void *ret;
    CHECK(pthread_join(w, &ret) == 0 && (long)ret == 7);

    /* A new thread does not inherit the parent-death signal (Linux
       copy_process clears it for every new task). */
    CHECK(prctl(PR_SET_PDEATHSIG, SIGUSR2) == 0);
    pthread_t pd;
    CHECK(pthread_create(&pd, NULL, pdeathsig_of_thread, NULL) == 0);
    CHECK(pthread_join(pd, &ret) == 0 && (long)ret == 0);
    CHECK(prctl(PR_SET_PDEATHSIG, 0) == 0);

    /* A signal aimed at one thread runs its handler on that thread. */
    signal(SIGUSR1, on_usr1);
    pthread_t s;
    CHECK(pthread_create(&s, NULL, sleeper, NULL) == 0);
    usleep(50000);
    CHECK(pthread_kill(s, SIGUSR1) == 0);
    for (int i = 0; i < 100 && !usr1_tid; i++) usleep(10000);
    CHECK(usr1_tid != 0 && usr1_tid != getpid());

    /* fork from a threaded process: the child has one thread. */
    pid_t c = fork();
    if (c == 0) {
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        int threads = -1;
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "Threads: %d", &threads) == 1) break;
        _exit(threads == 1 ? 0 : 5);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* exec from a non-main thread replaces the whole (multi-threaded)
     * process. */
    c = fork();
    if (c == 0) {
        pthread_t e, z;
        pthread_create(&z, NULL, sleeper, NULL);
        pthread_create(&e, NULL, execer, NULL);
        for (;;) pause();
    }
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 42);

    /* exit() from main while the sleeper thread blocks ends the process. */
    printf("OK\n");
    fflush(stdout);
    exit(0);
}
