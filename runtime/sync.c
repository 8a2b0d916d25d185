/*
 * sync.c - mutex, condition variable, semaphore, waitgroup and once, all
 * on the waiter (wait.h), so they park green threads and futex-sleep
 * kernel threads alike, and can be shared between the two.
 *
 * The public types are opaque arrays of four 64-bit words; the layouts
 * below must fit (checked at compile time), and all-zero memory must be a
 * valid initial state for each but the semaphore.
 */
#include "config.h"

#include <string.h>

#include "sched.h"
#include "wait.h"

#define SPIN_TRIES 64

struct mutex {
  _Atomic uint32_t state; /* 0 unlocked, 1 locked, 2 locked with waiters */
  weft__spin lk;          /* guards q, and state's 2 <-> 1 transitions */
  /* The holder (weft__self_token), 0 while unlocked or being handed to a
   * waiter.  Written only by the holder; others read it to refuse an
   * unlock (-EPERM), and the holder to refuse a relock (-EDEADLK). */
  _Atomic uintptr_t owner;
  struct weft__wq q;
};

struct cond {
  weft__spin lk;
  struct weft__wq q;
};

struct sem {
  _Atomic int32_t count;
  weft__spin lk;
  struct weft__wq q;
};

struct waitgroup {
  _Atomic int64_t count;
  weft__spin lk;
  struct weft__wq q;
};

struct once {
  _Atomic uint32_t state; /* 0 not run, 1 running, 2 done */
  weft__spin lk;
  struct weft__wq q;
};

_Static_assert(sizeof(struct mutex) <= sizeof(weft_mutex), "mutex size");
_Static_assert(sizeof(struct cond) <= sizeof(weft_cond), "cond size");
_Static_assert(sizeof(struct sem) <= sizeof(weft_sem), "sem size");
_Static_assert(sizeof(struct waitgroup) <= sizeof(weft_waitgroup), "wg size");
_Static_assert(sizeof(struct once) <= sizeof(weft_once), "once size");

/* ------------------------------------------------------------------ */
/* Mutex: a fast path with one CAS; waiters are handed the mutex        */
/* directly on unlock, so none can be starved by barging lockers.       */
/* ------------------------------------------------------------------ */

int weft_mutex_init(weft_mutex *m) {
  if (WEFT_UNLIKELY(!m))
    return -EINVAL;
  memset(m, 0, sizeof(*m));
  return 0;
}

int weft_mutex_destroy(weft_mutex *m) {
  struct mutex *x = (struct mutex *)m;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  return ld_acquire(&x->state) ? -EBUSY : 0;
}

int weft_mutex_trylock(weft_mutex *m) {
  struct mutex *x = (struct mutex *)m;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  uint32_t z = 0;
  /* Also -EBUSY for the holder, as pthreads' error-checking mutexes. */
  if (!atomic_compare_exchange_strong_explicit(
          &x->state, &z, 1, memory_order_acquire, memory_order_relaxed))
    return -EBUSY;
  st_relaxed(&x->owner, weft__self_token());
  return 0;
}

/*
 * Whether spinning for x can pay: the holder has to be able to unlock it
 * meanwhile.  While waiters queue (state 2) the unlock hands the mutex to
 * the first of them, never to a spinner.  And a green thread's spin
 * holds its worker: while every other worker is idle or looking for
 * work, no green thread runs elsewhere, so a green holder is queued or
 * parked, perhaps on this very worker behind the spinner (as Go's
 * runtime_canSpin reasons).  Two green threads on one worker taking
 * turns with a mutex, one preempted or yielding while it holds it, each
 * spun SPIN_TRIES for nothing at every turn: about 1.6 us a lock on a CPU
 * whose PAUSE takes 25 ns.  A kernel thread spins while the mutex is held
 * without waiters: its holder may be running anywhere.
 */
static bool mutex_can_spin(struct mutex *x) {
  if (ld_relaxed(&x->state) == 2)
    return false;
  if (!weft__tls_w)
    return true;
  int n = weft__rt.nworkers;
  return n > 1 && ld_relaxed(&weft__rt.nidle) +
                          ld_relaxed(&weft__rt.nspinning) + 1 <
                      n;
}

