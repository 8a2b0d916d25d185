/*
 * io_helpers.h - sockets, pipes and thread runners shared by the I/O tests
 * (tests/test_io.c, tests/test_blocking.c).
 *
 * Everything here may be called from any thread: failures are recorded with
 * TCHECK (see helpers.h) and reported by the test's own thread, except the
 * functions marked "test thread only", which use Criterion's assertions.
 */
#ifndef TESTS_IO_HELPERS_H
#define TESTS_IO_HELPERS_H

#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Where a scenario runs                                                    */
/* ------------------------------------------------------------------------ */

/* A scenario is a weft_fn; it runs either on a green thread or on a plain
 * pthread (a kernel thread that is not a worker). */
enum io_where { IO_GREEN, IO_PTHREAD };

static H_UNUSED const char *io_where_name(enum io_where w) {
  return w == IO_GREEN ? "green thread" : "pthread";
}

/* Any thread: starts fn(arg) where asked.  io_finish() joins it. */
typedef struct io_thread {
  enum io_where where;
  weft_gthread g;
  pthread_t p;
  bool started;
} io_thread;

static H_UNUSED io_thread io_start(enum io_where where, weft_fn fn, void *arg) {
  io_thread t = {.where = where};
  int rc;
  if (where == IO_GREEN)
    rc = weft_spawn(&t.g, NULL, fn, arg);
  else
    rc = -pthread_create(&t.p, NULL, fn, arg);
  TCHECK_EQ(rc, 0);
  t.started = rc == 0;
  return t;
}

static H_UNUSED void *io_finish(io_thread *t) {
  void *res = NULL;
  if (!t->started)
    return NULL;
  if (t->where == IO_GREEN)
    TCHECK_EQ(weft_join(t->g, &res), 0);
  else
    TCHECK_EQ(pthread_join(t->p, &res), 0);
  t->started = false;
  return res;
}

/* Test thread only: runs fn(arg) where asked, waits for it, and reports
 * the failures recorded off the test's thread, naming where it ran. */
static H_UNUSED void *io_run(enum io_where where, weft_fn fn, void *arg) {
  int before = atomic_load(&h_rep->failures);
  atomic_store(&h_rep->taken, 0); /* first: this run's first failure */
  io_thread t = io_start(where, fn, arg);
  cr_assert(t.started, "could not start a %s", io_where_name(where));
  void *res = io_finish(&t);
  int failed = atomic_load(&h_rep->failures) - before;
  cr_expect(failed == 0, "on a %s: %d check(s) failed; first: %s",
            io_where_name(where), failed, h_rep->first);
  return res;
}

static H_UNUSED pid_t io_gettid(void) { return (pid_t)syscall(SYS_gettid); }

/* A kernel-level sleep that never parks a green thread: it holds the
 * worker, as a blocking library call would. */
static H_UNUSED void io_nanosleep(int64_t ns) {
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* Waits (from any thread, without parking) until *flag is non-zero or the
 * guard expires; true if the flag was seen. */
static H_UNUSED bool io_await_flag(atomic_int *flag, int64_t guard_ns) {
  int64_t end = weft_deadline(guard_ns);
  while (!atomic_load(flag)) {
    if (weft_now() >= end)
      return false;
    io_nanosleep(MS(1));
  }
  return true;
}

/* Same, but parks a green thread (weft_sleep) between looks. */
static H_UNUSED bool io_await_flag_parking(atomic_int *flag, int64_t guard_ns) {
  int64_t end = weft_deadline(guard_ns);
  while (!atomic_load(flag)) {
    if (weft_now() >= end)
      return false;
    weft_sleep(MS(1));
  }
  return true;
}

/* ------------------------------------------------------------------------ */
/* Sockets                                                                  */
/* ------------------------------------------------------------------------ */

/* A stream socketpair, plain (blocking, not taken over). */
static H_UNUSED bool io_socketpair(int sv[2]) {
  int rc = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  TCHECK_EQ(rc, 0);
  return rc == 0;
}

/* A TCP listener on 127.0.0.1 at an ephemeral port; returns its fd (plain,
 * blocking) and stores the address; -1 on failure. */
static H_UNUSED int io_listener(struct sockaddr_in *addr, int backlog) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  TCHECK(fd >= 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
      listen(fd, backlog) < 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
    TCHECK(!"bind/listen/getsockname");
    close(fd);
    return -1;
  }
  *addr = a;
  return fd;
}

/* A connected loopback TCP pair made with plain system calls (the
 * listener is closed again); sv[0] is the connecting side. */
static H_UNUSED bool io_tcp_pair(int sv[2]) {
  struct sockaddr_in a;
  int l = io_listener(&a, 16);
  if (l < 0)
    return false;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  TCHECK(c >= 0);
  bool ok = c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) == 0;
  TCHECK(ok);
  int s = ok ? accept(l, NULL, NULL) : -1;
  TCHECK(s >= 0);
  close(l);
  if (s < 0) {
    if (c >= 0)
      close(c);
    return false;
  }
  int one = 1;
  setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sv[0] = c;
  sv[1] = s;
  return true;
}

/* Either kind of connected stream pair. */
enum io_kind { IO_UNIX, IO_TCP };

static H_UNUSED bool io_pair(enum io_kind kind, int sv[2]) {
  return kind == IO_UNIX ? io_socketpair(sv) : io_tcp_pair(sv);
}

static H_UNUSED bool io_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

static H_UNUSED bool io_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  return fl >= 0 && (fl & FD_CLOEXEC);
}

static H_UNUSED bool io_fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

/* The byte at offset i of the test pattern. */
static H_UNUSED unsigned char io_pat(size_t i) {
  return (unsigned char)((i * 131u + (i >> 9)) & 0xff);
}

/* CPU time (user + system) of the whole process, in nanoseconds. */
static H_UNUSED int64_t io_cpu_ns(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

/* Makes the socket buffers of both ends small, so that a few hundred KiB
 * fill them. */
static H_UNUSED void io_small_buffers(const int sv[2]) {
  int sz = 32 * 1024;
  for (int i = 0; i < 2; i++) {
    setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
}

/* Writes with WEFT_NOWAIT until the socket is full; returns the bytes
 * written. */
static H_UNUSED size_t io_fill_socket(int fd) {
  static char junk[64 * 1024];
  size_t total = 0;
  for (int i = 0; i < 10000; i++) {
    ssize_t n = weft_write(fd, junk, sizeof junk, WEFT_NOWAIT);
    if (n == -EAGAIN)
      return total;
    TCHECK(n > 0);
    if (n <= 0)
      return total;
    total += (size_t)n;
  }
  TCHECK(!"the socket never filled up");
  return total;
}

#endif /* TESTS_IO_HELPERS_H */
