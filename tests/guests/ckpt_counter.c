/* Checkpoint guest: fills MIB (argv[1], default 64) MiB with a known
 * pattern, then forever prints "tick N sum S" every 100 ms, where S is a
 * checksum recomputed over the whole buffer each tick. After a restore
 * the counter must continue and the checksum must not change. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 64;
    long ticks = argc > 2 ? strtol(argv[2], 0, 10) : -1;
    size_t n = mib << 20;
    uint64_t *buf = malloc(n);
    if (!buf) return 2;
    /* xorshift pattern: pages differ, nothing is zero. */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n / 8; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = x;
    }
    printf("ready %zu\n", mib);
    fflush(stdout);
    for (long tick = 0; ticks < 0 || tick < ticks; tick++) {
        uint64_t sum = 0;
        for (size_t i = 0; i < n / 8; i += 512) sum += buf[i] * (i + 1);
        printf("tick %ld sum %016llx\n", tick, (unsigned long long)sum);
        fflush(stdout);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, 0);
    }
    return 0;
}
