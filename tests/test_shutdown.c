/*
 * test_shutdown.c - what weft_shutdown promises about the green threads it
 * abandons, and about threads that race it.
 *
 * Invariants checked, each case in a child process of its own (a crash
 * fails that case, not the program), with 2 workers:
 *  - waking an abandoned green thread after weft_shutdown, from a plain
 *    thread, through every primitive that can wake one (semaphore post,
 *    mutex unlock, condition signal, waitgroup done, channel send, closing
 *    a watched fd, weft_cancel), neither crashes nor resumes it: its memory
 *    stays valid and it never runs again;
 *  - the same after a second weft_init: an abandoned thread is not resumed
 *    by the new runtime, weft_cancel of it returns -ESRCH, weft_join and
 *    weft_detach of it return -ESRCH instead of blocking;
 *  - a plain thread blocked in weft_join on a thread that shutdown
 *    abandons returns -ESRCH;
 *  - plain threads that spawn (and join) in a loop while the main thread
 *    shuts the runtime down and starts it again get 0 or -EPERM from
 *    weft_spawn, never a crash, and every thread they spawned with 0 either
 *    ran or was abandoned.
 */
#include "helpers.h"

#include <poll.h>

static const weft_config two = {.workers = 2};

/* Runs fn in a child; the child must exit 0 with nothing on stderr but
 * what `allowed` matches (NULL: nothing). */
static void expect_clean_child(void (*fn)(void *), const char *what) {
  struct h_child c;
  h_fork_capture(fn, NULL, &c);
  cr_expect(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0,
            "%s: the child %s %d; stderr: %s", what,
            WIFSIGNALED(c.status) ? "died of signal" : "exited with",
            WIFSIGNALED(c.status) ? WTERMSIG(c.status)
                                  : WEXITSTATUS(c.status),
            c.err);
}

/* In the child: a failed check exits with a status that names its line. */
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "check failed at line %d: %s\n", __LINE__, #cond);     \
      _exit(3);                                                              \
    }                                                                        \
  } while (0)

static void start(void) { CHECK(weft_init(&two) == 0); }

/* ------------------------------------------------------------------------ */
/* A parked thread, abandoned, then woken                                   */
/* ------------------------------------------------------------------------ */

static weft_sem sem;
static weft_mutex mu;
static weft_cond cv;
static weft_waitgroup wg;
static weft_chan *ch;
static int pfd[2];
static atomic_int parked, resumed;

static void *wait_sem(void *a) {
  (void)a;
  atomic_fetch_add(&parked, 1);
  weft_sem_wait(&sem);
  atomic_fetch_add(&resumed, 1);
  return NULL;
}

static void *wait_mutex(void *a) {
  (void)a;
  atomic_fetch_add(&parked, 1);
  weft_mutex_lock(&mu);
  atomic_fetch_add(&resumed, 1);
  weft_mutex_unlock(&mu);
  return NULL;
}

static void *wait_cond(void *a) {
  (void)a;
  weft_mutex_lock(&mu);
  atomic_fetch_add(&parked, 1);
  weft_cond_wait(&cv, &mu);
  atomic_fetch_add(&resumed, 1);
  weft_mutex_unlock(&mu);
  return NULL;
}

static void *wait_wg(void *a) {
  (void)a;
  atomic_fetch_add(&parked, 1);
  weft_waitgroup_wait(&wg);
  atomic_fetch_add(&resumed, 1);
  return NULL;
}

static void *wait_chan(void *a) {
  (void)a;
  int v;
  atomic_fetch_add(&parked, 1);
  weft_chan_recv(ch, &v);
  atomic_fetch_add(&resumed, 1);
  return NULL;
}

static void *wait_read(void *a) {
  (void)a;
  char b;
  atomic_fetch_add(&parked, 1);
  weft_read(pfd[0], &b, 1, WEFT_FOREVER);
  atomic_fetch_add(&resumed, 1);
  return NULL;
}

static void *wait_sleep(void *a) {
  (void)a;
  atomic_fetch_add(&parked, 1);
  weft_sleep(WEFT_FOREVER / 2);
  atomic_fetch_add(&resumed, 1);
  return NULL;
}

static void *wait_timer(void *a) {
  (void)a;
  atomic_fetch_add(&parked, 1);
  weft_sleep(MS(50));
  atomic_fetch_add(&resumed, 1);
  return NULL;
}

enum how { BY_SEM, BY_MUTEX, BY_COND, BY_WG, BY_CHAN, BY_CLOSE, BY_CANCEL,
           BY_TIMER };

static weft_fn waiter_of(enum how h) {
  switch (h) {
  case BY_SEM: return wait_sem;
  case BY_MUTEX: return wait_mutex;
  case BY_COND: return wait_cond;
  case BY_WG: return wait_wg;
  case BY_CHAN: return wait_chan;
  case BY_CLOSE: return wait_read;
  case BY_CANCEL: return wait_sleep;
  case BY_TIMER: return wait_timer;
  }
  return NULL;
}

