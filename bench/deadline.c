/*
 * deadline.c - what a deadline adds to a wait that something else ends,
 * with many threads waiting: a server's connection threads, each waiting
 * for its next request until an idle deadline, woken by the request.
 *
 * One worker, THREADS green threads each receiving on a channel of its own
 * in a loop; a driver thread sends to each in turn and waits for its
 * answer on a shared channel.  Every round trip is two waits ended by a
 * message.  The waiters wait without a deadline, then (same process, same
 * threads) until a deadline 10 s away, which never comes: what the second
 * adds is the deadline's cost alone: the clock read of weft_deadline(),
 * and arming the timer and letting it go again while the other THREADS - 1
 * timers are in the heap.
 *
 *   deadline.wake.none  ns per round trip, waits without a deadline
 *   deadline.wake       ns per round trip, the waiters' waits with one
 *   deadline.cost       deadline.wake - deadline.wake.none, in each sample
 */
#include <stdio.h>
#include <stdlib.h>

#include "gbench.h"

#define THREADS 1000
#define DEADLINE_NS (10 * 1000000000LL)

struct waiter_arg {
  weft_chan *in;
  weft_chan *out;
  bool timed;
};

static void *waiter(void *p) {
  struct waiter_arg *a = p;
  for (;;) {
    int v;
    int rc = a->timed ? weft_chan_recv_until(a->in, &v,
                                             weft_deadline(DEADLINE_NS))
                      : weft_chan_recv(a->in, &v);
    gb_check(rc, "waiter: recv");
    if (v < 0)
      return NULL;
    gb_check(weft_chan_send(a->out, &v), "waiter: send");
  }
}

struct drive_arg {
  long rounds;
  bool timed;
  int64_t ns;
};

/* Starts the waiters, makes rounds passes over them (after a warm-up
 * pass), stops them; ns is the passes' time. */
static void *driver(void *p) {
  struct drive_arg *d = p;
  static struct waiter_arg wa[THREADS];
  static weft_gthread t[THREADS];
  weft_chan *out;
  gb_check(weft_chan_open(&out, sizeof(int), 0), "weft_chan_open");
  for (int i = 0; i < THREADS; i++) {
    gb_check(weft_chan_open(&wa[i].in, sizeof(int), 0), "weft_chan_open");
    wa[i].out = out;
    wa[i].timed = d->timed;
    t[i] = gb_spawn(waiter, &wa[i]);
  }
  int v = 0;
  int64_t t0 = 0;
  for (long r = -1; r < d->rounds; r++) {
    if (r == 0)
      t0 = bench_now();
    for (int i = 0; i < THREADS; i++) {
      gb_check(weft_chan_send(wa[i].in, &v), "driver: send");
      gb_check(weft_chan_recv(out, &v), "driver: recv");
    }
  }
  d->ns = bench_now() - t0;
  v = -1;
  for (int i = 0; i < THREADS; i++) {
    gb_check(weft_chan_send(wa[i].in, &v), "driver: stop");
    gb_join(t[i]);
    gb_check(weft_chan_free(wa[i].in), "weft_chan_free");
  }
  gb_check(weft_chan_free(out), "weft_chan_free");
  return NULL;
}

static double pass(long rounds, bool timed) {
  struct drive_arg d = {.rounds = rounds, .timed = timed};
  gb_join(gb_spawn(driver, &d));
  return (double)d.ns / ((double)rounds * THREADS);
}

/* Child: one sample of each kind, in turns. */
static int child(const struct bench_opts *o) {
  long rounds = atol(o->child_argv[0]);
  gb_init(1);
  double none = pass(rounds, false);
  double timed = pass(rounds, true);
  bench_put(o, none);
  bench_put(o, timed);
  bench_put(o, timed - none);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double v[3][BENCH_MAX_REPS];
  struct bench_tally t = {.name = "deadline.wake"};
  char nstr[32], note[128];
  int got = 0;

  bench_init(&o, argc, argv,
             "waits ended by a message, with and without a deadline", 120);
  if (o.child)
    return child(&o);
  long rounds = o.quick ? 50 : 300;
  snprintf(nstr, sizeof(nstr), "%ld", rounds);
  for (int r = 0; r < o.reps; r++) {
    double out[3];
    if (bench_child(&o, &t, "deadline", out, 3, nstr, NULL) == 3) {
      for (int k = 0; k < 3; k++)
        v[k][got] = out[k];
      got++;
    }
  }
  bench_table(&o, "A wait ended by a message, with and without a deadline");
  snprintf(note, sizeof(note),
           "%d threads waiting, 1 worker, %ld passes over them", THREADS,
           rounds);
  bench_row(&o, "deadline.wake.none", &t, v[0], got, "ns", note);
  bench_row(&o, "deadline.wake", &t, v[1], got, "ns",
            "the same, each wait until 10 s ahead");
  bench_row(&o, "deadline.cost", &t, v[2], got, "ns",
            "the difference in each sample: the deadline's cost");
  return bench_status();
}
