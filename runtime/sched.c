/*
 * sched.c - the M:N scheduler.
 *
 * The actors (as in the Go runtime's proc.go):
 *   green thread (G)  a function with its own guarded stack, saved context,
 *                     state, id, name and result (gthread.h).
 *   worker (W)        a kernel thread that runs green threads.  It owns a
 *                     local run queue (runq.h), a one-slot runnext for the
 *                     green thread just woken by the running one, a timer
 *                     heap, a stack cache, counters, and a scheduler context
 *                     on its own pthread stack (the "g0" of Go).
 *   scheduler         the workers, the global injection queue, the idle list
 *                     and the counts of idle and spinning workers.
 *   waiter            what blocking primitives queue (wait.h).
 *
 * Switching.  A green thread that blocks, yields or exits picks its
 * successor itself (runnext, the local queue, now and then the global queue)
 * and switches to it directly: one register swap, no trip through the
 * scheduler context.  Only when nothing is runnable locally does it switch
 * to the worker's scheduler context, which runs timers, steals from other
 * workers, and parks.  Whatever must happen after the switch (releasing the
 * lock that makes the parked thread findable, re-queueing a yielder, freeing
 * an exited thread's stack) is a post-switch action (sched.h) run by the
 * context that resumes.
 *
 * Invariants.
 *  - A G is on at most one of: a run queue, runnext, pnext, a yield
 *    queue, a worker's cur, or a wait queue whose lock it released in its
 *    post-switch action.
 *  - A G's context is saved before anything can make it runnable again
 *    (pnext and the yield queue are owner-only, so a G may go there just
 *    before its switch: its worker takes it back only after).
 *  - Only a worker writes its runq tail and its cur.
 *
 * Parking (Go's spinning-M rule).  A worker without work spins (steals) if
 * fewer than half the busy workers are already spinning, else it parks.
 * Before parking it publishes itself as idle (seq_cst), then checks every
 * queue again; a thread that adds work to the global queue does so with a
 * seq_cst RMW and then looks at the idle count.  One of the two sees the
 * other, so a wake is never lost.  Work put on a worker's own queues needs
 * no such dance: that worker is running and will get to it.  wakep() wakes
 * an idle worker only when no worker is spinning, and a spinning worker
 * that finds work wakes another, so bursts fan out without a thundering
 * herd, and an idle runtime has every worker asleep in futex_wait.
 *
 * Private successor.  While no worker is idle, the thread a worker wakes
 * (or the parent of a thread it spawns) goes to its owner-only pnext
 * slot instead of runnext: no one would steal it at that moment anyway,
 * and taking it back costs no atomic RMW.  Otherwise runnext, which idle
 * workers can steal from.  A newer wake displaces an older one to the
 * run queue (the newest message is the one to act on), but a spawn does
 * not: the spawner goes to the run queue instead, so that a consumer
 * woken just before runs right after the child.
 *
 * Yield.  A yielder goes to the tail of its worker's local queue, or,
 * while no worker is idle (so no one would steal it anyway), to the tail
 * of the worker's private yield queue: owner-only, so a yield costs no
 * atomic RMW.  Yielded threads run when nothing local is, and first every
 * SLOW_EVERY picks; if a worker goes idle, the next slow pick moves them
 * to the local queue, where it can steal them.  The price: while a thread
 * keeps its worker without ever switching (a hog, which the monitor
 * reports), the yielded threads behind it wait too, instead of being
 * stolen; the same is true of pnext, and of Tokio's LIFO slot.
 * weft__yield_local always takes the yield queue: a receiver that found a
 * buffered channel empty lets its worker's producers run first (chan.c),
 * and waking an idle worker to steal it would undo that.
 *
 * Fairness.  runnext is skipped after a streak of runnext picks, so two
 * green threads passing a message back and forth cannot starve the rest
 * of the queue, and the global queue is checked first every
 * SLOW_EVERY * GLOBAL_EVERY picks.  The end of a streak also takes
 * runnext before pnext, so that a pair passing the worker through pnext
 * cannot starve a thread in runnext either.
 *
 * Rejected designs.  Always switching through the scheduler context (two
 * switches per block; Go does it for stack-growth reasons weft does not
 * have).  A single global run queue (a lock on every switch).  A
 * handshake flag on every wake to cover a green thread that is still
 * running (the post-switch action makes it unnecessary).
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "inject.h"
#include "monitor.h"
#include "netpoll.h"
#include "preempt.h"
#include "sched.h"

#if WEFT_VALGRIND
#include <valgrind/memcheck.h>
#endif

struct weft__rt weft__rt;
__thread struct weft__worker *volatile weft__tls_w
    __attribute__((tls_model("initial-exec")));

#define RUNNEXT_STREAK_MAX 16
#define SPIN_ROUNDS 4

/* ------------------------------------------------------------------ */
/* Idle workers and wakeups                                           */
/* ------------------------------------------------------------------ */

/* Requires weft__rt.idle_lk. */
static void idle_push_locked(struct weft__worker *w) {
  weft__dassert(weft__spin_held(&weft__rt.idle_lk));
  w->idle_pos = weft__rt.nidle_list;
  weft__rt.idle[weft__rt.nidle_list++] = w;
}

/* Requires weft__rt.idle_lk. */
static void idle_remove_locked(struct weft__worker *w) {
  weft__dassert(weft__spin_held(&weft__rt.idle_lk));
  int i = w->idle_pos;
  struct weft__worker *last = weft__rt.idle[--weft__rt.nidle_list];
  weft__rt.idle[i] = last;
  last->idle_pos = i;
  w->idle_pos = -1;
}

void weft__sched_unpark(struct weft__worker *w) {
  /* seq_cst: pairs with the load-acquire in the park loop, and with the
   * poller, which publishes itself and then reads parked (netpoll.c). */
  atomic_store(&w->parked, 0);
  if (!weft__netpoll_break(w))
    weft__futex_wake(&w->parked, 1);
}

