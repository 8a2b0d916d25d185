/*
 * test_io.c - I/O that parks green threads: weft_read/write/readv/writev/
 * recv/send/accept/connect/wait_fd, weft_close and weft_fd_adopt/forget,
 * called from green threads (1 and 2 workers) and from plain kernel
 * threads that are not workers (weft_cancel of these calls: test_cancel.c).
 *
 * Invariants checked:
 *  - data goes through unchanged on socketpairs and loopback TCP; a write
 *    larger than the socket buffers completes while a reader drains; a
 *    read returns what is there as soon as something is, 0 at end of file;
 *    the first use takes an fd over (O_NONBLOCK);
 *  - a green thread blocked in I/O parks: on a single worker, other green
 *    threads keep running (a ring of green threads passes a token around);
 *  - deadlines: -ETIMEDOUT no earlier than the deadline, -EAGAIN at once
 *    for WEFT_NOWAIT, and a write cut short by its deadline returns the
 *    bytes it sent;
 *  - weft_close wakes every thread blocked on the fd with -EBADF;
 *  - accept: a storm of connections from several green threads is accepted
 *    completely, each fd non-blocking; accept4 flags are honoured; -EMFILE
 *    when out of fds, and accepting resumes once fds are freed;
 *  - connect: success, -ECONNREFUSED, and its deadline;
 *  - weft_wait_fd reports POLLIN / POLLOUT, or -ETIMEDOUT;
 *  - a peer that resets or a pipe without reader gives -EPIPE or
 *    -ECONNRESET, never a death by SIGPIPE;
 *  - bad fds give -EBADF; an fd forgotten and closed behind weft's back may
 *    have its number reused by a new socket;
 *  - a green thread blocked in I/O on an idle socket costs no CPU;
 *  - one edge that wakes more readers than a run queue holds loses none
 *    of them, and they run about in the order they parked;
 *  - more ready connections than a run queue holds, kept busy by a
 *    client that answers each at once, are served in turn: none gets
 *    less than a tenth of the answers of another;
 *  - green threads spawned and joined by foreign pthreads do I/O, and I/O
 *    works again after weft_shutdown and weft_init.
 *
 * Every wait that a broken implementation could make endless has a guard
 * deadline (GUARD), so a failure shows as a failed check, not a hang.
 */
#include "io_helpers.h"

#include <limits.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#define GUARD MS(5000)

TestSuite(io_one_worker, .init = h_start1, .fini = h_stop, .timeout = 30);
TestSuite(io_two_workers, .init = h_start2, .fini = h_stop, .timeout = 30);
/* Tests that start the runtime themselves, or run without it. */
TestSuite(io_no_runtime, .fini = h_stop, .timeout = 30);

/* Where a helper thread of a scenario runs: beside the caller. */
static enum io_where io_here(void) {
  return weft_in_gthread() ? IO_GREEN : IO_PTHREAD;
}

/* Reads exactly n bytes (weft_read), or records a failure. */
static bool read_exact(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = weft_read(fd, (char *)buf + got, n - got, weft_deadline(GUARD));
    TCHECK(r > 0);
    if (r <= 0)
      return false;
    got += (size_t)r;
  }
  return true;
}

/* Each scenario runs as a green thread on 1 worker, and on 2 workers both
 * as a green thread and as a pthread (one after the other). */
#define IO_VARIANTS(name, fn, arg)                                             \
  Test(io_one_worker, name) { io_run(IO_GREEN, fn, (void *)(arg)); }                     \
  Test(io_two_workers, name) {                                                            \
    io_run(IO_GREEN, fn, (void *)(arg));                                       \
    io_run(IO_PTHREAD, fn, (void *)(arg));                                     \
  }

#define KIND(k) ((intptr_t)(k))

/* ------------------------------------------------------------------------ */
/* Reads and writes                                                         */
/* ------------------------------------------------------------------------ */

static void basic_rw_kind(enum io_kind kind) {
  int sv[2];
  if (!io_pair(kind, sv))
    return;
  int64_t g = weft_deadline(GUARD);
  char buf[64];

  TCHECK_EQ(weft_write(sv[0], "hello", 5, g), 5);
  TCHECK_EQ(weft_read(sv[1], buf, sizeof buf, g), 5);
  TCHECK(memcmp(buf, "hello", 5) == 0);
  /* Taken over on first use. */
  TCHECK(io_nonblocking(sv[0]));
  TCHECK(io_nonblocking(sv[1]));

  /* The other direction. */
  TCHECK_EQ(weft_write(sv[1], "olleh!", 6, g), 6);
  TCHECK(read_exact(sv[0], buf, 6));
  TCHECK(memcmp(buf, "olleh!", 6) == 0);

  /* writev/readv, with an empty element in the middle. */
  struct iovec wv[3] = {{"ab", 2}, {(void *)"", 0}, {"cdefg", 5}};
  TCHECK_EQ(weft_writev(sv[0], wv, 3, g), 7);
  char x[3] = {0}, y[16] = {0};
  struct iovec rv[2] = {{x, 3}, {y, sizeof y}};
  ssize_t n = weft_readv(sv[1], rv, 2, g);
  TCHECK(n >= 1 && n <= 7);
  char all[8] = {0};
  if (n > 0) {
    memcpy(all, x, n < 3 ? (size_t)n : 3);
    if (n > 3)
      memcpy(all + 3, y, (size_t)n - 3);
    if (n < 7)
      TCHECK(read_exact(sv[1], all + n, 7 - (size_t)n));
  }
  TCHECK(memcmp(all, "abcdefg", 7) == 0);

  /* send/recv, with recv's flags honoured (MSG_PEEK leaves the data). */
  TCHECK_EQ(weft_send(sv[0], "xyz", 3, 0, g), 3);
  memset(buf, 0, sizeof buf);
  TCHECK_EQ(weft_recv(sv[1], buf, 3, MSG_PEEK, g), 3);
  TCHECK(memcmp(buf, "xyz", 3) == 0);
  memset(buf, 0, sizeof buf);
  TCHECK_EQ(weft_recv(sv[1], buf, sizeof buf, 0, g), 3);
  TCHECK(memcmp(buf, "xyz", 3) == 0);
  TCHECK_EQ(weft_send(sv[1], "q", 1, MSG_NOSIGNAL, g), 1);
  TCHECK_EQ(weft_recv(sv[0], buf, sizeof buf, 0, g), 1);

  /* Nothing left: a NOWAIT read says so. */
  TCHECK_EQ(weft_read(sv[1], buf, sizeof buf, WEFT_NOWAIT), -EAGAIN);

  /* End of file, for each kind of read. */
  TCHECK_EQ(shutdown(sv[0], SHUT_WR), 0);
  TCHECK_EQ(weft_read(sv[1], buf, sizeof buf, g), 0);
  TCHECK_EQ(weft_recv(sv[1], buf, sizeof buf, 0, g), 0);
  TCHECK_EQ(weft_readv(sv[1], rv, 2, g), 0);
  /* The half still open works. */
  TCHECK_EQ(weft_write(sv[1], "late", 4, g), 4);
  TCHECK(read_exact(sv[0], buf, 4));
  TCHECK(memcmp(buf, "late", 4) == 0);

  TCHECK_EQ(weft_close(sv[0]), 0);
  TCHECK_EQ(weft_close(sv[1]), 0);
  TCHECK(!io_fd_open(sv[0]));
  TCHECK(!io_fd_open(sv[1]));
}

static void *basic_rw(void *arg) {
  (void)arg;
  basic_rw_kind(IO_UNIX);
  basic_rw_kind(IO_TCP);
  return NULL;
}

IO_VARIANTS(basic_rw, basic_rw, NULL)

/* A read returns what is there as soon as something is: it does not wait
 * to fill its buffer. */
struct trickle {
  int fd;
  atomic_int got_first;
};

static void *trickle_writer(void *arg) {
  struct trickle *t = arg;
  weft_sleep(MS(30));
  TCHECK_EQ(weft_write(t->fd, "abc", 3, weft_deadline(GUARD)), 3);
  TCHECK(io_await_flag_parking(&t->got_first, GUARD));
  weft_sleep(MS(10));
  TCHECK_EQ(weft_close(t->fd), 0);
  return NULL;
}

static void partial_reads_kind(enum io_kind kind) {
  int sv[2];
  if (!io_pair(kind, sv))
    return;
  char buf[4096];
  int64_t g = weft_deadline(GUARD);

  /* Data already there. */
  TCHECK_EQ(weft_write(sv[1], "0123456789", 10, g), 10);
  TCHECK_EQ(weft_read(sv[0], buf, sizeof buf, g), 10);

  /* Data that arrives while the reader waits. */
  struct trickle t = {.fd = sv[1]};
  io_thread w = io_start(io_here(), trickle_writer, &t);
  TCHECK_EQ(weft_read(sv[0], buf, sizeof buf, g), 3);
  TCHECK(memcmp(buf, "abc", 3) == 0);
  atomic_store(&t.got_first, 1);
  /* The writer closes its end: end of file, while blocked. */
  TCHECK_EQ(weft_read(sv[0], buf, sizeof buf, g), 0);
  io_finish(&w);
  TCHECK_EQ(weft_close(sv[0]), 0);
}

