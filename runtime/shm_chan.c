/*
 * shm_chan.c - process channels: channels between processes, in the
 * shared region.
 *
 * A channel (weft_pchan) is a ring of fixed-size elements in the
 * supervisor area of the shared region (shm.h), so every process that
 * maps the region sees it at the same address.  It lives as long as the
 * region: there is no free, and a channel opened in a worker stays usable
 * after that worker exits.
 *
 * Locking.  Two locks per channel, one for the senders and one for the
 * receivers, taken by the callers of any process (weft__shm_lock: a word
 * holding its holder's pid, taken over if the holder died).  A sender
 * writes the element and then the tail under the senders' lock; a
 * receiver reads the element and then writes the head under the
 * receivers' lock; each side only reads the other's index.  Every
 * critical section still commits with one store (tail after the element
 * is copied in, head after it is copied out, closed), so a process killed
 * while holding a lock leaves the ring consistent: the element it was
 * sending was simply not sent.  (Each side also keeps the other's index as
 * it last saw it, a hint that only lags, so that it reads the other
 * side's line only when the ring looks full or empty.)  Closing takes the
 * senders' lock, so no send commits after a close, and a receiver that
 * finds the ring empty and the channel closed reads the tail again
 * before it reports the end.  A lock-free ring was rejected: a producer
 * that dies between claiming a cell and publishing it wedges the consumer
 * behind it for good.  One lock for both sides would make a sender and a
 * receiver running at once on two CPUs take the same line from each other
 * at every call.
 *
 * Blocking.  A call that cannot proceed spins for a short while (calling
 * weft_yield() when it is a green thread), so that a handoff between two
 * processes running on two CPUs costs no system call; then it sleeps.  A
 * kernel thread sleeps on a futex word in the channel without
 * FUTEX_PRIVATE_FLAG (a private futex would never be woken from another
 * process).  A green thread must not: a futex wait would stall its worker
 * and every green thread queued there.  It parks on its slot's doorbell
 * instead (shm.h), an eventfd in its worker's netpoller, like any
 * green thread waiting for an fd: it counts itself in the channel's
 * per-slot count of green sleepers of its side, and a waker that finds
 * sleepers rings the doorbell of every slot that has one (one write each).
 * In each process one green thread at a time waits on the doorbell and
 * reads it; the others wait in a room it empties when it wakes (see
 * room), and every one of them looks at its channel again and sleeps
 * again if it is not ready.  A green thread that
 * has no doorbell (not in a worker process of a pool) sleeps with
 * weft_sleep() in growing steps, counted as naps in weft_stats().  Sleeps
 * are bounded (PEER_CHECK_NS), so a blocked call wakes up now and then to
 * check its deadline and its peers.
 *
 * The sleep/wake handshake (Dekker style, all seq_cst):
 *     sleeper: s = seq; sleepers++; fence; if (!ready) futex_wait(seq, s);
 *     waker:   publish (tail or head); fence; if (sleepers) seq++, wake
 * Either the waker sees the sleeper counted and wakes it (the futex wait fails
 * at once if seq moved), or the sleeper's check sees what was published.  A
 * sleeper raises the count of its kind (kernel threads, or its slot's green
 * count) before the sleepers count, and the waker that sees sleepers reads the
 * counts of each kind after: it bumps seq and makes the futex call only if a
 * kernel thread sleeps, and rings a doorbell that an eventfd keeps rung until
 * read, so a ring that lands before the green thread parks makes its wait
 * return at once.  The fences are what make it so: without them the waker's
 * load of the count may be satisfied before its store of the index is visible
 * (store-load reordering, which x86 does), and both sides would read the
 * other's old value, the sleeper sleeping on a ring that is ready.  The fences
 * are asymmetric (see notify): the sleeper's is a membarrier system call that
 * stands in for the wakers', so that a waker pays no fence at all.  seq is
 * read before the count is raised, so a bump of seq by a waker that saw the
 * count makes the wait return at once.  A waker that finds no sleepers makes
 * no system call.  (A process killed while asleep leaves its count behind;
 * wakers then make a futex call, or ring a doorbell, that wakes nobody, which
 * costs time, not correctness.)
 *
 * Dead peers.  Each channel records which worker slots have sent on it
 * and which have received (bitmasks), with the generation each slot had
 * when it did (a restarted worker in the same slot is a new peer).  A
 * receiver blocked on an empty channel whose every known sender is dead
 * returns -ECONNRESET, and so does a sender blocked on a full channel
 * whose every known receiver is dead.  A process that is not a worker
 * (the supervisor) counts as a peer that never dies.  A restarted worker
 * becomes a peer again by using the channel: until it does, a receiver
 * whose only sender was its predecessor keeps getting -ECONNRESET.
 *
 * What each of these choices is worth is measured by bench/handoff
 * (handoff.process.shm, .green, pchan.green.wake_late) and bench/msg
 * (msg.rate.process.shm against the bare ring); bench/README.md has the
 * figures.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "shm.h"
#include "shm_test.h"
#include "util.h"
#include "wait.h"
#include "weft.h"
#include "worker.h"

#define CHAN_MAGIC 0x7765667470636831ULL /* "weftpch1" */
#define ELEM_MAX 256
#define CAP_MAX 65536
/* How long a blocked call spins before it sleeps: long enough to catch a
 * peer that is running on another CPU, short enough not to waste one.
 * After the first SPIN_PURE_NS the spinner calls sched_yield() between
 * polls, so that a peer waiting for the same CPU runs at once instead of
 * after the whole spin (both processes on one CPU: a few us per handoff
 * instead of SPIN_NS).  SPIN_PURE_NS covers a streaming peer on another
 * CPU, which frees a slot about every 1-2 us here: with 1 us, a sender
 * on a full ring often went into sched_yield (a system call, about 1 us)
 * just before the slot came. */
