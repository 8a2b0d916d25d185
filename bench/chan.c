/*
 * chan.c - one message on an unbuffered channel, between green threads.
 *
 * Two green threads ping-pong an integer over two unbuffered channels
 * (ping -> pong on one, back on the other); every message is a rendezvous
 * that blocks one side and wakes the other.
 *
 *   chan.pingpong.green.local        one worker: the two threads take turns
 *                                    on it, a message is a park + a switch
 *   chan.pingpong.green.cross        two workers, the threads started on
 *                                    different ones: a message crosses
 *                                    between kernel threads (wake, maybe a
 *                                    futex, cache lines moving)
 *   chan.pingpong.green.cross.split  share of the cross messages (sampled)
 *                                    whose sender and receiver really were
 *                                    on different workers: the runtime may
 *                                    pull the two onto one worker
 *
 * Local and cross are measured alternately within one run.  The first two
 * are also written as handoff.green.local and handoff.green.cross, beside
 * the kernel-thread and process figures of handoff.c.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

#define SAMPLE_EVERY 64

struct pp {
  weft_chan *there, *back;
  long n;
  bool cross;
  _Atomic int arrived;
  volatile int ping_worker; /* written before a send, read after the recv */
  long samples, split;      /* pong's: sampled messages, of which cross */
  int start_worker[2];      /* where ping and pong were when they met */
  int64_t t0, t1;
};

/* Cross mode: each side holds its worker (spinning, not yielding) until
 * the other has started, so an idle worker has to take the second one. */
static void meet(struct pp *p, int side) {
  int64_t give_up = bench_now() + 200 * 1000000LL;

  atomic_fetch_add(&p->arrived, 1);
  while (p->cross && atomic_load(&p->arrived) < 2) {
    if (bench_now() > give_up) { /* no one took it: let it run here */
      weft_yield();
    } else {
      __builtin_ia32_pause();
    }
  }
  p->start_worker[side] = weft_worker_index();
}

static void *ping(void *arg) {
  struct pp *p = arg;
  int v = 0;

  meet(p, 0);
  for (int i = 0; i < 1000; i++) { /* warm up */
    gb_check(weft_chan_send(p->there, &v), "send");
    gb_check(weft_chan_recv(p->back, &v), "recv");
  }
  p->t0 = bench_now();
  for (long i = 0; i < p->n; i++) {
    if (p->cross && i % SAMPLE_EVERY == 0)
      p->ping_worker = weft_worker_index();
    weft_chan_send(p->there, &v);
    weft_chan_recv(p->back, &v);
  }
  p->t1 = bench_now();
  return NULL;
}

static void *pong(void *arg) {
  struct pp *p = arg;
  int v;

  meet(p, 1);
  for (int i = 0; i < 1000; i++) {
    gb_check(weft_chan_recv(p->there, &v), "recv");
    gb_check(weft_chan_send(p->back, &v), "send");
  }
  for (long i = 0; i < p->n; i++) {
    weft_chan_recv(p->there, &v);
    if (p->cross && i % SAMPLE_EVERY == 0) {
      p->samples++;
      p->split += p->ping_worker != weft_worker_index();
    }
    v++;
    weft_chan_send(p->back, &v);
  }
  return NULL;
}

/* Child: args "local|cross" N.  Writes ns per one-way message and, for
 * cross, the split in percent. */
static int child(const struct bench_opts *o) {
  struct pp p;
  weft_gthread a, b;

  memset(&p, 0, sizeof(p));
  p.cross = strcmp(o->child_argv[0], "cross") == 0;
  p.n = atol(o->child_argv[1]);
  gb_init(p.cross ? 2 : 1);
  gb_check(weft_chan_open(&p.there, sizeof(int), 0), "weft_chan_open");
  gb_check(weft_chan_open(&p.back, sizeof(int), 0), "weft_chan_open");
  a = gb_spawn(ping, &p);
  b = gb_spawn(pong, &p);
  gb_join(a);
  gb_join(b);
  bench_put(o, (double)(p.t1 - p.t0) / (2.0 * (double)p.n));
  bench_put(o, p.samples ? 100.0 * (double)p.split / (double)p.samples : 0);
  bench_put(o, p.start_worker[0] != p.start_worker[1]);
  weft_chan_free(p.there);
  weft_chan_free(p.back);
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double local[BENCH_MAX_REPS], cross[BENCH_MAX_REPS];
  double split[BENCH_MAX_REPS];
  /* The cross runs give three figures; their samples are the same. */
  struct bench_tally tl = {.name = "chan.pingpong.green.local"},
                     tc = {.name = "chan.pingpong.green.cross"};
  int nl = 0, nc = 0, apart = 0;
  char nstr[32], note[96];
  long n;

  bench_init(&o, argc, argv, "unbuffered channel ping-pong", 120);
  if (o.child)
    return child(&o);
  n = o.quick ? 300000 : 2000000;
  snprintf(nstr, sizeof(nstr), "%ld", n);
  for (int r = 0; r < o.reps; r++) {
    double out[3];

    if (bench_child(&o, &tl, "chan", out, 3, "local", nstr) == 3)
      local[nl++] = out[0];
    if (bench_child(&o, &tc, "chan", out, 3, "cross", nstr) == 3) {
      cross[nc] = out[0];
      split[nc++] = out[1];
      apart += out[2] != 0;
    }
  }
  bench_table(&o, "Unbuffered channel ping-pong, ns per one-way message");
  snprintf(note, sizeof(note), "%ld round trips, 1 worker", n);
  bench_row(&o, "chan.pingpong.green.local", &tl, local, nl, "ns", note);
  snprintf(note, sizeof(note), "%ld round trips, 2 workers; started apart "
           "in %d of %d runs", n, apart, nc);
  bench_row(&o, "chan.pingpong.green.cross", &tc, cross, nc, "ns", note);
  bench_row(&o, "chan.pingpong.green.cross.split", &tc, split, nc, "%",
            "sampled messages sent across workers");
  /* The same figures under the names the other modes use (handoff.*). */
  bench_row(&o, "handoff.green.local", &tl, local, nl, "ns",
            "= chan.pingpong.green.local");
  bench_row(&o, "handoff.green.cross", &tc, cross, nc, "ns",
            "= chan.pingpong.green.cross");
  return bench_status();
}