/* Contended: spin a little if that can pay, then queue and park.
 * Returns 0 once the caller holds the mutex (the caller records itself
 * as the owner). */
WEFT_NOINLINE static int mutex_lock_slow(struct mutex *x, uintptr_t me,
                                         int64_t deadline) {
  uint32_t s;
  /* Only the holder itself can have stored its token there. */
  if (WEFT_UNLIKELY(ld_relaxed(&x->owner) == me))
    return -EDEADLK;
  for (int i = 0; i < SPIN_TRIES && mutex_can_spin(x); i++) {
    weft__cpu_relax();
    s = 0;
    if (ld_relaxed(&x->state) == 0 &&
        atomic_compare_exchange_weak_explicit(&x->state, &s, 1,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return 0;
  }
  if (deadline == WEFT_NOWAIT)
    return -EAGAIN;
  weft__spin_lock(&x->lk);
  for (;;) {
    s = ld_relaxed(&x->state);
    if (s == 0) {
      if (atomic_compare_exchange_weak_explicit(&x->state, &s, 1,
                                                memory_order_acquire,
                                                memory_order_relaxed)) {
        weft__spin_unlock(&x->lk);
        return 0;
      }
      continue;
    }
    if (s == 2 || atomic_compare_exchange_weak_explicit(
                      &x->state, &s, 2, memory_order_relaxed,
                      memory_order_relaxed))
      break;
  }
  if (weft__deadline_passed(deadline)) {
    if (!x->q.head)
      st_relaxed(&x->state, 1);
    weft__spin_unlock(&x->lk);
    return -ETIMEDOUT;
  }
  int r = weft__wq_wait(&x->lk, &x->q, deadline, "mutex", false);
  if (r == 0) {
    /* Handed over by the unlocker: we own it.  The acquire of our
     * waiter's sel in the park paired with the unlocker's claim. */
    return 0;
  }
  weft__spin_lock(&x->lk);
  if (!x->q.head && ld_relaxed(&x->state) == 2)
    st_relaxed(&x->state, 1);
  weft__spin_unlock(&x->lk);
  return r;
}

int weft_mutex_lock_until(weft_mutex *m, int64_t deadline) {
  struct mutex *x = (struct mutex *)m;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  uintptr_t me = weft__self_token();
  uint32_t s = 0;
  /* acquire, pairs with the release in weft_mutex_unlock */
  if (WEFT_LIKELY(atomic_compare_exchange_strong_explicit(
          &x->state, &s, 1, memory_order_acquire, memory_order_relaxed))) {
    st_relaxed(&x->owner, me);
    return 0;
  }
  int r = mutex_lock_slow(x, me, deadline);
  if (r == 0)
    st_relaxed(&x->owner, me);
  return r;
}

int weft_mutex_lock(weft_mutex *m) {
  return weft_mutex_lock_until(m, WEFT_FOREVER);
}

int weft_mutex_unlock(weft_mutex *m) {
  struct mutex *x = (struct mutex *)m;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  /* Not the holder, or not locked at all (the owner is then 0). */
  if (WEFT_UNLIKELY(ld_relaxed(&x->owner) != weft__self_token()))
    return -EPERM;
  /* Cleared before the release: the next holder stores its own. */
  st_relaxed(&x->owner, 0);
  uint32_t s = 1;
  /* release, pairs with the acquire in lock */
  if (WEFT_LIKELY(atomic_compare_exchange_strong_explicit(
          &x->state, &s, 0, memory_order_release, memory_order_relaxed)))
    return 0;
  /* s == 2: waiters.  The owner stays 0 until the one handed the mutex
   * wakes and stores its token. */
  weft__spin_lock(&x->lk);
  struct weft__wq_entry *e = weft__wq_claim(&x->q);
  if (!e)
    st_release(&x->state, 0); /* every waiter timed out */
  else if (!x->q.head)
    st_relaxed(&x->state, 1); /* handed over; no one else waits */
  weft__spin_unlock(&x->lk);
  if (e)
    weft__waiter_wake(e->w);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Condition variable                                                  */
/* ------------------------------------------------------------------ */

int weft_cond_init(weft_cond *c) {
  if (WEFT_UNLIKELY(!c))
    return -EINVAL;
  memset(c, 0, sizeof(*c));
  return 0;
}

int weft_cond_destroy(weft_cond *c) {
  struct cond *x = (struct cond *)c;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  weft__spin_lock(&x->lk);
  bool busy = x->q.head != NULL;
  weft__spin_unlock(&x->lk);
  return busy ? -EBUSY : 0;
}

int weft_cond_wait_until(weft_cond *c, weft_mutex *m, int64_t deadline) {
  struct cond *x = (struct cond *)c;
  if (WEFT_UNLIKELY(!x || !m))
    return -EINVAL;
  /* The mutex must be held by the caller, who is its owner again on
   * return (weft_mutex_lock below stores its token). */
  if (ld_relaxed(&((struct mutex *)m)->owner) != weft__self_token())
    return -EPERM;
  if (weft__deadline_passed(deadline))
    return -ETIMEDOUT;
  weft__spin_lock(&x->lk);
  /* Queued before the mutex is released: a signal after the unlock
   * cannot be missed. */
  int r = weft_mutex_unlock(m);
  if (r) {
    weft__spin_unlock(&x->lk);
    return r;
  }
  r = weft__wq_wait(&x->lk, &x->q, deadline, "cond", false);
  weft_mutex_lock(m);
  return r;
}

int weft_cond_wait(weft_cond *c, weft_mutex *m) {
  return weft_cond_wait_until(c, m, WEFT_FOREVER);
}

int weft_cond_signal(weft_cond *c) {
  struct cond *x = (struct cond *)c;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  if (!ld_relaxed(&x->lk.v) && !weft__wq_maybe_nonempty(&x->q))
    return 0;
  weft__spin_lock(&x->lk);
  struct weft__wq_entry *e = weft__wq_claim(&x->q);
  weft__spin_unlock(&x->lk);
  if (e)
    weft__waiter_wake(e->w);
  return 0;
}

/* Claims every waiter of q under lk, then wakes them outside it. */
static void wake_all(weft__spin *lk, struct weft__wq *q) {
  weft__spin_lock(lk);
  struct weft__wq_entry *list = weft__wq_claim_all(q);
  weft__spin_unlock(lk);
  weft__wq_wake_list(list);
}

int weft_cond_broadcast(weft_cond *c) {
  struct cond *x = (struct cond *)c;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  wake_all(&x->lk, &x->q);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Semaphore: a post hands its unit straight to a waiter if there is one */
/* ------------------------------------------------------------------ */

int weft_sem_init(weft_sem *s, unsigned value) {
  if (WEFT_UNLIKELY(!s) || value > WEFT_SEM_MAX)
    return -EINVAL;
  memset(s, 0, sizeof(*s));
  atomic_init(&((struct sem *)s)->count, (int32_t)value);
  return 0;
}

int weft_sem_destroy(weft_sem *s) {
  struct sem *x = (struct sem *)s;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  weft__spin_lock(&x->lk);
  bool busy = x->q.head != NULL;
  weft__spin_unlock(&x->lk);
  return busy ? -EBUSY : 0;
}

static bool sem_take(struct sem *x) {
  int32_t c = ld_relaxed(&x->count);
  while (c > 0)
    if (atomic_compare_exchange_weak_explicit(&x->count, &c, c - 1,
                                              memory_order_acquire,
                                              memory_order_relaxed))
      return true;
  return false;
}

int weft_sem_trywait(weft_sem *s) {
  if (WEFT_UNLIKELY(!s))
    return -EINVAL;
  return sem_take((struct sem *)s) ? 0 : -EAGAIN;
}

int weft_sem_wait_until(weft_sem *s, int64_t deadline) {
  struct sem *x = (struct sem *)s;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  if (sem_take(x))
    return 0;
  if (deadline == WEFT_NOWAIT)
    return -EAGAIN;
  weft__spin_lock(&x->lk);
  if (sem_take(x)) {
    weft__spin_unlock(&x->lk);
    return 0;
  }
  if (weft__deadline_passed(deadline)) {
    weft__spin_unlock(&x->lk);
    return -ETIMEDOUT;
  }
  return weft__wq_wait(&x->lk, &x->q, deadline, "sem", false);
}

int weft_sem_wait(weft_sem *s) { return weft_sem_wait_until(s, WEFT_FOREVER); }

int weft_sem_post(weft_sem *s) {
  struct sem *x = (struct sem *)s;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  weft__spin_lock(&x->lk);
  struct weft__wq_entry *e = weft__wq_claim(&x->q);
  if (!e) {
    if (ld_relaxed(&x->count) >= (int32_t)WEFT_SEM_MAX) {
      weft__spin_unlock(&x->lk);
      return -EOVERFLOW;
    }
    atomic_fetch_add_explicit(&x->count, 1, memory_order_release);
  }
  weft__spin_unlock(&x->lk);
  if (e)
    weft__waiter_wake(e->w);
  return 0;
}

int weft_sem_value(weft_sem *s) {
  if (WEFT_UNLIKELY(!s))
    return -EINVAL;
  return (int)ld_relaxed(&((struct sem *)s)->count);
}

/* ------------------------------------------------------------------ */
/* Waitgroup                                                           */
/* ------------------------------------------------------------------ */

int weft_waitgroup_init(weft_waitgroup *wg) {
  if (WEFT_UNLIKELY(!wg))
    return -EINVAL;
  memset(wg, 0, sizeof(*wg));
  return 0;
}

int weft_waitgroup_add(weft_waitgroup *wg, int64_t delta) {
  struct waitgroup *x = (struct waitgroup *)wg;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  int64_t c = ld_relaxed(&x->count);
  do {
    if (c + delta < 0)
      return -EINVAL;
  } while (!atomic_compare_exchange_weak_explicit(
      &x->count, &c, c + delta, memory_order_acq_rel, memory_order_relaxed));
  if (c + delta == 0)
    wake_all(&x->lk, &x->q);
  return 0;
}

int weft_waitgroup_done(weft_waitgroup *wg) {
  return weft_waitgroup_add(wg, -1);
}

int weft_waitgroup_wait_until(weft_waitgroup *wg, int64_t deadline) {
  struct waitgroup *x = (struct waitgroup *)wg;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  if (ld_acquire(&x->count) == 0)
    return 0;
  if (deadline == WEFT_NOWAIT)
    return -EAGAIN;
  weft__spin_lock(&x->lk);
  /* Checked under the lock: the add that reaches zero wakes under it. */
  if (ld_acquire(&x->count) == 0) {
    weft__spin_unlock(&x->lk);
    return 0;
  }
  if (weft__deadline_passed(deadline)) {
    weft__spin_unlock(&x->lk);
    return -ETIMEDOUT;
  }
  return weft__wq_wait(&x->lk, &x->q, deadline, "waitgroup", false);
}

int weft_waitgroup_wait(weft_waitgroup *wg) {
  return weft_waitgroup_wait_until(wg, WEFT_FOREVER);
}

/* ------------------------------------------------------------------ */
/* Once                                                                */
/* ------------------------------------------------------------------ */

int weft_once_call(weft_once *o, void (*fn)(void *), void *arg) {
  struct once *x = (struct once *)o;
  if (WEFT_UNLIKELY(!x || !fn))
    return -EINVAL;
  /* acquire, pairs with the release that publishes fn's effects */
  if (WEFT_LIKELY(ld_acquire(&x->state) == 2))
    return 0;
  weft__spin_lock(&x->lk);
  uint32_t s = ld_relaxed(&x->state);
  if (s == 2) {
    weft__spin_unlock(&x->lk);
    return 0;
  }
  if (s == 1)
    return weft__wq_wait(&x->lk, &x->q, WEFT_FOREVER, "once", false);
  st_relaxed(&x->state, 1);
  weft__spin_unlock(&x->lk);
  fn(arg);
  weft__spin_lock(&x->lk);
  st_release(&x->state, 2);
  weft__spin_unlock(&x->lk);
  wake_all(&x->lk, &x->q);
  return 0;
}