/* Wakes an idle worker to spin, unless one is spinning already. */
static void wakep(void) {
  if (ld_relaxed(&weft__rt.nidle) == 0 || ld_relaxed(&weft__rt.nspinning))
    return;
  int zero = 0;
  if (!atomic_compare_exchange_strong(&weft__rt.nspinning, &zero, 1))
    return;
  weft__spin_lock(&weft__rt.idle_lk);
  struct weft__worker *w = NULL;
  if (weft__rt.nidle_list) {
    w = weft__rt.idle[weft__rt.nidle_list - 1];
    idle_remove_locked(w);
    atomic_fetch_sub(&weft__rt.nidle, 1);
    w->spinning = true; /* read by w after the futex wake */
  }
  weft__spin_unlock(&weft__rt.idle_lk);
  if (w)
    weft__sched_unpark(w);
  else
    atomic_fetch_sub(&weft__rt.nspinning, 1);
}

static void reset_spinning(struct weft__worker *w) {
  w->spinning = false;
  if (atomic_fetch_sub(&weft__rt.nspinning, 1) == 1)
    wakep(); /* keep one spinner looking while work keeps coming */
}

/* ------------------------------------------------------------------ */
/* Pinned green threads                                               */
/* ------------------------------------------------------------------ */

/*
 * Pinned.  A pinned green thread (weft_gthread_attr.pinned, weft_pin) runs
 * only on its worker, so that C thread-locals it keeps across calls stay
 * its own.  Nothing on the switch path looks at the pin: a pinned thread
 * moves through its worker's queues like any other, and the few places
 * where another worker could take it (a wake on another worker, a steal
 * from the run queue or runnext, the global queue, which it never enters)
 * send it to its worker's inbox instead.  The worker takes from its inbox
 * in the slow pick (every SLOW_EVERY picks) and before it parks, so a
 * pinned thread woken elsewhere waits at most that long behind its
 * worker's other threads.  Sending wakes the worker if it is parked
 * (Dekker, as for the global queue: the sender counts npin, seq_cst, then
 * looks at the idle list; the worker publishes itself idle, then reads
 * npin in any_work).
 */
/* Takes v off the idle list if it is on it (then the caller unparks it);
 * false if it is not idle, or a waker already took it. */
static bool take_idle(struct weft__worker *v) {
  weft__spin_lock(&weft__rt.idle_lk);
  bool idle = v->idle_pos >= 0;
  if (idle) {
    idle_remove_locked(v);
    atomic_fetch_sub(&weft__rt.nidle, 1);
  }
  weft__spin_unlock(&weft__rt.idle_lk);
  return idle;
}

static void pin_send(struct weft__worker *h, struct weft__g *g) {
  g->state = WEFT__G_RUNNABLE;
  g->next = NULL;
  weft__spin_lock(&h->pin_lk);
  if (h->pin_tail)
    h->pin_tail->next = g;
  else
    h->pin_head = g;
  h->pin_tail = g;
  atomic_fetch_add(&h->npin, 1); /* seq_cst */
  weft__spin_unlock(&h->pin_lk);
  if (take_idle(h))
    weft__sched_unpark(h);
}

bool weft__pin_divert(struct weft__g *g, int self) {
  int home = g->pin - 1;
  if (home < 0 || home == self)
    return false;
  pin_send(weft__rt.w[home], g);
  return true;
}

static struct weft__g *pin_take(struct weft__worker *w) {
  if (WEFT_LIKELY(!ld_relaxed(&w->npin)))
    return NULL;
  weft__spin_lock(&w->pin_lk);
  struct weft__g *g = w->pin_head;
  if (g) {
    if (!(w->pin_head = g->next))
      w->pin_tail = NULL;
    g->next = NULL;
    atomic_fetch_sub_explicit(&w->npin, 1, memory_order_relaxed);
  }
  weft__spin_unlock(&w->pin_lk);
  return g;
}

/* ------------------------------------------------------------------ */
/* Picking the next green thread                                      */
/* ------------------------------------------------------------------ */

void weft__batch_begin(struct weft__worker *w) {
  w->in_timers = true;
  w->batch_woken = 0;
}

/* weft__ready between weft__batch_begin and weft__batch_end.  What the run
 * queue has no room for goes to the global queue, after it, keeping the
 * batch's order (only the netpoller gets there: run_timers_of wakes no
 * more than there is room for). */
WEFT_NOINLINE static void ready_batch(struct weft__worker *w,
                                      struct weft__g *g) {
  if (weft__runq_len(&w->q) < WEFT__RUNQ_SIZE)
    weft__runq_put(&w->q, g, &weft__rt.gq);
  else if (g->pin > 0) /* pinned here: never to the global queue */
    pin_send(w, g);
  else
    weft__globq_put(&weft__rt.gq, g);
  w->batch_woken++;
}

void weft__batch_end(struct weft__worker *w) {
  w->in_timers = false;
  /* One thread this worker runs itself; for more, wake one idle worker,
   * which wakes another if it finds work (see wakep). */
  if (w->batch_woken > 1)
    wakep();
}

/* Runs the due timers of ts (w's own heap, or another worker's) on w.
 * The threads they wake go to the tail of w's run queue in deadline order
 * (equal deadlines in arming order, timer.h), not through runnext, which
 * would run the last one first.  Each timer wakes at most one thread, and
 * only as many run as the queue has room for: more would overflow half of
 * it, the earliest, to the global queue, behind the later ones.  The rest
 * stay due on the heap, to run, still first, at the next call (the slow
 * pick, every SLOW_EVERY picks, or findrunnable). */
static int run_timers_of(struct weft__worker *w, struct weft__timers *ts,
                         int64_t now) {
  /* Thieves only ever make more room. */
  int room = WEFT__RUNQ_SIZE - (int)weft__runq_len(&w->q);
  weft__batch_begin(w);
  int ran = weft__timers_run(ts, now, room);
  weft__batch_end(w);
  return ran;
}

