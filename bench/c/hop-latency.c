/*
 * hop-latency: what one hop through another thread adds to a small message's round trip, in C —
 * the floor under the relay thread's added latency (bench/relay.ts prints both).
 * Usage: hop-latency COUNT
 * The main thread writes a 56-byte message (a RET_SUBMIT's header and 8 bytes) into a socket
 * and waits until it can read it back. Bare: straight through one socketpair. Hop: a second
 * thread, blocked in poll() as the relay thread is, reads it from one socketpair and writes it
 * into another. Prints one JSON line: p50 and p99 of each in microseconds.
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { SIZE = 56 };

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

struct hop { int from, to; };

static void *hop(void *arg) {
  struct hop *h = arg;
  char buf[4096];
  for (;;) {
    struct pollfd p = { .fd = h->from, .events = POLLIN };
    if (poll(&p, 1, -1) < 0) continue;
    ssize_t n = read(h->from, buf, sizeof buf);
    if (n <= 0) return NULL;
    if (write(h->to, buf, (size_t)n) != n) return NULL;
  }
}

/* round trips of COUNT messages: written to `in`, read back from `out` */
static void measure(int in, int out, int count, double *rtt) {
  char msg[SIZE] = { 0 }, back[SIZE];
  for (int i = 0; i < count; i++) {
    double t0 = now_us();
    if (write(in, msg, SIZE) != SIZE) exit(1);
    for (ssize_t got = 0; got < SIZE;) {
      ssize_t n = read(out, back + got, (size_t)(SIZE - got));
      if (n <= 0) exit(1);
      got += n;
    }
    rtt[i] = now_us() - t0;
  }
  qsort(rtt, (size_t)count, sizeof *rtt, cmp);
}

int main(int argc, char **argv) {
  int count = argc > 1 ? atoi(argv[1]) : 3000;
  if (count < 100) count = 100;
  double *bare = malloc(sizeof(double) * (size_t)count), *hopped = malloc(sizeof(double) * (size_t)count);
  int a[2], b[2];
  if (bare == NULL || hopped == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, b) < 0) return 1;
  measure(a[0], a[1], count, bare);
  struct hop h = { .from = a[1], .to = b[0] };
  pthread_t t;
  if (pthread_create(&t, NULL, hop, &h) != 0) return 1;
  measure(a[0], b[1], 200, hopped); /* warm-up */
  measure(a[0], b[1], count, hopped);
  int p50 = count / 2, p99 = count * 99 / 100;
  printf("{\"count\":%d,\"bareP50us\":%.1f,\"bareP99us\":%.1f,\"hopP50us\":%.1f,\"hopP99us\":%.1f,\"addedP50us\":%.1f,\"addedP99us\":%.1f}\n", count, bare[p50], bare[p99], hopped[p50], hopped[p99], hopped[p50] - bare[p50], hopped[p99] - bare[p99]);
  return 0;
}
