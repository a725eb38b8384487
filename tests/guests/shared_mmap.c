/* MAP_SHARED mappings of a regular file in /tmp (run natively and under
 * sbx, outputs compared byte for byte).
 *
 * No argument: one line per property — stores through a mapping are seen
 * by read(2), write(2) is seen through the mapping, msync succeeds, two
 * mmaps of the file alias, a forked child and its parent exchange data
 * through the mapping, a read-only mapping sees later writes and cannot
 * gain PROT_WRITE, a file grown by ftruncate maps its new page, access
 * beyond the end of file is SIGBUS, a /dev/shm file is shared the same
 * way, and after munmap and reopen the data is in the file.
 *
 * "ckpt": a parent and a forked child play ping-pong through one shared
 * page forever, the parent printing "round N ok" (or "BAD") every 100 ms
 * after checking the page against pread(2): a checkpoint test restores it
 * and expects the rounds to continue. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096

static void die(const char *what) {
    printf("FAIL %s errno %d\n", what, errno);
    exit(1);
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, 0);
}

/* Waits (at most ~10 s) until the string at p equals want. */
static int wait_for(volatile char *p, const char *want) {
    for (int i = 0; i < 10000; i++) {
        if (strcmp((const char *)p, want) == 0) return 1;
        nap_ms(1);
    }
    return 0;
}

static void show(const char *label, const char *p, size_t n) {
    printf("%s: ", label);
    for (size_t i = 0; i < n; i++) putchar(p[i] ? p[i] : '0');
    putchar('\n');
}

