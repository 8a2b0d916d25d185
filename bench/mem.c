/*
 * mem.c - what an idle green thread costs in memory, and whether a million
 * of them fit in one process.
 *
 *   mem.idle.green  KiB of resident memory per green thread, with 100,000
 *                   green threads blocked in weft_chan_recv on one channel
 *                   (RSS from /proc/self/statm before and after, divided)
 *   alive.1m.green  1 if 1,000,000 guarded green threads were alive at
 *                   once, else 0; each blocks on one channel until all
 *                   exist, then the channel is closed and all are joined.
 *                   Also: how long the spawns took and the RSS at the top.
 *
 * Both run on the default vm.max_map_count: a runtime that spends a kernel
 * mapping per guard page stops near 32k threads, and the row says so.
 * Each run is a fresh process.  Quick mode runs alive.1m with 100,000
 * threads (the row's note says so) and mem.idle with 10,000.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gbench.h"

#define ALIVE_FULL 1000000L

struct crowd {
  weft_chan *ch;
  weft_gthread *t;
  long n;
  long spawned;
  int err;
};

static void *waiter(void *p) {
  weft_chan *ch = p;
  int v;

  weft_chan_recv(ch, &v); /* returns -EPIPE when the channel is closed */
  return NULL;
}

/* Spawning from a green thread runs each new thread at once, until it
 * blocks in recv: the crowd never sits in a run queue. */
static void *spawner(void *p) {
  struct crowd *c = p;

  for (long i = 0; i < c->n; i++) {
    int rc = weft_spawn(&c->t[i], NULL, waiter, c->ch);

    if (rc < 0) {
      c->err = rc;
      fprintf(stderr, "bench: spawn of green thread %ld of %ld failed: %s\n",
              i + 1, c->n, weft_strerror(rc));
      break;
    }
    c->spawned++;
  }
  return NULL;
}

static void *nothing(void *p) { return p; }

static void settle(void) {
  struct timespec ts = {0, 100 * 1000000};

  nanosleep(&ts, NULL);
}

static struct crowd *crowd_new(long n) {
  struct crowd *c = calloc(1, sizeof(*c));

  if (!c)
    exit(1);
  c->n = n;
  c->t = calloc((size_t)n, sizeof(*c->t));
  if (!c->t)
    exit(1);
  /* Touch the handle array now, so that it is not counted as the
   * threads' memory. */
  memset(c->t, 0xff, (size_t)n * sizeof(*c->t));
  memset(c->t, 0, (size_t)n * sizeof(*c->t));
  gb_check(weft_chan_open(&c->ch, sizeof(int), 0), "weft_chan_open");
  return c;
}

/* Closes the channel, which wakes every waiter with -EPIPE, and joins
 * them all from a green thread. */
static void *releaser(void *p) {
  struct crowd *c = p;

  gb_check(weft_chan_close(c->ch), "weft_chan_close");
  for (long i = 0; i < c->spawned; i++)
    gb_join(c->t[i]);
  return NULL;
}

static void crowd_release(struct crowd *c) {
  gb_join(gb_spawn(releaser, c));
  gb_check(weft_chan_free(c->ch), "weft_chan_free");
}

/* Child: arg N.  Writes KiB per idle thread. */
static int child_idle(const struct bench_opts *o) {
  long n = atol(o->child_argv[0]), rss0, rss1;
  struct crowd *c;

  gb_init(0);
  c = crowd_new(n);
  /* Let the runtime reach its resting size first: spawn and join one. */
  gb_join(gb_spawn(nothing, NULL));
  settle();
  rss0 = bench_rss_kib();
  gb_join(gb_spawn(spawner, c));
  settle();
  rss1 = bench_rss_kib();
  if (c->spawned != n)
    return 1;
  bench_put(o, (double)(rss1 - rss0) / (double)n);
  crowd_release(c);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

/* Child: arg N.  Writes alive (0/1), threads spawned, ms, RSS MiB, join
 * ms.  A failed spawn is a result (0), not a crash. */
static int child_alive(const struct bench_opts *o) {
  long n = atol(o->child_argv[0]);
  struct crowd *c;
  int64_t t0, t1, t2;
  long rss;

  gb_init(0);
  c = crowd_new(n);
  t0 = bench_now();
  gb_join(gb_spawn(spawner, c));
  t1 = bench_now();
  rss = bench_rss_kib();
  crowd_release(c);
  t2 = bench_now();
  bench_put(o, c->spawned == n ? 1 : 0);
  bench_put(o, (double)c->spawned);
  bench_put(o, (double)(t1 - t0) / 1e6);
  bench_put(o, (double)rss / 1024.0);
  bench_put(o, (double)(t2 - t1) / 1e6);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double kib[BENCH_MAX_REPS], out[5];
  long n_idle, n_alive;
  int nk = 0, rc = 0, reps_idle;
  char nstr[32], note[160];

  bench_init(&o, argc, argv, "green thread memory", 600);
  if (o.child) {
    if (strcmp(o.child, "idle") == 0)
      return child_idle(&o);
    return child_alive(&o);
  }
  n_idle = o.quick ? 10000 : 100000;
  n_alive = o.quick ? ALIVE_FULL / 10 : ALIVE_FULL;

  /* A memory figure barely varies between runs, and each run maps and
   * touches n_idle stacks: three runs are enough. */
  reps_idle = o.reps < 3 ? o.reps : 3;
  snprintf(nstr, sizeof(nstr), "%ld", n_idle);
  for (int r = 0; r < reps_idle; r++)
    if (bench_child(&o, "idle", out, 1, nstr, NULL) == 1)
      kib[nk++] = out[0];
  bench_table(&o, "Green thread memory");
  snprintf(note, sizeof(note), "%ld threads blocked in recv", n_idle);
  bench_row(&o, "mem.idle.green", kib, nk, "KiB", note);
  rc |= nk != reps_idle;

  /* One run: it is a yes or no, and the longest figure of the bench. */
  snprintf(nstr, sizeof(nstr), "%ld", n_alive);
  if (bench_child(&o, "alive", out, 5, nstr, NULL) == 5) {
    snprintf(note, sizeof(note),
             "%s%.0f of %ld alive; spawned in %.0f ms, RSS %.0f MiB, "
             "joined in %.0f ms",
             n_alive != ALIVE_FULL ? "quick: " : "", out[1], n_alive, out[2],
             out[3], out[4]);
    bench_row(&o, "alive.1m.green", out, 1, "bool", note);
    bench_row(&o, "alive.1m.green.ms", out + 2, 1, "ms", "time to spawn them");
    bench_row(&o, "alive.1m.green.rss", out + 3, 1, "MiB", "RSS when all alive");
  } else {
    out[0] = 0;
    bench_row(&o, "alive.1m.green", out, 1, "bool", "the run failed");
    rc = 1;
  }
  return rc;
}
