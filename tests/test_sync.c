/*
 * test_sync.c - mutex, condition variable, semaphore, waitgroup and once,
 * under contention on 2 and 4 workers, shared between green threads and
 * plain pthreads at the same time.
 *
 * Invariants checked:
 *  - mutex: mutual exclusion (a counter incremented under the mutex by N
 *    threads M times each ends at N*M, and no two holders ever overlap);
 *    no waiter starves; the error codes (-EBUSY, -EPERM, -ETIMEDOUT,
 *    -EAGAIN);
 *  - cond: a bounded producer/consumer queue delivers every item exactly
 *    once; wait_until times out with the mutex held again; broadcast wakes
 *    every waiter; destroy while waited on is refused;
 *  - sem: never more than K holders inside; the error codes;
 *  - waitgroup: waiters return only after every done of many adders; a
 *    negative counter is refused and leaves the counter unchanged;
 *  - once: run exactly once under concurrent callers, all of which see its
 *    effect when they return.
 */
#include "helpers.h"

TestSuite(sync_two_workers, .init = h_start2, .fini = h_stop, .timeout = 60);
TestSuite(sync_four_workers, .init = h_start4, .fini = h_stop, .timeout = 60);

/* Runs fn on g green threads and p pthreads, args i = 0 .. g+p-1, and
 * joins them all. */
static void run_mixed(void *(*fn)(void *), int g, int p) {
  weft_gthread gt[64];
  pthread_t pt[16];
  cr_assert(g <= 64 && p <= 16);
  for (int i = 0; i < g; i++)
    gt[i] = h_spawn(fn, (void *)(intptr_t)i);
  for (int i = 0; i < p; i++)
    pt[i] = h_pthread(fn, (void *)(intptr_t)(g + i));
  for (int i = 0; i < g; i++)
    h_join(gt[i]);
  for (int i = 0; i < p; i++)
    h_pjoin(pt[i]);
}

/* Yields from either kind of thread (weft_yield does sched_yield outside
 * green threads). */
static void relax(void) { weft_yield(); }

/* ------------------------------------------------------------------------ */
/* Mutex                                                                    */
/* ------------------------------------------------------------------------ */

#define INCS 3000

static weft_mutex mu = WEFT_MUTEX_INIT;
static long plain_counter; /* only ever touched under mu */
static atomic_int inside;

static void *increment(void *arg) {
  int self = (int)(intptr_t)arg;
  for (int i = 0; i < INCS; i++) {
    switch ((self + i) % 3) {
    case 0:
      TCHECK_EQ(weft_mutex_lock(&mu), 0);
      break;
    case 1:
      TCHECK_EQ(weft_mutex_lock_until(&mu, WEFT_FOREVER), 0);
      break;
    case 2:
      while (weft_mutex_trylock(&mu) == -EBUSY)
        relax();
      break;
    }
    TCHECK_EQ(atomic_fetch_add(&inside, 1), 0);
    long v = plain_counter;
    if (i % 128 == 0)
      relax(); /* hold the mutex across a switch now and then */
    plain_counter = v + 1;
    atomic_fetch_sub(&inside, 1);
    TCHECK_EQ(weft_mutex_unlock(&mu), 0);
  }
  return NULL;
}

static void mutex_counter(int g, int p) {
  run_mixed(increment, g, p);
  cr_expect_eq(plain_counter, (long)(g + p) * INCS, "counter %ld, want %ld",
               plain_counter, (long)(g + p) * INCS);
  EXPECT_NO_THREAD_FAILURES();
}

Test(sync_two_workers, mutex_counter) { mutex_counter(12, 3); }
Test(sync_four_workers, mutex_counter) { mutex_counter(12, 3); }

/* A thread hammering the mutex cannot keep others out for ever: the
 * hammer stops only when both others have finished their rounds. */
static atomic_int finishers;

static void *hammer(void *arg) {
  (void)arg;
  while (atomic_load(&finishers) < 2) {
    TCHECK_EQ(weft_mutex_lock(&mu), 0);
    plain_counter++;
    TCHECK_EQ(weft_mutex_unlock(&mu), 0);
  }
  return NULL;
}

static void *few_rounds(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) {
    TCHECK_EQ(weft_mutex_lock(&mu), 0);
    plain_counter++;
    TCHECK_EQ(weft_mutex_unlock(&mu), 0);
  }
  atomic_fetch_add(&finishers, 1);
  return NULL;
}

