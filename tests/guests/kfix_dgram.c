/* Blocked Unix datagram senders are woken by the receiver's dequeue.
 *
 * Each case has a sender (a child) and a receiver (its parent). The sender
 * fills the receiver's queue until a MSG_DONTWAIT send fails with EAGAIN,
 * tells the receiver ("full" on a pipe), then either sends the same
 * datagram blocking ("send" cases) or polls for POLLOUT ("poll" cases)
 * and sends it; then a few more, then an end marker. The receiver waits
 * DRAIN_DELAY_MS after "full", notes the time, and drains everything,
 * checking that every datagram arrives once and in order. The sender
 * reports how long it was blocked and when it resumed; the receiver
 * prints one line per case:
 *   CASE blocked=<waited at least MIN_BLOCK_MS> prompt=<resumed within
 *        PROMPT_MS of the first dequeue> r=<poll result> out=<POLLOUT>
 *        count=<datagrams> order=<ok|bad>
 * Only facts that hold on Linux whatever the queue sizes are printed, so
 * the output is the same natively and under sbx.
 *
 * Cases: the two ends of a socketpair(AF_UNIX, SOCK_DGRAM); a socket
 * connect()ed to a bound server that is not connected back; an unbound
 * socket sending with sendto() to the server's address. A sender that is
 * never woken makes the worker die of SIGALRM (the output says so).
 *
 * With the argument "ckpt", one case for a checkpoint: the sender blocks
 * on a full server (connected case), the receiver prints "sender blocked"
 * and drains only CKPT_DRAIN_DELAY_MS later; the test checkpoints in
 * between, kills the sandbox and restores it. The rewound send is issued
 * again after the restore, blocks again, and is woken by the drain:
 *   ckpt filled=1 all=1 order=ok */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(c) do { if (!(c)) { printf("FAIL %s:%d: %s (errno %d)\n", __FILE__, __LINE__, #c, errno); exit(1); } } while (0)

/* Datagram size: the queue fills after some tens (Linux) or hundreds
 * (sbx) of them. */
#define DGRAM 1024
/* Datagrams sent after the blocked one. */
#define MORE 50
/* The receiver starts draining this long after the queue was full. */
#define DRAIN_DELAY_MS 500
/* The blocked send/poll must have waited at least this long... */
#define MIN_BLOCK_MS 300
/* ...and resumed within this long of the first dequeue (generous: the
 * test runs on a loaded 2-CPU machine; a sender nobody wakes never
 * resumes). */
#define PROMPT_MS 1000
#define END_MARKER 0xffffffffu

/* "ckpt": the receiver drains this long after the sender blocked. */
#define CKPT_DRAIN_DELAY_MS 2000

enum kind { PAIR, CONNECTED, SENDTO };
enum how { SEND, POLL };

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void msleep(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* What the sender reports to the receiver. */
struct report {
    /* Datagrams sent (all accepted) before the queue was full. */
    uint32_t filled;
    long waited_ms;
    long resumed_at;
    int poll_r;
    int poll_out;
};

static void fill(char *buf, uint32_t seq) {
    memset(buf, (int)(seq & 0xff), DGRAM);
    memcpy(buf, &seq, sizeof seq);
}

/* Sends datagram `seq` on `fd` (to `to` if given) with `flags`. */
static ssize_t send_seq(int fd, const struct sockaddr_un *to, uint32_t seq, int flags) {
    char buf[DGRAM];
    fill(buf, seq);
    return sendto(fd, buf, DGRAM, flags, (const struct sockaddr *)to, to ? sizeof *to : 0);
}

static void sender(int fd, const struct sockaddr_un *to, enum how how, int full_w, int rep_w) {
    uint32_t seq = 0;
    struct report rep = {0, 0, 0, -1, 0};
    /* Fill until the queue is full. */
    for (;;) {
        ssize_t n = send_seq(fd, to, seq, MSG_DONTWAIT);
        if (n < 0) {
            CHECK(errno == EAGAIN);
            break;
        }
        CHECK(n == DGRAM);
        seq++;
    }
    rep.filled = seq;
    CHECK(write(full_w, "f", 1) == 1);
    long t0 = now_ms();
    if (how == POLL) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rep.poll_r = poll(&p, 1, 10000);
        rep.poll_out = (p.revents & POLLOUT) != 0;
        rep.resumed_at = now_ms();
        rep.waited_ms = rep.resumed_at - t0;
    }
    /* The datagram that did not fit, blocking this time. */
    CHECK(send_seq(fd, to, seq, 0) == DGRAM);
    if (how == SEND) {
        rep.resumed_at = now_ms();
        rep.waited_ms = rep.resumed_at - t0;
    }
    seq++;
    for (int i = 0; i < MORE; i++, seq++)
        CHECK(send_seq(fd, to, seq, 0) == DGRAM);
    CHECK(send_seq(fd, to, END_MARKER, 0) == DGRAM);
    CHECK(write(rep_w, &rep, sizeof rep) == sizeof rep);
    _exit(0);
}

static void run(const char *name, enum kind kind, enum how how, int ckpt) {
    int full[2], rep[2];
    CHECK(pipe(full) == 0 && pipe(rep) == 0);
    int rx, tx;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const struct sockaddr_un *to = NULL;
    if (kind == PAIR) {
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
        rx = sv[0];
        tx = sv[1];
    } else {
        /* An abstract name unique to this run and case (zero-padded: the
         * whole sizeof(addr) is the name, for bind, connect and sendto). */
        snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "kfix_dgram_%d_%s", getpid(), name);
        rx = socket(AF_UNIX, SOCK_DGRAM, 0);
        CHECK(rx >= 0);
        CHECK(bind(rx, (struct sockaddr *)&addr, sizeof addr) == 0);
        tx = socket(AF_UNIX, SOCK_DGRAM, 0);
        CHECK(tx >= 0);
        if (kind == CONNECTED)
            CHECK(connect(tx, (struct sockaddr *)&addr, sizeof addr) == 0);
        else
            to = &addr;
    }
    pid_t c = fork();
    CHECK(c >= 0);
    if (c == 0) {
        close(rx);
        sender(tx, to, how, full[1], rep[1]);
    }
    close(tx);
    char f;
    CHECK(read(full[0], &f, 1) == 1);
    if (ckpt) {
        /* The sender is about to block (or blocked) in its send. */
        printf("sender blocked\n");
        msleep(CKPT_DRAIN_DELAY_MS);
    }
    msleep(DRAIN_DELAY_MS);
    long drain_at = now_ms();
    uint32_t expect = 0;
    int order_ok = 1;
    for (;;) {
        char buf[DGRAM + 1];
        ssize_t n = recv(rx, buf, sizeof buf, 0);
        CHECK(n == DGRAM);
        uint32_t seq;
        memcpy(&seq, buf, sizeof seq);
        if (seq == END_MARKER)
            break;
        char want[DGRAM];
        fill(want, expect);
        if (seq != expect || memcmp(buf, want, DGRAM) != 0)
            order_ok = 0;
        expect++;
    }
    struct report r;
    CHECK(read(rep[0], &r, sizeof r) == sizeof r);
    int st;
    CHECK(waitpid(c, &st, 0) == c);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(rx);
    close(full[0]);
    close(full[1]);
    close(rep[0]);
    close(rep[1]);
    /* How many fit before the block differs between kernels: print only
     * that some did and that every one sent arrived. */
    long resumed_after = r.resumed_at - drain_at;
    if (ckpt) {
        printf("%s filled=%d all=%d order=%s\n", name, r.filled > 0, expect == r.filled + 1 + MORE,
               order_ok ? "ok" : "bad");
        return;
    }
    printf("%s blocked=%d prompt=%d r=%d out=%d filled=%d all=%d order=%s\n", name,
           r.waited_ms >= MIN_BLOCK_MS, resumed_after >= 0 && resumed_after < PROMPT_MS,
           r.poll_r, r.poll_out, r.filled > 0, expect == r.filled + 1 + MORE,
           order_ok ? "ok" : "bad");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* The cases run in a child: a sender nobody wakes must end in
     * SIGALRM, which init (pid 1 in the sandbox) would not get. */
    pid_t w = fork();
    CHECK(w >= 0);
    if (w == 0) {
        if (argc > 1 && strcmp(argv[1], "ckpt") == 0) {
            /* Sandbox time: the restore's wait does not count. */
            alarm(60);
            run("ckpt", CONNECTED, SEND, 1);
            _exit(0);
        }
        alarm(30);
        run("pair-send", PAIR, SEND, 0);
        run("pair-poll", PAIR, POLL, 0);
        run("connected-send", CONNECTED, SEND, 0);
        run("connected-poll", CONNECTED, POLL, 0);
        run("sendto-send", SENDTO, SEND, 0);
        _exit(0);
    }
    int st;
    CHECK(waitpid(w, &st, 0) == w);
    if (WIFSIGNALED(st))
        printf("worker killed by signal %d\n", WTERMSIG(st));
    else
        printf("worker exit %d\n", WEXITSTATUS(st));
    return 0;
}
