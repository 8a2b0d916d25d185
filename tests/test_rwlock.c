/*
 * test_rwlock.c - the read-write lock, shared between green threads on 2
 * workers and plain pthreads.
 *
 * Invariants checked:
 *  - readers share: several threads hold read locks at once;
 *  - writers exclude: under load, no reader is inside with a writer and
 *    no two writers overlap, and two counters written under the write lock
 *    are always seen equal under a read lock;
 *  - writer preference: a writer gets in while overlapping readers keep
 *    the lock read-locked, and readers arriving after it queue behind it;
 *  - no reader starvation: a writer's unlock admits the queued readers
 *    together, and a reader gets in while writers keep coming;
 *  - timeouts and the try variants, and a writer that times out lets the
 *    readers queued behind it in.
 */
#include "helpers.h"

TestSuite(rwlock, .init = h_start2, .fini = h_stop, .timeout = 60);

static void relax(void) { weft_yield(); }

/* ------------------------------------------------------------------------ */
/* Readers share                                                            */
/* ------------------------------------------------------------------------ */

static weft_rwlock rw = WEFT_RWLOCK_INIT;

static void *read_too(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_tryrdlock(&rw), 0);
  TCHECK_EQ(weft_rwlock_rdlock_until(&rw, WEFT_NOWAIT), 0);
  TCHECK_EQ(weft_rwlock_rdlock(&rw), 0);
  TCHECK_EQ(weft_rwlock_trywrlock(&rw), -EBUSY);
  for (int i = 0; i < 3; i++)
    TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  return NULL;
}

