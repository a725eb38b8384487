/* socketpair across fork: stream ping-pong, a 1 MiB stream transfer (more
 * than the socket buffer, so the sender blocks), seqpacket/dgram message
 * boundaries and MSG_TRUNC, EOF, EPIPE with MSG_NOSIGNAL and SIGPIPE
 * without it, SO_TYPE/SO_PEERCRED, MSG_DONTWAIT/SOCK_NONBLOCK EAGAIN,
 * non-AF_UNIX families refused. Prints OK when every check holds. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)
#define TOTAL (1 << 20)

static volatile sig_atomic_t got_pipe;
static void on_pipe(int s) { (void)s; got_pipe = 1; }

static void ping_pong(void) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        close(sv[0]);
        for (int i = 0; i < 500; i++) {
            int v;
            if (read(sv[1], &v, sizeof v) != sizeof v) _exit(2);
            v += 1;
            if (write(sv[1], &v, sizeof v) != sizeof v) _exit(3);
        }
        /* A big stream: the parent reads slowly at first. */
        static unsigned char buf[65536];
        for (int off = 0; off < TOTAL; off += sizeof buf) {
            for (unsigned i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((off + i) * 13);
            if (send(sv[1], buf, sizeof buf, 0) != (ssize_t)sizeof buf) _exit(4);
        }
        _exit(0);
    }
    close(sv[1]);
    int v = 0;
    for (int i = 0; i < 500; i++) {
        CHECK(write(sv[0], &v, sizeof v) == sizeof v);
        int w;
        CHECK(read(sv[0], &w, sizeof w) == sizeof w);
        CHECK(w == v + 1);
        v = w;
    }
    usleep(100000);
    long got = 0;
    unsigned char buf[7000];
    for (;;) {
        ssize_t n = recv(sv[0], buf, sizeof buf, 0);
        CHECK(n >= 0);
        if (n == 0) break;
        for (ssize_t i = 0; i < n; i++) CHECK(buf[i] == (unsigned char)((got + i) * 13));
        got += n;
    }
    CHECK(got == TOTAL);
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The peer is gone: EPIPE, with and without SIGPIPE. */
    CHECK(send(sv[0], "x", 1, MSG_NOSIGNAL) == -1 && errno == EPIPE);
    CHECK(got_pipe == 0);
    CHECK(send(sv[0], "x", 1, 0) == -1 && errno == EPIPE);
    CHECK(got_pipe == 1);
    close(sv[0]);
}

static void messages(int type) {
    int sv[2];
    CHECK(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) == 0);
    int t = 0;
    socklen_t l = sizeof t;
    CHECK(getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &t, &l) == 0 && t == type && l == sizeof t);
    CHECK(send(sv[0], "hello", 5, 0) == 5);
    CHECK(send(sv[0], "world!", 6, 0) == 6);
    CHECK(send(sv[0], "", 0, 0) == 0);
    char buf[16];
    CHECK(recv(sv[1], buf, 3, MSG_PEEK) == 3 && memcmp(buf, "hel", 3) == 0);
    /* Truncated: the rest of the message is discarded. */
    CHECK(recv(sv[1], buf, 3, MSG_TRUNC) == 5 && memcmp(buf, "hel", 3) == 0);
    CHECK(recv(sv[1], buf, sizeof buf, 0) == 6 && memcmp(buf, "world!", 6) == 0);
    CHECK(recv(sv[1], buf, sizeof buf, 0) == 0);
    CHECK(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT) == -1 && errno == EAGAIN);
    struct ucred cr;
    l = sizeof cr;
    CHECK(getsockopt(sv[1], SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0);
    CHECK(l == sizeof cr && cr.pid == getpid() && cr.uid == geteuid() && cr.gid == getegid());
    close(sv[0]);
    close(sv[1]);
}

int main(void) {
    signal(SIGPIPE, on_pipe);
    setvbuf(stdout, NULL, _IONBF, 0);
    ping_pong();
    messages(SOCK_SEQPACKET);
    messages(SOCK_DGRAM);

    /* Non-blocking pair: EAGAIN on an empty socket; EOF is 0. */
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    char b[4];
    CHECK(read(sv[0], b, sizeof b) == -1 && errno == EAGAIN);
    CHECK(shutdown(sv[1], SHUT_WR) == 0);
    CHECK(read(sv[0], b, sizeof b) == 0);
    CHECK(shutdown(sv[1], 7) == -1 && errno == EINVAL);
    /* An address on a connected stream socket: EISCONN. */
    struct sockaddr_un to = {.sun_family = AF_UNIX, .sun_path = "/x"};
    CHECK(sendto(sv[0], "x", 1, 0, (struct sockaddr *)&to, sizeof to) == -1 && errno == EISCONN);
    close(sv[0]);
    close(sv[1]);

    /* Other families and bad types. */
    CHECK(socket(AF_INET6 + 100, SOCK_STREAM, 0) == -1 && errno == EAFNOSUPPORT);
    CHECK(socket(AF_UNIX, 77, 0) == -1 && (errno == ESOCKTNOSUPPORT || errno == EINVAL));
    CHECK(socket(AF_UNIX, SOCK_STREAM, 5) == -1 && errno == EPROTONOSUPPORT);
    int *volatile badp = (int *)8;
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, badp) == -1 && errno == EFAULT);
    /* Socket calls on a non-socket. */
    CHECK(send(1, "x", 1, 0) == -1 && errno == ENOTSOCK);
    CHECK(listen(99, 1) == -1 && errno == EBADF);
    printf("OK\n");
    return 0;
}