static void run_timers(struct weft__worker *w) {
  if (weft__timers_next(&w->timers) != WEFT_FOREVER)
    run_timers_of(w, &w->timers, weft__now());
}

/* A worker that has run out of work runs the others' due timers (Go's
 * findrunnable does the same): a busy worker runs its own only when it
 * picks, every SLOW_EVERY picks, and its threads may run long between
 * picks, or its run queue be long.  Returns whether any ran. */
static bool steal_timers(struct weft__worker *w) {
  int64_t now = 0;
  bool ran = false;
  for (int i = 0; i < weft__rt.nworkers; i++) {
    struct weft__worker *v = weft__rt.w[i];
    int64_t next = weft__timers_next(&v->timers);
    if (v == w || next == WEFT_FOREVER)
      continue;
    if (!now)
      now = weft__now();
    if (next <= now && run_timers_of(w, &v->timers, now))
      ran = true;
  }
  return ran;
}

/* The deadline an idle worker may sleep until: its own next timer, and,
 * for the first idle worker (by index), the next timer of every worker
 * that is not asleep, which it then runs for them (steal_timers).  One
 * watcher is enough, and the others do not all wake for the same timer;
 * an asleep worker wakes for its own. */
static int64_t watch_deadline(struct weft__worker *w) {
  int64_t dl = weft__timers_next(&w->timers);
  for (int i = 0; i < weft__rt.nworkers; i++) {
    struct weft__worker *v = weft__rt.w[i];
    if (v == w)
      continue;
    if (ld_relaxed(&v->parked)) {
      if (i < w->index)
        return weft__timers_next(&w->timers); /* v watches */
      continue;
    }
    int64_t next = weft__timers_next(&v->timers);
    if (next < dl)
      dl = next;
  }
  return dl;
}

/* watch_deadline, published in w->sleep_until for weft__timer_first.
 * Store, fence, load again, against its store of the heap's next, fence,
 * load of parked and sleep_until: either it sees w asleep past its new
 * timer and wakes w, or w sees the timer here. */
static int64_t park_deadline(struct weft__worker *w) {
  int64_t dl = watch_deadline(w);
  for (;;) {
    st_relaxed(&w->sleep_until, dl);
    weft__fence();
    int64_t again = watch_deadline(w);
    if (again >= dl)
      return dl;
    dl = again;
  }
}

void weft__timer_first(struct weft__worker *w, int64_t when) {
  /* A worker with nothing else to run sleeps until its own next timer. */
  if (!w->cur)
    return;
  weft__fence(); /* see park_deadline */
  if (!ld_relaxed(&weft__rt.nidle))
    return;
  for (int i = 0; i < weft__rt.nworkers; i++) {
    struct weft__worker *v = weft__rt.w[i];
    if (v == w || !ld_relaxed(&v->parked))
      continue;
    if (when < ld_relaxed(&v->sleep_until)) {
      /* Woken as by wakep, only not to spin: it computes its deadline
       * afresh before it parks again. */
      if (take_idle(v))
        weft__sched_unpark(v);
    }
    return; /* the first asleep worker watches */
  }
}

static struct weft__g *take_runnext(struct weft__worker *w) {
  if (!ld_relaxed(&w->runnext))
    return NULL;
  return atomic_exchange_explicit(&w->runnext, NULL, memory_order_acquire);
}

/* Owner only: the private successor. */
static inline struct weft__g *take_pnext(struct weft__worker *w) {
  struct weft__g *g = w->pnext;
  if (g)
    w->pnext = NULL;
  return g;
}

/* Owner only: the private successor first, then runnext. */
static inline struct weft__g *take_next(struct weft__worker *w) {
  struct weft__g *g = take_pnext(w);
  return g ? g : take_runnext(w);
}

/* Every SLOW_EVERY picks a worker runs its due timers (a green thread that
 * keeps switching never returns to the scheduler loop), and every
 * GLOBAL_EVERY slow rounds it takes from the global queue first, so that
 * the global queue cannot starve. */
#define SLOW_EVERY 16
#define GLOBAL_EVERY 4

static inline struct weft__g *yq_take(struct weft__worker *w) {
  struct weft__g *g = w->yq_head;
  if (g && !(w->yq_head = g->next))
    w->yq_tail = NULL;
  return g;
}

static inline void yq_put(struct weft__worker *w, struct weft__g *g) {
  g->next = NULL;
  if (w->yq_tail)
    w->yq_tail->next = g;
  else
    w->yq_head = g;
  w->yq_tail = g;
}

/* Takes the head of the yield queue to run now, and, if a worker is idle,
 * moves the rest to the run queue, where it can steal them, and wakes it.
 * (Publishing the head too would let this worker take it straight back
 * from its run queue before the idle one even woke.) */
static struct weft__g *yq_take_publish(struct weft__worker *w) {
  struct weft__g *g = yq_take(w), *x;
  if (w->yq_head && ld_relaxed(&weft__rt.nidle)) {
    while ((x = yq_take(w)))
      weft__runq_put(&w->q, x, &weft__rt.gq);
    weft__fence(); /* before wakep's loads */
    wakep();
  }
  return g;
}

WEFT_NOINLINE static struct weft__g *pick_slow(struct weft__worker *w) {
  w->tick = SLOW_EVERY;
  run_timers(w);
  w->poll_due = true; /* after the switch: see weft__post_run */
  struct weft__g *g = pin_take(w);
  if (g)
    return g;
  /* Yielded threads wait behind wakes, but not forever. */
  if (w->yq_head)
    return yq_take_publish(w);
  if (++w->slow_rounds % GLOBAL_EVERY == 0)
    return weft__globq_get(&weft__rt.gq, NULL, 1);
  return NULL;
}

