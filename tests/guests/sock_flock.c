/* Advisory locks between two processes: flock exclusion (LOCK_NB fails
 * with EWOULDBLOCK, a blocking LOCK_EX waits for the holder's unlock,
 * shared locks coexist), POSIX record locks (F_GETLK names the holder,
 * F_SETLK conflicts, closing any fd of the file releases the process's
 * locks, F_SETLKW waits) and exit releasing record locks. Prints OK when
 * every check holds. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)
#define CCHECK(c, code) do { if (!(c)) _exit(code); } while (0)

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_ok(pid_t c) {
    int st;
    CHECK(waitpid(c, &st, 0) == c);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("FAIL child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
        exit(1);
    }
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    char path[64];
    snprintf(path, sizeof path, "/tmp/sbx-flock-%d", getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, "0123456789", 10) == 10);

    /* flock: exclusive held by the parent. */
    CHECK(flock(fd, LOCK_EX) == 0);
    int sync[2];
    CHECK(pipe(sync) == 0);
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        /* Its own open file description: the lock is the parent's. */
        int f2 = open(path, O_RDWR);
        CCHECK(f2 >= 0, 2);
        CCHECK(flock(f2, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK, 3);
        CCHECK(flock(f2, LOCK_SH | LOCK_NB) == -1 && errno == EWOULDBLOCK, 4);
        /* Timed from before the parent can start its 150 ms sleep. */
        long t0 = now_ms();
        CCHECK(write(sync[1], "w", 1) == 1, 5);
        CCHECK(flock(f2, LOCK_EX) == 0, 6);
        /* The parent wrote its marker before unlocking. */
        CCHECK(now_ms() - t0 >= 100, 7);
        char b[16];
        CCHECK(pread(f2, b, 10, 0) == 10 && memcmp(b, "LOCKED-BY-", 10) == 0, 8);
        CCHECK(flock(f2, LOCK_UN) == 0, 9);
        _exit(0);
    }
    char b;
    CHECK(read(sync[0], &b, 1) == 1);
    usleep(150000);
    CHECK(pwrite(fd, "LOCKED-BY-", 10, 0) == 10);
    CHECK(flock(fd, LOCK_UN) == 0);
    wait_ok(c);

    /* Shared locks coexist; an exclusive one is refused meanwhile. */
    CHECK(flock(fd, LOCK_SH) == 0);
    c = fork();
    if (c == 0) {
        int f2 = open(path, O_RDONLY);
        CCHECK(flock(f2, LOCK_SH | LOCK_NB) == 0, 2);
        CCHECK(flock(f2, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK, 3);
        _exit(0);
    }
    wait_ok(c);
    CHECK(flock(fd, LOCK_UN) == 0);
    CHECK(flock(fd, 0) == -1 && errno == EINVAL);

    /* POSIX record locks: the parent write-locks bytes 2..5. */
    CHECK(setlk(fd, F_SETLK, F_WRLCK, 2, 4) == 0);
    pid_t parent = getpid();
    c = fork();
    if (c == 0) {
        int f2 = open(path, O_RDWR);
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        CCHECK(fcntl(f2, F_GETLK, &q) == 0, 2);
        CCHECK(q.l_type == F_WRLCK && q.l_pid == parent && q.l_start == 2 && q.l_len == 4, 3);
        CCHECK(setlk(f2, F_SETLK, F_RDLCK, 5, 1) == -1 && (errno == EAGAIN || errno == EACCES), 4);
        CCHECK(setlk(f2, F_SETLK, F_WRLCK, 6, 4) == 0, 5);  /* no overlap */
        q = (struct flock){.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 6, .l_len = 1};
        CCHECK(fcntl(f2, F_GETLK, &q) == 0 && q.l_type == F_UNLCK, 6);  /* own lock */
        /* Blocks until the parent closes an fd of the file. */
        long t0 = now_ms();
        CCHECK(write(sync[1], "r", 1) == 1, 7);
        CCHECK(setlk(f2, F_SETLKW, F_WRLCK, 0, 6) == 0, 8);
        CCHECK(now_ms() - t0 >= 100, 9);
        /* Exits holding [0, 10): exit releases it. */
        _exit(0);
    }
    CHECK(read(sync[0], &b, 1) == 1);
    /* The child's lock on 6..9 conflicts with ours. */
    CHECK(setlk(fd, F_SETLK, F_WRLCK, 8, 1) == -1 && (errno == EAGAIN || errno == EACCES));
    usleep(150000);
    int other = open(path, O_RDONLY);
    CHECK(other >= 0);
    CHECK(close(other) == 0);  /* drops all our record locks on the file */
    wait_ok(c);
    CHECK(setlk(fd, F_SETLK, F_WRLCK, 0, 0) == 0);  /* the child's are gone */
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    CHECK(fcntl(fd, F_GETLK, &q) == 0 && q.l_type == F_UNLCK);
    CHECK(setlk(fd, F_SETLK, 42, 0, 0) == -1 && errno == EINVAL);
    struct flock *volatile badfl = (struct flock *)8;
    CHECK(fcntl(fd, F_GETLK, badfl) == -1 && errno == EFAULT);
    close(fd);
    unlink(path);
    printf("OK\n");
    return 0;
}
