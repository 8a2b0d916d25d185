/*
 * netpoll.c - the netpoller: one epoll instance per process, driven by the
 * workers themselves (there is no poller thread).
 *
 * Registration.  An fd is registered once, edge-triggered, for input and
 * output both (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET), the first time a
 * green thread has to wait on it.  The event carries the fd and the
 * generation of its poll descriptor, so an event for an fd that has been
 * closed and reused since is recognised and dropped.  Edge-triggered means
 * an event is reported once per change of readiness; a descriptor remembers
 * an edge that arrived while nobody waited (ready[dir]), and the next
 * waiter consumes it and retries its call at once.  Every waiter of a
 * direction is woken by an edge: they retry, and those that lose the race
 * for the data wait again.
 *
 * Who polls.  A worker that has nothing to run, while green threads wait on
 * the netpoller, becomes the one poller (a CAS on `poller`) and blocks in
 * epoll_wait instead of on its futex, with its next timer as the timeout.
 * The other idle workers sleep on their futexes.  A thread that wakes the
 * poller's worker (weft__ready -> wakep -> unpark) sees it is the poller and
 * writes to an eventfd that is part of the epoll set.  Busy workers poll
 * without blocking before they steal, and from the scheduler's slow path at
 * most every POLL_GAP_NS, so readiness is noticed even when no worker is
 * ever idle.  An idle runtime with nothing on the netpoller never touches
 * epoll at all.
 *
 * Kernel threads that are not workers never register: they wait in poll(2)
 * on the fd itself.  weft_close wakes them by shutting the socket down.
 *
 * fork.  The child shares the parent's epoll instance (it is one open file)
 * and would steal its events, or unregister the parent's fds: the fork
 * handler (rt.h) closes the child's copy, bumps the epoch so that every
 * descriptor counts as unregistered, and clears the waiters it copied.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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
#define NEVENTS 128
#define POLL_GAP_NS 200000 /* busy workers poll at most this often */
#define BREAK_KEY UINT64_MAX

static _Atomic(struct weft__pd *) blocks[NBLOCKS];

static struct {
  weft__spin lk; /* creation of the epoll instance */
  _Atomic int epfd;
  int evfd;
  _Atomic uint32_t epoch;
  _Atomic(struct weft__worker *) poller;
  _Atomic int64_t last_poll;
  _Atomic int breaking; /* an eventfd write is pending */
} np = {.epfd = -1, .evfd = -1, .epoch = 1};

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
/* The epoll instance                                                 */
/* ------------------------------------------------------------------ */

/* A hint read without pd->lk; the writers (under it) store atomically. */
bool weft__pd_registered(struct weft__pd *pd) {
  return __atomic_load_n(&pd->reg_epoch, __ATOMIC_RELAXED) ==
         ld_relaxed(&np.epoch);
}

static int epoll_get(void) {
  int ep = ld_acquire(&np.epfd);
  if (WEFT_LIKELY(ep >= 0))
    return ep;
  weft__spin_lock(&np.lk);
  ep = ld_relaxed(&np.epfd);
  if (ep < 0) {
    weft__fork_watch();
    ep = epoll_create1(EPOLL_CLOEXEC);
    int ev = ep >= 0 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = BREAK_KEY};
    if (ep < 0 || ev < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) < 0) {
      int err = -errno;
      if (ep >= 0)
        close(ep);
      if (ev >= 0)
        close(ev);
      weft__spin_unlock(&np.lk);
      return err;
    }
    np.evfd = ev;
    st_release(&np.epfd, ep);
  }
  weft__spin_unlock(&np.lk);
  return ep;
}

/* Requires pd->lk.  0, or -errno; sets no_epoll for files epoll refuses. */
static int pd_register(struct weft__pd *pd, int fd) {
  uint32_t epoch = ld_relaxed(&np.epoch);
  if (pd->reg_epoch == epoch || pd->no_epoll)
    return 0;
  int ep = epoll_get();
  if (ep < 0)
    return ep;
  struct epoll_event e = {
      .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
      .data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)pd->gen << 32,
  };
  if (weft__epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
    if (errno == EEXIST)
      (void)epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
    else if (errno == EPERM) {
      pd->no_epoll = true; /* a regular file: never blocks */
      return 0;
    } else
      return -errno;
  }
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
  if (pd->reg_epoch == ld_relaxed(&np.epoch)) {
    int ep = ld_acquire(&np.epfd); /* pairs with epoll_get */
    if (ep >= 0)
      (void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  }
  __atomic_store_n(&pd->reg_epoch, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&pd->adopted, false, __ATOMIC_RELAXED);
  pd->no_epoll = false;
  weft__spin_unlock(&pd->lk);
}

/* ------------------------------------------------------------------ */
/* Polling                                                            */
/* ------------------------------------------------------------------ */

static struct epoll_event *events_of(struct weft__worker *w) {
  if (!w->np_ev)
    w->np_ev = malloc(NEVENTS * sizeof(struct epoll_event));
  return w->np_ev;
}

