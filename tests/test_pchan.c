/*
 * test_pchan.c - channels between processes.
 *
 * Each test runs a supervisor in a child of Criterion's process
 * (shm_helpers.h) that maps the shared region, opens the channels and
 * forks the workers.
 *
 * Invariants checked:
 *  - arguments: -EPERM without a region, -EINVAL for bad sizes and for
 *    pointers that are not channels;
 *  - within one process: FIFO order, WEFT_NOWAIT gives -EAGAIN on an empty
 *    and on a full channel, deadlines give -ETIMEDOUT;
 *  - close: later sends get -EPIPE, receivers drain what is buffered and
 *    then get -EPIPE, closing twice gives -EPIPE, and a receiver or sender
 *    blocked in another process is woken with -EPIPE;
 *  - between processes: every message arrives once, in order per sender
 *    (one sender and one receiver; two of each), elements of 1 and 256
 *    bytes arrive intact;
 *  - dead peers: a receiver blocked on an empty channel whose only sender
 *    was killed gets -ECONNRESET (after the buffered messages), and so
 *    does a sender blocked on a full channel whose only receiver was
 *    killed; a receiver with no known sender, or with a live supervisor as
 *    a sender, waits until its deadline instead;
 *  - a green thread blocked on a channel lets the other green threads of
 *    its worker run;
 *  - parked green receivers wake on their slot's doorbell, and a ring is
 *    not lost to another green thread of the same process that read the
 *    doorbell first.
 */
#include "shm_helpers.h"
#include <weft_testing.h>

#define MIB ((size_t)1 << 20)

TestSuite(pchan, .timeout = 60);

static void setup4(void) { SH_CHECK_EQ(weft_shm_setup(4 * 16 * MIB, 4), 0); }

/* ------------------------------------------------------------------------ */
/* Arguments, and one process                                               */
/* ------------------------------------------------------------------------ */

static void args_sup(void *arg) {
  (void)arg;
  weft_pchan *ch = NULL;
  uint64_t v = 0;
  SH_CHECK_EQ(weft_pchan_open(&ch, 8, 8), -EPERM);
  SH_CHECK_EQ(weft_pchan_send((weft_pchan *)&v, &v, WEFT_NOWAIT), -EPERM);
  SH_CHECK_EQ(weft_pchan_recv((weft_pchan *)&v, &v, WEFT_NOWAIT), -EPERM);
  SH_CHECK_EQ(weft_pchan_close((weft_pchan *)&v), -EPERM);
  setup4();
  SH_CHECK_EQ(weft_pchan_open(NULL, 8, 8), -EINVAL);
  SH_CHECK_EQ(weft_pchan_open(&ch, 0, 8), -EINVAL);
  SH_CHECK_EQ(weft_pchan_open(&ch, 257, 8), -EINVAL);
  SH_CHECK_EQ(weft_pchan_open(&ch, 8, 0), -EINVAL);
  SH_CHECK_EQ(weft_pchan_open(&ch, 8, 65537), -EINVAL);
  SH_CHECK_EQ(weft_pchan_open(&ch, 256, 65536), 0); /* the largest */
  SH_CHECK_EQ(weft_pchan_open(&ch, 8, 8), 0);
  SH_CHECK(weft_shm_contains(ch));
  SH_CHECK_EQ(weft_pchan_send(NULL, &v, WEFT_NOWAIT), -EINVAL);
  SH_CHECK_EQ(weft_pchan_send((weft_pchan *)&v, &v, WEFT_NOWAIT), -EINVAL);
  SH_CHECK_EQ(weft_pchan_recv((weft_pchan *)&v, &v, WEFT_NOWAIT), -EINVAL);
  SH_CHECK_EQ(weft_pchan_close((weft_pchan *)&v), -EINVAL);
  /* inside the area, but not a channel */
  SH_CHECK_EQ(weft_pchan_send((weft_pchan *)((char *)ch + 64), &v, WEFT_NOWAIT),
              -EINVAL);
  SH_CHECK_EQ(weft_pchan_send(ch, NULL, WEFT_NOWAIT), -EINVAL);
  SH_CHECK_EQ(weft_pchan_recv(ch, NULL, WEFT_NOWAIT), -EINVAL);
  /* The area fills up: -ENOMEM, not a crash. */
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++)
    rc = weft_pchan_open(&ch, 256, 65536);
  SH_CHECK_EQ(rc, -ENOMEM);
}

