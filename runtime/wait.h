/*
 * wait.h - THE WAITER: the one way every blocking primitive parks and wakes
 * a thread, whatever kind of thread it is.
 *
 * A waiter is either a green thread (park: switch away, its worker runs
 * others; wake: put it on a run queue) or a kernel thread that is not a
 * worker (park: futex wait; wake: futex wake).  A waiter may be queued on
 * several wait queues at once (select, or a wait with a deadline); the
 * sources race to claim it with one CAS on `sel`, and only the winner
 * touches the waiting thread's buffers and wakes it.  Losers unlink the
 * stale entry.
 *
 * The park/wake protocol.  The parking thread makes itself findable (queues
 * itself on a wait queue) while holding that queue's lock, and calls
 * weft__waiter_park() with a function that releases the lock.  For a green
 * thread that function runs only after the green thread's context has been
 * saved (as a post-switch action on the next context), and its deadline
 * timer is armed at the same point, so no waker can ready a green thread
 * that is still running.  Hence ready() needs no extra handshake.
 *
 * The exception is weft_cancel: it finds the waiter through the thread
 * (g->cwait, published when the wait is armed), not through a queue whose
 * lock the parking thread still holds, so it may claim a waiter whose
 * thread has not switched away yet.  For these waits `park` is the
 * handshake: the post action moves it from RUNNING to SAVED; a canceler
 * that claims the waiter moves it from RUNNING to WAKE instead and leaves
 * the wake to the post action, or, finding SAVED, wakes the thread itself.
 */
#ifndef WEFT_WAIT_H
#define WEFT_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "sched.h"
#include "util.h"

#define WEFT__WAIT_NONE (-1)
#define WEFT__WAIT_TIMEOUT (-2)
#define WEFT__WAIT_CANCEL (-3)

struct weft__waiter {
  _Atomic int sel;          /* WEFT__WAIT_NONE until claimed */
  struct weft__g *g;        /* NULL: a kernel thread */
  _Atomic uint32_t futex;   /* kernel thread: 1 once woken */
  /* Queued on one wait queue, without a deadline: only a holder of that
   * queue's lock can claim it, so the claim needs no atomic RMW. */
  bool exclusive;
  bool cancelable;      /* armed for weft_cancel: `park` is used */
  _Atomic int park;     /* WEFT__PARK_*, see above */
  const char *reason; /* what it waits for, shown by tools ("chan recv") */
};

enum { WEFT__PARK_RUNNING, WEFT__PARK_SAVED, WEFT__PARK_WAKE };

/* Initialises w for the calling thread. */
static inline void weft__waiter_init(struct weft__waiter *w) {
  atomic_init(&w->sel, WEFT__WAIT_NONE);
  atomic_init(&w->futex, 0);
  w->g = weft__g_cur();
  w->exclusive = false;
  w->cancelable = false;
  atomic_init(&w->park, WEFT__PARK_RUNNING);
  w->reason = NULL;
}

/*
 * Who is calling, for locks that check their owner: the green thread (its
 * id, never reused, so a thread that ended holding a lock is not mistaken
 * for a later one on the same stack; it follows the thread across
 * workers), or else the kernel thread (the address of its own
 * weft__tls_w).  Ids are shifted left and addresses get their low bit set,
 * so the two never meet; never 0, which means "no owner".
 */
static inline uintptr_t weft__self_token(void) {
  struct weft__worker *w = weft__tls_w;
  struct weft__g *g = w ? w->cur : NULL;
  if (g)
    return (uintptr_t)__atomic_load_n(&g->id, __ATOMIC_RELAXED) << 1;
  return (uintptr_t)&weft__tls_w | 1;
}

/* Claims w for source sel (>= 0); false if something else already did. */
static inline bool weft__waiter_claim(struct weft__waiter *w, int sel) {
  if (w->exclusive) {
    /* The wake that follows publishes this store to the parked side. */
    if (ld_relaxed(&w->sel) != WEFT__WAIT_NONE)
      return false;
    st_relaxed(&w->sel, sel);
    return true;
  }
  int none = WEFT__WAIT_NONE;
  /* acq_rel: the winner's later writes into the waiter's buffers happen
   * before the wake, which the parked side acquires. */
  return atomic_compare_exchange_strong_explicit(
      &w->sel, &none, sel, memory_order_acq_rel, memory_order_acquire);
}

