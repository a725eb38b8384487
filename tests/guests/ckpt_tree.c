/* Checkpoint guest: a process tree (parent, 3 children, a grandchild)
 * connected by pipes, an overlay file, an open host file's offset and a
 * blocked pending signal. Every second each process reports through the
 * pipes; the parent prints one line per round:
 *   round R pids P C1 C2 C3 G off O file F pending S
 * argv[1]: a host file to read from (its offset advances by 1 per round).
 * argv[2]: a writable path in the overlay (e.g. /tmp/ckpt-tree-XXXX). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(int ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {}
}

/* A child loop: on every byte from `in`, writes its pid (and, for a child
 * with a grandchild, the grandchild's report) to `out`. */
static void serve(int in, int out, int gin, int gout) {
    char c;
    while (read(in, &c, 1) == 1) {
        int v[2] = {getpid(), 0};
        if (gin >= 0) {
            write(gout, &c, 1);
            int g[2];
            if (read(gin, g, sizeof g) != sizeof g) _exit(4);
            v[1] = g[0];
        }
        write(out, v, sizeof v);
    }
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    setvbuf(stdout, 0, _IONBF, 0);
    int hf = open(argv[1], O_RDONLY);
    if (hf < 0) return 5;
    int of = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (of < 0) return 6;
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, 0);
    raise(SIGUSR2); /* stays pending: blocked */
    int to[3][2], from[3][2];
    for (int i = 0; i < 3; i++) {
        if (pipe(to[i]) || pipe(from[i])) return 7;
        if (fork() == 0) {
            int gto[2] = {-1, -1}, gfrom[2] = {-1, -1};
            if (i == 0) {
                if (pipe(gto) || pipe(gfrom)) _exit(8);
                if (fork() == 0) serve(gto[0], gfrom[1], -1, -1);
            }
            serve(to[i][0], from[i][1], gfrom[0], gto[1]);
        }
    }
    for (int round = 0;; round++) {
        int pids[4] = {0};
        for (int i = 0; i < 3; i++) {
            int v[2];
            write(to[i][1], "x", 1);
            if (read(from[i][0], v, sizeof v) != sizeof v) return 9;
            pids[i] = v[0];
            if (i == 0) pids[3] = v[1];
        }
        char b;
        read(hf, &b, 1);
        off_t off = lseek(hf, 0, SEEK_CUR);
        char line[64];
        int n = snprintf(line, sizeof line, "r%d;", round);
        write(of, line, n);
        char back[4096] = {0};
        pread(of, back, sizeof back - 1, 0);
        sigset_t p;
        sigpending(&p);
        printf("round %d pids %d %d %d %d %d off %ld filelen %zu pending %d\n", round, getpid(),
               pids[0], pids[1], pids[2], pids[3], (long)off, strlen(back),
               sigismember(&p, SIGUSR2));
        nap(200);
    }
}