Test(pchan, arguments) {
  struct h_child res;
  sh_run(args_sup, NULL, &res, 30);
}

static void local_sup(void *arg) {
  (void)arg;
  setup4();
  weft_pchan *ch;
  uint64_t v;
  SH_CHECK_EQ(weft_pchan_open(&ch, sizeof v, 4), 0);
  SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_NOWAIT), -EAGAIN);
  int64_t t0 = weft_now();
  SH_CHECK_EQ(weft_pchan_recv(ch, &v, weft_deadline(5 * 1000000)), -ETIMEDOUT);
  SH_CHECK(weft_now() - t0 >= 5 * 1000000);
  for (v = 0; v < 4; v++)
    SH_CHECK_EQ(weft_pchan_send(ch, &v, WEFT_NOWAIT), 0);
  SH_CHECK_EQ(weft_pchan_send(ch, &v, WEFT_NOWAIT), -EAGAIN);
  t0 = weft_now();
  SH_CHECK_EQ(weft_pchan_send(ch, &v, weft_deadline(5 * 1000000)), -ETIMEDOUT);
  SH_CHECK(weft_now() - t0 >= 5 * 1000000);
  SH_CHECK_EQ(weft_pchan_send(ch, &v, weft_now() - 1), -ETIMEDOUT);
  for (uint64_t i = 0; i < 4; i++) {
    SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_FOREVER), 0);
    SH_CHECK_EQ(v, i);
  }
  /* Wrap around the ring many times. */
  for (uint64_t i = 0; i < 1000; i++) {
    SH_CHECK_EQ(weft_pchan_send(ch, &i, WEFT_FOREVER), 0);
    if (i % 3 == 2)
      for (int k = 0; k < 3; k++)
        SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_NOWAIT), 0);
  }
  SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_NOWAIT), 0);
  SH_CHECK_EQ(v, 999);
  SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_NOWAIT), -EAGAIN);
}

Test(pchan, fifo_nowait_and_deadlines) {
  struct h_child res;
  sh_run(local_sup, NULL, &res, 30);
}

static void close_sup(void *arg) {
  (void)arg;
  setup4();
  weft_pchan *ch;
  uint32_t v;
  SH_CHECK_EQ(weft_pchan_open(&ch, sizeof v, 8), 0);
  for (v = 1; v <= 3; v++)
    SH_CHECK_EQ(weft_pchan_send(ch, &v, WEFT_FOREVER), 0);
  SH_CHECK_EQ(weft_pchan_close(ch), 0);
  SH_CHECK_EQ(weft_pchan_close(ch), -EPIPE);
  SH_CHECK_EQ(weft_pchan_send(ch, &v, WEFT_FOREVER), -EPIPE);
  SH_CHECK_EQ(weft_pchan_send(ch, &v, WEFT_NOWAIT), -EPIPE);
  for (uint32_t i = 1; i <= 3; i++) {
    SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_FOREVER), 0);
    SH_CHECK_EQ(v, i);
  }
  SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_FOREVER), -EPIPE);
  SH_CHECK_EQ(weft_pchan_recv(ch, &v, WEFT_NOWAIT), -EPIPE);
}

Test(pchan, close_semantics) {
  struct h_child res;
  sh_run(close_sup, NULL, &res, 30);
}

/* ------------------------------------------------------------------------ */
/* Close wakes blocked peers in other processes                             */
/* ------------------------------------------------------------------------ */

struct cstate {
  weft_pchan *empty, *full;
  atomic_int blocking;
};

