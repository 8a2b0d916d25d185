/*
 * netpoll.c - the netpoller's descriptors and waits: a poll descriptor per
 * fd (its readiness, the waiters parked on it, its generation), the waits
 * of green threads and of kernel threads, and the wakes an event brings.
 * The epoll instance and the polls are netpoll_epoll.c's.
 *
 * Edges.  Registration is edge-triggered: an event is reported once per
 * change of readiness.  A descriptor remembers an edge that arrived while
 * nobody waited (ready[dir]), and the next waiter consumes it and retries
 * its call at once.  Every waiter of a direction is woken by an edge: they
 * retry, and those that lose the race for the data wait again.  The event
 * carries the descriptor's generation, bumped by weft_close, so an event
 * for an earlier use of the same fd number is dropped (weft__pd_event).
 *
 * Kernel threads that are not workers never register: they wait in poll(2)
 * on the fd itself.  weft_close wakes them by shutting the socket down.
 *
 * fork.  The waiters queued here in a child are the parent's green
 * threads, and the locks may have been held by its other threads: the
 * fork handler (rt.h) clears them, after the back end has dropped the
 * parent's epoll instance.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inject.h"
#include "gthread.h"
#include "netpoll.h"
#include "sched.h"
#include "timer.h"
#include "rt.h"

#define BLOCK_BITS 10
#define BLOCK_SIZE (1 << BLOCK_BITS)
#define NBLOCKS 4096 /* fds up to 4M */

static _Atomic(struct weft__pd *) blocks[NBLOCKS];

_Atomic int weft__netpoll_waiting;

/* ------------------------------------------------------------------ */
/* Descriptors                                                        */
/* ------------------------------------------------------------------ */

struct weft__pd *weft__pd_of(int fd, bool create) {
  if (fd < 0 || (unsigned)fd >= (unsigned)NBLOCKS * BLOCK_SIZE)
    return NULL;
  unsigned b = (unsigned)fd >> BLOCK_BITS;
  struct weft__pd *blk = ld_acquire(&blocks[b]);
  if (WEFT_UNLIKELY(!blk)) {
    if (!create)
      return NULL;
    struct weft__pd *fresh = weft__calloc(BLOCK_SIZE, sizeof(*fresh));
    if (!fresh)
      return NULL;
    struct weft__pd *none = NULL;
    if (atomic_compare_exchange_strong(&blocks[b], &none, fresh))
      blk = fresh;
    else {
      free(fresh);
      blk = none;
    }
  }
  return &blk[fd & (BLOCK_SIZE - 1)];
}

int weft__pd_of_error(int fd) {
  /* No fd can be open beyond the table (the kernel's fs.nr_open is far
   * smaller); inside it, only memory can be missing. */
  if (fd < 0 || (unsigned)fd >= (unsigned)NBLOCKS * BLOCK_SIZE)
    return -EBADF;
  return -ENOMEM;
}

/* Requires pd->lk. */
static void fresh_locked(struct weft__pd *pd, bool is_sock, bool is_stream) {
  weft__dassert(weft__spin_held(&pd->lk));
  pd->is_sock = is_sock;
  pd->is_stream = is_stream;
  pd->drained = false;
  __atomic_store_n(&pd->rhup, false, __ATOMIC_RELAXED);
  pd->no_epoll = false;
  __atomic_store_n(&pd->reg_epoch, 0, __ATOMIC_RELAXED);
  pd->ready[0] = pd->ready[1] = false;
  /* release: io.c's load-acquire of adopted then sees the kind above */
  __atomic_store_n(&pd->adopted, true, __ATOMIC_RELEASE);
}

int weft__pd_adopt(struct weft__pd *pd, int fd, bool once) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0)
    return -errno;
  if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
    return -errno;
  struct stat st;
  bool sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  int type = 0;
  socklen_t len = sizeof type;
  if (sock && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    type = 0;
  weft__spin_lock(&pd->lk);
  /* Threads that use a new fd at once all adopt it: only the first resets
   * the descriptor, which the others may already be waiting on. */
  if (!once || !__atomic_load_n(&pd->adopted, __ATOMIC_RELAXED))
    fresh_locked(pd, sock, type == SOCK_STREAM);
  weft__spin_unlock(&pd->lk);
  return 0;
}

void weft__pd_fresh(struct weft__pd *pd, bool is_sock, bool is_stream) {
  weft__spin_lock(&pd->lk);
  fresh_locked(pd, is_sock, is_stream);
  weft__spin_unlock(&pd->lk);
}


/* ------------------------------------------------------------------ */
/* Registration (the back end: netpoll_epoll.c)                       */
/* ------------------------------------------------------------------ */