static void *partial_reads(void *arg) {
  (void)arg;
  partial_reads_kind(IO_UNIX);
  partial_reads_kind(IO_TCP);
  return NULL;
}

IO_VARIANTS(partial_reads, partial_reads, NULL)

/* A write much larger than the socket buffers completes while a reader
 * drains, with write, writev and send. */
#define BIG ((size_t)1 << 20)

enum big_op { BIG_WRITE, BIG_WRITEV, BIG_SEND };

struct big_case {
  enum io_kind kind;
  enum big_op op;
  int reader; /* -1: beside the writer, else an enum io_where */
};

static void *big_reader(void *arg) {
  int fd = (int)(intptr_t)arg;
  enum { CHUNK = 7001 }; /* odd, so reads end at odd offsets */
  unsigned char *buf = malloc(CHUNK);
  TCHECK(buf != NULL);
  if (!buf)
    return NULL;
  size_t total = 0;
  long bad = 0;
  for (;;) {
    ssize_t n = weft_read(fd, buf, CHUNK, weft_deadline(GUARD));
    if (n <= 0) {
      TCHECK_EQ(n, 0);
      break;
    }
    for (ssize_t i = 0; i < n; i++)
      bad += buf[i] != io_pat(total + (size_t)i);
    total += (size_t)n;
  }
  TCHECK_EQ(bad, 0);
  TCHECK_EQ(total, BIG);
  TCHECK_EQ(weft_close(fd), 0);
  free(buf);
  return NULL;
}

static void big_write_case(const struct big_case *c) {
  int sv[2];
  if (!io_pair(c->kind, sv))
    return;
  io_small_buffers(sv);
  unsigned char *buf = malloc(BIG);
  TCHECK(buf != NULL);
  if (!buf)
    return;
  for (size_t i = 0; i < BIG; i++)
    buf[i] = io_pat(i);

  enum io_where rw = c->reader < 0 ? io_here() : (enum io_where)c->reader;
  io_thread r = io_start(rw, big_reader, (void *)(intptr_t)sv[1]);
  int64_t g = weft_deadline(3 * GUARD);
  ssize_t n = -1;
  switch (c->op) {
  case BIG_WRITE:
    n = weft_write(sv[0], buf, BIG, g);
    break;
  case BIG_WRITEV: {
    /* Uneven pieces, one empty, so that partial writes end mid-piece. */
    struct iovec iov[5] = {{buf, 1},
                           {buf + 1, 0},
                           {buf + 1, 70000},
                           {buf + 70001, 3},
                           {buf + 70004, BIG - 70004}};
    n = weft_writev(sv[0], iov, 5, g);
    break;
  }
  case BIG_SEND:
    n = weft_send(sv[0], buf, BIG, 0, g);
    break;
  }
  TCHECK_EQ(n, BIG);
  TCHECK_EQ(shutdown(sv[0], SHUT_WR), 0);
  io_finish(&r);
  TCHECK_EQ(weft_close(sv[0]), 0);
  free(buf);
}

/* arg: an enum io_kind; write, writev and send in turn. */
static void *big_writes(void *arg) {
  enum io_kind kind = (enum io_kind)(intptr_t)arg;
  for (int op = BIG_WRITE; op <= BIG_SEND; op++) {
    struct big_case c = {kind, (enum big_op)op, -1};
    big_write_case(&c);
  }
  return NULL;
}

static void *big_write(void *arg) {
  big_write_case(arg);
  return NULL;
}

static const struct big_case big_tcp_to_pthread = {IO_TCP, BIG_WRITE,
                                                   IO_PTHREAD};
static const struct big_case big_tcp_to_green = {IO_TCP, BIG_WRITE, IO_GREEN};

IO_VARIANTS(big_writes_unix, big_writes, KIND(IO_UNIX))
IO_VARIANTS(big_writes_tcp, big_writes, KIND(IO_TCP))
/* Writer and reader of different kinds. */
Test(io_one_worker, big_write_green_to_pthread) {
  io_run(IO_GREEN, big_write, (void *)&big_tcp_to_pthread);
}
Test(io_two_workers, big_write_pthread_to_green) {
  io_run(IO_PTHREAD, big_write, (void *)&big_tcp_to_green);
}

/* ------------------------------------------------------------------------ */
/* Parking, not blocking                                                    */
/* ------------------------------------------------------------------------ */

static int park_sv[2];
static atomic_int park_reading, park_other_ran, park_reader_done;

static void *park_reader(void *arg) {
  (void)arg;
  char c = 0;
  atomic_store(&park_reading, 1);
  TCHECK_EQ(weft_read(park_sv[0], &c, 1, weft_deadline(GUARD)), 1);
  TCHECK_EQ(c, 'x');
  atomic_store(&park_reader_done, 1);
  return NULL;
}

static void *park_other(void *arg) {
  (void)arg;
  /* The reader is still blocked: this thread runs beside it. */
  TCHECK_EQ(atomic_load(&park_reader_done), 0);
  atomic_store(&park_other_ran, 1);
  TCHECK_EQ(weft_write(park_sv[1], "x", 1, weft_deadline(GUARD)), 1);
  return NULL;
}

/* One worker: a green thread blocked in weft_read must leave the worker to
 * the others.  The other thread is the one that wakes the reader. */
Test(io_one_worker, blocked_read_leaves_worker_to_others) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, park_sv), 0);
  weft_gthread r = h_spawn(park_reader, NULL);
  cr_assert(io_await_flag(&park_reading, GUARD), "the reader never ran");
  io_nanosleep(MS(20)); /* let it block */
  weft_gthread o = h_spawn(park_other, NULL);
  bool ran = io_await_flag(&park_other_ran, GUARD);
  if (!ran) /* unblock the reader anyway, so the joins end */
    (void)!write(park_sv[1], "x", 1);
  h_join(o);
  h_join(r);
  cr_expect(ran, "a second green thread did not run on the single worker "
                 "while the first was blocked in weft_read");
  EXPECT_NO_THREAD_FAILURES();
  weft_close(park_sv[0]);
  weft_close(park_sv[1]);
}

/* A green thread whose reads never have to wait still lets the others on
 * its worker run (the budget of weft.h): the bystander counts its turns
 * while the reader is part-way through. */
#define GREEDY_READS 1000

static int greedy_sv[2];
static atomic_int greedy_done, greedy_turns;

static void *greedy_reader(void *arg) {
  (void)arg;
  for (int i = 0; i < GREEDY_READS; i++) {
    char c;
    TCHECK_EQ(weft_read(greedy_sv[0], &c, 1, weft_deadline(GUARD)), 1);
    atomic_store(&greedy_done, i + 1);
  }
  return NULL;
}

static void *greedy_bystander(void *arg) {
  (void)arg;
  int64_t guard = weft_deadline(GUARD);
  for (int d; (d = atomic_load(&greedy_done)) < GREEDY_READS;) {
    if (d > 0)
      atomic_fetch_add(&greedy_turns, 1);
    if (weft_now() > guard)
      break;
    weft_yield();
  }
  return NULL;
}

Test(io_one_worker, always_ready_reads_let_others_run) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, greedy_sv), 0);
  char data[GREEDY_READS];
  memset(data, 'g', sizeof data);
  cr_assert_eq(write(greedy_sv[1], data, sizeof data), (ssize_t)sizeof data);
  /* The bystander first: it is alive for the whole of the reader's run. */
  weft_gthread b = h_spawn(greedy_bystander, NULL);
  weft_gthread r = h_spawn(greedy_reader, NULL);
  h_join(r);
  h_join(b);
  EXPECT_NO_THREAD_FAILURES();
  /* One turn a budget of 64 reads: about 15; none without the budget. */
  cr_expect_geq(atomic_load(&greedy_turns), 5,
                "the bystander ran %d times while the reader's %d reads, "
                "none of which had to wait, were under way",
                atomic_load(&greedy_turns), GREEDY_READS);
  weft_close(greedy_sv[0]);
  weft_close(greedy_sv[1]);
}

/* One large write that never has to wait (to a file in memory: the same
 * as a socket whose reader keeps up) still lets the others on its worker
 * run: it goes to the kernel in slices, with a yield between them. */
#define BIG_WRITE ((size_t)8 << 20)

static int big_fd;
static atomic_int big_state, big_turns; /* 0, 1: writing, 2: written */

static void *big_writer(void *arg) {
  char *buf = arg;
  atomic_store(&big_state, 1);
  TCHECK_EQ(weft_write(big_fd, buf, BIG_WRITE, weft_deadline(GUARD)),
            (ssize_t)BIG_WRITE);
  atomic_store(&big_state, 2);
  return NULL;
}

