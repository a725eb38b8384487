/* SCM_RIGHTS: a child sends its pipe's read end (and an eventfd) over a
 * socketpair; the parent receives them as new fds and reads what the
 * child writes into the pipe. Also: data scattered over several iovecs,
 * two control messages in one sendmsg, MSG_CTRUNC when the control buffer
 * is too small, MSG_CMSG_CLOEXEC, EBADF for a bad fd in SCM_RIGHTS,
 * EFAULT for bad msghdr pointers. Prints OK when every check holds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

static int send_fds(int s, const char *data, const int *fds, int n) {
    char ctl[CMSG_SPACE(sizeof(int) * 8)];
    memset(ctl, 0, sizeof ctl);
    struct iovec iov = {(void *)data, strlen(data)};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return sendmsg(s, &m, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        close(sv[0]);
        int p[2];
        if (pipe(p) != 0) _exit(2);
        int e = eventfd(41, 0);
        if (e < 0) _exit(3);
        int fds[2] = {p[0], e};
        if (send_fds(sv[1], "fds", fds, 2) != 3) _exit(4);
        close(p[0]);
        close(e);
        /* The parent now holds the only read end. */
        if (write(p[1], "through the pipe", 16) != 16) _exit(5);
        close(p[1]);
        /* Two SCM_RIGHTS messages in one sendmsg: fds 0 and 1. */
        char ctl[2 * CMSG_SPACE(sizeof(int))];
        memset(ctl, 0, sizeof ctl);
        struct iovec iov = {"2", 1};
        struct msghdr m = {0};
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = ctl;
        m.msg_controllen = sizeof ctl;
        struct cmsghdr *h = CMSG_FIRSTHDR(&m);
        for (int i = 0; i < 2; i++) {
            h->cmsg_level = SOL_SOCKET;
            h->cmsg_type = SCM_RIGHTS;
            h->cmsg_len = CMSG_LEN(sizeof(int));
            memcpy(CMSG_DATA(h), &i, sizeof i);
            h = CMSG_NXTHDR(&m, h);
        }
        if (sendmsg(sv[1], &m, 0) != 1) _exit(6);
        /* Four fds to a receiver with room for one. */
        int four[4] = {0, 1, 2, sv[1]};
        if (send_fds(sv[1], "4", four, 4) != 1) _exit(7);
        int bad[1] = {999};
        if (send_fds(sv[1], "x", bad, 1) != -1 || errno != EBADF) _exit(8);
        /* Gathered from three iovecs. */
        struct iovec v[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
        struct msghdr g = {0};
        g.msg_iov = v;
        g.msg_iovlen = 3;
        if (sendmsg(sv[1], &g, 0) != 6) _exit(9);
        _exit(0);
    }
    close(sv[1]);
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0);

    char buf[32];
    char ctl[CMSG_SPACE(sizeof(int) * 8)];
    struct iovec iov = {buf, 3};
    struct msghdr m = {0};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    CHECK(recvmsg(sv[0], &m, MSG_CMSG_CLOEXEC) == 3 && memcmp(buf, "fds", 3) == 0);
    CHECK(m.msg_flags == MSG_CMSG_CLOEXEC);  /* Linux echoes it */
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    CHECK(h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS);
    CHECK(h->cmsg_len == CMSG_LEN(2 * sizeof(int)));
    CHECK(m.msg_controllen == CMSG_SPACE(2 * sizeof(int)) || m.msg_controllen == CMSG_LEN(2 * sizeof(int)));
    int got[2];
    memcpy(got, CMSG_DATA(h), sizeof got);
    CHECK(CMSG_NXTHDR(&m, h) == NULL);
    CHECK(fcntl(got[0], F_GETFD) == FD_CLOEXEC);
    char pipebuf[32];
    CHECK(read(got[0], pipebuf, sizeof pipebuf) == 16 && memcmp(pipebuf, "through the pipe", 16) == 0);
    CHECK(read(got[0], pipebuf, sizeof pipebuf) == 0);
    uint64_t v;
    CHECK(read(got[1], &v, 8) == 8 && v == 41);
    close(got[0]);
    close(got[1]);

    /* Two control messages arrive as one SCM_RIGHTS with both fds. */
    iov.iov_len = sizeof buf;
    m.msg_control = ctl;
    m.msg_controllen = sizeof ctl;
    CHECK(recvmsg(sv[0], &m, 0) == 1 && buf[0] == '2');
    h = CMSG_FIRSTHDR(&m);
    CHECK(h && h->cmsg_type == SCM_RIGHTS && h->cmsg_len == CMSG_LEN(2 * sizeof(int)));
    memcpy(got, CMSG_DATA(h), sizeof got);
    CHECK(fcntl(got[0], F_GETFD) == 0);
    close(got[0]);
    close(got[1]);

    /* Room for two fds (CMSG_SPACE(4) is 24 bytes) of four: MSG_CTRUNC. */
    char small[CMSG_SPACE(sizeof(int))];
    m.msg_control = small;
    m.msg_controllen = sizeof small;
    CHECK(recvmsg(sv[0], &m, 0) == 1 && buf[0] == '4');
    CHECK(m.msg_flags & MSG_CTRUNC);
    h = CMSG_FIRSTHDR(&m);
    CHECK(h && h->cmsg_len == CMSG_LEN(2 * sizeof(int)));
    memcpy(got, CMSG_DATA(h), sizeof got);
    CHECK(fcntl(got[0], F_GETFD) >= 0 && fcntl(got[1], F_GETFD) >= 0);
    close(got[0]);
    close(got[1]);

    /* Scattered into three iovecs. */
    char x[2], y[1], z[8];
    struct iovec sc[3] = {{x, 2}, {y, 1}, {z, 8}};
    struct msghdr r = {0};
    r.msg_iov = sc;
    r.msg_iovlen = 3;
    CHECK(recvmsg(sv[0], &r, 0) == 6);
    CHECK(memcmp(x, "ab", 2) == 0 && y[0] == 'c' && memcmp(z, "def", 3) == 0);
    CHECK(r.msg_controllen == 0 && r.msg_flags == 0);
    CHECK(recv(sv[0], buf, sizeof buf, 0) == 0);

    /* Bad pointers. */
    struct msghdr *volatile badm = (struct msghdr *)8;
    CHECK(recvmsg(sv[0], badm, 0) == -1 && errno == EFAULT);
    struct iovec bi = {(void *)8, 4};
    struct msghdr bm = {0};
    bm.msg_iov = &bi;
    bm.msg_iovlen = 1;
    int sp[2];
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0);
    CHECK(sendmsg(sp[0], &bm, 0) == -1 && errno == EFAULT);
    printf("OK\n");
    return 0;
}
