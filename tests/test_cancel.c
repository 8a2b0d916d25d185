/*
 * test_cancel.c - weft_cancel of a green thread blocked in each call that
 * can park (read, recv, readv, write, accept, connect, wait_fd, sleep),
 * canceled from a kernel thread or another green thread, on 1 and 2
 * workers: the call returns -ECANCELED, later calls fail at once with
 * -ECANCELED, a bystander blocked elsewhere is not affected, cancel races
 * with the thread parking, and a finished thread gives -ESRCH.
 */
#include "io_helpers.h"

#define GUARD MS(5000)

TestSuite(cancel_one_worker, .init = h_start1, .fini = h_stop, .timeout = 30);
TestSuite(cancel_two_workers, .init = h_start2, .fini = h_stop, .timeout = 30);

enum cancel_how {
  C_READ,
  C_RECV,
  C_READV,
  C_SLEEP,
  C_SLEEP_UNTIL,
  C_ACCEPT,
  C_WAIT_FD,
  C_WRITE,
  C_CONNECT,
  C_NONE, /* canceled before it blocks at all */
};

struct cancel_case {
  enum cancel_how how;
  int fd;               /* what it blocks on */
  struct sockaddr_in a; /* for C_CONNECT */
  int x[2];             /* a socketpair for the calls after the cancel */
  atomic_int ready;
  atomic_int go; /* C_NONE: set once canceled */
};

static void *cancel_victim(void *arg) {
  struct cancel_case *c = arg;
  int64_t g = weft_deadline(GUARD);
  char buf[64];
  struct iovec iov = {buf, sizeof buf};
  TCHECK(!weft_canceled());
  atomic_store(&c->ready, 1);
  switch (c->how) {
  case C_READ:
    TCHECK_EQ(weft_read(c->fd, buf, sizeof buf, g), -ECANCELED);
    break;
  case C_RECV:
    TCHECK_EQ(weft_recv(c->fd, buf, sizeof buf, 0, g), -ECANCELED);
    break;
  case C_READV:
    TCHECK_EQ(weft_readv(c->fd, &iov, 1, g), -ECANCELED);
    break;
  case C_SLEEP:
    TCHECK_EQ(weft_sleep(GUARD), -ECANCELED);
    TCHECK(weft_now() < g);
    break;
  case C_SLEEP_UNTIL:
    TCHECK_EQ(weft_sleep_until(g), -ECANCELED);
    TCHECK(weft_now() < g);
    break;
  case C_ACCEPT:
    TCHECK_EQ(weft_accept(c->fd, NULL, NULL, 0, g), -ECANCELED);
    break;
  case C_WAIT_FD:
    TCHECK_EQ(weft_wait_fd(c->fd, POLLIN, g), -ECANCELED);
    break;
  case C_WRITE: {
    static char big[1 << 20];
    TCHECK_EQ(weft_write(c->fd, big, sizeof big, g), -ECANCELED);
    break;
  }
  case C_CONNECT: {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    TCHECK(s >= 0);
    TCHECK_EQ(weft_connect(s, (struct sockaddr *)&c->a, sizeof c->a, g),
              -ECANCELED);
    close(s);
    break;
  }
  case C_NONE:
    while (!atomic_load(&c->go))
      weft_yield();
    break;
  }
  TCHECK(weft_canceled());

  /* Later calls fail at once, even when the fd is ready, and consume
   * nothing. */
  TCHECK_EQ(send(c->x[1], "r", 1, MSG_NOSIGNAL), 1);
  g = weft_deadline(GUARD);
  TCHECK_EQ(weft_read(c->x[0], buf, sizeof buf, g), -ECANCELED);
  TCHECK_EQ(weft_read(c->x[0], buf, sizeof buf, WEFT_NOWAIT), -ECANCELED);
  TCHECK_EQ(weft_recv(c->x[0], buf, sizeof buf, 0, g), -ECANCELED);
  TCHECK_EQ(weft_readv(c->x[0], &iov, 1, g), -ECANCELED);
  TCHECK_EQ(weft_write(c->x[0], "w", 1, g), -ECANCELED);
  TCHECK_EQ(weft_send(c->x[0], "w", 1, 0, g), -ECANCELED);
  struct iovec wv = {(void *)"w", 1};
  TCHECK_EQ(weft_writev(c->x[0], &wv, 1, g), -ECANCELED);
  TCHECK_EQ(weft_wait_fd(c->x[0], POLLIN | POLLOUT, g), -ECANCELED);
  TCHECK_EQ(weft_sleep(GUARD), -ECANCELED);
  TCHECK_EQ(weft_sleep_until(g), -ECANCELED);
  TCHECK(weft_now() < g);
  TCHECK_EQ(recv(c->x[1], buf, sizeof buf, MSG_DONTWAIT), -1);
  TCHECK_EQ(recv(c->x[0], buf, sizeof buf, MSG_DONTWAIT), 1);
  TCHECK(weft_canceled());
  /* Closing still releases the fd (the way to end connections). */
  int z = socket(AF_UNIX, SOCK_STREAM, 0);
  TCHECK(z >= 0);
  int rc = weft_close(z);
  TCHECK(rc == 0 || rc == -ECANCELED);
  TCHECK(!io_fd_open(z));
  return NULL;
}