void weft__waiter_wake_kthread(struct weft__waiter *w);

/* Wakes a waiter that the caller claimed. */
static inline void weft__waiter_wake(struct weft__waiter *w) {
  if (w->g)
    weft__ready(w->g);
  else
    weft__waiter_wake_kthread(w);
}

/*
 * Parks the caller until a source claims w, or until deadline (absolute
 * ns, WEFT_FOREVER for none), when the waiter claims itself with
 * WEFT__WAIT_TIMEOUT.  unlock(arg) is called once the caller is safely
 * parked (see above).  Returns the claimed sel.  On WEFT__WAIT_TIMEOUT the
 * caller must unlink its entries itself.
 */
int weft__waiter_park_slow(struct weft__waiter *w, void (*unlock)(void *),
                           void *arg, int64_t deadline);

static inline int weft__waiter_park(struct weft__waiter *w,
                                    void (*unlock)(void *), void *arg,
                                    int64_t deadline) {
  /* Most parks are a green thread's, without a deadline or a cancel: one
   * switch whose post action is the unlock. */
  if (WEFT_LIKELY(w->g && deadline == WEFT_FOREVER && !w->cancelable)) {
    weft__park_unlock(w->reason ? w->reason : "wait", unlock, arg);
    return ld_acquire(&w->sel);
  }
  return weft__waiter_park_slow(w, unlock, arg, deadline);
}

/* Makes w, the waiter of the running green thread, the one weft_cancel
 * claims (with WEFT__WAIT_CANCEL).  Returns -ECANCELED if the green thread
 * has been canceled already (then w is not armed).  w must not be
 * exclusive.  Disarm once the wait is over, before w goes out of scope. */
int weft__cancel_arm(struct weft__waiter *w);
void weft__cancel_disarm(struct weft__waiter *w);
/* Claims armed waiter w for weft_cancel and wakes its thread, or leaves
 * the wake to its park if it has not switched away yet.  Requires the
 * lock of w's green thread (g->lk), which keeps w alive. */
void weft__cancel_fire(struct weft__waiter *w);

/* At a green thread's exit: takes its deadline timer out of its heap
 * (wait.c, "Deadlines"), so that the descriptor can go. */
void weft__deadline_exit(struct weft__g *g);

/*
 * Wait queues: intrusive doubly-linked lists of entries that live in the
 * frames of parked threads.  Every operation requires the lock of the
 * structure that owns the queue.
 */
struct weft__wq_entry {
  struct weft__wq_entry *prev, *next;
  struct weft__waiter *w;
  int sel;    /* what the waiter's sel becomes when this entry wakes it */
  bool linked;
  int result; /* set by the waker: 0, or -EPIPE for a closed channel */
  void *elem; /* channel element to send from / receive into */
};

struct weft__wq {
  struct weft__wq_entry *head, *tail;
};

/* Under the queue's lock.  Relaxed atomic (a plain store on x86-64), so
 * that weft__wq_maybe_nonempty may read it without the lock. */
static inline void weft__wq_set_head(struct weft__wq *q,
                                     struct weft__wq_entry *e) {
  __atomic_store_n(&q->head, e, __ATOMIC_RELAXED);
}

/* Without the queue's lock: a hint, for a caller whose lost race with a
 * waiter that is queueing is allowed (a condition variable's signal). */
static inline bool weft__wq_maybe_nonempty(struct weft__wq *q) {
  return __atomic_load_n(&q->head, __ATOMIC_RELAXED) != NULL;
}

static inline void weft__wq_push(struct weft__wq *q, struct weft__wq_entry *e) {
  e->next = NULL;
  e->prev = q->tail;
  if (q->tail)
    q->tail->next = e;
  else
    weft__wq_set_head(q, e);
  q->tail = e;
  e->linked = true;
}

