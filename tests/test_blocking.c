/*
 * test_blocking.c - blocking calls on weft's kernel-thread pool:
 * weft_blocking, and weft_open/pread/pwrite/fsync/getaddrinfo built on it.
 *
 * Invariants checked:
 *  - from a green thread, fn runs on another kernel thread (not a worker,
 *    not a green thread) and its result comes back; from a kernel thread
 *    that is not a worker, fn runs on the caller;
 *  - while fn blocks its kernel thread, the other green threads of the
 *    caller's (single) worker keep running;
 *  - many more concurrent calls than weft_config.blocking_threads all
 *    complete, never more than blocking_threads at once;
 *  - without the runtime, the documented result (see blocking_without_
 *    runtime below);
 *  - the file calls give the system calls' results, -errno on failure;
 *    weft_getaddrinfo gives getaddrinfo's.
 */
#include "io_helpers.h"

#include <netdb.h>
#include <sys/stat.h>

#define GUARD MS(5000)

TestSuite(blocking_one_worker, .init = h_start1, .fini = h_stop, .timeout = 30);
TestSuite(blocking_two_workers, .init = h_start2, .fini = h_stop, .timeout = 30);
/* Tests that start the runtime themselves, or run without it. */
TestSuite(blocking_no_runtime, .fini = h_stop, .timeout = 30);

/* Each scenario runs as a green thread on 1 worker, and on 2 workers both
 * as a green thread and as a pthread (one after the other). */
#define BLK_VARIANTS(name, fn, arg)                                            \
  Test(blocking_one_worker, name) { io_run(IO_GREEN, fn, (void *)(arg)); }                    \
  Test(blocking_two_workers, name) {                                                           \
    io_run(IO_GREEN, fn, (void *)(arg));                                       \
    io_run(IO_PTHREAD, fn, (void *)(arg));                                     \
  }

/* ------------------------------------------------------------------------ */
/* Where fn runs                                                            */
/* ------------------------------------------------------------------------ */

struct ran_on {
  pid_t tid;
  pthread_t self;
  bool in_gthread;
  int worker;
  int calls;
};

static void *note_thread(void *arg) {
  struct ran_on *r = arg;
  r->tid = io_gettid();
  r->self = pthread_self();
  r->in_gthread = weft_in_gthread();
  r->worker = weft_worker_index();
  r->calls++;
  return (void *)(intptr_t)(r->tid + 1000);
}

static void *where_fn_runs(void *arg) {
  (void)arg;
  bool green = weft_in_gthread();
  struct ran_on r = {0};
  void *res = NULL;
  pid_t before = io_gettid();
  pthread_t before_self = pthread_self();
  TCHECK_EQ(weft_blocking(note_thread, &r, &res), 0);
  pid_t after = io_gettid();
  TCHECK_EQ(r.calls, 1);
  TCHECK_EQ((intptr_t)res, r.tid + 1000);
  if (green) {
    /* On a pool thread: neither a worker nor a green thread, and not the
     * kernel thread the caller ran on before or after. */
    TCHECK(r.tid != before);
    TCHECK(r.tid != after);
    TCHECK(!r.in_gthread);
    TCHECK_EQ(r.worker, -1);
  } else {
    TCHECK_EQ(r.tid, before);
    TCHECK(pthread_equal(r.self, before_self));
  }
  /* result may be NULL. */
  TCHECK_EQ(weft_blocking(note_thread, &r, NULL), 0);
  TCHECK_EQ(r.calls, 2);
  return NULL;
}

BLK_VARIANTS(fn_runs_on_pool_or_inline, where_fn_runs, NULL)

/* A pool thread is not a worker: weft_blocking from inside fn runs the
 * inner fn on the same kernel thread. */
struct nested {
  struct ran_on outer, inner;
  int rc;
};

static void *nested_outer(void *arg) {
  struct nested *n = arg;
  note_thread(&n->outer);
  n->rc = weft_blocking(note_thread, &n->inner, NULL);
  return NULL;
}

static void *nested_call(void *arg) {
  (void)arg;
  struct nested n = {0};
  TCHECK_EQ(weft_blocking(nested_outer, &n, NULL), 0);
  TCHECK_EQ(n.rc, 0);
  TCHECK_EQ(n.inner.calls, 1);
  TCHECK_EQ(n.inner.tid, n.outer.tid);
  return NULL;
}

Test(blocking_one_worker, nested_call_runs_inline) { io_run(IO_GREEN, nested_call, NULL); }

/* ------------------------------------------------------------------------ */
/* The worker stays free                                                    */
/* ------------------------------------------------------------------------ */