static void *big_bystander(void *arg) {
  (void)arg;
  int64_t guard = weft_deadline(GUARD);
  for (int st; (st = atomic_load(&big_state)) < 2 && weft_now() < guard;) {
    if (st == 1)
      atomic_fetch_add(&big_turns, 1);
    weft_yield();
  }
  return NULL;
}

Test(io_one_worker, one_large_write_lets_others_run) {
  big_fd = memfd_create("big_write", 0);
  cr_assert_geq(big_fd, 0);
  char *buf = malloc(BIG_WRITE);
  cr_assert_not_null(buf);
  memset(buf, 'w', BIG_WRITE);
  weft_gthread b = h_spawn(big_bystander, NULL);
  weft_gthread w = h_spawn(big_writer, buf);
  h_join(w);
  h_join(b);
  EXPECT_NO_THREAD_FAILURES();
  /* 32 slices of 256 KiB: about 31 turns; none in one system call. */
  cr_expect_geq(atomic_load(&big_turns), 8,
                "the bystander ran %d times during one write of %zu bytes "
                "that never had to wait",
                atomic_load(&big_turns), BIG_WRITE);
  /* Every byte arrived, in order. */
  size_t got = 0;
  char chunk[65536];
  cr_assert_eq(lseek(big_fd, 0, SEEK_SET), 0);
  while (got < BIG_WRITE) {
    ssize_t n = read(big_fd, chunk, sizeof chunk);
    cr_assert_gt(n, 0);
    for (ssize_t i = 0; i < n; i++)
      cr_assert_eq(chunk[i], 'w');
    got += (size_t)n;
  }
  free(buf);
  weft_close(big_fd);
}

/* A thread that only yields, alone on its worker, never blocks: the fds
 * that become ready meanwhile must still wake their readers (the yield's
 * slow pick polls the netpoller, and what it finds is delivered then). */
static int lone_sv[2];
static atomic_int lone_woken, lone_reading;

static void *lone_reader(void *arg) {
  (void)arg;
  char c;
  atomic_store(&lone_reading, 1);
  TCHECK_EQ(weft_read(lone_sv[0], &c, 1, weft_deadline(GUARD)), 1);
  atomic_store(&lone_woken, 1);
  return NULL;
}

static void *lone_yielder(void *arg) {
  (void)arg;
  int64_t guard = weft_deadline(GUARD);
  while (!atomic_load(&lone_woken) && weft_now() < guard)
    weft_yield();
  return NULL;
}

Test(io_one_worker, a_lone_yielder_lets_ready_fds_wake_their_readers) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, lone_sv), 0);
  weft_gthread r = h_spawn(lone_reader, NULL);
  cr_assert(io_await_flag(&lone_reading, GUARD), "the reader never ran");
  io_nanosleep(MS(20)); /* let it park */
  weft_gthread y = h_spawn(lone_yielder, NULL);
  io_nanosleep(MS(20)); /* the yielder is alone on the worker */
  cr_assert_eq(write(lone_sv[1], "x", 1), 1);
  h_join(y);
  h_join(r);
  EXPECT_NO_THREAD_FAILURES();
  cr_expect(atomic_load(&lone_woken),
            "a reader whose socket became ready stayed parked while "
            "another thread yielded alone on its worker");
  weft_close(lone_sv[0]);
  weft_close(lone_sv[1]);
}

/* A ring of green threads: each reads a token from its left socket and
 * writes it to its right one.  On one worker this only moves if every
 * blocked reader parks. */
#define RING 32
#define LAPS 50

static int ring_sv[RING + 1][2];

static void *ring_member(void *arg) {
  int i = (int)(intptr_t)arg;
  for (int lap = 0; lap < LAPS; lap++) {
    uint32_t tok = 0;
    if (!read_exact(ring_sv[i][1], &tok, sizeof tok))
      return NULL;
    TCHECK_EQ(tok, (uint32_t)(lap * RING + i));
    tok++;
    TCHECK_EQ(
        weft_write(ring_sv[i + 1][0], &tok, sizeof tok, weft_deadline(GUARD)),
        sizeof tok);
  }
  return NULL;
}

static void ring(void) {
  weft_gthread t[RING];
  for (int i = 0; i <= RING; i++)
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, ring_sv[i]), 0);
  for (int i = 0; i < RING; i++)
    t[i] = h_spawn(ring_member, (void *)(intptr_t)i);
  /* The test's thread (not a worker) closes the ring. */
  for (int lap = 0; lap < LAPS; lap++) {
    uint32_t tok = (uint32_t)(lap * RING);
    cr_assert_eq(
        weft_write(ring_sv[0][0], &tok, sizeof tok, weft_deadline(GUARD)),
        sizeof tok);
    uint32_t back = 0;
    cr_assert(read_exact(ring_sv[RING][1], &back, sizeof back),
              "lap %d: the token did not come back", lap);
    cr_assert_eq(back, (uint32_t)((lap + 1) * RING), "lap %d", lap);
  }
  for (int i = 0; i < RING; i++)
    h_join(t[i]);
  EXPECT_NO_THREAD_FAILURES();
  for (int i = 0; i <= RING; i++) {
    weft_close(ring_sv[i][0]);
    weft_close(ring_sv[i][1]);
  }
}

/*
 * More ready connections than a run queue holds, kept busy: served in
 * turn.  On one worker, FAIR_N green threads each answer a 1-byte request
 * on a socketpair of their own, while a kernel thread plays the client,
 * sending the next request on a connection as soon as its answer comes
 * (as wrk does), until FAIR_TOTAL answers.  Every connection then gets
 * about FAIR_TOTAL / FAIR_N of them: within 10% here, within 4x under
 * AddressSanitizer's slower worker; the check allows 10x.  The threads a poll woke beyond the
 * run queue's room went to the global queue, which a busy worker serves
 * one thread in 64 picks: those connections got a fraction of the others'
 * answers (servers/http's p99 under wrk -c1000 was 197 ms on one worker,
 * its p50 1.7 ms).
 */
#define FAIR_N 1000 /* several times WEFT__RUNQ_SIZE (256) */
#define FAIR_TOTAL 100000

struct fair {
  int srv[FAIR_N], cli[FAIR_N];
  atomic_long served[FAIR_N];
  atomic_int stop;
};

struct fair_conn {
  struct fair *f;
  int i;
};

static void *fair_server(void *arg) {
  struct fair_conn *c = arg;
  char b;
  while (!atomic_load(&c->f->stop)) {
    ssize_t n = weft_read(c->f->srv[c->i], &b, 1, weft_deadline(GUARD));
    if (n != 1)
      break; /* 0: the client closed at the end */
    atomic_fetch_add(&c->f->served[c->i], 1);
    TCHECK_EQ(weft_write(c->f->srv[c->i], &b, 1, weft_deadline(GUARD)), 1);
  }
  return NULL;
}

static void *fair_client(void *arg) {
  struct fair *f = arg;
  int ep = epoll_create1(0);
  TCHECK(ep >= 0);
  char b = 'x';
  for (int i = 0; i < FAIR_N; i++) {
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    TCHECK_EQ(epoll_ctl(ep, EPOLL_CTL_ADD, f->cli[i], &e), 0);
    TCHECK_EQ(write(f->cli[i], &b, 1), 1);
  }
  long answers = 0;
  int64_t guard = weft_now() + MS(20000);
  struct epoll_event ev[64];
  while (answers < FAIR_TOTAL && weft_now() < guard) {
    int n = epoll_wait(ep, ev, 64, 100);
    for (int k = 0; k < n; k++) {
      int i = (int)ev[k].data.u32;
      if (read(f->cli[i], &b, 1) == 1) {
        answers++;
        TCHECK_EQ(write(f->cli[i], &b, 1), 1);
      }
    }
  }
  TCHECK(answers >= FAIR_TOTAL);
  atomic_store(&f->stop, 1);
  for (int i = 0; i < FAIR_N; i++)
    shutdown(f->cli[i], SHUT_WR); /* ends each server's read */
  close(ep);
  return NULL;
}

/* Debug builds randomise where woken threads go and which runs next
 * (WEFT_SEED), to shake out races: the order this checks is the release
 * scheduler's. */
Test(io_one_worker, more_ready_connections_than_a_queue_holds_take_turns,
     .timeout = 60, .disabled = WEFT_DEBUG) {
  struct rlimit rl;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2 * FAIR_N + 64) {
    if (rl.rlim_max < 2 * FAIR_N + 64)
      cr_skip_test("needs %d fds, RLIMIT_NOFILE allows %llu", 2 * FAIR_N + 64,
                   (unsigned long long)rl.rlim_max);
    rl.rlim_cur = 2 * FAIR_N + 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  static struct fair f;
  static struct fair_conn c[FAIR_N];
  static weft_gthread t[FAIR_N];
  memset(&f, 0, sizeof f);
  for (int i = 0; i < FAIR_N; i++) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0, "socketpair: %s",
                 strerror(errno));
    f.srv[i] = sv[0];
    f.cli[i] = sv[1];
    c[i] = (struct fair_conn){&f, i};
    t[i] = h_spawn(fair_server, &c[i]);
  }
  pthread_t client;
  cr_assert_eq(pthread_create(&client, NULL, fair_client, &f), 0);
  pthread_join(client, NULL);
  for (int i = 0; i < FAIR_N; i++)
    h_join(t[i]);
  long lo = LONG_MAX, hi = 0;
  int lo_i = 0;
  for (int i = 0; i < FAIR_N; i++) {
    long s = atomic_load(&f.served[i]);
    if (s < lo)
      lo = s, lo_i = i;
    if (s > hi)
      hi = s;
    weft_close(f.srv[i]);
    close(f.cli[i]);
  }
  cr_expect_geq(lo * 10, hi,
                "connection %d was answered %ld times, another %ld times "
                "(%d connections, %d answers in all)",
                lo_i, lo, hi, FAIR_N, FAIR_TOTAL);
  EXPECT_NO_THREAD_FAILURES();
}