#define SPIN_NS ((int64_t)30 * 1000)
#define SPIN_PURE_NS ((int64_t)4 * 1000)
/* The longest sleep between two checks of the deadline and the peers (a
 * variable so that a test can make it long: shm_test.h). */
int64_t weft__shm_chan_peer_check_ns = (int64_t)20 * 1000000;
#define PEER_CHECK_NS weft__shm_chan_peer_check_ns
/* Green threads poll with weft_sleep between these bounds. */
#define GREEN_SLEEP_MIN ((int64_t)20 * 1000)
#define GREEN_SLEEP_MAX ((int64_t)1000 * 1000)

struct weft_pchan {
  uint64_t magic;
  uint32_t esize;
  uint32_t cap;  /* elements, as asked */
  uint64_t mask; /* ring slots - 1: a power of two >= cap */
  char *buf;
  /* One line per writer role, so that a sender and a receiver running at
   * once on two CPUs never fight over a line they both write: each lock
   * is taken only by its own side, each index written only by its own
   * side (under its lock), and the other side only reads it. */
  _Atomic uint32_t slock __attribute__((aligned(64)));
  _Atomic uint32_t rlock __attribute__((aligned(64)));
  /* Senders: tail (read by receivers), closed (set under slock, so that
   * no send commits after a close), and the head as last seen by a
   * sender, so that a sender reads the receivers' line only when the
   * ring looks full (a hint: never ahead of the real head). */
  _Atomic uint64_t tail __attribute__((aligned(64)));
  _Atomic uint32_t closed;
  _Atomic uint64_t head_seen;
  /* Receivers: head, and the tail as last seen by a receiver. */
  _Atomic uint64_t head __attribute__((aligned(64)));
  _Atomic uint64_t tail_seen;
  /* Sleepers of each side, counted in rsleep and wsleep: kernel threads
   * on rseq and wseq (counted in rkern and wkern too), green threads per
   * worker slot (in rgreen and wgreen). */
  _Atomic uint32_t rseq __attribute__((aligned(64)));
  _Atomic uint32_t rsleep;
  _Atomic uint32_t rkern;
  _Atomic uint32_t wseq __attribute__((aligned(64)));
  _Atomic uint32_t wsleep;
  _Atomic uint32_t wkern;
  _Atomic uint32_t rgreen[WEFT__SHM_MAX_PARTS] __attribute__((aligned(64)));
  _Atomic uint32_t wgreen[WEFT__SHM_MAX_PARTS] __attribute__((aligned(64)));
  /* Peers: slots that sent / received, and their generations. */
  _Atomic uint64_t smask __attribute__((aligned(64)));
  _Atomic uint64_t rmask;
  _Atomic uint32_t s_other, r_other; /* a non-worker sent / received */
  _Atomic uint64_t sgen[WEFT__SHM_MAX_PARTS];
  _Atomic uint64_t rgen[WEFT__SHM_MAX_PARTS];
};

