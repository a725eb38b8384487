/* Assorted fd and process calls: close_range (close and CLOEXEC),
 * copy_file_range, no network (AF_INET: EAFNOSUPPORT), ENOTSOCK / EBADF,
 * personality query, getrlimit/setrlimit, umask, uname. Prints OK. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

int main(void) {
    int a = dup(1), b = dup(1), c = dup(1);
    CHECK(a > 2 && b > a && c > b);
    CHECK(syscall(SYS_close_range, b, c, 4 /* CLOSE_RANGE_CLOEXEC */) == 0);
    CHECK(fcntl(b, F_GETFD) == FD_CLOEXEC && fcntl(c, F_GETFD) == FD_CLOEXEC);
    CHECK(fcntl(a, F_GETFD) == 0);
    CHECK(syscall(SYS_close_range, a, ~0U, 0) == 0);
    errno = 0;
    CHECK(fcntl(a, F_GETFD) == -1 && errno == EBADF);
    CHECK(fcntl(c, F_GETFD) == -1 && errno == EBADF);

    char tmpl[] = "/tmp/sbx-misc-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    char src[64], dst[64];
    snprintf(src, sizeof src, "%s/src", dir);
    snprintf(dst, sizeof dst, "%s/dst", dir);
    int in = open(src, O_CREAT | O_RDWR, 0644);
    CHECK(in >= 0);
    CHECK(write(in, "0123456789", 10) == 10);
    int out = open(dst, O_CREAT | O_WRONLY, 0644);
    CHECK(out >= 0);
    loff_t off = 2;
    CHECK(copy_file_range(in, &off, out, NULL, 5, 0) == 5 && off == 7);
    char buf[16] = {0};
    int rd = open(dst, O_RDONLY);
    CHECK(read(rd, buf, sizeof buf) == 5 && memcmp(buf, "23456", 5) == 0);
    unlink(src);
    unlink(dst);
    rmdir(dir);

    errno = 0;
    CHECK(socket(AF_INET, SOCK_STREAM, 0) == -1 && errno == EAFNOSUPPORT);
    struct sockaddr sa;
    socklen_t len = sizeof sa;
    errno = 0;
    CHECK(getpeername(rd, &sa, &len) == -1 && errno == ENOTSOCK);
    errno = 0;
    CHECK(getpeername(999, &sa, &len) == -1 && errno == EBADF);

    CHECK(personality(0xffffffff) == 0);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur <= rl.rlim_max);
    rl.rlim_cur = 64;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 64);
    CHECK(umask(027) == 022 && umask(022) == 027);
    struct utsname u;
    CHECK(uname(&u) == 0 && strcmp(u.sysname, "Linux") == 0 && strcmp(u.machine, "x86_64") == 0);
    printf("OK\n");
    return 0;
}
