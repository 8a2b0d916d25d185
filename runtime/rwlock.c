/*
 * rwlock.c - the read-write lock, on the waiter (wait.h) like the other
 * primitives of sync.c, so it parks green threads and futex-sleeps kernel
 * threads, and can be shared between the two.
 *
 * One 32-bit state word: the count of readers inside, W while a writer is
 * inside, Q while anyone is queued.  Uncontended, a lock or unlock is one
 * CAS on it.  Once Q is set every fast path fails (each CAS expects Q
 * clear), so every change to the state goes through the slow path under
 * lk, which sets Q itself first (an atomic OR: no fast-path CAS can slip
 * between) and stores the whole word back at the end, with Q cleared if
 * both queues are empty.
 *
 * Fairness: writer preference, so a stream of readers cannot starve a
 * writer: a reader that finds a writer queued queues behind it.  And a
 * writer's unlock admits every queued reader at once, as a batch, before
 * the next writer, so a stream of writers cannot starve the readers.
 * Waiters are handed the lock by the unlocker (the state is changed for
 * them before they wake), as weft_mutex does.
 */
#include "config.h"

#include <string.h>

#include "sched.h"
#include "wait.h"

#define RW_READERS 0x3fffffffu /* mask of the reader count */
#define RW_W 0x40000000u       /* a writer is inside */
#define RW_Q 0x80000000u       /* someone is queued: take the slow path */

struct rwlock {
  _Atomic uint32_t state;
  weft__spin lk;             /* guards both queues and a state with Q */
  _Atomic uintptr_t owner;   /* the writer inside (weft__self_token), or 0 */
  struct weft__wq readers;   /* queued readers */
  struct weft__wq writers;   /* queued writers, FIFO */
};

_Static_assert(sizeof(struct rwlock) <= sizeof(weft_rwlock), "rwlock size");

int weft_rwlock_init(weft_rwlock *l) {
  if (WEFT_UNLIKELY(!l))
    return -EINVAL;
  memset(l, 0, sizeof(*l));
  return 0;
}

int weft_rwlock_destroy(weft_rwlock *l) {
  struct rwlock *x = (struct rwlock *)l;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  return ld_acquire(&x->state) ? -EBUSY : 0;
}

/* Under lk: marks the state as queued-on and returns it, Q included. */
static uint32_t slow_begin(struct rwlock *x) {
  return atomic_fetch_or_explicit(&x->state, RW_Q, memory_order_acquire) |
         RW_Q;
}

/* Under lk: stores the state s, with Q only if someone is still queued. */
static void slow_end(struct rwlock *x, uint32_t s) {
  s &= ~RW_Q;
  if (x->readers.head || x->writers.head)
    s |= RW_Q;
  st_release(&x->state, s);
}

/*
 * Under lk, with Q set: hands the lock to whoever may have it now, and
 * returns the claimed entries (linked through next) to wake once lk is
 * released.  after_writer: a writer just left, so the queued readers go
 * first, as a batch; otherwise a queued writer goes first.
 */
static struct weft__wq_entry *dispatch(struct rwlock *x, uint32_t *sp,
                                       bool after_writer) {
  struct weft__wq_entry *list = NULL, *e;
  uint32_t s = *sp;
  if (s & RW_W)
    return NULL;
  bool readers_first = after_writer && x->readers.head;
  if (!(s & RW_READERS) && !readers_first && (e = weft__wq_claim(&x->writers))) {
    s |= RW_W;
    e->next = NULL;
    list = e;
  } else if (readers_first || !x->writers.head) {
    /* Entries of writers that timed out are dropped by the claim above;
     * one still linked here is a writer that waits, which readers let go
     * first (it left them queued when it could not enter). */
    while ((s & RW_READERS) < RW_READERS && (e = weft__wq_claim(&x->readers))) {
      s++;
      e->next = list;
      list = e;
    }
  }
  *sp = s;
  return list;
}

/* Under lk (released here): queues the caller on q and parks until it is
 * handed the lock (0) or the deadline passes (-ETIMEDOUT). */
static int rw_wait(struct rwlock *x, struct weft__wq *q, uint32_t s,
                   int64_t deadline, const char *reason) {
  struct weft__waiter w;
  struct weft__wq_entry e = {.sel = 0};
  weft__waiter_init(&w);
  w.reason = reason;
  w.exclusive = deadline == WEFT_FOREVER;
  e.w = &w;
  weft__wq_push(q, &e);
  slow_end(x, s); /* Q stays set: e is queued */
  int sel = weft__waiter_park(&w, weft__unlock_spin, &x->lk, deadline);
  if (sel != WEFT__WAIT_TIMEOUT)
    return 0; /* the state was changed for us by the one who woke us */
  weft__spin_lock(&x->lk);
  s = slow_begin(x);
  if (e.linked)
    weft__wq_remove(q, &e);
  /* A writer that leaves the queue may let queued readers in. */
  struct weft__wq_entry *list = dispatch(x, &s, false);
  slow_end(x, s);
  weft__spin_unlock(&x->lk);
  weft__wq_wake_list(list);
  return -ETIMEDOUT;
}

/* Why a lock that cannot be had now is refused, or 0 to wait for it. */
static int refusal(bool try, int64_t deadline) {
  if (try)
    return -EBUSY;
  if (deadline == WEFT_NOWAIT)
    return -EAGAIN;
  return weft__deadline_passed(deadline) ? -ETIMEDOUT : 0;
}

/* ------------------------------------------------------------------ */
/* Readers                                                             */
/* ------------------------------------------------------------------ */

