/* The sentry must survive any syscall arguments. Children issue random
 * syscalls with random (and some deliberately nasty) arguments; each
 * child is killed after a short time if it blocks. The parent then checks
 * the sandbox still works (fork, pipe, write) and prints OK.
 * Usage: sysfuzz SEED ROUNDS */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t state;
static uint64_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static uint64_t arg(void) {
    static char buf[4096];
    switch (rnd() % 10) {
    case 0: return 0;
    case 1: return (uint64_t)-1;
    case 2: return rnd() % 64;
    case 3: return (uint64_t)buf;           /* a valid buffer */
    case 4: return (uint64_t)buf + 4090;    /* crossing nothing useful */
    case 5: return 0xfffffffffffff000ULL;   /* kernel-ish address */
    case 6: return 0x7ffffffff000ULL;       /* top of user space */
    case 7: return 1ULL << (rnd() % 63);
    case 8: return (uint64_t)"/etc/passwd";
    default: return rnd();
    }
}

static int excluded(long nr) {
    switch (nr) {
    case SYS_exit: case SYS_exit_group: case SYS_fork: case SYS_vfork: case SYS_clone:
    case SYS_kill: case SYS_tkill: case SYS_tgkill: case SYS_rt_sigqueueinfo:
    case SYS_execve: case SYS_execveat: case SYS_setsid: case SYS_setpgid:
        return 1;
    }
    return 0;
}

static void child(unsigned seed) {
    state = 0x9e3779b97f4a7c15ULL ^ seed;
    for (int i = 0; i < 400; i++) {
        long nr = rnd() % 335;
        if (excluded(nr)) continue;
        syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
    }
    _exit(0);
}

int main(int argc, char **argv) {
    unsigned seed = argc > 1 ? atoi(argv[1]) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    for (int r = 0; r < rounds; r++) {
        pid_t c = fork();
        if (c < 0) { printf("FAIL fork\n"); return 1; }
        if (c == 0) child(seed * 1000 + r);
        int st, waited = 0;
        for (;;) {
            pid_t w = waitpid(c, &st, WNOHANG);
            if (w == c) break;
            if (w < 0) { printf("FAIL waitpid errno %d\n", errno); return 1; }
            if (++waited > 50) { kill(c, SIGKILL); }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    /* The sandbox still works. */
    int p[2];
    if (pipe(p) != 0) { printf("FAIL pipe\n"); return 1; }
    pid_t c = fork();
    if (c == 0) { write(p[1], "alive", 5); _exit(0); }
    char b[8] = {0};
    if (read(p[0], b, 5) != 5 || strcmp(b, "alive") != 0) { printf("FAIL pipe read\n"); return 1; }
    waitpid(c, NULL, 0);
    printf("OK\n");
    return 0;
}
