/*
 * worker.h - the runtime's shared types: a worker (struct weft__worker),
 * the runtime (struct weft__rt), the accessors of the running worker and
 * green thread, and the entry protocol of threads that are not workers.
 * Each field says which part owns it; sched.h holds the scheduler's verbs.
 *
 * Layers.  A header includes only headers of the layers below its own
 * (docs/internals.md draws them):
 *   util.h  <  ctx.h  <  gthread.h (a green thread's type)  <  runq.h,
 *   timer.h, stack.h  <  worker.h  <  sched.h  <  wait.h  <  netpoll.h
 * The .c files sit on them: sync, rwlock, chan, local and gthread park
 * through wait.h; io, blocking and task wait on fds or the pool; the shm
 * files (shm.h) and proc are the shared-memory wing; rt.c starts the
 * parts and resets them in a forked child (rt.h).  Two loops: sched.c
 * polls the netpoller, and netpoll.c wakes the threads it finds through
 * sched.h; sched.c hands workers between kernel threads through
 * preempt.h, and preempt.c queues a preempted thread through sched.h.
 */
#ifndef WEFT_WORKER_H
#define WEFT_WORKER_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ctx.h"
#include "gthread.h"
#include "runq.h"
#include "stack.h"
#include "timer.h"
#include "util.h"
#include "weft.h"

/*
 * A kernel thread of the scheduler: what belongs to the thread rather than
 * to the worker it runs (a worker owns a run queue, timers, stacks and
 * counters).  A worker moves to another kernel thread when its thread is
 * kept by a green thread that was preempted (preempt.c): the thread then
 * runs no worker until one is handed back to it, and a spare thread, one
 * that runs no worker either, took its worker over.  Whoever runs a worker
 * sets w->kt, w->errnop and weft__tls_w (weft__kt_take).
 */
struct weft__kt {
  struct weft__worker *w; /* the worker it runs, or NULL */
  struct weft__kt *all_next; /* in weft__rt.kts (rt.c) */
  pthread_t thread;
  pid_t tid;           /* the monitor reads its state in /proc */
  int *errnop;         /* its errno */
  weft__ctx sched_ctx; /* its scheduler loop */
  /* The fault handler (fault.c): its signal stack. */
  void *altstack;
  size_t altstack_size;
  /* The sanitizers: the scheduler context's stack and fiber. */
  void *kstack_lo; /* its pthread stack (ASan) */
  size_t kstack_size;
  void *sched_fake;  /* ASan fake-stack handle of the scheduler context */
  void *sched_fiber; /* TSan's context of the scheduler context */
  /* Preemption (preempt.c). */
  _Atomic uint32_t ask;      /* the monitor asks to preempt (signal sent) */
  struct weft__worker *ask_w; /* ... the worker it saw running ... */
  uint64_t ask_switches;     /* ... at this switch count */
  _Atomic uint32_t hand;     /* futex: bumped when a worker is handed over */
  _Atomic(struct weft__worker *) handed; /* the worker handed over */
  bool rebind;               /* handed bound to one CPU: give back cpus */
  cpu_set_t cpus;
  struct weft__kt *spare_next; /* in the spare stack */
  char *stub_lo, *stub_hi;   /* the stack of its preempted thread's stub */
  struct weft__kt *give_to;  /* the stub's handoff (sched.c) ... */
  weft__post give;           /* ... finished on the scheduler context */
  void *stub_fake;           /* ASan fake-stack handle of that stub */
};

