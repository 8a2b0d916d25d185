/*
 * idle.c - the CPU an idle runtime burns.
 *
 *   idle.cpu  % of one CPU used by a runtime with 2 workers and nothing to
 *             do: (user + system time) / wall time over 2 s (0.5 s in quick
 *             mode), measured after a burst of work has woken every worker,
 *             so that a worker that never goes back to sleep shows up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gbench.h"

static weft_chan *ch;

static void *echo(void *arg) {
  int v;

  (void)arg;
  while (weft_chan_recv(ch, &v) == 0)
    ;
  return NULL;
}

/* Wakes every worker: a few green threads passing messages, and sleeps. */
static void burst(void) {
  weft_gthread t[4];
  int v = 0;

  gb_check(weft_chan_open(&ch, sizeof(int), 0), "weft_chan_open");
  for (int i = 0; i < 4; i++)
    t[i] = gb_spawn(echo, NULL);
  for (int i = 0; i < 20000; i++)
    gb_check(weft_chan_send(ch, &v), "weft_chan_send");
  weft_chan_close(ch);
  for (int i = 0; i < 4; i++)
    gb_join(t[i]);
  weft_chan_free(ch);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

  while (nanosleep(&ts, &ts) != 0)
    ;
}

/* Child: arg window in ms.  Writes % CPU. */
static int child(const struct bench_opts *o) {
  long ms = atol(o->child_argv[0]);
  int64_t c0, c1, w0, w1;

  gb_init(2);
  burst();
  sleep_ms(50); /* let the workers finish spinning and park */
  c0 = bench_cpu_ns();
  w0 = bench_now();
  sleep_ms(ms);
  c1 = bench_cpu_ns();
  w1 = bench_now();
  bench_put(o, 100.0 * (double)(c1 - c0) / (double)(w1 - w0));
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double pct[BENCH_MAX_REPS];
  struct bench_tally t = {.name = "idle.cpu"};
  int n = 0;
  long ms;
  char mstr[32], note[64];

  bench_init(&o, argc, argv, "the CPU used by an idle runtime", 60);
  if (o.child)
    return child(&o);
  ms = o.quick ? 500 : 2000;
  snprintf(mstr, sizeof(mstr), "%ld", ms);
  for (int r = 0; r < o.reps; r++) {
    double out[1];

    if (bench_child(&o, &t, "idle", out, 1, mstr, NULL) == 1)
      pct[n++] = out[0];
  }
  bench_table(&o, "Idle runtime (2 workers, nothing to run)");
  snprintf(note, sizeof(note), "over %ld ms, after a burst of work", ms);
  bench_row(&o, "idle.cpu", &t, pct, n, "%", note);
  return bench_status();
}
