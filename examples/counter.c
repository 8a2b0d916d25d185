/*
 * counter.c - why shared memory needs a lock.
 *
 * Eight green threads add 1 to one shared counter 100,000 times each, on
 * several workers (kernel threads) at once.  `counter++` is three steps:
 * load, add, store.  When two workers interleave those steps, both store
 * the same value and one increment is lost.  The same work under a
 * weft_mutex gives the exact count.
 *
 * The threads call weft_yield() now and then, so that each one runs in
 * several pieces, on whichever worker is free: the interleaving does not
 * depend on lucky timing.  The unsafe run is repeated (a few times at most)
 * until it loses updates, since on a quiet machine it may not every time.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#define THREADS 8
#define INCREMENTS 100000
#define YIELD_EVERY 1000
#define WORKERS 4
#define TRIES 5

static long counter;
static weft_mutex counter_lock = WEFT_MUTEX_INIT;
static weft_waitgroup start = WEFT_WAITGROUP_INIT;

static void *add_unsafe(void *arg) {
  volatile long *c = &counter; /* every ++ really loads and stores */

  (void)arg;
  weft_waitgroup_wait(&start);
  for (int i = 0; i < INCREMENTS; i++) {
    (*c)++; /* load, add, store: not atomic, no lock */
    if (i % YIELD_EVERY == YIELD_EVERY - 1)
      weft_yield();
  }
  return NULL;
}

static void *add_locked(void *arg) {
  volatile long *c = &counter;

  (void)arg;
  weft_waitgroup_wait(&start);
  for (int i = 0; i < INCREMENTS; i++) {
    weft_mutex_lock(&counter_lock);
    (*c)++;
    weft_mutex_unlock(&counter_lock);
    if (i % YIELD_EVERY == YIELD_EVERY - 1)
      weft_yield();
  }
  return NULL;
}

static void die(const char *what, int rc) {
  fprintf(stderr, "counter: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* Runs THREADS copies of fn, released together, and returns the count. */
static long run(weft_fn fn) {
  weft_gthread t[THREADS];
  int rc;

  counter = 0;
  weft_waitgroup_add(&start, 1);
  for (int i = 0; i < THREADS; i++)
    if ((rc = weft_spawn(&t[i], NULL, fn, NULL)) < 0)
      die("weft_spawn", rc);
  weft_waitgroup_done(&start); /* go */
  for (int i = 0; i < THREADS; i++)
    if ((rc = weft_join(t[i], NULL)) < 0)
      die("weft_join", rc);
  return counter;
}

int main(void) {
  const long expected = (long)THREADS * INCREMENTS;
  weft_config cfg = {.workers = WORKERS};
  long got;
  int rc, tries = 0;

  if ((rc = weft_init(&cfg)) < 0)
    die("weft_init", rc);
  printf("%d green threads x %d increments of one shared counter, "
         "on %d workers\n\n",
         THREADS, INCREMENTS, weft_workers());

  printf("1. without a lock: plain counter++ (load, add, store)\n");
  do {
    got = run(add_unsafe);
    tries++;
    printf("   run %d: expected %ld, got %ld  -> %ld updates lost\n", tries,
           expected, got, expected - got);
  } while (got == expected && tries < TRIES);
  if (got == expected)
    printf("   (no update was lost in %d runs this time: the race is "
           "real, but this machine did not hit it)\n", tries);
  else
    printf("   two workers read the same value and both stored value+1: "
           "a data race\n");

  printf("\n2. with a weft_mutex around counter++\n");
  got = run(add_locked);
  printf("   expected %ld, got %ld  -> %s\n", expected, got,
         got == expected ? "exact" : "WRONG: the mutex is broken");

  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  return got == expected ? 0 : 1;
}
