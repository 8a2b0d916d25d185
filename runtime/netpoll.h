/*
 * netpoll.h - the netpoller: epoll driven by the workers, and the poll
 * descriptor each fd used with weft's I/O calls gets.  See netpoll.c.
 */
#ifndef WEFT_NETPOLL_H
#define WEFT_NETPOLL_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"
#include "wait.h"

struct weft__worker;

enum { WEFT__PD_READ = 0, WEFT__PD_WRITE = 1, WEFT__PD_BOTH = 2 };

/* The poll descriptor of one fd number.  Lives in a table indexed by fd
 * and is never freed, so a stale pointer always reads a valid record. */
struct weft__pd {
  weft__spin lk;
  uint32_t gen;      /* bumped by weft_close: waits that began before fail */
  bool adopted;      /* O_NONBLOCK set, kind known */
  bool is_sock;      /* writes use send(MSG_NOSIGNAL) */
  bool is_stream;    /* SOCK_STREAM: a short read drains the socket */
  bool drained;      /* the last read was short, with no edge since ... */
  bool rhup; /* peer shut down or error: reads never block again (atomic) */
  uint32_t drained_at; /* ... redges was this before that read */
  _Atomic uint32_t redges; /* read edges delivered (under lk) */
  bool no_epoll;     /* epoll refuses it (regular file): always ready */
  uint32_t reg_epoch; /* registered with the epoll instance of this epoch */
  uint32_t kwaiters; /* kernel threads blocked in poll(2) on it */
  bool ready[2];     /* an edge arrived while nobody waited */
  struct weft__wq q[2];
};

/* The record of fd, allocating its table block if create; NULL for a
 * negative or absurd fd, or when out of memory. */
struct weft__pd *weft__pd_of(int fd, bool create);

/* Resets pd for a newly opened fd of the given kind: adopted, not yet
 * registered, no remembered edges. */
void weft__pd_fresh(struct weft__pd *pd, bool is_sock, bool is_stream);

/* Why weft__pd_of(fd, true) returned NULL, as -errno. */
int weft__pd_of_error(int fd);

/* Makes fd usable by the I/O calls (non-blocking, kind known).  once: the
 * first use of fd by an I/O call, which leaves a descriptor that another
 * thread adopted meanwhile as it is; otherwise (weft_fd_adopt) it is reset
 * whatever it held.  Returns 0, -EBADF, or another -errno. */
int weft__pd_adopt(struct weft__pd *pd, int fd, bool once);

/* Waits until fd may be ready in direction dir, from the calling green
 * thread or kernel thread.  gen is pd->gen read before the attempt that
 * returned EAGAIN.  Returns 0 (retry the call), -ETIMEDOUT, -ECANCELED or
 * -EBADF (fd closed by weft_close meanwhile). */
int weft__pd_wait(struct weft__pd *pd, int fd, int dir, uint32_t gen,
                  int64_t deadline);

/* weft_close's half: wakes every waiter with -EBADF, unregisters. */
void weft__pd_close(struct weft__pd *pd, int fd);

/* True when pd is registered with the current epoll instance. */
bool weft__pd_registered(struct weft__pd *pd);

/* Green threads parked on the netpoller (a hint for the workers). */
extern _Atomic int weft__netpoll_waiting;

/* One event from the back end (netpoll_epoll.c), for the descriptor of
 * key (fd | generation << 32): wakes its waiters; returns how many. */
int weft__pd_event(uint64_t key, bool rd, bool wr, bool hup);
/* Prefetches what weft__pd_event(key, ...) will touch first: the
 * descriptor, or (waiter) the entry of its first reader, which lives on a
 * parked thread's stack.  A batch of events goes through these a few
 * events ahead of its deliveries, so that their cache misses overlap. */
void weft__pd_prefetch(uint64_t key, bool waiter);

/* The back end (netpoll_epoll.c): the epoll instance.  Registrations are
 * of one epoch: a fork bumps it, and every descriptor is unregistered. */
uint32_t weft__epoll_epoch(void);
int weft__epoll_add(int fd, uint64_t key); /* 0, or -errno (-EPERM: a file) */
void weft__epoll_del(int fd);
void weft__epoll_fork_child(void);

/*
 * The scheduler's two calls (sched.c; the rest of this header serves the
 * I/O calls).
 *
 * weft__netpoll(w, until) polls for ready fds and makes the green threads
 * waiting on them runnable on w, as one batch (weft__batch_begin/end).
 * Returns how many it woke, or -1 when it did not poll.  until is:
 *  - WEFT__NP_DUE: a busy worker's periodic poll, at most every so often
 *    across the workers; the scheduler makes it after a switch, never in
 *    the middle of one (a parking thread may hold a lock a wake takes);
 *  - WEFT_NOWAIT: a poll at once, without blocking, from a worker out of
 *    work;
 *  - a deadline or WEFT_FOREVER, from an idle worker on the idle list: w
 *    becomes the one poller and blocks in epoll_wait until an fd is ready,
 *    the deadline passes, or weft__netpoll_break(w).  Returns -1 if
 *    another worker is the poller or nothing waits on the netpoller (park
 *    as usual); otherwise the number of events received, which are not
 *    delivered yet: the next call delivers them (and polls no more), made
 *    once w has left the idle list.
 *
 * weft__netpoll_break(w): if w is the worker blocked in epoll_wait, wakes
 * it and returns true; otherwise false (the caller wakes w its own way).
 */
#define WEFT__NP_DUE INT64_MIN
int weft__netpoll(struct weft__worker *w, int64_t until);
bool weft__netpoll_break(struct weft__worker *w);

#endif /* WEFT_NETPOLL_H */
