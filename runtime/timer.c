/*
 * timer.c - per-worker timer heaps (see timer.h).
 */
#include "config.h"

#include <stdlib.h>

#include "timer.h"
#include "weft.h"

void weft__timers_init(struct weft__timers *ts) {
  ts->h = NULL;
  ts->n = ts->cap = 0;
  ts->seq = 0;
  atomic_init(&ts->next, WEFT_FOREVER);
  atomic_init(&ts->lk.v, 0);
}

void weft__timers_fini(struct weft__timers *ts) {
  free(ts->h);
  ts->h = NULL;
  ts->n = ts->cap = 0;
}

static void set(struct weft__timers *ts, int i, struct weft__timer *t) {
  ts->h[i] = t;
  t->idx = i;
}

/* Whether a fires before b: deadline, then arming order. */
static inline bool before(const struct weft__timer *a,
                          const struct weft__timer *b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void up(struct weft__timers *ts, int i) {
  struct weft__timer *t = ts->h[i];
  while (i > 0) {
    int p = (i - 1) / 2;
    if (!before(t, ts->h[p]))
      break;
    set(ts, i, ts->h[p]);
    i = p;
  }
  set(ts, i, t);
}

static void down(struct weft__timers *ts, int i) {
  struct weft__timer *t = ts->h[i];
  for (;;) {
    int c = 2 * i + 1;
    if (c >= ts->n)
      break;
    if (c + 1 < ts->n && before(ts->h[c + 1], ts->h[c]))
      c++;
    if (!before(ts->h[c], t))
      break;
    set(ts, i, ts->h[c]);
    i = c;
  }
  set(ts, i, t);
}

static void publish(struct weft__timers *ts) {
  /* store-release, read by the worker deciding how long it may sleep */
  st_release(&ts->next, ts->n ? ts->h[0]->when : WEFT_FOREVER);
}

/* Requires ts->lk held. */
static void remove_at(struct weft__timers *ts, int i) {
  weft__dassert(weft__spin_held(&ts->lk));
  struct weft__timer *t = ts->h[i];
  ts->n--;
  if (i != ts->n) {
    struct weft__timer *m = ts->h[ts->n];
    set(ts, i, m);
    down(ts, i);
    up(ts, m->idx);
  }
  t->idx = -1;
}

static int insert(struct weft__timers *ts, struct weft__timer *t) {
  atomic_store_explicit(&t->heap, ts, memory_order_relaxed);
  set(ts, ts->n++, t);
  up(ts, t->idx);
  publish(ts);
  return t->idx == 0;
}

int weft__timer_add_locked(struct weft__timers *ts, struct weft__timer *t) {
  weft__dassert(weft__spin_held(&ts->lk));
  if (ts->n == ts->cap) {
    int cap = ts->cap ? ts->cap * 2 : 64;
    struct weft__timer **h = realloc(ts->h, sizeof(*h) * (size_t)cap);
    if (!h)
      return -ENOMEM;
    ts->h = h;
    ts->cap = cap;
  }
  t->seq = ts->seq++;
  return insert(ts, t);
}

void weft__timer_rearm_locked(struct weft__timers *ts, struct weft__timer *t) {
  weft__dassert(weft__spin_held(&ts->lk));
  weft__assert(ts->n < ts->cap);
  insert(ts, t);
}

int weft__timer_lower_locked(struct weft__timers *ts, struct weft__timer *t,
                             int64_t when) {
  weft__dassert(weft__spin_held(&ts->lk));
  weft__dassert(t->idx >= 0 && when <= t->when);
  t->when = when;
  t->seq = ts->seq++;
  up(ts, t->idx);
  publish(ts);
  return t->idx == 0;
}

int weft__timer_add(struct weft__timers *ts, struct weft__timer *t) {
  weft__spin_lock(&ts->lk);
  int r = weft__timer_add_locked(ts, t);
  weft__spin_unlock(&ts->lk);
  return r;
}

void weft__timer_remove_locked(struct weft__timers *ts,
                               struct weft__timer *t) {
  weft__dassert(t->idx >= 0 && atomic_load_explicit(&t->heap,
                                                    memory_order_relaxed) == ts);
  remove_at(ts, t->idx);
  publish(ts);
}

bool weft__timer_cancel(struct weft__timer *t) {
  struct weft__timers *ts = atomic_load_explicit(&t->heap, memory_order_acquire);
  if (!ts)
    return false;
  weft__spin_lock(&ts->lk);
  bool armed = t->idx >= 0;
  if (armed) {
    remove_at(ts, t->idx);
    publish(ts);
  }
  weft__spin_unlock(&ts->lk);
  return armed;
}

int weft__timers_run(struct weft__timers *ts, int64_t now, int max) {
  int ran = 0;
  if (max <= 0 || ld_acquire(&ts->next) > now)
    return 0;
  weft__spin_lock(&ts->lk);
  while (ran < max && ts->n && ts->h[0]->when <= now) {
    struct weft__timer *t = ts->h[0];
    /* A timer left here by a thread that exited says no heap. */
    struct weft__timers *home =
        atomic_load_explicit(&t->heap, memory_order_relaxed);
    weft__dassert(home == ts);
    (void)home;
    remove_at(ts, 0);
    /* Runs under the lock: see timer.h. */
    t->fn(t);
    ran++;
  }
  publish(ts);
  weft__spin_unlock(&ts->lk);
  return ran;
}
