/*
 * shm_heap.c - the object heap in the shared region: the objects that
 * weft_shm_alloc hands out from the calling worker's arena (shm_arena.c
 * says why the heap is built as it is), and every process may read and
 * free.
 *
 * Object header.  Every object is preceded by 16 bytes:
 *
 *     +0  state  OBJ_LIVE, OBJ_FREE or OBJ_QUEUED (a magic number each)
 *     +4  size   requested bytes
 *     +8  tag    owner slot << 56 | owner generation (56 bits)
 *
 * States: LIVE from weft_shm_alloc until a free; FREE once the owner has
 * it back (in one of its caches, or in jemalloc); QUEUED from a free by
 * another process until the owner drains it from its mailbox.  Another
 * process frees with a CAS LIVE -> QUEUED, so of two racing non-owner
 * frees one is refused.  The owner frees with a plain load and store
 * (LIVE -> FREE): a CAS costs more than a whole malloc+free pair here.
 * A race between an owner's free and another process's free of the same
 * object therefore leaves the state FREE with an entry in the mailbox,
 * which the drain drops (its CAS QUEUED -> FREE fails) with a message.
 * The tag ties the object to a generation of its partition, so an object
 * whose partition was reclaimed is recognised (and weft_shm_ref carries
 * the generation for pointers kept across a reclaim).  As with any
 * allocator, detection is best effort: a double free is caught until the
 * memory is reused, and two frees racing each other in two threads of the
 * owner are not caught.
 */
#include "config.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"
#include "shm_internal.h"
#include "util.h"
#include "weft.h"

/*
 * When the owner looks at its mailbox: at every alloc and free call of
 * any of its threads (weft__shm_mb_pending, two loads of its slot's
 * indices), and a fast path goes to its slow path to drain only when
 * something is waiting.  An object another process freed is then back in
 * the front cache by the owner's next call and, the bins handing out the
 * last object put back first, is the next one allocated.  Measured on a
 * stream of 4 KiB objects from one worker to another, freed by the
 * receiver (bench/msg: msg.rate.process.shm against the bare ring,
 * msg.rate.process.ring, 20 rounds taking turns with the ring): looking
 * once every 16 calls and draining in batches gave 0.89x the ring's rate,
 * looking at every call 1.04x in the same runs.  Batching saved line
 * transfers (each look after a push costs one), but the sender's time
 * goes to writing the payloads, which hides them; what cost was the
 * delay itself.  By hand, the same heap with the frees handed back to the
 * sender through a bare ring and freed by the sender ran at the ring's
 * rate when it read that ring at every message, and at this mailbox's
 * when it read it every 16.  Without remote frees the two indices stay
 * in the owner's cache, and shm.alloc_free is the same.  Explicit drains
 * (weft_shm_free(NULL), the waits of process channels, a producer finding
 * the mailbox full) take whatever is there.
 */

/* weft_shm_alloc and weft_shm_free start on a cache line of their own:
 * with the same instructions, where they fell in the fetch blocks moved
 * shm.alloc_free by 4% from one build of libweft to the next. */
#define FAST_PATH __attribute__((aligned(64)))

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */
/* ------------------------------------------------------------------------ */

/*
 * The fast paths below handle the common case alone: a caller with its
 * thread record, a small object, a front-cache bin that is not empty (an
 * allocation) or not full (a free), and an empty mailbox.
 * Everything else goes to a slow path by a tail call, which starts over
 * with every check.  So the fast paths call nothing and need no registers
 * of their own to save: a call anywhere in them (the drain, jemalloc) made
 * the compiler save five registers on every call, about a quarter of a
 * free's instructions.
 */

/* Everything weft_shm_alloc's fast path does not. */
static WEFT_NOINLINE int alloc_slow(size_t size, void **out) {
  if (!out || size - 1 >= OBJ_MAX)
    return -EINVAL;
  if (weft__shm_self < 0)
    return -EPERM;
  struct weft__shm_tl *t = weft__shm_tl_get();
  if (!t)
    return -ENOMEM;
  if (weft__shm_mb_pending())
    weft__shm_drain_slow(false);
  size_t total = size + sizeof(struct weft__shm_obj);
  struct weft__shm_obj *o;
  if (total <= FC_MAX) {
    struct weft__shm_fc_bin *b = &t->bins[weft__shm_fc_class(total)];
    if (b->n)
      o = b->v[--b->n];
    else if (!(o = mallocx(b->size, t->flags)))
      return -ENOMEM;
  } else if (!(o = mallocx(total, t->flags))) {
    return -ENOMEM;
  }
  o->size = (uint32_t)size;
  o->tag = weft__shm_me.tag;
  st_release(&o->state, OBJ_LIVE);
  weft__shm_count(t, 1, (int64_t)size);
  *out = o + 1;
  return 0;
}

