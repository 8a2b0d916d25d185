/*
 * test_chan.c - channels and select, between green threads on several
 * workers and plain pthreads.
 *
 * Invariants checked:
 *  - every message arrives exactly once, and in order per sender, for
 *    unbuffered and buffered channels, with senders and receivers of both
 *    kinds;
 *  - close: blocked senders and receivers get -EPIPE, buffered items are
 *    drained first, close twice and send after close give -EPIPE;
 *  - timeouts (-ETIMEDOUT) and WEFT_NOWAIT (-EAGAIN) on send and recv;
 *  - chan_free refuses while a thread is blocked; bad sizes are refused;
 *  - select fires a ready case, picks at random among ready ones, times out,
 *    returns -EAGAIN with WEFT_NOWAIT, fires closed cases with -EPIPE, mixes
 *    send and recv cases, works from pthreads, and a select that loses a
 *    race consumes nothing: with many selecting receivers on shared
 *    channels, what was received is exactly what was sent.
 */
#include "helpers.h"

TestSuite(chan, .init = h_start2, .fini = h_stop, .timeout = 60);
TestSuite(chan_four_workers, .init = h_start4, .fini = h_stop, .timeout = 60);

struct msg {
  uint32_t sender;
  uint32_t seq;
};

/* ------------------------------------------------------------------------ */
/* Exactly once, in order per sender                                        */
/* ------------------------------------------------------------------------ */

#define SENDERS 8 /* 6 green, 2 pthreads */
#define PER_SENDER 3000

struct flow {
  weft_chan *ch;
  uint32_t sender;
};

static void *send_seq(void *arg) {
  struct flow *f = arg;
  for (uint32_t s = 0; s < PER_SENDER; s++) {
    struct msg m = {f->sender, s};
    int rc = s % 2 ? weft_chan_send(f->ch, &m)
                   : weft_chan_send_until(f->ch, &m, WEFT_FOREVER);
    TCHECK_EQ(rc, 0);
  }
  return NULL;
}

struct sink {
  weft_chan *ch;
  long total, bad_order, bad_sender;
  uint32_t next[SENDERS];
};

static void *recv_all(void *arg) {
  struct sink *k = arg;
  for (long i = 0; i < (long)SENDERS * PER_SENDER; i++) {
    struct msg m;
    int rc = i % 2 ? weft_chan_recv(k->ch, &m)
                   : weft_chan_recv_until(k->ch, &m, WEFT_FOREVER);
    TCHECK_EQ(rc, 0);
    if (rc)
      break;
    if (m.sender >= SENDERS) {
      k->bad_sender++;
      continue;
    }
    if (m.seq != k->next[m.sender])
      k->bad_order++;
    k->next[m.sender] = m.seq + 1;
    k->total++;
  }
  return NULL;
}

