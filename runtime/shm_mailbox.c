/*
 * shm_mailbox.c - the remote-free mailbox of a worker's slot: where a
 * process that frees another worker's object queues it, since only the
 * owner may give it back to jemalloc (shm_arena.c), and where the owner
 * takes it from.  The ring is in the slot (shm.h).
 *
 * Remote frees: other processes push, the owner (any of its threads)
 * pops.  A bounded multi-producer multi-consumer ring of one-word
 * entries (an entry encodes the pointer and the low 16 bits of the
 * object's generation, so entries that outlive a reclaim are recognised
 * and dropped; 0 is an empty cell).  A producer claims ticket t with a
 * CAS on mb_tail while t - mb_head < WEFT__SHM_MAILBOX, then CASes its
 * entry into cell t % WEFT__SHM_MAILBOX (0 -> entry); a consumer claims
 * ticket mb_head once that cell holds an entry, and takes it with an
 * exchange.  Entries may land in another round of their cell; the
 * owner frees them in any order, which is all a free queue needs.  A
 * ticket whose producer died before publishing is skipped by the
 * consumer after a long wait (MB_STUCK_NS), so a process killed in the
 * middle of a push cannot wedge the mailbox.  All-zero memory is an
 * empty ring.
 *
 * Rejected designs: a lock-free stack of freed objects linked through
 * their own memory as the mailbox (unbounded, but a late push can write
 * into an object of the partition's next generation); a fetch_add ticket
 * for producers (cannot tell a full mailbox without overshooting);
 * sdallocx from non-owners (shm_arena.c).
 */
#include "config.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>

#include "shm.h"
#include "shm_internal.h"
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

_Static_assert((WEFT__SHM_MAILBOX & MB_MASK) == 0,
               "the mailbox size is a power of two");

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

static void release_entry(struct weft__shm_tl *t, uint64_t e) {
  if ((e & 0xffff) != (weft__shm_me.gen & 0xffff))
    return; /* queued to this slot's previous owner */
  void *p = mb_ptr(e);
  struct weft__shm_obj *o = (struct weft__shm_obj *)p - 1;
  uint32_t st = OBJ_QUEUED;
  if (!weft__shm_in_mine((uintptr_t)p) || o->tag != weft__shm_me.tag ||
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

WEFT_NOINLINE void weft__shm_drain_slow(bool all) {
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
          weft__shm_in_mine((uintptr_t)mb_ptr(e)))
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

void weft__shm_drain(void) {
  if (weft__shm_self < 0)
    return;
  if (weft__shm_mb_pending())
    weft__shm_drain_slow(true);
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

int weft__shm_remote_free(int index, struct weft__shm_slot *s, void *p,
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
