/*
 * shm.c - what an allocation from the shared heap costs next to malloc,
 * inside a worker process of a pool (weft_procs_run, one worker).
 *
 *   shm.alloc_free        ns per weft_shm_alloc(64) + weft_shm_free pair,
 *                         the owner freeing its own object
 *   malloc.alloc_free     ns per malloc(64) + free pair, same process
 *   shm.alloc_free.4k     the same with 4 KiB
 *   malloc.alloc_free.4k
 *
 * Each pair writes one byte of the object, so that neither call can be
 * dropped.  The four loops take turns in one worker process (shm 64,
 * malloc 64, shm 4k, malloc 4k, then again), one round per repetition; the
 * worker hands its figures to the supervisor in a shared page.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "gbench.h"

#define SHM_SIZE ((size_t)256 << 20)
#define NLOOPS 4

static const char *const loop_name[NLOOPS] = {
    "shm.alloc_free", "malloc.alloc_free", "shm.alloc_free.4k",
    "malloc.alloc_free.4k"};
static const size_t loop_size[NLOOPS] = {64, 64, 4096, 4096};

struct res {
  int reps;
  long n[NLOOPS];
  double ns[NLOOPS][BENCH_MAX_REPS];
  int err;
};

/* ns per pair over n pairs. */
static double run(int loop, long n, int *err) {
  size_t size = loop_size[loop];
  int64_t t0 = bench_now();

  if (loop % 2 == 0) {
    for (long i = 0; i < n; i++) {
      void *p;
      int rc = weft_shm_alloc(size, &p);

      if (rc < 0 || (*(volatile char *)p = 1, rc = weft_shm_free(p)) < 0) {
        fprintf(stderr, "bench: %s: %s\n", loop_name[loop], weft_strerror(rc));
        *err = rc;
        return 0;
      }
    }
  } else {
    for (long i = 0; i < n; i++) {
      char *p = malloc(size);

      if (!p) {
        *err = -ENOMEM;
        return 0;
      }
      *(volatile char *)p = 1;
      free(p);
    }
  }
  return (double)(bench_now() - t0) / (double)n;
}

static int worker(int index, void *arg) {
  struct res *r = arg;

  (void)index;
  gb_worker_setup();
  bench_pin(0);
  for (int l = 0; l < NLOOPS; l++) /* warm-up */
    run(l, r->n[l] / 10, &r->err);
  for (int rep = 0; rep < r->reps && !r->err; rep++)
    for (int l = 0; l < NLOOPS; l++)
      r->ns[l][rep] = run(l, r->n[l], &r->err);
  return r->err ? 1 : 0;
}

/* Child: args REPS SCALE (pairs per loop, in thousands, for 64 B).  Writes
 * REPS figures for each loop, loop by loop. */
static int child(const struct bench_opts *o) {
  struct res *r = bench_shared(sizeof(*r));
  weft_procs_config cfg = {.procs = 1,
                           .worker = worker,
                           .arg = r,
                           .listen_fd = -1,
                           .max_restarts = -1};
  long k = atol(o->child_argv[1]) * 1000;
  int rc;

  r->reps = atoi(o->child_argv[0]);
  r->n[0] = r->n[1] = k;
  r->n[2] = r->n[3] = k / 4;
  gb_check(weft_shm_setup(SHM_SIZE, 1), "weft_shm_setup");
  rc = weft_procs_run(&cfg);
  if (rc != 0 || r->err) {
    fprintf(stderr, "bench: weft_procs_run: %s\n",
            rc == 0 || rc == -ECHILD ? "the worker failed" : weft_strerror(rc));
    return 1;
  }
  for (int l = 0; l < NLOOPS; l++)
    for (int rep = 0; rep < r->reps; rep++)
      bench_put(o, r->ns[l][rep]);
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double out[NLOOPS * BENCH_MAX_REPS];
  /* One child measures the four figures: it stalls for all of them. */
  struct bench_tally t = {.name = "shm.alloc_free"};
  char reps[16], scale[16], note[128];
  int n;

  bench_init(&o, argc, argv, "shared-heap allocation against malloc", 120);
  if (o.child)
    return child(&o);
  snprintf(reps, sizeof(reps), "%d", o.reps);
  snprintf(scale, sizeof(scale), "%d", o.quick ? 200 : 1000);
  {
    const char *args[3] = {reps, scale, NULL};

    n = bench_childv(&o, &t, "shm", out, NLOOPS * o.reps, args);
  }
  bench_table(&o, "Allocate + free in a worker process, ns per pair");
  for (int l = 0; l < NLOOPS; l++) {
    snprintf(note, sizeof(note),
             "%zu B, %ld pairs per repetition, "
             "alternated in one worker",
             loop_size[l], atol(scale) * 1000 / (l < 2 ? 1 : 4));
    bench_row(&o, loop_name[l], &t,
              n == NLOOPS * o.reps ? out + l * o.reps : out,
              n == NLOOPS * o.reps ? o.reps : 0, "ns", note);
  }
  return bench_status();
}
