/*
 * The load generator: one thread, nonblocking sockets, IPv4; ping-pong on
 * io_uring, the other modes (and ping-pong with --io epoll, or
 * where the kernel has no io_uring) on edge-triggered epoll.  C, because a
 * Python client cannot drive 50 connections at 150k+ replies/s;
 * bench/run.py compiles it with the machine's cc and pins it to one core.
 *
 *   loadgen pingpong --port P [--connections 50]   lines "Michael\n" answered
 *                                                   "Hello, Michael!\n"
 *   loadgen churn    --port P [--connections 50]   connect, banner, "exit\n",
 *                                                   wait for the close; again
 *   loadgen udp      --port P [--connections 20]   datagram ping-pong flows
 *   (each of these three takes --rate R: at most R operations a second)
 *   loadgen idle     --port P [--connections 10000]
 *       open and hold connections (banner read); print one JSON line, hold
 *       until stdin has a line or closes (at most --hold seconds), close all.
 *
 * Timed modes run --warmup seconds, then --rounds windows of --duration
 * seconds, and print one JSON line per window: the count, the rate, the
 * latency percentiles (pingpong, udp), the generator's own CPU use in that
 * window (user + system seconds per second: 0.9 or more means the rate is a
 * floor, the generator's ceiling rather than the server's) and, with
 * --watch PID[,PID...], the CPU seconds those processes (the server and its
 * workers) used in the same window, from /proc, for the server's CPU time
 * per operation; with --cores N[,N...], each of those cores' busy share in
 * the window (softirqs included), from /proc/stat.  --rate R offers at most R operations a second in all
 * (replies, datagrams or connections), so that every server is measured at
 * the same rate: what a server's wakeup costs is spread over the events it
 * handles, so CPU per operation is comparable only at equal rates.  Every
 * loop is bounded in time; connections are spread over --sources source
 * addresses from --source (127.0.0.2) on, to the server at --host
 * (127.0.0.1).  bench/run.py runs it on loopback, or in a network namespace
 * of its own joined to the server's by a veth pair (bench/netns.py).
 *
 * What the generator's time goes to (perf record -g on it and perf record
 * -g -p SERVER on the C server, perf report --children): the kernel's
 * loopback work, nearly all of it; its own code is under 3%.  Loopback runs
 * each packet's receipt in the sending thread, and on this machine (a
 * nested virtual machine) waking a thread that sleeps on the other core
 * costs the waker 9 to 13 us (bench/wakeup.c: a pipe write that wakes a
 * reader pinned to the other core, against 0.4 us when the reader is not
 * asleep).  So:
 *   - each operation makes as few system calls as it can: ping-pong's sends
 *     of a batch go in the io_uring_enter that waits for the next replies,
 *     and a multishot receive per connection needs no call per reply;
 *   - sockets are edge-triggered: epoll_wait does not poll each ready
 *     socket again on its next call;
 *   - churn opens the new connections together after each batch of events,
 *     so that one wakeup of the server serves many handshakes, and ends each
 *     connection, once the server has closed it, with a reset, by connect()
 *     to AF_UNSPEC: the server's application has closed its socket and sees
 *     nothing of it, but the FIN's receipt, its ACK and the TIME_WAIT
 *     socket, the server's half that loopback would run in this thread, are
 *     not done, and the socket, still bound and watched, connects again, so
 *     no socket is created, bound, watched, closed or freed a connection.
 * What is left cannot go: per churn connection, this thread receives five
 * packets for the server's sockets and its own (SYN, SYN-ACK, the ACK that
 * creates the server's socket and wakes it, "exit", the reset) where the
 * server's thread receives three (banner, FIN, the FIN's ACK); the
 * handshake is about 45% of this thread's time, "exit" 25%, the reset 15%.
 * About 13 us a connection here against the C server's 11 (uvloop's 15):
 * on loopback, on two cores, the C server's churn is the generator's
 * ceiling.  Ping-pong is symmetric (each side sends one segment a message
 * and runs its receipt), and the generator costs about 0.9x the C server a
 * reply.  So bench/run.py runs the generator and the servers in two network
 * namespaces joined by a veth pair, each end's receipts steered to its own
 * side's core (bench/netns.py): each side then pays for what it receives,
 * and the generator uses about 60% of its core against the C server.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EVENTS 512
#define BUFSIZE 4096
/* Latency histogram: 100 ns buckets up to 100 ms, then one overflow bucket. */
#define BUCKET_NS 100
#define BUCKETS 1000001
#define BANNER_MIN 7 /* "Welcome": the tutorial's banner; a CRLF may follow */
#define UDP_TIMEOUT_NS 200000000ULL
#define WATCHED 64

