/*
 * io.c - the I/O calls of weft.h: try the system call on the non-blocking
 * fd; when it would block, wait on the fd's poll descriptor (netpoll.c)
 * and try again.  The same loop serves green threads (which park) and
 * kernel threads (which block in poll(2)).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gthread.h"
#include "netpoll.h"
#include "sched.h"
#include "timer.h"

/* The generation of pd, read without pd->lk: a close bumps it. */
static inline uint32_t pd_gen(struct weft__pd *pd) {
  return __atomic_load_n(&pd->gen, __ATOMIC_RELAXED);
}

/* The descriptor of fd, adopted; NULL with *err set otherwise. */
static inline struct weft__pd *pd_get(int fd, int *err) {
  struct weft__pd *pd = weft__pd_of(fd, true);
  if (WEFT_UNLIKELY(!pd)) {
    *err = weft__pd_of_error(fd);
    return NULL;
  }
  /* A hint read without pd->lk (weft__pd_adopt looks again under it). */
  if (WEFT_UNLIKELY(!__atomic_load_n(&pd->adopted, __ATOMIC_ACQUIRE))) {
    int r = weft__pd_adopt(pd, fd, true);
    if (r) {
      *err = r;
      return NULL;
    }
  }
  return pd;
}

static inline bool canceled(void) {
  struct weft__g *g = weft__g_cur();
  return g && WEFT_UNLIKELY(__atomic_load_n(&g->canceled, __ATOMIC_RELAXED));
}

/*
 * The cooperative budget (weft.h): a green thread yields once every
 * IO_BUDGET calls in a row that completed without waiting on the
 * netpoller, as Tokio's tasks do after their budget of operations.  A
 * thread whose fds are always ready would otherwise keep its worker from
 * every other thread queued on it.  A thread that waits starts over.
 */
#define IO_BUDGET 64

static inline void io_completed(void) {
  struct weft__g *g = weft__g_cur();
  if (g && WEFT_UNLIKELY(++g->io_streak >= IO_BUDGET)) {
    g->io_streak = 0;
    weft_yield();
  }
}

/*
 * The same budget inside one large write: a write of 160 MB to a client
 * that reads as fast as it is sent never waits, and would hold the worker
 * for the whole copy (hundreds of milliseconds).  So a write goes to the
 * kernel in slices of at most IO_SLICE bytes, and a green thread yields
 * between slices.  A slice costs one system call per 256 KiB (about 30 us
 * of copying), so the calls add nothing measurable; a yield with nothing
 * else to run returns at once, and every 16th switch also polls the
 * netpoller, so other connections' data is noticed within a few MiB.
 */
#define IO_SLICE ((size_t)256 << 10)

/* weft__pd_wait, which also starts the caller's budget over. */
static inline int pd_wait(struct weft__pd *pd, int fd, int dir, uint32_t gen,
                          int64_t deadline) {
  struct weft__g *g = weft__g_cur();
  if (g)
    g->io_streak = 0;
  return weft__pd_wait(pd, fd, dir, gen, deadline);
}

/* After a call failed with EAGAIN: waits, and maps the outcome to what
 * the public call returns (0: try again). */
static int wait_again(struct weft__pd *pd, int fd, int dir, uint32_t gen,
                      int64_t deadline) {
  if (deadline == WEFT_NOWAIT)
    return -EAGAIN;
  return pd_wait(pd, fd, dir, gen, deadline);
}

int weft_fd_adopt(int fd) {
  int err = 0;
  struct weft__pd *pd = weft__pd_of(fd, true);
  if (!pd)
    return weft__pd_of_error(fd);
  err = weft__pd_adopt(pd, fd, false);
  return err;
}

int weft_fd_forget(int fd) {
  struct weft__pd *pd = weft__pd_of(fd, false);
  if (fd < 0)
    return -EBADF;
  if (pd)
    weft__pd_close(pd, fd);
  return 0;
}

int weft_close(int fd) {
  if (fd < 0)
    return -EBADF;
  struct weft__pd *pd = weft__pd_of(fd, false);
  if (pd)
    weft__pd_close(pd, fd);
  /* Linux releases the fd even when close fails with EINTR: never retry. */
  if (close(fd) < 0 && errno != EINTR)
    return -errno;
  return 0;
}

static inline bool short_read(ssize_t n, size_t len) {
  return n > 0 && (size_t)n < len;
}

/*
 * The read loop shared by every kind of read.
 *
 * A green thread's read of a stream socket that came back short drained
 * the socket: until the netpoller delivers a new read edge, another read
 * would only say EAGAIN.  So the next read parks at once, saving a system
 * call per request on a keep-alive connection.  This is safe because data
 * that arrives after the short read raises an edge in epoll, which is
 * delivered (and counted in redges) after the arrival: either the count
 * has moved and the read goes ahead, or the edge is still queued in epoll
 * and wakes the parked thread.  End of file and errors are the exception:
 * they stay readable without a new edge, so once an edge reported one
 * (rhup) reads always go to the kernel.
 */
