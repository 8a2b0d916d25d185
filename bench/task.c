/*
 * task.c - what it costs to start a unit of work and wait for it, in each
 * of weft's three modes, through the one call shape they share:
 * weft_task_start(&t, mode, fn, arg) + weft_task_wait(&t, &result).
 *
 *   spawn_join.green.task  ns per start + wait of a GREEN task, from a green
 *                          thread, after a warm-up (stacks come from the
 *                          worker's cache); compare spawn_join.green, the
 *                          same through weft_spawn/weft_join
 *   spawn_join.kthread     ns per start + wait of a KTHREAD task from the
 *                          main thread: pthread_create, the thread runs fn,
 *                          signals completion, the waiter joins it
 *   spawn_join.process     ns per start + wait of a PROCESS task from the
 *                          main thread: fork, pidfd, the child runs fn and
 *                          exits, the reaper collects it and wakes the waiter
 *
 * fn returns its argument, and each result is checked.  Every sample is a
 * fresh process, and the three modes take turns (green, kthread, process,
 * green, ...), so that a change in the machine's speed during the run
 * touches all three alike.  The kernel-thread and process loops run for a
 * fixed time (counting the units) rather than a fixed count, since one
 * unit costs tens of microseconds to milliseconds depending on the machine.
 * The process figure depends on the size of the forking process (fork
 * copies its page tables): the note gives the parent's RSS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

static void *identity(void *arg) { return arg; }

static void task_check(weft_task *t, intptr_t want) {
  void *got;

  gb_check(weft_task_wait(t, &got), "weft_task_wait");
  if ((intptr_t)got != want) {
    fprintf(stderr, "bench: task returned %ld, not %ld\n", (long)(intptr_t)got,
            (long)want);
    exit(1);
  }
}

/* ---- green: a fixed count, from a green thread ----------------------- */

struct gdrive {
  long n;
  int64_t t0, t1;
};

static void *green_driver(void *p) {
  struct gdrive *d = p;
  weft_task t;

  for (long i = 0; i < 20000; i++) { /* warm the stack cache */
    gb_check(weft_task_start(&t, WEFT_MODE_GREEN, identity, (void *)i),
             "weft_task_start");
    task_check(&t, i);
  }
  d->t0 = bench_now();
  for (long i = 0; i < d->n; i++) {
    weft_task_start(&t, WEFT_MODE_GREEN, identity, (void *)i);
    task_check(&t, i);
  }
  d->t1 = bench_now();
  return NULL;
}

/* ---- kthread and process: for a time, from the main thread ----------- */

/* Writes ns per unit and the number of units. */
static void timed(const struct bench_opts *o, weft_mode mode, int64_t budget) {
  weft_task t;
  int64_t t0, now;
  long n = 0;

  for (long i = 0; i < 5; i++) { /* warm-up: the reaper, the record pool */
    gb_check(weft_task_start(&t, mode, identity, (void *)i), "weft_task_start");
    task_check(&t, i);
  }
  t0 = bench_now();
  do {
    for (int k = 0; k < 4; k++, n++) {
      gb_check(weft_task_start(&t, mode, identity, (void *)n),
               "weft_task_start");
      task_check(&t, n);
    }
    now = bench_now();
  } while (now - t0 < budget || n < 20);
  bench_put(o, (double)(now - t0) / (double)n);
  bench_put(o, (double)n);
  bench_put(o, (double)bench_rss_kib());
}

/* Child: args MODE (green|kthread|process) and N (green: units; others:
 * a time budget in ms). */
static int child(const struct bench_opts *o) {
  const char *mode = o->child_argv[0];
  long arg = atol(o->child_argv[1]);

  if (strcmp(mode, "green") == 0) {
    struct gdrive d = {.n = arg};

    gb_init(0);
    gb_join(gb_spawn(green_driver, &d));
    bench_put(o, (double)(d.t1 - d.t0) / (double)d.n);
    bench_put(o, (double)d.n);
    bench_put(o, (double)bench_rss_kib());
    gb_check(weft_shutdown(), "weft_shutdown");
  } else {
    timed(o,
          strcmp(mode, "kthread") == 0 ? WEFT_MODE_KTHREAD : WEFT_MODE_PROCESS,
          arg * 1000000);
  }
  return 0;
}

int main(int argc, char **argv) {
  static const char *const modes[3] = {"green", "kthread", "process"};
  static const char *const names[3] = {
      "spawn_join.green.task", "spawn_join.kthread", "spawn_join.process"};
  struct bench_opts o;
  double ns[3][BENCH_MAX_REPS], units[3][BENCH_MAX_REPS];
  double rss[3][BENCH_MAX_REPS];
  struct bench_tally t[3] = {{.name = "spawn_join.green.task"},
                             {.name = "spawn_join.kthread"},
                             {.name = "spawn_join.process"}};
  int got[3] = {0, 0, 0};
  char arg[3][32], note[160];

  bench_init(&o, argc, argv, "weft_task_start + weft_task_wait per mode", 120);
  if (o.child)
    return child(&o);
  snprintf(arg[0], sizeof(arg[0]), "%d", o.quick ? 200000 : 1000000);
  snprintf(arg[1], sizeof(arg[1]), "%d", o.quick ? 60 : 200);
  snprintf(arg[2], sizeof(arg[2]), "%d", o.quick ? 100 : 300);
  for (int r = 0; r < o.reps; r++)
    for (int m = 0; m < 3; m++) {
      const char *args[3] = {modes[m], arg[m], NULL};
      double out[3];

      if (bench_childv(&o, &t[m], "task", out, 3, args) == 3) {
        ns[m][got[m]] = out[0];
        units[m][got[m]] = out[1];
        rss[m][got[m]++] = out[2];
      }
    }
  bench_table(&o, "Start a task and wait for it (weft_task_start + "
                  "weft_task_wait), ns per unit");
  for (int m = 0; m < 3; m++) {
    if (m == 0)
      snprintf(note, sizeof(note),
               "%s units from a green thread; "
               "compare spawn_join.green",
               arg[0]);
    else
      snprintf(note, sizeof(note),
               "%.0f units in %s ms from the main "
               "thread; parent RSS %.1f MiB",
               bench_median(units[m], got[m]), arg[m],
               bench_median(rss[m], got[m]) / 1024.0);
    bench_row(&o, names[m], &t[m], ns[m], got[m], "ns", note);
  }
  return bench_status();
}
