/* Checkpoint guest for sockets, epoll and locks: blocks in one call that
 * a checkpoint interrupts and a restore resumes. Mode (argv[1]):
 *   recv    recvmsg on a socketpair; the child first reads a message the
 *           parent queued before blocking (in flight across the
 *           checkpoint), then after 3 s answers with a pipe fd attached.
 *   accept  accept on an abstract-name listener; a child connects after 3 s.
 *   epoll   epoll_wait(-1) on an eventfd a child writes after 3 s.
 *   flock   flock(LOCK_EX) on a file a child holds locked for 3 s.
 * Prints "blocked" just before blocking and "done ..." after. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void child_sleep(void) {
    struct timespec ts = {3, 0};
    while (nanosleep(&ts, &ts) != 0) {}
}

static int do_recv(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 2;
    if (write(sv[0], "ping", 4) != 4) return 3;
    if (fork() == 0) {
        close(sv[0]);
        child_sleep();
        char b[8] = {0};
        if (read(sv[1], b, 4) != 4 || strcmp(b, "ping")) _exit(2);
        int p[2];
        if (pipe(p)) _exit(3);
        if (write(p[1], "piped", 5) != 5) _exit(4);
        close(p[1]);
        char ctl[CMSG_SPACE(sizeof(int))] = {0};
        struct iovec iov = {"pong", 4};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &p[0], sizeof(int));
        if (sendmsg(sv[1], &m, 0) != 4) _exit(5);
        _exit(0);
    }
    close(sv[1]);
    char buf[8] = {0}, ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof buf - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    printf("blocked\n");
    ssize_t n = recvmsg(sv[0], &m, 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    char piped[8] = {0};
    if (c && c->cmsg_type == SCM_RIGHTS) {
        int fd;
        memcpy(&fd, CMSG_DATA(c), sizeof fd);
        if (read(fd, piped, sizeof piped - 1) < 0) return 4;
    }
    int st = 0;
    wait(&st);
    printf("done n=%zd data=%s piped=%s child=%d\n", n, buf, piped, WEXITSTATUS(st));
    return 0;
}

static int do_accept(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "sbx-ckpt-%d", getpid());
    socklen_t len = sizeof(sa_family_t) + 1 + strlen(a.sun_path + 1);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    if (l < 0 || bind(l, (struct sockaddr *)&a, len) || listen(l, 1)) return 2;
    if (fork() == 0) {
        child_sleep();
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, len)) _exit(2);
        if (write(s, "hi", 2) != 2) _exit(3);
        _exit(0);
    }
    printf("blocked\n");
    int s = accept(l, NULL, NULL);
    char b[4] = {0};
    ssize_t n = s >= 0 ? read(s, b, 3) : -1;
    int st = 0;
    wait(&st);
    printf("done accepted=%d n=%zd data=%s child=%d\n", s >= 0, n, b, WEXITSTATUS(st));
    return 0;
}

static int do_epoll(void) {
    int e = eventfd(0, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 7};
    if (e < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev)) return 2;
    if (fork() == 0) {
        child_sleep();
        uint64_t v = 3;
        if (write(e, &v, 8) != 8) _exit(2);
        _exit(0);
    }
    printf("blocked\n");
    struct epoll_event out[2];
    int n = epoll_wait(ep, out, 2, -1);
    if (n < 0) printf("epoll_wait errno %d\n", errno);
    uint64_t v = 0;
    if (read(e, &v, 8) != 8) return 3;
    wait(0);
    printf("done n=%d data=%llu count=%llu\n", n, (unsigned long long)out[0].data.u64, (unsigned long long)v);
    return 0;
}

static int do_flock(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/sbx-ckpt-lock-%d", getpid());
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    int p[2];
    if (fd < 0 || pipe(p)) return 2;
    if (fork() == 0) {
        int f2 = open(path, O_RDWR);
        if (flock(f2, LOCK_EX)) _exit(2);
        if (write(p[1], "l", 1) != 1) _exit(3);
        child_sleep();
        _exit(0);
    }
    char b;
    if (read(p[0], &b, 1) != 1) return 3;
    int busy = flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK;
    printf("blocked\n");
    int r = flock(fd, LOCK_EX);
    wait(0);
    unlink(path);
    printf("done busy=%d r=%d\n", busy, r);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "recv";
    setvbuf(stdout, 0, _IONBF, 0);
    if (!strcmp(mode, "recv")) return do_recv();
    if (!strcmp(mode, "accept")) return do_accept();
    if (!strcmp(mode, "epoll")) return do_epoll();
    if (!strcmp(mode, "flock")) return do_flock();
    return 9;
}
