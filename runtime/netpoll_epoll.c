/*
 * netpoll_epoll.c - the netpoller's back end: the epoll instance, its
 * registrations, and the polls, blocking or not (netpoll.c keeps the
 * descriptors and the waits, as Go's netpoll.go over netpoll_epoll.go).
 *
 * Registration.  An fd is registered once, edge-triggered, for input and
 * output both (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET), the first time a
 * green thread has to wait on it.  The event carries the fd and the
 * generation of its poll descriptor (the key netpoll.c gives), so an event
 * for an fd that has been closed and reused since is recognised and
 * dropped there (weft__pd_event).
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
 * fork.  The child shares the parent's epoll instance (it is one open file)
 * and would steal its events, or unregister the parent's fds: the fork
 * handler (rt.h, through weft__netpoll_fork_child) closes the child's copy
 * and bumps the epoch, so that every descriptor counts as unregistered.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "inject.h"
#include "netpoll.h"
#include "rt.h"
#include "sched.h"

#define NEVENTS 128
/* How many events ahead of its delivery an event's descriptor, then its
 * first waiter, is prefetched. */
#define PREFETCH_PD 8
#define PREFETCH_W 4
#define POLL_GAP_NS 200000 /* busy workers poll at most this often */
#define BREAK_KEY UINT64_MAX

static struct {
  weft__spin lk; /* creation of the epoll instance */
  _Atomic int epfd;
  int evfd;
  _Atomic uint32_t epoch;
  _Atomic(struct weft__worker *) poller;
  _Atomic int64_t last_poll;
  _Atomic int breaking; /* an eventfd write is pending */
} np = {.epfd = -1, .evfd = -1, .epoch = 1};

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

uint32_t weft__epoll_epoch(void) { return ld_relaxed(&np.epoch); }

int weft__epoll_add(int fd, uint64_t key) {
  int ep = epoll_get();
  if (ep < 0)
    return ep;
  struct epoll_event e = {
      .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
      .data.u64 = key,
  };
  if (weft__epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
    if (errno != EEXIST)
      return -errno; /* EPERM: a regular file, which epoll refuses */
    (void)epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
  }
  return 0;
}

void weft__epoll_del(int fd) {
  int ep = ld_acquire(&np.epfd); /* pairs with epoll_get */
  if (ep >= 0)
    (void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
}

/* ------------------------------------------------------------------ */
/* Polling                                                            */
/* ------------------------------------------------------------------ */

static struct epoll_event *events_of(struct weft__worker *w) {
  if (!w->np_ev)
    w->np_ev = malloc(NEVENTS * sizeof(struct epoll_event));
  return w->np_ev;
}

/* Makes the green threads waiting on the nev events in w's buffer
 * runnable, as one batch; returns how many. */
static int deliver(struct weft__worker *w, int nev) {
  struct epoll_event *ev = w->np_ev;
  int woken = 0;
  weft__stat_inc(&w->st.polls);
  /* Threads woken together go to the tail of the queue, in order. */
  weft__batch_begin(w);
  /* (BREAK_KEY names fd -1, which has no descriptor: nothing to
   * prefetch.) */
  for (int i = 0; i < nev && i < PREFETCH_PD; i++)
    weft__pd_prefetch(ev[i].data.u64, false);
  for (int i = 0; i < nev; i++) {
    if (i + PREFETCH_PD < nev)
      weft__pd_prefetch(ev[i + PREFETCH_PD].data.u64, false);
    if (i + PREFETCH_W < nev)
      weft__pd_prefetch(ev[i + PREFETCH_W].data.u64, true);
    uint64_t key = ev[i].data.u64;
    if (key == BREAK_KEY) {
      uint64_t v;
      ssize_t r = read(np.evfd, &v, sizeof v);
      (void)r;
      st_release(&np.breaking, 0);
      continue;
    }
    uint32_t e = ev[i].events;
    woken +=
        weft__pd_event(key, e & EPOLLIN, e & (EPOLLOUT | EPOLLHUP | EPOLLERR),
                       e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR));
  }
  weft__batch_end(w);
  return woken;
}

