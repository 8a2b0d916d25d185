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
 *  - pthreads sleep too, and never wake early either.
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
