/*
 * test_gthread.c - green threads: spawn, join, detach, exit, identity,
 * yielding, sleeping, misuse and the runtime's lifecycle.
 *
 * Invariants checked:
 *  - 100,000 green threads spawned in batches (from the main kernel thread
 *    and from a green thread at the same time) each run once, and join hands
 *    back exactly what each computed;
 *  - detached threads run to completion; weft_exit() ends a thread with its
 *    result and never returns;
 *  - ids are unique, start at 1 and increase; self/id/name agree with the
 *    handle; names are copied and truncated;
 *  - a thread that keeps yielding cannot starve another runnable thread,
 *    and yielding threads all make progress;
 *  - sleepers wake in deadline order and never early;
 *  - misuse is refused with the documented error codes;
 *  - shutdown with live green threads (parked, sleeping, yielding) returns
 *    and the process exits cleanly; the runtime can be started again.
 */
#include "helpers.h"

static uint64_t mix(uint64_t x) {
  x ^= x >> 31;
  x *= 0x7FB5D329728EA185ull;
  x ^= x >> 27;
  x *= 0x81DADEF4BC2DD44Dull;
  x ^= x >> 33;
  return x;
}

static void *compute(void *arg) {
  volatile char touch[512]; /* use a little of the stack */
  uint64_t i = (uint64_t)(uintptr_t)arg;
  touch[i % sizeof touch] = (char)i;
  return (void *)(uintptr_t)(mix(i) + (uint64_t)touch[i % sizeof touch] -
                             (uint64_t)(char)i);
}

static void *nothing(void *arg) { return arg; }

TestSuite(gthread, .init = h_start2, .fini = h_stop, .timeout = 30);

/* ------------------------------------------------------------------------ */
/* Spawn and join                                                           */
/* ------------------------------------------------------------------------ */

#define MANY 50000
#define BATCH 500

/* Spawns [first, first + MANY) in batches; returns the number of results
 * that were wrong.  Works from any thread. */
static long spawn_join_batches(uint64_t first) {
  weft_gthread batch[BATCH];
  long bad = 0;
  for (uint64_t base = first; base < first + MANY; base += BATCH) {
    for (int i = 0; i < BATCH; i++) {
      int rc = weft_spawn(&batch[i], NULL, compute,
                          (void *)(uintptr_t)(base + (uint64_t)i));
      TCHECK_EQ(rc, 0);
      if (rc)
        return bad + 1;
    }
    for (int i = 0; i < BATCH; i++) {
      void *res = NULL;
      int rc = weft_join(batch[i], &res);
      TCHECK_EQ(rc, 0);
      bad += rc != 0 || (uint64_t)(uintptr_t)res != mix(base + (uint64_t)i);
    }
  }
  return bad;
}

static void *spawner(void *arg) {
  return (void *)(uintptr_t)spawn_join_batches((uint64_t)(uintptr_t)arg);
}

Test(gthread, spawn_join_100k, .timeout = 120) {
  weft_gthread g = h_spawn(spawner, (void *)(uintptr_t)MANY);
  long bad_main = spawn_join_batches(0);
  long bad_green = (long)(uintptr_t)h_join(g);
  cr_expect_eq(bad_main, 0, "%ld wrong results joined from main", bad_main);
  cr_expect_eq(bad_green, 0, "%ld wrong results joined from a green thread",
               bad_green);
  EXPECT_NO_THREAD_FAILURES();
}

/* A green thread that spawns and then waits on its children. */
static void *tree(void *arg) {
  uintptr_t depth = (uintptr_t)arg;
  if (depth == 0)
    return (void *)1;
  weft_gthread l = h_tspawn(tree, (void *)(depth - 1));
  weft_gthread r = h_tspawn(tree, (void *)(depth - 1));
  uintptr_t n = (uintptr_t)h_tjoin(l) + (uintptr_t)h_tjoin(r);
  return (void *)(n + 1);
}

Test(gthread, spawn_tree) {
  /* 2^13 - 1 green threads, each joined by its parent. */
  weft_gthread t = h_spawn(tree, (void *)12);
  cr_expect_eq((uintptr_t)h_join(t), (1u << 13) - 1);
  EXPECT_NO_THREAD_FAILURES();
}