Test(io_one_worker, token_ring) { ring(); }
Test(io_two_workers, token_ring) { ring(); }

/* ------------------------------------------------------------------------ */
/* Deadlines                                                                */
/* ------------------------------------------------------------------------ */

#define EXPECT_TIMEOUT(call, dl)                                               \
  do {                                                                         \
    int64_t dl_ = (dl);                                                        \
    TCHECK_EQ((call), -ETIMEDOUT);                                             \
    TCHECK(weft_now() >= dl_);                                                 \
  } while (0)

/* WEFT_NOWAIT answers at once; "at once" is only guarded, not timed. */
#define EXPECT_NOWAIT(call)                                                    \
  do {                                                                         \
    int64_t t0_ = weft_now();                                                  \
    TCHECK_EQ((call), -EAGAIN);                                                \
    TCHECK(weft_now() - t0_ < MS(1000));                                       \
  } while (0)

static void *deadlines(void *arg) {
  (void)arg;
  int sv[2];
  if (!io_socketpair(sv))
    return NULL;
  char buf[16];
  struct iovec iov = {buf, sizeof buf};
  int64_t dl;

  dl = weft_deadline(MS(40));
  EXPECT_TIMEOUT(weft_read(sv[0], buf, sizeof buf, dl), dl);
  dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_readv(sv[0], &iov, 1, dl), dl);
  dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_recv(sv[0], buf, sizeof buf, 0, dl), dl);
  dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_wait_fd(sv[0], POLLIN, dl), dl);
  /* A deadline that has already passed (but is not WEFT_NOWAIT). */
  dl = weft_deadline(-1);
  EXPECT_TIMEOUT(weft_read(sv[0], buf, sizeof buf, dl), dl);

  EXPECT_NOWAIT(weft_read(sv[0], buf, sizeof buf, WEFT_NOWAIT));
  EXPECT_NOWAIT(weft_readv(sv[0], &iov, 1, WEFT_NOWAIT));
  EXPECT_NOWAIT(weft_recv(sv[0], buf, sizeof buf, 0, WEFT_NOWAIT));
  EXPECT_NOWAIT(weft_wait_fd(sv[0], POLLIN, WEFT_NOWAIT));

  /* Writes: once the socket is full, nothing more goes. */
  io_small_buffers(sv);
  TCHECK(io_fill_socket(sv[1]) > 0);
  EXPECT_NOWAIT(weft_write(sv[1], "x", 1, WEFT_NOWAIT));
  EXPECT_NOWAIT(weft_send(sv[1], "x", 1, 0, WEFT_NOWAIT));
  struct iovec wv = {(void *)"x", 1};
  EXPECT_NOWAIT(weft_writev(sv[1], &wv, 1, WEFT_NOWAIT));
  dl = weft_deadline(MS(30));
  EXPECT_TIMEOUT(weft_write(sv[1], "x", 1, dl), dl);
  dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_send(sv[1], "x", 1, 0, dl), dl);
  dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_writev(sv[1], &wv, 1, dl), dl);
  dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_wait_fd(sv[1], POLLOUT, dl), dl);

  TCHECK_EQ(weft_close(sv[0]), 0);
  TCHECK_EQ(weft_close(sv[1]), 0);

  /* accept */
  struct sockaddr_in a;
  int l = io_listener(&a, 16);
  if (l >= 0) {
    dl = weft_deadline(MS(30));
    EXPECT_TIMEOUT(weft_accept(l, NULL, NULL, 0, dl), dl);
    EXPECT_NOWAIT(weft_accept(l, NULL, NULL, 0, WEFT_NOWAIT));
    TCHECK_EQ(weft_close(l), 0);
  }
  return NULL;
}

IO_VARIANTS(deadlines, deadlines, NULL)

/* A write cut short by its deadline returns the bytes it sent, and the
 * next call reports the condition. */
static void write_deadline_partial_kind(enum io_kind kind) {
  int sv[2];
  if (!io_pair(kind, sv))
    return;
  io_small_buffers(sv);
  size_t len = (size_t)8 << 20;
  char *buf = calloc(1, len);
  TCHECK(buf != NULL);
  if (!buf)
    return;
  int64_t dl = weft_deadline(MS(60));
  ssize_t n = weft_write(sv[0], buf, len, dl);
  TCHECK(n > 0 && (size_t)n < len);
  TCHECK(weft_now() >= dl);
  /* NOWAIT on a full socket: the same with one call. */
  n = weft_write(sv[0], buf, len, WEFT_NOWAIT);
  TCHECK_EQ(n, -EAGAIN);
  TCHECK_EQ(weft_close(sv[0]), 0);
  TCHECK_EQ(weft_close(sv[1]), 0);

  /* A NOWAIT write on a socket with room for part of it returns that
   * part. */
  if (io_pair(kind, sv)) {
    io_small_buffers(sv);
    n = weft_write(sv[0], buf, len, WEFT_NOWAIT);
    TCHECK(n > 0 && (size_t)n < len);
    TCHECK_EQ(weft_close(sv[0]), 0);
    TCHECK_EQ(weft_close(sv[1]), 0);
  }
  free(buf);
}

static void *write_deadline_partial(void *arg) {
  (void)arg;
  write_deadline_partial_kind(IO_UNIX);
  write_deadline_partial_kind(IO_TCP);
  return NULL;
}

IO_VARIANTS(write_deadline_partial, write_deadline_partial, NULL)

/* ------------------------------------------------------------------------ */
/* weft_close wakes the blocked                                             */
/* ------------------------------------------------------------------------ */

struct closing {
  int fd;
  atomic_int blocked;
  int how; /* 0 read, 1 wait_fd, 2 recv */
};

static void *blocked_until_closed(void *arg) {
  struct closing *c = arg;
  char b;
  int64_t g = weft_deadline(GUARD);
  atomic_fetch_add(&c->blocked, 1);
  switch (c->how) {
  case 0:
    TCHECK_EQ(weft_read(c->fd, &b, 1, g), -EBADF);
    break;
  case 1:
    TCHECK_EQ(weft_wait_fd(c->fd, POLLIN, g), -EBADF);
    break;
  case 2:
    TCHECK_EQ(weft_recv(c->fd, &b, 1, 0, g), -EBADF);
    break;
  }
  return NULL;
}

struct close_case {
  int green_readers;
  int pthread_readers;
  bool close_from_green; /* else from the test's thread */
};

static void *close_it(void *arg) {
  struct closing *c = arg;
  TCHECK_EQ(weft_close(c->fd), 0);
  return NULL;
}

static void close_wakes(struct close_case cc) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  cr_assert_eq(weft_fd_adopt(sv[0]), 0);
  struct closing c = {.fd = sv[0]};
  io_thread t[8];
  int n = 0;
  for (int i = 0; i < cc.green_readers; i++, n++)
    t[n] = io_start(IO_GREEN, blocked_until_closed, &c);
  for (int i = 0; i < cc.pthread_readers; i++, n++)
    t[n] = io_start(IO_PTHREAD, blocked_until_closed, &c);
  cr_assert(n <= 8);
  int64_t end = weft_deadline(GUARD);
  while (atomic_load(&c.blocked) < n && weft_now() < end)
    io_nanosleep(MS(1));
  cr_assert_eq(atomic_load(&c.blocked), n, "the readers did not start");
  io_nanosleep(MS(50)); /* let them block */
  if (cc.close_from_green)
    h_join(h_spawn(close_it, &c));
  else
    cr_expect_eq(weft_close(sv[0]), 0);
  for (int i = 0; i < n; i++)
    io_finish(&t[i]);
  EXPECT_NO_THREAD_FAILURES();
  cr_expect(!io_fd_open(sv[0]), "weft_close left the fd open");
  /* Closed: every call now says so. */
  char b;
  cr_expect_eq(weft_read(sv[0], &b, 1, WEFT_NOWAIT), -EBADF);
  cr_expect_eq(weft_close(sv[0]), -EBADF);
  /* The peer sees the end of the stream. */
  cr_expect_eq(weft_read(sv[1], &b, 1, weft_deadline(GUARD)), 0);
  weft_close(sv[1]);
}