#define READ_LOOP(call, dir, len, may_skip)                                    \
  do {                                                                         \
    int err_;                                                                  \
    struct weft__pd *pd = pd_get(fd, &err_);                                   \
    if (!pd)                                                                   \
      return err_;                                                             \
    bool skip_ = (may_skip) && pd->is_stream && weft__g_cur() &&               \
                 weft__pd_registered(pd);                                      \
    for (;;) {                                                                 \
      if (canceled())                                                          \
        return -ECANCELED;                                                     \
      uint32_t gen = pd_gen(pd);                                               \
      uint32_t e0_ = ld_relaxed(&pd->redges);                                  \
      if (skip_ && pd->drained && pd->drained_at == e0_ &&                     \
          !__atomic_load_n(&pd->rhup, __ATOMIC_RELAXED) &&                     \
          deadline != WEFT_NOWAIT) {                                           \
        pd->drained = false;                                                   \
        int r_ = pd_wait(pd, fd, (dir), gen, deadline);                        \
        if (r_)                                                                \
          return r_;                                                           \
        continue;                                                              \
      }                                                                        \
      ssize_t n_ = (call);                                                     \
      if (n_ >= 0) {                                                           \
        if (skip_) {                                                           \
          pd->drained = short_read(n_, (len));                                 \
          pd->drained_at = e0_;                                                \
        }                                                                      \
        io_completed();                                                        \
        return n_;                                                             \
      }                                                                        \
      if (errno == EINTR)                                                      \
        continue;                                                              \
      if (errno != EAGAIN)                                                     \
        return -errno;                                                         \
      int r_ = wait_again(pd, fd, (dir), gen, deadline);                       \
      if (r_)                                                                  \
        return r_;                                                             \
    }                                                                          \
  } while (0)

ssize_t weft_read(int fd, void *buf, size_t n, int64_t deadline) {
  if (WEFT_UNLIKELY(!buf && n))
    return -EINVAL;
  READ_LOOP(read(fd, buf, n), WEFT__PD_READ, n, true);
}

ssize_t weft_recv(int fd, void *buf, size_t n, int flags, int64_t deadline) {
  if (WEFT_UNLIKELY(!buf && n))
    return -EINVAL;
  READ_LOOP(recv(fd, buf, n, flags), WEFT__PD_READ, n, flags == 0);
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
                   int64_t deadline) {
  if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt && !iov))
    return -EINVAL;
  READ_LOOP(readv(fd, iov, iovcnt), WEFT__PD_READ, 0, false);
}

/* Writes all of iov[0..cnt) (which it consumes); see weft.h for the
 * partial-write convention. */
static ssize_t write_all(int fd, struct iovec *iov, int cnt, int flags,
                         int64_t deadline) {
  int err;
  struct weft__pd *pd = pd_get(fd, &err);
  if (!pd)
    return err;
  ssize_t done = 0;
  while (cnt > 0 && iov->iov_len == 0) {
    iov++;
    cnt--;
  }
  while (cnt > 0) {
    if (canceled())
      return done ? done : -ECANCELED;
    uint32_t gen = pd_gen(pd);
    /* This call's slice: the vectors up to IO_SLICE bytes, the last one
     * shortened for the call (the vector is ours to change). */
    int k = 0;
    size_t len = 0, cut = 0;
    while (k < cnt && k < IOV_MAX && len < IO_SLICE)
      len += iov[k++].iov_len;
    if (len > IO_SLICE) {
      cut = len - IO_SLICE;
      iov[k - 1].iov_len -= cut;
    }
    ssize_t n;
    if (pd->is_sock) {
      struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
      n = sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
    } else if (k == 1) {
      n = write(fd, iov->iov_base, iov->iov_len);
    } else {
      n = writev(fd, iov, k);
    }
    iov[k - 1].iov_len += cut;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      int r = errno == EAGAIN ? wait_again(pd, fd, WEFT__PD_WRITE, gen, deadline)
                              : -errno;
      if (r)
        return done ? done : r;
      continue;
    }
    done += n;
    while (cnt > 0 && (size_t)n >= iov->iov_len) {
      n -= (ssize_t)iov->iov_len;
      iov++;
      cnt--;
    }
    if (cnt > 0) {
      iov->iov_base = (char *)iov->iov_base + n;
      iov->iov_len -= (size_t)n;
      if (weft__g_cur())
        weft_yield(); /* between slices: see IO_SLICE */
    }
  }
  io_completed();
  return done;
}

