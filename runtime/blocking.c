/*
 * blocking.c - the blocking-call pool: kernel threads that run calls which
 * would otherwise block a worker (file I/O, name lookups), while the green
 * thread that asked parks.
 *
 * A call is a job on the caller's stack, queued under the pool's spinlock.
 * Threads are started on demand, up to the configured maximum, and an idle
 * one waits on a futex for 10 s before it exits, so a burst of file I/O
 * does not leave dozens of threads behind.  The caller parks with the
 * spinlock released after its switch (the waiter protocol), and the pool
 * thread that ran the job claims its waiter and wakes it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "sched.h"
#include "wait.h"

#define IDLE_EXIT_NS (10 * 1000000000LL)
#define DEFAULT_MAX 64

struct job {
  struct job *next;
  weft_fn fn;
  void *arg;
  void *result;
  struct weft__waiter w;
};

static struct {
  weft__spin lk;
  struct job *head, *tail;
  int nthreads, nidle;
  _Atomic uint32_t seq; /* futex of idle threads */
} pool;

void weft__blocking_fork_child(void) {
  /* The pool's threads did not survive the fork. */
  atomic_store(&pool.lk.v, 0);
  pool.head = pool.tail = NULL;
  pool.nthreads = pool.nidle = 0;
}

static void *pool_main(void *arg) {
  (void)arg;
  weft__thread_name("weft-blocking");
  /* Signals are for the application's own threads. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);

  weft__spin_lock(&pool.lk);
  for (;;) {
    struct job *j = pool.head;
    if (j) {
      pool.head = j->next;
      if (!pool.head)
        pool.tail = NULL;
      weft__spin_unlock(&pool.lk);
      j->result = j->fn(j->arg);
      /* Only this thread claims it: the caller waits without deadline. */
      weft__waiter_claim(&j->w, 0);
      weft__waiter_wake(&j->w);
      weft__spin_lock(&pool.lk);
      continue;
    }
    uint32_t s = ld_relaxed(&pool.seq);
    pool.nidle++;
    weft__spin_unlock(&pool.lk);
    int r = weft__futex_wait(&pool.seq, s, weft__now() + IDLE_EXIT_NS);
    weft__spin_lock(&pool.lk);
    pool.nidle--;
    if (r == -ETIMEDOUT && !pool.head)
      break;
  }
  pool.nthreads--;
  weft__spin_unlock(&pool.lk);
  return NULL;
}

static int start_thread(void) {
  pthread_attr_t attr;
  pthread_t t;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int r = weft__pthread_create(&t, &attr, pool_main, NULL);
  pthread_attr_destroy(&attr);
  return -r;
}

int weft_blocking(weft_fn fn, void *arg, void **result) {
  if (!fn)
    return -EINVAL;
  if (!weft__g_cur()) {
    void *r = fn(arg); /* a kernel thread may block: run it here */
    if (result)
      *result = r;
    return 0;
  }
  if (!weft__rt_running())
    return -ESRCH;
  int max = weft__rt.blocking_max > 0 ? weft__rt.blocking_max : DEFAULT_MAX;

  struct job j = {.fn = fn, .arg = arg};
  weft__waiter_init(&j.w);
  j.w.reason = "blocking call";
  j.w.exclusive = true;

  weft__fork_watch();
  weft__spin_lock(&pool.lk);
  bool start = pool.nidle == 0 && pool.nthreads < max;
  if (start)
    pool.nthreads++; /* reserved before the slow pthread_create */
  weft__spin_unlock(&pool.lk);
  if (start) {
    int r = start_thread();
    if (r) {
      weft__spin_lock(&pool.lk);
      pool.nthreads--;
      bool none = pool.nthreads == 0;
      weft__spin_unlock(&pool.lk);
      if (none)
        return -EAGAIN; /* nobody would ever run the job */
    }
  }

  weft__spin_lock(&pool.lk);
  if (pool.tail)
    pool.tail->next = &j;
  else
    pool.head = &j;
  pool.tail = &j;
  if (pool.nidle) {
    atomic_fetch_add(&pool.seq, 1);
    weft__futex_wake(&pool.seq, 1);
  }
  weft__waiter_park(&j.w, weft__unlock_spin, &pool.lk, WEFT_FOREVER);
  if (result)
    *result = j.result;
  return 0;
}

/* ------------------------------------------------------------------ */
/* The common cases                                                   */
/* ------------------------------------------------------------------ */

struct file_call {
  int fd;
  void *buf;
  size_t n;
  off_t off;
  const char *path;
  int flags;
  mode_t mode;
  ssize_t ret;
};

static void *do_open(void *p) {
  struct file_call *c = p;
  int fd = open(c->path, c->flags, c->mode);
  c->ret = fd < 0 ? -errno : fd;
  return NULL;
}

static void *do_pread(void *p) {
  struct file_call *c = p;
  ssize_t r = pread(c->fd, c->buf, c->n, c->off);
  c->ret = r < 0 ? -errno : r;
  return NULL;
}

static void *do_pwrite(void *p) {
  struct file_call *c = p;
  ssize_t r = pwrite(c->fd, c->buf, c->n, c->off);
  c->ret = r < 0 ? -errno : r;
  return NULL;
}

static void *do_fsync(void *p) {
  struct file_call *c = p;
  c->ret = fsync(c->fd) < 0 ? -errno : 0;
  return NULL;
}

static ssize_t file_call(weft_fn fn, struct file_call *c) {
  int r = weft_blocking(fn, c, NULL);
  return r ? r : c->ret;
}

int weft_open(const char *path, int flags, mode_t mode) {
  if (!path)
    return -EINVAL;
  struct file_call c = {.path = path, .flags = flags, .mode = mode};
  return (int)file_call(do_open, &c);
}

ssize_t weft_pread(int fd, void *buf, size_t n, off_t off) {
  if (!buf && n)
    return -EINVAL;
  struct file_call c = {.fd = fd, .buf = buf, .n = n, .off = off};
  return file_call(do_pread, &c);
}

ssize_t weft_pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (!buf && n)
    return -EINVAL;
  struct file_call c = {.fd = fd, .buf = (void *)buf, .n = n, .off = off};
  return file_call(do_pwrite, &c);
}

int weft_fsync(int fd) {
  struct file_call c = {.fd = fd};
  return (int)file_call(do_fsync, &c);
}

struct gai_call {
  const char *node, *service;
  const struct addrinfo *hints;
  struct addrinfo **res;
  int ret;
};

static void *do_gai(void *p) {
  struct gai_call *c = p;
  c->ret = getaddrinfo(c->node, c->service, c->hints, c->res);
  return NULL;
}

int weft_getaddrinfo(const char *node, const char *service,
                     const struct addrinfo *hints, struct addrinfo **res) {
  if (!res) {
    errno = EINVAL; /* EAI_SYSTEM: the cause is in errno */
    return EAI_SYSTEM;
  }
  struct gai_call c = {node, service, hints, res, 0};
  int r = weft_blocking(do_gai, &c, NULL);
  if (r) {
    errno = -r;
    return r == -ENOMEM ? EAI_MEMORY : EAI_SYSTEM;
  }
  return c.ret;
}