static inline bool rd_fast(struct rwlock *x) {
  uint32_t s = ld_relaxed(&x->state);
  /* acquire, pairs with the release of the writer's unlock */
  return !(s & (RW_W | RW_Q)) && (s & RW_READERS) < RW_READERS &&
         atomic_compare_exchange_strong_explicit(&x->state, &s, s + 1,
                                                 memory_order_acquire,
                                                 memory_order_relaxed);
}

WEFT_NOINLINE static int rd_slow(struct rwlock *x, int64_t deadline,
                                 bool try) {
  if (ld_relaxed(&x->owner) == weft__self_token())
    return try ? -EBUSY : -EDEADLK; /* the caller is the writer inside */
  weft__spin_lock(&x->lk);
  uint32_t s = slow_begin(x);
  if (!(s & RW_W) && !x->writers.head && (s & RW_READERS) < RW_READERS) {
    slow_end(x, s + 1);
    weft__spin_unlock(&x->lk);
    return 0;
  }
  int r = (s & RW_READERS) == RW_READERS
              ? -EAGAIN /* as many readers as the count holds */
              : refusal(try, deadline);
  if (r) {
    slow_end(x, s);
    weft__spin_unlock(&x->lk);
    return r;
  }
  return rw_wait(x, &x->readers, s, deadline, "rwlock read");
}

int weft_rwlock_rdlock_until(weft_rwlock *l, int64_t deadline) {
  struct rwlock *x = (struct rwlock *)l;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  if (WEFT_LIKELY(rd_fast(x)))
    return 0;
  return rd_slow(x, deadline, false);
}

int weft_rwlock_rdlock(weft_rwlock *l) {
  return weft_rwlock_rdlock_until(l, WEFT_FOREVER);
}

int weft_rwlock_tryrdlock(weft_rwlock *l) {
  struct rwlock *x = (struct rwlock *)l;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  if (WEFT_LIKELY(rd_fast(x)))
    return 0;
  return rd_slow(x, WEFT_NOWAIT, true);
}

/* ------------------------------------------------------------------ */
/* Writers                                                             */
/* ------------------------------------------------------------------ */

static inline bool wr_fast(struct rwlock *x) {
  uint32_t s = 0;
  return atomic_compare_exchange_strong_explicit(
      &x->state, &s, RW_W, memory_order_acquire, memory_order_relaxed);
}

WEFT_NOINLINE static int wr_slow(struct rwlock *x, uintptr_t me,
                                 int64_t deadline, bool try) {
  if (ld_relaxed(&x->owner) == me)
    return try ? -EBUSY : -EDEADLK;
  weft__spin_lock(&x->lk);
  uint32_t s = slow_begin(x);
  if (!(s & (RW_W | RW_READERS)) && !x->writers.head) {
    slow_end(x, s | RW_W);
    weft__spin_unlock(&x->lk);
    return 0;
  }
  int r = refusal(try, deadline);
  if (r) {
    slow_end(x, s);
    weft__spin_unlock(&x->lk);
    return r;
  }
  return rw_wait(x, &x->writers, s, deadline, "rwlock write");
}

static int wrlock(weft_rwlock *l, int64_t deadline, bool try) {
  struct rwlock *x = (struct rwlock *)l;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  uintptr_t me = weft__self_token();
  int r = WEFT_LIKELY(wr_fast(x)) ? 0 : wr_slow(x, me, deadline, try);
  if (r == 0)
    st_relaxed(&x->owner, me);
  return r;
}

int weft_rwlock_wrlock_until(weft_rwlock *l, int64_t deadline) {
  return wrlock(l, deadline, false);
}

int weft_rwlock_wrlock(weft_rwlock *l) {
  return wrlock(l, WEFT_FOREVER, false);
}

int weft_rwlock_trywrlock(weft_rwlock *l) {
  return wrlock(l, WEFT_NOWAIT, true);
}

/* ------------------------------------------------------------------ */
/* Unlock                                                              */
/* ------------------------------------------------------------------ */

WEFT_NOINLINE static int unlock_slow(struct rwlock *x) {
  uintptr_t me = weft__self_token();
  weft__spin_lock(&x->lk);
  uint32_t s = slow_begin(x);
  bool after_writer = false;
  int r = 0;
  if (s & RW_W) {
    if (ld_relaxed(&x->owner) != me) {
      r = -EPERM;
    } else {
      st_relaxed(&x->owner, 0);
      s &= ~RW_W;
      after_writer = true;
    }
  } else if (s & RW_READERS) {
    s--;
  } else {
    r = -EPERM;
  }
  struct weft__wq_entry *list = r ? NULL : dispatch(x, &s, after_writer);
  slow_end(x, s);
  weft__spin_unlock(&x->lk);
  weft__wq_wake_list(list);
  return r;
}

int weft_rwlock_unlock(weft_rwlock *l) {
  struct rwlock *x = (struct rwlock *)l;
  if (WEFT_UNLIKELY(!x))
    return -EINVAL;
  uint32_t s = ld_relaxed(&x->state);
  while (!(s & RW_Q)) {
    if (s & RW_W) { /* s == RW_W: no readers with a writer inside */
      uintptr_t me = weft__self_token();
      if (ld_relaxed(&x->owner) != me)
        return -EPERM;
      /* Cleared before the release: the next writer stores its own. */
      st_relaxed(&x->owner, 0);
      if (atomic_compare_exchange_strong_explicit(&x->state, &s, 0,
                                                  memory_order_release,
                                                  memory_order_relaxed))
        return 0;
      st_relaxed(&x->owner, me); /* someone queued meanwhile */
      continue;
    }
    if (!(s & RW_READERS))
      return -EPERM; /* not locked */
    if (atomic_compare_exchange_weak_explicit(&x->state, &s, s - 1,
                                              memory_order_release,
                                              memory_order_relaxed))
      return 0;
  }
  return unlock_slow(x);
}