/* A hint read without pd->lk; the writers (under it) store atomically. */
bool weft__pd_registered(struct weft__pd *pd) {
  return __atomic_load_n(&pd->reg_epoch, __ATOMIC_RELAXED) ==
         weft__epoll_epoch();
}

/* Requires pd->lk.  0, or -errno; sets no_epoll for files epoll refuses. */
static int pd_register(struct weft__pd *pd, int fd) {
  weft__dassert(weft__spin_held(&pd->lk));
  uint32_t epoch = weft__epoll_epoch();
  if (pd->reg_epoch == epoch || pd->no_epoll)
    return 0;
  uint64_t key = (uint64_t)(uint32_t)fd | (uint64_t)pd->gen << 32;
  int r = weft__epoll_add(fd, key);
  if (r == -EPERM) {
    pd->no_epoll = true; /* a regular file: never blocks */
    return 0;
  }
  if (r < 0)
    return r;
  __atomic_store_n(&pd->reg_epoch, epoch, __ATOMIC_RELAXED);
  return 0;
}

/* ------------------------------------------------------------------ */
/* Waiting                                                            */
/* ------------------------------------------------------------------ */

static int kthread_wait(struct weft__pd *pd, int fd, int dir, uint32_t gen,
                        int64_t deadline) {
  weft__spin_lock(&pd->lk);
  if (pd->gen != gen) {
    weft__spin_unlock(&pd->lk);
    return -EBADF;
  }
  pd->kwaiters++;
  weft__spin_unlock(&pd->lk);
  struct pollfd p = {.fd = fd,
                     .events = dir == WEFT__PD_READ    ? POLLIN
                               : dir == WEFT__PD_WRITE ? POLLOUT
                                                       : POLLIN | POLLOUT};
  int r;
  for (;;) {
    int ms = -1;
    if (deadline != WEFT_FOREVER) {
      int64_t left = deadline - weft__now();
      if (left <= 0) {
        r = -ETIMEDOUT;
        break;
      }
      left = (left + 999999) / 1000000;
      ms = left > 1000000 ? 1000000 : (int)left;
    }
    int n = poll(&p, 1, ms);
    if (n > 0) {
      r = (p.revents & POLLNVAL) ? -EBADF : 0;
      break;
    }
    if (n < 0 && errno != EINTR) {
      r = -errno;
      break;
    }
  }
  weft__spin_lock(&pd->lk);
  pd->kwaiters--;
  if (pd->gen != gen)
    r = -EBADF;
  weft__spin_unlock(&pd->lk);
  return r;
}

int weft__pd_wait(struct weft__pd *pd, int fd, int dir, uint32_t gen,
                  int64_t deadline) {
  struct weft__g *g = weft__g_cur();
  if (!g)
    return kthread_wait(pd, fd, dir, gen, deadline);

  weft__spin_lock(&pd->lk);
  if (pd->gen != gen) {
    weft__spin_unlock(&pd->lk);
    return -EBADF;
  }
  int err = pd_register(pd, fd);
  if (err || pd->no_epoll) {
    weft__spin_unlock(&pd->lk);
    return err;
  }
  for (int d = 0; d < 2; d++) {
    if ((dir == d || dir == WEFT__PD_BOTH) && pd->ready[d]) {
      pd->ready[d] = false;
      weft__spin_unlock(&pd->lk);
      return 0;
    }
  }
  if (deadline != WEFT_FOREVER && deadline <= weft__now()) {
    weft__spin_unlock(&pd->lk);
    return -ETIMEDOUT;
  }
  struct weft__waiter w;
  weft__waiter_init(&w);
  w.reason = dir == WEFT__PD_READ    ? "io read"
             : dir == WEFT__PD_WRITE ? "io write"
                                     : "io";
  /* dir WEFT__PD_BOTH: queued on both directions, like a select. */
  struct weft__wq_entry e[2] = {{.w = &w, .sel = WEFT__PD_READ},
                                {.w = &w, .sel = WEFT__PD_WRITE}};
  if (weft__cancel_arm(&w) < 0) {
    weft__spin_unlock(&pd->lk);
    return -ECANCELED;
  }
  for (int d = 0; d < 2; d++)
    if (dir == d || dir == WEFT__PD_BOTH)
      weft__wq_push(&pd->q[d], &e[d]);
  atomic_fetch_add_explicit(&weft__netpoll_waiting, 1, memory_order_relaxed);
  weft__stat_inc(&weft__worker_get()->st.io_waits);
  int sel = weft__waiter_park(&w, weft__unlock_spin, &pd->lk, deadline);
  atomic_fetch_sub_explicit(&weft__netpoll_waiting, 1, memory_order_relaxed);
  weft__cancel_disarm(&w);
  if (e[0].linked || e[1].linked) {
    weft__spin_lock(&pd->lk);
    for (int d = 0; d < 2; d++)
      if (e[d].linked)
        weft__wq_remove(&pd->q[d], &e[d]);
    weft__spin_unlock(&pd->lk);
  }
  if (sel == WEFT__WAIT_TIMEOUT)
    return -ETIMEDOUT;
  if (sel == WEFT__WAIT_CANCEL)
    return -ECANCELED;
  return e[sel].result;
}

