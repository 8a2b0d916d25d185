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

/* The back end (netpoll_epoll.c): the epoll instance.  Registrations are
 * of one epoch: a fork bumps it, and every descriptor is unregistered. */
uint32_t weft__epoll_epoch(void);
int weft__epoll_add(int fd, uint64_t key); /* 0, or -errno (-EPERM: a file) */
void weft__epoll_del(int fd);
void weft__epoll_fork_child(void);

/* Non-blocking poll from a busy worker, at most every so often: before it
 * steals, and from the scheduler's slow path.  Returns the number of
 * green threads made runnable.  defer: the caller may hold a lock that a
 * wake takes (the slow path runs in the middle of a park): keep the
 * events in w->np_nev for weft__post_run to deliver after the switch. */
int weft__netpoll_poll_now(struct weft__worker *w, bool defer);
void weft__netpoll_deliver_deferred(struct weft__worker *w);

/*
 * An idle worker that becomes the poller blocks in epoll_wait until an fd
 * is ready, deadline passes (its next timer), or another thread wakes it
 * with weft__netpoll_break.  Returns -1 if it did not poll (another worker
 * is the poller, or nothing waits on the netpoller: park as usual), else
 * the number of events it received, which the caller hands to
 * weft__netpoll_deliver once it has left the idle list.
 */
int weft__netpoll_block(struct weft__worker *w, int64_t deadline);
/* Makes the green threads waiting on the events received runnable. */
int weft__netpoll_deliver(struct weft__worker *w, int nev);
/* True while w is the worker blocked in epoll_wait. */
bool weft__netpoll_is_poller(struct weft__worker *w);

/* Wakes the worker blocked in epoll_wait (if any). */
void weft__netpoll_break(void);

#endif /* WEFT_NETPOLL_H */