/* ------------------------------------------------------------------------ */
/* Shared futexes                                                           */
/* ------------------------------------------------------------------------ */

/* util.h's futex calls use FUTEX_PRIVATE_FLAG, which keys the wait on the
 * process's own address space: these are the process-shared variants. */
static void futex_wait_shared(_Atomic uint32_t *a, uint32_t v,
                              int64_t deadline) {
  struct timespec ts = {.tv_sec = deadline / 1000000000,
                        .tv_nsec = deadline % 1000000000};
  int e = weft__errno_get();
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
  syscall(SYS_futex, a, FUTEX_WAIT_BITSET, v, &ts, NULL,
          FUTEX_BITSET_MATCH_ANY);
  weft__errno_set(e);
}

static void futex_wake_shared(_Atomic uint32_t *a, int n) {
  int e = weft__errno_get();
  syscall(SYS_futex, a, FUTEX_WAKE, n, NULL, NULL, 0);
  weft__errno_set(e);
}

/*
 * Asymmetric fences.  The fence in the waker's half of the handshake is
 * paid at every send and receive, and costs more than the whole rest of
 * the call: it waits until the index just published has left the store
 * buffer, which takes a cache line transfer when the peer is polling that
 * index from another CPU (a streaming peer always is).  Sleeping is the
 * rare side, so it pays instead: a process registered for
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED publishes and reads the sleeper count
 * with no fence, and a sleeper, after raising the count, runs
 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED), which returns only after
 * every running thread of every registered process has executed a full
 * barrier.  A waker whose barrier comes after its load of the count had
 * published its index before it, so the sleeper's check that follows sees
 * the index; a waker whose barrier comes before the load reads the count
 * already raised, and wakes.  A process that could not register (or a TSan
 * build) keeps the fence, which pairs with the sleeper's seq_cst RMW as
 * before; a sleeper whose membarrier fails cannot rely on registered
 * wakers and sleeps in short steps instead (only if the kernel refused a
 * call it had accepted in registration).  A worker registers when it
 * attaches to its slot, and any other process on its first wake
 * (registration is per address space; a forked child checks again
 * through its own pid).  Registering takes milliseconds (the kernel waits
 * for every CPU): paid at a worker's start rather than in the middle of
 * its first message.
 */
#if !WEFT_TSAN /* TSan builds keep the waker's fence: see notify */
static _Atomic int32_t asym_pid; /* registered: its pid; failed: -pid */

static WEFT_NOINLINE void asym_register(int32_t pid) {
  int e = weft__errno_get();
  long rc =
      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0);
  weft__errno_set(e);
  st_relaxed(&asym_pid, rc == 0 ? pid : -pid);
}

/* Whether this process may skip the waker's fence (registering it, the
 * first time). */
static inline bool asym_waker(void) {
  int32_t pid = weft__shm_pid(), a = ld_relaxed(&asym_pid);
  if (WEFT_LIKELY(a == pid))
    return true;
  if (a != -pid)
    asym_register(pid);
  /* This call keeps its fence: the registration above is not ordered with
   * a sleeper that ran membarrier while it was under way. */
  return false;
}

void weft__shm_chan_attach(void) { (void)asym_waker(); }
#else
void weft__shm_chan_attach(void) {}
#endif

/* The sleeper's heavy barrier; false when the kernel refused it. */
static bool asym_sleeper(void) {
  int e = weft__errno_get();
  long rc = syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
  weft__errno_set(e);
  return rc == 0;
}

/* Rings the doorbell of every slot with a green sleeper counted in green
 * (only when the sleepers count says someone sleeps). */
static WEFT_NOINLINE void ring_green(_Atomic uint32_t *green) {
  int n = weft__shm->nparts;
  for (int i = 0; i < n; i++)
    if (ld_relaxed(&green[i]))
      weft__shm_ring(i);
}

