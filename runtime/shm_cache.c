/*
 * shm_cache.c - the per-thread records of a worker's object heap: the
 * front cache and the explicit tcache behind it, and the live counts.
 *
 * Caches.  jemalloc's own fast path is for malloc/free without flags;
 * mallocx/sdallocx with an arena and an explicit tcache cost about twice
 * a malloc+free pair, MALLOCX_TCACHE_NONE several times more, and a
 * locked instruction about as much as the pair, before any header work
 * (bench/README.md, shm).  So each kernel thread of a worker keeps a small
 * front cache of its own freed objects per size class (up to FC_MAX
 * bytes, header included, in jemalloc's size classes), and refills and
 * flushes it through jemalloc with MALLOCX_ARENA(arena) |
 * MALLOCX_TCACHE(tc), tc an explicit tcache of that thread (tcache.create,
 * lazily; both are emptied and destroyed by a thread-exit destructor).
 * Neither may be shared between kernel threads.  Green threads may move
 * between kernel threads, but no call here switches, so a call uses one
 * thread's caches from start to end (shm.alloc_free against
 * malloc.alloc_free).  WEFT_SHM_TCACHE=0 in a worker's environment selects
 * MALLOCX_TCACHE_NONE behind the front cache (to compare).
 *
 * Live accounting.  Each thread record counts the objects (and their requested
 * bytes) its thread allocated minus those it took back (into a cache or
 * jemalloc), in one word (shm_internal.h, weft__shm_count), with plain stores,
 * one writer each; weft__shm_live sums them.  An object queued in a mailbox
 * still counts as live until its owner drains it.
 */
#include "config.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shm.h"
#include "shm_internal.h"
#include "shm_test.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* Per-thread records: tcache and live counters                             */
/* ------------------------------------------------------------------------ */

/* volatile: read afresh at every use, so that code which may yield (and
 * resume on another kernel thread) never keeps another thread's record. */
__thread struct weft__shm_tl *volatile weft__shm_tlp
    __attribute__((tls_model("initial-exec")));
static pthread_key_t tl_key;
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t tl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__shm_tl *tl_list;
static _Atomic uint64_t gone_live; /* of exited threads (weft__shm_count) */

/* Returns the n oldest objects of bin b to jemalloc. */
void weft__shm_fc_flush(struct weft__shm_tl *t, struct weft__shm_fc_bin *b,
                        uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    sdallocx(b->v[i], b->size, t->flags);
  memmove(b->v, b->v + n, (b->n - n) * sizeof *b->v);
  b->n -= n;
}

static void fc_flush_all(struct weft__shm_tl *t) {
  for (unsigned c = 0; c < FC_CLASSES; c++)
    weft__shm_fc_flush(t, &t->bins[c], t->bins[c].n);
}

static void tl_dtor(void *v) {
  struct weft__shm_tl *t = v;
  pthread_mutex_lock(&tl_lock);
  if (t->prev)
    t->prev->next = t->next;
  else
    tl_list = t->next;
  if (t->next)
    t->next->prev = t->prev;
  atomic_fetch_add(&gone_live, ld_relaxed(&t->live));
  pthread_mutex_unlock(&tl_lock);
  if (weft__shm_self >= 0) {
    fc_flush_all(t);
    if (t->has_tc)
      mallctl("tcache.destroy", NULL, NULL, &t->tc, sizeof t->tc);
  }
  weft__shm_tlp = NULL;
  free(t);
}

static void tl_key_init(void) { pthread_key_create(&tl_key, tl_dtor); }

WEFT_NOINLINE struct weft__shm_tl *weft__shm_tl_make(void) {
  pthread_once(&tl_once, tl_key_init);
  uint32_t caps[FC_CLASSES], total = 0;
  for (unsigned c = 0; c < FC_CLASSES; c++) {
    size_t cap = FC_BIN_BYTES / weft__shm_fc_size(c);
    caps[c] = cap < FC_BIN_MIN   ? FC_BIN_MIN
              : cap > FC_BIN_MAX ? FC_BIN_MAX
                                 : (uint32_t)cap;
    total += caps[c];
  }
  struct weft__shm_tl *t =
      calloc(1, sizeof *t + total * sizeof(struct weft__shm_obj *));
  if (!t)
    return NULL;
  struct weft__shm_obj **v = t->store;
  for (unsigned c = 0; c < FC_CLASSES; c++) {
    t->bins[c].cap = caps[c];
    t->bins[c].size = weft__shm_fc_size(c);
    t->bins[c].v = v;
    v += caps[c];
  }
  t->flags = MALLOCX_ARENA(weft__shm_me.arena) | MALLOCX_TCACHE_NONE;
  if (weft__shm_me.tcache) {
    unsigned tc;
    size_t sz = sizeof tc;
    if (mallctl("tcache.create", &tc, &sz, NULL, 0) == 0) {
      t->tc = tc;
      t->has_tc = true;
      t->flags = MALLOCX_ARENA(weft__shm_me.arena) | MALLOCX_TCACHE(tc);
    }
  }
  pthread_mutex_lock(&tl_lock);
  t->next = tl_list;
  if (tl_list)
    tl_list->prev = t;
  tl_list = t;
  pthread_mutex_unlock(&tl_lock);
  pthread_setspecific(tl_key, t);
  weft__shm_tlp = t;
  return t;
}

int weft__shm_live(int64_t *objs, int64_t *bytes) {
  if (weft__shm_self < 0)
    return -EPERM;
  pthread_mutex_lock(&tl_lock);
  uint64_t sum = ld_relaxed(&gone_live);
  for (struct weft__shm_tl *t = tl_list; t; t = t->next)
    sum += ld_relaxed(&t->live);
  int64_t o = (int64_t)(sum >> LIVE_SHIFT);
  int64_t b = (int64_t)(sum & ((UINT64_C(1) << LIVE_SHIFT) - 1));
  pthread_mutex_unlock(&tl_lock);
  st_relaxed(&weft__shm_me.slot->live_objs, o);
  st_relaxed(&weft__shm_me.slot->live_bytes, b);
  if (objs)
    *objs = o;
  if (bytes)
    *bytes = b;
  return 0;
}

int weft__shm_purge(void) {
  if (weft__shm_self < 0)
    return -EPERM;
  struct weft__shm_tl *t = weft__shm_tl_get();
  if (t) {
    fc_flush_all(t);
    if (t->has_tc)
      mallctl("tcache.flush", NULL, NULL, &t->tc, sizeof t->tc);
  }
  char name[64];
  snprintf(name, sizeof name, "arena.%u.purge", weft__shm_me.arena);
  int rc = mallctl(name, NULL, NULL, NULL, 0);
  return -rc;
}