static atomic_int in_fn, other_ran;

/* Blocks its kernel thread until the other green thread has run. */
static void *wait_for_other(void *arg) {
  (void)arg;
  atomic_store(&in_fn, 1);
  return (void *)(intptr_t)io_await_flag(&other_ran, GUARD);
}

static void *wfo_caller(void *arg) {
  (void)arg;
  void *res = NULL;
  TCHECK_EQ(weft_blocking(wait_for_other, NULL, &res), 0);
  TCHECK(res == (void *)1);
  return NULL;
}

static void *wfo_other(void *arg) {
  (void)arg;
  atomic_store(&other_ran, 1);
  return NULL;
}

Test(blocking_one_worker, worker_runs_others_while_fn_blocks) {
  weft_gthread c = h_spawn(wfo_caller, NULL);
  cr_assert(io_await_flag(&in_fn, GUARD), "fn never started");
  weft_gthread o = h_spawn(wfo_other, NULL);
  h_join(o);
  h_join(c);
  cr_expect(atomic_load(&other_ran));
  EXPECT_NO_THREAD_FAILURES();
}

/* fn sleeps 100 ms in nanosleep; a green thread on the same worker keeps
 * counting meanwhile. */
static atomic_long ticks;
static atomic_int sleeper_done;

static void *sleep_100ms(void *arg) {
  (void)arg;
  io_nanosleep(MS(100));
  return (void *)42;
}

static void *sleeping_caller(void *arg) {
  (void)arg;
  void *res = NULL;
  long t0 = atomic_load(&ticks);
  TCHECK_EQ(weft_blocking(sleep_100ms, NULL, &res), 0);
  long t1 = atomic_load(&ticks);
  TCHECK_EQ((intptr_t)res, 42);
  TCHECK(t1 > t0);
  atomic_store(&sleeper_done, 1);
  return NULL;
}

static void *ticker(void *arg) {
  (void)arg;
  int64_t end = weft_deadline(GUARD);
  while (!atomic_load(&sleeper_done) && weft_now() < end) {
    atomic_fetch_add(&ticks, 1);
    weft_yield();
  }
  return NULL;
}