void weft__sched_poll_due(struct weft__worker *w) {
  w->poll_due = false;
  weft__netpoll(w, WEFT__NP_DUE);
}

/* Local choice, cheap enough for every switch. */
static WEFT_INLINE struct weft__g *pick_local(struct weft__worker *w) {
  struct weft__g *g;

  if (WEFT_UNLIKELY(--w->tick == 0) && (g = pick_slow(w)))
    return g;
  bool skip_runnext = w->runnext_streak >= RUNNEXT_STREAK_MAX;
  if (weft_debug && weft__rt.seed)
    skip_runnext = skip_runnext || (weft__rand(&w->rng) & 3) == 0;
  if (!skip_runnext && (g = take_next(w))) {
    w->runnext_streak++;
    return g;
  }
  w->runnext_streak = 0;
  if ((g = weft__runq_get(&w->q))) {
    weft__runq_prefetch(&w->q);
    return g;
  }
  /* The end of a streak is runnext's turn before pnext's: a pair that
   * passes the worker back and forth through pnext (a spawner and its
   * children, a sender and its receiver) refills it at every switch, and
   * a thread woken into runnext (while a worker was idle) would wait
   * behind the pair for as long as it runs: seconds, measured. */
  if ((g = take_runnext(w)) || (g = take_pnext(w)))
    return g;
  if ((g = weft__globq_get(&weft__rt.gq, &w->q, WEFT__RUNQ_SIZE / 4)))
    return g;
  return yq_take(w);
}

static struct weft__g *steal_from(struct weft__worker *w,
                                  struct weft__worker *v, bool take_next) {
  struct weft__g *g = weft__runq_steal(&w->q, &v->q, w->index);
  if (!g && take_next && (g = take_runnext(v)) && WEFT_UNLIKELY(g->pin) &&
      weft__pin_divert(g, w->index))
    g = NULL;
  return g;
}

static bool any_work(struct weft__worker *w) {
  /* seq_cst loads: the other half of the idle/queue Dekker pattern */
  if (atomic_load(&weft__rt.gq.n) || atomic_load(&w->npin))
    return true;
  for (int i = 0; i < weft__rt.nworkers; i++) {
    struct weft__worker *v = weft__rt.w[i];
    if (atomic_load(&v->runnext) || weft__runq_len(&v->q))
      return true;
  }
  return false;
}

/*
 * Threads that are not workers (main spawning and joining in a loop, a
 * server's own threads handing work over) reach the workers through the
 * global queue, and a worker parked on its futex costs each such handoff a
 * wake system call and a trip through the kernel's scheduler: microseconds
 * on both sides, for work that takes nanoseconds.  So while such handoffs
 * keep coming (one within the last FOREIGN_RECENT_NS), one worker at a
 * time, about to park, watches the global queue a little longer
 * (FOREIGN_WATCH_NS) instead.  Green threads that only talk to each other
 * never pay this: their wakes do not go through the global queue.
 */
#define FOREIGN_RECENT_NS 200000
#define FOREIGN_WATCH_NS 30000

static bool watch_globq(struct weft__worker *w) {
  int64_t now = weft__now();
  if (now - ld_relaxed(&weft__rt.foreign_last) > FOREIGN_RECENT_NS)
    return false;
  int zero = 0;
  if (ld_relaxed(&weft__rt.gq_watcher) ||
      !atomic_compare_exchange_strong(&weft__rt.gq_watcher, &zero, 1))
    return false;
  /* Counted as spinning, so that the handoffs we watch for do not wake
   * the parked workers (wakep); parking after the watch checks the queues
   * again (any_work), as a spinning worker's does. */
  atomic_fetch_add(&weft__rt.nspinning, 1);
  bool found = false;
  for (int64_t end = now + FOREIGN_WATCH_NS;;) {
    for (int i = 0; i < 64 && !found; i++) {
      found = ld_relaxed(&weft__rt.gq.n) != 0 || weft__has_local_work(w) ||
              ld_relaxed(&w->npin) != 0 ||
              ld_relaxed(&weft__rt.state) != WEFT__RT_RUNNING;
      weft__cpu_relax();
    }
    if (found || weft__now() >= end)
      break;
  }
  atomic_fetch_sub(&weft__rt.nspinning, 1); /* seq_cst */
  st_release(&weft__rt.gq_watcher, 0);
  /* One handoff is ours to run; more are worth another worker. */
  if (found && ld_relaxed(&weft__rt.gq.n) > 1)
    wakep();
  return found;
}

/* On the scheduler context: finds work, or parks until there may be some.
 * Returns NULL when the runtime is stopping. */
static struct weft__g *findrunnable(struct weft__worker *w) {
  int n = weft__rt.nworkers;

