/*
 * timer.h - deadlines: a binary min-heap of timers per worker.
 *
 * A timer is embedded in what it belongs to (a green thread's descriptor
 * holds the timer of its waits: wait.c, "Deadlines"), so arming one
 * allocates nothing (the heap array grows rarely).  Timers leave a heap in
 * deadline order, and timers with the same deadline in the order they
 * were armed: each gets the next number of its heap as it is armed, the
 * tie-break a binary heap needs to be FIFO.  Expired timers run their
 * callback with the heap's lock held; that is what lets weft__timer_cancel
 * promise that, once it returns, the callback is not running and will not
 * run, so what holds the timer can go away.
 */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct weft__timer;
typedef void (*weft__timer_fn)(struct weft__timer *t);

struct weft__timer {
  int64_t when;
  uint64_t seq;               /* arming order among equal deadlines */
  weft__timer_fn fn;
  void *arg;
  int idx;                    /* position in the heap, -1 when not armed */
  struct weft__timers *_Atomic heap;
};

struct weft__timers {
  weft__spin lk;
  struct weft__timer **h;
  int n, cap;
  uint64_t seq;         /* numbers the timers armed here */
  _Atomic int64_t next; /* deadline of the earliest timer, INT64_MAX if none */
};

void weft__timers_init(struct weft__timers *ts);
void weft__timers_fini(struct weft__timers *ts);
/* Arms t (t->when, t->fn, t->arg set by the caller).  Returns 1 if t is
 * now the heap's earliest timer, else 0, or -ENOMEM. */
int weft__timer_add(struct weft__timers *ts, struct weft__timer *t);
/* The same with ts->lk held by the caller, who may keep it so that the
 * timer cannot fire (on any worker) until it lets go. */
int weft__timer_add_locked(struct weft__timers *ts, struct weft__timer *t);
/* Moves the armed timer t (in ts, whose lock the caller holds) to the
 * earlier deadline when, as if armed now.  Returns 1 if t is now the
 * heap's earliest timer, else 0. */
int weft__timer_lower_locked(struct weft__timers *ts, struct weft__timer *t,
                             int64_t when);
/* Takes a number of ts's arming order (lock held), for a timer armed
 * later with weft__timer_rearm_locked. */
static inline uint64_t weft__timers_seq_locked(struct weft__timers *ts) {
  return ts->seq++;
}
/* Arms t in ts (lock held) at t->when with the number it has (t->seq),
 * not a new one: a timer whose key was too early (wait.c) goes back in
 * the place its wait was armed in.  The heap has room (t just left it). */
void weft__timer_rearm_locked(struct weft__timers *ts, struct weft__timer *t);
/* Takes the armed timer t out of ts, whose lock the caller holds. */
void weft__timer_remove_locked(struct weft__timers *ts, struct weft__timer *t);
/* Disarms t if armed; returns true if it was disarmed before firing. */
bool weft__timer_cancel(struct weft__timer *t);
/* Runs the timers due at now, earliest first, at most max of them (the
 * rest stay armed, due); returns how many ran. */
int weft__timers_run(struct weft__timers *ts, int64_t now, int max);
static inline int64_t weft__timers_next(struct weft__timers *ts) {
  return ld_acquire(&ts->next);
}

#endif /* WEFT_TIMER_H */
