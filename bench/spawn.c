/*
 * spawn.c - what a green thread costs to create.
 *
 *   spawn_join.green    ns for one spawn + join from inside a green thread,
 *                       after a warm-up, so the stack comes from the
 *                       worker's cache (all workers running)
 *   spawn_join.green.foreign  the same from main, a thread that is not a
 *                       worker (as the README's first example does): the
 *                       mean of 10,000 spawn + join pairs, after a
 *                       warm-up; the thread is queued for the workers and
 *                       main waits for it, so this is a handoff between
 *                       kernel threads each way
 *   spawn.1m.green      ms to spawn 1,000,000 detached green threads that
 *                       each send one message to one collector green thread
 *                       over a buffered channel (capacity 1024), one spawner
 *                       per worker; a child that has sent exits and gives
 *                       its stack back, so stacks are reused
 *   spawn.1m.green.rss  MiB, peak resident memory of that process (each
 *                       repetition is a fresh process)
 *
 * In quick mode the 1M run spawns 100,000 threads; its time is then
 * scaled up by 10 to stay comparable, as the note on the row says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

#define FULL_COUNT 1000000L
#define CHAN_CAP 1024

/* ---- spawn + join --------------------------------------------------- */

static void *noop(void *arg) { return arg; }

struct sj {
  long n;
  int64_t t0, t1;
  uint64_t maps; /* stacks newly mapped during the timed loop */
};

static void *spawn_join_driver(void *p) {
  struct sj *s = p;
  weft_gthread t;

  for (long i = 0; i < 20000; i++) { /* warm the stack cache */
    gb_check(weft_spawn(&t, NULL, noop, NULL), "weft_spawn");
    gb_check(weft_join(t, NULL), "weft_join");
  }
  s->maps = gb_stat(stack_maps);
  s->t0 = bench_now();
  for (long i = 0; i < s->n; i++) {
    weft_spawn(&t, NULL, noop, NULL);
    weft_join(t, NULL);
  }
  s->t1 = bench_now();
  s->maps = gb_stat(stack_maps) - s->maps;
  return NULL;
}