static const char MESSAGE[] = "Michael\n";
static const char REPLY[] = "Hello, Michael!";
static const char EXIT[] = "exit\n";

static struct {
    const char *mode, *io;
    int port, connections, rounds, sources;
    double warmup, duration, hold, connect_timeout, rate;
    /* The server's address and the first source address, host order. */
    uint32_t host, source;
} opt = {NULL, "uring", 0, 0, 3, 32, 2.0, 5.0, 120.0, 60.0, 0.0, 0x7f000001, 0x7f000002};

/* --rate's bucket: tokens, refilled from the clock, at most a millisecond's
 * worth (or one) at once. */
static double tokens;
static uint64_t refilled;

static uint64_t now_ns(void);

static int take_token(void)
{
    if (opt.rate <= 0)
        return 1;
    uint64_t t = now_ns();
    double burst = opt.rate / 1000 > 1 ? opt.rate / 1000 : 1;
    tokens += (double)(t - refilled) * opt.rate / 1e9;
    if (tokens > burst)
        tokens = burst;
    refilled = t;
    if (tokens < 1)
        return 0;
    tokens -= 1;
    return 1;
}

/* The processes whose CPU time is reported for each window (--watch). */
static int watched[WATCHED], nwatched;

/* The cores whose busy share is reported for each window (--cores), and
 * their ticks when it began (0 in all for a core /proc/stat did not list). */
static int *cores, ncores;
static unsigned long long *window_busy, *window_total;

/* A churn connection's socket, disconnected and kept for the next one. */
#define DISCONNECTED -2

struct conn {
    int fd, index, state; /* state: 0 banner, 1 running, 2 waiting close, -1 dead,
                           * DISCONNECTED */
    int waiting;          /* its next message waits for --rate's token */
    size_t seen, len;
    uint64_t sent;
    char buf[BUFSIZE];
};

static uint32_t *hist;
static uint64_t count, errors, wrong, resets;
static int epfd;

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static double cpu_seconds(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* User + system seconds of the watched processes (every thread of each),
 * from /proc/PID/stat, and in *first the first one's (a pool's parent); a
 * process gone since counts as nothing. */
static double watched_seconds(double *first)
{
    static long ticks;
    double total = 0;
    *first = 0;
    if (!ticks)
        ticks = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < nwatched; i++) {
        char path[64], line[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", watched[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = 0;
        char *p = strrchr(line, ')');
        unsigned long long utime = 0, stime = 0;
        /* After the command's closing parenthesis: state (field 3) ... utime
         * and stime are fields 14 and 15. */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                        &utime, &stime) == 2)
            total += (double)(utime + stime) / (double)ticks;
        if (i == 0)
            *first = total;
    }
    return total;
}

/* Each --cores core's ticks from /proc/stat: busy (user, nice, system, irq
 * and softirq, where the receipts steered to it run, and steal: time the
 * hypervisor took from it was not free for its work) and in all (idle and
 * iowait too); 0 in all for a core not listed. */
static void core_ticks(unsigned long long *busy, unsigned long long *total)
{
    char line[512];
    FILE *f = fopen("/proc/stat", "r");
    for (int i = 0; i < ncores; i++)
        busy[i] = total[i] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        int core;
        unsigned long long v[8];
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9' ||
            sscanf(line + 3, "%d %llu %llu %llu %llu %llu %llu %llu %llu", &core, &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) != 9)
            continue;
        for (int i = 0; i < ncores; i++)
            if (cores[i] == core) {
                busy[i] = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
                total[i] = busy[i] + v[3] + v[4];
            }
    }
    fclose(f);
}

/* Print each --cores core's busy share of the window so far, as JSON
 * members: "cores_busy": {"N": share, ...}, null for a core whose ticks
 * could not be read at both ends of the window. */
static void print_cores_busy(void)
{
    unsigned long long *busy = calloc((size_t)ncores, sizeof *busy);
    unsigned long long *total = calloc((size_t)ncores, sizeof *total);
    core_ticks(busy, total);
    printf(", \"cores_busy\": {");
    for (int i = 0; i < ncores; i++) {
        printf("%s\"%d\": ", i ? ", " : "", cores[i]);
        if (window_total[i] && total[i] > window_total[i] && busy[i] >= window_busy[i])
            printf("%.3f", (double)(busy[i] - window_busy[i]) /
                               (double)(total[i] - window_total[i]));
        else
            printf("null");
    }
    printf("}");
    free(busy);
    free(total);
}

static void record(uint64_t ns)
{
    uint64_t bucket = ns / BUCKET_NS;
    hist[bucket < BUCKETS - 1 ? bucket : BUCKETS - 1]++;
    count++;
}

