/*
 * What waking a thread on the other core costs the waker: a process pinned
 * to core 0 writes a byte to a pipe that a process pinned to core 1 reads,
 * 20,000 times with a 20 us pause between writes, first with the reader
 * asleep in read() (each write wakes it), then with the reader spinning on
 * a nonblocking read (no write wakes anything).  The difference is the
 * wakeup, which on loopback the sender of every packet pays for the
 * thread that receives it (see loadgen.c's header).  Bounded: about 5 s.
 *
 *     cc -O2 -o /tmp/wakeup bench/wakeup.c && /tmp/wakeup
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WRITES 20000

static long long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void pin(int core)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(core, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* Microseconds a write takes, the reader asleep (spinning = 0) or not. */
static double write_cost(int spinning)
{
    int p[2];
    char c = 'x';
    if (pipe(p) < 0)
        return -1;
    pid_t reader = fork();
    if (reader == 0) {
        pin(1);
        if (spinning)
            fcntl(p[0], F_SETFL, O_NONBLOCK);
        long long until = now_ns() + 5000000000LL;
        while (now_ns() < until)
            if (read(p[0], &c, 1) == 0)
                break;
        _exit(0);
    }
    pin(0);
    usleep(100000);
    long long total = 0;
    for (int i = 0; i < WRITES; i++) {
        usleep(20);
        long long start = now_ns();
        if (write(p[1], &c, 1) != 1)
            break;
        total += now_ns() - start;
    }
    kill(reader, SIGKILL);
    waitpid(reader, NULL, 0);
    close(p[0]);
    close(p[1]);
    return (double)total / WRITES / 1000.0;
}

int main(void)
{
    double asleep = write_cost(0), awake = write_cost(1);
    printf("write() waking a reader asleep on the other core: %.2f us\n", asleep);
    printf("write() to a reader spinning on the other core:   %.2f us\n", awake);
    return 0;
}