struct weft__worker {
  /* The scheduler (sched.c).  The hot fields come first. */
  int index;
  struct weft__g *cur;                 /* running green thread, or NULL */
  _Atomic(struct weft__g *) runnext;   /* woken by cur: runs next */
  struct weft__g *pnext; /* the same, owner-only, while none is idle */
  unsigned runnext_streak;
  /* Threads that yielded while every worker was busy, FIFO through
   * g->next.  Only this worker touches it, with plain loads and stores;
   * it goes to the run queue when a worker idles (see weft_yield). */
  struct weft__g *yq_head, *yq_tail;
  uint32_t tick;                       /* counts down to the slow checks */
  bool poll_due; /* the slow checks want a netpoll after this switch */
  uint32_t slow_rounds;
  int *errnop; /* its kernel thread's errno (kt->errnop, for switches) */
  bool in_timers;   /* waking a batch (timers, netpoller): see weft__ready */
  int batch_woken;  /* threads woken in the current batch */
  uint64_t id_next, id_end;            /* block of green-thread ids */
  bool spinning;
  uint64_t rng;
  struct weft__kt *kt; /* the kernel thread that runs it */
  struct weft__runq q;
  _Atomic uint32_t parked WEFT_ALIGNED_CL; /* futex: 1 while asleep */
  _Atomic int64_t sleep_until; /* while parked: when it wakes by itself */
  int idle_pos;                        /* index in the idle list, or -1 */
  weft_worker_stats st;
  /* Its timer heap (timer.c) and stack cache (stack.c). */
  struct weft__timers timers;
  struct weft__stack_cache stacks;
  /* The netpoller (netpoll_epoll.c). */
  void *np_ev; /* event buffer (not on green thread stacks) */
  int np_nev;  /* received by a blocking poll, delivered by the next one */
  /* The monitor (monitor.c). */
  uint64_t lone_yields; /* yields with nothing else to run */
  /* When a run began that the monitor cannot see begin (a preempted
   * thread going on, the first thread after the worker was parked), and
   * the worker's switch count during that run (written by the worker,
   * run_sw last with release): the monitor times the run's slice from
   * there while the count is the same.  See weft__mark_run. */
  _Atomic int64_t run_from;
  _Atomic uint64_t run_sw;
  /* Green threads pinned to this worker that another worker made
   * runnable (or would have run), FIFO through g->next under pin_lk;
   * npin read without the lock as a hint (sched.c, "Pinned"). */
  weft__spin pin_lk WEFT_ALIGNED_CL;
  struct weft__g *pin_head, *pin_tail;
  _Atomic uint32_t npin;
};

enum { WEFT__RT_OFF = 0, WEFT__RT_RUNNING, WEFT__RT_STOPPING };

struct weft__rt {
  _Atomic int state;
  /* Which runtime this is: bumped by every weft_init.  A green thread
   * belongs to the runtime that spawned it (g->epoch); once that runtime
   * is shut down the thread is abandoned, and wakes of it are dropped. */
  _Atomic uint32_t epoch;
  int nworkers;
  struct weft__worker **w;
  struct weft__globq gq;
  weft__spin idle_lk;
  struct weft__worker **idle; /* stack of parked workers */
  int nidle_list;
  _Atomic int nidle;
  _Atomic int nspinning;
  _Atomic uint64_t next_id;
  _Atomic uint32_t started; /* workers that have started (futex) */
  size_t stack_default;
  int blocking_max; /* weft_config.blocking_threads */
  uint64_t seed; /* debug builds: scheduling randomisation */
  /* Threads that are not workers (or workers of a stopping runtime)
   * inside the scheduler's shared state: weft_shutdown waits until none
   * is before it frees it (futex).  See weft__foreign_enter. */
  _Atomic uint32_t foreign WEFT_ALIGNED_CL;
  /* Kernel threads blocked in weft_join, woken by weft_shutdown with
   * -ESRCH when the thread they wait for is abandoned (gthread.c). */
  weft__spin kjoin_lk;
  struct weft__kjoin *kjoins;
  /* When a thread that is not a worker last queued work, and whether a
   * worker is watching the global queue for more (sched.c). */
  _Atomic int64_t foreign_last WEFT_ALIGNED_CL;
  _Atomic int gq_watcher;
  /* Every kernel thread of the scheduler (rt.c starts the workers' and
   * joins them all at shutdown; preempt.c adds spares), under kts_lk. */
  weft__spin kts_lk;
  struct weft__kt *kts;
  int nkts;
  sigset_t kt_sigmask; /* what weft_init's caller blocked: theirs too */
};

/* A kernel thread (not a green thread) blocked in weft_join. */
struct weft__kjoin {
  struct weft__kjoin *prev, *next;
  struct weft__g *g;
  struct weft__waiter *w;
};
#define WEFT__JOIN_ABANDONED 1 /* the joiner's sel when shutdown woke it */