static int ckpt(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/shared_mmap_ckpt_%d", getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, PG) != 0) die("create");
    volatile uint64_t *m = mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) die("mmap");
    pid_t c = fork();
    if (c < 0) die("fork");
    if (c == 0) {
        /* Child: answers every new round number n with 2n. */
        uint64_t seen = 0;
        for (;;) {
            uint64_t n = m[0];
            if (n != seen) {
                m[1] = 2 * n;
                seen = n;
            }
            nap_ms(1);
        }
    }
    printf("ready\n");
    fflush(stdout);
    for (uint64_t n = 1;; n++) {
        m[0] = n;
        int answered = 0;
        for (int i = 0; i < 10000 && !answered; i++) {
            answered = m[1] == 2 * n;
            if (!answered) nap_ms(1);
        }
        uint64_t disk[2];
        int ok = answered && pread(fd, disk, sizeof disk, 0) == sizeof disk &&
                 disk[0] == n && disk[1] == 2 * n;
        printf("round %llu %s\n", (unsigned long long)n, ok ? "ok" : "BAD");
        fflush(stdout);
        nap_ms(100);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "ckpt") == 0) return ckpt();
    char path[64], buf[64];
    snprintf(path, sizeof path, "/tmp/shared_mmap_%d", getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) die("open");
    if (ftruncate(fd, 2 * PG) != 0) die("ftruncate");
    char *m = mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) die("mmap");

    /* Stores through the mapping are seen by read(2). */
    memcpy(m + 100, "through the mapping", 19);
    memset(buf, 0, sizeof buf);
    printf("pread after store: %zd ", pread(fd, buf, 19, 100));
    show("", buf, 19);

    /* write(2) is seen through the mapping. */
    if (pwrite(fd, "through write", 13, PG + 7) != 13) die("pwrite");
    show("mapping after pwrite", m + PG + 7, 13);
    if (lseek(fd, 50, SEEK_SET) != 50 || write(fd, "plain", 5) != 5) die("write");
    show("mapping after write", m + 48, 9);

    /* msync succeeds. */
    printf("msync: %d\n", msync(m, 2 * PG, MS_SYNC));
    printf("msync async: %d\n", msync(m + PG, PG, MS_ASYNC));

    /* Two mmaps of the file alias, at another offset too. */
    char *m2 = mmap(0, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    char *m2b = mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, PG);
    if (m2 == MAP_FAILED || m2b == MAP_FAILED) die("mmap 2");
    m2[200] = 'Z';
    m[201] = 'Y';
    m2b[10] = 'X';
    printf("alias: %c %c %c distinct %d\n", m[200], m2[201], m[PG + 10], m != m2);

    /* Parent and child exchange data through the mapping. */
    pid_t c = fork();
    if (c < 0) die("fork");
    if (c == 0) {
        strcpy(m + 300, "child was here");
        if (!wait_for(m + 400, "parent reply")) _exit(3);
        strcpy(m2 + 500, "child saw reply");
        _exit(0);
    }
    int got = wait_for(m2 + 300, "child was here");
    strcpy(m + 400, "parent reply");
    int st;
    waitpid(c, &st, 0);
    printf("fork: parent saw child %d, child status %d\n", got, WEXITSTATUS(st));
    show("child's reply", m + 500, 15);
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 15, 500);
    show("child's reply in file", buf, 15);

    /* A read-only mapping of a read-only fd sees later writes and never
     * gets write permission. */
    int ro = open(path, O_RDONLY);
    if (ro < 0) die("open ro");
    char *r = mmap(0, PG, PROT_READ, MAP_SHARED, ro, 0);
    if (r == MAP_FAILED) die("mmap ro");
    char first = r[100];
    m[100] = 'T';
    printf("read-only mapping: %c then %c\n", first, r[100]);
    int mp = mprotect(r, PG, PROT_READ | PROT_WRITE);
    printf("mprotect write on ro: %d errno %d\n", mp, errno);
    errno = 0;
    void *bad = mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    printf("shared writable of ro fd: %d errno %d\n", bad == MAP_FAILED, errno);
    munmap(r, PG);
    close(ro);

    /* Grow with ftruncate, then map the new page. */
    if (ftruncate(fd, 3 * PG) != 0) die("grow");
    char *m3 = mmap(0, 3 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m3 == MAP_FAILED) die("mmap 3");
    int zero = 1;
    for (int i = 0; i < PG; i++) zero &= m3[2 * PG + i] == 0;
    strcpy(m3 + 2 * PG + 5, "new page");
    memset(buf, 0, sizeof buf);
    pread(fd, buf, 8, 2 * PG + 5);
    printf("grown page zero %d ", zero);
    show("pread", buf, 8);
    printf("old pages still shared: %c\n", m3[200]);

    /* Beyond the end of file: SIGBUS (the file is 3 pages, map 4). */
    char *m4 = mmap(0, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m4 == MAP_FAILED) die("mmap 4");
    c = fork();
    if (c == 0) {
        m4[3 * PG] = 1;
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("beyond eof: signaled %d sig %d\n", WIFSIGNALED(st),
           WIFSIGNALED(st) ? WTERMSIG(st) : 0);

    /* A /dev/shm file (what shm_open opens) is shared the same way. */
    char shm_path[64];
    snprintf(shm_path, sizeof shm_path, "/dev/shm/shared_mmap_%d", getpid());
    int sfd = open(shm_path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (sfd < 0 || ftruncate(sfd, PG) != 0) die("shm open");
    char *s = mmap(0, PG, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    if (s == MAP_FAILED) die("shm mmap");
    c = fork();
    if (c == 0) {
        strcpy(s + 8, "from the child via /dev/shm");
        _exit(0);
    }
    waitpid(c, &st, 0);
    show("dev shm", s + 8, 27);
    munmap(s, PG);
    close(sfd);
    unlink(shm_path);

    /* After munmap and reopen, the data is in the file. */
    munmap(m, 2 * PG);
    munmap(m2, 2 * PG);
    munmap(m2b, PG);
    munmap(m3, 3 * PG);
    munmap(m4, 4 * PG);
    close(fd);
    fd = open(path, O_RDONLY);
    if (fd < 0) die("reopen");
    struct stat sb;
    fstat(fd, &sb);
    static char all[3 * PG];
    ssize_t n = read(fd, all, sizeof all);
    uint64_t sum = 0;
    for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)all[i];
    printf("reopened: size %lld read %zd sum %016llx\n", (long long)sb.st_size, n,
           (unsigned long long)sum);
    show("reopened text", all + 100, 19);
    show("reopened page 1", all + PG + 7, 13);
    close(fd);
    unlink(path);
    printf("OK\n");
    return 0;
}
