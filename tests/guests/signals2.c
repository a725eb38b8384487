/* SIGCHLD siginfo, waitid, sigsuspend, nanosleep EINTR with remaining
 * time, restart_syscall across SIGSTOP/SIGCONT with WUNTRACED/WCONTINUED,
 * SA_RESETHAND, SA_NODEFER. Prints OK. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static volatile sig_atomic_t chld_pid, chld_status, chld_code, usr1_depth, usr1_max, usr1_calls;

static void on_chld(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    chld_pid = si->si_pid;
    chld_status = si->si_status;
    chld_code = si->si_code;
}

static void on_usr1(int sig) {
    (void)sig;
    usr1_calls++;
    usr1_depth++;
    if (usr1_depth > usr1_max) usr1_max = usr1_depth;
    if (usr1_calls == 1) raise(SIGUSR1); /* nested only with SA_NODEFER */
    usr1_depth--;
}

static long ms_since(struct timespec *a) {
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a->tv_sec) * 1000 + (b.tv_nsec - a->tv_nsec) / 1000000;
}

int main(void) {
    /* 1. SIGCHLD siginfo, delivered during sigsuspend. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGCHLD);
    CHECK(sigprocmask(SIG_BLOCK, &block, &old) == 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGCHLD, &sa, NULL) == 0);
    pid_t c = fork();
    if (c == 0) _exit(5);
    while (chld_pid == 0) {
        errno = 0;
        CHECK(sigsuspend(&old) == -1 && errno == EINTR);
    }
    CHECK(chld_pid == c);
    CHECK(chld_status == 5);
    CHECK(chld_code == CLD_EXITED);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    CHECK(waitid(P_PID, c, &si, WEXITED) == 0);
    CHECK(si.si_pid == c && si.si_status == 5 && si.si_code == CLD_EXITED && si.si_signo == SIGCHLD);
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    signal(SIGCHLD, SIG_DFL);

    /* 2. nanosleep interrupted by a handled signal: EINTR and the rest. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    pid_t parent = getpid();
    c = fork();
    if (c == 0) {
        struct timespec t = {0, 100 * 1000 * 1000};
        nanosleep(&t, NULL);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    struct timespec req = {1, 0}, rem = {0, 0};
    errno = 0;
    CHECK(nanosleep(&req, &rem) == -1 && errno == EINTR);
    long rem_ms = rem.tv_sec * 1000 + rem.tv_nsec / 1000000;
    CHECK(rem_ms > 500 && rem_ms < 1000);
    CHECK(waitpid(c, NULL, 0) == c);

    /* 3. Stop/continue a sleeping child: its sleep resumes with the time
     * left (restart_syscall), and the parent sees both transitions. */
    c = fork();
    if (c == 0) {
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        struct timespec t = {0, 400 * 1000 * 1000};
        if (nanosleep(&t, NULL) != 0) _exit(10);
        long e = ms_since(&start);
        _exit(e >= 350 && e < 520 ? 0 : 11);
    }
    struct timespec t = {0, 100 * 1000 * 1000};
    nanosleep(&t, NULL);
    CHECK(kill(c, SIGSTOP) == 0);
    int st;
    CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
    nanosleep(&t, NULL);
    CHECK(kill(c, SIGCONT) == 0);
    CHECK(waitpid(c, &st, WCONTINUED) == c && WIFCONTINUED(st));
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);

    /* 4. SA_NODEFER lets the handler nest; without it the second raise
     * waits until the first handler returns. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_NODEFER;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    usr1_max = usr1_calls = 0;
    raise(SIGUSR1);
    CHECK(usr1_max == 2 && usr1_calls == 2);
    sa.sa_flags = 0;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    usr1_max = usr1_calls = 0;
    raise(SIGUSR1);
    CHECK(usr1_max == 1 && usr1_calls == 2);

    /* 5. SA_RESETHAND: the second delivery takes the default action. */
    c = fork();
    if (c == 0) {
        sa.sa_flags = SA_RESETHAND;
        sigaction(SIGUSR1, &sa, NULL);
        raise(SIGUSR1);
        raise(SIGUSR1);
        _exit(0);
    }
    CHECK(waitpid(c, &st, 0) == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGUSR1);

    /* 6. poll() stopped and continued mid-timeout finishes on time (the
     * restart block keeps the deadline); a handled signal makes it EINTR. */
    c = fork();
    if (c == 0) {
        int pp[2];
        pipe(pp);
        struct pollfd pfd = {pp[0], POLLIN, 0};
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        if (poll(&pfd, 1, 400) != 0) _exit(20);
        long e = ms_since(&start);
        _exit(e >= 350 && e < 520 ? 0 : 21);
    }
    nanosleep(&t, NULL);
    CHECK(kill(c, SIGSTOP) == 0);
    CHECK(waitpid(c, &st, WUNTRACED) == c && WIFSTOPPED(st));
    nanosleep(&t, NULL);
    CHECK(kill(c, SIGCONT) == 0);
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART; /* poll is never restarted after a handler */
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    c = fork();
    if (c == 0) {
        nanosleep(&t, NULL);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    int pp[2];
    CHECK(pipe(pp) == 0);
    struct pollfd pfd = {pp[0], POLLIN, 0};
    errno = 0;
    CHECK(poll(&pfd, 1, 2000) == -1 && errno == EINTR);
    CHECK(waitpid(c, &st, 0) == c);

    /* 7. Death by SIGSEGV without RLIMIT_CORE has no core bit (Linux
     * sets it only when a dump was written). */
    c = fork();
    if (c == 0) {
        struct rlimit rl = {0, 0};
        setrlimit(RLIMIT_CORE, &rl);
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
        _exit(0);
    }
    CHECK(waitpid(c, &st, 0) == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV);
    CHECK(!WCOREDUMP(st));

    printf("OK\n");
    return 0;
}