/* An idle worker's wait: its run queue is empty, room for NEVENTS. */
static int epoll_until(int ep, struct epoll_event *ev, int64_t deadline) {
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

/*
 * How many events a poll without blocking takes: no more than w's run
 * queue has room for (at most NEVENTS), and none when that room is below
 * MIN_ROOM (poll_now).  The threads a poll wakes go to the tail
 * of the queue; what the queue has no room for would go to the global
 * queue, which a busy worker serves one thread in SLOW_EVERY *
 * GLOBAL_EVERY picks (sched.c), so under sustained load, with more ready
 * connections than the queue holds, they waited there longest of all
 * (measured, servers/http on one worker under wrk -c1000: p99 197 ms,
 * p50 1.7 ms).  Left in epoll, the ready fds wait in the kernel's ready
 * list, in order, for the next poll.
 */
#define MIN_ROOM 16

static int poll_room(struct weft__worker *w) {
  int room = WEFT__RUNQ_SIZE - (int)weft__runq_len(&w->q);
  return room > NEVENTS ? NEVENTS : room;
}

/* A poll without blocking, from a busy worker (due: at most every
 * POLL_GAP_NS across the workers) or one out of work (at once). */
static int poll_now(struct weft__worker *w, int ep, bool due) {
  if (!ld_relaxed(&weft__netpoll_waiting) || ld_relaxed(&np.poller))
    return -1;
  int64_t now = weft__now();
  int64_t last = ld_relaxed(&np.last_poll);
  if (due && (now - last < POLL_GAP_NS ||
              !atomic_compare_exchange_strong(&np.last_poll, &last, now)))
    return -1;
  if (!due)
    st_relaxed(&np.last_poll, now);
  struct epoll_event *ev = events_of(w);
  if (!ev)
    return -1;
  int room = poll_room(w);
  if (room < MIN_ROOM)
    return 0; /* the queue has enough to run before more: see poll_room */
  int n = epoll_wait(ep, ev, room, 0);
  if (n <= 0)
    return 0;
  int woken = deliver(w, n);
  /* For race tests: a worker about to go idle that the kernel stops right
   * after it made threads runnable, while other workers take them. */
  if (!due && weft__inject(WEFT__F_POLL_STALL))
    usleep(1000);
  return woken;
}

/* An idle worker's poll: w becomes the one poller and blocks.  The events
 * stay in its buffer (w->np_nev) until its next call, which delivers them
 * once it has left the idle list (sched.c). */
static int poll_block(struct weft__worker *w, int ep, int64_t until) {
  if (!ld_relaxed(&weft__netpoll_waiting))
    return -1;
  struct epoll_event *ev = events_of(w);
  if (!ev)
    return -1;
  struct weft__worker *none = NULL;
  if (!atomic_compare_exchange_strong(&np.poller, &none, w))
    return -1;
  int n = 0;
  /* seq_cst against the waker's store of parked = 0 then load of poller:
   * either it sees us as the poller and breaks the wait, or we see that
   * it already unparked us. */
  if (atomic_load(&w->parked)) {
    n = epoll_until(ep, ev, until);
    if (n < 0)
      n = 0;
  }
  st_relaxed(&np.last_poll, weft__now());
  atomic_store(&np.poller, NULL);
  w->np_nev = n;
  return n;
}

int weft__netpoll(struct weft__worker *w, int64_t until) {
  if (WEFT_UNLIKELY(w->np_nev)) { /* received by poll_block */
    int n = w->np_nev;
    w->np_nev = 0;
    return deliver(w, n);
  }
  int ep = ld_acquire(&np.epfd); /* pairs with epoll_get */
  if (ep < 0)
    return -1;
  if (until == WEFT__NP_DUE || until == WEFT_NOWAIT)
    return poll_now(w, ep, until == WEFT__NP_DUE);
  return poll_block(w, ep, until);
}

bool weft__netpoll_break(struct weft__worker *w) {
  if (atomic_load(&np.poller) != w) /* seq_cst: see unpark in sched.c */
    return false;
  if (atomic_exchange(&np.breaking, 1))
    return true; /* a wake is on its way already */
  uint64_t one = 1;
  ssize_t r = write(np.evfd, &one, sizeof one);
  (void)r;
  return true;
}

void weft__epoll_fork_child(void) {
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
  atomic_fetch_add(&np.epoch, 1);
}
