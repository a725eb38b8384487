/* Lazy-restore guest: fills MIB (argv[1]) MiB with a known pattern, prints
 * "ready", then obeys one command per stdin line, so a test can act at
 * chosen moments before and after a checkpoint:
 *   sum    - checksum of the whole buffer (every word): "sum S"
 *   pipe   - the buffer goes through a pipe to a child, which sums what it
 *            reads (guest memory read by the kernel, not by the guest's
 *            own loads): "pipe S"
 *   fork   - a child writes over its copy and sums it, the parent sums its
 *            own after the child exited (copy-on-write): "fork C P"
 *   write  - overwrites every 3rd page's first word: "wrote"
 *   ping   - touches nothing of the buffer: "pong"
 *   exit   - exits 0.
 * The output depends only on the commands, so a native run gives the
 * reference. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static uint64_t *buf;
static size_t words;

static uint64_t sum_of(const uint64_t *p, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
    return s;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 32;
    words = (mib << 20) / 8;
    buf = malloc(words * 8);
    if (!buf) return 2;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < words; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        buf[i] = x;
    }
    setvbuf(stdout, 0, _IOLBF, 0);
    printf("ready %zu\n", mib);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strcmp(line, "sum\n")) {
            printf("sum %016llx\n", (unsigned long long)sum_of(buf, words, 7));
        } else if (!strcmp(line, "pipe\n")) {
            int fds[2];
            if (pipe(fds)) return 3;
            pid_t c = fork();
            if (c == 0) {
                close(fds[1]);
                uint64_t s = 7, w[512];
                size_t have = 0;
                ssize_t n;
                while ((n = read(fds[0], (char *)w + have, sizeof w - have)) > 0) {
                    have += n;
                    if (have == sizeof w) { s = sum_of(w, 512, s); have = 0; }
                }
                s = sum_of(w, have / 8, s);
                printf("pipe %016llx\n", (unsigned long long)s);
                _exit(0);
            }
            close(fds[0]);
            const char *p = (const char *)buf;
            size_t left = words * 8;
            while (left) {
                ssize_t n = write(fds[1], p, left);
                if (n <= 0) return 4;
                p += n; left -= n;
            }
            close(fds[1]);
            waitpid(c, 0, 0);
        } else if (!strcmp(line, "fork\n")) {
            int fds[2];
            if (pipe(fds)) return 3;
            pid_t c = fork();
            if (c == 0) {
                for (size_t i = 0; i < words; i += 1024) buf[i] ^= 0x5555;
                uint64_t s = sum_of(buf, words, 7);
                if (write(fds[1], &s, 8) != 8) _exit(1);
                _exit(0);
            }
            int st;
            waitpid(c, &st, 0);
            uint64_t cs = 0;
            if (read(fds[0], &cs, 8) != 8) return 5;
            close(fds[0]); close(fds[1]);
            printf("fork %016llx %016llx\n", (unsigned long long)cs,
                   (unsigned long long)sum_of(buf, words, 7));
        } else if (!strcmp(line, "write\n")) {
            for (size_t i = 0; i < words; i += 3 * 512) buf[i] = i;
            printf("wrote\n");
        } else if (!strcmp(line, "ping\n")) {
            printf("pong\n");
        } else if (!strcmp(line, "exit\n")) {
            return 0;
        } else {
            printf("unknown %s", line);
        }
    }
    return 0;
}
