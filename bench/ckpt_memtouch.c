/* Benchmark guest for checkpoint/restore: fills MIB (argv[1]) MiB with
 * xorshift data (incompressible, no zero pages), prints "READY", then
 * every 10 ms "TICK n <CLOCK_REALTIME ns>" forever. The first TICK after a
 * restore, minus the host time the restore was started, is the restore's
 * time to first output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    size_t n = (argc > 1 ? strtoul(argv[1], 0, 10) : 16) << 20;
    uint64_t *buf = malloc(n), x = 0x9E3779B97F4A7C15ull;
    if (!buf) return 2;
    for (size_t i = 0; i < n / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = x;
    }
    setvbuf(stdout, 0, _IOLBF, 0);
    printf("READY %zu\n", n >> 20);
    for (long tick = 0;; tick++) {
        struct timespec now, nap = {0, 10 * 1000 * 1000};
        clock_gettime(CLOCK_REALTIME, &now);
        printf("TICK %ld %lld\n", tick, now.tv_sec * 1000000000LL + now.tv_nsec);
        nanosleep(&nap, 0);
    }
}
