/* Syscalls the sentry does not implement return ENOSYS; the program goes on. */
#include <errno.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    errno = 0;
    long r = syscall(444);          /* landlock_create_ruleset */
    int e1 = errno;
    errno = 0;
    long r2 = syscall(100000);      /* beyond the table */
    int e2 = errno;
    printf("%ld %d %ld %d\n", r, e1 == ENOSYS, r2, e2 == ENOSYS);
    printf(r == -1 && e1 == ENOSYS && r2 == -1 && e2 == ENOSYS ? "OK\n" : "FAIL\n");
    return 0;
}