  for (;;) {
    if (WEFT_UNLIKELY(ld_acquire(&weft__rt.state) != WEFT__RT_RUNNING))
      return NULL;
    run_timers(w);
    struct weft__g *g = pin_take(w);
    if (!g)
      g = pick_local(w);
    if (g) {
      if (w->spinning)
        reset_spinning(w);
      return g;
    }

    /* Fds that became ready and other workers' due timers, before
     * taking other workers' threads. */
    w->poll_due = false;
    if ((weft__netpoll(w, WEFT_NOWAIT) > 0 || steal_timers(w)) &&
        (g = pick_local(w))) {
      if (w->spinning)
        reset_spinning(w);
      return g;
    }

    if (!w->spinning && n > 1 &&
        2 * ld_relaxed(&weft__rt.nspinning) < n - ld_relaxed(&weft__rt.nidle)) {
      w->spinning = true;
      atomic_fetch_add(&weft__rt.nspinning, 1);
    }
    if (w->spinning) {
      for (int round = 0; round < SPIN_ROUNDS && !g; round++) {
        unsigned start = (unsigned)weft__rand(&w->rng);
        for (int i = 0; i < n && !g; i++) {
          struct weft__worker *v = weft__rt.w[(start + (unsigned)i) % n];
          if (v != w)
            g = steal_from(w, v, round == SPIN_ROUNDS - 1);
        }
        if (!g)
          g = weft__globq_get(&weft__rt.gq, &w->q, WEFT__RUNQ_SIZE / 4);
      }
      if (g) {
        weft__stat_inc(&w->st.steals);
        reset_spinning(w);
        return g;
      }
    }

    if (watch_globq(w))
      continue;

    /* Park: stop spinning, publish ourselves as idle, then look once
     * more.  From here on w->spinning is written by a waker, under
     * idle_lk, while we are on the idle list. */
    if (w->spinning) {
      w->spinning = false;
      atomic_fetch_sub(&weft__rt.nspinning, 1); /* seq_cst */
    }
    st_relaxed(&w->parked, 1);
    weft__spin_lock(&weft__rt.idle_lk);
    idle_push_locked(w);
    atomic_fetch_add(&weft__rt.nidle, 1); /* seq_cst */
    weft__spin_unlock(&weft__rt.idle_lk);
    if (any_work(w) || ld_acquire(&weft__rt.state) != WEFT__RT_RUNNING) {
      weft__spin_lock(&weft__rt.idle_lk);
      if (w->idle_pos >= 0) {
        idle_remove_locked(w);
        atomic_fetch_sub(&weft__rt.nidle, 1);
        st_relaxed(&w->parked, 0);
      }
      weft__spin_unlock(&weft__rt.idle_lk);
      /* Not in the list: a waker took us and will clear parked. */
    }
    weft__stat_inc(&w->st.parks);
    while (ld_acquire(&w->parked)) {
      int64_t dl = park_deadline(w);
      /* With green threads waiting on fds, one idle worker waits in
       * epoll_wait instead of on its futex (netpoll.c). */
      int nev = weft__netpoll(w, dl);
      bool self_wake;
      if (nev < 0)
        self_wake = weft__futex_wait(&w->parked, 1, dl) == -ETIMEDOUT;
      else
        self_wake = nev > 0 || (dl != WEFT_FOREVER && weft__now() >= dl);
      if (self_wake) {
        weft__spin_lock(&weft__rt.idle_lk);
        if (w->idle_pos >= 0) {
          idle_remove_locked(w);
          atomic_fetch_sub(&weft__rt.nidle, 1);
          st_relaxed(&w->parked, 0);
        }
        weft__spin_unlock(&weft__rt.idle_lk);
      }
      if (nev > 0) /* received: delivered off the idle list */
        weft__netpoll(w, WEFT_NOWAIT);
      if (ld_acquire(&weft__rt.state) != WEFT__RT_RUNNING)
        break;
    }
    weft__mark_run(w, 1);
    weft__monitor_kick();
    /* If a waker chose us, it set w->spinning and counted us. */
  }
}

/* ------------------------------------------------------------------ */
/* Switching                                                          */
/* ------------------------------------------------------------------ */

#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
/* Tell ASan which stack we are about to run on, and that we arrived. */
static inline void asan_begin(void **save, struct weft__kt *kt,
                              struct weft__g *to) {
  if (to)
    __sanitizer_start_switch_fiber(save, to->base + weft__stack_guard_size(),
                                   to->size);
  else
    __sanitizer_start_switch_fiber(save, kt->kstack_lo, kt->kstack_size);
}
static inline void asan_end(void *save) {
  __sanitizer_finish_switch_fiber(save, NULL, NULL);
}
#else
static inline void asan_begin(void **save, struct weft__kt *kt,
                              struct weft__g *to) {
  (void)save, (void)kt, (void)to;
}
static inline void asan_end(void *save) { (void)save; }
#endif

void weft__switch_arrived(void) { asan_end(NULL); }

/* The monitor thread (monitor.c) samples cur and the switch count while the
 * worker writes them.  Under ThreadSanitizer the writes are relaxed atomics
 * so that it can check everything else; otherwise they are plain stores,
 * which on x86-64 is the same instruction, without keeping the compiler
 * from scheduling the switch path freely.  (The switch count goes through
 * weft__stat_inc, util.h, for the same reason.) */
#if WEFT_TSAN
static inline void set_cur(struct weft__worker *w, struct weft__g *g) {
  __atomic_store_n(&w->cur, g, __ATOMIC_RELAXED);
}
#else
static inline void set_cur(struct weft__worker *w, struct weft__g *g) {
  w->cur = g;
}
#endif

/* next becomes the thread w runs. */
static inline void set_running(struct weft__worker *w, struct weft__g *next) {
  set_cur(w, next);
  next->state = WEFT__G_RUNNING;
  next->worker = w->index;
  weft__stat_inc(&w->st.switches);
}

static inline void switch_from(struct weft__worker *w, struct weft__g *g,
                               struct weft__g *next, weft__post *post) {
  g->err = *w->errnop;
  void *r;
  if (next) {
    set_running(w, next);
    asan_begin(g->state == WEFT__G_DONE ? NULL : &g->asan_fake, w->kt, next);
    weft__tsan_to(next->tsan_fiber);
    /* Both sides suspended here, the common case: RET predicts the
     * return.  Otherwise the jump (ctx.h). */
    if (WEFT_LIKELY(!next->fresh && g->state != WEFT__G_DONE))
      r = weft__ctx_switch(&g->ctx, next->ctx, post);
    else
      r = weft__ctx_jump(&g->ctx, next->ctx, post);
  } else {
    set_cur(w, NULL);
    asan_begin(g->state == WEFT__G_DONE ? NULL : &g->asan_fake, w->kt, NULL);
    weft__tsan_to(w->kt->sched_fiber);
    r = weft__ctx_jump(&g->ctx, w->kt->sched_ctx, post);
  }
  /* Resumed, maybe on another worker: `w` is stale now. */
  asan_end(g->asan_fake);
  weft__post_run(r);
  /* errno lives in the kernel thread: restore ours into the errno of the
   * worker we now run on (read afresh through %fs). */
  *weft__worker_get()->errnop = g->err;
}