/* Requires pd->lk.  Wakes every waiter of direction dir with result res;
 * remembers the edge if nobody took it. */
static int pd_wake(struct weft__pd *pd, int dir, int res) {
  weft__dassert(weft__spin_held(&pd->lk));
  int n = 0;
  struct weft__wq_entry *e;
  while ((e = weft__wq_claim(&pd->q[dir]))) {
    e->result = res;
    weft__waiter_wake(e->w);
    n++;
  }
  if (!n && res == 0)
    pd->ready[dir] = true;
  return n;
}

void weft__pd_close(struct weft__pd *pd, int fd) {
  weft__spin_lock(&pd->lk);
  /* io.c reads gen without pd->lk, to notice a close */
  __atomic_store_n(&pd->gen, pd->gen + 1, __ATOMIC_RELAXED);
  pd->drained = false;
  __atomic_store_n(&pd->rhup, false, __ATOMIC_RELAXED);
  pd_wake(pd, WEFT__PD_READ, -EBADF);
  pd_wake(pd, WEFT__PD_WRITE, -EBADF);
  pd->ready[0] = pd->ready[1] = false;
  if (pd->kwaiters && pd->is_sock)
    shutdown(fd, SHUT_RDWR); /* poll(2) does not notice a close */
  if (pd->reg_epoch == weft__epoll_epoch())
    weft__epoll_del(fd);
  __atomic_store_n(&pd->reg_epoch, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&pd->adopted, false, __ATOMIC_RELAXED);
  pd->no_epoll = false;
  weft__spin_unlock(&pd->lk);
}

/* netpoll.h; a batch's deliveries go through it (netpoll_epoll.c). */
void weft__pd_prefetch(uint64_t key, bool waiter) {
  struct weft__pd *pd = weft__pd_of((int)(uint32_t)key, false);
  if (!pd)
    return;
  if (!waiter) {
    __builtin_prefetch(pd, 1);
    __builtin_prefetch((char *)(pd + 1) - 1, 1);
    return;
  }
  /* Read without pd->lk: only an address to prefetch, which never faults,
   * whatever became of the entry meanwhile.  Not under TSan: the head is
   * written under pd->lk with plain stores, so the read would be reported,
   * and a prefetch changes nothing TSan checks. */
#if !WEFT_TSAN
  struct weft__wq_entry *e =
      __atomic_load_n(&pd->q[WEFT__PD_READ].head, __ATOMIC_RELAXED);
  if (e)
    __builtin_prefetch(e, 1);
#endif
}

/* One event of the back end: fd's descriptor, if it is still the
 * generation the event was registered for, turns readable (rd), writable
 * (wr) or hung up (hup).  Returns the threads woken (netpoll_epoll.c calls
 * it between weft__batch_begin and weft__batch_end). */
int weft__pd_event(uint64_t key, bool rd, bool wr, bool hup) {
  struct weft__pd *pd = weft__pd_of((int)(uint32_t)key, false);
  int woken = 0;
  if (!pd)
    return 0;
  weft__spin_lock(&pd->lk);
  if (pd->gen == (uint32_t)(key >> 32)) {
    if (rd || hup) {
      /* End of file and errors stay readable without another edge: a
       * short read no longer means the next one would block. */
      if (hup)
        __atomic_store_n(&pd->rhup, true, __ATOMIC_RELAXED); /* io.c */
      atomic_fetch_add_explicit(&pd->redges, 1, memory_order_relaxed);
      woken += pd_wake(pd, WEFT__PD_READ, 0);
    }
    if (wr)
      woken += pd_wake(pd, WEFT__PD_WRITE, 0);
  }
  weft__spin_unlock(&pd->lk);
  return woken;
}

void weft__netpoll_fork_child(void) {
  weft__epoll_fork_child();
  st_relaxed(&weft__netpoll_waiting, 0);
  /* The waiters queued here are the parent's green threads, and the locks
   * may have been held by its other threads at the fork. */
  for (int b = 0; b < NBLOCKS; b++) {
    struct weft__pd *blk = ld_relaxed(&blocks[b]);
    if (!blk)
      continue;
    for (int i = 0; i < BLOCK_SIZE; i++) {
      struct weft__pd *pd = &blk[i];
      atomic_store(&pd->lk.v, 0);
      pd->q[0].head = pd->q[0].tail = NULL;
      pd->q[1].head = pd->q[1].tail = NULL;
      pd->kwaiters = 0;
      pd->ready[0] = pd->ready[1] = false;
    }
  }
}
