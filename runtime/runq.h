/*
 * runq.h - run queues: each worker's local ring and the global injection
 * queue.
 *
 * The local ring is single-producer (its worker puts at the tail) and
 * multi-consumer (its worker and thieves take from the head with a CAS), as
 * the Go runtime's runq is.  When it is full, half of it moves to the global
 * queue in one batch.  The global queue takes wakes from threads that are
 * not workers and overflow; workers check it regularly so it cannot starve.
 */
#ifndef WEFT_RUNQ_H
#define WEFT_RUNQ_H

#include <stdbool.h>
#include <stdint.h>

#include "gthread.h"
#include "util.h"

#define WEFT__RUNQ_SIZE 256

struct weft__runq {
  _Atomic uint32_t head WEFT_ALIGNED_CL; /* consumers CAS it */
  _Atomic uint32_t tail WEFT_ALIGNED_CL; /* only the owner stores it */
  _Atomic(struct weft__g *) buf[WEFT__RUNQ_SIZE];
};

struct weft__globq {
  weft__spin lk;
  struct weft__g *head, *tail;
  _Atomic int64_t n; /* read without the lock as a hint */
};

bool weft__runq_put_slow(struct weft__runq *q, struct weft__g *g,
                         struct weft__globq *gq);

/* A green thread pinned to a worker other than self (an index) goes to
 * that worker's pinned inbox instead of running here: returns true if g
 * was sent there (sched.c).  self < 0: any worker but its own sends it. */
bool weft__pin_divert(struct weft__g *g, int self);

/* Owner only.  Returns false when the ring was full and g and half of the
 * ring went to gq instead. */
static inline bool weft__runq_put(struct weft__runq *q, struct weft__g *g,
                                  struct weft__globq *gq) {
  /* load-acquire, synchronizes with consumers' CAS of head */
  uint32_t h = ld_acquire(&q->head);
  uint32_t t = ld_relaxed(&q->tail);
  if (WEFT_LIKELY(t - h < WEFT__RUNQ_SIZE)) {
    st_relaxed(&q->buf[t % WEFT__RUNQ_SIZE], g);
    /* store-release, makes the slot visible to consumers' load-acquire
     * of tail */
    st_release(&q->tail, t + 1);
    return true;
  }
  return weft__runq_put_slow(q, g, gq);
}

/* Owner only. */
static inline struct weft__g *weft__runq_get(struct weft__runq *q) {
  for (;;) {
    uint32_t h = ld_acquire(&q->head);
    uint32_t t = ld_relaxed(&q->tail);
    if (t == h)
      return NULL;
    struct weft__g *g = ld_relaxed(&q->buf[h % WEFT__RUNQ_SIZE]);
    /* CAS-release against thieves, who CAS the same head */
    if (WEFT_LIKELY(atomic_compare_exchange_weak_explicit(
            &q->head, &h, h + 1, memory_order_release, memory_order_relaxed)))
      return g;
  }
}

/* Owner only: prefetches the descriptor of the thread weft__runq_get
 * would return next: the lines a switch to it reads and writes first
 * (ctx, state) and the one of its first locals (local.c).  The slot is
 * read racily (a thief may take it): only an address to prefetch, which
 * never faults. */
static inline void weft__runq_prefetch(struct weft__runq *q) {
  uint32_t h = ld_relaxed(&q->head);
  if (ld_relaxed(&q->tail) == h)
    return;
  struct weft__g *g = ld_relaxed(&q->buf[h % WEFT__RUNQ_SIZE]);
  if (!g)
    return;
  __builtin_prefetch(g, 1);
  __builtin_prefetch(&g->local_inline, 0);
  __builtin_prefetch(&g->state, 1);
}

static inline uint32_t weft__runq_len(struct weft__runq *q) {
  uint32_t t = ld_acquire(&q->tail), h = ld_acquire(&q->head);
  return t - h;
}
/* Thief: moves about half of victim's ring into q (owned by the caller) and
 * returns one of the stolen green threads, or NULL. */
struct weft__g *weft__runq_steal(struct weft__runq *q,
                                 struct weft__runq *victim, int self);

void weft__globq_put(struct weft__globq *gq, struct weft__g *g);
void weft__globq_put_batch(struct weft__globq *gq, struct weft__g *first,
                           struct weft__g *last, int n);
/* Takes one, and moves up to max-1 more into q (may be NULL). */
struct weft__g *weft__globq_get(struct weft__globq *gq, struct weft__runq *q,
                                int max);

#endif /* WEFT_RUNQ_H */