static WEFT_INLINE struct weft__g *pick_or_stop(struct weft__worker *w) {
  if (WEFT_UNLIKELY(ld_relaxed(&weft__rt.state) != WEFT__RT_RUNNING))
    return NULL;
  return pick_local(w);
}

void weft__park(weft__post *post) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w->cur;
  g->state = WEFT__G_PARKED;
  switch_from(w, g, pick_or_stop(w), post);
}

struct unlock_post {
  weft__post p;
  void (*unlock)(void *);
};

static void post_unlock(weft__post *p) {
  ((struct unlock_post *)p)->unlock(p->arg);
}

/* The unlock of most parks, as one store rather than two indirect calls. */
static void post_unlock_spin(weft__post *p) { weft__spin_unlock(p->arg); }

void weft__park_unlock(const char *reason, void (*unlock)(void *), void *arg) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w->cur;
  struct unlock_post pp = {
      .p = {.fn = unlock == weft__unlock_spin ? post_unlock_spin : post_unlock,
            .g = g,
            .arg = arg},
      .unlock = unlock};
  g->wait_reason = reason;
  g->state = WEFT__G_PARKED;
  switch_from(w, g, pick_or_stop(w), unlock ? &pp.p : NULL);
}

WEFT_NORETURN void weft__exit_switch(weft__post *post) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w->cur;
  g->state = WEFT__G_DONE;
  switch_from(w, g, pick_or_stop(w), post);
  weft__throw("a finished green thread was resumed");
}

struct weft__ctx_resume weft__exit_resume(weft__post *post) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w->cur, *next;
  g->state = WEFT__G_DONE;
  next = pick_or_stop(w);
  if (next) {
    set_running(w, next);
    return (struct weft__ctx_resume){next->ctx, post};
  }
  set_cur(w, NULL);
  return (struct weft__ctx_resume){w->kt->sched_ctx, post};
}

/* A successor displaced by a newer one goes to the local run queue, whose
 * high-water mark the stats report. */
static void displace_next(struct weft__worker *w, struct weft__g *old) {
  weft__runq_put(&w->q, old, &weft__rt.gq);
  uint32_t len = weft__runq_len(&w->q);
  if (len > w->st.runq_hwm)
    weft__stat_set(&w->st.runq_hwm, len);
}

/* Makes g (saved, runnable) the private successor; a previous one goes to
 * the run queue.  Only while no worker is idle: then no one would steal
 * g anyway, and the pick that takes it needs no atomic RMW.  No wake is
 * needed either: a worker that goes idle later sees the run queue. */
static inline void put_pnext(struct weft__worker *w, struct weft__g *g) {
  struct weft__g *old = w->pnext;
  w->pnext = g;
  if (old)
    displace_next(w, old);
}

/* Returns true when the worker now has more than the one green thread in
 * runnext waiting: worth waking an idle worker for. */
static bool put_runnext(struct weft__worker *w, struct weft__g *g) {
  /* Only this worker ever stores a thread into its runnext; thieves only
   * take one out.  An empty slot therefore stays empty until our store,
   * which needs no RMW: this is the message-passing path. */
  if (WEFT_LIKELY(!ld_relaxed(&w->runnext))) {
    /* store-release, pairs with the thieves' exchange */
    st_release(&w->runnext, g);
    if (WEFT_LIKELY(weft__runq_len(&w->q) == 0))
      return false;
    /* The caller wakes a worker: order the store before wakep's loads of
     * the idle counts (the exchange below does this by itself). */
    weft__fence();
    return true;
  }
  struct weft__g *old =
      atomic_exchange_explicit(&w->runnext, g, memory_order_acq_rel);
  if (old) {
    displace_next(w, old);
    return true;
  }
  return weft__runq_len(&w->q) != 0;
}

/* The invariant of the file comment: what is made runnable is a thread
 * whose context is saved (parked, its post-switch action run) or a new
 * one. */
static inline void dassert_saved(const struct weft__g *g) {
  weft__dassert(g->state == WEFT__G_PARKED || (g->fresh && g->state == 0));
}

void weft__ready_entered(struct weft__g *g) {
  dassert_saved(g);
  if (g->epoch != ld_relaxed(&weft__rt.epoch))
    return; /* abandoned by an earlier runtime */
  if (g->pin > 0) {
    pin_send(weft__rt.w[g->pin - 1], g);
    return;
  }
  g->state = WEFT__G_RUNNABLE;
  st_relaxed(&weft__rt.foreign_last, weft__now()); /* see watch_globq */
  weft__globq_put(&weft__rt.gq, g); /* seq_cst, see the file comment */
  wakep();
}

/* A wake from a thread that is not a worker of the running runtime:
 * weft__ready_entered inside weft__foreign_enter, or dropped when the
 * runtime is stopping (sched.h). */
WEFT_NOINLINE static void ready_foreign(struct weft__g *g) {
  if (!weft__foreign_enter())
    return;
  weft__ready_entered(g);
  weft__foreign_leave();
}

void weft__foreign_wake_shutdown(void) {
  weft__futex_wake(&weft__rt.foreign, INT32_MAX);
}