Test(rwlock, readers_share) {
  cr_assert_eq(weft_rwlock_init(&rw), 0);
  cr_assert_eq(weft_rwlock_rdlock(&rw), 0);
  h_join(h_spawn(read_too, NULL));
  h_pjoin(h_pthread(read_too, NULL));
  cr_expect_eq(weft_rwlock_destroy(&rw), -EBUSY);
  cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  cr_expect_eq(weft_rwlock_unlock(&rw), -EPERM);
  cr_expect_eq(weft_rwlock_destroy(&rw), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Writers exclude, under load                                              */
/* ------------------------------------------------------------------------ */

#define ROUNDS 4000

static long ca, cb; /* written only under the write lock */
static atomic_int readers_in, writers_in;
static atomic_long writes;

static int lock_write(int how) {
  switch (how % 3) {
  case 0:
    return weft_rwlock_wrlock(&rw);
  case 1:
    return weft_rwlock_wrlock_until(&rw, weft_deadline(MS(30000)));
  default:
    for (;;) {
      int r = weft_rwlock_trywrlock(&rw);
      if (r != -EBUSY)
        return r;
      relax();
    }
  }
}

static int lock_read(int how) {
  switch (how % 3) {
  case 0:
    return weft_rwlock_rdlock(&rw);
  case 1:
    return weft_rwlock_rdlock_until(&rw, weft_deadline(MS(30000)));
  default:
    for (;;) {
      int r = weft_rwlock_tryrdlock(&rw);
      if (r != -EBUSY)
        return r;
      relax();
    }
  }
}

static void *mixed_load(void *arg) {
  int self = (int)(intptr_t)arg;
  for (int i = 0; i < ROUNDS; i++) {
    if ((i + self) % 4 == 0) {
      TCHECK_EQ(lock_write(i / 4 + self), 0);
      TCHECK_EQ(atomic_fetch_add(&writers_in, 1), 0);
      TCHECK_EQ(atomic_load(&readers_in), 0);
      ca++;
      if (i % 64 == 0)
        relax(); /* let others find it write-locked */
      cb++;
      atomic_fetch_add(&writes, 1);
      atomic_fetch_sub(&writers_in, 1);
      TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
    } else {
      TCHECK_EQ(lock_read(i + self), 0);
      atomic_fetch_add(&readers_in, 1);
      TCHECK_EQ(atomic_load(&writers_in), 0);
      TCHECK_EQ(ca, cb);
      if (i % 32 == 0)
        relax();
      atomic_fetch_sub(&readers_in, 1);
      TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
    }
  }
  return NULL;
}

Test(rwlock, writers_exclude_under_load) {
  weft_gthread g[6];
  pthread_t p[2];
  for (int i = 0; i < 6; i++)
    g[i] = h_spawn(mixed_load, (void *)(intptr_t)i);
  for (int i = 0; i < 2; i++)
    p[i] = h_pthread(mixed_load, (void *)(intptr_t)(6 + i));
  for (int i = 0; i < 6; i++)
    h_join(g[i]);
  for (int i = 0; i < 2; i++)
    h_pjoin(p[i]);
  cr_expect_eq(ca, atomic_load(&writes));
  cr_expect_eq(cb, atomic_load(&writes));
  cr_expect_eq(weft_rwlock_destroy(&rw), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Fairness                                                                 */
/* ------------------------------------------------------------------------ */

static atomic_int stop;

/* Overlapping readers: without writer preference the lock would never be
 * free of readers. */
static void *reader_stream(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    TCHECK_EQ(weft_rwlock_rdlock(&rw), 0);
    weft_sleep(MS(1));
    TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  }
  return NULL;
}

Test(rwlock, writer_not_starved_by_readers) {
  weft_gthread g[3];
  pthread_t p[2];
  for (int i = 0; i < 3; i++)
    g[i] = h_spawn(reader_stream, NULL);
  for (int i = 0; i < 2; i++)
    p[i] = h_pthread(reader_stream, NULL);
  weft_sleep(MS(10));
  for (int round = 0; round < 5; round++) {
    cr_expect_eq(weft_rwlock_wrlock_until(&rw, weft_deadline(MS(20000))), 0);
    cr_expect_eq(weft_rwlock_unlock(&rw), 0);
    weft_sleep(MS(2));
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 3; i++)
    h_join(g[i]);
  for (int i = 0; i < 2; i++)
    h_pjoin(p[i]);
  EXPECT_NO_THREAD_FAILURES();
}

static void *writer_stream(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    TCHECK_EQ(weft_rwlock_wrlock(&rw), 0);
    weft_sleep(MS(1));
    TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  }
  return NULL;
}

Test(rwlock, reader_not_starved_by_writers) {
  atomic_store(&stop, 0);
  weft_gthread g = h_spawn(writer_stream, NULL);
  pthread_t p = h_pthread(writer_stream, NULL);
  weft_sleep(MS(10));
  for (int round = 0; round < 5; round++) {
    cr_expect_eq(weft_rwlock_rdlock_until(&rw, weft_deadline(MS(20000))), 0);
    cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  }
  atomic_store(&stop, 1);
  h_join(g);
  h_pjoin(p);
  EXPECT_NO_THREAD_FAILURES();
}

#define BATCH 4
static atomic_int batch_in;

/* Each reader waits inside until all of them are: they must have been let
 * in together. */
static void *batch_reader(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_rdlock(&rw), 0);
  atomic_fetch_add(&batch_in, 1);
  int64_t give_up = weft_deadline(MS(20000));
  while (atomic_load(&batch_in) < BATCH && weft_now() < give_up)
    weft_sleep(MS(1));
  TCHECK_EQ(atomic_load(&batch_in) >= BATCH, 1);
  TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  return NULL;
}

static void *writer_once(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_wrlock(&rw), 0);
  TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  return NULL;
}