static int blocked_receiver(int index, void *arg) {
  (void)index;
  struct cstate *c = arg;
  uint32_t v;
  atomic_fetch_add(&c->blocking, 1);
  SH_CHECK_EQ(weft_pchan_recv(c->empty, &v, WEFT_FOREVER), -EPIPE);
  return 0;
}

static int blocked_sender(int index, void *arg) {
  (void)index;
  struct cstate *c = arg;
  uint32_t v = 7;
  SH_CHECK_EQ(weft_pchan_send(c->full, &v, WEFT_FOREVER), 0);
  atomic_fetch_add(&c->blocking, 1);
  SH_CHECK_EQ(weft_pchan_send(c->full, &v, WEFT_FOREVER), -EPIPE);
  return 0;
}

static void close_wakes_sup(void *arg) {
  struct cstate *c = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&c->empty, 4, 4), 0);
  SH_CHECK_EQ(weft_pchan_open(&c->full, 4, 1), 0);
  pid_t a = sh_spawn(0, blocked_receiver, c);
  pid_t b = sh_spawn(1, blocked_sender, c);
  sh_await(&c->blocking, 2);
  usleep(30 * 1000); /* most likely asleep by now; either way -EPIPE */
  SH_CHECK_EQ(weft_pchan_close(c->empty), 0);
  SH_CHECK_EQ(weft_pchan_close(c->full), 0);
  sh_wait_ok(a, "receiver");
  sh_wait_ok(b, "sender");
  uint32_t v;
  SH_CHECK_EQ(weft_pchan_recv(c->full, &v, WEFT_NOWAIT), 0); /* drains */
  SH_CHECK_EQ(v, 7);
  SH_CHECK_EQ(weft_pchan_recv(c->full, &v, WEFT_NOWAIT), -EPIPE);
}

Test(pchan, close_wakes_other_processes) {
  struct cstate *c = sh_map(sizeof *c);
  struct h_child res;
  sh_run(close_wakes_sup, c, &res, 30);
}

/* ------------------------------------------------------------------------ */
/* Exactly once, in order                                                   */
/* ------------------------------------------------------------------------ */

#define O_MSGS 200000
#define O_SENDERS 2

struct omsg {
  uint32_t sender;
  uint32_t seq;
};

struct ostate {
  weft_pchan *spsc, *mpmc;
  atomic_uint_least8_t seen[O_SENDERS][O_MSGS];
  atomic_long received[2];
};

static int spsc_sender(int index, void *arg) {
  (void)index;
  struct ostate *o = arg;
  for (uint32_t i = 0; i < O_MSGS; i++) {
    struct omsg m = {0, i};
    SH_CHECK_EQ(weft_pchan_send(o->spsc, &m, WEFT_FOREVER), 0);
  }
  return 0;
}

static int spsc_receiver(int index, void *arg) {
  (void)index;
  struct ostate *o = arg;
  long bad = 0;
  for (uint32_t i = 0; i < O_MSGS; i++) {
    struct omsg m;
    SH_CHECK_EQ(weft_pchan_recv(o->spsc, &m, WEFT_FOREVER), 0);
    bad += m.seq != i;
  }
  SH_CHECK_EQ(bad, 0);
  return 0;
}

static int mpmc_sender(int index, void *arg) {
  struct ostate *o = arg;
  for (uint32_t i = 0; i < O_MSGS; i++) {
    struct omsg m = {(uint32_t)index, i};
    SH_CHECK_EQ(weft_pchan_send(o->mpmc, &m, WEFT_FOREVER), 0);
  }
  return 0;
}

/* Receives until the channel is closed and drained; per sender, the
 * sequence numbers one receiver sees only go up. */
