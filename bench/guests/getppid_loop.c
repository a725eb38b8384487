/* getppid_loop N: issues N raw getppid system calls and reports the mean
 * cost of one, timed inside the process with CLOCK_MONOTONIC. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long long mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    long sum = 0;
    long long start = mono_ns();
    for (long i = 0; i < n; i++)
        sum += syscall(SYS_getppid);
    long long elapsed = mono_ns() - start;
    printf("calls=%ld ns_per_call=%.1f checksum=%ld\n", n, (double)elapsed / n, sum);
    return 0;
}