Test(rwlock, writer_unlock_admits_queued_readers_together) {
  weft_gthread g[BATCH / 2];
  pthread_t p[BATCH / 2];
  cr_assert_eq(weft_rwlock_wrlock(&rw), 0);
  for (int i = 0; i < BATCH / 2; i++) {
    g[i] = h_spawn(batch_reader, NULL);
    p[i] = h_pthread(batch_reader, NULL);
  }
  weft_sleep(MS(20)); /* the readers queue */
  pthread_t w = h_pthread(writer_once, NULL); /* and a writer behind them */
  weft_sleep(MS(20));
  cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  for (int i = 0; i < BATCH / 2; i++) {
    h_join(g[i]);
    h_pjoin(p[i]);
  }
  h_pjoin(w);
  cr_expect_eq(weft_rwlock_destroy(&rw), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Timeouts and try                                                         */
/* ------------------------------------------------------------------------ */

static void *try_against_writer(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_tryrdlock(&rw), -EBUSY);
  TCHECK_EQ(weft_rwlock_trywrlock(&rw), -EBUSY);
  TCHECK_EQ(weft_rwlock_rdlock_until(&rw, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_rwlock_wrlock_until(&rw, WEFT_NOWAIT), -EAGAIN);
  int64_t dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_rwlock_rdlock_until(&rw, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  dl = weft_deadline(MS(20));
  TCHECK_EQ(weft_rwlock_wrlock_until(&rw, dl), -ETIMEDOUT);
  TCHECK(weft_now() >= dl);
  TCHECK_EQ(weft_rwlock_wrlock_until(&rw, weft_deadline(-1)), -ETIMEDOUT);
  TCHECK_EQ(weft_rwlock_unlock(&rw), -EPERM); /* not the writer */
  return NULL;
}

static void *try_against_reader(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_trywrlock(&rw), -EBUSY);
  TCHECK_EQ(weft_rwlock_wrlock_until(&rw, WEFT_NOWAIT), -EAGAIN);
  TCHECK_EQ(weft_rwlock_wrlock_until(&rw, weft_deadline(MS(20))),
            -ETIMEDOUT);
  /* The timed-out writer left no trace: readers still get in. */
  TCHECK_EQ(weft_rwlock_tryrdlock(&rw), 0);
  TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  return NULL;
}

Test(rwlock, timeouts_and_try) {
  cr_assert_eq(weft_rwlock_wrlock(&rw), 0);
  h_join(h_spawn(try_against_writer, NULL));
  h_pjoin(h_pthread(try_against_writer, NULL));
  cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  cr_assert_eq(weft_rwlock_rdlock(&rw), 0);
  h_join(h_spawn(try_against_reader, NULL));
  h_pjoin(h_pthread(try_against_reader, NULL));
  cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  /* Free again for both kinds. */
  cr_expect_eq(weft_rwlock_trywrlock(&rw), 0);
  cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  cr_expect_eq(weft_rwlock_destroy(&rw), 0);
  EXPECT_NO_THREAD_FAILURES();
}

static void *timed_writer(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_wrlock_until(&rw, weft_deadline(MS(100))),
            -ETIMEDOUT);
  return NULL;
}

static void *late_reader(void *arg) {
  (void)arg;
  TCHECK_EQ(weft_rwlock_rdlock_until(&rw, weft_deadline(MS(20000))), 0);
  TCHECK_EQ(weft_rwlock_unlock(&rw), 0);
  return NULL;
}

Test(rwlock, timed_out_writer_lets_queued_readers_in) {
  cr_assert_eq(weft_rwlock_rdlock(&rw), 0);
  pthread_t w = h_pthread(timed_writer, NULL);
  /* A writer waits once a new reader is refused. */
  int r;
  while ((r = weft_rwlock_tryrdlock(&rw)) == 0) {
    cr_assert_eq(weft_rwlock_unlock(&rw), 0);
    weft_sleep(MS(1));
  }
  cr_assert_eq(r, -EBUSY);
  /* These queue behind the writer; when it gives up they must get in
   * while this thread still holds its read lock. */
  weft_gthread g = h_spawn(late_reader, NULL);
  pthread_t p = h_pthread(late_reader, NULL);
  h_pjoin(w);
  h_join(g);
  h_pjoin(p);
  cr_expect_eq(weft_rwlock_unlock(&rw), 0);
  cr_expect_eq(weft_rwlock_destroy(&rw), 0);
  EXPECT_NO_THREAD_FAILURES();
}