static int mpmc_receiver(int index, void *arg) {
  struct ostate *o = arg;
  int64_t last[O_SENDERS] = {-1, -1};
  long bad = 0, n = 0;
  struct omsg m;
  int rc;
  while ((rc = weft_pchan_recv(o->mpmc, &m, WEFT_FOREVER)) == 0) {
    if (m.sender >= O_SENDERS || m.seq >= O_MSGS) {
      bad++;
      continue;
    }
    bad += (int64_t)m.seq <= last[m.sender];
    last[m.sender] = m.seq;
    atomic_fetch_add(&o->seen[m.sender][m.seq], 1);
    n++;
  }
  SH_CHECK_EQ(rc, -EPIPE);
  SH_CHECK_EQ(bad, 0);
  o->received[index - 2] = n;
  return 0;
}

static void order_sup(void *arg) {
  struct ostate *o = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&o->spsc, sizeof(struct omsg), 16), 0);
  SH_CHECK_EQ(weft_pchan_open(&o->mpmc, sizeof(struct omsg), 64), 0);
  sh_pair(spsc_sender, "spsc sender", spsc_receiver, "spsc receiver", o);
  weft__shm_reclaim(0);
  weft__shm_reclaim(1);

  pid_t r2 = sh_spawn(2, mpmc_receiver, o);
  pid_t r3 = sh_spawn(3, mpmc_receiver, o);
  pid_t s0 = sh_spawn(0, mpmc_sender, o);
  pid_t s1 = sh_spawn(1, mpmc_sender, o);
  sh_wait_ok(s0, "mpmc sender 0");
  sh_wait_ok(s1, "mpmc sender 1");
  SH_CHECK_EQ(weft_pchan_close(o->mpmc), 0);
  sh_wait_ok(r2, "mpmc receiver 2");
  sh_wait_ok(r3, "mpmc receiver 3");
}

Test(pchan, exactly_once_in_order_between_processes) {
  struct ostate *o = sh_map(sizeof *o);
  struct h_child res;
  sh_run(order_sup, o, &res, 50);
  long once = 0;
  for (int s = 0; s < O_SENDERS; s++)
    for (int i = 0; i < O_MSGS; i++)
      once += atomic_load(&o->seen[s][i]) == 1;
  cr_expect_eq(once, (long)O_SENDERS * O_MSGS);
  cr_expect_eq(o->received[0] + o->received[1], (long)O_SENDERS * O_MSGS);
}

/* ------------------------------------------------------------------------ */
/* Element sizes                                                            */
/* ------------------------------------------------------------------------ */

struct estate {
  weft_pchan *small, *big;
};

static int elem_sender(int index, void *arg) {
  (void)index;
  struct estate *e = arg;
  for (int i = 0; i < 5000; i++) {
    unsigned char b = (unsigned char)i, big[256];
    for (int k = 0; k < 256; k++)
      big[k] = (unsigned char)(i * 7 + k);
    SH_CHECK_EQ(weft_pchan_send(e->small, &b, WEFT_FOREVER), 0);
    SH_CHECK_EQ(weft_pchan_send(e->big, big, WEFT_FOREVER), 0);
  }
  return 0;
}

static int elem_receiver(int index, void *arg) {
  (void)index;
  struct estate *e = arg;
  long bad = 0;
  for (int i = 0; i < 5000; i++) {
    unsigned char b, big[256];
    SH_CHECK_EQ(weft_pchan_recv(e->small, &b, WEFT_FOREVER), 0);
    SH_CHECK_EQ(weft_pchan_recv(e->big, big, WEFT_FOREVER), 0);
    bad += b != (unsigned char)i;
    for (int k = 0; k < 256; k++)
      bad += big[k] != (unsigned char)(i * 7 + k);
  }
  SH_CHECK_EQ(bad, 0);
  return 0;
}

static void elem_sup(void *arg) {
  struct estate *e = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&e->small, 1, 3), 0);
  SH_CHECK_EQ(weft_pchan_open(&e->big, 256, 5), 0);
  sh_pair(elem_sender, "sender", elem_receiver, "receiver", e);
}

Test(pchan, element_sizes) {
  struct estate *e = sh_map(sizeof *e);
  struct h_child res;
  sh_run(elem_sup, e, &res, 30);
}