static double percentile(double p)
{
    uint64_t total = 0, seen = 0;
    for (int i = 0; i < BUCKETS; i++)
        total += hist[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(p * (double)total);
    for (int i = 0; i < BUCKETS; i++) {
        seen += hist[i];
        if (seen > want)
            return (i + 0.5) * BUCKET_NS / 1000.0;
    }
    return 0;
}

/* Phases: warmup, then rounds.  Returns the phase for time t (rounds + 1
 * when done) and reports each window as it closes. */
static int phase = 0;
static uint64_t phase_start;
static double phase_cpu, phase_watched, phase_first;
static uint64_t start_ns;

static void report(uint64_t t)
{
    double seconds = (double)(t - phase_start) / 1e9;
    double cpu = cpu_seconds(), first, watched = watched_seconds(&first);
    printf("{\"mode\": \"%s\", \"round\": %d, \"seconds\": %.3f, \"count\": %llu, "
           "\"rate\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"errors\": %llu, "
           "\"wrong\": %llu, \"resets\": %llu, \"generator_cpu\": %.3f, "
           "\"watched_cpu_seconds\": %.3f, \"watched_first_cpu_seconds\": %.3f",
           opt.mode, phase, seconds, (unsigned long long)count, (double)count / seconds,
           percentile(0.50), percentile(0.99), (unsigned long long)errors,
           (unsigned long long)wrong, (unsigned long long)resets,
           (cpu - phase_cpu) / seconds, watched - phase_watched, first - phase_first);
    if (ncores)
        print_cores_busy();
    printf("}\n");
    fflush(stdout);
}

static int advance(uint64_t t)
{
    uint64_t end = start_ns + (uint64_t)(opt.warmup * 1e9) +
                   (uint64_t)phase * (uint64_t)(opt.duration * 1e9);
    if (t < end)
        return phase;
    if (phase > 0)
        report(t);
    phase++;
    phase_start = t;
    phase_cpu = cpu_seconds();
    phase_watched = watched_seconds(&phase_first);
    core_ticks(window_busy, window_total);
    count = errors = wrong = resets = 0;
    memset(hist, 0, BUCKETS * sizeof *hist);
    return phase;
}

static int open_socket(int type, int index, int nodelay)
{
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    if (fd < 0)
        return -1;
    src.sin_addr.s_addr = htonl(opt.source + (uint32_t)(index % opt.sources));
    dst.sin_addr.s_addr = htonl(opt.host);
    dst.sin_port = htons((uint16_t)opt.port);
#ifdef IP_BIND_ADDRESS_NO_PORT
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    if (nodelay)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether TCP connections set TCP_NODELAY: not for churn, whose one
 * message goes out with nothing unacknowledged before it. */
static int nodelay = 1;

/* Whether sockets are watched edge-triggered (the timed modes): each ready
 * socket is then polled once per event rather than once more on the next
 * epoll_wait, so every reader reads until a read comes back short. */
static int edge;

/* Whether pingpong runs on io_uring (uring_timed) rather than epoll. */
static int uring;

static int start_conn(struct conn *c, int type)
{
    c->fd = open_socket(type, c->index, type == SOCK_STREAM && nodelay);
    c->state = 0;
    c->seen = c->len = 0;
    if (c->fd < 0) {
        c->state = -1;
        errors++;
        return -1;
    }
    if (uring)
        return 0; /* its receive goes on the ring (uring_timed) */
    struct epoll_event ev = {.events = EPOLLIN | (edge ? EPOLLET : 0), .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void end_conn(struct conn *c)
{
    close(c->fd);
    c->fd = -1;
    c->state = -1;
}

/* End a connection the server has closed with a reset rather than a FIN:
 * the server's socket is closed already, so its application sees nothing
 * of it, but the kernel work of the server's half (the FIN's receipt, its
 * ACK, a TIME_WAIT socket), which loopback runs in this thread, is saved,
 * and no TIME_WAIT sockets pile up. */
static void abort_conn(struct conn *c)
{
    struct linger now = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    end_conn(c);
}

static int send_all(struct conn *c, const char *data, size_t len)
{
    ssize_t n = write(c->fd, data, len);
    if (n != (ssize_t)len) {
        errors++;
        end_conn(c);
        return -1;
    }
    return 0;
}

/* Read what is there; returns bytes read, 0 at EOF, -1 on error (counted
 * and the connection ended), -2 when nothing was ready. */
static ssize_t fill(struct conn *c)
{
    ssize_t n = read(c->fd, c->buf + c->len, BUFSIZE - c->len);
    if (n < 0) {
        if (errno == EAGAIN)
            return -2;
        if (errno == ECONNRESET)
            resets++;
        errors++;
        end_conn(c);
        return -1;
    }
    c->len += (size_t)n;
    c->seen += (size_t)n;
    return n;
}

/* Drop the banner's bytes once BANNER_MIN have arrived. */
static int past_banner(struct conn *c)
{
    if (c->state != 0)
        return 1;
    if (c->seen < BANNER_MIN)
        return 0;
    if (memcmp(c->buf, "Welcome", BANNER_MIN) != 0)
        wrong++;
    memmove(c->buf, c->buf + BANNER_MIN, c->len - BANNER_MIN);
    c->len -= BANNER_MIN;
    c->state = 1;
    return 1;
}

/* Take what c->buf holds: the banner, then the replies, timed from their
 * message; returns whether a message is now due (replies came, or the
 * banner did). */
static uint64_t parsed_at; /* when pingpong_parse last looked at the clock */
static uint64_t batch_at;  /* io_uring: when the batch of completions came */

static int pingpong_parse(struct conn *c)
{
    int was_banner = c->state == 0;
    if (!past_banner(c))
        return 0;
    uint64_t t = parsed_at = uring ? batch_at : now_ns();
    char *start = c->buf, *end = c->buf + c->len, *nl;
    int replies = 0;
    while ((nl = memchr(start, '\n', (size_t)(end - start)))) {
        size_t len = (size_t)(nl - start);
        if (len && start[len - 1] == '\r')
            len--;
        if (len) {
            if (len != sizeof REPLY - 1 || memcmp(start, REPLY, len))
                wrong++;
            record(t - c->sent);
            replies++;
        }
        start = nl + 1;
    }
    c->len = (size_t)(end - start);
    if (c->len == BUFSIZE) {
        wrong++; /* a line longer than the buffer: drop it */
        c->len = 0;
    }
    memmove(c->buf, start, c->len);
    return replies || was_banner;
}

static void uring_send(struct conn *c);

/* Send c's next message (its reply just parsed), now if --rate allows,
 * or from the main loop once it does. */
static void pingpong_send(struct conn *c)
{
    if (!take_token()) {
        c->waiting = 1;
        return;
    }
    c->sent = parsed_at;
    if (uring)
        uring_send(c);
    else
        send_all(c, MESSAGE, sizeof MESSAGE - 1);
}

/* Read and answer what is there; returns whether the read filled the
 * buffer, so that more may be waiting (edge-triggered: read again). */
static int pingpong_read(struct conn *c)
{
    size_t room = BUFSIZE - c->len;
    ssize_t n = fill(c);
    if (n == -2 || n == -1)
        return 0;
    if (n == 0) {
        errors++;
        end_conn(c);
        return 0;
    }
    if (pingpong_parse(c)) {
        pingpong_send(c);
        if (c->state < 0)
            return 0;
    }
    return (size_t)n == room;
}

static void pingpong_ready(struct conn *c)
{
    while (pingpong_read(c))
        ;
}

static void pingpong_resume(struct conn *c)
{
    c->sent = now_ns();
    if (uring)
        uring_send(c);
    else
        send_all(c, MESSAGE, sizeof MESSAGE - 1);
}

/* End a connection the server has closed, keeping its socket for the
 * next: connect() to AF_UNSPEC resets the connection, as close() with
 * SO_LINGER 0 would (abort_conn), and frees its port, and the socket,
 * still bound to its source address and watched, connects again
 * (reconnect).  The server sees the same packets as from a new socket;
 * the generator saves creating, binding, watching, closing and freeing
 * one a connection. */
static void disconnect(struct conn *c)
{
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (connect(c->fd, &unspec, sizeof unspec) < 0)
        abort_conn(c);
    else
        c->state = DISCONNECTED;
}

static void reconnect(struct conn *c)
{
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    dst.sin_addr.s_addr = htonl(opt.host);
    c->state = 0;
    c->seen = c->len = 0;
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        errors++;
        end_conn(c);
    }
}

/* Read what is there; ended connections are replaced after the whole
 * batch of events is handled (in timed()), so that the new connections'
 * handshakes reach the server together and one wakeup of it serves many. */
static void churn_ready(struct conn *c)
{
    if (c->state < 0)
        return; /* disconnected in this batch: what its socket says is old */
    for (;;) {
        size_t room = BUFSIZE - c->len;
        ssize_t n = fill(c);
        if (n == -2 || n == -1)
            return;
        if (n == 0) {
            if (c->state == 2) {
                count++;
                disconnect(c);
            } else {
                errors++;
                end_conn(c);
            }
            return;
        }
        if (c->state == 0 && past_banner(c)) {
            c->state = 2;
            if (send_all(c, EXIT, sizeof EXIT - 1) < 0)
                return;
        }
        if (c->state != 0)
            c->len = 0; /* what follows the banner is not looked at */
        if ((size_t)n < room)
            return;
    }
}

static void udp_send(struct conn *c)
{
    c->sent = now_ns();
    if (send(c->fd, MESSAGE, sizeof MESSAGE - 2, 0) < 0)
        errors++;
}

static void udp_ready(struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, BUFSIZE, 0);
        if (n < 0) {
            if (errno != EAGAIN)
                errors++;
            return;
        }
        if ((size_t)n != sizeof REPLY - 1 || memcmp(c->buf, REPLY, (size_t)n))
            wrong++;
        record(now_ns() - c->sent);
        if (!take_token()) {
            c->waiting = 1;
            return;
        }
        udp_send(c);
    }
}

/* Under --rate: send again for each connection waiting for a token, while
 * tokens last; whether any connection still waits. */
static int resume_paced(struct conn *conns, void (*resume)(struct conn *))
{
    for (int i = 0; i < opt.connections; i++) {
        struct conn *c = &conns[i];
        if (!c->waiting)
            continue;
        if (!take_token())
            return 1;
        c->waiting = 0;
        resume(c);
    }
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].waiting)
            return 1;
    return 0;
}