static inline void weft__wq_remove(struct weft__wq *q,
                                   struct weft__wq_entry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    weft__wq_set_head(q, e->next);
  if (e->next)
    e->next->prev = e->prev;
  else
    q->tail = e->prev;
  e->prev = e->next = NULL;
  e->linked = false;
}

/* Wakes the claimed entries of list (linked through next), outside the
 * lock of the queue they came from. */
static inline void weft__wq_wake_list(struct weft__wq_entry *list) {
  while (list) {
    struct weft__wq_entry *e = list;
    list = e->next; /* read before the wake: the entry dies with it */
    weft__waiter_wake(e->w);
  }
}

/* Whether deadline (absolute; WEFT_FOREVER never passes) has passed. */
static inline bool weft__deadline_passed(int64_t deadline) {
  return deadline != WEFT_FOREVER && deadline <= weft__now();
}

/* Unlinks entries from the head until one's waiter is claimed for it, and
 * returns that one (unlinked), or NULL.  Entries whose waiter something
 * else claimed (a select that fired elsewhere, a deadline) are dropped. */
static inline struct weft__wq_entry *weft__wq_claim(struct weft__wq *q) {
  struct weft__wq_entry *e;
  while ((e = q->head)) {
    weft__wq_remove(q, e);
    if (weft__waiter_claim(e->w, e->sel))
      return e;
  }
  return NULL;
}

/* Claims every waiter of q, for weft__wq_wake_list once q's lock is
 * released: returns them linked through next, the last queued first. */
static inline struct weft__wq_entry *weft__wq_claim_all(struct weft__wq *q) {
  struct weft__wq_entry *list = NULL, *e;
  while ((e = weft__wq_claim(q))) {
    e->next = list;
    list = e;
  }
  return list;
}

/*
 * The exclusive fast path, for the waits of one queue without deadline or
 * cancel (a plain channel send or receive): only a holder of the queue's
 * lock can claim such a waiter, and it is unclaimed while queued, so the
 * claim is a plain store and the park one switch.  weft__wq_claim and
 * weft__waiter_park written out for that case: the generic helpers cost a
 * ping-pong message a sixth more instructions (bench/README.md, chan).
 */

/* Unlinks and claims the head of q if its waiter is exclusive; else NULL
 * (the caller takes the general path).  The entry's result is 0. */
static inline struct weft__wq_entry *weft__wq_take_exclusive(struct weft__wq *q) {
  struct weft__wq_entry *e = q->head;
  if (!e || !e->w->exclusive)
    return NULL;
  struct weft__wq_entry *next = e->next;
  weft__wq_set_head(q, next);
  if (next)
    next->prev = NULL;
  else
    q->tail = NULL;
  e->linked = false;
  st_relaxed(&e->w->sel, e->sel);
  e->result = 0;
  return e;
}

/* Queues e (its waiter exclusive, of the running green thread) on q and
 * parks until a holder of q's lock claims it; unlock(arg) releases that
 * lock once the thread is saved. */
static inline void weft__wq_park_exclusive(struct weft__wq *q,
                                           struct weft__wq_entry *e,
                                           void (*unlock)(void *), void *arg) {
  weft__wq_push(q, e);
  weft__park_unlock(e->w->reason, unlock, arg);
  (void)ld_acquire(&e->w->sel); /* pairs with the wake, as waiter_park */
}

/* The plain wait on one queue: queues the caller on q (whose lock lk it
 * holds) with sel 0, parks until a source claims it, deadline passes or,
 * if cancelable, weft_cancel ends it, and unlinks itself if no source
 * did.  lk is released in every case.  Returns 0 (a source woke it),
 * -ETIMEDOUT or -ECANCELED (also at once if already canceled). */
int weft__wq_wait(weft__spin *lk, struct weft__wq *q, int64_t deadline,
                  const char *reason, bool cancelable);

#endif /* WEFT_WAIT_H */
