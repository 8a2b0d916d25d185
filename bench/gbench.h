/*
 * gbench.h - small checked wrappers over the public API for the bench
 * programs that run green threads.  A bench must not go on measuring after
 * a call failed, so each wrapper exits with the call's name and error.
 */
#ifndef WEFT_GBENCH_H
#define WEFT_GBENCH_H

#include <stdio.h>
#include <stdlib.h>

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

#endif /* WEFT_GBENCH_H */
