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
 *
 * Rejected designs: a lock-free stack of freed objects linked through
 * their own memory as the mailbox (unbounded, but a late push can write
 * into an object of the partition's next generation); a fetch_add ticket
 * for producers (cannot tell a full mailbox without overshooting);
 * sdallocx from non-owners (see above).
 */
#include "config.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "shm.h"
#include "shm_internal.h"
#include "shm_test.h"
#include "util.h"
#include "weft.h"

#define MB_MASK (WEFT__SHM_MAILBOX - 1)
/*
 * How long a claimed but unpublished mailbox ticket may hold up the owner
 * before it is taken as the ticket of a producer that died between its
 * two steps (a window of a few instructions), and skipped.  If the
 * producer was only stopped that long (SIGSTOP, a debugger) and publishes
 * later, its entry is not lost: it waits in its cell and is taken when
 * the ring comes round to that cell again.
 */
#define MB_STUCK_NS ((int64_t)1000 * 1000000)
/* Most mailbox tickets the owner claims with one CAS. */
#define MB_BATCH 64
/*
 * How often the owner's alloc and free fast paths look at its mailbox:
 * once every DRAIN_EVERY calls of a thread.  Looking costs a cache line
 * transfer whenever a producer pushed since the last look, which, with a
 * producer freeing at the owner's pace, was every call; draining at most
 * every DRAIN_EVERY calls turns that and the drain's own transfers into
 * one per batch.  Explicit drains (weft_shm_free(NULL), the waits of
 * process channels, a producer finding the mailbox full) look at once.
 */
#define DRAIN_EVERY 16

_Static_assert((WEFT__SHM_MAILBOX & MB_MASK) == 0,
               "the mailbox size is a power of two");
_Static_assert((DRAIN_EVERY & (DRAIN_EVERY - 1)) == 0,
               "DRAIN_EVERY is a power of two");

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Spins a little, then yields (a green thread to its worker's others, a
 * kernel thread to the kernel). */
static void backoff(unsigned *spins) {
  if (++*spins < 64) {
    weft__cpu_relax();
    return;
  }
  weft_yield();
}

/* ------------------------------------------------------------------------ */
/* The owner's side: free, and drain the mailbox                            */
/* ------------------------------------------------------------------------ */

static inline uint64_t mb_entry(const void *p, uint64_t gen) {
  /* p is 16-byte aligned and below 2^47: p >> 4 takes 43 bits. */
  return (uint64_t)(uintptr_t)p << 12 | (gen & 0xffff);
}
static inline void *mb_ptr(uint64_t e) {
  return (void *)(uintptr_t)((e >> 16) << 4);
}

static inline bool in_mine(uintptr_t a) {
  uintptr_t off = a - weft__shm_me.lo;
  return off >= sizeof(struct weft__shm_obj) &&
         off < ld_relaxed(&weft__shm_me.slot->used) && !(a & 15);
}

static void release_entry(struct weft__shm_tl *t, uint64_t e) {
  if ((e & 0xffff) != (weft__shm_me.gen & 0xffff))
    return; /* queued to this slot's previous owner */
  void *p = mb_ptr(e);
  struct weft__shm_obj *o = (struct weft__shm_obj *)p - 1;
  uint32_t st = OBJ_QUEUED;
  if (!in_mine((uintptr_t)p) || o->tag != weft__shm_me.tag ||
      !atomic_compare_exchange_strong_explicit(&o->state, &st, OBJ_FREE,
                                               memory_order_acquire,
                                               memory_order_relaxed)) {
    weft__shm_say(
        "weft: shared heap: worker %d dropped a queued free of %p: not an "
        "object of its own waiting to be freed (freed twice?)",
        weft__shm_self, p);
    return;
  }
  weft__shm_own_put(t, o);
}

/* A claimed ticket at the head whose entry has not appeared: either its
 * producer is between its two steps (normal, brief), or it died there.
 * Returns true when the ticket was skipped. */
static _Atomic uint64_t stuck_pos;
static _Atomic int64_t stuck_since;

static bool stuck_skip(struct weft__shm_slot *s, uint64_t pos) {
  int64_t now = weft__now();
  if (ld_relaxed(&stuck_pos) != pos + 1) {
    st_relaxed(&stuck_since, now);
    st_relaxed(&stuck_pos, pos + 1);
    return false;
  }
  if (now - ld_relaxed(&stuck_since) < MB_STUCK_NS)
    return false;
  return atomic_compare_exchange_strong(&s->mb_head, &pos, pos + 1);
}

static WEFT_NOINLINE void drain_slow(bool all) {
  struct weft__shm_slot *s = weft__shm_me.slot;
  struct weft__shm_tl *t = weft__shm_tl_get();
  uint64_t n = 0;
  uint64_t got[MB_BATCH];
  if (!t)
    return;
  for (;;) {
    uint64_t pos = ld_acquire(&s->mb_head);
    uint64_t end = ld_acquire(&s->mb_tail);
    if (pos == end)
      break;
    if (end - pos > MB_BATCH)
      end = pos + MB_BATCH;
    /* Claim the run of published cells at the head with one CAS: a CAS
     * per entry moved the head's line back and forth with the producers
     * (who read it at every push) once per entry. */
    uint64_t k = pos;
    while (k != end && ld_relaxed(&s->mb[k & MB_MASK]) != 0)
      k++;
    if (k == pos) {
      if (stuck_skip(s, pos))
        continue;
      break;
    }
    /* A periodic drain takes whole lines of cells only: the line of the
     * last cells published is the one the producers are writing next,
     * and taking it now would make their next push wait for it to come
     * back.  The rest waits for the next drain (at most 7 entries). */
    bool rest = !all && (k & 7) && (k & ~(uint64_t)7) > pos;
    if (rest)
      k &= ~(uint64_t)7;
    if (!atomic_compare_exchange_weak_explicit(&s->mb_head, &pos, k,
                                               memory_order_acq_rel,
                                               memory_order_relaxed))
      continue;
    /* The cells' lines were last written by the producers: ask for all of
     * them for writing at once, so that their transfers overlap instead
     * of each waiting behind the locked exchange before it. */
    for (uint64_t q = pos; q != k; q++)
      if (q == pos || ((q & MB_MASK) & 7) == 0)
        __builtin_prefetch(&s->mb[q & MB_MASK], 1);
    unsigned m = 0;
    for (; pos != k; pos++) {
      _Atomic uint64_t *c = &s->mb[pos & MB_MASK];
      /* acquire, synchronizes with the producer's release CAS of the
       * cell (which follows its CAS of the object's state to QUEUED) */
      uint64_t e = atomic_exchange_explicit(c, 0, memory_order_acquire);
      if (!e) {
        /* A consumer of the cell's previous round took what we saw; ours
         * is on its way (or its producer died: give up after a while).
         * No weft_yield here: this thread's caches (t) are in use. */
        int64_t until = weft__now() + MB_STUCK_NS;
        while (!(e = atomic_exchange_explicit(c, 0, memory_order_acquire)) &&
               weft__now() < until)
          sched_yield();
        if (!e)
          continue;
      }
      got[m++] = e;
      /* The object's header is on a line the freeing process wrote last
       * (its CAS to QUEUED): fetch it for writing now, with the others of
       * the batch, rather than one at a time in release_entry's CAS.  The
       * owner writes that line anyway when it hands the object out again.
       * Only a hint: an entry may be bogus, release_entry checks it. */
      if ((e & 0xffff) == (weft__shm_me.gen & 0xffff) &&
          in_mine((uintptr_t)mb_ptr(e)))
        __builtin_prefetch((struct weft__shm_obj *)mb_ptr(e) - 1, 1);
    }
    for (unsigned j = 0; j < m; j++)
      release_entry(t, got[j]);
    n += m;
    if (rest)
      break;
  }
  if (n)
    atomic_fetch_add_explicit(&s->remote_frees, n, memory_order_relaxed);
}

static inline bool mb_pending(void) {
  struct weft__shm_slot *s = weft__shm_me.slot;
  return ld_relaxed(&s->mb_tail) != ld_relaxed(&s->mb_head);
}

/* Whether this fast-path call should look at the mailbox. */
static inline bool due(struct weft__shm_tl *t) {
  return (++t->calls & (DRAIN_EVERY - 1)) == 0;
}

void weft__shm_drain(void) {
  if (weft__shm_self < 0)
    return;
  if (mb_pending())
    drain_slow(true);
}

/* ------------------------------------------------------------------------ */
/* Other processes' side: queue a free to the owner                         */
/* ------------------------------------------------------------------------ */

/* Pushes e to slot s's mailbox; false when it is full. */
static bool mb_push(struct weft__shm_slot *s, int index, uint64_t gen,
                    uint64_t e) {
  uint64_t pos = ld_relaxed(&s->mb_tail);
  for (;;) {
    uint64_t head = ld_acquire(&s->mb_head);
    if (pos - head >= WEFT__SHM_MAILBOX) {
      uint64_t again = ld_relaxed(&s->mb_tail);
      if (again == pos)
        return false;
      pos = again;
      continue;
    }
    if (atomic_compare_exchange_weak_explicit(&s->mb_tail, &pos, pos + 1,
                                              memory_order_relaxed,
                                              memory_order_relaxed))
      break;
  }
  _Atomic uint64_t *c = &s->mb[pos & MB_MASK];
  unsigned spins = 0;
  for (;;) {
    uint64_t zero = 0;
    /* release, synchronizes with the owner's acquire exchange */
    if (atomic_compare_exchange_weak_explicit(c, &zero, e, memory_order_release,
                                              memory_order_relaxed))
      return true;
    /* The cell's previous entry is still being taken. */
    if (!weft__shm_slot_alive(index, gen))
      return true; /* dropped with the partition */
    backoff(&spins);
  }
}

static int remote_free(int index, struct weft__shm_slot *s, void *p,
                       uint64_t gen) {
  uint64_t e = mb_entry(p, gen);
  unsigned spins = 0;
  for (;;) {
    /* An owner that died frees nothing: its partition is reclaimed
     * whole. */
    if (!weft__shm_slot_alive(index, gen))
      return 0;
    if (mb_push(s, index, gen, e))
      return 0;
    /* Full: let the owner catch up, and meanwhile free what others
     * queued to us, so that two processes freeing each other's objects
     * cannot wait on each other. */
    weft__shm_drain();
    backoff(&spins);
  }
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */
/* ------------------------------------------------------------------------ */

static WEFT_NOINLINE int alloc_slow(size_t size, void **out) {
  if (weft__shm_self < 0)
    return -EPERM;
  if (!weft__shm_tl_get())
    return -ENOMEM;
  return weft_shm_alloc(size, out);
}

int weft_shm_alloc(size_t size, void **out) {
  if (WEFT_UNLIKELY(!out || size - 1 >= OBJ_MAX))
    return -EINVAL;
  struct weft__shm_tl *t = weft__shm_tlp;
  if (WEFT_UNLIKELY(!t || weft__shm_self < 0))
    return alloc_slow(size, out);
  if (WEFT_UNLIKELY(due(t)) && mb_pending())
    drain_slow(false);
  size_t total = size + sizeof(struct weft__shm_obj);
  struct weft__shm_obj *o;
  if (WEFT_LIKELY(total <= FC_MAX)) {
    struct weft__shm_fc_bin *b = &t->bins[weft__shm_fc_class(total)];
    if (WEFT_LIKELY(b->n))
      o = b->v[--b->n];
    else if (WEFT_UNLIKELY(!(o = mallocx(b->size, t->flags))))
      return -ENOMEM;
  } else if (WEFT_UNLIKELY(!(o = mallocx(total, t->flags)))) {
    return -ENOMEM;
  }
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
    return remote_free(i, s, p, gen);
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

int weft_shm_free(void *p) {
  if (!p) {
    weft__shm_drain();
    return 0;
  }
  /* The owner's fast path: its own live object, into its front cache. */
  struct weft__shm_tl *t = weft__shm_tlp;
  if (WEFT_LIKELY(t && weft__shm_self >= 0 && in_mine((uintptr_t)p))) {
    struct weft__shm_obj *o = (struct weft__shm_obj *)p - 1;
    if (WEFT_LIKELY(ld_relaxed(&o->state) == OBJ_LIVE &&
                    o->tag == weft__shm_me.tag)) {
      st_relaxed(&o->state, OBJ_FREE);
      weft__shm_own_put(t, o);
      if (WEFT_UNLIKELY(due(t)) && mb_pending())
        drain_slow(false);
      return 0;
    }
  }
  return free_slow(p);
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
