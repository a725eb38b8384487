/* Bad pointers passed to syscalls get EFAULT and the program goes on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); return 1; } } while (0)

int main(void) {
    errno = 0;
    CHECK(syscall(SYS_write, 1, (void *)1, 10) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_read, 0, (void *)8, 10) == -1 || 1); /* stdin may be closed; must not crash */
    errno = 0;
    CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)16) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_open, (char *)0x10, 0) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_stat, "/", (void *)0xfffffffffffff000ULL) == -1 && errno == EFAULT);
    errno = 0;
    CHECK(syscall(SYS_uname, (void *)0x7fffffffe000ULL + 0x100000000ULL) == -1 && errno == EFAULT);
    struct timespec ts;
    CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0);
    printf("OK\n");
    return 0;
}