Test(io_one_worker, close_wakes_green_reader) {
  close_wakes((struct close_case){1, 0, false});
  close_wakes((struct close_case){1, 0, true});
}
Test(io_two_workers, close_wakes_pthread_reader) {
  close_wakes((struct close_case){0, 1, false});
  close_wakes((struct close_case){0, 1, true});
}
/* Several threads blocked on one fd, in read, wait_fd and recv. */
static void close_wakes_many(void) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct closing c[6];
  io_thread t[6];
  for (int i = 0; i < 6; i++) {
    c[i] = (struct closing){.fd = sv[0], .how = i % 3};
    t[i] = io_start(i < 4 ? IO_GREEN : IO_PTHREAD, blocked_until_closed, &c[i]);
  }
  for (int i = 0; i < 6; i++)
    cr_assert(io_await_flag(&c[i].blocked, GUARD));
  io_nanosleep(MS(50));
  cr_expect_eq(weft_close(sv[0]), 0);
  for (int i = 0; i < 6; i++)
    io_finish(&t[i]);
  EXPECT_NO_THREAD_FAILURES();
  weft_close(sv[1]);
}
Test(io_one_worker, close_wakes_every_blocked_thread) { close_wakes_many(); }
Test(io_two_workers, close_wakes_every_blocked_thread) { close_wakes_many(); }

/* ------------------------------------------------------------------------ */
/* Accept                                                                   */
/* ------------------------------------------------------------------------ */

#define STORM 1200
#define CONNECTORS 6

struct storm {
  int l;
  struct sockaddr_in a;
  atomic_int accepted, connected;
};

static void *storm_acceptor(void *arg) {
  struct storm *s = arg;
  long blocking = 0, cloexec = 0, badaddr = 0;
  for (int i = 0; i < STORM; i++) {
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    memset(&peer, 0, sizeof peer);
    int fd = weft_accept(s->l, (struct sockaddr *)&peer, &len, 0,
                         weft_deadline(GUARD));
    TCHECK(fd >= 0);
    if (fd < 0)
      break;
    blocking += !io_nonblocking(fd);
    cloexec += io_cloexec(fd);
    badaddr += len != sizeof peer || peer.sin_family != AF_INET ||
               peer.sin_addr.s_addr != htonl(INADDR_LOOPBACK);
    TCHECK_EQ(weft_close(fd), 0);
    atomic_fetch_add(&s->accepted, 1);
  }
  TCHECK_EQ(blocking, 0);
  TCHECK_EQ(cloexec, 0);
  TCHECK_EQ(badaddr, 0);
  return NULL;
}

static void *storm_connector(void *arg) {
  struct storm *s = arg;
  for (int i = 0; i < STORM / CONNECTORS; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    TCHECK(fd >= 0);
    if (fd < 0)
      return NULL;
    int rc = weft_connect(fd, (struct sockaddr *)&s->a, sizeof s->a,
                          weft_deadline(GUARD));
    TCHECK_EQ(rc, 0);
    TCHECK_EQ(weft_close(fd), 0);
    if (rc != 0)
      return NULL;
    atomic_fetch_add(&s->connected, 1);
    if (i % 16 == 0)
      weft_yield();
  }
  return NULL;
}

static void accept_storm(void) {
  struct storm s = {0};
  s.l = io_listener(&s.a, 4096);
  cr_assert(s.l >= 0);
  weft_gthread acc = h_spawn(storm_acceptor, &s);
  weft_gthread con[CONNECTORS];
  for (int i = 0; i < CONNECTORS; i++)
    con[i] = h_spawn(storm_connector, &s);
  for (int i = 0; i < CONNECTORS; i++)
    h_join(con[i]);
  h_join(acc);
  cr_expect_eq(atomic_load(&s.connected), STORM);
  cr_expect_eq(atomic_load(&s.accepted), STORM);
  EXPECT_NO_THREAD_FAILURES();
  weft_close(s.l);
}

Test(io_one_worker, accept_storm) { accept_storm(); }
Test(io_two_workers, accept_storm) { accept_storm(); }

/* accept4's flags; the new fd is always non-blocking. */
static void *accept_flags(void *arg) {
  (void)arg;
  struct sockaddr_in a;
  int l = io_listener(&a, 16);
  if (l < 0)
    return NULL;
  int c[4];
  for (int i = 0; i < 4; i++) {
    c[i] = socket(AF_INET, SOCK_STREAM, 0);
    TCHECK_EQ(weft_connect(c[i], (struct sockaddr *)&a, sizeof a,
                           weft_deadline(GUARD)),
              0);
  }
  int64_t g = weft_deadline(GUARD);

  /* Invalid flags are accept4's -EINVAL, and the connection stays. */
  TCHECK_EQ(weft_accept(l, NULL, NULL, 0x40000000, g), -EINVAL);

  int fd = weft_accept(l, NULL, NULL, SOCK_CLOEXEC, g);
  TCHECK(fd >= 0);
  TCHECK(io_cloexec(fd));
  TCHECK(io_nonblocking(fd));
  weft_close(fd);

  fd = weft_accept(l, NULL, NULL, 0, g);
  TCHECK(fd >= 0);
  TCHECK(!io_cloexec(fd));
  TCHECK(io_nonblocking(fd));
  weft_close(fd);

  fd = weft_accept(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC, g);
  TCHECK(fd >= 0);
  TCHECK(io_cloexec(fd));
  TCHECK(io_nonblocking(fd));
  weft_close(fd);

  /* The fourth, with the peer's address. */
  struct sockaddr_in peer;
  struct sockaddr_in mine;
  socklen_t len = sizeof peer, mlen = sizeof mine;
  fd = weft_accept(l, (struct sockaddr *)&peer, &len, 0, g);
  TCHECK(fd >= 0);
  TCHECK_EQ(len, sizeof peer);
  TCHECK_EQ(peer.sin_family, AF_INET);
  TCHECK_EQ(getsockname(c[3], (struct sockaddr *)&mine, &mlen), 0);
  TCHECK_EQ(peer.sin_port, mine.sin_port);
  /* Accepted fds are taken over: they work without further ado. */
  TCHECK_EQ(weft_write(fd, "hi", 2, g), 2);
  char b[2];
  TCHECK(read_exact(c[3], b, 2));
  weft_close(fd);

  for (int i = 0; i < 4; i++)
    weft_close(c[i]);
  weft_close(l);
  return NULL;
}

IO_VARIANTS(accept_flags, accept_flags, NULL)

/* Out of fds: -EMFILE, and accepting resumes once fds are freed.  In a
 * child process, whose fd limit can be lowered without harm. */
static int emfile_failures;

#define CHILD_CHECK(cond)                                                      \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      emfile_failures++;                                                       \
    }                                                                          \
  } while (0)

struct emfile {
  int l;
  struct sockaddr_in a;
  int rc_full, rc_nowait_full, rc_after;
};

static void *emfile_round(void *arg) {
  struct emfile *e = arg;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (c < 0 || weft_connect(c, (struct sockaddr *)&e->a, sizeof e->a,
                            weft_deadline(GUARD)) != 0) {
    e->rc_full = -999;
    return NULL;
  }
  /* Fill the fd table up to a lowered limit. */
  struct rlimit old, low;
  getrlimit(RLIMIT_NOFILE, &old);
  low = old;
  low.rlim_cur = 128;
  int dups[128], nd = 0;
  if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
    e->rc_full = -998;
    close(c);
    return NULL;
  }
  while (nd < 128) {
    int d = open("/dev/null", O_RDONLY);
    if (d < 0)
      break;
    dups[nd++] = d;
  }
  e->rc_full = weft_accept(e->l, NULL, NULL, 0, weft_deadline(MS(2000)));
  e->rc_nowait_full = weft_accept(e->l, NULL, NULL, 0, WEFT_NOWAIT);
  /* Free two and try again: the connection waited. */
  if (nd >= 2) {
    close(dups[--nd]);
    close(dups[--nd]);
  }
  e->rc_after = weft_accept(e->l, NULL, NULL, 0, weft_deadline(GUARD));
  if (e->rc_after >= 0)
    weft_close(e->rc_after);
  while (nd > 0)
    close(dups[--nd]);
  setrlimit(RLIMIT_NOFILE, &old);
  weft_close(c);
  return NULL;
}

static void emfile_check(const struct emfile *e, const char *who) {
  if (e->rc_full != -EMFILE || e->rc_nowait_full != -EMFILE ||
      e->rc_after < 0) {
    fprintf(stderr,
            "%s: accept when out of fds gave %d and %d (want %d), then %d "
            "(want an fd)\n",
            who, e->rc_full, e->rc_nowait_full, -EMFILE, e->rc_after);
    emfile_failures++;
  }
}