/* ------------------------------------------------------------------------ */
/* Dead peers                                                               */
/* ------------------------------------------------------------------------ */

struct dstate {
  weft_pchan *ch;
  atomic_int ready;
  int recv_rc, send_rc, got;
};

static int doomed_sender(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  for (uint32_t v = 1; v <= 3; v++)
    SH_CHECK_EQ(weft_pchan_send(d->ch, &v, WEFT_FOREVER), 0);
  atomic_store(&d->ready, 1);
  sh_hang(); /* until killed */
}

static int orphan_receiver(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  uint32_t v;
  int rc;
  /* The buffered messages first, then -ECONNRESET once the sender is
   * known dead (it may die before or after this blocks). */
  while ((rc = weft_pchan_recv(d->ch, &v, WEFT_FOREVER)) == 0)
    d->got++;
  d->recv_rc = rc;
  return 0;
}

static void dead_sender_sup(void *arg) {
  struct dstate *d = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&d->ch, 4, 8), 0);
  pid_t s = sh_spawn(0, doomed_sender, d);
  pid_t r = sh_spawn(1, orphan_receiver, d);
  sh_await(&d->ready, 1);
  kill(s, SIGKILL);
  sh_wait(s);
  weft__shm_reclaim(0); /* as the supervisor does for a dead worker */
  sh_wait_ok(r, "receiver");
}

Test(pchan, receiver_of_a_dead_sender_gets_econnreset) {
  struct dstate *d = sh_map(sizeof *d);
  struct h_child res;
  sh_run(dead_sender_sup, d, &res, 30);
  cr_expect_eq(d->got, 3);
  cr_expect_eq(d->recv_rc, -ECONNRESET, "recv gave %d (%s)", d->recv_rc,
               weft_strerror(d->recv_rc));
}

static int doomed_receiver(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  uint32_t v;
  SH_CHECK_EQ(weft_pchan_recv(d->ch, &v, WEFT_FOREVER), 0);
  atomic_store(&d->ready, 1);
  sh_hang(); /* until killed */
}

static int orphan_sender(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  uint32_t v = 0;
  int rc;
  while ((rc = weft_pchan_send(d->ch, &v, WEFT_FOREVER)) == 0)
    d->got++;
  d->send_rc = rc;
  return 0;
}

static void dead_receiver_sup(void *arg) {
  struct dstate *d = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&d->ch, 4, 4), 0);
  pid_t r = sh_spawn(0, doomed_receiver, d);
  pid_t s = sh_spawn(1, orphan_sender, d);
  sh_await(&d->ready, 1);
  kill(r, SIGKILL);
  sh_wait(r);
  weft__shm_reclaim(0);
  sh_wait_ok(s, "sender");
}

Test(pchan, sender_to_a_dead_receiver_gets_econnreset) {
  struct dstate *d = sh_map(sizeof *d);
  struct h_child res;
  sh_run(dead_receiver_sup, d, &res, 30);
  /* one taken by the receiver before it died, then the ring filled */
  cr_expect_eq(d->got, 5);
  cr_expect_eq(d->send_rc, -ECONNRESET, "send gave %d (%s)", d->send_rc,
               weft_strerror(d->send_rc));
}

static int patient_receiver(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  uint32_t v;
  /* No sender known yet: a deadline, not a reset. */
  d->recv_rc = weft_pchan_recv(d->ch, &v, weft_deadline(60 * 1000000));
  atomic_store(&d->ready, 1);
  return 0;
}

static int short_lived_sender(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  uint32_t v = 5;
  SH_CHECK_EQ(weft_pchan_send(d->ch, &v, WEFT_FOREVER), 0);
  return 0;
}

