/*
 * test_timer_heap.c - the per-worker timer heap (runtime/timer.c) on its
 * own, built into this program: random arms, cancels from anywhere in the
 * heap, and runs, checked against a plain list after every step.
 *
 * What is checked: after each operation no child fires before its parent
 * (deadline, then arming number), every armed timer
 * knows its position and a disarmed one has none, and the published next
 * deadline is the earliest; timers fire in deadline order, equal deadlines
 * in arming order, a cancelled timer never fires, and a run stops at its
 * maximum and at timers not yet due.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "timer.h"
#include "weft.h"

/* What timer.c needs from the rest of the runtime. */
void weft__spin_lock_slow(weft__spin *l) {
  while (atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
    ;
}
void weft__throw(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  abort();
}

#define N 3000

static struct weft__timer tm[N];
static bool armed[N];
static int fired[N], nfired;

static void on_fire(struct weft__timer *t) {
  fired[nfired++] = (int)(t - tm);
}

/* The heap's invariants, and that the armed set is exactly armed[]. */
static void check_heap(struct weft__timers *ts) {
  int count = 0;
  for (int i = 0; i < ts->n; i++) {
    struct weft__timer *t = ts->h[i];
    cr_assert_eq(t->idx, i, "slot %d's timer thinks it is at %d", i, t->idx);
    cr_assert(armed[t - tm], "timer %d is in the heap, not armed",
              (int)(t - tm));
    if (i > 0) {
      struct weft__timer *p = ts->h[(i - 1) / 2];
      cr_assert(p->when < t->when || (p->when == t->when && p->seq < t->seq),
                "slot %d fires before its parent", i);
    }
  }
  for (int k = 0; k < N; k++) {
    if (armed[k])
      count++;
    else
      cr_assert_eq(tm[k].idx, -1, "disarmed timer %d has a position", k);
  }
  cr_assert_eq(count, ts->n, "%d armed, %d in the heap", count, ts->n);
  cr_assert_eq(weft__timers_next(ts), ts->n ? ts->h[0]->when : WEFT_FOREVER,
               "the published deadline is not the earliest");
}

static void arm(struct weft__timers *ts, int k, int64_t when) {
  tm[k].when = when;
  tm[k].fn = on_fire;
  tm[k].arg = NULL;
  tm[k].idx = -1;
  atomic_init(&tm[k].heap, NULL);
  armed[k] = true;
  cr_assert_geq(weft__timer_add(ts, &tm[k]), 0);
}

/* Deadlines in ms-like steps with many ties: the tie-break matters. */
static int64_t random_when(void) { return (int64_t)(rand() % 200) * 1000; }

Test(timer_heap, random_arms_cancels_and_runs_keep_the_order) {
  struct weft__timers ts;
  srand(12345);
  weft__timers_init(&ts);
  for (int k = 0; k < N; k++)
    tm[k].idx = -1;
  int next = 0;
  for (int round = 0; round < 4; round++) {
    /* Arm the next quarter, cancelling one in three of the armed as we go
     * (from the top, the middle and the leaves). */
    for (int j = 0; j < N / 4; j++, next++) {
      arm(&ts, next, random_when());
      if (rand() % 3 == 0) {
        int v = rand() % (next + 1);
        bool was = armed[v];
        cr_assert_eq(weft__timer_cancel(&tm[v]), was,
                     "cancel of timer %d: armed %d", v, was);
        armed[v] = false;
      }
      if (j % 97 == 0)
        check_heap(&ts);
    }
    check_heap(&ts);
    /* Run what is due at half the range, at most 50 at a time. */
    int64_t now = 100 * 1000;
    int before = nfired, ran;
    while ((ran = weft__timers_run(&ts, now, 50)) > 0) {
      cr_assert_leq(ran, 50);
      for (int i = nfired - ran; i < nfired; i++)
        armed[fired[i]] = false;
      check_heap(&ts);
    }
    for (int i = before; i < nfired; i++) {
      struct weft__timer *t = &tm[fired[i]];
      cr_assert_leq(t->when, now, "timer %d fired early", fired[i]);
      if (i > before) {
        struct weft__timer *p = &tm[fired[i - 1]];
        cr_assert(p->when < t->when || (p->when == t->when && p->seq < t->seq),
                  "timer %d fired after %d, out of order", fired[i],
                  fired[i - 1]);
      }
    }
    cr_assert(ts.n == 0 || ts.h[0]->when > now, "a due timer was left");
  }
  while (weft__timers_run(&ts, WEFT_FOREVER - 1, N) > 0)
    ;
  for (int k = 0; k < N; k++)
    armed[k] = false;
  check_heap(&ts);
  /* Within each run, the order was (deadline, arming order); and no timer
   * fired twice or after its cancel. */
  static bool seen[N];
  for (int i = 0; i < nfired; i++) {
    cr_assert(!seen[fired[i]], "timer %d fired twice", fired[i]);
    seen[fired[i]] = true;
  }
  weft__timers_fini(&ts);
}

Test(timer_heap, equal_deadlines_fire_in_arming_order) {
  struct weft__timers ts;
  weft__timers_init(&ts);
  nfired = 0;
  for (int k = 0; k < N; k++) {
    tm[k].idx = -1;
    armed[k] = false;
  }
  /* Interleave two deadlines; cancel every fifth timer. */
  for (int k = 0; k < 1000; k++)
    arm(&ts, k, k % 2 ? 2000 : 1000);
  for (int k = 0; k < 1000; k += 5) {
    cr_assert(weft__timer_cancel(&tm[k]));
    armed[k] = false;
  }
  check_heap(&ts);
  cr_assert_eq(weft__timers_run(&ts, 1500, 1000), 400);
  cr_assert_eq(weft__timers_run(&ts, 1500, 1000), 0, "a timer not due ran");
  cr_assert_eq(weft__timers_run(&ts, 2500, 1000), 400);
  int last[2] = {-1, -1};
  for (int i = 0; i < nfired; i++) {
    int k = fired[i];
    cr_assert_neq(k % 5, 0, "cancelled timer %d fired", k);
    cr_assert_gt(k, last[k % 2], "timer %d fired after %d", k, last[k % 2]);
    last[k % 2] = k;
    cr_assert_eq(i < 400, k % 2 == 0, "a 2000 fired before a 1000");
  }
  weft__timers_fini(&ts);
}
