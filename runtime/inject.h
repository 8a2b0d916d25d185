/*
 * inject.h - fault injection: the system calls and allocations weft can
 * fail on go through these wrappers, so a test can make the Nth call at a
 * site fail and check that the public call that hit it returns a clean
 * error and leaks nothing.  Set with weft_fail_inject() or WEFT_FAIL (see
 * weft.h).  Off, a wrapper costs one predictable branch.
 */
#ifndef WEFT_INJECT_H
#define WEFT_INJECT_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

enum weft__site {
  WEFT__F_MMAP,
  WEFT__F_PTHREAD,
  WEFT__F_FORK,
  WEFT__F_EPOLL_CTL,
  WEFT__F_ALLOC,
  WEFT__F_POLL_STALL, /* not a failure: a stop where a preemption hurts */
  WEFT__F_PCHAN_STALL, /* the same, in a process channel's sleep */
  WEFT__F_NSITES
};

extern _Atomic bool weft__inject_armed;
bool weft__inject_hit(enum weft__site s);

static inline bool weft__inject(enum weft__site s) {
  return WEFT_UNLIKELY(ld_relaxed(&weft__inject_armed)) && weft__inject_hit(s);
}

static inline void *weft__mmap(void *a, size_t len, int prot, int flags,
                               int fd, off_t off) {
  if (weft__inject(WEFT__F_MMAP)) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return mmap(a, len, prot, flags, fd, off);
}

static inline int weft__pthread_create(pthread_t *t, const pthread_attr_t *a,
                                       void *(*fn)(void *), void *arg) {
  if (weft__inject(WEFT__F_PTHREAD))
    return EAGAIN;
  return pthread_create(t, a, fn, arg);
}

static inline pid_t weft__fork(void) {
  if (weft__inject(WEFT__F_FORK)) {
    errno = EAGAIN;
    return -1;
  }
  return fork();
}

static inline int weft__epoll_ctl(int ep, int op, int fd,
                                  struct epoll_event *e) {
  if (weft__inject(WEFT__F_EPOLL_CTL)) {
    errno = ENOMEM;
    return -1;
  }
  return epoll_ctl(ep, op, fd, e);
}

static inline void *weft__malloc(size_t n) {
  return weft__inject(WEFT__F_ALLOC) ? NULL : malloc(n);
}

static inline void *weft__aligned_alloc(size_t align, size_t n) {
  return weft__inject(WEFT__F_ALLOC) ? NULL : aligned_alloc(align, n);
}

static inline void *weft__calloc(size_t n, size_t size) {
  return weft__inject(WEFT__F_ALLOC) ? NULL : calloc(n, size);
}

#endif /* WEFT_INJECT_H */
