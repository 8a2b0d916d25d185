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
};

/*
 * Deadlines.  A green thread has one timer (g->dl), which stays armed
 * from one wait to the next: a server's connection thread waits with a
 * deadline for every request, and is nearly always woken by its data
 * first.  Taking the timer out of the heap at every such wake, and putting
 * it back at the next wait, moved a dozen other threads' timers each time
 * (cache lines of parked threads, often last written on the other CPU):
 * 4% of an HTTP server's CPU with 1,000 connections.  Instead a wait sets
 * its deadline beside the timer (g->dl_when), and the timer's key is only
 * ever lowered: a later deadline leaves the timer where it is, and when
 * the stale key comes due the timer is put back at the real deadline.
 * So a thread whose deadlines move forward pays one heap operation per
 * deadline period, not one per wait.  Equal deadlines still end in the
 * order their waits were armed: each wait takes a number in its heap's
 * arming order (g->dl_seq), and a timer whose key or number is not its
 * wait's goes back in with the wait's.  A wake only clears g->dl_waiter,
 * under the heap's lock (which the timer's callback runs under), after
 * which the callback cannot touch the waiter in the finished wait's frame.
 * An exit takes the timer out (weft__deadline_exit).
 */
static void on_deadline(struct weft__timer *t) {
  struct weft__g *g = t->arg;
  struct weft__waiter *w = g->dl_waiter;
  if (!w)
    return; /* no wait: the timer stays out until the next one */
  if (g->dl_when != t->when || g->dl_seq != t->seq) {
    /* The wait's deadline is later than the key (or the same, armed
     * after it): back in, at the wait's deadline and number (it was just
     * taken out: there is room). */
    t->when = g->dl_when;
    t->seq = g->dl_seq;
    weft__timer_rearm_locked(ld_relaxed(&t->heap), t);
    return;
  }
  if (weft__waiter_claim(w, WEFT__WAIT_TIMEOUT))
    weft__waiter_wake(w);
}

/* Sets g's timer for a wait by w until deadline.  An armed timer whose
 * key is not later than the deadline stays where it is; one that must
 * come due earlier moves up in this worker's heap, or, from another
 * worker's (the thread has moved), comes out of that heap and into this
 * one: that worker may be asleep until its earliest timer, and only a
 * worker that is running sees a new earliest timer of its own heap in
 * time (weft__timer_first).  Returns the heap, whose lock it leaves held,
 * and sets *first if the timer is now that heap's earliest (which it can
 * only be in this worker's heap); NULL (nothing held) if there is no
 * memory for the timer. */
static struct weft__timers *deadline_arm(struct weft__g *g,
                                         struct weft__waiter *w,
                                         int64_t deadline, bool *first) {
  struct weft__timer *t = &g->dl;
  struct weft__timers *here = &weft__worker_get()->timers;
  struct weft__timers *ts = atomic_load_explicit(&t->heap,
                                                 memory_order_relaxed);
  if (ts) {
    weft__spin_lock(&ts->lk);
    if (t->idx < 0) { /* out: armed again below */
      weft__spin_unlock(&ts->lk);
      ts = NULL;
    } else if (deadline >= t->when) {
      g->dl_seq = weft__timers_seq_locked(ts);
    } else if (ts == here) {
      *first = weft__timer_lower_locked(ts, t, deadline) > 0;
      g->dl_seq = t->seq;
    } else {
      weft__timer_remove_locked(ts, t);
      weft__spin_unlock(&ts->lk);
      ts = NULL;
    }
  }
  if (!ts) {
    ts = here;
    weft__spin_lock(&ts->lk);
    t->when = deadline;
    t->fn = on_deadline;
    t->arg = g;
    int r = weft__timer_add_locked(ts, t);
    if (r < 0) {
      weft__spin_unlock(&ts->lk);
      return NULL;
    }
    *first = r > 0;
    g->dl_seq = t->seq;
  }
  g->dl_waiter = w;
  g->dl_when = deadline;
  return ts;
}

/* After a wait with a deadline: the timer may no longer end it. */
static void deadline_done(struct weft__g *g) {
  struct weft__timers *ts = atomic_load_explicit(&g->dl.heap,
                                                 memory_order_relaxed);
  if (!ts)
    return; /* never armed (no memory): nothing can read dl_waiter */
  weft__spin_lock(&ts->lk);
  g->dl_waiter = NULL;
  weft__spin_unlock(&ts->lk);
}

void weft__deadline_exit(struct weft__g *g) {
  if (atomic_load_explicit(&g->dl.heap, memory_order_relaxed)) {
    weft__timer_cancel(&g->dl);
    atomic_store_explicit(&g->dl.heap, NULL, memory_order_relaxed);
  }
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
 * it takes that lock to let go of its timer.  What the end needs is copied
 * first.  Without a deadline there is no timer, and the cancel handshake
 * is done before the unlock, which touches nothing in the frame. */
static void park_post_fn(weft__post *p) {
  struct park_post *pp = (struct park_post *)p;
  struct weft__waiter *w = pp->w;
  struct weft__g *g = pp->p.g;
  void (*unlock)(void *) = pp->unlock;
  void *arg = pp->arg;
  int64_t deadline = pp->deadline;
  struct weft__timers *ts = NULL;
  bool wake = false, first = false;
  if (deadline != WEFT_FOREVER) {
    ts = deadline_arm(g, w, deadline, &first);
    if (!ts && weft__waiter_claim(w, WEFT__WAIT_TIMEOUT))
      wake = true; /* no memory for a timer: time out now */
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
  if (ts) {
    weft__spin_unlock(&ts->lk);
    if (first)
      weft__timer_first(weft__worker_get(), deadline); /* ts is ours */
  }
  if (wake)
    weft__ready(g);
}

int weft__waiter_park_slow(struct weft__waiter *w, void (*unlock)(void *),
                           void *arg, int64_t deadline) {
  if (w->g) {
    w->g->wait_reason = w->reason ? w->reason : "wait";
    struct park_post pp = {.p = {.fn = park_post_fn, .g = w->g},
                           .w = w,
                           .unlock = unlock,
                           .arg = arg,
                           .deadline = deadline};
    weft__park(&pp.p);
    if (deadline != WEFT_FOREVER)
      deadline_done(w->g);
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