FAST_PATH int weft_shm_alloc(size_t size, void **out) {
  struct weft__shm_tl *t = weft__shm_tlp;
  size_t total = size + sizeof(struct weft__shm_obj);
  /* For size 0, size - 1 wraps to SIZE_MAX: the slow path refuses it. */
  if (WEFT_UNLIKELY(!t || !out ||
                    size - 1 >= FC_MAX - sizeof(struct weft__shm_obj) ||
                    weft__shm_self < 0))
    return alloc_slow(size, out);
  struct weft__shm_fc_bin *b = &t->bins[weft__shm_fc_class(total)];
  if (WEFT_UNLIKELY(!b->n || weft__shm_mb_pending()))
    return alloc_slow(size, out); /* refill, or the mailbox's turn */
  struct weft__shm_obj *o = b->v[--b->n];
  o->size = (uint32_t)size;
  o->tag = weft__shm_me.tag;
  /* release: pairs with the acquire loads of a checking free (the
   * pointer itself travels through something that synchronizes) */
  st_release(&o->state, OBJ_LIVE);
  weft__shm_count(t, 1, (int64_t)size);
  *out = o + 1;
  return 0;
}

/* Where p would be: the slot index of the partition p is in, if p is at a
 * plausible object start there; else -1 with *why saying what is wrong. */
static int locate(const void *p, const char **why, int *part) {
  struct weft__shm_hdr *h = weft__shm;
  uintptr_t a = (uintptr_t)p;
  *part = -1;
  if (!h) {
    *why = "there is no shared heap in this process";
    return -1;
  }
  uintptr_t base = (uintptr_t)h->parts;
  if (a < base || a - base >= h->part_size * (size_t)h->nparts) {
    *why = "not a shared-heap pointer";
    return -1;
  }
  int i = (int)((a - base) / h->part_size);
  uintptr_t off = a - (base + (uintptr_t)i * h->part_size);
  *part = i;
  if (off >= ld_acquire(&h->slots[i].used)) {
    *why = "not a live shared-heap object (beyond what its worker has "
           "allocated)";
    return -1;
  }
  if ((a & 15) || off < sizeof(struct weft__shm_obj)) {
    *why = "not the start of a shared-heap object";
    return -1;
  }
  return i;
}

static WEFT_NOINLINE int free_slow(void *p) {
  if (!p) {
    weft__shm_drain();
    return 0;
  }
  const char *why;
  int part;
  int i = locate(p, &why, &part);
  if (i < 0) {
    uint64_t gen = part >= 0 ? ld_acquire(&weft__shm->slots[part].gen) : 0;
    if (gen > 1)
      weft__shm_say("weft: weft_shm_free(%p): %s; worker %d's partition was "
          "reclaimed (generation now %llu)",
          p, why, part, (unsigned long long)gen);
    else
      weft__shm_say("weft: weft_shm_free(%p): %s", p, why);
    return -EINVAL;
  }
  struct weft__shm_slot *s = &weft__shm->slots[i];
  struct weft__shm_obj *o = (struct weft__shm_obj *)p - 1;
  uint64_t gen = ld_acquire(&s->gen);
  uint32_t st = ld_acquire(&o->state);
  uint64_t tag = o->tag;
  if (st == OBJ_LIVE && tag != TAG(i, gen)) {
    weft__shm_say(
        "weft: weft_shm_free(%p): object of worker %d's generation %llu, "
        "whose partition was reclaimed since (now generation %llu)",
        p, i, (unsigned long long)(tag & GEN_MASK), (unsigned long long)gen);
    return -EINVAL;
  }
  if (st == OBJ_LIVE && i == weft__shm_self) {
    struct weft__shm_tl *t = weft__shm_tl_get();
    if (!t)
      return -ENOMEM;
    st_relaxed(&o->state, OBJ_FREE);
    weft__shm_own_put(t, o);
    return 0;
  }
  if (st == OBJ_LIVE && atomic_compare_exchange_strong_explicit(
                            &o->state, &st, OBJ_QUEUED, memory_order_acq_rel,
                            memory_order_acquire))
    return weft__shm_remote_free(i, s, p, gen);
  if (st == OBJ_FREE || st == OBJ_QUEUED)
    weft__shm_say(
        "weft: weft_shm_free(%p): double free (worker %d's object was "
        "already freed)",
        p, i);
  else if (gen > 1)
    weft__shm_say(
        "weft: weft_shm_free(%p): not a live shared-heap object (never "
        "allocated, or worker %d's partition was reclaimed: generation "
        "now %llu)",
        p, i, (unsigned long long)gen);
  else
    weft__shm_say("weft: weft_shm_free(%p): not a live shared-heap object", p);
  return -EINVAL;
}

