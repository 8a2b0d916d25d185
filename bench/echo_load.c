/*
 * echo_load.c - a load client for echo servers, built on weft: one green
 * thread per connection.
 *
 *   bench/echo_load --port P [--host ADDR] [-c CONNS] [-d SECONDS]
 *                   [-s BYTES] [--workers N] [--tsv FILE --label NAME]
 *
 * Each connection sends a message of -s bytes (default 64), waits for the
 * whole echo, checks it, records the round trip, and sends the next one.
 * Measuring starts once every connection is open and lasts -d seconds
 * (default 3); round trips that end inside that window count.  Latencies
 * go to a log-linear histogram (32 steps per power of two, so within 3%),
 * not to a list of samples.
 *
 * Prints one line: connections, requests per second, p50 and p99 of the
 * round trip.  With --tsv FILE and --label NAME it also appends
 *   echo.rps.NAME   req/s
 *   echo.p50.NAME   ms
 *   echo.p99.NAME   ms
 * Exit status: 0, 1 if a connection failed, an echo was wrong or nothing
 * was measured, 2 for bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft.h>

/* Histogram: values below 32 ns have a bucket each; above, 32 buckets per
 * power of two.  Exponent 5 to 44 (up to about 4.9 hours). */
#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define NBUCKETS ((44 - SUB_BITS + 2) * SUB)
#define MAX_SLOTS 64

struct hist {
  uint64_t b[NBUCKETS];
  uint64_t count;
} __attribute__((aligned(64)));

/* One histogram per worker, to keep the workers off each other's cache
 * lines (weft_worker_index is only a hint, so the adds stay atomic). */
static struct hist *hists;
static int nslots;

static struct sockaddr_in addr;
static size_t msg_size = 64;
static int64_t io_timeout = 5000000000LL; /* one read or write, 5 s */

/* Set by main, read by every connection thread. */
static _Atomic int measuring;
static _Atomic int stopping;
static int opened;  /* atomically */
static int failed;  /* atomically: connections that failed */
static int corrupt; /* atomically: echoes that differed */

static int bucket_of(uint64_t v) {
  if (v < SUB)
    return (int)v;
  int e = 63 - __builtin_clzll(v); /* >= SUB_BITS */
  int sub = (int)((v >> (e - SUB_BITS)) & (SUB - 1));
  int i = (e - SUB_BITS + 1) * SUB + sub;
  return i < NBUCKETS ? i : NBUCKETS - 1;
}

/* The middle of bucket i, in ns. */
static double bucket_mid(int i) {
  if (i < SUB)
    return i;
  int e = i / SUB - 1 + SUB_BITS;
  int sub = i % SUB;
  double lo = (double)((uint64_t)(SUB + sub) << (e - SUB_BITS));
  double width = (double)(1ULL << (e - SUB_BITS));
  return lo + width / 2;
}

static void record(uint64_t ns) {
  int w = weft_worker_index();
  struct hist *h = &hists[w >= 0 && w < nslots ? w : 0];
  __atomic_fetch_add(&h->b[bucket_of(ns)], 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
}

static void *conn_main(void *arg) {
  unsigned id = (unsigned)(uintptr_t)arg;
  char *out = malloc(msg_size), *in = malloc(msg_size);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (!out || !in || fd < 0)
    goto failed;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = weft_connect(fd, (struct sockaddr *)&addr, sizeof addr,
                       weft_deadline(io_timeout));
  if (r < 0) {
    if (__atomic_fetch_add(&failed, 1, __ATOMIC_RELAXED) == 0)
      fprintf(stderr, "echo_load: connect: %s\n", weft_strerror(r));
    goto lost;
  }
  __atomic_fetch_add(&opened, 1, __ATOMIC_RELAXED);

  for (uint64_t round = 0; !stopping; round++) {
    /* A message that differs from round to round and connection to
     * connection, so that a stale or misrouted echo is caught. */
    memset(out, 'a' + (int)((round + id) % 26), msg_size);
    memcpy(out, &round, msg_size < sizeof round ? msg_size : sizeof round);
    int64_t t0 = weft_now();
    ssize_t w = weft_write(fd, out, msg_size, weft_deadline(io_timeout));
    if (w != (ssize_t)msg_size)
      goto broke;
    size_t got = 0;
    while (got < msg_size) {
      ssize_t n =
          weft_read(fd, in + got, msg_size - got, weft_deadline(io_timeout));
      if (n <= 0)
        goto broke;
      got += (size_t)n;
    }
    int64_t t1 = weft_now();
    if (memcmp(in, out, msg_size) != 0) {
      if (__atomic_fetch_add(&corrupt, 1, __ATOMIC_RELAXED) == 0)
        fprintf(stderr, "echo_load: an echo differs from its message\n");
      break;
    }
    if (measuring)
      record((uint64_t)(t1 - t0));
  }
  weft_close(fd);
  free(out);
  free(in);
  return NULL;

broke:
  if (!stopping && __atomic_fetch_add(&failed, 1, __ATOMIC_RELAXED) == 0)
    fprintf(stderr, "echo_load: a connection broke mid-echo\n");
lost: /* the fd was taken over by weft */
  weft_close(fd);
  free(out);
  free(in);
  return NULL;

failed:
  if (fd >= 0)
    close(fd);
  free(out);
  free(in);
  return NULL;
}

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s --port P [--host ADDR] [-c CONNS] [-d SECONDS] "
          "[-s BYTES] [--workers N] [--tsv FILE --label NAME]\n",
          prog);
  exit(2);
}