static int timed(void (*ready)(struct conn *), struct conn *conns)
{
    struct epoll_event events[EVENTS];
    uint64_t last_check = now_ns();
    start_ns = phase_start = last_check;
    phase_cpu = cpu_seconds();
    int waiting = 0;
    for (;;) {
        int n = epoll_wait(epfd, events, EVENTS, waiting ? 1 : 10);
        for (int i = 0; i < n; i++)
            ready(events[i].data.ptr);
        waiting = resume_paced(conns, ready == udp_ready ? udp_send : pingpong_resume);
        uint64_t t = now_ns();
        if (advance(t) > opt.rounds)
            return 0;
        if (ready == udp_ready && t - last_check > UDP_TIMEOUT_NS / 4) {
            /* A lost datagram would stall its flow: resend, count it. */
            for (int i = 0; i < opt.connections; i++)
                if (!conns[i].waiting && t - conns[i].sent > UDP_TIMEOUT_NS) {
                    errors++;
                    udp_send(&conns[i]);
                }
            last_check = t;
        }
        if (ready == churn_ready) {
            for (int i = 0; i < opt.connections; i++)
                if (conns[i].state < 0) {
                    if (!take_token()) {
                        waiting = 1;
                        break;
                    }
                    if (conns[i].state == DISCONNECTED)
                        reconnect(&conns[i]);
                    else
                        start_conn(&conns[i], SOCK_STREAM);
                }
        } else {
            int alive = 0;
            for (int i = 0; i < opt.connections; i++)
                alive += conns[i].state >= 0;
            if (!alive) {
                fprintf(stderr, "loadgen: every connection failed\n");
                return 1;
            }
        }
    }
}