/* The mailbox's turn, after a fast-path free that found it not empty. */
static WEFT_NOINLINE int free_then_drain(void) {
  weft__shm_drain_slow(false);
  return 0;
}

FAST_PATH int weft_shm_free(void *p) {
  /* The owner's fast path: its own live object, into a front-cache bin
   * with room (free_slow does the rest, and NULL). */
  struct weft__shm_tl *t = weft__shm_tlp;
  if (WEFT_UNLIKELY(!p || !t || weft__shm_self < 0 ||
                    !weft__shm_in_mine((uintptr_t)p)))
    return free_slow(p);
  struct weft__shm_obj *o = (struct weft__shm_obj *)p - 1;
  uint32_t size = o->size;
  size_t total = (size_t)size + sizeof *o;
  if (WEFT_UNLIKELY(ld_relaxed(&o->state) != OBJ_LIVE ||
                    o->tag != weft__shm_me.tag || total > FC_MAX))
    return free_slow(p);
  struct weft__shm_fc_bin *b = &t->bins[weft__shm_fc_class(total)];
  if (WEFT_UNLIKELY(b->n == b->cap))
    return free_slow(p); /* a flush first */
  st_relaxed(&o->state, OBJ_FREE);
  b->v[b->n++] = o;
  weft__shm_count(t, -1, -(int64_t)size);
  if (WEFT_UNLIKELY(weft__shm_mb_pending()))
    return free_then_drain();
  return 0;
}

int weft_shm_owner(const void *p) {
  struct weft__shm_hdr *h = weft__shm;
  uintptr_t a = (uintptr_t)p;
  if (!h)
    return -EINVAL;
  uintptr_t base = (uintptr_t)h->parts;
  if (a < base || a - base >= h->part_size * (size_t)h->nparts)
    return -EINVAL;
  int i = (int)((a - base) / h->part_size);
  if (a - (base + (uintptr_t)i * h->part_size) >= ld_acquire(&h->slots[i].used))
    return -EINVAL;
  return i;
}

bool weft_shm_contains(const void *p) {
  struct weft__shm_hdr *h = weft__shm;
  uintptr_t a = (uintptr_t)p;
  return h && a >= (uintptr_t)h && a - (uintptr_t)h < h->size;
}

weft_shm_ref weft_shm_ref_of(void *p) {
  weft_shm_ref ref = {p, 0};
  const char *why;
  int part;
  int i = locate(p, &why, &part);
  if (i < 0)
    return ref;
  struct weft__shm_obj *o = (struct weft__shm_obj *)p - 1;
  uint64_t gen = ld_acquire(&weft__shm->slots[i].gen);
  if (ld_acquire(&o->state) == OBJ_LIVE && o->tag == TAG(i, gen))
    ref.gen = gen;
  return ref;
}

int weft_shm_ref_check(weft_shm_ref ref) {
  struct weft__shm_hdr *h = weft__shm;
  uintptr_t a = (uintptr_t)ref.p;
  if (!h || ref.gen == 0)
    return -EINVAL;
  uintptr_t base = (uintptr_t)h->parts;
  if (a < base || a - base >= h->part_size * (size_t)h->nparts || (a & 15))
    return -EINVAL;
  int i = (int)((a - base) / h->part_size);
  /* Checked before touching the memory, which a reclaim discarded and a
   * new owner may have reused. */
  if (ld_acquire(&h->slots[i].gen) != ref.gen)
    return -ESTALE;
  const char *why;
  int part;
  if (locate(ref.p, &why, &part) != i)
    return -ESTALE;
  struct weft__shm_obj *o = (struct weft__shm_obj *)ref.p - 1;
  uint32_t st = ld_acquire(&o->state);
  if (st == OBJ_LIVE && o->tag == TAG(i, ref.gen))
    return 0;
  return -ESTALE; /* freed since */
}