static double percentile(const uint64_t *sum, uint64_t total, double p) {
  uint64_t want = (uint64_t)(p * (double)total);
  if (want >= total)
    want = total - 1;
  uint64_t acc = 0;
  for (int i = 0; i < NBUCKETS; i++) {
    acc += sum[i];
    if (acc > want)
      return bucket_mid(i);
  }
  return bucket_mid(NBUCKETS - 1);
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *tsv = NULL, *label = NULL;
  int port = -1, conns = 100, workers = 2;
  double secs = 3;

  for (int i = 1; i < argc;) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      usage(argv[0]);
    if (strcmp(a, "--host") == 0)
      host = v;
    else if (strcmp(a, "--port") == 0 || strcmp(a, "-p") == 0)
      port = atoi(v);
    else if (strcmp(a, "-c") == 0)
      conns = atoi(v);
    else if (strcmp(a, "-d") == 0)
      secs = atof(v);
    else if (strcmp(a, "-s") == 0)
      msg_size = (size_t)atol(v);
    else if (strcmp(a, "--workers") == 0)
      workers = atoi(v);
    else if (strcmp(a, "--tsv") == 0)
      tsv = v;
    else if (strcmp(a, "--label") == 0)
      label = v;
    else
      usage(argv[0]);
    i += 2;
  }
  if (port <= 0 || port > 65535 || conns <= 0 || secs <= 0 || msg_size == 0 ||
      msg_size > (1 << 24) || workers <= 0 || (tsv && !label))
    usage(argv[0]);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "echo_load: bad address %s\n", host);
    return 2;
  }

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)conns + 64) {
    rl.rlim_cur =
        rl.rlim_max < (rlim_t)conns + 64 ? rl.rlim_max : (rlim_t)conns + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  weft_config cfg = {.workers = workers, .stack_size = 32 * 1024};
  int r = weft_init(&cfg);
  if (r < 0) {
    fprintf(stderr, "echo_load: weft_init: %s\n", weft_strerror(r));
    return 1;
  }
  nslots = weft_workers() < MAX_SLOTS ? weft_workers() : MAX_SLOTS;
  hists = aligned_alloc(64, sizeof *hists * (size_t)nslots);
  weft_gthread *ts = calloc((size_t)conns, sizeof *ts);
  if (!hists || !ts) {
    fprintf(stderr, "echo_load: out of memory\n");
    return 1;
  }
  memset(hists, 0, sizeof *hists * (size_t)nslots);

  int started = 0;
  for (int i = 0; i < conns; i++) {
    r = weft_spawn(&ts[i], NULL, conn_main, (void *)(uintptr_t)i);
    if (r < 0) {
      fprintf(stderr, "echo_load: weft_spawn: %s\n", weft_strerror(r));
      break;
    }
    started++;
  }

  /* Wait until every connection is open (or has failed), 10 s at most. */
  int64_t give_up = weft_deadline(10000000000LL);
  while (__atomic_load_n(&opened, __ATOMIC_RELAXED) +
                 __atomic_load_n(&failed, __ATOMIC_RELAXED) <
             started &&
         weft_now() < give_up)
    weft_sleep(1000000);

  int64_t t0 = weft_now();
  measuring = 1;
  weft_sleep((int64_t)(secs * 1e9));
  measuring = 0;
  int64_t t1 = weft_now();
  stopping = 1;
  for (int i = 0; i < started; i++)
    weft_join(ts[i], NULL);
  weft_shutdown();

  uint64_t *sum = calloc(NBUCKETS, sizeof *sum);
  uint64_t total = 0;
  for (int s = 0; s < nslots; s++) {
    for (int i = 0; i < NBUCKETS; i++)
      sum[i] += hists[s].b[i];
    total += hists[s].count;
  }
  double el = (double)(t1 - t0) / 1e9;
  double rps = (double)total / el;
  double p50 = total ? percentile(sum, total, 0.50) / 1e6 : 0;
  double p99 = total ? percentile(sum, total, 0.99) / 1e6 : 0;
  printf("echo_load: %d connections (%d failed), %zu-byte messages, %.2f s: "
         "%.0f req/s, p50 %.3f ms, p99 %.3f ms\n",
         opened, failed, msg_size, el, rps, p50, p99);
  fflush(stdout);

  int status = (failed || corrupt || !total) ? 1 : 0;
  if (tsv && total && !corrupt) {
    FILE *f = fopen(tsv, "a");
    if (!f) {
      perror(tsv);
      return 1;
    }
    fprintf(f, "echo.rps.%s\t%.0f\treq/s\n", label, rps);
    fprintf(f, "echo.p50.%s\t%.4f\tms\n", label, p50);
    fprintf(f, "echo.p99.%s\t%.4f\tms\n", label, p99);
    fclose(f);
  }
  free(sum);
  free(ts);
  free(hists);
  return status;
}