static void in_order(size_t cap, bool green_receiver) {
  weft_chan *ch;
  struct flow f[SENDERS];
  struct sink k = {0};
  weft_gthread g[SENDERS];
  pthread_t p[SENDERS];

  cr_assert_eq(weft_chan_open(&ch, sizeof(struct msg), cap), 0);
  cr_expect_eq(weft_chan_cap(ch), cap);
  k.ch = ch;
  weft_gthread gr = {0};
  pthread_t pr = 0;
  if (green_receiver)
    gr = h_spawn(recv_all, &k);
  else
    pr = h_pthread(recv_all, &k);
  for (int i = 0; i < SENDERS; i++) {
    f[i] = (struct flow){ch, (uint32_t)i};
    if (i < 6)
      g[i] = h_spawn(send_seq, &f[i]);
    else
      p[i] = h_pthread(send_seq, &f[i]);
  }
  for (int i = 0; i < SENDERS; i++) {
    if (i < 6)
      h_join(g[i]);
    else
      h_pjoin(p[i]);
  }
  if (green_receiver)
    h_join(gr);
  else
    h_pjoin(pr);

  cr_expect_eq(k.total, (long)SENDERS * PER_SENDER);
  cr_expect_eq(k.bad_order, 0, "%ld messages out of order", k.bad_order);
  cr_expect_eq(k.bad_sender, 0);
  for (int i = 0; i < SENDERS; i++)
    cr_expect_eq(k.next[i], PER_SENDER, "sender %d: last seq %u", i,
                 k.next[i]);
  cr_expect_eq(weft_chan_len(ch), 0);
  cr_expect_eq(weft_chan_free(ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(chan, unbuffered_in_order_green_receiver) { in_order(0, true); }
Test(chan, unbuffered_in_order_pthread_receiver) { in_order(0, false); }
Test(chan, buffered1_in_order_green_receiver) { in_order(1, true); }
Test(chan, buffered16_in_order_green_receiver) { in_order(16, true); }
Test(chan, buffered16_in_order_pthread_receiver) { in_order(16, false); }
Test(chan_four_workers, unbuffered_in_order_green_receiver) { in_order(0, true); }
Test(chan_four_workers, buffered16_in_order_green_receiver) { in_order(16, true); }

/* Many receivers: each message is received by exactly one of them. */
#define MR_MSGS 20000
static atomic_uchar got[MR_MSGS];

static void *recv_until_closed(void *arg) {
  weft_chan *ch = arg;
  int v;
  long n = 0;
  for (;;) {
    int rc = weft_chan_recv(ch, &v);
    if (rc == -EPIPE)
      break;
    TCHECK_EQ(rc, 0);
    if (rc)
      break;
    TCHECK(v >= 0 && v < MR_MSGS);
    if (v >= 0 && v < MR_MSGS)
      atomic_fetch_add(&got[v], 1);
    n++;
  }
  return (void *)n;
}

struct range {
  weft_chan *ch;
  int lo, hi;
};

static void *send_range(void *arg) {
  struct range *r = arg;
  for (int v = r->lo; v < r->hi; v++)
    TCHECK_EQ(weft_chan_send(r->ch, &v), 0);
  return NULL;
}

static void many_receivers(size_t cap) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), cap), 0);
  weft_gthread gr[6];
  pthread_t pr[2];
  for (int i = 0; i < 6; i++)
    gr[i] = h_spawn(recv_until_closed, ch);
  for (int i = 0; i < 2; i++)
    pr[i] = h_pthread(recv_until_closed, ch);
  struct range r[4];
  weft_gthread gs[3];
  for (int i = 0; i < 4; i++)
    r[i] = (struct range){ch, i * MR_MSGS / 4, (i + 1) * MR_MSGS / 4};
  for (int i = 0; i < 3; i++)
    gs[i] = h_spawn(send_range, &r[i]);
  pthread_t ps = h_pthread(send_range, &r[3]);
  for (int i = 0; i < 3; i++)
    h_join(gs[i]);
  h_pjoin(ps);
  cr_expect_eq(weft_chan_close(ch), 0);
  long total = 0;
  for (int i = 0; i < 6; i++)
    total += (long)h_join(gr[i]);
  for (int i = 0; i < 2; i++)
    total += (long)h_pjoin(pr[i]);
  cr_expect_eq(total, MR_MSGS);
  int lost = 0, dup = 0;
  for (int i = 0; i < MR_MSGS; i++) {
    lost += got[i] == 0;
    dup += got[i] > 1;
  }
  cr_expect_eq(lost, 0, "%d messages lost", lost);
  cr_expect_eq(dup, 0, "%d messages received twice", dup);
  cr_expect_eq(weft_chan_free(ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(chan, many_receivers_unbuffered) { many_receivers(0); }
Test(chan, many_receivers_buffered) { many_receivers(8); }

/* Elements of odd sizes are copied whole. */
struct big {
  uint8_t bytes[1000];
};

static void *send_big(void *arg) {
  weft_chan *ch = arg;
  struct big b;
  for (int i = 0; i < 100; i++) {
    for (size_t j = 0; j < sizeof b.bytes; j++)
      b.bytes[j] = (uint8_t)(i * 31 + (int)j);
    TCHECK_EQ(weft_chan_send(ch, &b), 0);
  }
  return NULL;
}

Test(chan, large_elements) {
  for (size_t cap = 0; cap <= 3; cap += 3) {
    weft_chan *ch;
    cr_assert_eq(weft_chan_open(&ch, sizeof(struct big), cap), 0);
    weft_gthread t = h_spawn(send_big, ch);
    long bad = 0;
    for (int i = 0; i < 100; i++) {
      struct big b;
      cr_assert_eq(weft_chan_recv(ch, &b), 0);
      for (size_t j = 0; j < sizeof b.bytes; j++)
        bad += b.bytes[j] != (uint8_t)(i * 31 + (int)j);
    }
    h_join(t);
    cr_expect_eq(bad, 0);
    cr_expect_eq(weft_chan_free(ch), 0);
  }
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Close                                                                    */
/* ------------------------------------------------------------------------ */

static atomic_int about_to_block;

static void *send_one(void *arg) {
  int v = 1;
  atomic_fetch_add(&about_to_block, 1);
  return (void *)(intptr_t)weft_chan_send(arg, &v);
}

static void *recv_one(void *arg) {
  int v;
  atomic_fetch_add(&about_to_block, 1);
  return (void *)(intptr_t)weft_chan_recv(arg, &v);
}

static void wait_blockers(int n) {
  while (atomic_load(&about_to_block) < n)
    weft_sleep(MS(1));
  /* From the counter to parked is a few instructions; this margin only
   * matters to free_while_blocked_is_refused, as the close tests pass
   * whether a thread is parked yet or not ("later senders" get -EPIPE). */
  weft_sleep(MS(100));
}

Test(chan, close_wakes_blocked_senders) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread g[4];
  pthread_t p[2];
  for (int i = 0; i < 4; i++)
    g[i] = h_spawn(send_one, ch);
  for (int i = 0; i < 2; i++)
    p[i] = h_pthread(send_one, ch);
  wait_blockers(6);
  cr_expect_eq(weft_chan_close(ch), 0);
  for (int i = 0; i < 4; i++)
    cr_expect_eq((intptr_t)h_join(g[i]), -EPIPE);
  for (int i = 0; i < 2; i++)
    cr_expect_eq((intptr_t)h_pjoin(p[i]), -EPIPE);
  cr_expect_eq(weft_chan_free(ch), 0);
}

Test(chan, close_wakes_blocked_receivers) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 2), 0);
  weft_gthread g[4];
  pthread_t p[2];
  for (int i = 0; i < 4; i++)
    g[i] = h_spawn(recv_one, ch);
  for (int i = 0; i < 2; i++)
    p[i] = h_pthread(recv_one, ch);
  wait_blockers(6);
  cr_expect_eq(weft_chan_close(ch), 0);
  for (int i = 0; i < 4; i++)
    cr_expect_eq((intptr_t)h_join(g[i]), -EPIPE);
  for (int i = 0; i < 2; i++)
    cr_expect_eq((intptr_t)h_pjoin(p[i]), -EPIPE);
  cr_expect_eq(weft_chan_free(ch), 0);
}