static weft_gthread cancel_target;

static void *cancel_from_green(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_cancel(cancel_target), 0);
  return NULL;
}

static void cancel_blocked(enum cancel_how how, bool from_green) {
  struct cancel_case c = {.how = how, .fd = -1};
  int sv[2] = {-1, -1}, filler = -1;
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, c.x), 0);
  switch (how) {
  case C_READ:
  case C_RECV:
  case C_READV:
  case C_WAIT_FD:
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c.fd = sv[0];
    break;
  case C_WRITE:
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    io_small_buffers(sv);
    io_fill_socket(sv[0]);
    c.fd = sv[0];
    break;
  case C_ACCEPT:
    c.fd = io_listener(&c.a, 16);
    cr_assert(c.fd >= 0);
    break;
  case C_CONNECT:
    /* A listener that never accepts, its queue full: SYNs go unanswered. */
    c.fd = io_listener(&c.a, 0);
    cr_assert(c.fd >= 0);
    filler = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(filler, (struct sockaddr *)&c.a, sizeof c.a), 0);
    break;
  default:
    break;
  }
  weft_gthread v = h_spawn(cancel_victim, &c);
  cr_assert(io_await_flag(&c.ready, GUARD));
  if (how != C_NONE)
    io_nanosleep(MS(30)); /* let it block */
  if (from_green) {
    cancel_target = v;
    h_join(h_spawn(cancel_from_green, NULL));
  } else {
    cr_expect_eq(weft_cancel(v), 0);
  }
  atomic_store(&c.go, 1);
  h_join(v);
  if (sv[0] >= 0) {
    weft_close(sv[0]);
    weft_close(sv[1]);
  } else if (c.fd >= 0) {
    weft_close(c.fd);
  }
  if (filler >= 0)
    close(filler);
  weft_close(c.x[0]);
  weft_close(c.x[1]);
}

static const char *const cancel_names[] = {
    "read",   "recv",    "readv", "sleep",   "sleep_until",
    "accept", "wait_fd", "write", "connect", "before blocking"};

/* Each blocking call in turn, canceled from the test's thread or from a
 * green thread; a failure names the call. */
static void cancel_each(bool from_green) {
  for (int how = C_READ; how <= C_NONE; how++) {
    int before = atomic_load(&h_rep->failures);
    atomic_store(&h_rep->taken, 0); /* first: this case's first */
    cancel_blocked((enum cancel_how)how, from_green);
    cr_expect_eq(atomic_load(&h_rep->failures), before,
                 "cancel while in %s (from a %s): first failure: %s",
                 cancel_names[how], from_green ? "green thread" : "pthread",
                 h_rep->first);
  }
}