Test(blocking_one_worker, others_tick_while_fn_sleeps) {
  weft_gthread c = h_spawn(sleeping_caller, NULL);
  weft_gthread t = h_spawn(ticker, NULL);
  h_join(c);
  h_join(t);
  cr_expect(atomic_load(&sleeper_done));
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* More calls than pool threads                                             */
/* ------------------------------------------------------------------------ */

#define CALLERS 24
#define POOL 2

static atomic_int running, most_running, finished;

static void *pooled(void *arg) {
  int now = atomic_fetch_add(&running, 1) + 1;
  int seen = atomic_load(&most_running);
  while (now > seen && !atomic_compare_exchange_weak(&most_running, &seen, now))
    ;
  io_nanosleep(MS(10));
  atomic_fetch_sub(&running, 1);
  return (void *)((intptr_t)arg * 3);
}

static void *pool_caller(void *arg) {
  void *res = NULL;
  TCHECK_EQ(weft_blocking(pooled, arg, &res), 0);
  TCHECK_EQ((intptr_t)res, (intptr_t)arg * 3);
  atomic_fetch_add(&finished, 1);
  return NULL;
}

static void many_calls(int workers) {
  weft_config cfg = {.workers = workers, .blocking_threads = POOL};
  cr_assert_eq(weft_init(&cfg), 0);
  weft_gthread t[CALLERS];
  for (int i = 0; i < CALLERS; i++)
    t[i] = h_spawn(pool_caller, (void *)(intptr_t)(i + 1));
  for (int i = 0; i < CALLERS; i++)
    h_join(t[i]);
  cr_expect_eq(atomic_load(&finished), CALLERS);
  cr_expect_leq(atomic_load(&most_running), POOL,
                "%d calls ran at once with blocking_threads = %d",
                atomic_load(&most_running), POOL);
  cr_expect_geq(atomic_load(&most_running), 1);
  EXPECT_NO_THREAD_FAILURES();
  cr_expect_eq(weft_shutdown(), 0);
}

Test(blocking_no_runtime, more_calls_than_pool_threads_1_worker) { many_calls(1); }
Test(blocking_no_runtime, more_calls_than_pool_threads_2_workers) { many_calls(2); }

/* The pool works again after a restart, with another size. */
static void *one_call(void *arg) {
  (void)arg;
  struct ran_on r = {0};
  TCHECK_EQ(weft_blocking(note_thread, &r, NULL), 0);
  TCHECK_EQ(r.calls, 1);
  TCHECK(!r.in_gthread);
  return NULL;
}

Test(blocking_no_runtime, pool_after_restart) {
  for (int round = 0; round < 3; round++) {
    weft_config cfg = {.workers = 1 + round % 2, .blocking_threads = round};
    cr_assert_eq(weft_init(&cfg), 0, "round %d", round);
    weft_gthread t[4];
    for (int i = 0; i < 4; i++)
      t[i] = h_spawn(one_call, NULL);
    for (int i = 0; i < 4; i++)
      h_join(t[i]);
    cr_assert_eq(weft_shutdown(), 0);
  }
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Without the runtime                                                      */
/* ------------------------------------------------------------------------ */

/*
 * The header says both "-ESRCH if the runtime is not running" and "From a
 * kernel thread that is not a worker, fn simply runs on the caller".  From
 * a kernel thread with no runtime, either reading is accepted, as long as
 * the result is coherent: 0 with fn run once on the caller and its result
 * stored, or -ESRCH with fn not run and *result untouched.
 */
static void expect_inline_or_esrch(const char *when) {
  struct ran_on r = {0};
  void *res = (void *)-1;
  int rc = weft_blocking(note_thread, &r, &res);
  if (rc == 0) {
    cr_expect_eq(r.calls, 1, "%s: returned 0 but fn ran %d times", when,
                 r.calls);
    cr_expect_eq(r.tid, io_gettid(), "%s: fn did not run on the caller", when);
    cr_expect_eq((intptr_t)res, r.tid + 1000, "%s: result not stored", when);
  } else {
    cr_expect_eq(rc, -ESRCH, "%s: weft_blocking gave %d (%s)", when, rc,
                 weft_strerror(rc));
    cr_expect_eq(r.calls, 0, "%s: -ESRCH but fn ran", when);
    cr_expect(res == (void *)-1, "%s: -ESRCH but *result was written", when);
  }
}

Test(blocking_no_runtime, blocking_without_runtime) {
  cr_assert(!weft_running());
  expect_inline_or_esrch("before weft_init");
  h_start(1);
  /* With the runtime running, the test's thread is a plain kernel thread:
   * fn runs on it. */
  struct ran_on r = {0};
  cr_expect_eq(weft_blocking(note_thread, &r, NULL), 0);
  cr_expect_eq(r.tid, io_gettid());
  cr_assert_eq(weft_shutdown(), 0);
  expect_inline_or_esrch("after weft_shutdown");
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

static void *file_ops(void *arg) {
  (void)arg;
  char path[] = "/tmp/weft-blocking-XXXXXX";
  int tfd = mkstemp(path);
  TCHECK(tfd >= 0);
  if (tfd < 0)
    return NULL;
  close(tfd);

  int fd = weft_open(path, O_RDWR, 0);
  TCHECK(fd >= 0);
  enum { LEN = 5000, OFF = 100 };
  unsigned char *w = malloc(LEN), *r = malloc(LEN + 1000);
  TCHECK(w && r);
  if (!w || !r) {
    free(w);
    free(r);
    return NULL;
  }
  for (int i = 0; i < LEN; i++)
    w[i] = io_pat((size_t)i);
  TCHECK_EQ(weft_pwrite(fd, w, LEN, OFF), LEN);
  TCHECK_EQ(weft_fsync(fd), 0);
  memset(r, 0xee, LEN + 1000);
  TCHECK_EQ(weft_pread(fd, r, LEN + 1000, OFF), LEN);
  TCHECK(memcmp(r, w, LEN) == 0);
  /* The hole before OFF reads as zeros; past the end, 0 bytes. */
  TCHECK_EQ(weft_pread(fd, r, OFF, 0), OFF);
  long nonzero = 0;
  for (int i = 0; i < OFF; i++)
    nonzero += r[i] != 0;
  TCHECK_EQ(nonzero, 0);
  TCHECK_EQ(weft_pread(fd, r, 10, (off_t)1 << 20), 0);
  TCHECK_EQ(weft_pread(fd, r, 10, -1), -EINVAL);
  TCHECK_EQ(weft_pwrite(fd, w, 10, -1), -EINVAL);
  struct stat st;
  TCHECK_EQ(fstat(fd, &st), 0);
  TCHECK_EQ(st.st_size, OFF + LEN);
  TCHECK_EQ(close(fd), 0);

  /* Errors are the system calls', as -errno. */
  TCHECK_EQ(weft_open(path, O_RDWR | O_CREAT | O_EXCL, 0600), -EEXIST);
  char missing[sizeof path + 16];
  snprintf(missing, sizeof missing, "%s-missing", path);
  TCHECK_EQ(weft_open(missing, O_RDONLY, 0), -ENOENT);
  TCHECK_EQ(
      weft_open("/tmp/weft-no-such-dir-at-all/x", O_RDONLY | O_CREAT, 0600),
      -ENOENT);
  fd = weft_open(path, O_RDONLY, 0);
  TCHECK(fd >= 0);
  TCHECK_EQ(weft_pwrite(fd, w, 10, 0), -EBADF);
  TCHECK_EQ(weft_pread(fd, r, 10, OFF), 10);
  TCHECK(memcmp(r, w, 10) == 0);
  close(fd);
  TCHECK_EQ(weft_pread(-1, r, 10, 0), -EBADF);
  TCHECK_EQ(weft_pwrite(-1, w, 10, 0), -EBADF);
  TCHECK_EQ(weft_fsync(-1), -EBADF);
  TCHECK_EQ(unlink(path), 0);

  /* O_CREAT honours the mode (under the umask). */
  fd = weft_open(missing, O_RDWR | O_CREAT | O_EXCL, 0640);
  TCHECK(fd >= 0);
  mode_t mask = umask(022);
  umask(mask);
  TCHECK_EQ(fstat(fd, &st), 0);
  TCHECK_EQ(st.st_mode & 0777, 0640 & ~mask);
  close(fd);
  TCHECK_EQ(unlink(missing), 0);
  free(w);
  free(r);
  return NULL;
}

BLK_VARIANTS(file_calls, file_ops, NULL)

/* ------------------------------------------------------------------------ */
/* Name lookups                                                             */
/* ------------------------------------------------------------------------ */

static void *lookups(void *arg) {
  (void)arg;
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;

  struct addrinfo *res = NULL;
  TCHECK_EQ(weft_getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
  TCHECK(res != NULL);
  if (res) {
    TCHECK_EQ(res->ai_family, AF_INET);
    TCHECK_EQ(res->ai_socktype, SOCK_STREAM);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)res->ai_addr;
    TCHECK_EQ(ntohs(sin->sin_port), 80);
    TCHECK_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
    freeaddrinfo(res);
  }

  res = NULL;
  TCHECK_EQ(weft_getaddrinfo("::1", "8080", &hints, &res), 0);
  TCHECK(res != NULL);
  if (res) {
    TCHECK_EQ(res->ai_family, AF_INET6);
    freeaddrinfo(res);
  }

  /* getaddrinfo's own codes. */
  res = NULL;
  TCHECK_EQ(weft_getaddrinfo("not-an-address", "80", &hints, &res), EAI_NONAME);
  TCHECK_EQ(weft_getaddrinfo(NULL, NULL, &hints, &res), EAI_NONAME);
  TCHECK_EQ(weft_getaddrinfo("127.0.0.1", "no-such-port", &hints, &res),
            EAI_NONAME);
  return NULL;
}

BLK_VARIANTS(getaddrinfo, lookups, NULL)

/* Many green threads doing file I/O at once through a small pool. */
static void *file_worker(void *arg) {
  int i = (int)(intptr_t)arg;
  char path[] = "/tmp/weft-blocking-XXXXXX";
  int fd = mkstemp(path);
  TCHECK(fd >= 0);
  if (fd < 0)
    return NULL;
  close(fd);
  fd = weft_open(path, O_RDWR, 0);
  TCHECK(fd >= 0);
  char buf[64], back[64];
  for (int k = 0; k < 20; k++) {
    int n = snprintf(buf, sizeof buf, "thread %d write %d", i, k);
    TCHECK_EQ(weft_pwrite(fd, buf, (size_t)n, k * 64), n);
    TCHECK_EQ(weft_pread(fd, back, (size_t)n, k * 64), n);
    TCHECK(memcmp(buf, back, (size_t)n) == 0);
  }
  TCHECK_EQ(weft_fsync(fd), 0);
  close(fd);
  unlink(path);
  return NULL;
}

Test(blocking_no_runtime, file_io_through_small_pool) {
  weft_config cfg = {.workers = 2, .blocking_threads = 2};
  cr_assert_eq(weft_init(&cfg), 0);
  weft_gthread t[16];
  for (int i = 0; i < 16; i++)
    t[i] = h_spawn(file_worker, (void *)(intptr_t)i);
  for (int i = 0; i < 16; i++)
    h_join(t[i]);
  EXPECT_NO_THREAD_FAILURES();
  cr_expect_eq(weft_shutdown(), 0);
}
