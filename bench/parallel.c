/*
 * parallel.c - true parallelism: the same CPU-bound work on one CPU and
 * on two, as green threads and as kernel threads.
 *
 * The work is two equal pieces of pure computation (a chain of xorshift
 * steps: no memory traffic, no system calls), one per thread.  On one CPU
 * the two threads can only take turns, so the work takes as long as both
 * pieces one after the other; on two CPUs they run at the same time, and
 * it takes about half as long.  Wall time from the start of the threads
 * to the join of both:
 *
 *   parallel.green.1w     two green threads on a runtime of one worker,
 *                         the process confined to one CPU
 *   parallel.green.2w     the same on two workers, the process confined to
 *                         two CPUs (the workers inherit the mask; an idle
 *                         worker steals the second thread)
 *   parallel.kthread.1    two kernel threads (KTHREAD tasks), the process
 *                         confined to one CPU
 *   parallel.kthread.2    the same confined to two CPUs (the kernel's
 *                         scheduler places the threads, as weft's places
 *                         the green ones)
 *   parallel.speedup.green    1w / 2w, the median of the per-repetition
 *   parallel.speedup.kthread  ratios; 2 is perfect
 *   parallel.green.2w.cpus    CPU time / wall time of the two-CPU runs:
 *   parallel.kthread.2.cpus   how many CPUs they kept busy; below 2, other
 *                             programs had part of the CPUs (or the two
 *                             threads shared one)
 *
 * The note beside each time gives the CPU time the process used over the
 * wall time too: about 1 on one CPU, about 2 when both CPUs worked.  Each
 * sample is a fresh process that runs the work RUNS times and keeps the
 * fastest run (other programs on the machine can only slow it down), and
 * the four take turns within a repetition.
 * With fewer than two CPUs only the one-CPU figures are measured.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbench.h"

#define PIECE_STEPS (1L << 27) /* about 150 ms a piece on 3 GHz */
#define PIECE_STEPS_QUICK (1L << 25)
#define RUNS 3 /* a sample: the fastest of RUNS runs in one process */

struct piece {
  uint64_t seed;
  long steps;
  uint64_t result;
};