void weft__ready(struct weft__g *g) {
  dassert_saved(g);
  struct weft__worker *w = weft__worker_get();
  if (WEFT_UNLIKELY(!w) ||
      WEFT_UNLIKELY(ld_relaxed(&weft__rt.state) != WEFT__RT_RUNNING)) {
    ready_foreign(g);
    return;
  }
  /* Abandoned by an earlier runtime (a wait it left behind was ended):
   * never resumed, since this runtime does not own it. */
  if (WEFT_UNLIKELY(g->epoch != ld_relaxed(&weft__rt.epoch)))
    return;
  /* Pinned to another worker: there, not here. */
  if (WEFT_UNLIKELY(g->pin) && weft__pin_divert(g, w->index))
    return;
  g->state = WEFT__G_RUNNABLE;
  weft__stat_inc(&w->st.wakes);
  if (WEFT_UNLIKELY(w->in_timers)) {
    ready_batch(w, g);
    return; /* weft__batch_end decides whom to wake */
  }
  if (weft_debug && weft__rt.seed && (weft__rand(&w->rng) & 1)) {
    weft__runq_put(&w->q, g, &weft__rt.gq);
  } else if (WEFT_LIKELY(!ld_relaxed(&weft__rt.nidle))) {
    put_pnext(w, g);
    return;
  } else if (!put_runnext(w, g)) {
    /* The woken thread is the only one waiting here, and it runs as soon
     * as the current one blocks (message passing): waking an idle worker
     * would mostly find nothing to do.  A worker that goes idle still
     * steals it (runnext is stealable). */
    return;
  }
  wakep();
}

static void post_runnext(weft__post *p) {
  struct weft__worker *w = weft__worker_get();
  /* As in weft__ready: the parent alone in runnext resumes as soon as the
   * child blocks or exits, which is usually at once; an idle worker is
   * only worth waking when more than that is waiting. */
  if (put_runnext(w, p->g))
    wakep();
}

static void post_requeue(weft__post *p) {
  struct weft__worker *w = weft__worker_get();
  weft__runq_put(&w->q, p->g, &weft__rt.gq);
}

void weft__run_now(struct weft__g *g) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *self = w->cur;
  self->state = WEFT__G_RUNNABLE;
  if (WEFT_LIKELY(!ld_relaxed(&weft__rt.nidle))) {
    if (WEFT_LIKELY(!w->pnext)) {
      /* Private: only this worker can resume self, and only after the
       * switch has saved it, so no post action is needed. */
      w->pnext = self;
      switch_from(w, self, g, NULL);
      return;
    }
    /* A thread woken just before (a receiver this spawner's child, or the
     * spawner itself, sent to) keeps its turn after the child: displacing
     * it behind the run queue would leave a consumer waiting while its
     * producers pile up. */
    weft__post post = {.fn = post_requeue, .g = self};
    switch_from(w, self, g, &post);
    return;
  }
  weft__post post = {.fn = post_runnext, .g = self};
  switch_from(w, self, g, &post);
}

/* A yielder goes to the run queue only while a worker is idle: wake it to
 * steal.  (An idle worker that checked the queues between the yielder's
 * pick and this put found them empty and went to sleep.) */
static void post_requeue_wake(weft__post *p) {
  post_requeue(p);
  weft__fence(); /* before wakep's loads */
  wakep();
}

/* Switches from g to next, with g queued where only this worker looks,
 * without an atomic RMW and without a post action (no other worker can
 * resume it before it is saved).  The slow pick moves it to the run queue
 * if a worker goes idle. */
static inline void yield_private(struct weft__worker *w, struct weft__g *g,
                                 struct weft__g *next) {
  g->state = WEFT__G_RUNNABLE;
  yq_put(w, g);
  switch_from(w, g, next, NULL);
}

int weft_yield(void) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w ? w->cur : NULL;
  if (!g) {
    sched_yield();
    return 0;
  }
  struct weft__g *next = pick_or_stop(w);
  if (!next && WEFT_UNLIKELY(w->poll_due)) {
    /* The slow pick left a netpoll due, but with no switch to make it
     * after, it would wait for this thread to block: a lone yielder (a
     * long write's slices) would keep the connections it would wake
     * waiting.  Make it here, and look again. */
    weft__sched_poll_due(w);
    next = pick_or_stop(w);
  }
  if (!next) {
    if (ld_relaxed(&weft__rt.state) == WEFT__RT_RUNNING) {
      weft__stat_inc(&w->lone_yields); /* not a hog: it offered to switch */
      return 0;                        /* nothing else to run here */
    }
    /* Stopping: leave for the scheduler context, never to return. */
    weft__post post = {.fn = post_requeue, .g = g};
    g->state = WEFT__G_RUNNABLE;
    switch_from(w, g, NULL, &post);
    return 0;
  }
  if (WEFT_LIKELY(!ld_relaxed(&weft__rt.nidle))) {
    /* Every worker is busy, so no one would steal g now. */
    yield_private(w, g, next);
    return 0;
  }
  g->state = WEFT__G_RUNNABLE;
  weft__post post = {.fn = post_requeue_wake, .g = g};
  switch_from(w, g, next, &post);
  return 0;
}

bool weft__yield_local(void) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w->cur;
  struct weft__g *next = pick_or_stop(w);
  if (!next)
    return false;
  yield_private(w, g, next);
  return true;
}

/* ------------------------------------------------------------------ */
/* Preempted threads                                                  */
/* ------------------------------------------------------------------ */

/*
 * A preempted thread waits in the global queue (a pinned one in its
 * worker's yield queue) with a stub for a context
 * (preempt.c has the whole design).  The switch into it, from a green
 * thread or the scheduler loop, is an ordinary one, so nothing on the
 * switch path knows about preemption.  The stub runs on the preempted
 * thread's stack, below the frame that was interrupted, on the kernel
 * thread whose worker picked it (K3); it finishes the switch that came in
 * and leaves for K3's scheduler context, handing over kt->give, which the
 * loop below sees: it gives the worker, whose running thread is now the
 * preempted one, to the kernel thread that keeps it, and K3 becomes a
 * spare.
 */
WEFT_ENTRY_TEXT static void resume_stub(void *post, void *data) {
  asan_end(NULL);
  weft__post_run(post);
  struct weft__worker *w = weft__tls_w;
  struct weft__kt *kt = w->kt;
  kt->give_to = data;
  asan_begin(&kt->stub_fake, kt, NULL);
  weft__tsan_to(kt->sched_fiber);
  weft__ctx jump_from;
  weft__ctx_jump(&jump_from, kt->sched_ctx, &kt->give);
  weft__throw("a preempted thread's stub was resumed");
}