/*
 * Ping-pong on io_uring: a multishot receive per connection into a ring of
 * provided buffers, and the sends queued as they fall due and submitted
 * together with the wait for the next completions, in one io_uring_enter
 * a batch (IORING_SETUP_DEFER_TASKRUN: the completions' work runs then, in
 * this thread).  The kernel's work per message is the same as epoll's; what
 * goes is epoll_wait's polling of each ready socket and a read and a write
 * system call per message.  Raw system calls: liburing is not needed.
 */
#define URING_ENTRIES 256
#define URING_CQ_ENTRIES 4096
#define URING_BUFFERS 512 /* a power of 2 */
#define URING_BUFSIZE 512
#define URING_GROUP 0
#define URING_RECV 1
#define URING_SEND 2

static struct {
    int fd;
    unsigned *sq_head, *sq_tail, sq_mask, *sq_array, sq_entries;
    unsigned *cq_head, *cq_tail, cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    unsigned tail, queued; /* our SQ tail; SQEs not yet submitted */
    struct io_uring_buf_ring *bufs;
    char *buffers;
    unsigned short buf_tail;
} ring = {.fd = -1};

/* The connections whose message is queued: their clock starts when the
 * batch is submitted. */
static struct conn **sending;
static int nsending, most_sending;

static int uring_enter(unsigned submit, unsigned wait, unsigned flags, void *arg, size_t size)
{
    return (int)syscall(__NR_io_uring_enter, ring.fd, submit, wait, flags, arg, size);
}

/* Hand buffer bid back to the kernel (made visible by uring_buffers_done). */
static void uring_buffer_back(unsigned bid)
{
    struct io_uring_buf *b = &ring.bufs->bufs[ring.buf_tail & (URING_BUFFERS - 1)];
    b->addr = (uint64_t)(uintptr_t)(ring.buffers + (size_t)bid * URING_BUFSIZE);
    b->len = URING_BUFSIZE;
    b->bid = (unsigned short)bid;
    ring.buf_tail++;
}

