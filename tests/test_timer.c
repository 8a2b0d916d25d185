/*
 * test_timer.c - sleeping, deadlines and timeouts.
 *
 * Invariants checked (orderings and "never early", not durations):
 *  - many green threads sleeping for shuffled times wake in sorted order,
 *    and no sleeper ever wakes before its deadline;
 *  - sleeping until a deadline that has passed returns at once (thousands
 *    of such calls fit in the test's timeout);
 *  - weft_deadline() saturates instead of overflowing;
 *  - a recv_until racing with a send right at its deadline either gets the
 *    message or times out, and the message is then received exactly once
 *    (never lost, never duplicated); a timer that was cancelled by an
 *    earlier wake never wakes its thread later;
 *  - timed receives mixed with channel traffic lose and duplicate nothing;
 *  - pthreads sleep too, and never wake early either;
 *  - on one worker, sleepers whose deadlines pass together (more than a run
 *    queue holds) wake in deadline order, equal deadlines in arming order;
 *  - the due timers of a worker that is busy and never switches are run by
 *    the idle worker, which wakes for them, in deadline order;
 *  - a thread's timer left armed by a wait that ended early neither ends
 *    a later wait before its deadline nor lets an earlier one run past
 *    it, keeps equal deadlines in arming order, and is gone with the
 *    thread.
 */
#include "helpers.h"

TestSuite(timer, .init = h_start2, .fini = h_stop, .timeout = 60);

/* ------------------------------------------------------------------------ */
/* Deadlines and the clock                                                  */
/* ------------------------------------------------------------------------ */

Test(timer, deadline_saturates) {
  int64_t before = weft_now();
  cr_expect_gt(before, 0);
  cr_expect_eq(weft_deadline(WEFT_FOREVER), WEFT_FOREVER);
  cr_expect_eq(weft_deadline(INT64_MAX - 1), INT64_MAX);
  cr_expect_eq(weft_deadline(INT64_MAX - before / 2), INT64_MAX);
  int64_t d = weft_deadline(INT64_MIN);
  cr_expect_leq(d, before, "weft_deadline(INT64_MIN) = %lld",
                (long long)d);
  cr_expect_leq(weft_deadline(0), weft_now());
  cr_expect_leq(weft_deadline(-5), weft_now());
  int64_t a = weft_now();
  int64_t dl = weft_deadline(1000000000);
  int64_t b = weft_now();
  cr_expect(dl >= a + 1000000000 && dl <= b + 1000000000,
            "weft_deadline(1 s) = %lld outside [%lld, %lld]", (long long)dl,
            (long long)(a + 1000000000), (long long)(b + 1000000000));
}

static void *monotonic(void *arg) {
  (void)arg;
  int64_t last = weft_now();
  for (int i = 0; i < 100000; i++) {
    int64_t now = weft_now();
    TCHECK(now >= last);
    last = now;
    if (i % 1000 == 0)
      weft_yield(); /* maybe onto another worker */
  }
  return NULL;
}