/* The waker's half of the handshake above; call after publishing.  The
 * counts of each kind are read after the sleepers count (acquire), which
 * a sleeper raises after its kind's: a sleeper seen there is seen in its
 * kind too.  No futex call when only green threads sleep. */
static inline void notify(_Atomic uint32_t *seq, _Atomic uint32_t *sleepers,
                          _Atomic uint32_t *kern, _Atomic uint32_t *green,
                          int n) {
#if WEFT_TSAN
  /* TSan does not model fences: the same order from a seq_cst RMW. */
  if (WEFT_LIKELY(!atomic_fetch_add(sleepers, 0)))
    return;
#else
  if (WEFT_LIKELY(asym_waker())) {
    /* Only the compiler must keep the load after the store: the sleeper's
     * membarrier orders them on the CPU (see above). */
    atomic_signal_fence(memory_order_seq_cst);
  } else {
    atomic_thread_fence(memory_order_seq_cst);
  }
  if (WEFT_LIKELY(!ld_acquire(sleepers)))
    return;
#endif
  if (ld_relaxed(kern)) {
    atomic_fetch_add(seq, 1);
    futex_wake_shared(seq, n);
  }
  ring_green(green);
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                    */
/* ------------------------------------------------------------------------ */

static inline void mark(_Atomic uint64_t *mask, _Atomic uint64_t *gens,
                        _Atomic uint32_t *other) {
  int i = weft__shm_self;
  if (i < 0) {
    if (!ld_relaxed(other))
      st_release(other, 1);
    return;
  }
  uint64_t g = weft__shm_self_gen(), bit = UINT64_C(1) << i;
  if (WEFT_LIKELY((ld_relaxed(mask) & bit) && ld_relaxed(&gens[i]) == g))
    return;
  st_release(&gens[i], g);
  /* release: a checker that sees the bit sees the generation */
  atomic_fetch_or_explicit(mask, bit, memory_order_release);
}

/* True when there is at least one known peer and every one is dead. */
static bool all_dead(_Atomic uint64_t *mask, _Atomic uint64_t *gens,
                     _Atomic uint32_t *other) {
  if (ld_acquire(other))
    return false;
  uint64_t m = ld_acquire(mask);
  if (!m)
    return false;
  for (; m; m &= m - 1) {
    int i = __builtin_ctzll(m);
    if (weft__shm_slot_alive(i, ld_acquire(&gens[i])))
      return false;
  }
  return true;
}

/* ------------------------------------------------------------------------ */
/* The ring                                                                 */
/* ------------------------------------------------------------------------ */

static int check(weft_pchan *ch) {
  struct weft__shm_hdr *h = weft__shm;
  if (WEFT_UNLIKELY(!ch))
    return -EINVAL; /* the caller's mistake, region or not */
  if (!h)
    return -EPERM;
  uintptr_t a = (uintptr_t)ch, lo = (uintptr_t)h + h->area_off;
  if (a < lo || a - lo >= h->area_size || (a & 63) ||
      ch->magic != CHAN_MAGIC)
    return -EINVAL;
  return 0;
}

int weft_pchan_open(weft_pchan **out, size_t esize, size_t cap) {
  if (!out || esize < 1 || esize > ELEM_MAX || cap < 1 || cap > CAP_MAX)
    return -EINVAL;
  if (!weft__shm)
    return -EPERM;
  size_t ring = 1;
  while (ring < cap)
    ring <<= 1;
  weft_pchan *ch = weft__shm_area_alloc(sizeof *ch + ring * esize);
  if (!ch)
    return -ENOMEM;
  ch->esize = (uint32_t)esize;
  ch->cap = (uint32_t)cap;
  ch->mask = ring - 1;
  ch->buf = (char *)(ch + 1);
  /* release: whoever is handed the channel sees it filled in */
  atomic_store_explicit((_Atomic uint64_t *)&ch->magic, CHAN_MAGIC,
                        memory_order_release);
  *out = ch;
  return 0;
}

/* An element copy: a pointer (the usual element) inline rather than
 * through a call to memcpy with a size it cannot know. */
static inline void copy(void *dst, const void *src, uint32_t n) {
  if (WEFT_LIKELY(n == sizeof(void *)))
    memcpy(dst, src, sizeof(void *));
  else
    memcpy(dst, src, n);
}

/* 1: sent; 0: full; -EPIPE: closed. */
static int try_send(weft_pchan *ch, const void *elem) {
  weft__shm_lock(&ch->slock);
  if (ld_relaxed(&ch->closed)) {
    weft__shm_unlock(&ch->slock);
    return -EPIPE;
  }
  uint64_t t = ld_relaxed(&ch->tail);
  if (t - ld_relaxed(&ch->head_seen) >= ch->cap) {
    /* acquire, synchronizes with the receiver's release of the slot */
    uint64_t h = ld_acquire(&ch->head);
    st_relaxed(&ch->head_seen, h);
    if (t - h >= ch->cap) {
      weft__shm_unlock(&ch->slock);
      return 0;
    }
  }
  copy(ch->buf + (t & ch->mask) * ch->esize, elem, ch->esize);
  st_release(&ch->tail, t + 1); /* the one store that commits */
  weft__shm_unlock(&ch->slock);
  notify(&ch->rseq, &ch->rsleep, &ch->rkern, ch->rgreen, 1);
  return 1;
}

/* 1: received; 0: empty; -EPIPE: closed and drained. */
static int try_recv(weft_pchan *ch, void *elem) {
  weft__shm_lock(&ch->rlock);
  uint64_t h = ld_relaxed(&ch->head);
  if (h == ld_relaxed(&ch->tail_seen)) {
    /* acquire, synchronizes with the sender's release of the element */
    uint64_t t = ld_acquire(&ch->tail);
    if (h == t && ld_acquire(&ch->closed)) {
      /* Every send committed before the close (closed is set under the
       * senders' lock): the tail read after it is the last one. */
      t = ld_acquire(&ch->tail);
    }
    st_relaxed(&ch->tail_seen, t);
    if (h == t) {
      int r = ld_relaxed(&ch->closed) ? -EPIPE : 0;
      weft__shm_unlock(&ch->rlock);
      return r;
    }
  }
  copy(elem, ch->buf + (h & ch->mask) * ch->esize, ch->esize);
  st_release(&ch->head, h + 1); /* the one store that commits */
  weft__shm_unlock(&ch->rlock);
  notify(&ch->wseq, &ch->wsleep, &ch->wkern, ch->wgreen, 1);
  return 1;
}

/* Whether a call would make progress now (a hint, read without the
 * lock; seq_cst for the sleep handshake). */
static inline bool ready(weft_pchan *ch, bool recv) {
  if (atomic_load(&ch->closed))
    return true;
  uint64_t h = atomic_load(&ch->head), t = atomic_load(&ch->tail);
  return recv ? t != h : t - h < ch->cap;
}

/*
 * The doorbell's waiting room (one per process).  Every green thread of a
 * process that sleeps on any channel shares its slot's doorbell, and a
 * ring is one eventfd count: if each of them waited on the doorbell and
 * read it, the first to wake would swallow a ring meant for another that
 * had counted itself but not parked yet, which would then sleep until its
 * next peer check.  So one of them at a time, the watcher, waits on the
 * doorbell and reads it; the others park in the room.  When the watcher
 * returns, for whatever reason, it bumps gen and wakes the room: each
 * looks at its channel again, and one becomes the next watcher.  A thread
 * reads gen before it looks at its channel, and does not park if gen has
 * moved since: a ring that the watcher read meanwhile may have been for
 * it.
 */
static struct {
  weft__spin lk;
  struct weft__wq q;  /* the green threads parked in the room */
  bool watching;      /* a watcher waits on the doorbell */
  _Atomic uint32_t gen; /* the watcher's returns */
} room;

/* Waits in the room or on the doorbell bell until something may have
 * rung since gen, or until.  Returns 0, -ETIMEDOUT, -ECANCELED, or
 * another -errno when the doorbell cannot be waited on. */
static int room_wait(int bell, uint32_t gen, int64_t until) {
  weft__spin_lock(&room.lk);
  if (ld_relaxed(&room.gen) != gen) {
    weft__spin_unlock(&room.lk);
    return 0;
  }
  if (room.watching)
    return weft__wq_wait(&room.lk, &room.q, until, "pchan", true);
  room.watching = true;
  weft__spin_unlock(&room.lk);
  int r = weft_wait_fd(bell, POLLIN, until);
  if (r > 0) {
    uint64_t v; /* empty it: the next ring makes a new edge */
    ssize_t n = read(bell, &v, sizeof v);
    (void)n;
  }
  weft__spin_lock(&room.lk);
  room.watching = false;
  atomic_fetch_add(&room.gen, 1);
  struct weft__wq_entry *list = weft__wq_claim_all(&room.q);
  weft__spin_unlock(&room.lk);
  weft__wq_wake_list(list);
  return r > 0 ? 0 : r;
}

void weft__shm_chan_fork_child(void) {
  /* The room's threads are the parent's, and its lock may have been held
   * by one of its workers at the fork. */
  atomic_store(&room.lk.v, 0);
  room.q.head = room.q.tail = NULL;
  room.watching = false;
}

/*
 * A green thread's sleep: counted in its slot's green count and in the
 * sleepers count, it waits in the room (above) until a waker may have
 * rung its slot's doorbell, or until (the doorbell stays readable until
 * read, so a ring between the check and the park is not lost).  Returns 0
 * (look again), -ECANCELED, or -1 when the doorbell cannot be waited on
 * (the caller polls instead).
 */
static int park_on_doorbell(weft_pchan *ch, bool recv,
                            _Atomic uint32_t *sleepers,
                            _Atomic uint32_t *green, int bell, int64_t until) {
  uint32_t gen = ld_acquire(&room.gen);
  atomic_fetch_add(green, 1);
  atomic_fetch_add(sleepers, 1);
  /* The heavy half of the asymmetric fence: see the top.  Without it a
   * registered waker may have missed both counts: look again soon. */
  int64_t step = asym_sleeper() ? until : weft__now() + GREEN_SLEEP_MIN;
  if (step > until)
    step = until;
  int r = 0;
  if (!ready(ch, recv)) {
    if (weft__inject(WEFT__F_PCHAN_STALL))
      usleep(5000); /* for race tests: see weft_testing.h */
    r = room_wait(bell, gen, step);
  }
  atomic_fetch_sub(sleepers, 1);
  atomic_fetch_sub(green, 1);
  if (r == -ECANCELED)
    return r;
  return r >= 0 || r == -ETIMEDOUT ? 0 : -1;
}

/*
 * Waits until the channel may be ready for the caller.  Returns 0 (try
 * again), -ETIMEDOUT at the deadline, or -ECONNRESET when every known
 * peer on the other side is dead.
 */
static int wait_for(weft_pchan *ch, bool recv, int64_t deadline) {
  _Atomic uint32_t *seq = recv ? &ch->rseq : &ch->wseq;
  _Atomic uint32_t *sleepers = recv ? &ch->rsleep : &ch->wsleep;
  _Atomic uint32_t *kern = recv ? &ch->rkern : &ch->wkern;
  _Atomic uint32_t *green_n = recv ? ch->rgreen : ch->wgreen;
  bool green = weft_in_gthread();
  int64_t now;
  /* Set at the first look at the clock, four rounds in: most waits of a
   * busy stream end before it, and a clock read (tens of ns where the
   * clock is virtualised) was a visible part of each.  Later looks come
   * every 64 rounds for a kernel thread; the first one that late let a
   * waiter on one CPU spin 64 rounds more before it yielded to its peer
   * (handoff.process.shm.1cpu: 7.7 to 9.4 us). */
  int64_t spin_until = 0, pure_until = 0;
  bool yielding = false;

  for (unsigned i = 1;; i++) {
    if (ready(ch, recv))
      return 0;
    /* A green thread lets its worker's other green threads run, and
     * later also other processes. */
    if (green)
      weft_yield();
    if (yielding)
      sched_yield();
    else if (!green)
      weft__cpu_relax();
    if (yielding || (i & (green || !spin_until ? 3 : 63)) == 0) {
      now = weft__now();
      if (!spin_until) {
        spin_until = deadline < now + SPIN_NS ? deadline : now + SPIN_NS;
        pure_until = now + SPIN_PURE_NS;
      }
      if (now >= spin_until)
        break;
      yielding = now >= pure_until;
    }
  }

  int64_t nap = GREEN_SLEEP_MIN;
  for (;;) {
    /* Whoever frees our objects may be waiting for our mailbox. */
    weft__shm_drain();
    if (ready(ch, recv))
      return 0;
    int rc = 0;
    if (recv ? all_dead(&ch->smask, ch->sgen, &ch->s_other)
             : all_dead(&ch->rmask, ch->rgen, &ch->r_other))
      rc = -ECONNRESET;
    now = weft__now();
    if (!rc && now >= deadline)
      rc = -ETIMEDOUT;
    if (rc) {
      /* A wake this caller may have consumed goes to another sleeper. */
      notify(seq, sleepers, kern, green_n, 1);
      return rc;
    }
    int64_t until =
        deadline - now < PEER_CHECK_NS ? deadline : now + PEER_CHECK_NS;
    if (green) {
      int self = weft__shm_self;
      int bell = self >= 0 ? weft__shm->slots[self].doorbell : -1;
      rc = bell >= 0 ? park_on_doorbell(ch, recv, sleepers, &green_n[self],
                                        bell, until)
                     : -1;
      if (rc == -1) {
        /* No doorbell (or it failed): poll in growing steps. */
        struct weft__worker *w = weft__worker_get();
        if (w)
          weft__stat_inc(&w->st.pchan_naps);
        rc = weft_sleep(nap < until - now ? nap : until - now);
        nap = nap * 2 < GREEN_SLEEP_MAX ? nap * 2 : GREEN_SLEEP_MAX;
      }
      if (rc == -ECANCELED) {
        notify(seq, sleepers, kern, green_n, 1); /* as above */
        return rc;
      }
      continue;
    }
    uint32_t s = atomic_load(seq);
    atomic_fetch_add(kern, 1);
    atomic_fetch_add(sleepers, 1);
    /* The heavy half of the asymmetric fence, between raising the count
     * and checking the ring.  Without it a registered waker may have
     * missed the count: sleep in short steps, polling. */
    if (!asym_sleeper()) {
      int64_t step = now + nap < until ? now + nap : until;
      nap = nap * 2 < GREEN_SLEEP_MAX ? nap * 2 : GREEN_SLEEP_MAX;
      until = step;
    }
    if (!ready(ch, recv))
      futex_wait_shared(seq, s, until);
    atomic_fetch_sub(sleepers, 1);
    atomic_fetch_sub(kern, 1);
  }
}

int weft_pchan_send(weft_pchan *ch, const void *elem, int64_t deadline) {
  int rc = check(ch);
  if (rc)
    return rc;
  if (!elem)
    return -EINVAL;
  mark(&ch->smask, ch->sgen, &ch->s_other);
  for (;;) {
    rc = try_send(ch, elem);
    if (rc)
      return rc < 0 ? rc : 0;
    if (deadline == WEFT_NOWAIT)
      return -EAGAIN;
    rc = wait_for(ch, false, deadline);
    if (rc)
      return rc;
  }
}

int weft_pchan_recv(weft_pchan *ch, void *elem, int64_t deadline) {
  int rc = check(ch);
  if (rc)
    return rc;
  if (!elem)
    return -EINVAL;
  mark(&ch->rmask, ch->rgen, &ch->r_other);
  for (;;) {
    rc = try_recv(ch, elem);
    if (rc)
      return rc < 0 ? rc : 0;
    if (deadline == WEFT_NOWAIT)
      return -EAGAIN;
    rc = wait_for(ch, true, deadline);
    if (rc)
      return rc;
  }
}

int weft_pchan_close(weft_pchan *ch) {
  int rc = check(ch);
  if (rc)
    return rc;
  weft__shm_lock(&ch->slock);
  if (ld_relaxed(&ch->closed)) {
    weft__shm_unlock(&ch->slock);
    return -EPIPE;
  }
  st_release(&ch->closed, 1);
  weft__shm_unlock(&ch->slock);
  atomic_fetch_add(&ch->rseq, 1);
  atomic_fetch_add(&ch->wseq, 1);
  futex_wake_shared(&ch->rseq, INT_MAX);
  futex_wake_shared(&ch->wseq, INT_MAX);
  ring_green(ch->rgreen);
  ring_green(ch->wgreen);
  return 0;
}
