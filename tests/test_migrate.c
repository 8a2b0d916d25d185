/*
 * test_migrate.c - green threads moving between workers, and green-thread
 * locals.
 *
 * Invariants checked:
 *  - a green thread that moves from one worker (kernel thread) to another
 *    keeps its errno and its weft_local values: with 2 workers, many green
 *    threads each set errno and a local to values of their own, then switch
 *    over and over (yield, sleep, channel traffic), and after every switch
 *    both still hold their own values; migrations are observed (the test
 *    keeps trying for a bounded number of iterations until they are);
 *  - a local's destructor runs once, with the thread's value, when a thread
 *    that set a non-NULL value exits (by return or weft_exit);
 *  - keys run out with -EAGAIN after at most WEFT_LOCAL_MAX; bad keys are
 *    refused;
 *  - outside green threads, locals are per kernel thread.
 */
#include "helpers.h"

TestSuite(migrate, .init = h_start2, .fini = h_stop, .timeout = 60);

#define MOVERS 16
#define MAX_ITERS 200000
#define WANT_MIGRATIONS 64

static weft_local_key key;
static weft_chan *ring[MOVERS];
static atomic_long migrations;
static atomic_long wrong_errno, wrong_local, wrong_name;
static atomic_int movers_done;
static int64_t give_up_at;

struct mover {
  int index;
  int slot;  /* the local points here */
  long iters;
  long moves;
  int last_bad_errno;
};

static void check_mine(struct mover *m, char *name) {
  int e = h_errno_get();
  if (e != 1000 + m->index) {
    atomic_fetch_add(&wrong_errno, 1);
    m->last_bad_errno = e;
  }
  if (weft_local_get(key) != &m->slot)
    atomic_fetch_add(&wrong_local, 1);
  if (strcmp(weft_name(), name) != 0)
    atomic_fetch_add(&wrong_name, 1);
}

static void *mover(void *arg) {
  struct mover *m = arg;
  char name[WEFT_NAME_MAX];
  uint64_t rng = (uint64_t)m->index * 7919 + 1;
  int w = weft_worker_index();

  snprintf(name, sizeof name, "mover-%d", m->index);
  TCHECK_EQ(weft_set_name(name), 0);
  TCHECK_EQ(weft_local_set(key, &m->slot), 0);
  h_errno_set(1000 + m->index);

  for (m->iters = 0; m->iters < MAX_ITERS; m->iters++) {
    if (atomic_load(&migrations) >= WANT_MIGRATIONS &&
        m->iters >= 1000)
      break;
    if (m->iters % 256 == 0 && weft_now() > give_up_at)
      break;
    int v = m->index;
    switch (h_rand(&rng) % 6) {
    case 0:
    case 1:
      weft_yield();
      break;
    case 2:
      weft_sleep(0);
      break;
    case 3:
      weft_sleep((int64_t)(h_rand(&rng) % 50000)); /* up to 50 us */
      break;
    case 4: /* feed the next mover; never block */
      weft_chan_send_until(ring[(m->index + 1) % MOVERS], &v, WEFT_NOWAIT);
      break;
    case 5: /* take what the previous one fed, waiting a little */
      weft_chan_recv_until(ring[m->index], &v, weft_deadline(100000));
      break;
    }
    check_mine(m, name);
    int now = weft_worker_index();
    TCHECK(now >= 0 && now < 2);
    if (now != w) {
      m->moves++;
      atomic_fetch_add(&migrations, 1);
      w = now;
    }
    h_errno_set(1000 + m->index); /* in case a call legitimately set it */
  }
  atomic_fetch_add(&movers_done, 1);
  return NULL;
}