Test(gthread, join_from_pthread) {
  weft_gthread t = h_spawn(compute, (void *)12345);
  void *res = NULL;
  cr_expect_eq(weft_join(t, &res), 0);
  cr_expect_eq((uint64_t)(uintptr_t)res, mix(12345));
  /* join with a NULL result pointer */
  t = h_spawn(compute, (void *)1);
  cr_expect_eq(weft_join(t, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* Detach                                                                   */
/* ------------------------------------------------------------------------ */

static atomic_int detached_ran;
static weft_sem detached_done;

static void *detached_fn(void *arg) {
  (void)arg;
  weft_yield();
  atomic_fetch_add(&detached_ran, 1);
  TCHECK_EQ(weft_sem_post(&detached_done), 0);
  return NULL;
}

Test(gthread, detached_threads_run) {
  enum { N = 200 };
  cr_assert_eq(weft_sem_init(&detached_done, 0), 0);
  weft_gthread_attr attr = {.detached = true};
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_spawn(NULL, &attr, detached_fn, NULL), 0);
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_sem_wait(&detached_done), 0);
  cr_expect_eq(atomic_load(&detached_ran), N);
  EXPECT_NO_THREAD_FAILURES();
}

Test(gthread, detached_handle_cannot_be_joined) {
  weft_gthread_attr attr = {.detached = true};
  weft_gthread t;
  cr_assert_eq(weft_sem_init(&detached_done, 0), 0);
  cr_assert_eq(weft_spawn(&t, &attr, detached_fn, NULL), 0);
  cr_expect_eq(weft_join(t, NULL), -EINVAL);
  cr_expect_eq(weft_detach(t), -EINVAL);
  cr_assert_eq(weft_sem_wait(&detached_done), 0);
}

Test(gthread, detach_then_finish) {
  enum { N = 100 };
  cr_assert_eq(weft_sem_init(&detached_done, 0), 0);
  for (int i = 0; i < N; i++) {
    weft_gthread t = h_spawn(detached_fn, NULL);
    cr_expect_eq(weft_detach(t), 0);
    cr_expect_eq(weft_detach(t), -EINVAL, "detach twice");
    cr_expect_eq(weft_join(t, NULL), -EINVAL, "join after detach");
  }
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_sem_wait(&detached_done), 0);
  cr_expect_eq(atomic_load(&detached_ran), N);
  EXPECT_NO_THREAD_FAILURES();
}

