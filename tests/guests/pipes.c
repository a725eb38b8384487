/* Pipes between processes: a writer child streams 1 MiB through a pipe
 * (bigger than the pipe buffer) to the parent, which checks every byte;
 * EOF after the writer exits; EPIPE/SIGPIPE when the reader is gone. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)
#define TOTAL (1 << 20)

int main(void) {
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t w = fork();
    if (w == 0) {
        close(p[0]);
        static unsigned char buf[8192];
        for (int off = 0; off < TOTAL; off += sizeof buf) {
            for (unsigned i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((off + i) * 7);
            size_t done = 0;
            while (done < sizeof buf) {
                ssize_t n = write(p[1], buf + done, sizeof buf - done);
                if (n <= 0) _exit(2);
                done += n;
            }
        }
        _exit(0);
    }
    close(p[1]);
    long got = 0;
    unsigned char buf[3000];
    for (;;) {
        ssize_t n = read(p[0], buf, sizeof buf);
        CHECK(n >= 0);
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++)
            CHECK(buf[i] == (unsigned char)((got + i) * 7));
        got += n;
    }
    CHECK(got == TOTAL);
    int st;
    CHECK(waitpid(w, &st, 0) == w && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(p[0]);

    /* Writing to a pipe without readers: EPIPE with SIGPIPE ignored... */
    CHECK(pipe(p) == 0);
    close(p[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
    /* ...and death by SIGPIPE by default. */
    signal(SIGPIPE, SIG_DFL);
    pid_t c = fork();
    if (c == 0) { write(p[1], "x", 1); _exit(0); }
    CHECK(waitpid(c, &st, 0) == c && WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE);
    printf("OK\n");
    return 0;
}
