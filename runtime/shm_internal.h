/*
 * shm_internal.h - what the files of the object heap (shm.c, shm_arena.c,
 * shm_cache.c, shm_mailbox.c, shm_heap.c) share beyond shm.h: the object
 * header, the calling worker's own partition and arena, the per-thread
 * record with its front cache, and the mailbox's entry points.  Each
 * section names the file that owns it and explains it.  What the alloc
 * and free fast paths (shm_heap.c) use from another file is inline here,
 * so that they make no call they did not make when the heap was one file.
 * Process channels (shm_chan.c) and the supervisor (proc.c) use shm.h
 * only.
 */
#ifndef WEFT_SHM_INTERNAL_H
#define WEFT_SHM_INTERNAL_H

#include <jemalloc/jemalloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"
#include "util.h"

#pragma GCC visibility push(hidden) /* as in shm.h */

/* ------------------------------------------------------------------------ */
/* The object header (shm_heap.c), and the worker's partition (shm.c)       */
/* ------------------------------------------------------------------------ */

#define OBJ_LIVE 0x4556494cu   /* "LIVE" */
#define OBJ_FREE 0x45455246u   /* "FREE" */
#define OBJ_QUEUED 0x44455551u /* "QUED" */
#define OBJ_MAX ((size_t)1 << 30)
#define GEN_MASK ((UINT64_C(1) << 56) - 1)
#define TAG(slot, gen) ((uint64_t)(slot) << 56 | ((gen)&GEN_MASK))

struct weft__shm_obj {
  _Atomic uint32_t state;
  uint32_t size;
  uint64_t tag;
};
_Static_assert(sizeof(struct weft__shm_obj) == 16,
               "the object header keeps 16-byte alignment of what follows");

/* The calling worker's own partition and arena (private to the process),
 * filled in by weft__shm_attach (shm.c). */
struct weft__shm_me {
  struct weft__shm_slot *slot;
  uintptr_t lo;      /* partition base */
  size_t size;       /* partition size */
  uint64_t gen, tag; /* generation at attach, and the objects' tag */
  unsigned arena;
  bool tcache; /* one explicit tcache per thread (else none) */
};
extern struct weft__shm_me weft__shm_me;

/* Whether a is a plausible object of the calling worker's partition. */
static inline bool weft__shm_in_mine(uintptr_t a) {
  uintptr_t off = a - weft__shm_me.lo;
  return off >= sizeof(struct weft__shm_obj) &&
         off < ld_relaxed(&weft__shm_me.slot->used) && !(a & 15);
}

/* The page size, once setup or attach has read it (shm.c). */
extern size_t weft__shm_page_size;

/* Writes a line to standard error (shm.c). */
void weft__shm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Creates the calling worker's arena over its partition and records it in
 * weft__shm_me (which weft__shm_attach has filled in up to there).  Returns
 * 0, or -errno after a message. */
int weft__shm_arena_create(int index);

/* ------------------------------------------------------------------------ */
/* The per-thread record and its front cache (shm_cache.c)                  */
/* ------------------------------------------------------------------------ */

/*
 * Front cache size classes: the total size (request + header, 17 to
 * FC_MAX) rounded up to jemalloc's classes: multiples of 16 up to 128,
 * then four classes per doubling.
 */
#define FC_MAX 8192
#define FC_CLASSES 32
#define FC_BIN_BYTES (16 * 1024) /* what a full bin may hold */
#define FC_BIN_MIN 4
#define FC_BIN_MAX 64

static inline unsigned weft__shm_fc_class(size_t total) {
  if (total <= 128)
    return (unsigned)((total + 15) >> 4) - 1;
  unsigned lg = 63 - (unsigned)__builtin_clzll(total - 1);
  return 8 + (lg - 7) * 4 +
         (unsigned)((total - 1 - ((size_t)1 << lg)) >> (lg - 2));
}

static inline size_t weft__shm_fc_size(unsigned c) {
  if (c < 8)
    return (c + 1) * 16;
  unsigned lg = 7 + (c - 8) / 4, k = (c - 8) % 4;
  return ((size_t)1 << lg) + (k + 1) * ((size_t)1 << (lg - 2));
}