Test(gthread, joinable_needs_a_handle) {
  cr_expect_eq(weft_spawn(NULL, NULL, nothing, NULL), -EINVAL);
  weft_gthread_attr attr = {.detached = false};
  cr_expect_eq(weft_spawn(NULL, &attr, nothing, NULL), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* weft_exit                                                                */
/* ------------------------------------------------------------------------ */

static atomic_int after_exit;

__attribute__((noinline)) static void leave(void *result) {
  weft_exit(result);
  atomic_fetch_add(&after_exit, 1); /* never reached */
}

static void *exiter(void *arg) {
  leave(arg);
  atomic_fetch_add(&after_exit, 1);
  return (void *)0xBAD;
}

Test(gthread, exit_with_result) {
  enum { N = 50 };
  weft_gthread t[N];
  for (uintptr_t i = 0; i < N; i++)
    t[i] = h_spawn(exiter, (void *)(0xFEED0000 + i));
  for (uintptr_t i = 0; i < N; i++)
    cr_expect_eq((uintptr_t)h_join(t[i]), 0xFEED0000 + i);
  cr_expect_eq(atomic_load(&after_exit), 0, "weft_exit returned");
  /* In a detached thread too. */
  weft_gthread_attr attr = {.detached = true};
  cr_assert_eq(weft_spawn(NULL, &attr, exiter, NULL), 0);
  weft_sleep(MS(20));
  cr_expect_eq(atomic_load(&after_exit), 0, "weft_exit returned");
}

Test(gthread, exit_outside_gthread) {
  cr_expect_eq(weft_exit((void *)1), -EPERM);
}

/* ------------------------------------------------------------------------ */
/* Identity                                                                 */
/* ------------------------------------------------------------------------ */

struct ident {
  weft_gthread self;
  uint64_t id;
  char name0[64], name1[64], name2[64];
  bool in;
  int worker;
  int set1, set2;
};

static void *identify(void *arg) {
  struct ident *r = arg;
  r->self = weft_self();
  r->id = weft_id();
  r->in = weft_in_gthread();
  r->worker = weft_worker_index();
  snprintf(r->name0, sizeof r->name0, "%s", weft_name());
  r->set1 = weft_set_name("renamed");
  snprintf(r->name1, sizeof r->name1, "%s", weft_name());
  r->set2 = weft_set_name("0123456789abcdefghijklmnopqrstuvwxyz");
  snprintf(r->name2, sizeof r->name2, "%s", weft_name());
  return NULL;
}

Test(gthread, identity) {
  struct ident r = {0};
  weft_gthread_attr attr = {.name = "worker-7"};
  weft_gthread t;
  cr_assert_eq(weft_spawn(&t, &attr, identify, &r), 0);
  h_join(t);
  cr_expect_geq(t.id, 1);
  cr_expect_eq(r.id, t.id);
  cr_expect_eq(r.self.id, t.id);
  cr_expect_eq(r.self.p, t.p);
  cr_expect(r.in);
  cr_expect(r.worker >= 0 && r.worker < 2, "worker index %d", r.worker);
  cr_expect_str_eq(r.name0, "worker-7");
  cr_expect_eq(r.set1, 0);
  cr_expect_str_eq(r.name1, "renamed");
  cr_expect_eq(r.set2, 0);
  cr_expect_str_eq(r.name2, "0123456789abcdefghijklmnopqrstu",
                   "names are truncated to WEFT_NAME_MAX - 1 bytes");
  cr_expect_eq(strlen(r.name2), WEFT_NAME_MAX - 1);
}

Test(gthread, name_is_copied_and_defaults_to_empty) {
  struct ident r = {0};
  char buf[64];
  snprintf(buf, sizeof buf, "temporary-%d", 42);
  weft_gthread_attr attr = {.name = buf};
  weft_gthread t;
  cr_assert_eq(weft_spawn(&t, &attr, identify, &r), 0);
  memset(buf, 'X', sizeof buf - 1); /* the runtime must have copied it */
  h_join(t);
  cr_expect_str_eq(r.name0, "temporary-42");

  struct ident r2 = {0};
  t = h_spawn(identify, &r2);
  h_join(t);
  cr_expect_str_eq(r2.name0, "");

  struct ident r3 = {0};
  char longname[80];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  attr.name = longname;
  cr_assert_eq(weft_spawn(&t, &attr, identify, &r3), 0);
  h_join(t);
  cr_expect_eq(strlen(r3.name0), WEFT_NAME_MAX - 1);
}

Test(gthread, identity_outside_gthreads) {
  weft_gthread self = weft_self();
  cr_expect_null(self.p);
  cr_expect_eq(self.id, 0);
  cr_expect_eq(weft_id(), 0);
  cr_expect_null(weft_name());
  cr_expect_eq(weft_set_name("x"), -EPERM);
  cr_expect_not(weft_in_gthread());
  cr_expect_eq(weft_worker_index(), -1);
  cr_expect_eq(weft_yield(), 0);
}

/* ------------------------------------------------------------------------ */
/* Ids                                                                      */
/* ------------------------------------------------------------------------ */

#define IDS_PER_SPAWNER 250
#define ID_SPAWNERS 4

static void *report_id(void *arg) {
  uint64_t *slot = arg;
  *slot = weft_id();
  return NULL;
}

struct id_batch {
  weft_gthread t[IDS_PER_SPAWNER];
  uint64_t seen[IDS_PER_SPAWNER];
};

static void *id_spawner(void *arg) {
  struct id_batch *b = arg;
  for (int i = 0; i < IDS_PER_SPAWNER; i++) {
    b->t[i] = h_tspawn(report_id, &b->seen[i]);
    if (i % 16 == 0)
      weft_yield();
  }
  for (int i = 0; i < IDS_PER_SPAWNER; i++)
    h_tjoin(b->t[i]);
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

Test(gthread, ids_unique_and_increasing) {
  enum { SEQ = 200 };
  weft_gthread t[SEQ];
  uint64_t seen[SEQ];
  for (int i = 0; i < SEQ; i++) {
    cr_assert_eq(weft_spawn(&t[i], NULL, report_id, &seen[i]), 0);
    cr_expect_geq(t[i].id, 1);
    if (i)
      cr_expect_gt(t[i].id, t[i - 1].id, "id %llu after %llu",
                   (unsigned long long)t[i].id,
                   (unsigned long long)t[i - 1].id);
  }
  for (int i = 0; i < SEQ; i++) {
    h_join(t[i]);
    cr_expect_eq(seen[i], t[i].id);
  }

  /* Spawned concurrently from several green threads: still unique. */
  struct id_batch *b = calloc(ID_SPAWNERS, sizeof *b);
  cr_assert_not_null(b);
  weft_gthread sp[ID_SPAWNERS];
  for (int i = 0; i < ID_SPAWNERS; i++)
    sp[i] = h_spawn(id_spawner, &b[i]);
  for (int i = 0; i < ID_SPAWNERS; i++)
    h_join(sp[i]);
  enum { ALL = ID_SPAWNERS * IDS_PER_SPAWNER + SEQ + ID_SPAWNERS };
  uint64_t *ids = calloc(ALL, sizeof *ids);
  size_t n = 0;
  for (int i = 0; i < ID_SPAWNERS; i++) {
    ids[n++] = sp[i].id;
    for (int j = 0; j < IDS_PER_SPAWNER; j++) {
      cr_expect_eq(b[i].seen[j], b[i].t[j].id);
      ids[n++] = b[i].t[j].id;
    }
  }
  for (int i = 0; i < SEQ; i++)
    ids[n++] = t[i].id;
  qsort(ids, n, sizeof *ids, cmp_u64);
  long dups = 0;
  for (size_t i = 1; i < n; i++)
    dups += ids[i] == ids[i - 1];
  cr_expect_eq(dups, 0, "%ld duplicate ids", dups);
  cr_expect_geq(ids[0], 1);
  free(ids);
  free(b);
  EXPECT_NO_THREAD_FAILURES();
}

/* A thread that yields while every worker is busy is queued where only
 * its own worker looks.  Once another worker goes idle, the yielders must
 * reach it: here one worker is held by a thread that never yields, and
 * after it finishes, the yielders have to show up on both workers. */
struct reach {
  atomic_int hog_done;
  atomic_int seen; /* bit i: a yielder ran on worker i after the hog */
};

static void *hog_50ms(void *arg) {
  struct reach *r = arg;
  int64_t end = weft_now() + 50 * 1000000LL;
  while (weft_now() < end)
    ;
  atomic_store(&r->hog_done, 1);
  return NULL;
}

static void *yield_until_seen_on_both(void *arg) {
  struct reach *r = arg;
  int64_t give_up = weft_now() + 10 * 1000000000LL;
  while (atomic_load(&r->seen) != 3 && weft_now() < give_up) {
    weft_yield();
    if (atomic_load(&r->hog_done))
      atomic_fetch_or(&r->seen, 1 << weft_worker_index());
  }
  return NULL;
}

Test(gthread, yielders_reach_a_worker_that_goes_idle) {
  struct reach r = {0};
  weft_gthread h = h_spawn(hog_50ms, &r);
  weft_gthread a = h_spawn(yield_until_seen_on_both, &r);
  weft_gthread b = h_spawn(yield_until_seen_on_both, &r);
  h_join(h);
  h_join(a);
  h_join(b);
  cr_expect_eq(atomic_load(&r.seen), 3, "yielders ran on workers %#x",
               atomic_load(&r.seen));
}

/* ------------------------------------------------------------------------ */
/* Yielding, on one worker so that only yields decide who runs              */
/* ------------------------------------------------------------------------ */

TestSuite(yield_one_worker, .init = h_start1, .fini = h_stop, .timeout = 30);

static atomic_int flag;
static atomic_long counter;
static atomic_int stop;

static void *spinner(void *arg) {
  long *spins = arg;
  while (!atomic_load(&flag)) {
    weft_yield();
    ++*spins;
  }
  return NULL;
}

static void *setter(void *arg) {
  (void)arg;
  for (int i = 0; i < 10; i++)
    weft_yield();
  atomic_store(&flag, 1);
  return NULL;
}

/* A thread that keeps yielding cannot starve another runnable thread: if it
 * could, the spinner would spin forever and the test would time out. */
Test(yield_one_worker, yielder_cannot_starve_runnable) {
  long spins = 0;
  weft_gthread a = h_spawn(spinner, &spins);
  weft_gthread b = h_spawn(setter, NULL);
  h_join(a);
  h_join(b);
  cr_expect_eq(atomic_load(&flag), 1);
}

static void *spawn_spinner_then_setter(void *arg) {
  long *spins = arg;
  weft_gthread a = h_tspawn(spinner, spins);
  weft_gthread b = h_tspawn(setter, NULL);
  h_tjoin(a);
  h_tjoin(b);
  return NULL;
}

Test(yield_one_worker, yielder_cannot_starve_runnable_spawned_from_gthread) {
  long spins = 0;
  h_join(h_spawn(spawn_spinner_then_setter, &spins));
  cr_expect_eq(atomic_load(&flag), 1);
  EXPECT_NO_THREAD_FAILURES();
}

static void *count_while_yielding(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    atomic_fetch_add(&counter, 1);
    weft_yield();
  }
  return NULL;
}

#define YIELDS 2000

struct yielder {
  long seen_at_end; /* the counter when this thread finished */
  long max_gap;     /* most own yields in a row without the counter moving */
  bool wait_for_counter; /* after YIELDS, yield on until it has run */
};

static void *yield_n(void *arg) {
  struct yielder *y = arg;
  long last = atomic_load(&counter), gap = 0;
  for (int i = 0; i < YIELDS; i++) {
    TCHECK_EQ(weft_yield(), 0);
    long now = atomic_load(&counter);
    gap = now == last ? gap + 1 : 0;
    if (gap > y->max_gap)
      y->max_gap = gap;
    last = now;
  }
  /* With two workers the counter may sit on the other one, whose kernel
   * thread a loaded machine can keep off the CPU for longer than 2000
   * yields take: keep yielding (up to 10 s) until it has run once, so
   * that only a counter starved for good fails the test. */
  if (y->wait_for_counter)
    for (int64_t end = weft_now() + (int64_t)10 * 1000000000;
         atomic_load(&counter) == 0 && weft_now() < end;)
      weft_yield();
  y->seen_at_end = atomic_load(&counter);
  return NULL;
}

/* On one worker, only yields decide who runs, so a fair scheduler gives the
 * counter a large share of the turns.  On more workers, a yielder that is
 * alone on its worker may rightly go on at once, so the only invariant is
 * that the counter, runnable all along, ran before both yielders finished. */
static void yield_fairness(bool one_worker) {
  struct yielder y1 = {.wait_for_counter = !one_worker},
                 y2 = {.wait_for_counter = !one_worker};
  weft_gthread c = h_spawn(count_while_yielding, NULL);
  weft_gthread a = h_spawn(yield_n, &y1);
  weft_gthread b = h_spawn(yield_n, &y2);
  h_join(a);
  h_join(b);
  atomic_store(&stop, 1);
  h_join(c);
  /* At least the yielder that shared a worker with the counter saw it. */
  cr_expect_gt(y1.seen_at_end > y2.seen_at_end ? y1.seen_at_end
                                               : y2.seen_at_end,
               0, "the counter never ran while the yielders yielded");
  if (one_worker) {
    /* Round robin would give ~YIELDS. */
    cr_expect_geq(y1.seen_at_end, YIELDS / 10, "the counter ran %ld times",
                  y1.seen_at_end);
    cr_expect_geq(y2.seen_at_end, YIELDS / 10, "the counter ran %ld times",
                  y2.seen_at_end);
    cr_expect_lt(y1.max_gap, YIELDS / 2,
                 "the counter starved for %ld yields", y1.max_gap);
    cr_expect_lt(y2.max_gap, YIELDS / 2,
                 "the counter starved for %ld yields", y2.max_gap);
  }
  EXPECT_NO_THREAD_FAILURES();
}

Test(yield_one_worker, yielders_and_counter_all_progress) { yield_fairness(true); }

TestSuite(yield_two_workers, .init = h_start2, .fini = h_stop, .timeout = 30);

Test(yield_two_workers, yielders_and_counter_all_progress) { yield_fairness(false); }

Test(yield_two_workers, yielder_cannot_starve_runnable) {
  /* More spinners than workers: the setter must still get a turn. */
  long spins[4] = {0};
  weft_gthread s[4];
  for (int i = 0; i < 4; i++)
    s[i] = h_spawn(spinner, &spins[i]);
  weft_gthread b = h_spawn(setter, NULL);
  for (int i = 0; i < 4; i++)
    h_join(s[i]);
  h_join(b);
  cr_expect_eq(atomic_load(&flag), 1);
}

/* A thread woken into its worker's runnext while the other worker was
 * idle runs within a few picks, even when its worker then runs a spawner
 * whose children hand the worker straight back to it (through pnext) at
 * every spawn.  pnext was always taken before runnext, so the woken
 * thread waited until the spawner stopped: a million detached spawns
 * beside a collector that waited so took 11 to 18 s instead of 70 ms,
 * every one of their stacks alive at once (bench/spawn, spawn.1m.green,
 * about one run in a hundred).
 *
 * The setup: a consumer C parked on an unbuffered channel, both workers
 * idle; a producer P sends to C (C goes to P's worker's runnext: the
 * other worker is idle, and is not woken for one thread), then main
 * starts a spinner S, which the idle worker takes from the global queue;
 * then P spawns detached children in a loop, noting when C has run. */
static weft_chan *rn_ch;
static atomic_int rn_c_ran, rn_sent, rn_s_started, rn_release;
static long rn_ran_at;

static void *rn_consumer(void *arg) {
  int v;
  int rc = weft_chan_recv(rn_ch, &v);
  atomic_store(&rn_c_ran, rc == 0 ? 1 : -1);
  return arg;
}

static void *rn_child(void *arg) { return arg; }

static void *rn_spinner(void *arg) {
  atomic_store(&rn_s_started, 1);
  while (!atomic_load(&rn_release))
    ;
  return arg;
}

static void *rn_producer(void *arg) {
  int v = 1;
  /* Long enough for a worker woken with P to stop looking for work. */
  int64_t until = weft_now() + MS(5);
  while (weft_now() < until)
    ;
  weft_chan_send(rn_ch, &v);
  atomic_store(&rn_sent, 1);
  while (!atomic_load(&rn_s_started))
    ;
  rn_ran_at = atomic_load(&rn_c_ran) ? 0 : -1; /* 0: ran before the loop */
  weft_gthread_attr detached = {.detached = true};
  for (long i = 1; i <= 100000 && rn_ran_at < 0; i++) {
    if (weft_spawn(NULL, &detached, rn_child, NULL) != 0)
      break;
    if (atomic_load(&rn_c_ran))
      rn_ran_at = i;
  }
  atomic_store(&rn_release, 1);
  return arg;
}

/* Debug builds randomise where a woken or spawned thread goes (so that no
 * test depends on it), which undoes the setup: there the test is off. */
Test(lifecycle, a_thread_in_runnext_runs_beside_a_spawner, .fini = h_stop,
     .disabled = WEFT_DEBUG) {
  weft_config cfg = {.workers = 2, .slice_us = -1};
  cr_assert_eq(weft_init(&cfg), 0);
  cr_assert_eq(weft_chan_open(&rn_ch, sizeof(int), 0), 0);
  weft_gthread c = h_spawn(rn_consumer, NULL);
  usleep(50 * 1000); /* C parks; both workers go idle */
  weft_gthread p = h_spawn(rn_producer, NULL);
  while (!atomic_load(&rn_sent))
    usleep(100);
  weft_gthread sp = h_spawn(rn_spinner, NULL);
  h_join(p);
  h_join(sp);
  h_join(c);
  weft_chan_free(rn_ch);
  cr_assert_eq(atomic_load(&rn_c_ran), 1);
  cr_assert_neq(rn_ran_at, 0, "the setup failed: the consumer ran before "
                              "the spawner's loop (stolen by the idle "
                              "worker)");
  cr_assert(rn_ran_at > 0 && rn_ran_at <= 1000,
            "the consumer waited %s spawns in its worker's runnext",
            rn_ran_at < 0 ? "all of 100000" : "more than 1000");
}

/* From a green thread on one worker, a new thread runs at once.  Debug
 * builds randomise this choice on purpose (so that no other test can depend
 * on it), so there the test is off. */
static void *set_flag(void *arg) {
  (void)arg;
  atomic_store(&flag, 1);
  return NULL;
}

static void *spawn_and_look(void *arg) {
  int *seen = arg;
  weft_gthread t = h_tspawn(set_flag, NULL);
  *seen = atomic_load(&flag);
  h_tjoin(t);
  return NULL;
}

Test(yield_one_worker, spawned_thread_runs_at_once, .disabled = WEFT_DEBUG) {
  int seen = -1;
  h_join(h_spawn(spawn_and_look, &seen));
  cr_expect_eq(seen, 1, "the child had not run when weft_spawn returned");
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Sleeping                                                                 */
/* ------------------------------------------------------------------------ */

static atomic_int wake_next;
static int wake_order[3];

struct sleeper {
  int ms;
  int64_t deadline; /* from a start common to all sleepers */
  int64_t woke;
};

/* Sleeps until its deadline with weft_sleep(): measuring from a common start
 * keeps the order of the deadlines independent of when each thread began. */
static void *sleep_ms(void *arg) {
  struct sleeper *s = arg;
  TCHECK_EQ(weft_sleep(s->deadline - weft_now()), 0);
  s->woke = weft_now();
  wake_order[atomic_fetch_add(&wake_next, 1)] = s->ms;
  return NULL;
}

/* Sleeps of 90, 60 and 30 ms: 30 ms apart, so that the order does not
 * depend on how promptly the machine runs a woken worker (with another test
 * program busy on both CPUs, delays of 15 ms have been seen). */
Test(gthread, sleepers_wake_in_order) {
  struct sleeper s[3] = {{.ms = 90}, {.ms = 60}, {.ms = 30}};
  weft_gthread t[3];
  int64_t start = weft_now();
  for (int i = 0; i < 3; i++) {
    s[i].deadline = start + MS(s[i].ms);
    t[i] = h_spawn(sleep_ms, &s[i]);
  }
  for (int i = 0; i < 3; i++)
    h_join(t[i]);
  cr_expect(wake_order[0] == 30 && wake_order[1] == 60 && wake_order[2] == 90,
            "woke in the order %d, %d, %d ms", wake_order[0], wake_order[1],
            wake_order[2]);
  for (int i = 0; i < 3; i++)
    cr_expect_geq(s[i].woke, s[i].deadline, "a %d ms sleeper woke early",
                  s[i].ms);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Misuse from inside the runtime                                           */
/* ------------------------------------------------------------------------ */

static void *join_self(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_join(weft_self(), NULL);
}

Test(gthread, join_self_deadlocks) {
  weft_gthread t = h_spawn(join_self, NULL);
  cr_expect_eq((intptr_t)h_join(t), -EDEADLK);
}

Test(gthread, join_twice) {
  weft_gthread t = h_spawn(nothing, NULL);
  cr_expect_eq(weft_join(t, NULL), 0);
  cr_expect_eq(weft_join(t, NULL), -EINVAL);
  cr_expect_eq(weft_detach(t), -EINVAL);
}

static void *wait_on(void *arg) {
  TCHECK_EQ(weft_sem_wait(arg), 0);
  return NULL;
}

Test(gthread, join_invalid_handles) {
  weft_gthread none = {0};
  cr_expect_eq(weft_join(none, NULL), -EINVAL);
  cr_expect_eq(weft_detach(none), -EINVAL);
  /* A live thread's pointer with a wrong id. */
  weft_sem go;
  cr_assert_eq(weft_sem_init(&go, 0), 0);
  weft_gthread t = h_spawn(wait_on, &go);
  weft_gthread forged = {t.p, t.id + 1000};
  cr_expect_eq(weft_join(forged, NULL), -EINVAL);
  cr_expect_eq(weft_detach(forged), -EINVAL);
  cr_assert_eq(weft_sem_post(&go), 0);
  h_join(t);
  EXPECT_NO_THREAD_FAILURES();
}

Test(gthread, null_fn) {
  weft_gthread t;
  cr_expect_eq(weft_spawn(&t, NULL, NULL, NULL), -EINVAL);
}

static void *try_shutdown(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_shutdown();
}

Test(gthread, shutdown_from_gthread) {
  weft_gthread t = h_spawn(try_shutdown, NULL);
  cr_expect_eq((intptr_t)h_join(t), -EPERM);
  cr_expect(weft_running());
}

static void *try_init(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_init(NULL);
}

Test(gthread, init_while_running) {
  cr_expect_eq(weft_init(NULL), -EALREADY);
  weft_gthread t = h_spawn(try_init, NULL);
  intptr_t rc = (intptr_t)h_join(t);
  cr_expect(rc == -EALREADY || rc == -EPERM, "weft_init in a green thread: %s",
            weft_strerror((int)rc));
  cr_expect_eq(weft_workers(), 2);
}

static void *spawn_100(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++)
    h_tjoin(h_tspawn(nothing, NULL));
  return NULL;
}

Test(gthread, stats) {
  weft_worker_stats st[8];
  h_join(h_spawn(spawn_100, NULL));
  memset(st, 0, sizeof st);
  cr_expect_eq(weft_stats(st, 8), 2);
  uint64_t spawns = 0, switches = 0;
  for (int i = 0; i < 2; i++) {
    spawns += st[i].spawns;
    switches += st[i].switches;
  }
  /* Only min(n, workers) entries are filled. */
  cr_expect_eq(st[2].spawns, 0);
  cr_expect_eq(st[2].switches, 0);
  cr_expect_geq(spawns, 100, "%llu spawns counted",
                (unsigned long long)spawns);
  cr_expect_gt(switches, 0);
  cr_expect_eq(weft_stats(st, 1), 2);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Lifecycle, without a fixture                                             */
/* ------------------------------------------------------------------------ */

TestSuite(lifecycle, .timeout = 30);

Test(lifecycle, calls_before_init) {
  weft_gthread t;
  cr_expect_not(weft_running());
  cr_expect_eq(weft_workers(), 0);
  cr_expect_eq(weft_spawn(&t, NULL, nothing, NULL), -EPERM);
  cr_expect_eq(weft_shutdown(), -ESRCH);
  cr_expect_eq(weft_exit(NULL), -EPERM);
  weft_worker_stats st;
  cr_expect_eq(weft_stats(&st, 1), -ESRCH);
}

Test(lifecycle, init_twice) {
  h_start(2);
  weft_config cfg = {.workers = 3};
  cr_expect_eq(weft_init(&cfg), -EALREADY);
  cr_expect_eq(weft_workers(), 2);
  cr_expect_eq(weft_shutdown(), 0);
  cr_expect_eq(weft_shutdown(), -ESRCH);
  cr_expect_not(weft_running());
}

Test(lifecycle, bad_configs) {
  static const int bad[] = {-1, 1025, 100000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    weft_config cfg = {.workers = bad[i]};
    int rc = weft_init(&cfg);
    cr_expect_eq(rc, -EINVAL, "workers = %d: %s", bad[i], weft_strerror(rc));
    if (rc == 0)
      weft_shutdown();
  }
  cr_expect_not(weft_running());
}

Test(lifecycle, workers_from_environment) {
  setenv("WEFT_WORKERS", "3", 1);
  weft_config cfg = {0};
  cr_assert_eq(weft_init(&cfg), 0);
  cr_expect_eq(weft_workers(), 3);
  cr_expect_eq(weft_shutdown(), 0);
  cr_assert_eq(weft_init(NULL), 0);
  cr_expect_eq(weft_workers(), 3);
  cr_expect_eq(weft_shutdown(), 0);
  unsetenv("WEFT_WORKERS");
  cr_assert_eq(weft_init(NULL), 0);
  cr_expect_eq(weft_workers(), (int)sysconf(_SC_NPROCESSORS_ONLN));
  cr_expect_eq(weft_shutdown(), 0);
}

Test(lifecycle, init_shutdown_init_again) {
  for (int round = 1; round <= 3; round++) {
    h_start(round);
    cr_expect(weft_running());
    weft_gthread t[100];
    for (uintptr_t i = 0; i < 100; i++)
      t[i] = h_spawn(compute, (void *)(i + (uintptr_t)round * 1000));
    for (uintptr_t i = 0; i < 100; i++)
      cr_expect_eq((uint64_t)(uintptr_t)h_join(t[i]),
                   mix(i + (uintptr_t)round * 1000));
    cr_expect_eq(weft_shutdown(), 0);
    cr_expect_not(weft_running());
    cr_expect_eq(weft_workers(), 0);
  }
}

/* Live threads of every kind at shutdown. */
static void *park_on_chan(void *arg) {
  int v;
  weft_chan_recv(arg, &v);
  return NULL;
}

static void *sleep_an_hour(void *arg) {
  (void)arg;
  weft_sleep((int64_t)3600 * 1000000000);
  return NULL;
}

static void *yield_forever(void *arg) {
  (void)arg;
  for (;;)
    weft_yield();
  return NULL;
}

static void *join_forever(void *arg) {
  weft_gthread *t = arg;
  weft_join(*t, NULL);
  return NULL;
}

static void *spin_forever_with_sleeps(void *arg) {
  (void)arg;
  for (;;)
    weft_sleep(MS(1));
  return NULL;
}

static weft_gthread parked_first;

Test(lifecycle, shutdown_with_live_threads) {
  h_start(2);
  weft_chan *ch;
  cr_assert_eq(weft_chan_open(&ch, sizeof(int), 0), 0);
  weft_gthread t;
  for (int i = 0; i < 10; i++)
    cr_assert_eq(weft_spawn(i ? &t : &parked_first, NULL, park_on_chan, ch),
                 0);
  for (int i = 0; i < 10; i++)
    h_spawn(sleep_an_hour, NULL);
  for (int i = 0; i < 4; i++)
    h_spawn(yield_forever, NULL);
  for (int i = 0; i < 4; i++)
    h_spawn(spin_forever_with_sleeps, NULL);
  h_spawn(join_forever, &parked_first);
  weft_gthread_attr attr = {.detached = true};
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_spawn(NULL, &attr, yield_forever, NULL), 0);
  weft_sleep(MS(20)); /* let them all start */
  cr_expect_eq(weft_shutdown(), 0);
  cr_expect_not(weft_running());

  /* And the runtime starts again afterwards. */
  h_start(2);
  cr_expect_eq((uint64_t)(uintptr_t)h_join(h_spawn(compute, (void *)5)),
               mix(5));
  cr_expect_eq(weft_shutdown(), 0);
}

/* ------------------------------------------------------------------------ */
/* Joins with a deadline, try-joins, and spawns from plain threads          */
/* ------------------------------------------------------------------------ */

static weft_sem join_gate;

static void *wait_gate(void *a) {
  weft_sem_wait(&join_gate);
  return a;
}

/* The deadline passes, the thread is still joinable, then joins. */
static void join_until_then_join(void) {
  weft_gthread t = h_tspawn(wait_gate, (void *)77);
  void *r = NULL;
  TCHECK_EQ(weft_join_until(t, &r, weft_deadline(MS(20))), -ETIMEDOUT);
  TCHECK_EQ(weft_join_until(t, &r, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_tryjoin(t, &r), -EBUSY);
  TCHECK_EQ(weft_sem_post(&join_gate), 0);
  TCHECK_EQ(weft_join_until(t, &r, weft_deadline(MS(10000))), 0);
  TCHECK_EQ((intptr_t)r, 77);
  TCHECK_EQ(weft_join(t, NULL), -EINVAL); /* joined: freed */
}

static void *join_until_green(void *a) {
  (void)a;
  join_until_then_join();
  return NULL;
}

Test(gthread, join_until_times_out_and_joins_later) {
  cr_assert_eq(weft_sem_init(&join_gate, 0), 0);
  join_until_then_join(); /* from the test's (plain) thread */
  h_join(h_spawn(join_until_green, NULL)); /* from a green thread */
  EXPECT_NO_THREAD_FAILURES();
}

static void *quick(void *a) { return a; }

Test(gthread, tryjoin_takes_a_finished_thread) {
  weft_gthread t = h_spawn(quick, (void *)5);
  void *r = NULL;
  int rc;
  while ((rc = weft_tryjoin(t, &r)) == -EBUSY)
    weft_yield();
  cr_expect_eq(rc, 0);
  cr_expect_eq((intptr_t)r, 5);
  cr_expect_eq(weft_tryjoin(t, &r), -EINVAL);
}

static uint64_t foreign_total(void) {
  weft_worker_stats st[8];
  int n = weft_stats(st, 8);
  cr_assert_gt(n, 0);
  uint64_t sum = 0;
  for (int i = 0; i < n && i < 8; i++)
    sum += st[i].foreign_spawns;
  return sum;
}

static void *spawn_some(void *a) {
  for (int i = 0; i < 10; i++)
    h_tjoin(h_tspawn(quick, a));
  return NULL;
}

Test(gthread, stats_count_spawns_from_plain_threads) {
  uint64_t before = foreign_total();
  for (int i = 0; i < 25; i++)
    h_join(h_spawn(quick, NULL));
  h_join(h_spawn(spawn_some, NULL)); /* 1 foreign + 10 from a green thread */
  cr_expect_eq(foreign_total() - before, 26);
  EXPECT_NO_THREAD_FAILURES();
}