/* One piece of work: a dependent chain the compiler cannot shorten. */
static void *compute(void *arg) {
  struct piece *pc = arg;
  uint64_t x = pc->seed;

  for (long i = 0; i < pc->steps; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  pc->result = x;
  return NULL;
}

/* Confines this process (and the threads it starts) to the first n CPUs
 * it may use. */
static void confine(int n) {
  cpu_set_t set;

  CPU_ZERO(&set);
  for (int i = 0; i < n; i++)
    CPU_SET(bench_cpu(i), &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    perror("bench: sched_setaffinity");
    exit(1);
  }
}

/* One run of the two pieces: wall time and CPU time, in ns. */
static void run(bool green, struct piece *k, int64_t *wall, int64_t *cpu) {
  int64_t t0 = bench_now(), c0 = bench_cpu_ns();

  if (green) {
    weft_gthread t[2];
    for (int i = 0; i < 2; i++)
      t[i] = gb_spawn(compute, &k[i]);
    for (int i = 0; i < 2; i++)
      gb_join(t[i]);
  } else {
    weft_task t[2];
    for (int i = 0; i < 2; i++)
      gb_check(weft_task_start(&t[i], WEFT_MODE_KTHREAD, compute, &k[i]),
               "weft_task_start");
    for (int i = 0; i < 2; i++)
      gb_check(weft_task_wait(&t[i], NULL), "weft_task_wait");
  }
  *wall = bench_now() - t0;
  *cpu = bench_cpu_ns() - c0;
}

/* Child: args KIND (green|kthread) CPUS STEPS.  Runs the work RUNS times
 * and writes the fastest wall time in ms, and the CPU time over the wall
 * time of that run.  The fastest, because other programs on the machine
 * can only slow a run down: the best of a few is the one they disturbed
 * least. */
static int child(const struct bench_opts *o) {
  bool green = strcmp(o->child_argv[0], "green") == 0;
  int cpus = atoi(o->child_argv[1]);
  long steps = atol(o->child_argv[2]);
  struct piece k[2];
  int64_t best = INT64_MAX, best_cpu = 0;

  confine(cpus);
  if (green)
    gb_init(cpus);
  for (int r = 0; r < RUNS; r++) {
    int64_t wall, cpu;
    for (int i = 0; i < 2; i++)
      k[i] = (struct piece){.seed = 0x9E3779B97F4A7C15ULL + (uint64_t)i,
                            .steps = steps};
    run(green, k, &wall, &cpu);
    bench_keep(k[0].result ^ k[1].result);
    if (k[0].result == 0 || k[1].result == 0)
      return 1; /* a piece did not run */
    if (wall < best)
      best = wall, best_cpu = cpu;
  }
  if (green)
    gb_check(weft_shutdown(), "weft_shutdown");
  bench_put(o, (double)best / 1e6);
  bench_put(o, (double)best_cpu / (double)best);
  return 0;
}

int main(int argc, char **argv) {
  static const char *const names[4] = {"parallel.green.1w", "parallel.green.2w",
                                       "parallel.kthread.1",
                                       "parallel.kthread.2"};
  struct bench_opts o;
  double ms[4][BENCH_MAX_REPS], busy[4][BENCH_MAX_REPS];
  double speedup[2][BENCH_MAX_REPS];
  struct bench_tally t[4];
  int got[4] = {0}, nsp[2] = {0, 0};
  char steps[24], note[160];

  bench_init(&o, argc, argv,
             "the same work on one CPU and on two (green and kernel "
             "threads)",
             60);
  if (o.child)
    return child(&o);
  for (int i = 0; i < 4; i++) {
    memset(&t[i], 0, sizeof t[i]);
    snprintf(t[i].name, sizeof t[i].name, "%s", names[i]);
  }
  bool two = bench_ncpus() >= 2;
  snprintf(steps, sizeof steps, "%ld",
           o.quick ? PIECE_STEPS_QUICK : PIECE_STEPS);
  for (int r = 0; r < o.reps; r++)
    for (int m = 0; m < 2; m++) { /* green, kthread */
      double one[2];
      int ok = 0;
      for (int c = 0; c < (two ? 2 : 1); c++) {
        int i = 2 * m + c;
        const char *args[4] = {m ? "kthread" : "green", c ? "2" : "1", steps,
                               NULL};
        double out[2];

        if (bench_childv(&o, &t[i], "parallel", out, 2, args) == 2) {
          one[c] = ms[i][got[i]] = out[0];
          busy[i][got[i]++] = out[1];
          ok++;
        }
      }
      if (ok == 2)
        speedup[m][nsp[m]++] = one[0] / one[1];
    }
  bench_table(&o, "The same work (two equal pieces) on one CPU and on two, "
                  "ms");
  for (int i = 0; i < 4; i++) {
    if (!two && i % 2) {
      bench_na_row(&o, names[i], "ms", "this process may use one CPU only");
      continue;
    }
    snprintf(note, sizeof note,
             "2 x %s xorshift steps, the fastest of %d runs; CPU time / wall "
             "time %.2f",
             steps, RUNS, bench_median(busy[i], got[i]));
    bench_row(&o, names[i], &t[i], ms[i], got[i], "ms", note);
  }
  /* How many CPUs the two-CPU runs kept busy: below 2, other programs
   * had part of them (or the threads shared one). */
  for (int i = 1; i < 4; i += 2) {
    char name[64];
    snprintf(name, sizeof name, "%s.cpus", names[i]);
    if (!two)
      bench_na_row(&o, name, "CPUs", "this process may use one CPU only");
    else
      bench_row(&o, name, &t[i], busy[i], got[i], "CPUs",
                "CPU time / wall time of the runs above");
  }
  for (int m = 0; m < 2; m++) {
    const char *name =
        m ? "parallel.speedup.kthread" : "parallel.speedup.green";
    if (!two)
      bench_na_row(&o, name, "x", "this process may use one CPU only");
    else if (nsp[m])
      bench_row(&o, name, NULL, speedup[m], nsp[m], "x",
                m ? "parallel.kthread.1 / parallel.kthread.2, per repetition"
                  : "parallel.green.1w / parallel.green.2w, per repetition");
    else
      bench_na_row(&o, name, "x",
                   "no repetition measured both (see their rows)");
  }
  return bench_status();
}