static int receiver_with_supervisor_sender(int index, void *arg) {
  (void)index;
  struct dstate *d = arg;
  uint32_t v;
  SH_CHECK_EQ(weft_pchan_recv(d->ch, &v, WEFT_FOREVER), 0);
  SH_CHECK_EQ(v, 5);
  SH_CHECK_EQ(weft_pchan_recv(d->ch, &v, WEFT_FOREVER), 0);
  SH_CHECK_EQ(v, 6);
  /* Its worker sender is dead, but the supervisor sent too and lives. */
  d->send_rc = weft_pchan_recv(d->ch, &v, weft_deadline(60 * 1000000));
  return 0;
}

static void no_sender_sup(void *arg) {
  struct dstate *d = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&d->ch, 4, 4), 0);
  sh_wait_ok(sh_spawn(0, patient_receiver, d), "receiver");

  SH_CHECK_EQ(weft_pchan_open(&d->ch, 4, 4), 0);
  sh_wait_ok(sh_spawn(1, short_lived_sender, d), "sender");
  weft__shm_reclaim(1);
  uint32_t v = 6;
  SH_CHECK_EQ(weft_pchan_send(d->ch, &v, WEFT_FOREVER), 0);
  sh_wait_ok(sh_spawn(2, receiver_with_supervisor_sender, d), "receiver");
}

Test(pchan, no_reset_without_a_dead_sender) {
  struct dstate *d = sh_map(sizeof *d);
  struct h_child res;
  sh_run(no_sender_sup, d, &res, 30);
  cr_expect_eq(d->recv_rc, -ETIMEDOUT);
  cr_expect_eq(d->send_rc, -ETIMEDOUT);
}

/* ------------------------------------------------------------------------ */
/* A green thread blocked on a channel does not block its worker            */
/* ------------------------------------------------------------------------ */

struct gstate {
  weft_pchan *ch;
  atomic_int ticks_ok; /* the other green thread ran while one waited */
  int recv_rc;
  uint32_t got;
  long ticks;
};

static void *g_receive(void *arg) {
  struct gstate *g = arg;
  g->recv_rc = weft_pchan_recv(g->ch, &g->got, WEFT_FOREVER);
  return NULL;
}

static void *g_tick(void *arg) {
  struct gstate *g = arg;
  /* Runs on the same (only) worker as the receiver. */
  while (g->recv_rc == 1) {
    g->ticks++;
    if (g->ticks == 5)
      atomic_store(&g->ticks_ok, 1);
    weft_sleep(1000000);
  }
  return NULL;
}

static int green_receiver(int index, void *arg) {
  (void)index;
  struct gstate *g = arg;
  weft_config cfg = {.workers = 1};
  SH_CHECK_EQ(weft_init(&cfg), 0);
  g->recv_rc = 1;
  weft_gthread a, b;
  SH_CHECK_EQ(weft_spawn(&a, NULL, g_receive, g), 0);
  SH_CHECK_EQ(weft_spawn(&b, NULL, g_tick, g), 0);
  SH_CHECK_EQ(weft_join(a, NULL), 0);
  SH_CHECK_EQ(weft_join(b, NULL), 0);
  SH_CHECK_EQ(weft_shutdown(), 0);
  return 0;
}

static int late_sender(int index, void *arg) {
  (void)index;
  struct gstate *g = arg;
  sh_await(&g->ticks_ok, 1);
  uint32_t v = 42;
  SH_CHECK_EQ(weft_pchan_send(g->ch, &v, WEFT_FOREVER), 0);
  return 0;
}

static void green_sup(void *arg) {
  struct gstate *g = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&g->ch, 4, 2), 0);
  sh_pair(green_receiver, "green receiver", late_sender, "sender", g);
}

Test(pchan, blocked_green_thread_lets_others_run) {
  struct gstate *g = sh_map(sizeof *g);
  struct h_child res;
  sh_run(green_sup, g, &res, 30);
  cr_expect_eq(g->recv_rc, 0);
  cr_expect_eq(g->got, 42);
  cr_expect_geq(g->ticks, 5);
}

/* ------------------------------------------------------------------------ */
/* Parked green receivers wake on their slot's doorbell                     */
/* ------------------------------------------------------------------------ */

#define BELL_MSGS 100