extern struct weft__rt weft__rt;

/* Starts a kernel thread of the scheduler that runs w, or a spare one
 * (w NULL); 0 or -errno (rt.c). */
int weft__kt_start(struct weft__worker *w);

/* initial-exec TLS: every access goes through %fs, so the compiler cannot
 * keep another kernel thread's address across a switch; volatile: it
 * cannot keep the value either. */
extern __thread struct weft__worker *volatile weft__tls_w
    __attribute__((tls_model("initial-exec")));

/* The kernel thread of the scheduler this is, or NULL (sched.c). */
extern __thread struct weft__kt *weft__tls_kt
    __attribute__((tls_model("initial-exec")));

static inline struct weft__worker *weft__worker_get(void) {
  return weft__tls_w;
}
static inline struct weft__g *weft__g_cur(void) {
  struct weft__worker *w = weft__tls_w;
  return w ? w->cur : 0;
}
/* kt runs w from now on (see struct weft__kt). */
static inline void weft__kt_take(struct weft__kt *kt, struct weft__worker *w) {
  kt->w = w;
  __atomic_store_n(&w->kt, kt, __ATOMIC_RELAXED); /* the monitor reads it */
  w->errnop = kt->errnop;
  weft__tls_w = w;
}
static inline bool weft__rt_running(void) {
  return ld_acquire(&weft__rt.state) == WEFT__RT_RUNNING;
}

/*
 * A thread that is not a worker of the running runtime (a plain thread,
 * the blocking pool, a worker of a runtime that is stopping) enters before
 * it touches the scheduler's shared state (the global queue, the idle
 * list, the workers) and leaves after.  Enter fails once weft_shutdown
 * has begun, and weft_shutdown frees nothing until every thread inside
 * has left, so that state cannot be freed under a waker or a spawner.
 * (Dekker: the enterer counts itself and then reads the state; shutdown
 * stores the state and then reads the count; both seq_cst.)
 */
void weft__foreign_wake_shutdown(void);
static inline void weft__foreign_leave(void) {
  if (atomic_fetch_sub(&weft__rt.foreign, 1) == 1 &&
      WEFT_UNLIKELY(atomic_load(&weft__rt.state) != WEFT__RT_RUNNING))
    weft__foreign_wake_shutdown(); /* the last one out */
}
static inline bool weft__foreign_enter(void) {
  atomic_fetch_add(&weft__rt.foreign, 1);
  if (WEFT_LIKELY(atomic_load(&weft__rt.state) == WEFT__RT_RUNNING))
    return true;
  weft__foreign_leave();
  return false;
}
/* Whether g belongs to the running runtime (else it was abandoned, or is
 * being abandoned, by weft_shutdown).  Exact for a caller that is a worker
 * of the running runtime or has entered. */
static inline bool weft__g_current(const struct weft__g *g) {
  return atomic_load(&weft__rt.state) == WEFT__RT_RUNNING &&
         g->epoch == ld_relaxed(&weft__rt.epoch);
}
/* Called by weft_shutdown: wakes the kernel threads blocked in weft_join
 * on a thread that is being abandoned (gthread.c). */
void weft__join_abandon_all(void);

/*
 * ThreadSanitizer: each green thread is a TSan fiber, and every switch
 * tells TSan which fiber runs next, just before the register swap.
 */
#if WEFT_TSAN
#include <sanitizer/tsan_interface.h>
static inline void *weft__tsan_new(void) { return __tsan_create_fiber(0); }
static inline void weft__tsan_free(void *f) {
  if (f)
    __tsan_destroy_fiber(f);
}
static inline void weft__tsan_to(void *f) { __tsan_switch_to_fiber(f, 0); }
static inline void *weft__tsan_cur(void) { return __tsan_get_current_fiber(); }
#else
static inline void *weft__tsan_new(void) { return NULL; }
static inline void weft__tsan_free(void *f) { (void)f; }
static inline void weft__tsan_to(void *f) { (void)f; }
static inline void *weft__tsan_cur(void) { return NULL; }
#endif

#endif /* WEFT_WORKER_H */
