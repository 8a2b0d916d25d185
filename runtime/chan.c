/*
 * chan.c - channels and select.
 *
 * A channel is a lock, a ring buffer of `cap` elements, and two wait
 * queues (blocked senders, blocked receivers).  Transfers to a blocked
 * thread copy straight between the two threads' buffers: a blocked
 * receiver's entry points at its destination, a blocked sender's at its
 * element.  A thread that finds a partner claims the partner's waiter
 * (wait.h) before copying, which is what lets one select be queued on many
 * channels at once and still fire exactly one case.
 *
 * Select locks every channel it names, in address order (no lock-order
 * inversion between two selects), polls the cases from a random start,
 * and otherwise queues one entry per case, all pointing at one waiter.
 * After it wakes, it relocks the channels and unlinks the entries that
 * nothing claimed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "inject.h"
#include "sched.h"
#include "wait.h"

#define ELEM_MAX 65536
#define SELECT_MAX 1024

/* One cache line, aligned: every send and receive reads most of it under
 * the lock, and when the two sides run on different CPUs each operation
 * moves it across once, not twice. */
struct weft_chan {
  weft__spin lk;
  bool closed;
  uint32_t esize, cap, len, head; /* cap < 2^32 elements */
  char *buf;
  struct weft__wq sendq, recvq;
} WEFT_ALIGNED_CL;

_Static_assert(sizeof(struct weft_chan) == WEFT_CACHELINE,
               "a channel's header is one cache line");

int weft_chan_open(weft_chan **out, size_t esize, size_t cap) {
  if (!out || esize == 0 || esize > ELEM_MAX)
    return -EINVAL;
  if (cap > UINT32_MAX || cap > ((size_t)1 << 40) / esize)
    return -EINVAL;
  weft_chan *ch = weft__aligned_alloc(WEFT_CACHELINE, sizeof(*ch));
  if (!ch)
    return -ENOMEM;
  memset(ch, 0, sizeof(*ch));
  if (cap) {
    ch->buf = weft__malloc(cap * esize);
    if (!ch->buf) {
      free(ch);
      return -ENOMEM;
    }
  }
  ch->esize = (uint32_t)esize;
  ch->cap = (uint32_t)cap;
  *out = ch;
  return 0;
}

int weft_chan_free(weft_chan *ch) {
  if (!ch)
    return -EINVAL;
  weft__spin_lock(&ch->lk);
  bool busy = ch->sendq.head || ch->recvq.head;
  weft__spin_unlock(&ch->lk);
  if (busy)
    return -EBUSY;
  free(ch->buf);
  free(ch);
  return 0;
}

size_t weft_chan_len(weft_chan *ch) {
  if (WEFT_UNLIKELY(!ch))
    return 0;
  weft__spin_lock(&ch->lk);
  size_t n = ch->len;
  weft__spin_unlock(&ch->lk);
  return n;
}

size_t weft_chan_cap(weft_chan *ch) { return WEFT_LIKELY(ch) ? ch->cap : 0; }

/* The common element sizes as one move each, not a call to memcpy. */
static inline void copy(void *dst, const void *src, size_t n) {
  switch (n) {
  case 4:
    memcpy(dst, src, 4);
    break;
  case 8:
    memcpy(dst, src, 8);
    break;
  case 16:
    memcpy(dst, src, 16);
    break;
  default:
    memcpy(dst, src, n);
  }
}

/* Ring index arithmetic with a compare, not a division: head < cap and
 * i <= cap always hold. */
static inline uint32_t wrap(weft_chan *ch, size_t i) {
  return (uint32_t)(i >= ch->cap ? i - ch->cap : i);
}

static inline char *slot(weft_chan *ch, size_t i) {
  return ch->buf + (size_t)wrap(ch, (size_t)ch->head + i) * ch->esize;
}

/* Takes the oldest buffered element (ch->len > 0). */
static inline void take_buffered(weft_chan *ch, void *elem) {
  copy(elem, slot(ch, 0), ch->esize);
  ch->head = wrap(ch, (size_t)ch->head + 1);
  ch->len--;
}

/*
 * The non-blocking halves of send and receive.  Each requires ch->lk, and
 * returns 1 when done (*wake set to a claimed entry to wake after
 * unlocking, or NULL), 0 when the operation would block, or -EPIPE.
 */
static int try_send(weft_chan *ch, const void *elem,
                    struct weft__wq_entry **wake) {
  *wake = NULL;
  if (ch->closed)
    return -EPIPE;
  struct weft__wq_entry *e = weft__wq_claim(&ch->recvq);
  if (e) {
    copy(e->elem, elem, ch->esize);
    e->result = 0;
    *wake = e;
    return 1;
  }
  if (ch->len < ch->cap) {
    copy(slot(ch, ch->len), elem, ch->esize);
    ch->len++;
    return 1;
  }
  return 0;
}