Test(migrate, errno_and_locals_follow_the_thread) {
  struct mover m[MOVERS];
  weft_gthread t[MOVERS];
  cr_assert_eq(weft_local_create(&key, NULL), 0);
  for (int i = 0; i < MOVERS; i++)
    cr_assert_eq(weft_chan_open(&ring[i], sizeof(int), 4), 0);
  give_up_at = weft_now() + (int64_t)20 * 1000000000;
  for (int i = 0; i < MOVERS; i++) {
    m[i] = (struct mover){.index = i};
    t[i] = h_spawn(mover, &m[i]);
  }
  for (int i = 0; i < MOVERS; i++)
    h_join(t[i]);
  for (int i = 0; i < MOVERS; i++)
    cr_expect_eq(weft_chan_free(ring[i]), 0);

  long iters = 0;
  for (int i = 0; i < MOVERS; i++)
    iters += m[i].iters;
  cr_log_info("%ld migrations in %ld switches", atomic_load(&migrations),
              iters);
  cr_expect_gt(atomic_load(&migrations), 0,
               "no green thread ever moved to another worker in %ld "
               "switches",
               iters);
  cr_expect_eq(atomic_load(&wrong_errno), 0,
               "errno was wrong %ld times after a switch (%ld migrations)",
               atomic_load(&wrong_errno), atomic_load(&migrations));
  cr_expect_eq(atomic_load(&wrong_local), 0,
               "a local was wrong %ld times after a switch",
               atomic_load(&wrong_local));
  cr_expect_eq(atomic_load(&wrong_name), 0,
               "the name was wrong %ld times after a switch",
               atomic_load(&wrong_name));
  EXPECT_NO_THREAD_FAILURES();
}

/* Migration with a thread that only ever yields and one that sleeps:
 * errno right after each call, set differently before every call. */
static void *errno_churn(void *arg) {
  uintptr_t base = (uintptr_t)arg;
  long bad = 0;
  for (int i = 0; i < 20000; i++) {
    int mine = (int)(base + (uintptr_t)i);
    h_errno_set(mine);
    if (i % 64 == 0)
      weft_sleep(1000);
    else
      weft_yield();
    bad += h_errno_get() != mine;
  }
  return (void *)bad;
}

Test(migrate, errno_survives_every_switch) {
  enum { N = 8 };
  weft_gthread t[N];
  for (uintptr_t i = 0; i < N; i++)
    t[i] = h_spawn(errno_churn, (void *)(i * 100000));
  long bad = 0;
  for (int i = 0; i < N; i++)
    bad += (long)(intptr_t)h_join(t[i]);
  cr_expect_eq(bad, 0, "errno was wrong %ld times", bad);
}

/* ------------------------------------------------------------------------ */
/* Destructors                                                              */
/* ------------------------------------------------------------------------ */

#define DTOR_THREADS 64

static atomic_int dtor_calls;
static atomic_int dtor_seen[DTOR_THREADS + 1];

static void dtor(void *v) {
  int *slot = v;
  atomic_fetch_add(&dtor_calls, 1);
  atomic_fetch_add(&dtor_seen[*slot], 1);
}

static weft_local_key dkey, dkey2;
static int slots[DTOR_THREADS + 1];

static void *set_and_leave(void *arg) {
  int i = (int)(intptr_t)arg;
  TCHECK_EQ(weft_local_get(dkey), NULL);
  if (i % 4 != 3) /* every fourth thread sets nothing: no dtor call */
    TCHECK_EQ(weft_local_set(dkey, &slots[i]), 0);
  TCHECK_EQ(weft_local_get(dkey), i % 4 != 3 ? &slots[i] : NULL);
  weft_yield();
  if (i % 2)
    weft_exit(NULL);
  return NULL;
}

Test(migrate, local_destructor_runs_at_exit) {
  cr_assert_eq(weft_local_create(&dkey, dtor), 0);
  weft_gthread t[DTOR_THREADS];
  for (int i = 0; i < DTOR_THREADS; i++) {
    slots[i] = i;
    t[i] = h_spawn(set_and_leave, (void *)(intptr_t)i);
  }
  for (int i = 0; i < DTOR_THREADS; i++)
    h_join(t[i]);
  int expected = 0;
  for (int i = 0; i < DTOR_THREADS; i++) {
    int want = i % 4 != 3;
    expected += want;
    cr_expect_eq(atomic_load(&dtor_seen[i]), want,
                 "thread %d: destructor ran %d times", i,
                 atomic_load(&dtor_seen[i]));
  }
  cr_expect_eq(atomic_load(&dtor_calls), expected);
  EXPECT_NO_THREAD_FAILURES();
}

/* A value set back to NULL before exit gets no destructor call; a key
 * without destructor is fine. */
static void *set_then_clear(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_local_set(dkey, &slots[0]), 0);
  TCHECK_EQ(weft_local_set(dkey2, &slots[1]), 0);
  TCHECK_EQ(weft_local_set(dkey, NULL), 0);
  return NULL;
}