static int child_spawn_join(const struct bench_opts *o) {
  struct sj s = {.n = atol(o->child_argv[0])};

  gb_init(0);
  gb_join(gb_spawn(spawn_join_driver, &s));
  bench_put(o, (double)(s.t1 - s.t0) / (double)s.n);
  bench_put(o, (double)s.maps);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

static int child_spawn_join_foreign(const struct bench_opts *o) {
  long n = atol(o->child_argv[0]);
  weft_gthread t;

  gb_init(0);
  for (long i = 0; i < 2000; i++) { /* warm the stack cache */
    gb_check(weft_spawn(&t, NULL, noop, NULL), "weft_spawn");
    gb_check(weft_join(t, NULL), "weft_join");
  }
  int64_t t0 = bench_now();
  for (long i = 0; i < n; i++) {
    weft_spawn(&t, NULL, noop, NULL);
    weft_join(t, NULL);
  }
  int64_t t1 = bench_now();
  bench_put(o, (double)(t1 - t0) / (double)n);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

/* ---- 1M spawns into one collector ------------------------------------ */

static weft_chan *collect_ch;

static void *sender(void *arg) {
  int one = 1;

  (void)arg;
  weft_chan_send(collect_ch, &one);
  return NULL;
}

struct spawner {
  long n;
  long failed;
};

static void *spawner(void *p) {
  struct spawner *s = p;
  weft_gthread_attr attr = {.detached = true};

  for (long i = 0; i < s->n; i++) {
    int rc = weft_spawn(NULL, &attr, sender, NULL);

    if (rc < 0) {
      fprintf(stderr, "bench: spawn %ld failed: %s\n", i, weft_strerror(rc));
      s->failed = s->n - i;
      return NULL;
    }
  }
  return NULL;
}

static void *collector(void *p) {
  long n = *(long *)p, got = 0;
  int v;

  while (got < n && weft_chan_recv(collect_ch, &v) == 0)
    got++;
  *(long *)p = got;
  return NULL;
}

/* Child: arg N.  Writes ms, peak RSS in MiB. */
static int child_spawn_many(const struct bench_opts *o) {
  long n = atol(o->child_argv[0]), left;
  int workers;
  struct spawner *sp;
  weft_gthread *st, coll;
  int64_t t0, t1;

  gb_init(0);
  workers = weft_workers();
  sp = calloc((size_t)workers, sizeof(*sp));
  st = calloc((size_t)workers, sizeof(*st));
  if (!sp || !st)
    return 1;
  gb_check(weft_chan_open(&collect_ch, sizeof(int), CHAN_CAP), "chan_open");
  left = n;
  t0 = bench_now();
  coll = gb_spawn(collector, &left);
  for (int w = 0; w < workers; w++) {
    sp[w].n = n / workers + (w < n % workers);
    st[w] = gb_spawn(spawner, &sp[w]);
  }
  gb_join(coll);
  t1 = bench_now();
  for (int w = 0; w < workers; w++) {
    gb_join(st[w]);
    if (sp[w].failed)
      return 1;
  }
  if (left != n) {
    fprintf(stderr, "bench: collector got %ld of %ld\n", left, n);
    return 1;
  }
  bench_put(o, (double)(t1 - t0) / 1e6);
  bench_put(o, (double)bench_peak_rss_kib() / 1024.0);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double sj[BENCH_MAX_REPS], maps[BENCH_MAX_REPS];
  double ms[BENCH_MAX_REPS], rss[BENCH_MAX_REPS], fsj[BENCH_MAX_REPS];
  struct bench_tally tsj = {.name = "spawn_join.green"},
                     tf = {.name = "spawn_join.green.foreign"},
                     tm = {.name = "spawn.1m.green"};
  int nsj = 0, nm = 0, nf = 0;
  long n_sj, n_many;
  double scale;
  char sj_str[32], many_str[32], note[128];

  bench_init(&o, argc, argv, "green thread creation", 300);
  if (o.child) {
    if (strcmp(o.child, "spawn_join") == 0)
      return child_spawn_join(&o);
    if (strcmp(o.child, "spawn_join_foreign") == 0)
      return child_spawn_join_foreign(&o);
    return child_spawn_many(&o);
  }
  n_sj = o.quick ? 300000 : 2000000;
  n_many = o.quick ? FULL_COUNT / 10 : FULL_COUNT;
  scale = (double)FULL_COUNT / (double)n_many;
  snprintf(sj_str, sizeof(sj_str), "%ld", n_sj);
  snprintf(many_str, sizeof(many_str), "%ld", n_many);
  for (int r = 0; r < o.reps; r++) {
    double out[2];

    if (bench_child(&o, &tsj, "spawn_join", out, 2, sj_str, NULL) == 2) {
      sj[nsj] = out[0];
      maps[nsj++] = out[1];
    }
    if (bench_child(&o, &tf, "spawn_join_foreign", out, 1, "10000", NULL) == 1)
      fsj[nf++] = out[0];
    if (bench_child(&o, &tm, "spawn_many", out, 2, many_str, NULL) == 2) {
      ms[nm] = out[0] * scale;
      rss[nm++] = out[1];
    }
  }
  bench_table(&o, "Green thread creation");
  snprintf(note, sizeof(note), "%ld spawn+join; %.0f stacks mapped in the "
           "timed loop", n_sj, bench_median(maps, nsj));
  bench_row(&o, "spawn_join.green", &tsj, sj, nsj, "ns", note);
  bench_row(&o, "spawn_join.green.foreign", &tf, fsj, nf, "ns",
            "10000 spawn+join from main (not a worker)");
  if (scale != 1)
    snprintf(note, sizeof(note), "quick: %ld threads, time x%.0f", n_many,
             scale);
  else
    snprintf(note, sizeof(note), "%ld threads, buffered chan(%d)", n_many,
             CHAN_CAP);
  bench_row(&o, "spawn.1m.green", &tm, ms, nm, "ms", note);
  if (scale != 1)
    snprintf(note, sizeof(note), "quick: peak RSS with %ld threads", n_many);
  else
    snprintf(note, sizeof(note), "peak RSS of that process");
  bench_row(&o, "spawn.1m.green.rss", &tm, rss, nm, "MiB", note);
  return bench_status();
}