static int try_recv(weft_chan *ch, void *elem, struct weft__wq_entry **wake) {
  *wake = NULL;
  if (ch->len > 0) {
    take_buffered(ch, elem);
    /* A slot opened: the first blocked sender can complete now. */
    struct weft__wq_entry *e = weft__wq_claim(&ch->sendq);
    if (e) {
      copy(slot(ch, ch->len), e->elem, ch->esize);
      ch->len++;
      e->result = 0;
      *wake = e;
    }
    return 1;
  }
  struct weft__wq_entry *e = weft__wq_claim(&ch->sendq);
  if (e) {
    copy(elem, e->elem, ch->esize);
    e->result = 0;
    *wake = e;
    return 1;
  }
  return ch->closed ? -EPIPE : 0;
}

static int block_on(weft_chan *ch, struct weft__wq *q, void *elem,
                    int64_t deadline) {
  if (deadline == WEFT_NOWAIT) {
    weft__spin_unlock(&ch->lk);
    return -EAGAIN;
  }
  if (deadline != WEFT_FOREVER && deadline <= weft__now()) {
    weft__spin_unlock(&ch->lk);
    return -ETIMEDOUT;
  }
  struct weft__waiter w;
  struct weft__wq_entry e = {.sel = 0, .elem = elem};
  weft__waiter_init(&w);
  w.exclusive = deadline == WEFT_FOREVER;
  w.reason = "chan";
  e.w = &w;
  weft__wq_push(q, &e);
  int sel = weft__waiter_park(&w, weft__unlock_spin, &ch->lk, deadline);
  if (sel != WEFT__WAIT_TIMEOUT)
    return e.result;
  weft__spin_lock(&ch->lk);
  if (e.linked)
    weft__wq_remove(q, &e);
  weft__spin_unlock(&ch->lk);
  return -ETIMEDOUT;
}

/*
 * The fast paths of send and receive: a transfer to or from a partner
 * whose waiter is exclusive (a plain blocking send or receive: queued on
 * this one channel without a deadline, so only a holder of ch->lk can
 * claim it, and it is unclaimed while queued), and the park of a green
 * thread without a deadline.  Everything else takes the general path.
 */
/* The claim and the park are the waiter's exclusive verbs (wait.h). */

/* Unlocks ch and wakes e's waiter (claimed).  The waiter lives in the
 * parked thread's frame, which stays put until the wake. */
static inline void unlock_wake(weft_chan *ch, struct weft__wq_entry *e) {
  struct weft__waiter *w = e->w;
  weft__spin_unlock(&ch->lk);
  weft__waiter_wake(w);
}

/* Parks the calling green thread on q until a partner takes it. */
static int park_green(weft_chan *ch, struct weft__wq *q, void *elem) {
  struct weft__waiter w;
  weft__waiter_init(&w);
  w.exclusive = true;
  w.reason = "chan";
  struct weft__wq_entry e = {.w = &w, .sel = 0, .elem = elem};
  weft__wq_park_exclusive(q, &e, weft__unlock_spin, &ch->lk);
  return e.result;
}

/* Returns r from a call that may park, keeping the caller's frame: a tail
 * call would drop weft_chan_send/recv from a parked thread's backtrace. */
#define KEEP_FRAME(r)                                                          \
  ({                                                                           \
    int r_ = (r);                                                              \
    __asm__ volatile("" : "+r"(r_));                                           \
    r_;                                                                        \
  })

WEFT_NOINLINE static int send_slow(weft_chan *ch, const void *elem,
                                   int64_t deadline) {
  struct weft__wq_entry *wake;
  int r = try_send(ch, elem, &wake);
  if (r == 0)
    return block_on(ch, &ch->sendq, (void *)elem, deadline);
  weft__spin_unlock(&ch->lk);
  if (wake)
    weft__waiter_wake(wake->w);
  return r < 0 ? r : 0;
}

WEFT_NOINLINE static int recv_slow(weft_chan *ch, void *elem,
                                   int64_t deadline) {
  struct weft__wq_entry *wake;
  int r = try_recv(ch, elem, &wake);
  if (r == 0)
    return block_on(ch, &ch->recvq, elem, deadline);
  weft__spin_unlock(&ch->lk);
  if (wake)
    weft__waiter_wake(wake->w);
  return r < 0 ? r : 0;
}