Test(timer, now_never_goes_back) {
  weft_gthread g[4];
  for (int i = 0; i < 4; i++)
    g[i] = h_spawn(monotonic, NULL);
  monotonic(NULL);
  for (int i = 0; i < 4; i++)
    h_join(g[i]);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Sleep ordering                                                           */
/* ------------------------------------------------------------------------ */

#define SLEEPERS 12
/* Deadlines this far apart: an order is an invariant only while no sleeper
 * is kept off the CPU (by the machine, after its wake) longer than this.
 * With another test program hogging both CPUs, 15 ms has been seen. */
#define SPACING MS(40)

static atomic_int wake_pos;
static int wake_log[SLEEPERS];

struct sleeper {
  int k;
  int64_t deadline, woke;
};

static void *sleep_k(void *arg) {
  struct sleeper *s = arg;
  /* k * SPACING, measured from a common start */
  TCHECK_EQ(weft_sleep_until(s->deadline), 0);
  s->woke = weft_now();
  wake_log[atomic_fetch_add(&wake_pos, 1)] = s->k;
  return NULL;
}

Test(timer, sleepers_wake_in_deadline_order) {
  struct sleeper s[SLEEPERS];
  weft_gthread t[SLEEPERS];
  int order[SLEEPERS];
  uint64_t rng = 12345;
  for (int i = 0; i < SLEEPERS; i++)
    order[i] = i + 1;
  for (int i = SLEEPERS - 1; i > 0; i--) { /* shuffle */
    int j = (int)(h_rand(&rng) % (uint64_t)(i + 1));
    int x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  int64_t start = weft_now() + MS(20);
  for (int i = 0; i < SLEEPERS; i++) {
    s[i] = (struct sleeper){.k = order[i],
                            .deadline = start + SPACING * order[i]};
    t[i] = h_spawn(sleep_k, &s[i]);
  }
  for (int i = 0; i < SLEEPERS; i++)
    h_join(t[i]);
  char late[SLEEPERS * 24] = "", *p = late;
  for (int i = 0; i < SLEEPERS; i++)
    p += sprintf(p, " %d:+%lldus", s[i].k,
                 (long long)(s[i].woke - s[i].deadline) / 1000);
  for (int i = 0; i < SLEEPERS; i++) {
    cr_expect_eq(wake_log[i], i + 1,
                 "position %d: sleeper %d woke (lateness per sleeper:%s)", i,
                 wake_log[i], late);
    cr_expect_geq(s[i].woke, s[i].deadline, "sleeper %d woke early",
                  s[i].k);
  }
  EXPECT_NO_THREAD_FAILURES();
}

/* Many sleepers at once: everyone wakes, nobody early. */
#define CROWD 1000

static void *sleep_random(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg;
  for (int r = 0; r < 3; r++) {
    int64_t ns = (int64_t)(h_rand(&rng) % 20000000); /* < 20 ms */
    int64_t dl = weft_now() + ns;
    TCHECK_EQ(weft_sleep(ns), 0);
    TCHECK(weft_now() >= dl);
  }
  return NULL;
}

Test(timer, crowd_of_sleepers) {
  weft_gthread *t = calloc(CROWD, sizeof *t);
  cr_assert_not_null(t);
  for (uintptr_t i = 0; i < CROWD; i++)
    t[i] = h_spawn(sleep_random, (void *)(i * 2654435761u + 1));
  for (int i = 0; i < CROWD; i++)
    h_join(t[i]);
  free(t);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Deadlines in the past                                                    */
/* ------------------------------------------------------------------------ */

#define PAST_CALLS 3000

/* If any of these slept even a millisecond, 3 x 5 x 3000 calls would not fit
 * in the timeout. */
static void *past_deadlines(void *arg) {
  (void)arg;
  for (int i = 0; i < PAST_CALLS; i++) {
    TCHECK_EQ(weft_sleep_until(weft_now() - 1000000000), 0);
    TCHECK_EQ(weft_sleep_until(0), 0);
    TCHECK_EQ(weft_sleep_until(INT64_MIN), 0);
    TCHECK_EQ(weft_sleep(0), 0);
    TCHECK_EQ(weft_sleep(-1), 0);
  }
  return NULL;
}

Test(timer, past_deadline_returns_promptly, .timeout = 12) {
  h_join(h_spawn(past_deadlines, NULL));
  h_pjoin(h_pthread(past_deadlines, NULL));
  past_deadlines(NULL);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* A receive racing its own deadline                                        */
/* ------------------------------------------------------------------------ */

struct race {
  weft_chan *ch;
  int64_t deadline; /* the receiver's */
  int64_t send_at;
  int value;
  int recv_rc, send_rc, got;
};

static void *race_recv(void *arg) {
  struct race *r = arg;
  r->got = -1;
  r->recv_rc = weft_chan_recv_until(r->ch, &r->got, r->deadline);
  return NULL;
}

static void *race_send(void *arg) {
  struct race *r = arg;
  weft_sleep_until(r->send_at);
  r->send_rc = weft_chan_send_until(r->ch, &r->value, WEFT_NOWAIT);
  return NULL;
}

static void recv_send_race(size_t cap) {
  int outcomes[2] = {0, 0}; /* timed out, received */
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), cap), 0);
  for (int trial = 0; trial < 40; trial++) {
    int64_t t0 = weft_now();
    /* The send lands from 1 ms before to 1 ms after the deadline. */
    struct race r = {.ch = ch,
                     .deadline = t0 + MS(5),
                     .send_at = t0 + MS(4) + trial * 50000,
                     .value = 1000 + trial};
    weft_gthread rt = h_spawn(race_recv, &r);
    weft_gthread st = h_spawn(race_send, &r);
    h_join(rt);
    h_join(st);
    cr_assert(r.recv_rc == 0 || r.recv_rc == -ETIMEDOUT,
              "trial %d: recv_until: %s", trial, weft_strerror(r.recv_rc));
    int later = -1, drained = weft_chan_recv_until(ch, &later, WEFT_NOWAIT);
    if (cap == 0) {
      cr_assert(r.send_rc == 0 || r.send_rc == -EAGAIN,
                "trial %d: send: %s", trial, weft_strerror(r.send_rc));
      /* Unbuffered: the send succeeded exactly when the receiver got it. */
      cr_expect_eq(r.recv_rc == 0, r.send_rc == 0,
                   "trial %d: recv %s but send %s", trial,
                   weft_strerror(r.recv_rc), weft_strerror(r.send_rc));
    } else {
      cr_assert_eq(r.send_rc, 0, "trial %d: buffered send: %s", trial,
                   weft_strerror(r.send_rc));
      /* Buffered: the message went to the receiver or stayed buffered. */
      cr_expect_eq(r.recv_rc == 0, drained == -EAGAIN,
                   "trial %d: recv %s, then the buffer gave %s", trial,
                   weft_strerror(r.recv_rc), weft_strerror(drained));
      if (drained == 0)
        cr_expect_eq(later, r.value);
    }
    if (cap == 0)
      cr_expect_eq(drained, -EAGAIN);
    if (r.recv_rc == 0)
      cr_expect_eq(r.got, r.value, "trial %d: received %d", trial, r.got);
    outcomes[r.recv_rc == 0]++;
  }
  cr_expect_eq(weft_chan_free(ch), 0);
  cr_log_info("cap %zu: %d timed out, %d received", cap, outcomes[0],
              outcomes[1]);
}

Test(timer, recv_until_races_send_unbuffered) { recv_send_race(0); }
Test(timer, recv_until_races_send_buffered) { recv_send_race(1); }

/* A wake by a message cancels the timer: it must not fire later. */
static void *stale_timer(void *arg) {
  weft_chan *ch = arg;
  int v;
  for (int i = 0; i < 20; i++) {
    /* Woken early by a message, long before this deadline. */
    TCHECK_EQ(weft_chan_recv_until(ch, &v, weft_deadline(MS(30))), 0);
    int64_t start = weft_now();
    TCHECK_EQ(weft_sleep(MS(40)), 0);
    TCHECK(weft_now() >= start + MS(40));
  }
  return NULL;
}

Test(timer, cancelled_timer_does_not_fire_later) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread t = h_spawn(stale_timer, ch);
  for (int i = 0; i < 20; i++) {
    int v = i;
    cr_assert_eq(weft_chan_send(ch, &v), 0);
  }
  h_join(t);
  cr_expect_eq(weft_chan_free(ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Timed receives mixed with traffic                                        */
/* ------------------------------------------------------------------------ */

#define MIX_MSGS 2000
#define MIX_RECEIVERS 16

static weft_chan *mix_ch;
static atomic_uchar mix_got[MIX_MSGS];
static atomic_long mix_timeouts;

static void *timed_receiver(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg + 99;
  long n = 0;
  for (;;) {
    int v = -1;
    int64_t dl = weft_deadline((int64_t)(h_rand(&rng) % 2000000)); /* <2ms */
    int rc = weft_chan_recv_until(mix_ch, &v, dl);
    if (rc == -EPIPE)
      break;
    if (rc == -ETIMEDOUT) {
      TCHECK(weft_now() >= dl);
      atomic_fetch_add(&mix_timeouts, 1);
      continue;
    }
    TCHECK_EQ(rc, 0);
    TCHECK(v >= 0 && v < MIX_MSGS);
    if (v >= 0 && v < MIX_MSGS)
      atomic_fetch_add(&mix_got[v], 1);
    n++;
  }
  return (void *)n;
}

static void *paced_sender(void *arg) {
  int lo = (int)(intptr_t)arg;
  for (int v = lo; v < lo + MIX_MSGS / 2; v++) {
    TCHECK_EQ(weft_chan_send(mix_ch, &v), 0);
    if (v % 50 == 0)
      weft_sleep(MS(3)); /* let some receivers time out */
  }
  return NULL;
}

static void timed_mix(size_t cap) {
  cr_assert_eq(weft_chan_open(&mix_ch, sizeof(int), cap), 0);
  weft_gthread r[MIX_RECEIVERS];
  for (uintptr_t i = 0; i < MIX_RECEIVERS; i++)
    r[i] = h_spawn(timed_receiver, (void *)i);
  weft_gthread s = h_spawn(paced_sender, (void *)0);
  pthread_t p = h_pthread(paced_sender, (void *)(intptr_t)(MIX_MSGS / 2));
  h_join(s);
  h_pjoin(p);
  cr_expect_eq(weft_chan_close(mix_ch), 0);
  long total = 0;
  for (int i = 0; i < MIX_RECEIVERS; i++)
    total += (long)h_join(r[i]);
  cr_expect_eq(total, MIX_MSGS);
  int lost = 0, dup = 0;
  for (int i = 0; i < MIX_MSGS; i++) {
    lost += mix_got[i] == 0;
    dup += mix_got[i] > 1;
  }
  cr_expect_eq(lost, 0, "%d messages lost", lost);
  cr_expect_eq(dup, 0, "%d messages received twice", dup);
  cr_log_info("cap %zu: %ld timeouts", cap, atomic_load(&mix_timeouts));
  cr_expect_eq(weft_chan_free(mix_ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(timer, timed_receives_with_traffic_unbuffered) { timed_mix(0); }
Test(timer, timed_receives_with_traffic_buffered) { timed_mix(4); }

/* ------------------------------------------------------------------------ */
/* Sleeping from pthreads                                                   */
/* ------------------------------------------------------------------------ */

static void *pthread_sleeper(void *arg) {
  (void)arg;
  TCHECK(!weft_in_gthread());
  for (int i = 0; i < 5; i++) {
    int64_t dl = weft_now() + MS(5);
    TCHECK_EQ(weft_sleep(MS(5)), 0);
    TCHECK(weft_now() >= dl);
    dl = weft_deadline(MS(3));
    TCHECK_EQ(weft_sleep_until(dl), 0);
    TCHECK(weft_now() >= dl);
  }
  return NULL;
}

Test(timer, pthreads_sleep_too) {
  pthread_t p[4];
  weft_gthread g[4];
  for (int i = 0; i < 4; i++)
    p[i] = h_pthread(pthread_sleeper, NULL);
  for (uintptr_t i = 0; i < 4; i++)
    g[i] = h_spawn(sleep_random, (void *)(i + 5));
  pthread_sleeper(NULL); /* and the test's own thread */
  for (int i = 0; i < 4; i++)
    h_pjoin(p[i]);
  for (int i = 0; i < 4; i++)
    h_join(g[i]);
  EXPECT_NO_THREAD_FAILURES();
}

/* Sleeping works without the runtime, from an ordinary thread. */
Test(timer_norun, sleep_without_runtime, .timeout = 10) {
  cr_expect_not(weft_running());
  int64_t dl = weft_deadline(MS(5));
  cr_expect_eq(weft_sleep_until(dl), 0);
  cr_expect_geq(weft_now(), dl);
  cr_expect_eq(weft_sleep(MS(1)), 0);
  cr_expect_eq(weft_sleep_until(0), 0);
}

/* ------------------------------------------------------------------------ */
/* Timers that expire together                                              */
/* ------------------------------------------------------------------------ */

/* Sleepers whose deadlines pass together are woken as a batch, more of them
 * than a run queue holds.  On one worker they must still run in deadline
 * order, equal deadlines in the order they were armed.  Orders only, no
 * durations: every sleeper parks before the first deadline (a run where one
 * did not is repeated with more time), so the order in which they run is
 * the runtime's alone. */

struct osleeper {
  int64_t deadline;
  int64_t pre;    /* if not 0: the deadline of an earlier wait, ended early */
  int ticket;     /* order of arming */
  int heap;       /* worker it parked on, whose heap holds its timer */
  int64_t called; /* just before weft_sleep_until */
};

static struct osleeper *os;
static int *os_log; /* indices into os, in the order they ran after waking */
static atomic_int os_pos, os_ticket;

static void *ord_send(void *arg) {
  int v = 1;
  weft_yield(); /* the sleeper parks first, whichever of us runs first */
  TCHECK_EQ(weft_chan_send(arg, &v), 0);
  return NULL;
}

/* Receives on ch until deadline, and, if that passed first (a machine slow
 * enough, or a sanitizer), without one: the message comes all the same. */
static int recv_early(weft_chan *ch, int *v, int64_t deadline) {
  int rc = weft_chan_recv_until(ch, v, deadline);
  return rc == -ETIMEDOUT ? weft_chan_recv(ch, v) : rc;
}

/* A wait until s->pre, ended at once by a message: it leaves the thread's
 * timer armed at s->pre (wait.c, "Deadlines"). */
static void ord_prewait(struct osleeper *s) {
  weft_chan *ch;
  int v;
  TCHECK_EQ(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread t = h_spawn(ord_send, ch);
  TCHECK_EQ(recv_early(ch, &v, s->pre), 0);
  h_join(t);
  TCHECK_EQ(weft_chan_free(ch), 0);
}

static void *ord_sleep(void *arg) {
  struct osleeper *s = arg;
  if (s->pre)
    ord_prewait(s);
  /* Read by the busy driver, maybe from another worker. */
  __atomic_store_n(&s->heap, weft_worker_index(), __ATOMIC_RELAXED);
  /* No switch between the ticket and the park: tickets are arming order
   * on this worker. */
  s->ticket = atomic_fetch_add(&os_ticket, 1);
  s->called = weft_now();
  TCHECK_EQ(weft_sleep_until(s->deadline), 0);
  os_log[atomic_fetch_add(&os_pos, 1)] = (int)(s - os);
  return NULL;
}

/* Whether sleeper a must run before sleeper b. */
static bool ord_before(int a, int b) {
  return os[a].deadline < os[b].deadline ||
         (os[a].deadline == os[b].deadline && os[a].ticket < os[b].ticket);
}

/* Pairs in os_log that ran in the wrong order, counting only sleepers for
 * which keep() is true (NULL: all).  *first gets the first such pair. */
static long ord_inversions(int n, bool (*keep)(int), int first[2]) {
  long inv = 0;
  for (int p = 0; p < n; p++) {
    if (keep && !keep(os_log[p]))
      continue;
    for (int q = p + 1; q < n; q++) {
      if (keep && !keep(os_log[q]))
        continue;
      if (ord_before(os_log[q], os_log[p]) && inv++ == 0) {
        first[0] = os_log[p];
        first[1] = os_log[q];
      }
    }
  }
  return inv;
}

static void ord_setup(int n) {
  free(os);
  free(os_log);
  os = calloc((size_t)n, sizeof *os);
  os_log = calloc((size_t)n, sizeof *os_log);
  cr_assert(os && os_log);
  atomic_store(&os_pos, 0);
  atomic_store(&os_ticket, 0);
}

/* Whether every sleeper armed its timer before the first deadline. */
static bool ord_all_parked(int n, int64_t base) {
  for (int i = 0; i < n; i++)
    if (os[i].called >= base)
      return false;
  return true;
}

/* Spawns n sleepers from the test thread, sleeper i sleeping until a base
 * time plus off[i], and joins them.  Returns false if one of them called
 * weft_sleep_until too late for the run to tell anything.  With pre, each
 * sleeper first ends a wait early whose deadline comes before base, the
 * later the earlier the sleeper was spawned. */
static bool ord_run(int n, const int64_t *off, int64_t margin, bool pre) {
  ord_setup(n);
  weft_gthread *t = calloc((size_t)n, sizeof *t);
  cr_assert_not_null(t);
  int64_t base = weft_now() + margin;
  for (int i = 0; i < n; i++) {
    os[i].deadline = base + off[i];
    if (pre)
      os[i].pre = base - margin / 4 - i * (margin / 4 / n);
    t[i] = h_spawn(ord_sleep, &os[i]);
  }
  for (int i = 0; i < n; i++)
    h_join(t[i]);
  free(t);
  cr_assert_eq(atomic_load(&os_pos), n);
  return ord_all_parked(n, base);
}

static void ord_check_pre(int n, const int64_t *off, bool pre) {
  int64_t margin = MS(20) + (int64_t)n * 20000;
  bool ok = false;
  for (int tries = 0; tries < 4 && !(ok = ord_run(n, off, margin, pre));
       tries++)
    margin *= 4; /* a loaded machine: give the spawns more time */
  cr_assert(ok, "sleepers kept arming after the first deadline");
  int first[2] = {-1, -1};
  long inv = ord_inversions(n, NULL, first);
  cr_expect_eq(inv, 0,
               "%ld of %d sleepers' pairs woke out of order; the first ran "
               "was sleeper %d (deadline +%lld ns, armed %d); e.g. +%lld ns "
               "(armed %d) ran before +%lld ns (armed %d)",
               inv, n, os_log[0], (long long)off[os_log[0]],
               os[os_log[0]].ticket, inv ? (long long)off[first[0]] : 0LL,
               inv ? os[first[0]].ticket : -1,
               inv ? (long long)off[first[1]] : 0LL,
               inv ? os[first[1]].ticket : -1);
  EXPECT_NO_THREAD_FAILURES();
}

static void ord_check(int n, const int64_t *off) { ord_check_pre(n, off, false); }

/* Distinct deadlines 1 ns apart, armed in shuffled order. */
static void distinct_deadlines(int n) {
  int64_t *off = calloc((size_t)n, sizeof *off);
  cr_assert_not_null(off);
  uint64_t rng = 777;
  for (int i = 0; i < n; i++)
    off[i] = i;
  for (int i = n - 1; i > 0; i--) {
    int j = (int)(h_rand(&rng) % (uint64_t)(i + 1));
    int64_t x = off[i];
    off[i] = off[j];
    off[j] = x;
  }
  ord_check(n, off);
  free(off);
}

TestSuite(timer_one_worker, .init = h_start1, .fini = h_stop, .timeout = 60);

Test(timer_one_worker, batch_wakes_in_deadline_order) { distinct_deadlines(1000); }
Test(timer_one_worker, big_batch_wakes_in_deadline_order) { distinct_deadlines(5000); }

/* Equal deadlines: fewer than a run queue holds, so only the tie-break
 * decides. */
Test(timer_one_worker, equal_deadlines_wake_in_arming_order) {
  int64_t off[200] = {0};
  ord_check(200, off);
}

/* The same, where each sleeper's timer was left armed by an earlier wait
 * that a message ended, at a key that comes due before the sleep's: the
 * keys come due in the reverse of the sleeps' arming order, and the timers
 * go back in at the sleeps' deadline in the sleeps' order. */
Test(timer_one_worker, equal_deadlines_after_early_wakes_wake_in_arming_order) {
  int64_t off[200] = {0};
  ord_check_pre(200, off, true);
}

/* A few distinct deadlines, each shared by many sleepers. */
Test(timer_one_worker, ties_within_a_big_batch_wake_in_arming_order) {
  enum { N = 1000 };
  static int64_t off[N];
  uint64_t rng = 4242;
  for (int i = 0; i < N; i++)
    off[i] = (int64_t)(h_rand(&rng) % 10) * 1000;
  ord_check(N, off);
}

/* A busy worker's expired timers.  A green thread on worker A spawns the
 * sleepers (each runs at once on A and parks there, so A's heap holds
 * their timers), then computes without ever switching, in a
 * non-preemptible region, until all of them have run.  A runs timers only when it picks, so the other worker, idle,
 * must run A's timers: it has to wake up for A's deadlines, not only for
 * its own, and the sleepers of A's heap then run on it in deadline order
 * (A, busy, cannot steal any of them back).  Deterministic: the sleepers
 * of A's heap can only run by being taken from A's heap by the other
 * worker.  GUARD only keeps a failure from hanging. */
#define BUSY_N 1000
#define BUSY_SPACING 20000 /* ns */
#define BUSY_GUARD MS(3000)

static int busy_heap; /* worker of the busy thread */

static bool on_busy_heap(int i) {
  return __atomic_load_n(&os[i].heap, __ATOMIC_RELAXED) == busy_heap;
}

struct busy_run {
  int64_t margin;
  bool parked_in_time;
  int woke_while_busy; /* sleepers of the busy heap */
  int on_heap;
  int moved;           /* the busy thread was not where it started */
  int64_t base;
};

static void *busy_driver(void *arg) {
  struct busy_run *r = arg;
  weft_gthread t[BUSY_N];
  uint64_t rng = 99;
  int perm[BUSY_N];
  for (int i = 0; i < BUSY_N; i++)
    perm[i] = i;
  for (int i = BUSY_N - 1; i > 0; i--) {
    int j = (int)(h_rand(&rng) % (uint64_t)(i + 1));
    int x = perm[i];
    perm[i] = perm[j];
    perm[j] = x;
  }
  int64_t base = r->base = weft_now() + r->margin;
  for (int i = 0; i < BUSY_N; i++) {
    os[i].deadline = base + (int64_t)perm[i] * BUSY_SPACING;
    TCHECK_EQ(weft_spawn(&t[i], NULL, ord_sleep, &os[i]), 0);
  }
  /* From here on, no switch: this worker runs nothing else.  Not even by
   * preemption, which would let the worker run its own timers (and the
   * sleepers they wake, beside those the other worker wakes). */
  TCHECK_EQ(weft_preempt_disable(), 1);
  busy_heap = weft_worker_index();
  r->on_heap = 0;
  for (int i = 0; i < BUSY_N; i++)
    r->on_heap += on_busy_heap(i);
  int64_t guard = base + BUSY_N * BUSY_SPACING + BUSY_GUARD;
  while (atomic_load(&os_pos) < BUSY_N && weft_now() < guard)
    ;
  r->moved = weft_worker_index() != busy_heap;
  int ran = atomic_load(&os_pos);
  TCHECK_EQ(weft_preempt_enable(), 0);
  for (int i = 0; i < BUSY_N; i++)
    TCHECK_EQ(weft_join(t[i], NULL), 0);
  /* After the joins: a sleeper takes its place in the log before it
   * writes it. */
  r->woke_while_busy = 0;
  for (int p = 0; p < ran; p++)
    r->woke_while_busy += on_busy_heap(os_log[p]);
  r->parked_in_time = ord_all_parked(BUSY_N, base);
  return NULL;
}

static void start2_quiet(void) {
  /* The busy thread is a hog on purpose: no reports. */
  weft_config cfg = {.workers = 2, .hog_ms = -1};
  cr_assert_eq(weft_init(&cfg), 0);
}

TestSuite(timer_two_busy_workers, .init = start2_quiet, .fini = h_stop, .timeout = 60);

/* Debug builds randomise where spawned and woken threads go (WEFT_SEED),
 * which is what this counts on: only the other builds can check it. */
Test(timer_two_busy_workers, idle_worker_runs_a_busy_workers_timers_in_order,
     .disabled = WEFT_DEBUG) {
  struct busy_run r = {.margin = MS(50)};
  for (int tries = 0; tries < 4; tries++, r.margin *= 4) {
    ord_setup(BUSY_N);
    h_join(h_spawn(busy_driver, &r));
    if (r.parked_in_time)
      break;
  }
  cr_assert(r.parked_in_time, "sleepers kept arming after the first deadline");
  cr_assert_eq(r.moved, 0);
  /* The busy thread stays put while its children park (the other worker
   * sleeps), so nearly all of them are on its heap. */
  cr_assert_gt(r.on_heap, BUSY_N / 2, "only %d sleepers parked on worker %d",
               r.on_heap, busy_heap);
  cr_expect_eq(r.woke_while_busy, r.on_heap,
               "%d of the %d sleepers whose timers were on busy worker %d "
               "ran while it was busy",
               r.woke_while_busy, r.on_heap, busy_heap);
  int first[2] = {-1, -1};
  long inv = ord_inversions(BUSY_N, on_busy_heap, first);
  cr_expect_eq(inv, 0,
               "%ld pairs of the busy worker's sleepers ran out of order "
               "(e.g. deadline +%lld us before +%lld us)",
               inv, inv ? (long long)(os[first[0]].deadline - r.base) / 1000 : 0LL,
               inv ? (long long)(os[first[1]].deadline - r.base) / 1000 : 0LL);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Short waits with deadlines on 2 workers                                  */
/* ------------------------------------------------------------------------ */

/*
 * Many short waits with deadlines, on 2 workers, so that an idle worker
 * runs the due timers of the other (steal_timers) while that one is still
 * parking the thread: the timer is armed in the park's post action, and
 * from then on the thread may be woken and gone, frame and all.  Each
 * sleep must last until its deadline and return 0, and each wait on a
 * semaphore nobody posts must time out, not end early; a post action that
 * touched the frame after the wake made a later wait of the same thread
 * end at once, or crashed.
 */
static void *short_waiter(void *arg) {
  long early = 0, bad = 0;
  weft_sem never;
  weft_sem_init(&never, 0);
  for (int i = 0; i < 400; i++) {
    int64_t dl = weft_now() + 20000 + (int64_t)(i % 7) * 10000;
    if (weft_sleep_until(dl) != 0)
      bad++;
    if (weft_now() < dl)
      early++;
    if (i % 4 == 0) {
      dl = weft_now() + 30000;
      if (weft_sem_wait_until(&never, dl) != -ETIMEDOUT)
        bad++;
      if (weft_now() < dl)
        early++;
    }
  }
  (void)arg;
  return (void *)(intptr_t)(early * 1000 + bad);
}

Test(timer, short_waits_end_at_their_deadlines) {
  enum { N = 8 };
  weft_gthread t[N];
  for (int i = 0; i < N; i++)
    t[i] = h_spawn(short_waiter, NULL);
  long total = 0;
  for (int i = 0; i < N; i++)
    total += (long)(intptr_t)h_join(t[i]);
  cr_expect_eq(total, 0, "%ld waits ended early, %ld returned a wrong result",
               total / 1000, total % 1000);
}

/* ------------------------------------------------------------------------ */
/* One timer per thread, left armed from one wait to the next               */
/* ------------------------------------------------------------------------ */

/* A wait with a deadline that a message ends early leaves the thread's
 * timer armed at that deadline (wait.c, "Deadlines").  The next wait's
 * deadline is what counts, later or earlier, on whichever worker. */

#define LATER_ROUNDS 5

/* Each round: a wait until +40 ms that a message ends after 5 ms (the
 * waiter has parked by then, or the round shows nothing), then a wait
 * until +2 s whose message comes 100 ms later, long after the first
 * deadline passed: it must get that message. */
static void *later_waiter(void *arg) {
  weft_chan *ch = arg;
  for (int i = 0; i < LATER_ROUNDS; i++) {
    int v;
    TCHECK_EQ(recv_early(ch, &v, weft_deadline(MS(40))), 0);
    int64_t start = weft_now();
    int rc = weft_chan_recv_until(ch, &v, weft_deadline(MS(2000)));
    TCHECK_EQ(rc, 0);
    TCHECK(weft_now() - start >= MS(50)); /* the second message's */
    weft_yield(); /* maybe onto the other worker */
  }
  return NULL;
}

Test(timer, later_deadline_after_an_early_wake_is_kept) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread t = h_spawn(later_waiter, ch);
  for (int i = 0; i < LATER_ROUNDS; i++) {
    int v = i;
    weft_sleep(MS(5));
    cr_assert_eq(weft_chan_send(ch, &v), 0);
    weft_sleep(MS(100));
    cr_assert_eq(weft_chan_send_until(ch, &v, weft_deadline(MS(5000))), 0,
                 "round %d: the wait until +2 s had ended", i);
  }
  h_join(t);
  cr_expect_eq(weft_chan_free(ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* Each round: a wait until +30 s that a message ends at once, then a wait
 * until +30 ms that nothing ends: it must time out then, not at +30 s
 * (the test's timeout would end it first).  The sender waits for the
 * round's end (back) before it sends the next round's message. */
static weft_chan *earlier_back;

static void *earlier_waiter(void *arg) {
  weft_chan *ch = arg;
  long late = 0;
  for (int i = 0; i < LATER_ROUNDS; i++) {
    int v;
    TCHECK_EQ(weft_chan_recv_until(ch, &v, weft_deadline(MS(30000))), 0);
    int64_t dl = weft_deadline(MS(30));
    TCHECK_EQ(weft_chan_recv_until(ch, &v, dl), -ETIMEDOUT);
    TCHECK(weft_now() >= dl);
    late += weft_now() - dl > MS(2000);
    TCHECK_EQ(weft_chan_send(earlier_back, &v), 0);
    weft_yield();
  }
  return (void *)late;
}

Test(timer, earlier_deadline_after_an_early_wake_ends_the_wait) {
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  cr_assert_eq(weft_chan_open(&earlier_back, sizeof(int), 0), 0);
  weft_gthread t = h_spawn(earlier_waiter, ch);
  for (int i = 0; i < LATER_ROUNDS; i++) {
    int v = i;
    weft_sleep(MS(5)); /* the waiter parks */
    cr_assert_eq(weft_chan_send(ch, &v), 0);
    cr_assert_eq(weft_chan_recv_until(earlier_back, &v,
                                      weft_deadline(MS(5000))),
                 0, "round %d: the wait until +30 ms still runs after 5 s",
                 i);
  }
  cr_expect_eq((long)h_join(t), 0, "waits ended seconds after their deadline");
  cr_expect_eq(weft_chan_free(ch), 0);
  cr_expect_eq(weft_chan_free(earlier_back), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* Threads that exit with their timer armed (a wait until +60 ms that a
 * message ended), more of them than the workers keep stacks for: their
 * descriptors are unmapped or reused while the old deadlines pass, and
 * nothing may fire into them, nor end the sleeps of the threads that
 * reuse them. */
static void *armed_exit(void *arg) {
  weft_chan *ch = arg;
  int v;
  TCHECK_EQ(recv_early(ch, &v, weft_deadline(MS(60))), 0);
  return NULL;
}

static void *reuser(void *arg) {
  (void)arg;
  /* On a reused descriptor: a sleep the old timer must not end early. */
  int64_t dl = weft_deadline(MS(100));
  TCHECK_EQ(weft_sleep_until(dl), 0);
  TCHECK(weft_now() >= dl);
  return NULL;
}

Test(timer, exit_with_an_armed_timer) {
  enum { N = 600 };
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread *t = calloc(N, sizeof *t);
  cr_assert_not_null(t);
  for (int i = 0; i < N; i++)
    t[i] = h_spawn(armed_exit, ch);
  weft_sleep(MS(10)); /* they park */
  for (int i = 0; i < N; i++) {
    int v = i;
    cr_assert_eq(weft_chan_send(ch, &v), 0);
  }
  for (int i = 0; i < N; i++)
    h_join(t[i]);
  for (int i = 0; i < N; i++)
    t[i] = h_spawn(reuser, NULL);
  for (int i = 0; i < N; i++)
    h_join(t[i]);
  free(t);
  cr_expect_eq(weft_chan_free(ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}