static void emfile_child(void *arg) {
  (void)arg;
  weft_config cfg = {.workers = 1};
  CHILD_CHECK(weft_init(&cfg) == 0);
  struct emfile e = {0};
  e.l = io_listener(&e.a, 16);
  CHILD_CHECK(e.l >= 0);
  /* Take the listener over (and start the netpoller) while fds remain. */
  CHILD_CHECK(weft_accept(e.l, NULL, NULL, 0, WEFT_NOWAIT) == -EAGAIN);
  weft_gthread t;
  CHILD_CHECK(weft_spawn(&t, NULL, emfile_round, &e) == 0);
  CHILD_CHECK(weft_join(t, NULL) == 0);
  emfile_check(&e, "green thread");
  /* And from a kernel thread that is not a worker. */
  struct emfile k = e;
  k.rc_full = k.rc_nowait_full = k.rc_after = 0;
  emfile_round(&k);
  emfile_check(&k, "kernel thread");
  weft_close(e.l);
  CHILD_CHECK(weft_shutdown() == 0);
  if (atomic_load(&h_rep->failures))
    fprintf(stderr, "thread check failed: %s\n", h_rep->first);
  if (emfile_failures || atomic_load(&h_rep->failures))
    _exit(1);
}

Test(io_no_runtime, accept_emfile_then_recovers) {
  struct h_child ch;
  h_fork_capture(emfile_child, NULL, &ch);
  cr_expect(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0,
            "child status %#x; stderr:\n%s", ch.status, ch.err);
}

/* ------------------------------------------------------------------------ */
/* Connect                                                                  */
/* ------------------------------------------------------------------------ */

static void *connect_cases(void *arg) {
  (void)arg;
  int64_t g = weft_deadline(GUARD);
  char b[8];

  /* To a listener: connected, and data flows both ways. */
  struct sockaddr_in a;
  int l = io_listener(&a, 16);
  if (l < 0)
    return NULL;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  TCHECK_EQ(weft_connect(c, (struct sockaddr *)&a, sizeof a, g), 0);
  TCHECK(io_nonblocking(c));
  int s = weft_accept(l, NULL, NULL, 0, g);
  TCHECK(s >= 0);
  TCHECK_EQ(weft_write(c, "ping", 4, g), 4);
  TCHECK(read_exact(s, b, 4));
  TCHECK(memcmp(b, "ping", 4) == 0);
  TCHECK_EQ(weft_write(s, "pong", 4, g), 4);
  TCHECK(read_exact(c, b, 4));
  TCHECK(memcmp(b, "pong", 4) == 0);
  weft_close(s);
  weft_close(c);
  weft_close(l);

  /* To a bound port nobody listens on: refused.  The bound socket keeps
   * the port from being taken meanwhile. */
  int bound = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in ba = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t blen = sizeof ba;
  TCHECK_EQ(bind(bound, (struct sockaddr *)&ba, sizeof ba), 0);
  TCHECK_EQ(getsockname(bound, (struct sockaddr *)&ba, &blen), 0);
  c = socket(AF_INET, SOCK_STREAM, 0);
  TCHECK_EQ(weft_connect(c, (struct sockaddr *)&ba, sizeof ba, g),
            -ECONNREFUSED);
  weft_close(c);
  close(bound);

  /* To a listener whose queue is full: the SYN goes unanswered until the
   * deadline. */
  l = io_listener(&a, 0);
  if (l < 0)
    return NULL;
  int filler = socket(AF_INET, SOCK_STREAM, 0);
  TCHECK_EQ(connect(filler, (struct sockaddr *)&a, sizeof a), 0);
  c = socket(AF_INET, SOCK_STREAM, 0);
  int64_t dl = weft_deadline(MS(150));
  EXPECT_TIMEOUT(weft_connect(c, (struct sockaddr *)&a, sizeof a, dl), dl);
  weft_close(c);
  close(filler);
  weft_close(l);

  /* Bad arguments are connect(2)'s. */
  c = socket(AF_INET, SOCK_STREAM, 0);
  TCHECK_EQ(weft_connect(c, (struct sockaddr *)&a, 3, g), -EINVAL);
  weft_close(c);
  return NULL;
}

IO_VARIANTS(connect, connect_cases, NULL)

/* ------------------------------------------------------------------------ */
/* weft_wait_fd                                                             */
/* ------------------------------------------------------------------------ */

struct late {
  int fd;
};

static void *late_writer(void *arg) {
  struct late *l = arg;
  weft_sleep(MS(30));
  TCHECK_EQ(weft_write(l->fd, "w", 1, weft_deadline(GUARD)), 1);
  return NULL;
}

static void *wait_fd_cases(void *arg) {
  (void)arg;
  int sv[2];
  if (!io_socketpair(sv))
    return NULL;
  int64_t g = weft_deadline(GUARD);
  int r;

  r = weft_wait_fd(sv[0], POLLOUT, g);
  TCHECK(r > 0 && (r & POLLOUT));
  int64_t dl = weft_deadline(MS(30));
  EXPECT_TIMEOUT(weft_wait_fd(sv[0], POLLIN, dl), dl);

  TCHECK_EQ(weft_write(sv[1], "a", 1, g), 1);
  r = weft_wait_fd(sv[0], POLLIN, g);
  TCHECK(r > 0 && (r & POLLIN));
  r = weft_wait_fd(sv[0], POLLIN | POLLOUT, g);
  TCHECK(r > 0 && (r & POLLIN) && (r & POLLOUT));
  /* Waiting consumes nothing. */
  char b = 0;
  TCHECK_EQ(weft_read(sv[0], &b, 1, g), 1);
  TCHECK_EQ(b, 'a');

  /* Woken by data that arrives while it waits. */
  struct late l = {sv[1]};
  io_thread w = io_start(io_here(), late_writer, &l);
  r = weft_wait_fd(sv[0], POLLIN, g);
  TCHECK(r > 0 && (r & POLLIN));
  io_finish(&w);
  TCHECK_EQ(weft_read(sv[0], &b, 1, g), 1);

  /* Full for writing: POLLOUT times out; readable once drained. */
  io_small_buffers(sv);
  io_fill_socket(sv[0]);
  dl = weft_deadline(MS(30));
  EXPECT_TIMEOUT(weft_wait_fd(sv[0], POLLOUT, dl), dl);

  /* The peer gone: readable (end of file) or hung up. */
  TCHECK_EQ(weft_close(sv[1]), 0);
  r = weft_wait_fd(sv[0], POLLIN, g);
  TCHECK(r > 0 && (r & (POLLIN | POLLHUP)));
  TCHECK_EQ(weft_close(sv[0]), 0);
  return NULL;
}

IO_VARIANTS(wait_fd, wait_fd_cases, NULL)

/* ------------------------------------------------------------------------ */
/* Peers that go away                                                       */
/* ------------------------------------------------------------------------ */

struct reset {
  int fd;
};

static void *reset_writer(void *arg) {
  struct reset *r = arg;
  static char chunk[256 * 1024];
  ssize_t n = 0;
  size_t total = 0;
  int64_t g = weft_deadline(GUARD);
  while (total < ((size_t)256 << 20)) {
    n = weft_write(r->fd, chunk, sizeof chunk, g);
    if (n <= 0)
      break;
    total += (size_t)n;
  }
  TCHECK(n == -EPIPE || n == -ECONNRESET);
  /* Once broken, it stays broken. */
  n = weft_write(r->fd, chunk, 1, g);
  TCHECK(n == -EPIPE || n == -ECONNRESET);
  n = weft_send(r->fd, chunk, 1, 0, g);
  TCHECK(n == -EPIPE || n == -ECONNRESET);
  TCHECK_EQ(weft_close(r->fd), 0);
  return NULL;
}

