/*
 * sched.h - the scheduler's verbs: the switch primitives the rest of the
 * runtime parks and wakes with, and the worker loop.  The types (a worker,
 * the runtime) are worker.h's.  See sched.c for the design.
 */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include <stdbool.h>

#include "worker.h"

/* Makes g runnable (from any thread). */
void weft__ready(struct weft__g *g);
/* The same from a thread that is not a worker and has entered
 * (weft__foreign_enter): to the global queue or g's worker's inbox, or
 * dropped if g belongs to an earlier runtime. */
void weft__ready_entered(struct weft__g *g);
/* Wakes a batch of green threads (expired timers, ready fds): between the
 * two calls, weft__ready queues them at the tail of the worker's queue in
 * order (then the global queue's, when it is full) and wakes no idle
 * worker; batch_end wakes one if more than one
 * thread was woken (the caller runs the first itself). */
void weft__batch_begin(struct weft__worker *w);
void weft__batch_end(struct weft__worker *w);
/* w armed a timer due at when that is now the earliest of its heap: if w
 * is busy, wakes the idle worker that runs busy workers' timers, if it
 * sleeps past when (sched.c, park_deadline). */
void weft__timer_first(struct weft__worker *w, int64_t when);
/* Parks the running green thread; post runs once it is switched out. */
void weft__park(weft__post *post);
/* The same with unlock(arg) (if not NULL) as the post action, and reason
 * shown by tools. */
void weft__park_unlock(const char *reason, void (*unlock)(void *), void *arg);
/* Switches from the running green thread to the new green thread g at
 * once; the caller runs next (pnext or runnext), or after the run queue
 * if a thread woken just before holds pnext (sched.c). */
void weft__run_now(struct weft__g *g);
/* Whether threads other than the running one are runnable on w (a hint:
 * a thief may take them meanwhile). */
static inline bool weft__has_local_work(struct weft__worker *w) {
  return w->pnext || ld_relaxed(&w->runnext) || weft__runq_len(&w->q) ||
         w->yq_head;
}
/* Lets the threads runnable on this worker run first: the running green
 * thread waits behind them in the worker's yield queue, and no idle
 * worker is woken to take it.  Returns false, without switching, when
 * there is nothing else to run here. */
bool weft__yield_local(void);
/* Leaves the running green thread forever. */
WEFT_NORETURN void weft__exit_switch(weft__post *post);
/* The same for a green thread whose entry returns to the trampoline of
 * weft__ctx_make_ret_asm: marks it done, picks what this worker runs next,
 * and returns where the trampoline resumes (with post). */
struct weft__ctx_resume weft__exit_resume(weft__post *post);
/* A new green thread calls this first thing (sanitizer bookkeeping). */
void weft__switch_arrived(void);
/* The body of a worker thread: the scheduler loop, until the runtime
 * stops (rt.c starts the workers). */
void *weft__sched_worker_main(void *arg);
/* preempt.c's handler, on holder, the kernel thread of w's running thread
 * g: g, interrupted with its usable stack [lo, hi) free, is queued to
 * resume through a stub made there, which hands the worker that picks it
 * to holder.  w has no running thread after. */
void weft__sched_preempted(struct weft__worker *w, struct weft__g *g, char *lo,
                           char *hi, struct weft__kt *holder);
/* The same handler once the runtime has stopped: g is abandoned, and kt
 * leaves the handler for its scheduler loop, which ends. */
WEFT_NORETURN void weft__sched_abandon_held(struct weft__kt *kt);
/* Marks the start of a run on worker w that the monitor could not see
 * start: the run that has the worker's current switch count (ahead 0, a
 * preempted thread going on) or the next one (ahead 1, after the worker
 * was parked).  The monitor times its slice from now, not from the tick
 * that first sees it run (monitor.c, want_preempt); a clock read, made
 * only where the worker has paid for a system call anyway (not after a
 * watch of the global queue, a handoff of a few hundred ns). */
static inline void weft__mark_run(struct weft__worker *w, uint64_t ahead) {
  atomic_store_explicit(&w->run_from, weft__now(), memory_order_relaxed);
  atomic_store_explicit(
      &w->run_sw, __atomic_load_n(&w->st.switches, __ATOMIC_RELAXED) + ahead,
      memory_order_release);
}
/* Wakes worker w if it is parked (rt.c, at shutdown). */
void weft__sched_unpark(struct weft__worker *w);
/* Prints the per-worker counters to stderr (WEFT_STATS=1 at shutdown). */
void weft__stats_print(void);

/* The netpoll that the slow checks of a switch left due (sched.c). */
void weft__sched_poll_due(struct weft__worker *w);

/* Runs a post-switch action handed over by a switch (may be NULL), then
 * the netpoll the switch left due, if any: made here, once the parked
 * thread's locks are released, since its wakes may take them. */
static inline void weft__post_run(void *p) {
  if (p) {
    weft__post *post = p;
    post->fn(post);
  }
  struct weft__worker *w = weft__tls_w;
  if (WEFT_UNLIKELY(w->poll_due))
    weft__sched_poll_due(w);
}

#endif /* WEFT_SCHED_H */