Test(chan, close_drains_buffer_then_epipe) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 4), 0);
  for (int v = 10; v < 13; v++)
    cr_assert_eq(weft_chan_send(ch, &v), 0);
  cr_expect_eq(weft_chan_len(ch), 3);
  cr_expect_eq(weft_chan_close(ch), 0);
  cr_expect_eq(weft_chan_close(ch), -EPIPE, "close twice");
  int v = 99;
  cr_expect_eq(weft_chan_send(ch, &v), -EPIPE, "send after close");
  cr_expect_eq(weft_chan_send_until(ch, &v, WEFT_NOWAIT), -EPIPE);
  cr_expect_eq(weft_chan_send_until(ch, &v, weft_deadline(MS(10))), -EPIPE);
  for (int want = 10; want < 13; want++) {
    int got_v = -1;
    cr_expect_eq(weft_chan_recv(ch, &got_v), 0);
    cr_expect_eq(got_v, want);
    cr_expect_eq(weft_chan_len(ch), (size_t)(12 - want));
  }
  cr_expect_eq(weft_chan_recv(ch, &v), -EPIPE);
  cr_expect_eq(weft_chan_recv(ch, &v), -EPIPE, "stays closed");
  cr_expect_eq(weft_chan_recv_until(ch, &v, WEFT_NOWAIT), -EPIPE);
  cr_expect_eq(weft_chan_recv_until(ch, &v, weft_deadline(MS(10))), -EPIPE);
  cr_expect_eq(weft_chan_free(ch), 0);
}

/* Closing from a green thread while a pthread drains. */
static void *drain_count(void *arg) {
  weft_chan *ch = arg;
  int v;
  long n = 0;
  while (weft_chan_recv(ch, &v) == 0)
    n++;
  return (void *)n;
}

static void *fill_and_close(void *arg) {
  weft_chan *ch = arg;
  for (int v = 0; v < 1000; v++)
    TCHECK_EQ(weft_chan_send(ch, &v), 0);
  TCHECK_EQ(weft_chan_close(ch), 0);
  return NULL;
}