static void *reset_mid_write(void *arg) {
  (void)arg;
  int sv[2];
  if (!io_tcp_pair(sv))
    return NULL;
  io_small_buffers(sv);
  struct reset r = {.fd = sv[0]};
  io_thread w = io_start(io_here(), reset_writer, &r);
  /* Read a little, let the writer block on a full socket, then reset. */
  char buf[4096];
  TCHECK(read_exact(sv[1], buf, sizeof buf));
  weft_sleep(MS(30));
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  TCHECK_EQ(setsockopt(sv[1], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
  TCHECK_EQ(weft_close(sv[1]), 0);
  io_finish(&w);
  return NULL;
}

IO_VARIANTS(reset_mid_write, reset_mid_write, NULL)

static void *pipe_no_reader(void *arg) {
  (void)arg;
  int p[2];
  TCHECK_EQ(pipe(p), 0);
  TCHECK_EQ(close(p[0]), 0);
  TCHECK_EQ(weft_write(p[1], "x", 1, weft_deadline(GUARD)), -EPIPE);
  struct iovec iov = {(void *)"y", 1};
  TCHECK_EQ(weft_writev(p[1], &iov, 1, weft_deadline(GUARD)), -EPIPE);
  TCHECK_EQ(weft_close(p[1]), 0);
  return NULL;
}

IO_VARIANTS(pipe_without_reader_is_epipe, pipe_no_reader, NULL)

/* weft_init ignores SIGPIPE when it is at its default, and leaves a
 * handler of the program's alone; socket writes never raise it. */
static atomic_int sigpipes;
static void on_sigpipe(int sig) {
  (void)sig;
  atomic_fetch_add(&sigpipes, 1);
}

static void sigpipe_child(void *arg) {
  bool with_handler = arg != NULL;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = with_handler ? on_sigpipe : SIG_DFL;
  sigaction(SIGPIPE, &sa, NULL);
  weft_config cfg = {.workers = 1};
  if (weft_init(&cfg) != 0)
    _exit(2);
  struct sigaction now;
  sigaction(SIGPIPE, NULL, &now);
  if (now.sa_handler != (with_handler ? on_sigpipe : SIG_IGN)) {
    fprintf(stderr, "SIGPIPE disposition after weft_init: %p\n",
            (void *)now.sa_handler);
    _exit(3);
  }
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  close(sv[1]);
  ssize_t n = weft_send(sv[0], "x", 1, 0, weft_deadline(GUARD));
  ssize_t m = weft_write(sv[0], "x", 1, weft_deadline(GUARD));
  if (n != -EPIPE || m != -EPIPE) {
    fprintf(stderr, "send/write to a closed socket: %zd, %zd\n", n, m);
    _exit(4);
  }
  if (atomic_load(&sigpipes) != 0) {
    fprintf(stderr, "a socket write raised SIGPIPE\n");
    _exit(5);
  }
  if (!with_handler) {
    int p[2];
    if (pipe(p) != 0)
      _exit(6);
    close(p[0]);
    if (weft_write(p[1], "x", 1, weft_deadline(GUARD)) != -EPIPE)
      _exit(7);
  }
  weft_close(sv[0]);
  weft_shutdown();
}

Test(io_no_runtime, sigpipe_ignored_by_init) {
  struct h_child ch;
  h_fork_capture(sigpipe_child, NULL, &ch);
  cr_expect(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0,
            "child status %#x; stderr:\n%s", ch.status, ch.err);
}

Test(io_no_runtime, sigpipe_handler_kept_and_sockets_never_raise_it) {
  struct h_child ch;
  h_fork_capture(sigpipe_child, (void *)1, &ch);
  cr_expect(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0,
            "child status %#x; stderr:\n%s", ch.status, ch.err);
}

/* ------------------------------------------------------------------------ */
/* Bad fds, adopt and forget                                                */
/* ------------------------------------------------------------------------ */

/* The failure shows the fd and what the call returned. */
#define BADF(call)                                                             \
  do {                                                                         \
    long long rc_ = (long long)(call);                                         \
    if (rc_ != -EBADF)                                                         \
      h_fail(__FILE__, __LINE__, "want -EBADF: fd, result of " #call, fd, rc_, \
             1);                                                               \
  } while (0)

static void *bad_fds(void *arg) {
  (void)arg;
  char b[4];
  struct iovec iov = {b, sizeof b};
  struct sockaddr_in a = {.sin_family = AF_INET};
  int64_t g = weft_deadline(GUARD);
  /* A closed fd number, and numbers that cannot be open. */
  int closed = socket(AF_UNIX, SOCK_STREAM, 0);
  TCHECK(closed >= 0);
  close(closed);
  const int bad[] = {-1, -100, closed, 1 << 20, INT_MAX};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int fd = bad[i];
    BADF(weft_fd_adopt(fd));
    BADF(weft_read(fd, b, sizeof b, g));
    BADF(weft_read(fd, b, sizeof b, WEFT_NOWAIT));
    BADF(weft_write(fd, b, sizeof b, g));
    BADF(weft_readv(fd, &iov, 1, g));
    BADF(weft_writev(fd, &iov, 1, g));
    BADF(weft_recv(fd, b, sizeof b, 0, g));
    BADF(weft_send(fd, b, sizeof b, 0, g));
    BADF(weft_accept(fd, NULL, NULL, 0, g));
    BADF(weft_connect(fd, (struct sockaddr *)&a, sizeof a, g));
    BADF(weft_wait_fd(fd, POLLIN, g));
    BADF(weft_close(fd));
  }
  /* Not a socket: the system call's error. */
  int p[2];
  TCHECK_EQ(pipe(p), 0);
  TCHECK_EQ(weft_accept(p[0], NULL, NULL, 0, g), -ENOTSOCK);
  TCHECK_EQ(weft_close(p[0]), 0);
  TCHECK_EQ(weft_close(p[1]), 0);
  return NULL;
}

static void *adopt_cases(void *arg) {
  (void)arg;
  int sv[2];
  if (!io_socketpair(sv))
    return NULL;
  TCHECK(!io_nonblocking(sv[0]));
  TCHECK_EQ(weft_fd_adopt(sv[0]), 0);
  TCHECK(io_nonblocking(sv[0]));
  /* Pipes can be taken over too. */
  int p[2];
  TCHECK_EQ(pipe(p), 0);
  TCHECK_EQ(weft_fd_adopt(p[0]), 0);
  TCHECK(io_nonblocking(p[0]));
  TCHECK_EQ(weft_write(p[1], "pp", 2, weft_deadline(GUARD)), 2);
  char b[2];
  TCHECK(read_exact(p[0], b, 2));
  TCHECK_EQ(weft_close(p[0]), 0);
  TCHECK_EQ(weft_close(p[1]), 0);
  TCHECK_EQ(weft_close(sv[0]), 0);
  TCHECK_EQ(weft_close(sv[1]), 0);
  return NULL;
}

static void *fd_checks(void *arg) {
  bad_fds(arg);
  adopt_cases(arg);
  return NULL;
}

IO_VARIANTS(bad_fds_and_adopt, fd_checks, NULL)

/* Forgotten and closed behind weft's back, the number comes back as a new
 * socket, which works (also for a reader blocked on it). */
struct reuse {
  int fd;
};

static void *reuse_writer(void *arg) {
  struct reuse *r = arg;
  weft_sleep(MS(30));
  TCHECK_EQ(weft_write(r->fd, "n", 1, weft_deadline(GUARD)), 1);
  return NULL;
}

static void *forget_reuse(void *arg) {
  bool by_close = arg != NULL; /* weft_close instead of forget + close */
  int sv[2];
  if (!io_socketpair(sv))
    return NULL;
  char b;
  int old = sv[0];
  /* Use it fully: blocked once, so the netpoller knows it. */
  int64_t dl = weft_deadline(MS(20));
  EXPECT_TIMEOUT(weft_read(old, &b, 1, dl), dl);
  if (by_close) {
    TCHECK_EQ(weft_close(old), 0);
  } else {
    TCHECK_EQ(weft_fd_forget(old), 0);
    TCHECK_EQ(close(old), 0);
  }
  weft_close(sv[1]);
  int nv[2];
  if (!io_socketpair(nv))
    return NULL;
  /* The lowest free numbers are taken: the old one is among them. */
  TCHECK(nv[0] == old || nv[1] == old);
  int fd = nv[0] == old ? nv[0] : nv[1];
  int peer = nv[0] == old ? nv[1] : nv[0];
  struct reuse r = {peer};
  io_thread w = io_start(io_here(), reuse_writer, &r);
  TCHECK_EQ(weft_read(fd, &b, 1, weft_deadline(GUARD)), 1);
  TCHECK_EQ(b, 'n');
  io_finish(&w);
  TCHECK_EQ(weft_write(fd, "m", 1, weft_deadline(GUARD)), 1);
  TCHECK_EQ(weft_read(peer, &b, 1, weft_deadline(GUARD)), 1);
  TCHECK_EQ(b, 'm');
  TCHECK_EQ(weft_close(fd), 0);
  TCHECK_EQ(weft_close(peer), 0);
  return NULL;
}

static void *forget_or_close_reuse(void *arg) {
  (void)arg;
  forget_reuse(NULL);         /* weft_fd_forget, then close(2) */
  forget_reuse((void *)&arg); /* weft_close */
  return NULL;
}

IO_VARIANTS(fd_number_reuse, forget_or_close_reuse, NULL)

/* ------------------------------------------------------------------------ */
/* No busy polling                                                          */
/* ------------------------------------------------------------------------ */

static int idle_sv[2][2];
static atomic_int idle_ready;

static void *idle_reader(void *arg) {
  int i = (int)(intptr_t)arg;
  char b = 0;
  atomic_fetch_add(&idle_ready, 1);
  TCHECK_EQ(weft_read(idle_sv[i][0], &b, 1, WEFT_FOREVER), 1);
  return NULL;
}

static void idle_cpu(void) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, idle_sv[0]), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, idle_sv[1]), 0);
  io_thread g = io_start(IO_GREEN, idle_reader, (void *)0);
  io_thread p = io_start(IO_PTHREAD, idle_reader, (void *)1);
  int64_t end = weft_deadline(GUARD);
  while (atomic_load(&idle_ready) < 2 && weft_now() < end)
    io_nanosleep(MS(1));
  io_nanosleep(MS(30)); /* settle */
  int64_t c0 = io_cpu_ns();
  io_nanosleep(MS(300));
  int64_t used = io_cpu_ns() - c0;
  (void)!write(idle_sv[0][1], "x", 1);
  (void)!write(idle_sv[1][1], "x", 1);
  io_finish(&g);
  io_finish(&p);
  cr_expect_lt(used, MS(30),
               "the process used %lld ms of CPU in 300 ms while its threads "
               "were blocked on idle sockets",
               (long long)(used / 1000000));
  EXPECT_NO_THREAD_FAILURES();
  for (int i = 0; i < 2; i++) {
    weft_close(idle_sv[i][0]);
    weft_close(idle_sv[i][1]);
  }
}

