/*
 * io_helpers.c - the functions of io_helpers.h, in tests/libcheck.la.
 */
#include "io_helpers.h"

/* ------------------------------------------------------------------------ */
/* Where a scenario runs                                                    */
/* ------------------------------------------------------------------------ */

const char *io_where_name(enum io_where w) {
  return w == IO_GREEN ? "green thread" : "pthread";
}

io_thread io_start(enum io_where where, weft_fn fn, void *arg) {
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

void *io_finish(io_thread *t) {
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

void *io_run(enum io_where where, weft_fn fn, void *arg) {
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

pid_t io_gettid(void) { return (pid_t)syscall(SYS_gettid); }

void io_nanosleep(int64_t ns) {
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

bool io_await_flag(atomic_int *flag, int64_t guard_ns) {
  int64_t end = weft_deadline(guard_ns);
  while (!atomic_load(flag)) {
    if (weft_now() >= end)
      return false;
    io_nanosleep(MS(1));
  }
  return true;
}

bool io_await_flag_parking(atomic_int *flag, int64_t guard_ns) {
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

bool io_socketpair(int sv[2]) {
  int rc = socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  TCHECK_EQ(rc, 0);
  return rc == 0;
}

int io_listener(struct sockaddr_in *addr, int backlog) {
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

bool io_tcp_pair(int sv[2]) {
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

bool io_pair(enum io_kind kind, int sv[2]) {
  return kind == IO_UNIX ? io_socketpair(sv) : io_tcp_pair(sv);
}

bool io_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl >= 0 && (fl & O_NONBLOCK);
}

bool io_cloexec(int fd) {
  int fl = fcntl(fd, F_GETFD);
  return fl >= 0 && (fl & FD_CLOEXEC);
}

bool io_fd_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

unsigned char io_pat(size_t i) {
  return (unsigned char)((i * 131u + (i >> 9)) & 0xff);
}

int64_t io_cpu_ns(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0)
    return -1;
  return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000 +
         ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

void io_small_buffers(const int sv[2]) {
  int sz = 32 * 1024;
  for (int i = 0; i < 2; i++) {
    setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  }
}

size_t io_fill_socket(int fd) {
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
