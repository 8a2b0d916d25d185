/*
 * runq.c - the local run-queue ring and the global injection queue.
 * See runq.h for the design; the memory-ordering comments name the access
 * each atomic pairs with.
 */
#include "config.h"

#include "runq.h"

WEFT_NOINLINE static bool put_slow(struct weft__runq *q, struct weft__g *g, uint32_t h,
                     uint32_t t, struct weft__globq *gq) {
  enum { N = WEFT__RUNQ_SIZE / 2 };
  struct weft__g *batch[N + 1];

  for (uint32_t i = 0; i < N; i++)
    batch[i] = ld_relaxed(&q->buf[(h + i) % WEFT__RUNQ_SIZE]);
  /* CAS-release: claims the first half against thieves, pairs with their
   * load-acquire of head. */
  if (!atomic_compare_exchange_strong_explicit(&q->head, &h, h + N,
                                               memory_order_release,
                                               memory_order_relaxed))
    return false; /* thieves took some; the ring has room now */
  (void)t;
  batch[N] = g;
  /* Pinned threads never go to the global queue, where any worker takes
   * them: to their worker's inbox instead (the owner's, here). */
  uint32_t k = 0;
  for (uint32_t i = 0; i <= N; i++)
    if (!WEFT_UNLIKELY(batch[i]->pin) || !weft__pin_divert(batch[i], -1))
      batch[k++] = batch[i];
  if (k == 0)
    return true;
  for (uint32_t i = 0; i + 1 < k; i++)
    batch[i]->next = batch[i + 1];
  weft__globq_put_batch(gq, batch[0], batch[k - 1], (int)k);
  return true;
}

bool weft__runq_put_slow(struct weft__runq *q, struct weft__g *g,
                         struct weft__globq *gq) {
  for (;;) {
    uint32_t h = ld_acquire(&q->head);
    uint32_t t = ld_relaxed(&q->tail);
    if (t - h < WEFT__RUNQ_SIZE) {
      st_relaxed(&q->buf[t % WEFT__RUNQ_SIZE], g);
      st_release(&q->tail, t + 1);
      return true;
    }
    if (put_slow(q, g, h, t, gq))
      return false;
  }
}

struct weft__g *weft__runq_steal(struct weft__runq *q,
                                 struct weft__runq *victim, int self) {
  uint32_t t = ld_relaxed(&q->tail);

  for (;;) {
    /* load-acquire of head pairs with the owner's and other thieves' CAS;
     * load-acquire of tail pairs with the owner's store-release */
    uint32_t h = ld_acquire(&victim->head);
    uint32_t vt = ld_acquire(&victim->tail);
    uint32_t n = vt - h;
    n = n - n / 2;
    if (n == 0)
      return NULL;
    if (n > WEFT__RUNQ_SIZE / 2)
      continue; /* read an inconsistent head/tail pair: retry */
    for (uint32_t i = 0; i < n; i++) {
      struct weft__g *g = ld_relaxed(&victim->buf[(h + i) % WEFT__RUNQ_SIZE]);
      st_relaxed(&q->buf[(t + i) % WEFT__RUNQ_SIZE], g);
    }
    if (atomic_compare_exchange_strong_explicit(&victim->head, &h, h + n,
                                                memory_order_acq_rel,
                                                memory_order_relaxed)) {
      /* Threads pinned to another worker go to it, not to us. */
      uint32_t k = 0;
      for (uint32_t i = 0; i < n; i++) {
        struct weft__g *g = ld_relaxed(&q->buf[(t + i) % WEFT__RUNQ_SIZE]);
        if (!WEFT_UNLIKELY(g->pin) || !weft__pin_divert(g, self))
          st_relaxed(&q->buf[(t + k++) % WEFT__RUNQ_SIZE], g);
      }
      if ((n = k) == 0)
        return NULL;
      /* Keep the last one to run; publish the rest in our ring. */
      n--;
      struct weft__g *g = ld_relaxed(&q->buf[(t + n) % WEFT__RUNQ_SIZE]);
      if (n)
        st_release(&q->tail, t + n);
      return g;
    }
  }
}

void weft__globq_put_batch(struct weft__globq *gq, struct weft__g *first,
                           struct weft__g *last, int n) {
  last->next = NULL;
  weft__spin_lock(&gq->lk);
  if (gq->tail)
    gq->tail->next = first;
  else
    gq->head = first;
  gq->tail = last;
  atomic_fetch_add_explicit(&gq->n, n, memory_order_seq_cst);
  weft__spin_unlock(&gq->lk);
}

void weft__globq_put(struct weft__globq *gq, struct weft__g *g) {
  weft__globq_put_batch(gq, g, g, 1);
}

struct weft__g *weft__globq_get(struct weft__globq *gq, struct weft__runq *q,
                                int max) {
  if (ld_relaxed(&gq->n) == 0)
    return NULL;
  weft__spin_lock(&gq->lk);
  struct weft__g *g = gq->head;
  if (!g) {
    weft__spin_unlock(&gq->lk);
    return NULL;
  }
  int taken = 1;
  gq->head = g->next;
  if (q) {
    uint32_t t = ld_relaxed(&q->tail);
    uint32_t h = ld_acquire(&q->head);
    uint32_t room = WEFT__RUNQ_SIZE / 2 - (t - h < WEFT__RUNQ_SIZE / 2
                                               ? t - h
                                               : WEFT__RUNQ_SIZE / 2);
    uint32_t i = 0;
    while (gq->head && (int)(i + 1) < max && i < room) {
      struct weft__g *x = gq->head;
      gq->head = x->next;
      st_relaxed(&q->buf[(t + i) % WEFT__RUNQ_SIZE], x);
      i++;
    }
    if (i)
      st_release(&q->tail, t + i);
    taken += (int)i;
  }
  if (!gq->head)
    gq->tail = NULL;
  atomic_fetch_sub_explicit(&gq->n, taken, memory_order_relaxed);
  weft__spin_unlock(&gq->lk);
  g->next = NULL;
  return g;
}
