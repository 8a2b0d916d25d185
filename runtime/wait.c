/*
 * wait.c - the waiter (see wait.h): one park/wake protocol for green
 * threads and for kernel threads that are not workers.
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "sched.h"
#include "timer.h"
#include "wait.h"

void weft__waiter_wake_kthread(struct weft__waiter *w) {
  /* store-release pairs with the parked thread's load-acquire; the frame
   * holding the futex may be gone once the store lands, and a wake on a
   * stale address is harmless (futex waiters recheck their word). */
  st_release(&w->futex, 1);
  weft__futex_wake(&w->futex, 1);
}


/* ------------------------------------------------------------------ */
/* Cancellation: arm, disarm, fire (wait.h)                           */
/* ------------------------------------------------------------------ */

int weft__cancel_arm(struct weft__waiter *w) {
  struct weft__g *g = w->g;
  weft__spin_lock(&g->lk);
  if (g->canceled) {
    weft__spin_unlock(&g->lk);
    return -ECANCELED;
  }
  w->cancelable = true;
  g->cwait = w;
  weft__spin_unlock(&g->lk);
  return 0;
}

void weft__cancel_disarm(struct weft__waiter *w) {
  struct weft__g *g = w->g;
  weft__spin_lock(&g->lk);
  g->cwait = NULL;
  weft__spin_unlock(&g->lk);
}

void weft__cancel_fire(struct weft__waiter *w) {
  if (!weft__waiter_claim(w, WEFT__WAIT_CANCEL))
    return; /* something else woke it first */
  int running = WEFT__PARK_RUNNING;
  /* A green thread still on its way to park is not runnable yet: leave
   * the wake to its post action (the handshake above). */
  if (!w->g || !atomic_compare_exchange_strong_explicit(
                   &w->park, &running, WEFT__PARK_WAKE, memory_order_acq_rel,
                   memory_order_acquire))
    weft__waiter_wake(w);
}

#define KTHREAD_SPINS 200

static int ncpus(void) {
  static _Atomic int n;
  int v = ld_relaxed(&n);
  if (!v) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    v = c > 0 ? (int)c : 1;
    st_relaxed(&n, v);
  }
  return v;
}

struct park_post {
  weft__post p;
  struct weft__waiter *w;
  void (*unlock)(void *);
  void *arg;
  int64_t deadline;
  struct weft__timer timer;
};

static void on_deadline(struct weft__timer *t) {
  struct weft__waiter *w = t->arg;
  if (weft__waiter_claim(w, WEFT__WAIT_TIMEOUT))
    weft__waiter_wake(w);
}

/* The post action of a green thread's park with a deadline or a cancel
 * armed (the others take weft__park_unlock, wait.h).  It runs on the next
 * context, once the parked green thread is saved.  It arms the timer, does
 * the cancel handshake, and releases the lock that made the thread
 * findable; from each of these on, something may wake the thread: its
 * timer, run by any worker (an idle one runs the others' due timers), a
 * canceler, a waker.  The thread and its frame (pp, the waiter) must stay
 * until the end here, so the heap's lock is held throughout: the timer
 * cannot fire, and a thread woken otherwise cannot leave its wait before
 * it takes that lock to cancel its timer.  What the end needs is copied
 * first.  Without a deadline there is no timer, and the cancel handshake
 * is done before the unlock, which touches nothing in the frame. */
static void park_post_fn(weft__post *p) {
  struct park_post *pp = (struct park_post *)p;
  struct weft__waiter *w = pp->w;
  struct weft__g *g = pp->p.g;
  void (*unlock)(void *) = pp->unlock;
  void *arg = pp->arg;
  int64_t deadline = pp->deadline;
  struct weft__worker *self = NULL;
  bool wake = false, first = false;
  if (deadline != WEFT_FOREVER) {
    self = weft__worker_get();
    pp->timer.when = deadline;
    pp->timer.fn = on_deadline;
    pp->timer.arg = w;
    pp->timer.idx = -1;
    atomic_init(&pp->timer.heap, NULL);
    weft__spin_lock(&self->timers.lk);
    int r = weft__timer_add_locked(&self->timers, &pp->timer);
    if (r < 0 && weft__waiter_claim(w, WEFT__WAIT_TIMEOUT))
      wake = true; /* no memory for a timer: time out now */
    first = r > 0;
  }
  if (w->cancelable) {
    int running = WEFT__PARK_RUNNING;
    /* acq_rel: pairs with weft_cancel's CAS (wait.h) */
    if (!atomic_compare_exchange_strong_explicit(
            &w->park, &running, WEFT__PARK_SAVED, memory_order_acq_rel,
            memory_order_acquire))
      wake = true; /* canceled before we were saved: our wake to do */
  }
  if (unlock)
    unlock(arg);
  if (self) {
    weft__spin_unlock(&self->timers.lk);
    if (first)
      weft__timer_first(self, deadline);
  }
  if (wake)
    weft__ready(g);
}

int weft__waiter_park_slow(struct weft__waiter *w, void (*unlock)(void *),
                           void *arg, int64_t deadline) {
  if (w->g) {
    w->g->wait_reason = w->reason ? w->reason : "wait";
    /* Field by field: an initializer would zero the timer too, which
     * park_post_fn sets up only when there is a deadline. */
    struct park_post pp;
    pp.p.fn = park_post_fn;
    pp.p.g = w->g;
    pp.w = w;
    pp.unlock = unlock;
    pp.arg = arg;
    pp.deadline = deadline;
    weft__park(&pp.p);
    if (deadline != WEFT_FOREVER)
      weft__timer_cancel(&pp.timer);
    return ld_acquire(&w->sel);
  }

  if (unlock)
    unlock(arg);
  /* A kernel thread spins a little before it sleeps: a futex sleep and
   * wake cost two system calls and a trip through the kernel scheduler,
   * while a partner on another CPU often answers within a microsecond or
   * two.  On one CPU spinning only delays the partner. */
  if (ncpus() > 1)
    for (int i = 0; i < KTHREAD_SPINS && !ld_acquire(&w->futex); i++)
      weft__cpu_relax();
  while (!ld_acquire(&w->futex)) {
    int r = weft__futex_wait(&w->futex, 0, deadline);
    if (r == -ETIMEDOUT && deadline != WEFT_FOREVER) {
      if (weft__waiter_claim(w, WEFT__WAIT_TIMEOUT))
        return WEFT__WAIT_TIMEOUT;
      deadline = WEFT_FOREVER; /* a waker won: wait for its wake */
    }
  }
  return ld_acquire(&w->sel);
}

int weft__wq_wait(weft__spin *lk, struct weft__wq *q, int64_t deadline,
                  const char *reason, bool cancelable) {
  struct weft__waiter w;
  struct weft__wq_entry e = {.sel = 0};
  weft__waiter_init(&w);
  w.reason = reason;
  w.exclusive = !cancelable && deadline == WEFT_FOREVER;
  if (cancelable && weft__cancel_arm(&w) < 0) {
    weft__spin_unlock(lk);
    return -ECANCELED;
  }
  e.w = &w;
  weft__wq_push(q, &e);
  int sel = weft__waiter_park(&w, weft__unlock_spin, lk, deadline);
  if (cancelable)
    weft__cancel_disarm(&w);
  if (sel == 0)
    return 0;
  weft__spin_lock(lk);
  if (e.linked)
    weft__wq_remove(q, &e);
  weft__spin_unlock(lk);
  return sel == WEFT__WAIT_CANCEL ? -ECANCELED : -ETIMEDOUT;
}