/* Parks a green thread that waits in the way h wakes, and returns it. */
static weft_gthread park_one(enum how h) {
  CHECK(weft_sem_init(&sem, 0) == 0);
  CHECK(weft_mutex_init(&mu) == 0);
  CHECK(weft_cond_init(&cv) == 0);
  CHECK(weft_waitgroup_init(&wg) == 0);
  CHECK(weft_waitgroup_add(&wg, 1) == 0);
  CHECK(weft_chan_open(&ch, sizeof(int), 0) == 0);
  CHECK(pipe(pfd) == 0);
  CHECK(weft_fd_adopt(pfd[0]) == 0);
  if (h == BY_MUTEX)
    CHECK(weft_mutex_lock(&mu) == 0);
  atomic_store(&parked, 0);
  atomic_store(&resumed, 0);
  weft_gthread t;
  CHECK(weft_spawn(&t, NULL, waiter_of(h), NULL) == 0);
  while (atomic_load(&parked) == 0)
    usleep(1000);
  usleep(20000); /* let it get all the way into its wait */
  return t;
}

/* Wakes the thread parked by park_one, from this (plain) thread. */
static void wake_one(enum how h, weft_gthread t) {
  int v = 7;
  switch (h) {
  case BY_SEM: CHECK(weft_sem_post(&sem) == 0); break;
  case BY_MUTEX: CHECK(weft_mutex_unlock(&mu) == 0); break;
  case BY_COND:
    CHECK(weft_mutex_lock(&mu) == 0);
    CHECK(weft_cond_signal(&cv) == 0);
    CHECK(weft_mutex_unlock(&mu) == 0);
    break;
  case BY_WG: CHECK(weft_waitgroup_done(&wg) == 0); break;
  case BY_CHAN: CHECK(weft_chan_send_until(ch, &v, weft_deadline(MS(100))) == 0); break;
  case BY_CLOSE: CHECK(weft_close(pfd[0]) == 0); break;
  case BY_CANCEL: CHECK(weft_cancel(t) == -ESRCH); break;
  case BY_TIMER: break; /* its deadline passes by itself */
  }
}

static void abandoned_then_woken(enum how h) {
  start();
  weft_gthread t = park_one(h);
  CHECK(weft_shutdown() == 0);
  wake_one(h, t);
  usleep(100000);
  CHECK(atomic_load(&resumed) == 0);
  CHECK(weft_join(t, NULL) == -ESRCH);
}

static void after_shutdown_sem(void *a) { (void)a; abandoned_then_woken(BY_SEM); }
static void after_shutdown_mutex(void *a) { (void)a; abandoned_then_woken(BY_MUTEX); }
static void after_shutdown_cond(void *a) { (void)a; abandoned_then_woken(BY_COND); }
static void after_shutdown_wg(void *a) { (void)a; abandoned_then_woken(BY_WG); }
static void after_shutdown_chan(void *a) { (void)a; abandoned_then_woken(BY_CHAN); }
static void after_shutdown_close(void *a) { (void)a; abandoned_then_woken(BY_CLOSE); }
static void after_shutdown_cancel(void *a) { (void)a; abandoned_then_woken(BY_CANCEL); }

Test(shutdown, waking_an_abandoned_thread_by_sem_post, .timeout = 40) {
  expect_clean_child(after_shutdown_sem, "sem_post after shutdown");
}
Test(shutdown, waking_an_abandoned_thread_by_mutex_unlock, .timeout = 40) {
  expect_clean_child(after_shutdown_mutex, "mutex_unlock after shutdown");
}
Test(shutdown, waking_an_abandoned_thread_by_cond_signal, .timeout = 40) {
  expect_clean_child(after_shutdown_cond, "cond_signal after shutdown");
}
Test(shutdown, waking_an_abandoned_thread_by_waitgroup_done, .timeout = 40) {
  expect_clean_child(after_shutdown_wg, "waitgroup_done after shutdown");
}
Test(shutdown, waking_an_abandoned_thread_by_chan_send, .timeout = 40) {
  expect_clean_child(after_shutdown_chan, "chan_send after shutdown");
}
Test(shutdown, waking_an_abandoned_thread_by_close, .timeout = 40) {
  expect_clean_child(after_shutdown_close, "weft_close after shutdown");
}
Test(shutdown, canceling_an_abandoned_thread, .timeout = 40) {
  expect_clean_child(after_shutdown_cancel, "weft_cancel after shutdown");
}

/* The same, with the runtime started again before the wake: the new
 * runtime must not run a thread whose stack it does not own. */
static void abandoned_then_reinit(enum how h) {
  start();
  weft_gthread t = park_one(h);
  CHECK(weft_shutdown() == 0);
  start();
  wake_one(h, t);
  usleep(100000);
  CHECK(atomic_load(&resumed) == 0);
  CHECK(weft_join(t, NULL) == -ESRCH);
  CHECK(weft_detach(t) == -ESRCH);
  CHECK(weft_cancel(t) == -ESRCH);
  CHECK(weft_shutdown() == 0);
}

