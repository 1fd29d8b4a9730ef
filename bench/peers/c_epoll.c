/*
 * The C peer: a single-threaded, level-triggered epoll server speaking the
 * greeting protocol with line framing, as greetd --framing line does:
 * "Welcome\r\n" on connect, "Hello, M!" plus the line's ending for every
 * non-blank line M, a close after "exit".  UDP: "Hello, D!" for every
 * datagram D.  Replies are written at once (write-through); only what the
 * socket does not take is kept for EPOLLOUT.
 *
 *     cc -O2 -o c_epoll c_epoll.c && ./c_epoll --port 0 --udp-port 0
 *
 * It prints "Serving TCP on 127.0.0.1:PORT" and "Serving UDP on ..." when
 * ready, like twistd greetd, and runs until killed.  It listens on
 * 127.0.0.1, or on the IPv4 address --host gives.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LENGTH 1024
#define EVENTS 256

static const char BANNER[] = "Welcome\r\n";

struct conn {
    int fd;
    int closing;
    size_t inlen;
    char in[MAX_LENGTH + 2];
    size_t outlen, outcap;
    char *out;
};

static int epfd;
static int tcpfd, udpfd;

static int listen_on(int type, const char *host, int port)
{
    int fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    socklen_t len = sizeof sin;
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        fprintf(stderr, "c_epoll: --host takes an IPv4 address, not %s\n", host);
        exit(2);
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0) {
        perror("bind");
        exit(1);
    }
    if (type == SOCK_STREAM && listen(fd, 4096) < 0) {
        perror("listen");
        exit(1);
    }
    getsockname(fd, (struct sockaddr *)&sin, &len);
    printf("Serving %s on %s:%d\n", type == SOCK_STREAM ? "TCP" : "UDP", host,
           ntohs(sin.sin_port));
    return fd;
}

static void drop(struct conn *c)
{
    close(c->fd);
    free(c->out);
    free(c);
}

/* Queue data after what is owed; returns -1 when out of memory. */
static int queue_out(struct conn *c, const char *data, size_t len)
{
    if (c->outlen + len > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 256;
        while (cap < c->outlen + len)
            cap *= 2;
        char *out = realloc(c->out, cap);
        if (!out)
            return -1;
        c->out = out;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, data, len);
    c->outlen += len;
    return 0;
}

/* Write what is owed; returns 1 when all is written, 0 when some is left,
 * -1 on error. */
static int flush_out(struct conn *c)
{
    size_t done = 0;
    while (done < c->outlen) {
        ssize_t n = write(c->fd, c->out + done, c->outlen - done);
        if (n < 0) {
            if (errno == EAGAIN)
                break;
            return -1;
        }
        done += (size_t)n;
    }
    memmove(c->out, c->out + done, c->outlen - done);
    c->outlen -= done;
    return c->outlen == 0;
}

static void finish(struct conn *c)
{
    int flushed = flush_out(c);
    struct epoll_event ev = {.data.ptr = c};
    if (flushed < 0 || (flushed == 1 && c->closing)) {
        drop(c);
        return;
    }
    ev.events = flushed ? EPOLLIN : EPOLLOUT;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void answer(struct conn *c)
{
    char reply[MAX_LENGTH + 16];
    char *start = c->in, *end = c->in + c->inlen, *nl;
    while (!c->closing && (nl = memchr(start, '\n', (size_t)(end - start)))) {
        char *stop = nl;
        const char *ending = "\n";
        if (stop > start && stop[-1] == '\r') {
            stop--;
            ending = "\r\n";
        }
        size_t len = (size_t)(stop - start);
        if (len == 4 && memcmp(start, "exit", 4) == 0)
            c->closing = 1;
        else if (len) {
            int n = snprintf(reply, sizeof reply, "Hello, %.*s!%s", (int)len, start,
                             ending);
            queue_out(c, reply, (size_t)n);
        }
        start = nl + 1;
    }
    c->inlen = (size_t)(end - start);
    memmove(c->in, start, c->inlen);
    if (c->inlen > MAX_LENGTH && !c->closing) {
        queue_out(c, "Error: message too long\r\n", 25);
        c->closing = 1;
    }
}

static void readable(struct conn *c)
{
    ssize_t n = read(c->fd, c->in + c->inlen, sizeof c->in - c->inlen);
    if (n <= 0) {
        if (n < 0 && errno == EAGAIN)
            return;
        drop(c);
        return;
    }
    c->inlen += (size_t)n;
    answer(c);
    finish(c);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(tcpfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        c->fd = fd;
        queue_out(c, BANNER, sizeof BANNER - 1);
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        finish(c);
    }
}

static void udp_all(void)
{
    char data[MAX_LENGTH + 1], reply[MAX_LENGTH + 16];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(udpfd, data, sizeof data, 0, (struct sockaddr *)&from, &len);
        if (n < 0)
            return;
        if (n > MAX_LENGTH || ntohs(from.sin_port) < 1024)
            continue;
        int r = snprintf(reply, sizeof reply, "Hello, %.*s!", (int)n, data);
        sendto(udpfd, reply, (size_t)r, 0, (struct sockaddr *)&from, len);
    }
}

int main(int argc, char **argv)
{
    int port = 9999, udpport = 9999;
    const char *host = "127.0.0.1";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host"))
            host = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--udp-port"))
            udpport = atoi(argv[i + 1]);
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    tcpfd = listen_on(SOCK_STREAM, host, port);
    udpfd = listen_on(SOCK_DGRAM, host, udpport);
    fflush(stdout);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tcpfd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, tcpfd, &ev);
    ev.data.ptr = &udpfd;
    epoll_ctl(epfd, EPOLL_CTL_ADD, udpfd, &ev);
    struct epoll_event events[EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, EVENTS, -1);
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            if (ptr == &tcpfd)
                accept_all();
            else if (ptr == &udpfd)
                udp_all();
            else if (events[i].events & EPOLLOUT)
                finish(ptr);
            else
                readable(ptr);
        }
    }
}
