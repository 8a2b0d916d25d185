/*
 * yield.c - the cost of a scheduler switch between green threads.
 *
 * One worker, two green threads that call weft_yield() in a loop: each
 * yield hands the worker to the other thread, so every yield is one switch
 * through the scheduler (run queue put, run queue take, context switch).
 * Compare with switch.asm, the bare register swap underneath.
 *
 *   yield.green  ns per yield (one green thread to the other)
 *   mutex.turns.green
 *                ns per lock of one weft_mutex that the same two threads
 *                take in turns: each locks it, yields while it holds it,
 *                and unlocks it, so that every lock finds the mutex held by
 *                the other thread, parked on the same worker (the unlock
 *                hands it over, weft.h): a lock, a park, a hand-over and a
 *                switch, with no spin (a spin there waits for a thread that
 *                cannot run until the spinner stops)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

struct yield_arg {
  long n;
  weft_mutex *mu; /* taking turns with it, or NULL: plain yields */
};

static void *yielder(void *p) {
  const struct yield_arg *a = p;

  if (a->mu) {
    for (long i = 0; i < a->n; i++) {
      gb_check(weft_mutex_lock(a->mu), "weft_mutex_lock");
      weft_yield();
      gb_check(weft_mutex_unlock(a->mu), "weft_mutex_unlock");
    }
    return NULL;
  }
  for (long i = 0; i < a->n; i++)
    weft_yield();
  return NULL;
}

/* Child: args N yield|mutex, one sample.  Writes ns per yield (per lock)
 * and the runtime's own count of switches per yield (per lock). */
static int child(const struct bench_opts *o) {
  weft_mutex mu = WEFT_MUTEX_INIT;
  bool turns = o->child_argv[1] && strcmp(o->child_argv[1], "mutex") == 0;
  struct yield_arg a = {.n = atol(o->child_argv[0]), .mu = turns ? &mu : NULL};
  weft_gthread t1, t2;
  uint64_t sw0, sw1;
  int64_t t0, t_end;

  gb_init(1);
  /* Warm up: the first spawns map stacks; later ones come from the cache. */
  {
    struct yield_arg w = {.n = 10000, .mu = a.mu};

    t1 = gb_spawn(yielder, &w);
    t2 = gb_spawn(yielder, &w);
    gb_join(t1);
    gb_join(t2);
  }
  sw0 = gb_stat(switches);
  t0 = bench_now();
  t1 = gb_spawn(yielder, &a);
  t2 = gb_spawn(yielder, &a);
  gb_join(t1);
  gb_join(t2);
  t_end = bench_now();
  sw1 = gb_stat(switches);
  bench_put(o, (double)(t_end - t0) / (2.0 * (double)a.n));
  bench_put(o, (double)(sw1 - sw0) / (2.0 * (double)a.n));
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double ns[BENCH_MAX_REPS], per[BENCH_MAX_REPS];
  double mns[BENCH_MAX_REPS], mper[BENCH_MAX_REPS];
  struct bench_tally t = {.name = "yield.green"};
  struct bench_tally mt = {.name = "mutex.turns.green"};
  char nstr[32], mstr[32], note[128];
  long n, mn;
  int got = 0, mgot = 0;

  bench_init(&o, argc, argv,
             "weft_yield() between two green threads, and a mutex they "
             "take in turns",
             120);
  if (o.child)
    return child(&o);
  n = o.quick ? 1000000 : 5000000;
  mn = n / 5;
  snprintf(nstr, sizeof(nstr), "%ld", n);
  snprintf(mstr, sizeof(mstr), "%ld", mn);
  /* The two take turns within each repetition. */
  for (int r = 0; r < o.reps; r++) {
    double out[2];

    if (bench_child(&o, &t, "yield", out, 2, nstr, "yield") == 2) {
      ns[got] = out[0];
      per[got++] = out[1];
    }
    if (bench_child(&o, &mt, "yield", out, 2, mstr, "mutex") == 2) {
      mns[mgot] = out[0];
      mper[mgot++] = out[1];
    }
  }
  bench_table(&o, "Green thread yield, one worker, two threads");
  snprintf(note, sizeof(note), "2 x %ld yields; runtime counts %.2f "
           "switches per yield", n, bench_median(per, got));
  bench_row(&o, "yield.green", &t, ns, got, "ns", note);
  snprintf(note, sizeof(note),
           "2 x %ld locks, each yielding while it holds the mutex; %.2f "
           "switches per lock", mn, bench_median(mper, mgot));
  bench_row(&o, "mutex.turns.green", &mt, mns, mgot, "ns", note);
  return bench_status();
}