Test(sync_two_workers, mutex_waiters_not_starved) {
  weft_gthread h1 = h_spawn(hammer, NULL);
  pthread_t h2 = h_pthread(hammer, NULL);
  weft_gthread a = h_spawn(few_rounds, NULL);
  pthread_t b = h_pthread(few_rounds, NULL);
  h_join(a);
  h_pjoin(b);
  h_join(h1);
  h_pjoin(h2);
  EXPECT_NO_THREAD_FAILURES();
}

static void *try_from_other(void *arg) {
  weft_mutex *m = arg;
  TCHECK_EQ(weft_mutex_trylock(m), -EBUSY);
  TCHECK_EQ(weft_mutex_lock_until(m, WEFT_NOWAIT), -EAGAIN);
  int64_t dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_mutex_lock_until(m, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  return NULL;
}

Test(sync_two_workers, mutex_errors) {
  weft_mutex m;
  cr_assert_eq(weft_mutex_init(&m), 0);
  cr_expect_eq(weft_mutex_unlock(&m), -EPERM, "unlock of an unlocked mutex");
  cr_assert_eq(weft_mutex_lock(&m), 0);
  cr_expect_eq(weft_mutex_trylock(&m), -EBUSY);
  /* The holder is told it would wait for itself. */
  cr_expect_eq(weft_mutex_lock_until(&m, WEFT_NOWAIT), -EDEADLK);
  cr_expect_eq(weft_mutex_destroy(&m), -EBUSY, "destroy of a locked mutex");
  h_join(h_spawn(try_from_other, &m));
  h_pjoin(h_pthread(try_from_other, &m));
  cr_expect_eq(weft_mutex_unlock(&m), 0);
  cr_expect_eq(weft_mutex_unlock(&m), -EPERM);
  /* After the timed-out waiters, it still works. */
  cr_expect_eq(weft_mutex_trylock(&m), 0);
  cr_expect_eq(weft_mutex_unlock(&m), 0);
  cr_expect_eq(weft_mutex_lock_until(&m, WEFT_NOWAIT), 0);
  cr_expect_eq(weft_mutex_unlock(&m), 0);
  cr_expect_eq(weft_mutex_destroy(&m), 0);
  EXPECT_NO_THREAD_FAILURES();
}

static void *lock_before_deadline(void *arg) {
  weft_mutex *m = arg;
  TCHECK_EQ(weft_mutex_lock_until(m, weft_deadline(MS(10000))), 0);
  TCHECK_EQ(weft_mutex_unlock(m), 0);
  return NULL;
}

Test(sync_two_workers, mutex_lock_until_succeeds_when_released) {
  weft_mutex m = WEFT_MUTEX_INIT;
  cr_assert_eq(weft_mutex_lock(&m), 0);
  weft_gthread g = h_spawn(lock_before_deadline, &m);
  pthread_t p = h_pthread(lock_before_deadline, &m);
  weft_sleep(MS(20));
  cr_expect_eq(weft_mutex_unlock(&m), 0);
  h_join(g);
  h_pjoin(p);
  cr_expect_eq(weft_mutex_destroy(&m), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Condition variable: bounded queue                                        */
/* ------------------------------------------------------------------------ */

#define QCAP 8
#define PRODUCERS 6 /* 4 green, 2 pthreads */
#define CONSUMERS 6 /* 4 green, 2 pthreads */
#define ITEMS 2000  /* per producer */
#define POISON (-1)

static struct {
  weft_mutex m;
  weft_cond not_full, not_empty;
  int buf[QCAP];
  int head, len;
} q = {WEFT_MUTEX_INIT, WEFT_COND_INIT, WEFT_COND_INIT, {0}, 0, 0};

static atomic_int seen[PRODUCERS * ITEMS];

static void q_put(int item, int how) {
  TCHECK_EQ(weft_mutex_lock(&q.m), 0);
  while (q.len == QCAP) {
    if (how)
      TCHECK_EQ(weft_cond_wait(&q.not_full, &q.m), 0);
    else {
      /* A far deadline: this exercises the timed path without timing out. */
      int rc =
          weft_cond_wait_until(&q.not_full, &q.m, weft_deadline(MS(60000)));
      TCHECK_EQ(rc, 0);
    }
  }
  q.buf[(q.head + q.len++) % QCAP] = item;
  if (how)
    TCHECK_EQ(weft_cond_signal(&q.not_empty), 0);
  else
    TCHECK_EQ(weft_cond_broadcast(&q.not_empty), 0);
  TCHECK_EQ(weft_mutex_unlock(&q.m), 0);
}

static int q_get(int how) {
  TCHECK_EQ(weft_mutex_lock(&q.m), 0);
  while (q.len == 0) {
    if (how)
      TCHECK_EQ(weft_cond_wait(&q.not_empty, &q.m), 0);
    else
      TCHECK_EQ(weft_cond_wait_until(&q.not_empty, &q.m, WEFT_FOREVER), 0);
  }
  int item = q.buf[q.head];
  q.head = (q.head + 1) % QCAP;
  q.len--;
  TCHECK_EQ(weft_cond_signal(&q.not_full), 0);
  TCHECK_EQ(weft_mutex_unlock(&q.m), 0);
  return item;
}

static void *producer(void *arg) {
  int p = (int)(intptr_t)arg;
  for (int k = 0; k < ITEMS; k++)
    q_put(p * ITEMS + k, k % 2);
  return NULL;
}

static void *consumer(void *arg) {
  int c = (int)(intptr_t)arg;
  for (;;) {
    int item = q_get(c % 2);
    if (item == POISON)
      return NULL;
    TCHECK(item >= 0 && item < PRODUCERS * ITEMS);
    if (item >= 0 && item < PRODUCERS * ITEMS)
      atomic_fetch_add(&seen[item], 1);
  }
}

static void producer_consumer(void) {
  weft_gthread gp[4], gc[4];
  pthread_t pp[2], pc[2];
  for (int i = 0; i < 4; i++)
    gc[i] = h_spawn(consumer, (void *)(intptr_t)i);
  for (int i = 0; i < 2; i++)
    pc[i] = h_pthread(consumer, (void *)(intptr_t)(4 + i));
  for (int i = 0; i < 4; i++)
    gp[i] = h_spawn(producer, (void *)(intptr_t)i);
  for (int i = 0; i < 2; i++)
    pp[i] = h_pthread(producer, (void *)(intptr_t)(4 + i));
  for (int i = 0; i < 4; i++)
    h_join(gp[i]);
  for (int i = 0; i < 2; i++)
    h_pjoin(pp[i]);
  for (int i = 0; i < CONSUMERS; i++)
    q_put(POISON, 1);
  for (int i = 0; i < 4; i++)
    h_join(gc[i]);
  for (int i = 0; i < 2; i++)
    h_pjoin(pc[i]);

  int lost = 0, dup = 0;
  for (int i = 0; i < PRODUCERS * ITEMS; i++) {
    int n = atomic_load(&seen[i]);
    lost += n == 0;
    dup += n > 1;
  }
  cr_expect_eq(lost, 0, "%d items never consumed", lost);
  cr_expect_eq(dup, 0, "%d items consumed more than once", dup);
  cr_expect_eq(q.len, 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(sync_two_workers, cond_bounded_queue) { producer_consumer(); }
Test(sync_four_workers, cond_bounded_queue) { producer_consumer(); }

/* ------------------------------------------------------------------------ */
/* Condition variable: timeouts, broadcast, destroy                         */
/* ------------------------------------------------------------------------ */

static void *cond_timeout(void *arg) {
  (void)arg;
  weft_mutex m = WEFT_MUTEX_INIT;
  weft_cond c = WEFT_COND_INIT;
  TCHECK_EQ(weft_mutex_lock(&m), 0);
  int64_t dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_cond_wait_until(&c, &m, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  /* The mutex is held again: it cannot be taken, and unlocking works. */
  TCHECK_EQ(weft_mutex_trylock(&m), -EBUSY);
  TCHECK_EQ(weft_mutex_unlock(&m), 0);
  TCHECK_EQ(weft_mutex_unlock(&m), -EPERM);
  /* A deadline that has already passed. */
  TCHECK_EQ(weft_mutex_lock(&m), 0);
  TCHECK_EQ(weft_cond_wait_until(&c, &m, weft_deadline(-1)), -ETIMEDOUT);
  TCHECK_EQ(weft_mutex_unlock(&m), 0);
  TCHECK_EQ(weft_cond_destroy(&c), 0);
  TCHECK_EQ(weft_mutex_destroy(&m), 0);
  return NULL;
}

Test(sync_two_workers, cond_wait_until_times_out_with_mutex_held) {
  run_mixed(cond_timeout, 3, 2);
  EXPECT_NO_THREAD_FAILURES();
}

#define BWAITERS 24 /* 20 green, 4 pthreads */

static weft_mutex bm = WEFT_MUTEX_INIT;
static weft_cond bc = WEFT_COND_INIT;
static int waiting, woke, go;

static void *broadcast_waiter(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_mutex_lock(&bm), 0);
  waiting++;
  while (!go)
    TCHECK_EQ(weft_cond_wait(&bc, &bm), 0);
  woke++;
  TCHECK_EQ(weft_mutex_unlock(&bm), 0);
  return NULL;
}

Test(sync_two_workers, broadcast_wakes_all) {
  weft_gthread gt[20];
  pthread_t pt[4];
  for (int i = 0; i < 20; i++)
    gt[i] = h_spawn(broadcast_waiter, NULL);
  for (int i = 0; i < 4; i++)
    pt[i] = h_pthread(broadcast_waiter, NULL);
  for (;;) {
    cr_assert_eq(weft_mutex_lock(&bm), 0);
    int n = waiting;
    if (n == BWAITERS)
      break; /* keep the mutex: every waiter is inside cond_wait */
    cr_assert_eq(weft_mutex_unlock(&bm), 0);
    weft_sleep(MS(1));
  }
  /* Everyone is parked on bc now. */
  cr_expect_eq(weft_cond_destroy(&bc), -EBUSY, "destroy while waited on");
  go = 1;
  cr_expect_eq(weft_cond_broadcast(&bc), 0); /* one broadcast, no more */
  cr_assert_eq(weft_mutex_unlock(&bm), 0);
  for (int i = 0; i < 20; i++)
    h_join(gt[i]);
  for (int i = 0; i < 4; i++)
    h_pjoin(pt[i]);
  cr_expect_eq(woke, BWAITERS);
  cr_expect_eq(weft_cond_destroy(&bc), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(sync_two_workers, cond_signal_without_waiters) {
  weft_cond c;
  cr_assert_eq(weft_cond_init(&c), 0);
  cr_expect_eq(weft_cond_signal(&c), 0);
  cr_expect_eq(weft_cond_broadcast(&c), 0);
  cr_expect_eq(weft_cond_destroy(&c), 0);
}

/* ------------------------------------------------------------------------ */
/* Semaphore                                                                */
/* ------------------------------------------------------------------------ */

#define SEM_K 3
#define SEM_ROUNDS 400

static weft_sem limiter;
static atomic_int in_sem, max_in_sem;

static void *limited(void *arg) {
  int self = (int)(intptr_t)arg;
  for (int i = 0; i < SEM_ROUNDS; i++) {
    switch ((self + i) % 3) {
    case 0:
      TCHECK_EQ(weft_sem_wait(&limiter), 0);
      break;
    case 1:
      TCHECK_EQ(weft_sem_wait_until(&limiter, WEFT_FOREVER), 0);
      break;
    case 2:
      while (weft_sem_trywait(&limiter) == -EAGAIN)
        relax();
      break;
    }
    int now = atomic_fetch_add(&in_sem, 1) + 1;
    TCHECK(now <= SEM_K);
    int m = atomic_load(&max_in_sem);
    while (now > m && !atomic_compare_exchange_weak(&max_in_sem, &m, now))
      ;
    if (i % 8 == 0)
      relax();
    atomic_fetch_sub(&in_sem, 1);
    TCHECK_EQ(weft_sem_post(&limiter), 0);
  }
  return NULL;
}

static void sem_limit(void) {
  cr_assert_eq(weft_sem_init(&limiter, SEM_K), 0);
  run_mixed(limited, 12, 3);
  cr_expect_leq(atomic_load(&max_in_sem), SEM_K);
  cr_expect_geq(atomic_load(&max_in_sem), 1);
  cr_expect_eq(weft_sem_value(&limiter), SEM_K);
  cr_expect_eq(weft_sem_destroy(&limiter), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(sync_two_workers, sem_limits_holders) { sem_limit(); }
Test(sync_four_workers, sem_limits_holders) { sem_limit(); }

static void *sem_timeouts(void *arg) {
  weft_sem *s = arg;
  TCHECK_EQ(weft_sem_trywait(s), -EAGAIN);
  TCHECK_EQ(weft_sem_wait_until(s, WEFT_NOWAIT), -EAGAIN);
  int64_t dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_sem_wait_until(s, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  return NULL;
}

Test(sync_two_workers, sem_errors) {
  weft_sem s;
  cr_expect_eq(weft_sem_init(&s, WEFT_SEM_MAX + 1u), -EINVAL);
  cr_expect_eq(weft_sem_init(&s, UINT32_MAX), -EINVAL);
  cr_assert_eq(weft_sem_init(&s, 0), 0);
  cr_expect_eq(weft_sem_value(&s), 0);
  h_join(h_spawn(sem_timeouts, &s));
  h_pjoin(h_pthread(sem_timeouts, &s));
  cr_expect_eq(weft_sem_trywait(&s), -EAGAIN);
  cr_expect_eq(weft_sem_post(&s), 0);
  cr_expect_eq(weft_sem_value(&s), 1);
  cr_expect_eq(weft_sem_trywait(&s), 0);
  cr_expect_eq(weft_sem_value(&s), 0);
  cr_expect_eq(weft_sem_destroy(&s), 0);

  cr_assert_eq(weft_sem_init(&s, WEFT_SEM_MAX), 0);
  cr_expect_eq(weft_sem_value(&s), (int)WEFT_SEM_MAX);
  cr_expect_eq(weft_sem_post(&s), -EOVERFLOW);
  cr_expect_eq(weft_sem_value(&s), (int)WEFT_SEM_MAX);
  cr_expect_eq(weft_sem_trywait(&s), 0);
  cr_expect_eq(weft_sem_post(&s), 0);
  cr_expect_eq(weft_sem_destroy(&s), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* Posts wake blocked waiters of both kinds, one post per waiter. */
static weft_sem handoff;
static atomic_int passed;

static void *pass(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_sem_wait(&handoff), 0);
  atomic_fetch_add(&passed, 1);
  return NULL;
}

Test(sync_two_workers, sem_posts_wake_waiters) {
  weft_gthread g[10];
  pthread_t p[2];
  cr_assert_eq(weft_sem_init(&handoff, 0), 0);
  for (int i = 0; i < 10; i++)
    g[i] = h_spawn(pass, NULL);
  for (int i = 0; i < 2; i++)
    p[i] = h_pthread(pass, NULL);
  weft_sleep(MS(10));
  cr_expect_eq(atomic_load(&passed), 0);
  for (int i = 0; i < 12; i++)
    cr_expect_eq(weft_sem_post(&handoff), 0);
  for (int i = 0; i < 10; i++)
    h_join(g[i]);
  for (int i = 0; i < 2; i++)
    h_pjoin(p[i]);
  cr_expect_eq(atomic_load(&passed), 12);
  cr_expect_eq(weft_sem_value(&handoff), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Waitgroup                                                                */
/* ------------------------------------------------------------------------ */

#define WG_WORKERS 16 /* 12 green, 4 pthreads */
#define WG_CHILDREN 4

static weft_waitgroup wg = WEFT_WAITGROUP_INIT;
static atomic_int wg_done_count;

static void *wg_child(void *arg) {
  (void)arg;
  weft_yield();
  atomic_fetch_add(&wg_done_count, 1);
  TCHECK_EQ(weft_waitgroup_done(&wg), 0);
  return NULL;
}

/* Adds for its children before its own done, so the counter never reaches
 * zero early. */
static void *wg_worker(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_waitgroup_add(&wg, WG_CHILDREN), 0);
  weft_gthread_attr attr = {.detached = true};
  for (int i = 0; i < WG_CHILDREN; i++)
    TCHECK_EQ(weft_spawn(NULL, &attr, wg_child, NULL), 0);
  atomic_fetch_add(&wg_done_count, 1);
  TCHECK_EQ(weft_waitgroup_done(&wg), 0);
  return NULL;
}

#define WG_TOTAL (WG_WORKERS * (1 + WG_CHILDREN))

static void *wg_waiter(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_waitgroup_wait(&wg), 0);
  TCHECK_EQ(atomic_load(&wg_done_count), WG_TOTAL);
  return NULL;
}

static void waitgroup_many(void) {
  weft_gthread w[WG_WORKERS], gw[4];
  pthread_t pw[WG_WORKERS], pwait;
  cr_assert_eq(weft_waitgroup_init(&wg), 0);
  cr_assert_eq(weft_waitgroup_add(&wg, WG_WORKERS), 0);
  for (int i = 0; i < 4; i++)
    gw[i] = h_spawn(wg_waiter, NULL);
  pwait = h_pthread(wg_waiter, NULL);
  for (int i = 0; i < 12; i++)
    w[i] = h_spawn(wg_worker, NULL);
  for (int i = 12; i < WG_WORKERS; i++)
    pw[i] = h_pthread(wg_worker, NULL);
  cr_expect_eq(weft_waitgroup_wait(&wg), 0);
  cr_expect_eq(atomic_load(&wg_done_count), WG_TOTAL);
  for (int i = 0; i < 12; i++)
    h_join(w[i]);
  for (int i = 12; i < WG_WORKERS; i++)
    h_pjoin(pw[i]);
  for (int i = 0; i < 4; i++)
    h_join(gw[i]);
  h_pjoin(pwait);
  /* Zero again: waiting returns at once. */
  cr_expect_eq(weft_waitgroup_wait_until(&wg, WEFT_NOWAIT), 0);
  EXPECT_NO_THREAD_FAILURES();
}

Test(sync_two_workers, waitgroup_many_adders) { waitgroup_many(); }
Test(sync_four_workers, waitgroup_many_adders) { waitgroup_many(); }

Test(sync_two_workers, waitgroup_errors) {
  weft_waitgroup w;
  cr_assert_eq(weft_waitgroup_init(&w), 0);
  cr_expect_eq(weft_waitgroup_wait(&w), 0, "waiting at zero returns");
  cr_expect_eq(weft_waitgroup_done(&w), -EINVAL);
  cr_expect_eq(weft_waitgroup_add(&w, -1), -EINVAL);
  cr_expect_eq(weft_waitgroup_add(&w, 2), 0);
  cr_expect_eq(weft_waitgroup_add(&w, -3), -EINVAL);
  /* Unchanged: still 2. */
  cr_expect_eq(weft_waitgroup_wait_until(&w, WEFT_NOWAIT), -EAGAIN);
  int64_t dl = weft_deadline(MS(20));
  cr_expect_eq(weft_waitgroup_wait_until(&w, dl), -ETIMEDOUT);
  cr_expect_geq(weft_now(), dl);
  cr_expect_eq(weft_waitgroup_done(&w), 0);
  cr_expect_eq(weft_waitgroup_wait_until(&w, WEFT_NOWAIT), -EAGAIN);
  cr_expect_eq(weft_waitgroup_add(&w, -1), 0);
  cr_expect_eq(weft_waitgroup_wait_until(&w, WEFT_NOWAIT), 0);
  cr_expect_eq(weft_waitgroup_add(&w, 0), 0);
  cr_expect_eq(weft_waitgroup_add(&w, INT64_MIN), -EINVAL);
  /* Reusable. */
  cr_expect_eq(weft_waitgroup_add(&w, 1), 0);
  cr_expect_eq(weft_waitgroup_done(&w), 0);
  cr_expect_eq(weft_waitgroup_wait(&w), 0);
}

/* ------------------------------------------------------------------------ */
/* Once                                                                     */
/* ------------------------------------------------------------------------ */

static weft_once once = WEFT_ONCE_INIT;
static atomic_int once_runs, once_effect, once_go;
static int once_arg_seen;

static void once_fn(void *arg) {
  atomic_fetch_add(&once_runs, 1);
  once_arg_seen = *(int *)arg;
  weft_sleep(MS(5)); /* widen the window for the other callers */
  atomic_store(&once_effect, 42);
}

static int once_arg = 7;

static void *once_caller(void *arg) {
  (void)arg;
  while (!atomic_load(&once_go))
    relax();
  TCHECK_EQ(weft_once_call(&once, once_fn, &once_arg), 0);
  TCHECK_EQ(atomic_load(&once_effect), 42);
  return NULL;
}

static void once_concurrent(void) {
  weft_gthread g[32];
  pthread_t p[4];
  for (int i = 0; i < 32; i++)
    g[i] = h_spawn(once_caller, NULL);
  for (int i = 0; i < 4; i++)
    p[i] = h_pthread(once_caller, NULL);
  atomic_store(&once_go, 1);
  for (int i = 0; i < 32; i++)
    h_join(g[i]);
  for (int i = 0; i < 4; i++)
    h_pjoin(p[i]);
  cr_expect_eq(atomic_load(&once_runs), 1, "fn ran %d times",
               atomic_load(&once_runs));
  cr_expect_eq(once_arg_seen, 7);
  /* Later calls do nothing. */
  cr_expect_eq(weft_once_call(&once, once_fn, &once_arg), 0);
  cr_expect_eq(atomic_load(&once_runs), 1);
  EXPECT_NO_THREAD_FAILURES();
}

Test(sync_two_workers, once_runs_exactly_once) { once_concurrent(); }
Test(sync_four_workers, once_runs_exactly_once) { once_concurrent(); }

Test(sync_two_workers, once_null_fn) {
  weft_once o = WEFT_ONCE_INIT;
  cr_expect_eq(weft_once_call(&o, NULL, NULL), -EINVAL);
}