static void reinit_sem(void *a) { (void)a; abandoned_then_reinit(BY_SEM); }
static void reinit_mutex(void *a) { (void)a; abandoned_then_reinit(BY_MUTEX); }
static void reinit_chan(void *a) { (void)a; abandoned_then_reinit(BY_CHAN); }
static void reinit_close(void *a) { (void)a; abandoned_then_reinit(BY_CLOSE); }
static void reinit_cancel(void *a) { (void)a; abandoned_then_reinit(BY_CANCEL); }
static void reinit_timer(void *a) { (void)a; abandoned_then_reinit(BY_TIMER); }

Test(shutdown, reinit_does_not_resume_a_thread_woken_by_sem, .timeout = 40) {
  expect_clean_child(reinit_sem, "sem_post after re-init");
}
Test(shutdown, reinit_does_not_resume_a_thread_woken_by_mutex, .timeout = 40) {
  expect_clean_child(reinit_mutex, "mutex_unlock after re-init");
}
Test(shutdown, reinit_does_not_resume_a_thread_woken_by_chan, .timeout = 40) {
  expect_clean_child(reinit_chan, "chan_send after re-init");
}
Test(shutdown, reinit_does_not_resume_a_thread_woken_by_close, .timeout = 40) {
  expect_clean_child(reinit_close, "weft_close after re-init");
}
Test(shutdown, reinit_cancel_of_an_abandoned_thread, .timeout = 40) {
  expect_clean_child(reinit_cancel, "weft_cancel after re-init");
}
Test(shutdown, reinit_does_not_resume_a_sleeper, .timeout = 40) {
  expect_clean_child(reinit_timer, "a sleeper after re-init");
}

/* ------------------------------------------------------------------------ */
/* A plain thread blocked in weft_join when the thread is abandoned         */
/* ------------------------------------------------------------------------ */

static void *join_it(void *a) {
  weft_gthread t = *(weft_gthread *)a;
  return (void *)(intptr_t)weft_join(t, NULL);
}

static void join_across_shutdown(void *a) {
  (void)a;
  start();
  weft_gthread t = park_one(BY_SEM);
  pthread_t j;
  CHECK(pthread_create(&j, NULL, join_it, &t) == 0);
  usleep(50000); /* let it block in weft_join */
  CHECK(weft_shutdown() == 0);
  void *r;
  CHECK(pthread_join(j, &r) == 0);
  CHECK((intptr_t)r == -ESRCH);
}

Test(shutdown, a_blocked_join_returns_when_its_thread_is_abandoned,
     .timeout = 40) {
  expect_clean_child(join_across_shutdown, "join across shutdown");
}

/* ------------------------------------------------------------------------ */
/* Spawns from plain threads racing shutdown and init                       */
/* ------------------------------------------------------------------------ */

static atomic_int stop_spawning;
static atomic_long ran, spawned_ok, spawned_eperm, joined_ok, joined_esrch;

static void *count_run(void *a) {
  (void)a;
  atomic_fetch_add(&ran, 1);
  return NULL;
}

static void *spawner(void *a) {
  (void)a;
  while (!atomic_load(&stop_spawning)) {
    weft_gthread t;
    int rc = weft_spawn(&t, NULL, count_run, NULL);
    if (rc == -EPERM) {
      atomic_fetch_add(&spawned_eperm, 1);
      continue;
    }
    if (rc != 0) {
      fprintf(stderr, "weft_spawn: %s\n", weft_strerror(rc));
      _exit(4);
    }
    atomic_fetch_add(&spawned_ok, 1);
    rc = weft_join(t, NULL);
    if (rc == 0)
      atomic_fetch_add(&joined_ok, 1);
    else if (rc == -ESRCH)
      atomic_fetch_add(&joined_esrch, 1);
    else {
      fprintf(stderr, "weft_join: %s\n", weft_strerror(rc));
      _exit(5);
    }
  }
  return NULL;
}

static void spawn_race(void *a) {
  (void)a;
  enum { SPAWNERS = 3, ROUNDS = 40 };
  pthread_t p[SPAWNERS];
  start();
  for (int i = 0; i < SPAWNERS; i++)
    CHECK(pthread_create(&p[i], NULL, spawner, NULL) == 0);
  for (int r = 0; r < ROUNDS; r++) {
    usleep(2000);
    CHECK(weft_shutdown() == 0);
    usleep(500);
    start();
  }
  atomic_store(&stop_spawning, 1);
  for (int i = 0; i < SPAWNERS; i++)
    CHECK(pthread_join(p[i], NULL) == 0);
  CHECK(weft_shutdown() == 0);
  /* Every spawn that succeeded was joined, or abandoned (-ESRCH). */
  CHECK(atomic_load(&joined_ok) + atomic_load(&joined_esrch) ==
        atomic_load(&spawned_ok));
  CHECK(atomic_load(&ran) >= atomic_load(&joined_ok));
  CHECK(atomic_load(&spawned_ok) > 0);
}

Test(shutdown, spawns_from_plain_threads_race_shutdown_and_init,
     .timeout = 60) {
  expect_clean_child(spawn_race, "spawn racing shutdown");
}