static void uring_buffers_done(void)
{
    __atomic_store_n(&ring.bufs->tail, ring.buf_tail, __ATOMIC_RELEASE);
}

/* Set the ring up; returns 0, or -1 (and the ring closed) where this
 * kernel has no io_uring, forbids it, or lacks a feature used here. */
static int uring_setup(void)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = URING_CQ_ENTRIES;
    ring.fd = (int)syscall(__NR_io_uring_setup, URING_ENTRIES, &p);
    if (ring.fd < 0)
        return -1;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP) || !(p.features & IORING_FEAT_EXT_ARG))
        goto fail;
    size_t sq_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t size = sq_size > cq_size ? sq_size : cq_size;
    char *sq = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring.fd,
                    IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        goto fail;
    ring.sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_POPULATE, ring.fd, IORING_OFF_SQES);
    if (ring.sqes == MAP_FAILED)
        goto fail;
    ring.sq_head = (unsigned *)(sq + p.sq_off.head);
    ring.sq_tail = (unsigned *)(sq + p.sq_off.tail);
    ring.sq_mask = *(unsigned *)(sq + p.sq_off.ring_mask);
    ring.sq_array = (unsigned *)(sq + p.sq_off.array);
    ring.sq_entries = p.sq_entries;
    ring.cq_head = (unsigned *)(sq + p.cq_off.head);
    ring.cq_tail = (unsigned *)(sq + p.cq_off.tail);
    ring.cq_mask = *(unsigned *)(sq + p.cq_off.ring_mask);
    ring.cqes = (struct io_uring_cqe *)(sq + p.cq_off.cqes);
    ring.tail = *ring.sq_tail;
    /* The provided buffers, in a ring the kernel takes them from. */
    ring.bufs = mmap(NULL, URING_BUFFERS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    ring.buffers = malloc((size_t)URING_BUFFERS * URING_BUFSIZE);
    if (ring.bufs == MAP_FAILED || !ring.buffers)
        goto fail;
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)ring.bufs,
                                   .ring_entries = URING_BUFFERS,
                                   .bgid = URING_GROUP};
    if (syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0)
        goto fail;
    for (unsigned i = 0; i < URING_BUFFERS; i++)
        uring_buffer_back(i);
    uring_buffers_done();
    return 0;
fail:
    close(ring.fd);
    ring.fd = -1;
    return -1;
}

/* Submit what is queued; with wait, also wait (at most timeout_ns) for a
 * completion.  Returns io_uring_enter's result. */
static int uring_submit(int wait, uint64_t timeout_ns)
{
    unsigned submit = ring.queued;
    uint64_t t = now_ns();
    for (int i = 0; i < nsending; i++)
        sending[i]->sent = t;
    nsending = 0;
    __atomic_store_n(ring.sq_tail, ring.tail, __ATOMIC_RELEASE);
    ring.queued = 0;
    if (!wait)
        return submit ? uring_enter(submit, 0, 0, NULL, 0) : 0;
    struct __kernel_timespec ts = {.tv_sec = (long long)(timeout_ns / 1000000000ULL),
                                   .tv_nsec = (long long)(timeout_ns % 1000000000ULL)};
    struct io_uring_getevents_arg arg = {.ts = (uint64_t)(uintptr_t)&ts};
    return uring_enter(submit, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                       sizeof arg);
}

static struct io_uring_sqe *uring_sqe(void)
{
    if (ring.tail - __atomic_load_n(ring.sq_head, __ATOMIC_ACQUIRE) >= ring.sq_entries)
        uring_submit(0, 0);
    unsigned index = ring.tail & ring.sq_mask;
    struct io_uring_sqe *sqe = &ring.sqes[index];
    memset(sqe, 0, sizeof *sqe);
    ring.sq_array[index] = index;
    ring.tail++;
    ring.queued++;
    return sqe;
}

static void uring_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = uring_sqe();
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = c->index; /* its registered file */
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT | IOSQE_FIXED_FILE;
    sqe->buf_group = URING_GROUP;
    sqe->user_data = (uint64_t)c->index << 8 | URING_RECV;
}


/* Queue c's message; only a failed send completes (IOSQE_CQE_SKIP_SUCCESS):
 * a short send would pass unseen, which 8 bytes on a connection waiting for
 * its reply never are. */
static void uring_send(struct conn *c)
{
    if (nsending == most_sending)
        uring_submit(0, 0);
    sending[nsending++] = c;
    struct io_uring_sqe *sqe = uring_sqe();
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = c->index;
    sqe->addr = (uint64_t)(uintptr_t)MESSAGE;
    sqe->len = sizeof MESSAGE - 1;
    sqe->flags = IOSQE_CQE_SKIP_SUCCESS | IOSQE_FIXED_FILE;
    sqe->user_data = (uint64_t)c->index << 8 | URING_SEND;
}