Test(migrate, cleared_local_gets_no_destructor) {
  cr_assert_eq(weft_local_create(&dkey, dtor), 0);
  cr_assert_eq(weft_local_create(&dkey2, NULL), 0);
  cr_expect_neq(dkey.index, dkey2.index);
  h_join(h_spawn(set_then_clear, NULL));
  cr_expect_eq(atomic_load(&dtor_calls), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* Every key a process can have, in green threads that move between the
 * workers: each thread's value of each key is its own, survives switches,
 * and gets its destructor called once at exit (the first keys' values
 * live in the descriptor, the others in an array of their own).  Threads
 * that set only one of the last keys, or only one of the first, too. */
#define ALL_THREADS 8
static weft_local_key all_keys[WEFT_LOCAL_MAX];
static int nall;
static atomic_int all_calls[ALL_THREADS][WEFT_LOCAL_MAX];
static int all_vals[ALL_THREADS][WEFT_LOCAL_MAX];

static void all_dtor(void *v) {
  int *p = v;
  int t = (int)(p - &all_vals[0][0]) / WEFT_LOCAL_MAX;
  int k = (int)(p - &all_vals[0][0]) % WEFT_LOCAL_MAX;
  atomic_fetch_add(&all_calls[t][k], 1);
}

static void *set_every_key(void *arg) {
  int t = (int)(intptr_t)arg;
  int lo = 0, hi = nall; /* threads 0-5: every key */
  if (t == 6)
    lo = nall - 1; /* only the last key */
  if (t == 7)
    hi = 1; /* only the first */
  for (int k = 0; k < nall; k++)
    TCHECK_EQ(weft_local_get(all_keys[k]), NULL);
  for (int round = 0; round < 3; round++) {
    for (int k = lo; k < hi; k++)
      TCHECK_EQ(weft_local_set(all_keys[k], &all_vals[t][k]), 0);
    weft_yield();
    for (int k = 0; k < nall; k++)
      TCHECK_EQ(weft_local_get(all_keys[k]),
                k >= lo && k < hi ? &all_vals[t][k] : NULL);
  }
  return NULL;
}

Test(migrate, every_key_is_per_thread_with_its_destructor) {
  while (nall < WEFT_LOCAL_MAX &&
         weft_local_create(&all_keys[nall], all_dtor) == 0)
    nall++;
  cr_assert_gt(nall, 8, "only %d keys", nall);
  /* Two rounds: the second's threads reuse the first's descriptors. */
  for (int pass = 0; pass < 2; pass++) {
    memset(all_calls, 0, sizeof all_calls);
    weft_gthread t[ALL_THREADS];
    for (int i = 0; i < ALL_THREADS; i++)
      t[i] = h_spawn(set_every_key, (void *)(intptr_t)i);
    for (int i = 0; i < ALL_THREADS; i++)
      h_join(t[i]);
    for (int i = 0; i < ALL_THREADS; i++) {
      int lo = i == 6 ? nall - 1 : 0, hi = i == 7 ? 1 : nall;
      for (int k = 0; k < nall; k++)
        cr_expect_eq(atomic_load(&all_calls[i][k]), k >= lo && k < hi,
                     "pass %d, thread %d, key %d: destructor ran %d times",
                     pass, i, k, atomic_load(&all_calls[i][k]));
    }
  }
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

Test(migrate, keys_run_out) {
  weft_local_key k;
  int created = 0, rc;
  unsigned seen[WEFT_LOCAL_MAX + 1];
  while ((rc = weft_local_create(&k, NULL)) == 0) {
    cr_assert_leq(created, WEFT_LOCAL_MAX, "more than WEFT_LOCAL_MAX keys");
    seen[created++] = k.index;
  }
  cr_expect_eq(rc, -EAGAIN);
  cr_expect_gt(created, WEFT_LOCAL_MAX / 2, "only %d keys", created);
  cr_expect_eq(weft_local_create(&k, NULL), -EAGAIN);
  for (int i = 0; i < created; i++)
    for (int j = i + 1; j < created; j++)
      cr_expect_neq(seen[i], seen[j], "two keys share index %u", seen[i]);
  /* Every key works. */
  for (int i = 0; i < created; i++) {
    weft_local_key kk = {seen[i]};
    cr_expect_eq(weft_local_set(kk, &seen[i]), 0);
  }
  for (int i = 0; i < created; i++) {
    weft_local_key kk = {seen[i]};
    cr_expect_eq(weft_local_get(kk), &seen[i]);
  }
}

Test(migrate, bad_keys) {
  weft_local_key k;
  cr_assert_eq(weft_local_create(&k, NULL), 0);
  weft_local_key bad[] = {{WEFT_LOCAL_MAX}, {WEFT_LOCAL_MAX + 7}, {~0u},
                          {k.index + 1}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_expect_eq(weft_local_set(bad[i], &k), -EINVAL, "key %u", bad[i].index);
    cr_expect_null(weft_local_get(bad[i]), "key %u", bad[i].index);
  }
}

/* ------------------------------------------------------------------------ */
/* Outside green threads: per kernel thread                                 */
/* ------------------------------------------------------------------------ */

static weft_local_key pkey;
static pthread_barrier_t barrier;
static int pvals[4];

static void *kthread_locals(void *arg) {
  int i = (int)(intptr_t)arg;
  TCHECK_EQ(weft_local_get(pkey), NULL);
  TCHECK_EQ(weft_local_set(pkey, &pvals[i]), 0);
  pthread_barrier_wait(&barrier); /* everyone has set theirs */
  for (int r = 0; r < 1000; r++) {
    TCHECK_EQ(weft_local_get(pkey), &pvals[i]);
    sched_yield();
  }
  pthread_barrier_wait(&barrier);
  return NULL;
}

static void *green_locals(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_local_get(pkey), NULL); /* not the worker's value */
  TCHECK_EQ(weft_local_set(pkey, &pvals[3]), 0);
  weft_yield();
  TCHECK_EQ(weft_local_get(pkey), &pvals[3]);
  return NULL;
}

Test(migrate, locals_outside_green_threads_are_per_kthread) {
  cr_assert_eq(weft_local_create(&pkey, NULL), 0);
  cr_assert_eq(pthread_barrier_init(&barrier, NULL, 3), 0);
  cr_expect_null(weft_local_get(pkey));
  cr_expect_eq(weft_local_set(pkey, &pvals[2]), 0);
  pthread_t a = h_pthread(kthread_locals, (void *)0);
  pthread_t b = h_pthread(kthread_locals, (void *)1);
  pthread_barrier_wait(&barrier);
  cr_expect_eq(weft_local_get(pkey), &pvals[2]);
  pthread_barrier_wait(&barrier);
  h_pjoin(a);
  h_pjoin(b);
  cr_expect_eq(weft_local_get(pkey), &pvals[2]);
  /* Green threads have their own, even while main has one. */
  h_join(h_spawn(green_locals, NULL));
  cr_expect_eq(weft_local_get(pkey), &pvals[2]);
  pthread_barrier_destroy(&barrier);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* errno read plainly, as user code does                                    */
/* ------------------------------------------------------------------------ */

/* No helper hides the reads: this is how a server reads errno after a
 * failed call.  glibc declares __errno_location const, so unless weft.h
 * says otherwise, GCC at -O2 computes errno's address once per function and
 * keeps it across weft_sleep/weft_yield, and after a migration reads and
 * writes the old worker's errno. */
static void *errno_plain(void *arg) {
  int mine = (int)(intptr_t)arg;
  long bad = 0;
  for (int i = 0; i < 400; i++) {
    errno = mine;
    weft_sleep(20000);
    if (errno != mine)
      bad++;
    weft_yield();
    if (errno != mine)
      bad++;
  }
  return (void *)bad;
}

Test(migrate, errno_read_plainly_follows_the_thread) {
  enum { N = 64 };
  weft_gthread t[N];
  for (intptr_t i = 0; i < N; i++)
    t[i] = h_spawn(errno_plain, (void *)(1000 + i));
  long bad = 0;
  for (int i = 0; i < N; i++)
    bad += (long)(intptr_t)h_join(t[i]);
  cr_expect_eq(bad, 0, "errno read plainly was wrong %ld times of %d", bad,
               N * 400 * 2);
}

/* ------------------------------------------------------------------------ */
/* Pinned threads never move                                                */
/* ------------------------------------------------------------------------ */

/* A C thread-local: its address is the kernel thread's, so a pinned
 * thread sees the same one after every call.  (Other green threads of the
 * worker share it, as they share the kernel thread.) */
static __thread int tl_mine;
H_OPAQUE static int *tl_addr(void) { return &tl_mine; }
static atomic_long pinned_moves, unpinned_moves;
static weft_sem pin_sem;

struct pinned_arg {
  bool pinned;    /* pinned from the start (attr) */
  bool pin_later; /* pins itself with weft_pin after a few switches */
  int id;
};

static void *pin_worker(void *p) {
  struct pinned_arg *a = p;
  long moves = 0, pinned_moved = 0;
  int home = weft_worker_index();
  int *tl = tl_addr();
  for (int i = 0; i < 3000; i++) {
    if (a->pin_later && i == 100) {
      int rc = weft_pin(true);
      TCHECK(rc >= 0);
      home = weft_worker_index();
      TCHECK_EQ(rc, home);
      tl = tl_addr();
    }
    bool pinned = a->pinned || (a->pin_later && i >= 100);
    switch (i % 4) {
    case 0: weft_yield(); break;
    case 1: weft_sleep(i % 8 == 1 ? 2000 : 0); break;
    case 2: weft_sem_wait(&pin_sem); break; /* posted by other threads */
    default: weft_sem_post(&pin_sem); weft_yield(); break;
    }
    int now = weft_worker_index();
    if (now != home) {
      if (pinned)
        pinned_moved++;
      else
        moves++;
      home = now;
    }
    if (pinned)
      TCHECK(tl_addr() == tl);
    tl = tl_addr();
  }
  atomic_fetch_add(&pinned_moves, pinned_moved);
  atomic_fetch_add(&unpinned_moves, moves);
  return NULL;
}

/* Posts the semaphore from a plain thread too, so that wakes come from
 * outside the workers (the global queue). */
static atomic_int poster_stop;
static void *plain_poster(void *p) {
  (void)p;
  while (!atomic_load(&poster_stop)) {
    weft_sem_post(&pin_sem);
    usleep(50);
  }
  return NULL;
}

Test(migrate, pinned_threads_never_move) {
  enum { N = 24 };
  struct pinned_arg a[N];
  weft_gthread t[N];
  cr_assert_eq(weft_sem_init(&pin_sem, 0), 0);
  atomic_store(&poster_stop, 0);
  pthread_t poster = h_pthread(plain_poster, NULL);
  /* Rounds until unpinned threads were seen to move (almost always the
   * first): only then does "pinned threads did not" mean something. */
  for (int round = 0; round < 10 && !atomic_load(&unpinned_moves); round++) {
  for (int i = 0; i < N; i++) {
    a[i] = (struct pinned_arg){.pinned = i % 3 == 0, .pin_later = i % 3 == 1,
                               .id = 1 + i};
    weft_gthread_attr at = {.pinned = a[i].pinned};
    cr_assert_eq(weft_spawn(&t[i], &at, pin_worker, &a[i]), 0);
  }
  /* Keep the semaphore from running dry while threads finish. */
  for (int done = 0; done < N;) {
    for (int k = 0; k < 64; k++)
      weft_sem_post(&pin_sem);
    void *r;
    while (done < N && weft_tryjoin(t[done], &r) == 0)
      done++;
    usleep(1000);
  }
  }
  atomic_store(&poster_stop, 1);
  h_pjoin(poster);
  cr_log_info("unpinned threads moved %ld times, pinned %ld",
              atomic_load(&unpinned_moves), atomic_load(&pinned_moves));
  /* The workload does move threads: otherwise the check proves nothing. */
  cr_expect_gt(atomic_load(&unpinned_moves), 0,
               "no unpinned thread ever moved: the test cannot tell");
  cr_expect_eq(atomic_load(&pinned_moves), 0,
               "pinned threads moved %ld times", atomic_load(&pinned_moves));
  EXPECT_NO_THREAD_FAILURES();
}

Test(migrate, pin_outside_a_green_thread_is_refused) {
  cr_expect_eq(weft_pin(true), -EPERM);
  cr_expect_eq(weft_pin(false), -EPERM);
}