/* Zeroes the stack the stub used, before the thread it belongs to goes on
 * (its kernel thread waits for the handoff that follows): the return
 * addresses into weft that the stub's frames left there would otherwise
 * be found, stale, by the next preemption's scan of that stack (preempt.c,
 * in_own_code), which would put it off for nothing.  Not memset: ASan's
 * would check the dead frames' poison, which this clears. */
WEFT_NO_ASAN static void stub_clean(struct weft__kt *holder) {
#if WEFT_VALGRIND
  /* Dead frames, which memcheck holds unaddressable. */
  VALGRIND_MAKE_MEM_UNDEFINED(holder->stub_lo,
                              (size_t)(holder->stub_hi - holder->stub_lo));
#endif
  for (volatile uint64_t *p = (volatile uint64_t *)holder->stub_lo;
       p < (volatile uint64_t *)holder->stub_hi; p++)
    *p = 0;
#if WEFT_ASAN
  __asan_unpoison_memory_region(holder->stub_lo,
                                (size_t)(holder->stub_hi - holder->stub_lo));
#endif
}

void weft__sched_preempted(struct weft__worker *w, struct weft__g *g, char *lo,
                           char *hi, struct weft__kt *holder) {
  g->ctx = weft__ctx_make(lo, hi, resume_stub, holder);
  g->state = WEFT__G_RUNNABLE;
  set_cur(w, NULL);
  /* To the global queue, as Go does: behind what waits here, including
   * the threads the next pick's timers wake, and where every worker looks,
   * so that threads that compute share all the workers, not just the one
   * they were on (a worker whose thread has run its slice while the
   * global queue holds one is preempted too).  A pinned thread waits in
   * its worker's yield queue. */
  if (g->pin > 0) {
    yq_put(w, g);
    return;
  }
  weft__globq_put(&weft__rt.gq, g); /* seq_cst, see the file comment */
  wakep();
}

WEFT_NORETURN void weft__sched_abandon_held(struct weft__kt *kt) {
  sigset_t urg;
  sigemptyset(&urg);
  sigaddset(&urg, SIGURG);
  pthread_sigmask(SIG_UNBLOCK, &urg, NULL); /* the handler blocked it */
  asan_begin(&kt->stub_fake, kt, NULL); /* the loop finishes the switch */
  weft__tsan_to(kt->sched_fiber);
  weft__ctx jump_from;
  weft__ctx_jump(&jump_from, kt->sched_ctx, NULL);
  weft__throw("an abandoned preempted thread was resumed");
}

/* ------------------------------------------------------------------ */
/* Workers                                                            */
/* ------------------------------------------------------------------ */

__thread struct weft__kt *weft__tls_kt __attribute__((tls_model("initial-exec")));

void *weft__sched_worker_main(void *arg) {
  struct weft__kt *kt = arg;
  weft__thread_name("weft-worker"); /* a worker's, or a spare */
  weft__tls_kt = kt;
  kt->errnop = &errno;
  kt->tid = gettid();
  /* Its signal mask is that of weft_init's caller (a spare is started by
   * the monitor, which blocks everything), with SIGURG open. */
  sigset_t mask = weft__rt.kt_sigmask;
  sigdelset(&mask, SIGURG);
  pthread_sigmask(SIG_SETMASK, &mask, NULL);
  struct weft__worker *w = kt->w;
  if (w) {
    weft__kt_take(kt, w);
    w->tick = SLOW_EVERY;
    /* Tell weft_init we are up: until every worker is, a fork could copy
     * a lock held by a thread that is still starting. */
    atomic_fetch_add(&weft__rt.started, 1);
    weft__futex_wake(&weft__rt.started, INT32_MAX);
  }
  weft__ctx_fp_settle();
  kt->sched_fiber = weft__tsan_cur();
  weft__fault_thread_init(kt);
#if WEFT_ASAN
  /* ASan's switches back to the scheduler context need this stack's
   * range.  glibc's query allocates, so other builds do without it. */
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &kt->kstack_lo, &kt->kstack_size);
    pthread_attr_destroy(&attr);
  }
#endif

  for (;;) {
    if (!(w = kt->w)) { /* a spare: until a worker is handed to it */
      if (!(w = weft__preempt_idle(kt)))
        break;
      weft__kt_take(kt, w);
    }
    struct weft__g *g = findrunnable(w);
    if (!g)
      break;
    set_cur(w, g);
    g->state = WEFT__G_RUNNING;
    g->worker = w->index;
    weft__stat_inc(&w->st.switches);
    asan_begin(&kt->sched_fake, kt, g);
    weft__tsan_to(g->tsan_fiber);
    void *r = weft__ctx_jump(&kt->sched_ctx, g->ctx, NULL);
    asan_end(kt->sched_fake);
    if (WEFT_UNLIKELY(r == &kt->give)) {
      /* A preempted thread's stub (above): its kernel thread runs the
       * worker from here. */
      stub_clean(kt->give_to);
      w = kt->w;
      kt->w = NULL;
      weft__tls_w = NULL;
      weft__preempt_hand(kt->give_to, w);
      continue;
    }
    /* This kernel thread may run another worker now (it resumed a
     * preempted thread), or none (one abandoned at shutdown). */
    if (!(w = kt->w))
      continue;
    set_cur(w, NULL);
    weft__post_run(r);
  }
  weft__fault_thread_fini(kt);
  weft__tls_w = NULL;
  weft__tls_kt = NULL;
  return NULL;
}

int weft_pin(bool pinned) {
  struct weft__worker *w = weft__worker_get();
  struct weft__g *g = w ? w->cur : NULL;
  if (!g)
    return -EPERM;
  g->pin = pinned ? w->index + 1 : 0;
  return pinned ? w->index : 0;
}