struct bell {
  weft_pchan *ch[2];
  atomic_int ready;  /* receivers spawned */
  uint64_t naps;     /* the receivers' worker: pchan_naps at the end */
  int rc[2], order_ok[2];
  int cancel_rc;
};

struct bell_arg {
  struct bell *b;
  int which;
};

static void *bell_receiver(void *arg) {
  struct bell_arg *a = arg;
  struct bell *b = a->b;
  int ok = 1, rc = 0;
  for (uint32_t i = 0; i < BELL_MSGS && rc == 0; i++) {
    uint32_t v;
    rc = weft_pchan_recv(b->ch[a->which], &v, weft_deadline(10000000000LL));
    if (rc == 0 && v != i)
      ok = 0;
  }
  b->rc[a->which] = rc;
  b->order_ok[a->which] = ok;
  return NULL;
}

static void *bell_canceled(void *arg) {
  struct bell *b = arg;
  uint32_t v;
  /* Nobody sends on ch[1] past BELL_MSGS: only a cancel ends this. */
  b->cancel_rc = weft_pchan_recv(b->ch[1], &v, weft_deadline(20000000000LL));
  return NULL;
}

static int bell_receivers(int index, void *arg) {
  (void)index;
  struct bell *b = arg;
  weft_config cfg = {.workers = 1};
  SH_CHECK_EQ(weft_init(&cfg), 0);
  struct bell_arg a0 = {b, 0}, a1 = {b, 1};
  weft_gthread r0, r1, c;
  SH_CHECK_EQ(weft_spawn(&r0, NULL, bell_receiver, &a0), 0);
  SH_CHECK_EQ(weft_spawn(&r1, NULL, bell_receiver, &a1), 0);
  atomic_store(&b->ready, 1);
  SH_CHECK_EQ(weft_join(r0, NULL), 0);
  SH_CHECK_EQ(weft_join(r1, NULL), 0);
  /* One more receiver, parked for good, then canceled. */
  SH_CHECK_EQ(weft_spawn(&c, NULL, bell_canceled, b), 0);
  weft_sleep(20 * 1000000);
  SH_CHECK_EQ(weft_cancel(c), 0);
  SH_CHECK_EQ(weft_join(c, NULL), 0);
  weft_worker_stats st;
  SH_CHECK_EQ(weft_stats(&st, 1), 1);
  b->naps = st.pchan_naps;
  SH_CHECK_EQ(weft_shutdown(), 0);
  return 0;
}

/* Sends BELL_MSGS on each channel, one at a time with a pause longer than
 * a receiver's spin, so that every receive parks first. */
static int bell_sender(int index, void *arg) {
  (void)index;
  struct bell *b = arg;
  sh_await(&b->ready, 1);
  for (uint32_t i = 0; i < BELL_MSGS; i++)
    for (int k = 0; k < 2; k++) {
      usleep(300);
      SH_CHECK_EQ(weft_pchan_send(b->ch[k], &i, WEFT_FOREVER), 0);
    }
  return 0;
}

static void bell_sup(void *arg) {
  struct bell *b = arg;
  setup4();
  for (int k = 0; k < 2; k++)
    SH_CHECK_EQ(weft_pchan_open(&b->ch[k], 4, 1), 0);
  sh_pair(bell_receivers, "green receivers", bell_sender, "sender", b);
}

Test(pchan, parked_green_receivers_wake_on_their_doorbell) {
  struct bell *b = sh_map(sizeof *b);
  struct h_child res;
  sh_run(bell_sup, b, &res, 60);
  for (int k = 0; k < 2; k++) {
    cr_expect_eq(b->rc[k], 0, "receiver %d: %d", k, b->rc[k]);
    cr_expect(b->order_ok[k], "receiver %d: out of order", k);
  }
  cr_expect_eq(b->naps, 0,
               "green receivers polled %llu times instead of parking on "
               "the doorbell",
               (unsigned long long)b->naps);
  cr_expect_eq(b->cancel_rc, -ECANCELED);
}