Test(chan, close_after_sends_delivers_all) {
  for (size_t cap = 0; cap <= 64; cap += 64) {
    weft_chan *ch;
    cr_assert_eq(weft_chan_open(&ch, sizeof(int), cap), 0);
    pthread_t r = h_pthread(drain_count, ch);
    h_join(h_spawn(fill_and_close, ch));
    cr_expect_eq((long)h_pjoin(r), 1000, "cap %zu", cap);
    cr_expect_eq(weft_chan_free(ch), 0);
  }
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Timeouts and WEFT_NOWAIT                                                 */
/* ------------------------------------------------------------------------ */

static void *timeouts(void *arg) {
  (void)arg;
  weft_chan *u, *b;
  int v = 5;
  TCHECK_EQ(weft_chan_open(&u, sizeof(int), 0), 0);
  TCHECK_EQ(weft_chan_open(&b, sizeof(int), 1), 0);

  TCHECK_EQ(weft_chan_recv_until(u, &v, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_chan_send_until(u, &v, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_chan_recv_until(b, &v, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_chan_send_until(b, &v, WEFT_NOWAIT), 0);
  TCHECK_EQ(weft_chan_send_until(b, &v, WEFT_NOWAIT), -EAGAIN);

  int64_t dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_chan_recv_until(u, &v, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_chan_send_until(u, &v, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_chan_send_until(b, &v, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  TCHECK_EQ(weft_chan_send_until(b, &v, weft_deadline(-1)), -ETIMEDOUT);
  TCHECK_EQ(weft_chan_len(b), 1);

  /* The timed-out operations left nothing behind. */
  TCHECK_EQ(weft_chan_recv_until(b, &v, WEFT_NOWAIT), 0);
  TCHECK_EQ(v, 5);
  TCHECK_EQ(weft_chan_recv_until(b, &v, weft_deadline(MS(5))), -ETIMEDOUT);
  TCHECK_EQ(weft_chan_recv_until(u, &v, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_chan_free(u), 0);
  TCHECK_EQ(weft_chan_free(b), 0);
  return NULL;
}

Test(chan, timeouts_and_nowait) {
  h_join(h_spawn(timeouts, NULL));
  h_pjoin(h_pthread(timeouts, NULL));
  timeouts(NULL);
  EXPECT_NO_THREAD_FAILURES();
}

/* A NOWAIT send to an unbuffered channel succeeds when a receiver waits. */
Test(chan, nowait_send_meets_waiting_receiver) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread r = h_spawn(recv_one, ch);
  int v = 3, rc;
  while ((rc = weft_chan_send_until(ch, &v, WEFT_NOWAIT)) == -EAGAIN)
    weft_sleep(MS(1));
  cr_expect_eq(rc, 0);
  cr_expect_eq((intptr_t)h_join(r), 0);
  cr_expect_eq(weft_chan_free(ch), 0);
}

/* ------------------------------------------------------------------------ */
/* Free and sizes                                                           */
/* ------------------------------------------------------------------------ */

Test(chan, free_while_blocked_is_refused) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  /* Unblocked, it is not busy: a receiver and a sender meet first. */
  weft_gthread r = h_spawn(recv_one, ch);
  pthread_t s = h_pthread(send_one, ch);
  cr_expect_eq((intptr_t)h_pjoin(s), 0);
  cr_expect_eq((intptr_t)h_join(r), 0);

  atomic_store(&about_to_block, 0);
  r = h_spawn(recv_one, ch);
  wait_blockers(1);
  cr_expect_eq(weft_chan_free(ch), -EBUSY);
  cr_expect_eq(weft_chan_close(ch), 0);
  cr_expect_eq((intptr_t)h_join(r), -EPIPE);
  cr_expect_eq(weft_chan_free(ch), 0);
}

Test(chan, element_sizes) {
  weft_chan *ch = NULL;
  cr_expect_eq(weft_chan_open(&ch, 0, 0), -EINVAL);
  cr_expect_eq(weft_chan_open(&ch, 65537, 0), -EINVAL);
  cr_expect_eq(weft_chan_open(&ch, SIZE_MAX, 4), -EINVAL);
  int rc = weft_chan_open(&ch, 8, SIZE_MAX);
  cr_expect(rc == -EINVAL || rc == -ENOMEM, "capacity SIZE_MAX: %s",
            weft_strerror(rc));
  /* 2^32 one-byte elements: under the 1 TiB buffer limit, over the count
   * limit (a channel counts its elements in 32 bits). */
  cr_expect_eq(weft_chan_open(&ch, 1, (size_t)1 << 32), -EINVAL);
  /* The largest capacity: a 4 GiB buffer, which the heap may refuse (as
   * under valgrind); nothing touches it. */
  rc = weft_chan_open(&ch, 1, ((size_t)1 << 32) - 1);
  cr_expect(rc == 0 || rc == -ENOMEM, "the largest capacity: %s",
            weft_strerror(rc));
  if (rc == 0) {
    cr_expect_eq(weft_chan_cap(ch), ((size_t)1 << 32) - 1);
    cr_expect_eq(weft_chan_free(ch), 0);
  }
  /* The ring wraps around in FIFO order. */
  cr_assert_eq(weft_chan_open(&ch, 1, 3), 0);
  for (int round = 0; round < 4; round++) {
    for (char c = 0; c < 3; c++)
      cr_assert_eq(weft_chan_send_until(ch, &c, WEFT_NOWAIT), 0);
    char extra = 9;
    cr_expect_eq(weft_chan_send_until(ch, &extra, WEFT_NOWAIT), -EAGAIN);
    for (char c = 0; c < 3; c++) {
      char out = -1;
      cr_assert_eq(weft_chan_recv_until(ch, &out, WEFT_NOWAIT), 0);
      cr_expect_eq(out, c, "round %d: FIFO order across the wrap", round);
    }
  }
  cr_expect_eq(weft_chan_free(ch), 0);
  cr_assert_eq(weft_chan_open(&ch, 65536, 2), 0);
  cr_expect_eq(weft_chan_cap(ch), 2);
  cr_expect_eq(weft_chan_free(ch), 0);
  cr_assert_eq(weft_chan_open(&ch, 1, 0), 0);
  cr_expect_eq(weft_chan_cap(ch), 0);
  cr_expect_eq(weft_chan_len(ch), 0);
  cr_expect_eq(weft_chan_free(ch), 0);
}

/* ------------------------------------------------------------------------ */
/* Select                                                                   */
/* ------------------------------------------------------------------------ */

static int put(weft_chan *ch, int v) { return weft_chan_send(ch, &v); }

Test(chan, select_fires_ready_case) {
  weft_chan *a, *b;
  cr_assert_eq(weft_chan_open(&a, sizeof(int), 1), 0);
  cr_assert_eq(weft_chan_open(&b, sizeof(int), 1), 0);
  cr_assert_eq(put(b, 77), 0);
  int va = -1, vb = -1;
  weft_select_case c[2] = {{a, WEFT_RECV, &va, 1}, {b, WEFT_RECV, &vb, 1}};
  cr_expect_eq(weft_select(c, 2, WEFT_FOREVER), 1);
  cr_expect_eq(c[1].result, 0);
  cr_expect_eq(vb, 77);
  cr_expect_eq(va, -1, "the case that did not fire wrote its element");
  cr_expect_eq(weft_chan_len(b), 0);
  /* Nothing ready now. */
  cr_expect_eq(weft_select(c, 2, WEFT_NOWAIT), -EAGAIN);
  int64_t dl = weft_deadline(MS(20));
  cr_expect_eq(weft_select(c, 2, dl), -ETIMEDOUT);
  cr_expect_geq(weft_now(), dl);
  cr_expect_eq(weft_chan_free(a), 0);
  cr_expect_eq(weft_chan_free(b), 0);
}

Test(chan, select_chooses_randomly_among_ready) {
  weft_chan *a, *b;
  cr_assert_eq(weft_chan_open(&a, sizeof(int), 1), 0);
  cr_assert_eq(weft_chan_open(&b, sizeof(int), 1), 0);
  int fired[2] = {0, 0};
  for (int trial = 0; trial < 200; trial++) {
    if (weft_chan_len(a) == 0)
      cr_assert_eq(put(a, 1), 0);
    if (weft_chan_len(b) == 0)
      cr_assert_eq(put(b, 2), 0);
    int v = 0;
    weft_select_case c[2] = {{a, WEFT_RECV, &v, 1}, {b, WEFT_RECV, &v, 1}};
    int i = weft_select(c, 2, WEFT_NOWAIT);
    cr_assert(i == 0 || i == 1, "select returned %d", i);
    cr_expect_eq(v, i + 1);
    cr_expect_eq(c[i].result, 0);
    fired[i]++;
  }
  cr_expect_gt(fired[0], 0, "case 0 never fired in 200 trials");
  cr_expect_gt(fired[1], 0, "case 1 never fired in 200 trials");
  weft_chan_free(a);
  weft_chan_free(b);
}

Test(chan, select_closed_case_fires_with_epipe) {
  weft_chan *a, *b;
  cr_assert_eq(weft_chan_open(&a, sizeof(int), 0), 0);
  cr_assert_eq(weft_chan_open(&b, sizeof(int), 0), 0);
  cr_assert_eq(weft_chan_close(a), 0);
  int v;
  weft_select_case c[2] = {{b, WEFT_RECV, &v, 1}, {a, WEFT_RECV, &v, 1}};
  cr_expect_eq(weft_select(c, 2, WEFT_FOREVER), 1);
  cr_expect_eq(c[1].result, -EPIPE);
  /* A send case too. */
  weft_select_case s[2] = {{b, WEFT_RECV, &v, 1}, {a, WEFT_SEND, &v, 1}};
  cr_expect_eq(weft_select(s, 2, WEFT_NOWAIT), 1);
  cr_expect_eq(s[1].result, -EPIPE);
  weft_chan_free(a);
  weft_chan_free(b);
}

static void *close_later(void *arg) {
  weft_sleep(MS(20));
  TCHECK_EQ(weft_chan_close(arg), 0);
  return NULL;
}

Test(chan, select_wakes_on_close) {
  weft_chan *a, *b;
  cr_assert_eq(weft_chan_open(&a, sizeof(int), 0), 0);
  cr_assert_eq(weft_chan_open(&b, sizeof(int), 0), 0);
  weft_gthread t = h_spawn(close_later, b);
  int v;
  weft_select_case c[2] = {{a, WEFT_RECV, &v, 1}, {b, WEFT_RECV, &v, 1}};
  cr_expect_eq(weft_select(c, 2, WEFT_FOREVER), 1);
  cr_expect_eq(c[1].result, -EPIPE);
  h_join(t);
  weft_chan_free(a);
  weft_chan_free(b);
  EXPECT_NO_THREAD_FAILURES();
}

static void *recv_after_a_while(void *arg) {
  int v = -1;
  weft_sleep(MS(10));
  TCHECK_EQ(weft_chan_recv(arg, &v), 0);
  return (void *)(intptr_t)v;
}

static void *send_after_a_while(void *arg) {
  weft_sleep(MS(10));
  TCHECK_EQ(put(arg, 55), 0);
  return NULL;
}

Test(chan, select_send_and_recv_cases) {
  weft_chan *out, *in;
  cr_assert_eq(weft_chan_open(&out, sizeof(int), 0), 0);
  cr_assert_eq(weft_chan_open(&in, sizeof(int), 0), 0);
  int send_v = 33, recv_v = -1;

  /* Only a receiver on out: the send case fires. */
  weft_gthread r = h_spawn(recv_after_a_while, out);
  weft_select_case c[2] = {{in, WEFT_RECV, &recv_v, 1},
                           {out, WEFT_SEND, &send_v, 1}};
  cr_expect_eq(weft_select(c, 2, WEFT_FOREVER), 1);
  cr_expect_eq(c[1].result, 0);
  cr_expect_eq((intptr_t)h_join(r), 33);
  cr_expect_eq(recv_v, -1);

  /* Only a sender on in: the recv case fires and nothing is sent. */
  weft_gthread s = h_spawn(send_after_a_while, in);
  c[0].result = c[1].result = 1;
  cr_expect_eq(weft_select(c, 2, WEFT_FOREVER), 0);
  cr_expect_eq(c[0].result, 0);
  cr_expect_eq(recv_v, 55);
  h_join(s);
  cr_expect_eq(weft_chan_send_until(out, &send_v, WEFT_NOWAIT), -EAGAIN);

  /* Buffered: a send case fires when there is room. */
  weft_chan *buf;
  cr_assert_eq(weft_chan_open(&buf, sizeof(int), 1), 0);
  weft_select_case d[2] = {{in, WEFT_RECV, &recv_v, 1},
                           {buf, WEFT_SEND, &send_v, 1}};
  cr_expect_eq(weft_select(d, 2, WEFT_NOWAIT), 1);
  cr_expect_eq(weft_chan_len(buf), 1);
  cr_expect_eq(weft_select(d, 2, WEFT_NOWAIT), -EAGAIN);
  weft_chan_free(buf);
  weft_chan_free(out);
  weft_chan_free(in);
  EXPECT_NO_THREAD_FAILURES();
}

Test(chan, select_bad_cases) {
  weft_chan *a;
  cr_assert_eq(weft_chan_open(&a, sizeof(int), 1), 0);
  int v;
  weft_select_case ok = {a, WEFT_RECV, &v, 0};
  weft_select_case null_ch = {NULL, WEFT_RECV, &v, 0};
  weft_select_case bad_op = {a, 3, &v, 0};
  cr_expect_eq(weft_select(&ok, 0, WEFT_NOWAIT), -EINVAL, "n = 0");
  cr_expect_eq(weft_select(&null_ch, 1, WEFT_NOWAIT), -EINVAL);
  cr_expect_eq(weft_select(&bad_op, 1, WEFT_NOWAIT), -EINVAL);
  weft_select_case *many = calloc(1025, sizeof *many);
  for (int i = 0; i < 1025; i++)
    many[i] = ok;
  cr_expect_eq(weft_select(many, 1025, WEFT_NOWAIT), -EINVAL, "n = 1025");
  cr_expect_eq(weft_select(many, 1024, WEFT_NOWAIT), -EAGAIN, "n = 1024");
  free(many);
  weft_chan_free(a);
}

/* A pthread selecting over channels fed by green threads. */
static void *select_from_pthread(void *arg) {
  weft_chan **chs = arg;
  long sum = 0;
  int v, open = 2;
  weft_select_case c[2] = {{chs[0], WEFT_RECV, &v, 1},
                           {chs[1], WEFT_RECV, &v, 1}};
  while (open) {
    int i = weft_select(c, (size_t)open, WEFT_FOREVER);
    TCHECK(i >= 0 && i < open);
    if (i < 0)
      break;
    if (c[i].result == -EPIPE) {
      c[i] = c[open - 1];
      open--;
    } else {
      TCHECK_EQ(c[i].result, 0);
      sum += v;
    }
  }
  return (void *)sum;
}

static void *feed(void *arg) {
  weft_chan *ch = arg;
  for (int v = 1; v <= 1000; v++)
    TCHECK_EQ(put(ch, v), 0);
  TCHECK_EQ(weft_chan_close(ch), 0);
  return NULL;
}

Test(chan, select_from_pthread) {
  weft_chan *chs[2];
  cr_assert_eq(weft_chan_open(&chs[0], sizeof(int), 0), 0);
  cr_assert_eq(weft_chan_open(&chs[1], sizeof(int), 4), 0);
  pthread_t p = h_pthread(select_from_pthread, chs);
  weft_gthread a = h_spawn(feed, chs[0]);
  weft_gthread b = h_spawn(feed, chs[1]);
  h_join(a);
  h_join(b);
  cr_expect_eq((long)h_pjoin(p), 2 * 500500);
  weft_chan_free(chs[0]);
  weft_chan_free(chs[1]);
  EXPECT_NO_THREAD_FAILURES();
}

/* Message conservation: many receivers select over shared channels (some
 * unbuffered, some buffered); senders send unique values to any of them.
 * A select that loses a race must not take a message, so every value is
 * received exactly once. */
#define SC_CHANS 4
#define SC_SENDERS 4 /* 3 green, 1 pthread */
#define SC_PER_SENDER 5000
#define SC_TOTAL (SC_SENDERS * SC_PER_SENDER)

static weft_chan *sc[SC_CHANS];
static atomic_uchar sc_got[SC_TOTAL];

static void *sc_send(void *arg) {
  int s = (int)(intptr_t)arg;
  uint64_t rng = (uint64_t)s + 11;
  for (int k = 0; k < SC_PER_SENDER; k++) {
    int v = s * SC_PER_SENDER + k;
    if (k % 3 == 0) {
      /* Send through select too: one of two random channels. */
      int x = (int)(h_rand(&rng) % SC_CHANS), y = (x + 1) % SC_CHANS;
      weft_select_case c[2] = {{sc[x], WEFT_SEND, &v, 1},
                               {sc[y], WEFT_SEND, &v, 1}};
      int i = weft_select(c, 2, WEFT_FOREVER);
      TCHECK(i == 0 || i == 1);
      if (i == 0 || i == 1)
        TCHECK_EQ(c[i].result, 0);
    } else {
      TCHECK_EQ(weft_chan_send(sc[h_rand(&rng) % SC_CHANS], &v), 0);
    }
  }
  return NULL;
}

static void *sc_recv(void *arg) {
  (void)arg;
  int v;
  long n = 0;
  weft_select_case c[SC_CHANS];
  size_t open = SC_CHANS;
  for (int i = 0; i < SC_CHANS; i++)
    c[i] = (weft_select_case){sc[i], WEFT_RECV, &v, 1};
  while (open) {
    v = -1;
    int i = weft_select(c, open, WEFT_FOREVER);
    TCHECK(i >= 0 && (size_t)i < open);
    if (i < 0)
      break;
    if (c[i].result == -EPIPE) { /* closed and drained */
      c[i] = c[open - 1];
      open--;
      continue;
    }
    TCHECK_EQ(c[i].result, 0);
    TCHECK(v >= 0 && v < SC_TOTAL);
    if (v >= 0 && v < SC_TOTAL)
      atomic_fetch_add(&sc_got[v], 1);
    n++;
  }
  return (void *)n;
}

static void select_conservation(void) {
  for (int i = 0; i < SC_CHANS; i++)
    cr_assert_eq(weft_chan_open(&sc[i], sizeof(int), i % 2 ? 3 : 0), 0);
  weft_gthread gr[6], gs[3];
  pthread_t pr[2], ps;
  for (int i = 0; i < 6; i++)
    gr[i] = h_spawn(sc_recv, NULL);
  for (int i = 0; i < 2; i++)
    pr[i] = h_pthread(sc_recv, NULL);
  for (int i = 0; i < 3; i++)
    gs[i] = h_spawn(sc_send, (void *)(intptr_t)i);
  ps = h_pthread(sc_send, (void *)(intptr_t)3);
  for (int i = 0; i < 3; i++)
    h_join(gs[i]);
  h_pjoin(ps);
  for (int i = 0; i < SC_CHANS; i++)
    cr_expect_eq(weft_chan_close(sc[i]), 0);
  long total = 0;
  for (int i = 0; i < 6; i++)
    total += (long)h_join(gr[i]);
  for (int i = 0; i < 2; i++)
    total += (long)h_pjoin(pr[i]);
  size_t left = 0;
  for (int i = 0; i < SC_CHANS; i++)
    left += weft_chan_len(sc[i]);
  cr_expect_eq(left, 0, "%zu messages left in closed channels", left);
  cr_expect_eq(total, SC_TOTAL, "received %ld of %d", total, SC_TOTAL);
  int lost = 0, dup = 0;
  for (int i = 0; i < SC_TOTAL; i++) {
    lost += sc_got[i] == 0;
    dup += sc_got[i] > 1;
  }
  cr_expect_eq(lost, 0, "%d messages lost", lost);
  cr_expect_eq(dup, 0, "%d messages received twice", dup);
  for (int i = 0; i < SC_CHANS; i++)
    cr_expect_eq(weft_chan_free(sc[i]), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(chan, select_conserves_messages) { select_conservation(); }
Test(chan_four_workers, select_conserves_messages) { select_conservation(); }

/* ------------------------------------------------------------------------ */
/* A buffered receiver takes batches from the producers on its worker       */
/* ------------------------------------------------------------------------ */

#define BATCH_N 2000
#define BATCH_CAP 64

static weft_chan *batch_ch;

static void *batch_sender(void *arg) {
  int v = (int)(intptr_t)arg;
  TCHECK_EQ(weft_chan_send(batch_ch, &v), 0);
  return NULL;
}

static void *batch_spawner(void *arg) {
  (void)arg;
  weft_gthread_attr attr = {.detached = true};
  for (int i = 0; i < BATCH_N; i++)
    TCHECK_EQ(weft_spawn(NULL, &attr, batch_sender, (void *)(intptr_t)i), 0);
  return NULL;
}

static void *batch_collector(void *arg) {
  long *sum = arg;
  for (int i = 0; i < BATCH_N; i++) {
    int v = -1;
    TCHECK_EQ(weft_chan_recv(batch_ch, &v), 0);
    *sum += v;
  }
  return NULL;
}

/* One worker: a spawner's children each send once to a collector.  The
 * collector, finding the buffer empty while the spawner is runnable, lets
 * it run rather than park, and then takes what the children buffered: it
 * is woken far less than once a message (about once a message if it
 * parked on every empty buffer). */
TestSuite(chan_one_worker, .init = h_start1, .fini = h_stop, .timeout = 60);

/* Debug builds randomise scheduling choices (WEFT_SEED), which is what
 * this counts: only the other builds can check it. */
Test(chan_one_worker, buffered_receiver_takes_batches, .disabled = WEFT_DEBUG) {
  cr_assert_eq(weft_chan_open(&batch_ch, sizeof(int), BATCH_CAP), 0);
  weft_worker_stats before, after;
  cr_assert_eq(weft_stats(&before, 1), 1);
  long sum = 0;
  weft_gthread c = h_spawn(batch_collector, &sum);
  weft_gthread s = h_spawn(batch_spawner, NULL);
  h_join(s);
  h_join(c);
  cr_assert_eq(weft_stats(&after, 1), 1);
  cr_expect_eq(sum, (long)BATCH_N * (BATCH_N - 1) / 2);
  uint64_t wakes = after.wakes - before.wakes;
  cr_expect_lt(wakes, BATCH_N / 10, "the collector was woken %llu times "
               "for %d messages", (unsigned long long)wakes, BATCH_N);
  cr_expect_eq(weft_chan_len(batch_ch), 0);
  cr_expect_eq(weft_chan_free(batch_ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}