Test(io_one_worker, blocked_reader_uses_no_cpu) { idle_cpu(); }
Test(io_two_workers, blocked_reader_uses_no_cpu) { idle_cpu(); }

/* ------------------------------------------------------------------------ */
/* Embedding: foreign pthreads spawn and join green threads                 */
/* ------------------------------------------------------------------------ */

#define FOREIGN 4
#define PER_FOREIGN 6
#define MSGS 40

static void *echo_server(void *arg) {
  int fd = (int)(intptr_t)arg;
  char buf[256];
  for (;;) {
    ssize_t n = weft_read(fd, buf, sizeof buf, weft_deadline(GUARD));
    if (n <= 0) {
      TCHECK_EQ(n, 0);
      break;
    }
    TCHECK_EQ(weft_write(fd, buf, (size_t)n, weft_deadline(GUARD)), n);
  }
  TCHECK_EQ(weft_close(fd), 0);
  return NULL;
}

static void *foreign(void *arg) {
  int self = (int)(intptr_t)arg;
  int sv[PER_FOREIGN][2];
  weft_gthread t[PER_FOREIGN];
  TCHECK_EQ(weft_worker_index(), -1);
  for (int i = 0; i < PER_FOREIGN; i++) {
    if (!io_socketpair(sv[i]))
      return NULL;
    t[i] = h_tspawn(echo_server, (void *)(intptr_t)sv[i][1]);
  }
  for (int m = 0; m < MSGS; m++) {
    for (int i = 0; i < PER_FOREIGN; i++) {
      uint32_t v = (uint32_t)(self * 100000 + i * 1000 + m), back = 0;
      TCHECK_EQ(weft_write(sv[i][0], &v, sizeof v, weft_deadline(GUARD)),
                sizeof v);
      TCHECK(read_exact(sv[i][0], &back, sizeof back));
      TCHECK_EQ(back, v);
    }
  }
  for (int i = 0; i < PER_FOREIGN; i++) {
    TCHECK_EQ(weft_close(sv[i][0]), 0);
    h_tjoin(t[i]);
  }
  return NULL;
}

static void embedding(void) {
  pthread_t p[FOREIGN];
  for (int i = 0; i < FOREIGN; i++)
    p[i] = h_pthread(foreign, (void *)(intptr_t)i);
  for (int i = 0; i < FOREIGN; i++)
    h_pjoin(p[i]);
  EXPECT_NO_THREAD_FAILURES();
}

Test(io_one_worker, foreign_pthreads_spawn_and_join) { embedding(); }
Test(io_two_workers, foreign_pthreads_spawn_and_join) { embedding(); }

/* ------------------------------------------------------------------------ */
/* Restart, and no runtime at all                                           */
/* ------------------------------------------------------------------------ */

struct pingpong {
  int fd;
};

static void *delayed_ping(void *arg) {
  struct pingpong *p = arg;
  weft_sleep(MS(20));
  TCHECK_EQ(weft_write(p->fd, "p", 1, weft_deadline(GUARD)), 1);
  return NULL;
}

static void *blocked_pong(void *arg) {
  struct pingpong *p = arg;
  char b = 0;
  TCHECK_EQ(weft_read(p->fd, &b, 1, weft_deadline(GUARD)), 1);
  TCHECK_EQ(b, 'p');
  return NULL;
}

/* A green thread blocks on fd until another green thread writes to peer. */
static void green_exchange(int fd, int peer) {
  struct pingpong r = {fd}, w = {peer};
  weft_gthread a = h_spawn(blocked_pong, &r);
  weft_gthread b = h_spawn(delayed_ping, &w);
  h_join(b);
  h_join(a);
}

Test(io_no_runtime, io_after_restart) {
  for (int round = 0; round < 3; round++) {
    h_start(round % 2 + 1);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    green_exchange(sv[0], sv[1]);
    green_exchange(sv[1], sv[0]);
    cr_expect_eq(weft_close(sv[0]), 0);
    cr_expect_eq(weft_close(sv[1]), 0);
    cr_assert_eq(weft_shutdown(), 0);
    EXPECT_NO_THREAD_FAILURES();
  }
}

/* An fd taken over before a restart keeps working after it. */
Test(io_no_runtime, fd_taken_over_before_restart) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  h_start(1);
  green_exchange(sv[0], sv[1]);
  cr_assert_eq(weft_shutdown(), 0);
  h_start(2);
  green_exchange(sv[0], sv[1]);
  green_exchange(sv[1], sv[0]);
  cr_assert_eq(weft_shutdown(), 0);
  EXPECT_NO_THREAD_FAILURES();
  weft_close(sv[0]);
  weft_close(sv[1]);
}

/* The calls work from any thread: also with no runtime running. */
static void *kthread_reader(void *arg) { return blocked_pong(arg); }

Test(io_no_runtime, kernel_threads_without_runtime) {
  cr_assert(!weft_running());
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  char b[8];
  int64_t dl = weft_deadline(MS(30));
  cr_expect_eq(weft_read(sv[0], b, sizeof b, dl), -ETIMEDOUT);
  cr_expect_geq(weft_now(), dl);
  cr_expect_eq(weft_read(sv[0], b, sizeof b, WEFT_NOWAIT), -EAGAIN);
  struct pingpong r = {sv[0]};
  pthread_t p = h_pthread(kthread_reader, &r);
  io_nanosleep(MS(20));
  cr_expect_eq(weft_write(sv[1], "p", 1, weft_deadline(GUARD)), 1);
  h_pjoin(p);
  int w = weft_wait_fd(sv[1], POLLOUT, weft_deadline(GUARD));
  cr_expect(w > 0 && (w & POLLOUT));
  cr_expect_eq(weft_close(sv[0]), 0);
  cr_expect_eq(weft_close(sv[1]), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* One edge wakes every reader of an fd: a batch larger than a run queue.
 * None may be lost (the overflow goes to the global queue), each reader
 * takes one value, and on one worker they run roughly in the order they
 * parked: the overflow goes after the run queue, not half of the queue,
 * the first woken, behind the rest (which put some 175000 pairs out of
 * order; a few global-queue checks now put some hundreds). */
#define CROWD_READERS 1000

static int crowd_fd;
static atomic_int crowd_waiting, crowd_pos;
static atomic_uchar crowd_seen[CROWD_READERS];
static int crowd_order[CROWD_READERS];

static void *crowd_reader(void *arg) {
  int ticket = atomic_fetch_add(&crowd_waiting, 1); /* then parks at once */
  (void)arg;
  uint16_t v;
  if (!read_exact(crowd_fd, &v, sizeof v))
    return NULL;
  crowd_order[atomic_fetch_add(&crowd_pos, 1)] = ticket;
  if (v < CROWD_READERS)
    atomic_fetch_add(&crowd_seen[v], 1);
  return NULL;
}

Test(io_one_worker, big_batch_of_wakes_loses_none) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  crowd_fd = p[0];
  weft_gthread *t = calloc(CROWD_READERS, sizeof *t);
  cr_assert_not_null(t);
  for (int i = 0; i < CROWD_READERS; i++)
    t[i] = h_spawn(crowd_reader, NULL);
  while (atomic_load(&crowd_waiting) < CROWD_READERS)
    io_nanosleep(MS(1));
  io_nanosleep(MS(5)); /* the last ones park */
  static uint16_t vals[CROWD_READERS];
  for (int i = 0; i < CROWD_READERS; i++)
    vals[i] = (uint16_t)i;
  cr_assert_eq(write(p[1], vals, sizeof vals), (ssize_t)sizeof vals);
  for (int i = 0; i < CROWD_READERS; i++)
    h_join(t[i]);
  free(t);
  int missing = 0, twice = 0;
  for (int i = 0; i < CROWD_READERS; i++) {
    missing += crowd_seen[i] == 0;
    twice += crowd_seen[i] > 1;
  }
  cr_expect_eq(missing, 0, "%d values never read", missing);
  cr_expect_eq(twice, 0, "%d values read twice", twice);
  long inv = 0;
  for (int a = 0; a < CROWD_READERS; a++)
    for (int b = a + 1; b < CROWD_READERS; b++)
      inv += crowd_order[a] > crowd_order[b];
  cr_expect_lt(inv, 10L * CROWD_READERS,
               "readers that ran out of parking order: %ld pairs", inv);
  cr_log_info("readers that ran out of parking order: %ld pairs", inv);
  weft_close(p[0]);
  weft_close(p[1]);
  EXPECT_NO_THREAD_FAILURES();
}