Test(cancel_one_worker, cancel_each_call) { cancel_each(false); }
Test(cancel_two_workers, cancel_each_call) { cancel_each(false); }
Test(cancel_two_workers, cancel_each_call_from_green) { cancel_each(true); }

/* Only the canceled thread is affected: a bystander blocked on another
 * socket still gets its data. */
static int by_sv[2];
static atomic_int by_ready;

static void *bystander(void *arg) {
  (void)arg;
  char b = 0;
  atomic_store(&by_ready, 1);
  TCHECK_EQ(weft_read(by_sv[0], &b, 1, weft_deadline(GUARD)), 1);
  TCHECK_EQ(b, 'k');
  TCHECK(!weft_canceled());
  TCHECK_EQ(weft_sleep(MS(1)), 0);
  return NULL;
}

static void *sleeper(void *arg) {
  atomic_store((atomic_int *)arg, 1);
  TCHECK_EQ(weft_sleep(GUARD), -ECANCELED);
  return NULL;
}

Test(cancel_one_worker, cancel_spares_others) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, by_sv), 0);
  atomic_int sl_ready = 0;
  weft_gthread b = h_spawn(bystander, NULL);
  weft_gthread s = h_spawn(sleeper, &sl_ready);
  cr_assert(io_await_flag(&by_ready, GUARD));
  cr_assert(io_await_flag(&sl_ready, GUARD));
  io_nanosleep(MS(20));
  cr_expect_eq(weft_cancel(s), 0);
  h_join(s);
  cr_expect_eq(weft_write(by_sv[1], "k", 1, weft_deadline(GUARD)), 1);
  h_join(b);
  cr_expect(!weft_canceled(), "the test's thread is not canceled");
  EXPECT_NO_THREAD_FAILURES();
  weft_close(by_sv[0]);
  weft_close(by_sv[1]);
}

/* A finished (not yet joined) thread cannot be canceled. */
static void *quick(void *arg) {
  atomic_store((atomic_int *)arg, 1);
  return (void *)7;
}

static void cancel_finished(void) {
  atomic_int done = 0;
  weft_gthread t = h_spawn(quick, &done);
  cr_assert(io_await_flag(&done, GUARD));
  /* It may take a moment between its last statement and its end: while
   * it is alive, canceling it is allowed. */
  int rc = 0;
  int64_t end = weft_deadline(GUARD);
  while ((rc = weft_cancel(t)) == 0 && weft_now() < end)
    io_nanosleep(MS(1));
  cr_expect_eq(rc, -ESRCH, "weft_cancel of a finished thread: %d (%s)", rc,
               weft_strerror(rc));
  cr_expect_eq(h_join(t), (void *)7);
}

Test(cancel_one_worker, cancel_finished_is_esrch) { cancel_finished(); }
Test(cancel_two_workers, cancel_finished_is_esrch) { cancel_finished(); }

/* weft_cancel finds a sleeping thread's waiter as soon as the sleep is
 * armed, which is before the thread has switched away: the cancel must not
 * make it runnable while it still runs (its worker would resume a context
 * not yet saved).  Cancel sleepers at every point of their way into the
 * sleep, from a kernel thread, on two workers. */
static void *sleep_long(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_sleep(10 * GUARD);
}

Test(cancel_two_workers, cancel_races_with_parking) {
  for (int i = 0; i < 3000; i++) {
    weft_gthread t = h_spawn(sleep_long, NULL);
    for (int k = 0; k < i % 64; k++) /* vary where the cancel lands */
      __builtin_ia32_pause();
    cr_assert_eq(weft_cancel(t), 0);
    intptr_t rc = (intptr_t)h_join(t);
    cr_assert_eq(rc, -ECANCELED, "round %d: sleep returned %d", i, (int)rc);
  }
}

