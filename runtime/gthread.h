/*
 * gthread.h - the green thread descriptor (G).
 *
 * The descriptor lives at the top of the green thread's own stack mapping,
 * so a spawn costs one cached stack and no separate allocation.
 */
#ifndef WEFT_GTHREAD_H
#define WEFT_GTHREAD_H

#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "timer.h"
#include "util.h"
#include "weft.h"

struct weft__waiter;
struct weft__kt;

enum weft__gstate {
  WEFT__G_RUNNABLE = 1,
  WEFT__G_RUNNING,
  WEFT__G_PARKED,
  WEFT__G_DONE,
};

/*
 * A post-switch action: work that must happen after a green thread's
 * context has been saved (release the lock that makes it findable, queue
 * it, free its stack).  The switch hands it to the context that resumes,
 * which runs it first thing.  It lives in the frame of the green thread
 * that switched away, which cannot run again before the action is done
 * (an exit's, in the descriptor: see gthread.c).
 */
typedef struct weft__post {
  void (*fn)(struct weft__post *p);
  struct weft__g *g;
  void *arg;
} weft__post;

#define WEFT__LOCAL_INLINE 4

struct weft__g {
  weft__ctx ctx;          /* saved context while not running */
  struct weft__g *next;   /* link in the global run queue */
  uint64_t id;            /* never reused; 0 once freed */
  int err;                /* errno of this green thread while switched out */
  bool detached, joined, done;
  weft__spin lk;          /* protects detached/joined/done/joiner */
  struct weft__waiter *joiner;
  struct weft__waiter *cwait; /* the wait weft_cancel ends (under lk) */
  bool canceled;              /* under lk; read racily as a hint */
  weft_fn fn;
  void *arg;
  void *result;
  /* Green-thread-local values (local.c): keys 1..WEFT__LOCAL_INLINE
   * here, in the line the switch to the thread prefetches (runq.h); the
   * others in locals, allocated on the first set of one of them. */
  void **locals;
  void *local_inline[WEFT__LOCAL_INLINE];
  char *base;             /* stack mapping: guard at base */
  size_t size;            /* usable stack size */
  void *asan_fake;        /* ASan fake-stack handle across switches */
  void *tsan_fiber;       /* TSan's context for this green thread */
  const char *wait_reason; /* what it parked on, for tools */
  int worker;              /* the worker that ran it last */
  /* enum weft__gstate, for tools and asserts.  Written without g->lk, so
   * kept away from the fields under it (a wider load of those must not
   * cover it). */
  uint8_t state;
  bool fresh; /* has never run: its first switch in starts the trampoline */
  uint16_t io_streak; /* I/O calls in a row that did not wait (io.c) */
  uint32_t epoch; /* the runtime that spawned it (weft__rt.epoch) */
  bool foreign;   /* spawned by a thread that is not a worker */
  bool start_work; /* foreign or pin < 0: g_start has work to do */
  /* 0: runs on any worker; n > 0: pinned to worker n - 1; -1: to be
   * pinned to the worker it first runs on (weft_gthread_attr.pinned). */
  int pin;
  /* Preemption (preempt.c).  nopreempt and preempt_pending are written by
   * the thread itself and read by the signal handler that interrupts it,
   * on the same kernel thread. */
  uint32_t nopreempt;     /* depth of weft_preempt_disable */
  bool preempt_pending;   /* asked for inside a non-preemptible region */
  struct weft__kt *held_by; /* preempted: the kernel thread it waits on */
  char name[WEFT_NAME_MAX];
  /* The guard below the stack, [base, base + guard): set at every spawn,
   * so it lies past the part of the descriptor a spawn zeroes. */
  size_t guard;
  weft__post exit_post; /* set at exit: the stack is gone by then */
  /* The deadline of its waits (wait.c): one timer, left armed from one
   * wait to the next.  dl.heap is NULL until the first wait with a
   * deadline (a fresh mapping is zero; an exit leaves it NULL); dl_waiter
   * and dl_when, the wait it may end and that wait's deadline, are
   * under the lock of dl.heap. */
  struct weft__timer dl;
  struct weft__waiter *dl_waiter;
  int64_t dl_when;
  uint64_t dl_seq; /* the wait's place among equal deadlines */
};

/* The descriptor of the stack mapping at base with usable size size. */
struct weft__g *weft__g_of_stack(void *base, size_t size);

/* Frees the green-thread-local values of g (running their destructors). */
void weft__locals_release(struct weft__g *g);

/* Whether g holds green-thread-local values to release at its exit. */
static inline bool weft__locals_held(const struct weft__g *g) {
  void *any = g->locals;
  for (int i = 0; i < WEFT__LOCAL_INLINE; i++)
    any = (void *)((uintptr_t)any | (uintptr_t)g->local_inline[i]);
  return any != NULL;
}

#endif /* WEFT_GTHREAD_H */