struct weft__shm_fc_bin {
  uint32_t n, cap;
  size_t size; /* the class size, as allocated from jemalloc */
  struct weft__shm_obj **v;
};

struct weft__shm_tl {
  int flags; /* MALLOCX_ARENA | MALLOCX_TCACHE(tc) or TCACHE_NONE */
  unsigned tc;
  bool has_tc;
  /* Live objects and bytes in one word (weft__shm_count), written by the
   * owning thread only. */
  _Atomic uint64_t live;
  struct weft__shm_tl *prev, *next;
  struct weft__shm_fc_bin bins[FC_CLASSES];
  struct weft__shm_obj *store[]; /* the bins' arrays */
};

/* volatile: read afresh at every use, so that code which may yield (and
 * resume on another kernel thread) never keeps another thread's record. */
extern __thread struct weft__shm_tl *volatile weft__shm_tlp
    __attribute__((tls_model("initial-exec")));

/* The calling thread's record, made on its first call (NULL if out of
 * memory); and the return of the n oldest objects of bin b to jemalloc. */
struct weft__shm_tl *weft__shm_tl_make(void);
void weft__shm_fc_flush(struct weft__shm_tl *t, struct weft__shm_fc_bin *b,
                        uint32_t n);

/* The rest are used by the alloc and free fast paths and the drain. */
static inline struct weft__shm_tl *weft__shm_tl_get(void) {
  struct weft__shm_tl *t = weft__shm_tlp;
  return WEFT_LIKELY(t) ? t : weft__shm_tl_make();
}

/*
 * A thread's live objects and their requested bytes, counted in one word:
 * objects times 2^LIVE_SHIFT plus bytes, one add a call where two cost a
 * measurable part of a fast path.  One thread's word may go below zero
 * (it frees what another allocated), but the sum over a worker's threads
 * is exact as long as the worker's live bytes stay below 2^LIVE_SHIFT
 * (1 TiB, far beyond any partition): bytes are the low bits of the sum,
 * objects the rest (weft__shm_live).
 */
#define LIVE_SHIFT 40
static inline void weft__shm_count(struct weft__shm_tl *t, int64_t objs,
                                   int64_t bytes) {
  st_relaxed(&t->live, ld_relaxed(&t->live) +
                           ((uint64_t)objs << LIVE_SHIFT) + (uint64_t)bytes);
}

/* Owner only, state already FREE: keeps o in the front cache, or returns
 * it to jemalloc. */
static inline void weft__shm_own_put(struct weft__shm_tl *t,
                                     struct weft__shm_obj *o) {
  uint32_t size = o->size;
  size_t total = (size_t)size + sizeof *o;
  if (WEFT_LIKELY(total <= FC_MAX)) {
    struct weft__shm_fc_bin *b = &t->bins[weft__shm_fc_class(total)];
    if (WEFT_UNLIKELY(b->n == b->cap))
      weft__shm_fc_flush(t, b, b->cap / 2);
    b->v[b->n++] = o;
  } else {
    sdallocx(o, total, t->flags);
  }
  weft__shm_count(t, -1, -(int64_t)size);
}

/* ------------------------------------------------------------------------ */
/* The mailbox (shm_mailbox.c)                                              */
/* ------------------------------------------------------------------------ */

/* Whether the calling worker's mailbox holds anything. */
static inline bool weft__shm_mb_pending(void) {
  struct weft__shm_slot *s = weft__shm_me.slot;
  return ld_relaxed(&s->mb_tail) != ld_relaxed(&s->mb_head);
}

/* Frees what the calling worker's mailbox holds: everything (all), or whole
 * lines of cells only (a periodic drain from a fast path). */
void weft__shm_drain_slow(bool all);
/* Queues a free of p, an object of slot index's generation gen, to that
 * slot's mailbox.  Returns 0. */
int weft__shm_remote_free(int index, struct weft__shm_slot *s, void *p,
                          uint64_t gen);

#pragma GCC visibility pop

#endif /* WEFT_SHM_INTERNAL_H */