/* End c: shut it first, so that its multishot receive completes and lets
 * the socket go; what completes for it later is dropped. */
static int uring_ended; /* connections ended */

static void uring_end(struct conn *c)
{
    shutdown(c->fd, SHUT_RDWR);
    end_conn(c);
    uring_ended++;
}

/* Bytes received for c: into its buffer, a buffer's worth at a time. */
static void uring_data(struct conn *c, const char *data, size_t n)
{
    while (n && c->state >= 0) {
        size_t room = BUFSIZE - c->len, take = n < room ? n : room;
        memcpy(c->buf + c->len, data, take);
        c->len += take;
        c->seen += take;
        data += take;
        n -= take;
        if (pingpong_parse(c))
            pingpong_send(c);
    }
}

static void uring_complete(struct conn *conns, struct io_uring_cqe *cqe)
{
    struct conn *c = &conns[cqe->user_data >> 8];
    int res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (res > 0 && c->state >= 0)
            uring_data(c, ring.buffers + (size_t)bid * URING_BUFSIZE, (size_t)res);
        uring_buffer_back(bid);
    }
    if (c->state < 0)
        return;
    if ((cqe->user_data & 0xff) == URING_SEND) {
        errors++; /* a send that failed, or sent part of the message */
        uring_end(c);
        return;
    }
    if (res == 0 || (res < 0 && res != -ENOBUFS)) {
        if (res == -ECONNRESET)
            resets++;
        errors++;
        uring_end(c);
        return;
    }
    if (!(cqe->flags & IORING_CQE_F_MORE))
        uring_recv(c);
}

static int uring_timed(struct conn *conns)
{
    /* The sockets as registered files (index i is conns[i]'s; -1 for one
     * that failed), which spares each operation looking its file up. */
    int *fds = malloc((size_t)opt.connections * sizeof *fds);
    for (int i = 0; i < opt.connections; i++)
        fds[i] = conns[i].fd;
    if (syscall(__NR_io_uring_register, ring.fd, IORING_REGISTER_FILES, fds,
                opt.connections) < 0) {
        fprintf(stderr, "loadgen: io_uring_register: %s\n", strerror(errno));
        return 1;
    }
    free(fds);
    most_sending = 2 * opt.connections;
    sending = calloc((size_t)most_sending, sizeof *sending);
    for (int i = 0; i < opt.connections; i++)
        uring_ended += conns[i].state < 0;
    uint64_t t = now_ns();
    start_ns = phase_start = t;
    phase_cpu = cpu_seconds();
    int waiting = 0;
    for (int i = 0; i < opt.connections; i++)
        if (conns[i].state >= 0)
            uring_recv(&conns[i]);
    for (;;) {
        int got = uring_submit(1, waiting ? 1000000 : 10000000);
        if (got < 0 && errno != ETIME && errno != EINTR && errno != EBUSY) {
            fprintf(stderr, "loadgen: io_uring_enter: %s\n", strerror(errno));
            return 1;
        }
        unsigned head = *ring.cq_head, tail = __atomic_load_n(ring.cq_tail, __ATOMIC_ACQUIRE);
        batch_at = now_ns();
        for (; head != tail; head++)
            uring_complete(conns, &ring.cqes[head & ring.cq_mask]);
        __atomic_store_n(ring.cq_head, head, __ATOMIC_RELEASE);
        uring_buffers_done();
        waiting = opt.rate > 0 && resume_paced(conns, pingpong_resume);
        if (advance(batch_at) > opt.rounds)
            return 0;
        if (uring_ended >= opt.connections) {
            fprintf(stderr, "loadgen: every connection failed\n");
            return 1;
        }
    }
}

static int idle(struct conn *conns)
{
    struct epoll_event events[EVENTS];
    int opened = 0, banners = 0, inflight = 0, failed = 0;
    uint64_t deadline = now_ns() + (uint64_t)(opt.connect_timeout * 1e9);
    uint64_t began = now_ns();
    while (banners + failed < opt.connections && now_ns() < deadline) {
        while (opened < opt.connections && inflight < 256) {
            if (start_conn(&conns[opened++], SOCK_STREAM) < 0)
                failed++;
            else
                inflight++;
        }
        int n = epoll_wait(epfd, events, EVENTS, 100);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            ssize_t got = fill(c);
            if (got == -2)
                continue;
            if (got <= 0) {
                if (got == 0)
                    end_conn(c);
                failed++;
                inflight--;
            } else if (past_banner(c)) {
                c->len = 0;
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                banners++;
                inflight--;
            }
        }
    }
    printf("{\"mode\": \"idle\", \"held\": %d, \"failed\": %d, \"seconds\": %.3f}\n", banners,
           failed, (double)(now_ns() - began) / 1e9);
    fflush(stdout);
    struct pollfd in = {.fd = 0, .events = POLLIN};
    poll(&in, 1, (int)(opt.hold * 1000));
    return 0;
}