/*
 * A receiver that finds a buffered channel empty, while other threads are
 * runnable on its worker, lets them run before it parks.  They are often
 * the producers: a spawner's children, a pipeline's earlier stage.  If the
 * receiver parked, each message would be handed to it directly and wake
 * it: a park and a wake per message, and, when the sender runs on another
 * worker, a move of the receiver to that worker's CPU, with its stack.
 * Once they have run, it takes what they buffered as a batch, and parks
 * only if there is still nothing.
 *
 * The cost is latency for the receiver: it waits behind its worker's
 * other runnable threads (at most SLOW_EVERY picks, sched.c) instead of
 * parking and being run next by a sender's wake.  Unbuffered channels,
 * where every message is a rendezvous anyway, keep the direct park.
 */
WEFT_NOINLINE static int recv_after_yield(weft_chan *ch, void *elem) {
  weft__spin_unlock(&ch->lk);
  weft__yield_local();
  weft__spin_lock(&ch->lk);
  if (ch->len > 0 && !ch->sendq.head) {
    take_buffered(ch, elem);
    weft__spin_unlock(&ch->lk);
    return 0;
  }
  if (ch->len == 0 && !ch->sendq.head && !ch->closed)
    return KEEP_FRAME(park_green(ch, &ch->recvq, elem));
  return KEEP_FRAME(recv_slow(ch, elem, WEFT_FOREVER));
}

static WEFT_INLINE int send_until(weft_chan *ch, const void *elem,
                                  int64_t deadline) {
  struct weft__wq_entry *e;
  if (WEFT_UNLIKELY(!ch || !elem))
    return -EINVAL;
  weft__spin_lock(&ch->lk);
  if (WEFT_LIKELY(!ch->closed)) {
    if ((e = weft__wq_take_exclusive(&ch->recvq))) {
      copy(e->elem, elem, ch->esize);
      unlock_wake(ch, e);
      return 0;
    }
    if (!ch->recvq.head) {
      if (ch->len < ch->cap) { /* room in the buffer */
        copy(slot(ch, ch->len), elem, ch->esize);
        ch->len++;
        weft__spin_unlock(&ch->lk);
        return 0;
      }
      if (deadline == WEFT_FOREVER && weft__g_cur())
        return KEEP_FRAME(park_green(ch, &ch->sendq, (void *)elem));
    }
  }
  return KEEP_FRAME(send_slow(ch, elem, deadline));
}

static WEFT_INLINE int recv_until(weft_chan *ch, void *elem, int64_t deadline) {
  struct weft__wq_entry *e;
  if (WEFT_UNLIKELY(!ch || !elem))
    return -EINVAL;
  weft__spin_lock(&ch->lk);
  if (ch->len > 0 && !ch->sendq.head) { /* from the buffer */
    take_buffered(ch, elem);
    weft__spin_unlock(&ch->lk);
    return 0;
  }
  if (ch->len == 0) {
    if ((e = weft__wq_take_exclusive(&ch->sendq))) {
      copy(elem, e->elem, ch->esize);
      unlock_wake(ch, e);
      return 0;
    }
    if (!ch->sendq.head && !ch->closed && deadline == WEFT_FOREVER &&
        weft__g_cur()) {
      if (ch->cap && weft__has_local_work(weft__worker_get()))
        return KEEP_FRAME(recv_after_yield(ch, elem));
      return KEEP_FRAME(park_green(ch, &ch->recvq, elem));
    }
  }
  return KEEP_FRAME(recv_slow(ch, elem, deadline));
}

/* Each entry point has the fast paths inlined, so that it is the frame a
 * parked thread's backtrace shows. */
int weft_chan_send_until(weft_chan *ch, const void *elem, int64_t deadline) {
  return send_until(ch, elem, deadline);
}

int weft_chan_recv_until(weft_chan *ch, void *elem, int64_t deadline) {
  return recv_until(ch, elem, deadline);
}

int weft_chan_send(weft_chan *ch, const void *elem) {
  return send_until(ch, elem, WEFT_FOREVER);
}

int weft_chan_recv(weft_chan *ch, void *elem) {
  return recv_until(ch, elem, WEFT_FOREVER);
}

int weft_chan_close(weft_chan *ch) {
  if (!ch)
    return -EINVAL;
  struct weft__wq_entry *list = NULL, *e;
  weft__spin_lock(&ch->lk);
  if (ch->closed) {
    weft__spin_unlock(&ch->lk);
    return -EPIPE;
  }
  ch->closed = true;
  /* Receivers only block when the buffer is empty, so every one of them
   * gets -EPIPE; every blocked sender does too. */
  while ((e = weft__wq_claim(&ch->recvq)) || (e = weft__wq_claim(&ch->sendq))) {
    e->result = -EPIPE;
    e->next = list;
    list = e;
  }
  weft__spin_unlock(&ch->lk);
  while (list) {
    e = list;
    list = e->next;
    weft__waiter_wake(e->w);
  }
  return 0;
}