int weft__netpoll_deliver(struct weft__worker *w, int nev) {
  struct epoll_event *ev = w->np_ev;
  int woken = 0;
  weft__stat_inc(&w->st.polls);
  /* Threads woken together go to the tail of the queue, in order. */
  weft__batch_begin(w);
  for (int i = 0; i < nev; i++) {
    uint64_t key = ev[i].data.u64;
    if (key == BREAK_KEY) {
      uint64_t v;
      ssize_t r = read(np.evfd, &v, sizeof v);
      (void)r;
      st_release(&np.breaking, 0);
      continue;
    }
    struct weft__pd *pd = weft__pd_of((int)(uint32_t)key, false);
    if (!pd)
      continue;
    uint32_t events = ev[i].events;
    weft__spin_lock(&pd->lk);
    if (pd->gen == (uint32_t)(key >> 32)) {
      if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        /* End of file and errors stay readable without another edge:
         * a short read no longer means the next one would block. */
        if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
          __atomic_store_n(&pd->rhup, true, __ATOMIC_RELAXED); /* io.c */
        atomic_fetch_add_explicit(&pd->redges, 1, memory_order_relaxed);
        woken += pd_wake(pd, WEFT__PD_READ, 0);
      }
      if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        woken += pd_wake(pd, WEFT__PD_WRITE, 0);
    }
    weft__spin_unlock(&pd->lk);
  }
  weft__batch_end(w);
  return woken;
}

static int epoll_until(int ep, struct epoll_event *ev, int64_t deadline) {
  if (deadline == WEFT_NOWAIT)
    return epoll_wait(ep, ev, NEVENTS, 0);
  if (deadline == WEFT_FOREVER)
    return epoll_wait(ep, ev, NEVENTS, -1);
  int64_t left = deadline - weft__now();
  if (left < 0)
    left = 0;
  struct timespec ts = {.tv_sec = left / 1000000000,
                        .tv_nsec = left % 1000000000};
  int n = epoll_pwait2(ep, ev, NEVENTS, &ts, NULL);
  if (n < 0 && errno == ENOSYS) {
    int64_t ms = (left + 999999) / 1000000;
    n = epoll_wait(ep, ev, NEVENTS, ms > 1000000 ? 1000000 : (int)ms);
  }
  return n;
}

int weft__netpoll_poll_now(struct weft__worker *w, bool defer) {
  int ep = ld_acquire(&np.epfd); /* pairs with epoll_get */
  if (ep < 0 || !ld_relaxed(&weft__netpoll_waiting) ||
      ld_relaxed(&np.poller) || w->np_nev)
    return 0;
  /* From the slow path, at most every POLL_GAP_NS across all workers; a
   * worker about to go idle polls at once. */
  int64_t now = weft__now();
  int64_t last = ld_relaxed(&np.last_poll);
  if (defer && (now - last < POLL_GAP_NS ||
                !atomic_compare_exchange_strong(&np.last_poll, &last, now)))
    return 0;
  if (!defer)
    st_relaxed(&np.last_poll, now);
  struct epoll_event *ev = events_of(w);
  if (!ev)
    return 0;
  int n = epoll_until(ep, ev, WEFT_NOWAIT);
  if (n <= 0)
    return 0;
  if (defer) {
    w->np_nev = n;
    return 0;
  }
  int woken = weft__netpoll_deliver(w, n);
  /* For race tests: a worker about to go idle that the kernel stops right
   * after it made threads runnable, while other workers take them. */
  if (weft__inject(WEFT__F_POLL_STALL))
    usleep(1000);
  return woken;
}

void weft__netpoll_deliver_deferred(struct weft__worker *w) {
  int n = w->np_nev;
  w->np_nev = 0;
  weft__netpoll_deliver(w, n);
}

bool weft__netpoll_is_poller(struct weft__worker *w) {
  return atomic_load(&np.poller) == w; /* seq_cst: see unpark in sched.c */
}

int weft__netpoll_block(struct weft__worker *w, int64_t deadline) {
  int ep = ld_acquire(&np.epfd); /* pairs with epoll_get */
  if (ep < 0 || !ld_relaxed(&weft__netpoll_waiting))
    return -1;
  struct epoll_event *ev = events_of(w);
  if (!ev)
    return -1;
  /* Events polled earlier and not yet delivered (the caller delivers
   * them before it parks, sched.c) would be overwritten by this poll. */
  weft__dassert(!w->np_nev);
  if (WEFT_UNLIKELY(w->np_nev)) {
    int n = w->np_nev;
    w->np_nev = 0;
    return n; /* received: the caller delivers them from the buffer */
  }
  struct weft__worker *none = NULL;
  if (!atomic_compare_exchange_strong(&np.poller, &none, w))
    return -1;
  int n = 0;
  /* seq_cst against the waker's store of parked = 0 then load of poller:
   * either it sees us as the poller and breaks the wait, or we see that
   * it already unparked us. */
  if (atomic_load(&w->parked)) {
    n = epoll_until(ep, ev, deadline);
    if (n < 0)
      n = 0;
  }
  st_relaxed(&np.last_poll, weft__now());
  atomic_store(&np.poller, NULL);
  return n;
}

void weft__netpoll_break(void) {
  if (atomic_exchange(&np.breaking, 1))
    return; /* a wake is on its way already */
  uint64_t one = 1;
  ssize_t r = write(np.evfd, &one, sizeof one);
  (void)r;
}

void weft__netpoll_fork_child(void) {
  int ep = ld_acquire(&np.epfd); /* pairs with epoll_get */
  if (ep >= 0) {
    close(ep);
    close(np.evfd);
  }
  st_relaxed(&np.epfd, -1);
  np.evfd = -1;
  atomic_store(&np.lk.v, 0);
  st_relaxed(&np.poller, NULL);
  st_relaxed(&np.breaking, 0);
  st_relaxed(&weft__netpoll_waiting, 0);
  atomic_fetch_add(&np.epoch, 1);
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
