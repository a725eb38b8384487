/* A fork/exec/wait tree: children exit with distinct codes, one execs
 * /bin/true-like busybox, one is killed; the parent checks every status,
 * getppid, orphan reparenting to init is not checked here (init differs
 * natively). Prints OK. */
#include <errno.h>
#include <spawn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

int main(void) {
    pid_t me = getpid();
    pid_t kids[4];
    for (int i = 0; i < 3; i++) {
        kids[i] = fork();
        CHECK(kids[i] >= 0);
        if (kids[i] == 0) {
            CHECK(getppid() == me);
            /* grandchild */
            pid_t g = fork();
            if (g == 0) _exit(40 + i);
            int st;
            if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 40 + i) _exit(99);
            _exit(10 + i);
        }
    }
    kids[3] = fork();
    if (kids[3] == 0) {
        execl("/usr/bin/busybox", "busybox", "sh", "-c", "exit 23", (char *)NULL);
        _exit(98);
    }
    for (int i = 0; i < 4; i++) {
        int st;
        pid_t p = waitpid(kids[i], &st, 0);
        CHECK(p == kids[i]);
        CHECK(WIFEXITED(st));
        CHECK(WEXITSTATUS(st) == (i < 3 ? 10 + i : 23));
    }
    /* A child killed by a signal. */
    pid_t k = fork();
    if (k == 0) { pause(); _exit(0); }
    CHECK(kill(k, SIGTERM) == 0);
    int st;
    CHECK(waitpid(k, &st, 0) == k && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    /* WNOHANG with a running child, then ECHILD when none are left. */
    pid_t s = fork();
    if (s == 0) { usleep(200000); _exit(5); }
    CHECK(waitpid(s, &st, WNOHANG) == 0);
    CHECK(waitpid(-1, &st, 0) == s && WEXITSTATUS(st) == 5);
    errno = 0;
    CHECK(waitpid(-1, &st, 0) == -1 && errno == ECHILD);
    /* vfork: the parent resumes after the child execs. */
    pid_t v = vfork();
    if (v == 0) {
        execl("/usr/bin/busybox", "busybox", "true", (char *)NULL);
        _exit(97);
    }
    CHECK(waitpid(v, &st, 0) == v && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* vfork shares memory with the parent until exec/_exit. */
    static volatile int shared;
    shared = 0;
    pid_t vv = vfork();
    if (vv == 0) {
        shared = 42;
        _exit(3);
    }
    CHECK(shared == 42);
    CHECK(waitpid(vv, &st, 0) == vv && WIFEXITED(st) && WEXITSTATUS(st) == 3);
    /* posix_spawn reports an exec failure to the caller (glibc relies on
     * the vfork child writing the error into shared memory). */
    pid_t sp;
    char *sargv[] = {"nope", NULL};
    CHECK(posix_spawn(&sp, "/nonexistent/program", NULL, NULL, sargv, NULL) == ENOENT);
    char *targv[] = {"busybox", "true", NULL};
    CHECK(posix_spawn(&sp, "/usr/bin/busybox", NULL, NULL, targv, NULL) == 0);
    CHECK(waitpid(sp, &st, 0) == sp && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* SIGCHLD ignored: children are reaped automatically (ECHILD). */
    signal(SIGCHLD, SIG_IGN);
    pid_t z = fork();
    if (z == 0) _exit(0);
    errno = 0;
    CHECK(waitpid(z, &st, 0) == -1 && errno == ECHILD);
    signal(SIGCHLD, SIG_DFL);
    /* Orphans are reparented: a grandchild outlives its parent and its
     * getppid() changes away from the dead parent. */
    int p2[2];
    CHECK(pipe(p2) == 0);
    pid_t mid = fork();
    if (mid == 0) {
        pid_t midpid = getpid();
        pid_t g = fork();
        if (g == 0) {
            usleep(200000);
            char ok = getppid() != midpid ? 'y' : 'n';
            write(p2[1], &ok, 1);
            _exit(0);
        }
        _exit(0);
    }
    CHECK(waitpid(mid, &st, 0) == mid);
    char ok = 0;
    CHECK(read(p2[0], &ok, 1) == 1 && ok == 'y');
    printf("OK\n");
    return 0;
}
