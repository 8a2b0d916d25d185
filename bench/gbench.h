/*
 * gbench.h - small checked wrappers over the public API for the bench
 * programs that run green threads.  A bench must not go on measuring after
 * a call failed, so each wrapper exits with the call's name and error.
 */
#ifndef WEFT_GBENCH_H
#define WEFT_GBENCH_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <sys/prctl.h>
#include <unistd.h>

#include "bench.h"
#include "weft.h"

static inline void gb_check(int rc, const char *what) {
  if (rc < 0) {
    fprintf(stderr, "bench: %s: %s\n", what, weft_strerror(rc));
    exit(1);
  }
}

/* Starts the runtime with `workers` workers (0: the default). */
static inline void gb_init(int workers) {
  weft_config cfg = {.workers = workers, .stack_size = 0};

  gb_check(weft_init(&cfg), "weft_init");
}

static inline weft_gthread gb_spawn(weft_fn fn, void *arg) {
  weft_gthread t;

  gb_check(weft_spawn(&t, NULL, fn, arg), "weft_spawn");
  return t;
}

static inline void *gb_join(weft_gthread t) {
  void *result;

  gb_check(weft_join(t, &result), "weft_join");
  return result;
}

/* Sum of one counter over all workers. */
#define gb_stat(field)                                                         \
  __extension__({                                                              \
    weft_worker_stats st_[64];                                                 \
    int n_ = weft_stats(st_, 64);                                              \
    uint64_t sum_ = 0;                                                         \
    for (int i_ = 0; i_ < n_ && i_ < 64; i_++)                                 \
      sum_ += st_[i_].field;                                                   \
    sum_;                                                                      \
  })

/* First thing in a bench worker process: never outlive the supervisor,
 * never hang for good, and survive a peer that closed its pipe. */
static inline void gb_worker_setup(void) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGPIPE, SIG_IGN);
  alarm(60);
}

/* Runs b, then a, as kernel-thread tasks and waits for both; returns 1 if
 * either returned non-NULL (failed), else 0. */
static inline int gb_kthread_pair(weft_fn a, weft_fn b, void *arg) {
  weft_task ta, tb;
  void *ra, *rb;

  gb_check(weft_task_start(&tb, WEFT_MODE_KTHREAD, b, arg), "weft_task_start");
  gb_check(weft_task_start(&ta, WEFT_MODE_KTHREAD, a, arg), "weft_task_start");
  gb_check(weft_task_wait(&ta, &ra), "weft_task_wait");
  gb_check(weft_task_wait(&tb, &rb), "weft_task_wait");
  return ra || rb;
}

/* Runs worker in a pool of two worker processes (this process supervises);
 * returns 1 if the pool failed, else 0.  A failed worker is not restarted:
 * the two share one stream in shared memory, which a fresh process cannot
 * resume (a restarted ring sender once overran its free list), so the
 * sample fails and bench_child() runs it again from the start. */
static inline int gb_procs_pair(int (*worker)(int, void *), void *arg) {
  weft_procs_config cfg = {.procs = 2,
                           .worker = worker,
                           .arg = arg,
                           .listen_fd = -1,
                           .max_restarts = -1};
  int rc = weft_procs_run(&cfg);

  if (rc != 0) {
    fprintf(stderr, "bench: weft_procs_run: %s\n",
            rc == -ECHILD ? "a worker failed" : weft_strerror(rc));
    return 1;
  }
  return 0;
}

#endif /* WEFT_GBENCH_H */