ssize_t weft_write(int fd, const void *buf, size_t n, int64_t deadline) {
  if (n > SSIZE_MAX || WEFT_UNLIKELY(!buf && n))
    return -EINVAL;
  struct iovec v = {.iov_base = (void *)buf, .iov_len = n};
  return write_all(fd, &v, 1, 0, deadline);
}

ssize_t weft_send(int fd, const void *buf, size_t n, int flags,
                  int64_t deadline) {
  if (n > SSIZE_MAX || WEFT_UNLIKELY(!buf && n))
    return -EINVAL;
  struct iovec v = {.iov_base = (void *)buf, .iov_len = n};
  int err;
  struct weft__pd *pd = pd_get(fd, &err);
  if (!pd)
    return err;
  if (!pd->is_sock)
    return -ENOTSOCK;
  return write_all(fd, &v, 1, flags, deadline);
}

#define IOV_STACK 16

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
                    int64_t deadline) {
  if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt && !iov))
    return -EINVAL;
  /* write_all consumes the vector: work on a copy. */
  struct iovec small[IOV_STACK];
  struct iovec *v = small;
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > SSIZE_MAX - total)
      return -EINVAL;
    total += iov[i].iov_len;
  }
  if (iovcnt > IOV_STACK && !(v = malloc((size_t)iovcnt * sizeof(*v))))
    return -ENOMEM;
  if (iovcnt) /* iov may be NULL then, which memcpy may not be given */
    memcpy(v, iov, (size_t)iovcnt * sizeof(*v));
  ssize_t r = write_all(fd, v, iovcnt, 0, deadline);
  if (v != small)
    free(v);
  return r;
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                int64_t deadline) {
  if ((flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) || (addr && !addrlen))
    return -EINVAL;
  int err;
  struct weft__pd *pd = pd_get(fd, &err);
  if (!pd)
    return err;
  for (;;) {
    if (canceled())
      return -ECANCELED;
    uint32_t gen = pd_gen(pd);
    int c = accept4(fd, addr, addrlen, flags | SOCK_NONBLOCK);
    if (c >= 0) {
      struct weft__pd *cp = weft__pd_of(c, true);
      /* A fresh fd: whatever the record says about an earlier fd of the
       * same number is stale.  It is a socket of the listener's type. */
      if (cp)
        weft__pd_fresh(cp, true, pd->is_stream);
      io_completed();
      return c;
    }
    switch (errno) {
    case EINTR:
    case ECONNABORTED: /* the peer gave up before we got to it */
      continue;
    case EAGAIN:
      break;
    default:
      return -errno;
    }
    int r = wait_again(pd, fd, WEFT__PD_READ, gen, deadline);
    if (r)
      return r;
  }
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                 int64_t deadline) {
  if (WEFT_UNLIKELY(!addr))
    return -EINVAL;
  int err;
  struct weft__pd *pd = pd_get(fd, &err);
  if (!pd)
    return err;
  if (canceled())
    return -ECANCELED;
  uint32_t gen = pd_gen(pd);
  if (connect(fd, addr, addrlen) == 0)
    return 0;
  if (errno != EINPROGRESS && errno != EINTR)
    return -errno;
  for (;;) {
    int r = deadline == WEFT_NOWAIT
                ? -EINPROGRESS
                : pd_wait(pd, fd, WEFT__PD_WRITE, gen, deadline);
    if (r)
      return r;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
      return -errno;
    if (soerr)
      return -soerr;
    /* Writable with no error: connected, unless the wake was for an edge
     * that came before the connection completed. */
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0)
      return 0;
    if (errno != ENOTCONN)
      return -errno;
  }
}

int weft_wait_fd(int fd, int events, int64_t deadline) {
  if (!(events & (POLLIN | POLLOUT)) || (events & ~(POLLIN | POLLOUT)))
    return -EINVAL;
  int err;
  struct weft__pd *pd = pd_get(fd, &err);
  if (!pd)
    return err;
  for (;;) {
    if (canceled())
      return -ECANCELED;
    uint32_t gen = pd_gen(pd);
    struct pollfd p = {.fd = fd, .events = (short)events};
    int n = poll(&p, 1, 0);
    if (n < 0 && errno != EINTR)
      return -errno;
    if (n > 0) {
      if (p.revents & POLLNVAL)
        return -EBADF;
      io_completed();
      return p.revents & (POLLIN | POLLOUT | POLLHUP | POLLERR);
    }
    if (deadline == WEFT_NOWAIT)
      return -EAGAIN;
    int dir = events == POLLIN    ? WEFT__PD_READ
              : events == POLLOUT ? WEFT__PD_WRITE
                                  : WEFT__PD_BOTH;
    int r = pd_wait(pd, fd, dir, gen, deadline);
    if (r)
      return r;
  }
}
