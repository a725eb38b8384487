/* Bad pointers passed to syscalls get EFAULT and the program goes on. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
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

    /* A read into a bad or partly writable buffer loses no pipe data:
       what it did not return stays in the pipe. (Linux pipe_read returns
       EFAULT when a pipe buffer cannot be copied whole and consumes none
       of it; a partial count with the rest left unread is also accepted.) */
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK(write(p[1], "abcdefgh", 8) == 8);
    void *bad = (void *)8;
    errno = 0;
    CHECK(read(p[0], bad, 8) == -1 && errno == EFAULT);
    char *pg = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(pg != MAP_FAILED);
    CHECK(mprotect(pg + 4096, 4096, PROT_READ) == 0);
    char got[16] = {0};
    size_t have = 0;
    errno = 0;
    ssize_t r = read(p[0], pg + 4096 - 3, 8);
    CHECK(r == 3 || (r == -1 && errno == EFAULT));
    if (r > 0) {
        memcpy(got, pg + 4096 - 3, r);
        have += r;
    }
    struct iovec iov[2] = {{pg, 2}, {pg + 4096 - 1, 4}};
    errno = 0;
    r = readv(p[0], iov, 2);
    CHECK(r == 3 || (r == -1 && errno == EFAULT));
    if (r == 3) {
        got[have++] = pg[0];
        got[have++] = pg[1];
        got[have++] = pg[4095];
    }
    r = read(p[0], got + have, sizeof got - have);
    CHECK(r == (ssize_t)(8 - have));
    CHECK(memcmp(got, "abcdefgh", 8) == 0);
    CHECK(munmap(pg, 8192) == 0);
    printf("OK\n");
    return 0;
}