/* ------------------------------------------------------------------ */
/* Select                                                              */
/* ------------------------------------------------------------------ */

struct lockset {
  weft_chan **chs;
  size_t n;
};

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (weft_chan *const *)a;
  uintptr_t y = (uintptr_t) * (weft_chan *const *)b;
  return x < y ? -1 : x > y;
}

static void lock_all(struct lockset *ls) {
  for (size_t i = 0; i < ls->n; i++)
    weft__spin_lock(&ls->chs[i]->lk);
}

static void unlock_all(void *arg) {
  struct lockset *ls = arg;
  for (size_t i = ls->n; i-- > 0;)
    weft__spin_unlock(&ls->chs[i]->lk);
}

static __thread uint64_t select_rng;

static uint64_t select_rand(void) {
  struct weft__worker *w = weft__worker_get();
  if (w)
    return weft__rand(&w->rng);
  if (!select_rng)
    select_rng = (uint64_t)weft__now() | 1;
  return weft__rand(&select_rng);
}

int weft_select(weft_select_case *cases, size_t n, int64_t deadline) {
  if (!cases || n == 0 || n > SELECT_MAX)
    return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!cases[i].ch || !cases[i].elem ||
        (cases[i].op != WEFT_SEND && cases[i].op != WEFT_RECV))
      return -EINVAL;

  enum { SMALL = 8 };
  weft_chan *chs_small[SMALL];
  struct weft__wq_entry ents_small[SMALL];
  weft_chan **chs = chs_small;
  struct weft__wq_entry *ents = ents_small;
  if (n > SMALL) {
    chs = weft__malloc(n * sizeof(*chs));
    ents = weft__malloc(n * sizeof(*ents));
    if (!chs || !ents) {
      free(chs);
      free(ents);
      return -ENOMEM;
    }
  }
  for (size_t i = 0; i < n; i++)
    chs[i] = cases[i].ch;
  qsort(chs, n, sizeof(*chs), by_address);
  size_t u = 0;
  for (size_t i = 0; i < n; i++)
    if (i == 0 || chs[i] != chs[u - 1])
      chs[u++] = chs[i];
  struct lockset ls = {.chs = chs, .n = u};

  int ret;
  lock_all(&ls);
  size_t start = (size_t)(select_rand() % n);
  for (size_t k = 0; k < n; k++) {
    size_t i = (start + k) % n;
    struct weft__wq_entry *wake;
    int r = cases[i].op == WEFT_SEND ? try_send(cases[i].ch, cases[i].elem, &wake)
                                     : try_recv(cases[i].ch, cases[i].elem, &wake);
    if (r != 0) {
      unlock_all(&ls);
      if (wake)
        weft__waiter_wake(wake->w);
      cases[i].result = r < 0 ? r : 0;
      ret = (int)i;
      goto out;
    }
  }
  if (deadline == WEFT_NOWAIT) {
    unlock_all(&ls);
    ret = -EAGAIN;
    goto out;
  }
  if (deadline != WEFT_FOREVER && deadline <= weft__now()) {
    unlock_all(&ls);
    ret = -ETIMEDOUT;
    goto out;
  }

  struct weft__waiter w;
  weft__waiter_init(&w);
  w.reason = "select";
  for (size_t i = 0; i < n; i++) {
    ents[i] = (struct weft__wq_entry){
        .w = &w, .sel = (int)i, .elem = cases[i].elem, .result = 0};
    weft_chan *ch = cases[i].ch;
    weft__wq_push(cases[i].op == WEFT_SEND ? &ch->sendq : &ch->recvq,
                  &ents[i]);
  }
  int sel = weft__waiter_park(&w, unlock_all, &ls, deadline);
  lock_all(&ls);
  for (size_t i = 0; i < n; i++) {
    if (ents[i].linked) {
      weft_chan *ch = cases[i].ch;
      weft__wq_remove(cases[i].op == WEFT_SEND ? &ch->sendq : &ch->recvq,
                      &ents[i]);
    }
  }
  unlock_all(&ls);
  if (sel == WEFT__WAIT_TIMEOUT) {
    ret = -ETIMEDOUT;
  } else {
    cases[sel].result = ents[sel].result;
    ret = sel;
  }
out:
  if (n > SMALL) {
    free(chs);
    free(ents);
  }
  return ret;
}
