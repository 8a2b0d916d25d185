/*
 * local.c - green-thread-local storage.
 *
 * C thread-locals belong to the worker, and a green thread may move
 * between workers at any switch, so weft keeps per-green-thread slots:
 * the first WEFT__LOCAL_INLINE keys' in the descriptor itself, in a line
 * that a switch to the thread has prefetched, so that a get is one load
 * that hits; the others in an array allocated on the first set of one of
 * them.  Outside green threads the slots are per kernel thread.
 */
#include "config.h"

#include <stdlib.h>

#include "inject.h"
#include "gthread.h"
#include "sched.h"

static _Atomic unsigned nkeys;
static void (*_Atomic dtors[WEFT_LOCAL_MAX])(void *);
static __thread void *kthread_slots[WEFT_LOCAL_MAX];

int weft_local_create(weft_local_key *key, void (*dtor)(void *)) {
  if (!key)
    return -EINVAL;
  unsigned i = atomic_load(&nkeys);
  do {
    if (i >= WEFT_LOCAL_MAX)
      return -EAGAIN;
  } while (!atomic_compare_exchange_weak(&nkeys, &i, i + 1));
  atomic_store(&dtors[i], dtor);
  key->index = i + 1; /* a zeroed key is never valid */
  return 0;
}

/* The slot of key index i (1-based, valid) of the calling thread; NULL
 * when it has none yet and !create, or out of memory (*err set). */
static void **slot(unsigned i, bool create, int *err) {
  struct weft__g *g = weft__g_cur();
  if (!g)
    return &kthread_slots[i - 1];
  if (WEFT_LIKELY(i <= WEFT__LOCAL_INLINE))
    return &g->local_inline[i - 1];
  if (!g->locals) {
    if (!create)
      return NULL;
    g->locals = weft__calloc(WEFT_LOCAL_MAX - WEFT__LOCAL_INLINE,
                             sizeof(void *));
    if (!g->locals) {
      *err = -ENOMEM;
      return NULL;
    }
  }
  return &g->locals[i - 1 - WEFT__LOCAL_INLINE];
}

int weft_local_set(weft_local_key key, void *value) {
  if (key.index == 0 || key.index > atomic_load(&nkeys))
    return -EINVAL;
  int err = 0;
  void **s = slot(key.index, true, &err);
  if (!s)
    return err;
  *s = value;
  return 0;
}

void *weft_local_get(weft_local_key key) {
  if (key.index == 0 || key.index > atomic_load(&nkeys))
    return NULL;
  int err = 0;
  void **s = slot(key.index, false, &err);
  return s ? *s : NULL;
}

void weft__locals_release(struct weft__g *g) {
  /* The destructors run inside weft's frames: not preemptible (preempt.c;
   * the monitor asks again after). */
  g->nopreempt++;
  /* Destructors may set values again; give them a few rounds, as POSIX
   * does for thread-specific data. */
  for (int round = 0; round < 4; round++) {
    bool again = false;
    for (unsigned i = 0; i < WEFT_LOCAL_MAX; i++) {
      void **s;
      if (i < WEFT__LOCAL_INLINE)
        s = &g->local_inline[i];
      else if (g->locals)
        s = &g->locals[i - WEFT__LOCAL_INLINE];
      else
        break;
      void *v = *s;
      if (!v)
        continue;
      *s = NULL;
      void (*d)(void *) = atomic_load(&dtors[i]);
      if (d) {
        d(v);
        again = true;
      }
    }
    if (!again)
      break;
  }
  free(g->locals);
  g->locals = NULL;
  g->nopreempt--;
  g->preempt_pending = false;
}
