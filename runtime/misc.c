/*
 * misc.c - leaf helpers: the spinlock's slow path, futexes, errno access,
 * the clock, error strings, and async-signal-safe formatting.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "weft.h"

/*
 * Contended: back off exponentially between looks at the lock.  A waiter
 * that reads the lock's line while the holder works pulls the line away
 * from it, and the holder's next store (the data under the lock, then the
 * unlock) must fetch it back; under a steady stream of operations from two
 * CPUs that doubled the cost of each critical section.  The longer waits
 * also let the holder's CPU take the lock again while the line is still
 * there, which batches a stream of operations per CPU.  The cap, 64
 * pauses, is about a microsecond and a half; smaller caps made the
 * 2-worker spawn.1m bench slower (bench/README.md).
 */
void weft__spin_lock_slow(weft__spin *l) {
  unsigned spins = 0, backoff = 1;

  for (;;) {
    while (ld_relaxed(&l->v)) {
      for (unsigned i = 0; i < backoff; i++)
        weft__cpu_relax();
      spins += backoff;
      if (backoff < 64)
        backoff <<= 1;
      if (spins >= 1024) {
        /* The holder may be a preempted kernel thread: let it run. */
        sched_yield();
        spins = 0;
      }
    }
    if (!atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
      return;
  }
}

int weft__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t deadline) {
  struct timespec ts, *tsp = NULL;

  if (deadline != WEFT_FOREVER) {
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline. */
    if (deadline < 0)
      deadline = 0;
    ts.tv_sec = deadline / 1000000000;
    ts.tv_nsec = deadline % 1000000000;
    tsp = &ts;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET_PRIVATE, val, tsp, NULL,
                   FUTEX_BITSET_MATCH_ANY);
  return r == 0 ? 0 : -errno;
}

void weft__futex_wake(_Atomic uint32_t *addr, int n) {
  syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int weft__errno_get(void) { return errno; }

void weft__thread_name(const char *name) {
  int saved = errno;
  prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0);
  errno = saved;
}

/* Not through the errno macro, which weft.h points here: glibc's and musl's
 * own accessor. */
int *weft_errno_location(void) { return __errno_location(); }
void weft__errno_set(int e) { errno = e; }

int64_t weft__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_now(void) { return weft__now(); }

int64_t weft_deadline(int64_t ns) {
  int64_t now = weft__now();
  if (ns <= 0)
    return now + ns < 1 ? 1 : now + ns;
  if (ns >= WEFT_FOREVER - now)
    return WEFT_FOREVER;
  return now + ns;
}

/* Each message names every case its code is used for in weft.h. */
const char *weft_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
  case -EINVAL:
    return "invalid argument: a NULL pointer, a bad size, flag or "
           "deadline, or a handle that is not (or no longer) valid";
  case -EPIPE:
    return "closed: the channel was closed, or the peer closed the "
           "connection";
  case -ETIMEDOUT:
    return "deadline passed";
  case -EAGAIN:
    return "would block (WEFT_NOWAIT), or a resource is temporarily "
           "exhausted";
  case -EDEADLK:
    return "would deadlock: the caller already holds it, or waits for "
           "itself";
  case -EALREADY:
    return "already done: the runtime is running, or the shared heap is "
           "mapped";
  case -ESRCH:
    return "not there: the green thread has finished, or the runtime is "
           "not running or is stopping";
  case -EPERM:
    return "not permitted: the caller does not hold the lock, is the wrong "
           "kind of thread or process, or the runtime is not running or "
           "there is no shared heap";
  case -EBUSY:
    return "busy: locked, waited on, or in use";
  case -EOVERFLOW:
    return "the semaphore is at its maximum value";
  case -ECANCELED:
    return "the green thread was canceled";
  case -ECONNRESET:
    return "the peer went away: the process at the other end died, or the "
           "connection was reset";
  case -ESTALE:
    return "the object's partition was reclaimed since the reference was "
           "taken";
  case -ECHILD:
    return "a child process failed: it died, or ended without its result";
  default:
    if (err < 0)
      return strerror(-err);
    return "unknown weft error";
  }
}

void weft__write_err(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return;
    }
    s += w;
    n -= (size_t)w;
  }
}

char *weft__utoa(uint64_t v, char *buf) {
  char tmp[21];
  int i = 0;
  do {
    tmp[i++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (int j = 0; j < i; j++)
    buf[j] = tmp[i - 1 - j];
  buf[i] = 0;
  return buf;
}

char *weft__xtoa(uint64_t v, char *buf) {
  static const char hex[] = "0123456789abcdef";
  char tmp[17];
  int i = 0;
  do {
    tmp[i++] = hex[v & 15];
    v >>= 4;
  } while (v);
  buf[0] = '0';
  buf[1] = 'x';
  for (int j = 0; j < i; j++)
    buf[2 + j] = tmp[i - 1 - j];
  buf[2 + i] = 0;
  return buf;
}

void weft__unlock_spin(void *spin) { weft__spin_unlock(spin); }
