/* A listening Unix socket (a filesystem path and an abstract name) with a
 * client child: blocking accept woken by the connect, getsockname /
 * getpeername, SO_PEERCRED naming the client, accept restarted after a
 * SA_RESTART handler, recv interrupted (EINTR) by a handler without it,
 * accept4 flags, ECONNREFUSED/ENOENT/EADDRINUSE, a connect blocked on a
 * full backlog, datagrams by name and autobind.
 * Prints OK when every check holds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static void on_alrm(int s) { (void)s; }



static void handler(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sa.sa_flags = flags;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
}

static void alarm_in_ms(int ms) {
    struct itimerval it = {{0, 0}, {0, ms * 1000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
}

static socklen_t fill(struct sockaddr_un *a, const char *path, int abstract) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (abstract) {
        strcpy(a->sun_path + 1, path);
        return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(path);
    }
    strcpy(a->sun_path, path);
    return offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
}

static void serve(const char *name, int abstract) {
    struct sockaddr_un a;
    socklen_t alen = fill(&a, name, abstract);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(l >= 0);
    CHECK(bind(l, (struct sockaddr *)&a, alen) == 0);
    int l2 = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(bind(l2, (struct sockaddr *)&a, alen) == -1 && errno == EADDRINUSE);
    close(l2);
    /* Bound but not listening: refused. */
    int early = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(early, (struct sockaddr *)&a, alen) == -1 && errno == ECONNREFUSED);
    close(early);
    CHECK(listen(l, 4) == 0);
    if (!abstract) {
        struct stat st;
        CHECK(stat(name, &st) == 0 && S_ISSOCK(st.st_mode));
    }
    struct sockaddr_un got;
    socklen_t glen = sizeof got;
    CHECK(getsockname(l, (struct sockaddr *)&got, &glen) == 0);
    CHECK(glen == alen && memcmp(&got, &a, alen) == 0);
    /* Nothing pending on a non-blocking accept. */
    CHECK(fcntl(l, F_SETFL, O_NONBLOCK) == 0);
    CHECK(accept(l, NULL, NULL) == -1 && errno == EAGAIN);
    CHECK(fcntl(l, F_SETFL, 0) == 0);

    int go[2];
    CHECK(pipe(go) == 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        usleep(150000);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0) _exit(2);
        if (connect(s, (struct sockaddr *)&a, alen) != 0) _exit(3);
        struct sockaddr_un p;
        socklen_t plen = sizeof p;
        if (getpeername(s, (struct sockaddr *)&p, &plen) != 0 || plen != alen || memcmp(&p, &a, alen) != 0) _exit(4);
        if (write(s, "ping", 4) != 4) _exit(5);
        char b[8];
        if (read(s, b, sizeof b) != 4 || memcmp(b, "pong", 4) != 0) _exit(6);
        /* Leave the server's recv blocked until its alarm fired. */
        char g;
        if (read(go[0], &g, 1) != 1) _exit(8);
        if (write(s, "late", 4) != 4) _exit(7);
        close(s);
        _exit(0);
    }
    /* The alarm fires while accept sleeps; SA_RESTART restarts it. */
    handler(SA_RESTART);
    alarm_in_ms(50);
    struct sockaddr_un peer;
    socklen_t plen = sizeof peer;
    int s = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
    CHECK(s >= 0);
    CHECK(plen == offsetof(struct sockaddr_un, sun_path));  /* unnamed client */
    CHECK(fcntl(s, F_GETFD) == FD_CLOEXEC);
    struct ucred cr;
    socklen_t crl = sizeof cr;
    CHECK(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0 && cr.pid == c);
    char b[8];
    CHECK(read(s, b, sizeof b) == 4 && memcmp(b, "ping", 4) == 0);
    CHECK(write(s, "pong", 4) == 4);
    /* Without SA_RESTART the blocked recv fails with EINTR. */
    handler(0);
    alarm_in_ms(100);
    CHECK(recv(s, b, sizeof b, 0) == -1 && errno == EINTR);
    CHECK(write(go[1], "g", 1) == 1);
    CHECK(recv(s, b, sizeof b, 0) == 4 && memcmp(b, "late", 4) == 0);
    CHECK(recv(s, b, sizeof b, 0) == 0);
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(s);
    close(l);
    close(go[0]);
    close(go[1]);
    /* The listener is gone: its name refuses connections. */
    int late = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(late, (struct sockaddr *)&a, alen) == -1 && errno == ECONNREFUSED);
    close(late);
    if (!abstract) CHECK(unlink(name) == 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char path[64], abs_name[64];
    snprintf(path, sizeof path, "/tmp/sbx-sock-%d", getpid());
    snprintf(abs_name, sizeof abs_name, "sbx-abstract-%d", getpid());
    unlink(path);
    serve(path, 0);
    serve(abs_name, 1);

    /* Backlog 0 admits one pending connection: a non-blocking connect
     * then fails with EAGAIN, a blocking one waits for an accept. */
    {
        char bl[64];
        snprintf(bl, sizeof bl, "sbx-backlog-%d", getpid());
        struct sockaddr_un ba;
        socklen_t blen = fill(&ba, bl, 1);
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(bind(l, (struct sockaddr *)&ba, blen) == 0 && listen(l, 0) == 0);
        int c1 = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(connect(c1, (struct sockaddr *)&ba, blen) == 0);
        int c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(connect(c2, (struct sockaddr *)&ba, blen) == -1 && errno == EAGAIN);
        int mark[2];
        CHECK(pipe(mark) == 0);
        pid_t c = fork();
        CHECK(c >= 0);
        if (c == 0) {
            usleep(150000);
            if (write(mark[1], "a", 1) != 1) _exit(5);
            int s1 = accept(l, NULL, NULL);
            if (s1 < 0) _exit(2);
            int s2 = accept(l, NULL, NULL);
            if (s2 < 0) _exit(3);
            char x;
            if (read(s2, &x, 1) != 1 || x != '3') _exit(4);
            _exit(0);
        }
        int c3 = socket(AF_UNIX, SOCK_STREAM, 0);
        CHECK(connect(c3, (struct sockaddr *)&ba, blen) == 0);
        /* The connect completed only after the child started accepting. */
        char m;
        CHECK(fcntl(mark[0], F_SETFL, O_NONBLOCK) == 0);
        CHECK(read(mark[0], &m, 1) == 1 && m == 'a');
        CHECK(write(c3, "3", 1) == 1);
        int st;
        CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);
        close(c1);
        close(c2);
        close(c3);
        close(l);
    }

    /* No such path. */
    struct sockaddr_un a;
    socklen_t alen = fill(&a, "/nonexistent-dir/sock", 0);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(s, (struct sockaddr *)&a, alen) == -1 && errno == ENOENT);
    close(s);

    /* Datagrams to a named socket; the receiver sees the sender's name;
     * autobind (an address of only the family) gives an abstract name. */
    int r = socket(AF_UNIX, SOCK_DGRAM, 0);
    alen = fill(&a, abs_name, 1);
    CHECK(bind(r, (struct sockaddr *)&a, alen) == 0);
    int w = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un me = {.sun_family = AF_UNIX};
    CHECK(bind(w, (struct sockaddr *)&me, sizeof(sa_family_t)) == 0);
    socklen_t mlen = sizeof me;
    CHECK(getsockname(w, (struct sockaddr *)&me, &mlen) == 0);
    CHECK(mlen == offsetof(struct sockaddr_un, sun_path) + 6 && me.sun_path[0] == 0);
    CHECK(sendto(w, "dgram", 5, 0, (struct sockaddr *)&a, alen) == 5);
    char b[16];
    struct sockaddr_un from;
    socklen_t flen = sizeof from;
    CHECK(recvfrom(r, b, sizeof b, 0, (struct sockaddr *)&from, &flen) == 5);
    CHECK(memcmp(b, "dgram", 5) == 0 && flen == mlen && memcmp(&from, &me, mlen) == 0);
    CHECK(send(w, "x", 1, 0) == -1 && errno == ENOTCONN);
    /* Fill the receiver; a blocking sendto waits until it drains. */
    int sndbuf_full = 0, queued = 0;
    for (int i = 0; i < 100000; i++) {
        static char big[4096];
        if (sendto(w, big, sizeof big, MSG_DONTWAIT, (struct sockaddr *)&a, alen) < 0) {
            CHECK(errno == EAGAIN);
            sndbuf_full = 1;
            break;
        }
        queued++;
    }
    CHECK(sndbuf_full && queued > 0);
    pid_t d = fork();
    CHECK(d >= 0);
    if (d == 0) {
        usleep(100000);
        /* Exactly the queued ones: "after" is the parent's to read. */
        char big[4096];
        for (int i = 0; i < queued; i++)
            if (recv(r, big, sizeof big, 0) != sizeof big) _exit(2);
        _exit(0);
    }
    CHECK(sendto(w, "after", 5, 0, (struct sockaddr *)&a, alen) == 5);
    int st;
    CHECK(waitpid(d, &st, 0) == d && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(recvfrom(r, b, sizeof b, 0, NULL, NULL) == 5 && memcmp(b, "after", 5) == 0);
    close(r);
    close(w);
    printf("OK\n");
    return 0;
}