/* ------------------------------------------------------------------------ */
/* A ring is not lost to another green thread of the process                */
/* ------------------------------------------------------------------------ */

/*
 * Two green receivers in one process share its doorbell.  B waits on a
 * channel nobody sends on, parked on the doorbell.  A counts itself as a
 * sleeper on another channel, finds it empty, and is stopped before it
 * parks (the "pchan_stall" site: 5 ms).  Meanwhile a sender sends to A:
 * it rings the doorbell, which wakes B.  If B's read of the doorbell
 * swallowed the ring, A would park on a silent doorbell and find its
 * message only at its next check of its deadline and peers, which this
 * test moves from 20 ms to 10 s: it must get it as soon as it is let go.
 */
struct lost {
  weft_pchan *idle, *hot;
  atomic_int go; /* A is stopped: send */
  int64_t sent_at, got_at;
  int rc_hot, rc_idle;
};

static void *lost_idle(void *arg) {
  struct lost *l = arg;
  uint32_t v;
  l->rc_idle = weft_pchan_recv(l->idle, &v, weft_deadline(60000000000LL));
  return NULL;
}

static void *lost_hot(void *arg) {
  struct lost *l = arg;
  uint32_t v;
  l->rc_hot = weft_pchan_recv(l->hot, &v, weft_deadline(60000000000LL));
  l->got_at = weft_now();
  return NULL;
}

static int lost_receivers(int index, void *arg) {
  (void)index;
  struct lost *l = arg;
  weft__shm_chan_peer_check_ns = 10000000000LL;
  weft_config cfg = {.workers = 2};
  SH_CHECK_EQ(weft_init(&cfg), 0);
  weft_gthread a, b;
  SH_CHECK_EQ(weft_spawn(&b, NULL, lost_idle, l), 0);
  weft_sleep(20 * 1000000); /* B spins, then parks on the doorbell */
  SH_CHECK_EQ(weft_fail_inject("pchan_stall:0:1"), 0);
  SH_CHECK_EQ(weft_spawn(&a, NULL, lost_hot, l), 0);
  weft_sleep(1000000); /* A spins 30 us, then stops for 5 ms */
  atomic_store(&l->go, 1);
  SH_CHECK_EQ(weft_join(a, NULL), 0);
  SH_CHECK_EQ(weft_fail_inject(NULL), 0);
  SH_CHECK_EQ(weft_cancel(b), 0);
  SH_CHECK_EQ(weft_join(b, NULL), 0);
  SH_CHECK_EQ(weft_shutdown(), 0);
  return 0;
}

static int lost_sender(int index, void *arg) {
  (void)index;
  struct lost *l = arg;
  uint32_t v = 7;
  sh_await(&l->go, 1);
  l->sent_at = weft_now();
  SH_CHECK_EQ(weft_pchan_send(l->hot, &v, WEFT_FOREVER), 0);
  return 0;
}

static void lost_sup(void *arg) {
  struct lost *l = arg;
  setup4();
  SH_CHECK_EQ(weft_pchan_open(&l->idle, 4, 1), 0);
  SH_CHECK_EQ(weft_pchan_open(&l->hot, 4, 1), 0);
  sh_pair(lost_receivers, "green receivers", lost_sender, "sender", l);
}

Test(pchan, a_ring_is_not_lost_to_another_green_receiver) {
  struct lost *l = sh_map(sizeof *l);
  struct h_child res;
  sh_run(lost_sup, l, &res, 60);
  cr_assert_eq(l->rc_hot, 0, "receive: %d", l->rc_hot);
  cr_expect_eq(l->rc_idle, -ECANCELED);
  /* A is let go 5 ms after it stopped, about 4 ms after the send; a lost
   * ring would keep it until its next check, 10 s after it began. */
  int64_t late = l->got_at - l->sent_at;
  cr_expect_lt(late, 2000000000LL,
               "the message waited %.1f s after its send: the doorbell's "
               "ring went to the other receiver",
               late / 1e9);
}