/* The comma-separated numbers of v into at most most slots of into: how
 * many, or -1 if v is not that. */
static int numbers(const char *v, int *into, int most)
{
    int n = 0;
    char *end;
    for (const char *p = v;; p = end + 1) {
        long number = strtol(p, &end, 10);
        if (end == p || number < 0 || n >= most || (*end && *end != ','))
            return -1;
        into[n++] = (int)number;
        if (!*end)
            return n;
    }
}

static int not_numbers(const char *option)
{
    fprintf(stderr, "loadgen: %s takes numbers separated by commas\n", option);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: loadgen pingpong|churn|udp|idle --port P [options]\n");
        return 2;
    }
    opt.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(k, "--connections"))
            opt.connections = atoi(v);
        else if (!strcmp(k, "--rounds"))
            opt.rounds = atoi(v);
        else if (!strcmp(k, "--sources"))
            opt.sources = atoi(v);
        else if (!strcmp(k, "--host") || !strcmp(k, "--source")) {
            struct in_addr address;
            if (inet_pton(AF_INET, v, &address) != 1) {
                fprintf(stderr, "loadgen: %s takes an IPv4 address, not %s\n", k, v);
                return 2;
            }
            *(!strcmp(k, "--host") ? &opt.host : &opt.source) = ntohl(address.s_addr);
        }
        else if (!strcmp(k, "--warmup"))
            opt.warmup = atof(v);
        else if (!strcmp(k, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(k, "--hold"))
            opt.hold = atof(v);
        else if (!strcmp(k, "--connect-timeout"))
            opt.connect_timeout = atof(v);
        else if (!strcmp(k, "--io"))
            opt.io = v;
        else if (!strcmp(k, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(k, "--watch")) {
            int n = numbers(v, watched + nwatched, WATCHED - nwatched);
            if (n < 0)
                return not_numbers(k);
            nwatched += n;
        }
        else if (!strcmp(k, "--cores")) {
            /* A later --cores replaces an earlier one. */
            int most = (int)strlen(v) / 2 + 1;
            free(cores);
            free(window_busy);
            free(window_total);
            cores = calloc((size_t)most, sizeof *cores);
            if ((ncores = numbers(v, cores, most)) < 0)
                return not_numbers(k);
            window_busy = calloc((size_t)ncores, sizeof *window_busy);
            window_total = calloc((size_t)ncores, sizeof *window_total);
        }
        else {
            fprintf(stderr, "loadgen: unknown option %s\n", k);
            return 2;
        }
    }
    if (!opt.port || opt.sources < 1 || opt.rounds < 1) {
        fprintf(stderr, "loadgen: --port is required\n");
        return 2;
    }
    int is_idle = !strcmp(opt.mode, "idle"), is_udp = !strcmp(opt.mode, "udp");
    if (!opt.connections)
        opt.connections = is_idle ? 10000 : is_udp ? 20 : 50;
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    hist = calloc(BUCKETS, sizeof *hist);
    struct conn *conns = calloc((size_t)opt.connections, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < opt.connections; i++)
        conns[i].index = i;
    if (is_idle)
        return idle(conns);
    nodelay = strcmp(opt.mode, "churn") != 0;
    edge = 1;
    if (strcmp(opt.io, "uring") && strcmp(opt.io, "epoll")) {
        fprintf(stderr, "loadgen: --io is uring or epoll\n");
        return 2;
    }
    if (!strcmp(opt.mode, "pingpong") && !strcmp(opt.io, "uring")) {
        if (uring_setup() == 0)
            uring = 1;
        else
            fprintf(stderr, "loadgen: no io_uring (%s): ping-pong on epoll\n", strerror(errno));
    }
    for (int i = 0; i < opt.connections; i++) {
        start_conn(&conns[i], is_udp ? SOCK_DGRAM : SOCK_STREAM);
        if (is_udp && conns[i].state == 0)
            udp_send(&conns[i]);
    }
    if (uring)
        return uring_timed(conns);
    if (!strcmp(opt.mode, "pingpong"))
        return timed(pingpong_ready, conns);
    if (!strcmp(opt.mode, "churn"))
        return timed(churn_ready, conns);
    if (is_udp)
        return timed(udp_ready, conns);
    fprintf(stderr, "loadgen: unknown mode %s\n", opt.mode);
    return 2;
}
