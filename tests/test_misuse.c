/*
 * test_misuse.c - misuse of weft is an error, never undefined behaviour.
 *
 * Each case runs in a forked child (h_fork_capture), so that a call that
 * crashes or hangs fails that case alone.  A child exits 0 when every call
 * it made returned what weft.h promises, 1 otherwise (with the call and
 * both values on stderr).
 *
 * Checked:
 *  - NULL pointers: every public call that takes a pointer to an object
 *    returns -EINVAL for NULL; calls that return a size give 0, calls that
 *    return a bool false; NULL buffers with a non-zero length are refused;
 *  - the mutex checks its owner: relock by the holder is -EDEADLK (lock,
 *    lock_until; trylock is -EBUSY), unlock by a thread that does not hold
 *    it is -EPERM (another kernel thread, another green thread, a green
 *    thread against a kernel thread's lock), the owner follows a green
 *    thread across workers and passes to a waiter on unlock, and
 *    cond_wait with a mutex the caller does not hold is -EPERM;
 *  - the read-write lock's misuse errors: NULL, unlock when not held,
 *    unlock of another thread's write lock, relock by the writer;
 *  - weft_us/ms/sec saturate instead of overflowing;
 *  - weft_strerror names the cases of the codes.
 */
#include "helpers.h"
#include <weft_testing.h>

#include <netdb.h>
#include <poll.h>
#include <sys/uio.h>

TestSuite(null, .timeout = 60);
TestSuite(mutex, .timeout = 60);
TestSuite(errors, .timeout = 60);

static void child_fail(const char *what, long long got, long long want) {
  fprintf(stderr, "%s returned %lld, expected %lld\n", what, got, want);
  fflush(stderr);
  _exit(1);
}

/* In a child: evaluate a call and compare its result. */
#define EXPECT(expr, want)                                                   \
  do {                                                                       \
    long long got_ = (long long)(expr);                                      \
    if (got_ != (long long)(want))                                           \
      child_fail(#expr, got_, (long long)(want));                            \
  } while (0)

/* Runs fn in a child and fails the test if it crashed, hung or reported a
 * wrong result. */
static void in_child(void (*fn)(void *), void *arg) {
  static struct h_child res;
  h_fork_capture(fn, arg, &res);
  if (WIFSIGNALED(res.status))
    cr_expect_fail("crashed with signal %d (%s)%s%s", WTERMSIG(res.status),
            strsignal(WTERMSIG(res.status)), res.len ? ": " : "", res.err);
  else
    cr_expect(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
              "exit status %d: %s", WEXITSTATUS(res.status), res.err);
}

/* A case: body runs in a child of its own.  A hang ends the child by
 * SIGALRM after 5 s. */
#define CASE(suite, name)                                                    \
  static void suite##_##name##_body(void);                                   \
  static void suite##_##name##_run(void *arg) {                              \
    (void)arg;                                                               \
    alarm(5);                                                                \
    suite##_##name##_body();                                                 \
  }                                                                          \
  Test(suite, name) { in_child(suite##_##name##_run, NULL); }                \
  static void suite##_##name##_body(void)

static void start(int workers) {
  weft_config cfg = {.workers = workers};
  int rc = weft_init(&cfg);
  if (rc)
    child_fail("weft_init", rc, 0);
}

/* Runs fn(arg) on a green thread and returns its result. */
static void *on_green(weft_fn fn, void *arg) {
  weft_gthread t;
  void *res = NULL;
  EXPECT(weft_spawn(&t, NULL, fn, arg), 0);
  EXPECT(weft_join(t, &res), 0);
  return res;
}

/* Runs fn(arg) on a new kernel thread and returns its result. */
static void *on_pthread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  void *res = NULL;
  if (pthread_create(&t, NULL, fn, arg))
    child_fail("pthread_create", -1, 0);
  pthread_join(t, &res);
  return res;
}

static void nop(void *arg) { (void)arg; }

/* ------------------------------------------------------------------------ */
/* NULL: synchronisation                                                    */
/* ------------------------------------------------------------------------ */

CASE(null, mutex) {
  EXPECT(weft_mutex_init(NULL), -EINVAL);
  EXPECT(weft_mutex_destroy(NULL), -EINVAL);
  EXPECT(weft_mutex_lock(NULL), -EINVAL);
  EXPECT(weft_mutex_lock_until(NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_mutex_lock_until(NULL, weft_deadline(MS(1))), -EINVAL);
  EXPECT(weft_mutex_trylock(NULL), -EINVAL);
  EXPECT(weft_mutex_unlock(NULL), -EINVAL);
}

CASE(null, mutex_unlock) { EXPECT(weft_mutex_unlock(NULL), -EINVAL); }
CASE(null, mutex_lock) { EXPECT(weft_mutex_lock(NULL), -EINVAL); }

CASE(null, cond) {
  weft_cond c = WEFT_COND_INIT;
  weft_mutex m = WEFT_MUTEX_INIT;
  EXPECT(weft_cond_init(NULL), -EINVAL);
  EXPECT(weft_cond_destroy(NULL), -EINVAL);
  EXPECT(weft_cond_signal(NULL), -EINVAL);
  EXPECT(weft_cond_broadcast(NULL), -EINVAL);
  EXPECT(weft_mutex_lock(&m), 0);
  EXPECT(weft_cond_wait(NULL, &m), -EINVAL);
  EXPECT(weft_cond_wait_until(NULL, &m, weft_deadline(MS(1))), -EINVAL);
  EXPECT(weft_mutex_unlock(&m), 0); /* still held after the refusal */
  EXPECT(weft_cond_wait(&c, NULL), -EINVAL);
  EXPECT(weft_cond_wait_until(&c, NULL, weft_deadline(MS(1))), -EINVAL);
}

CASE(null, cond_wait_mutex) {
  weft_cond c = WEFT_COND_INIT;
  EXPECT(weft_cond_wait(&c, NULL), -EINVAL);
}

CASE(null, sem) {
  EXPECT(weft_sem_init(NULL, 1), -EINVAL);
  EXPECT(weft_sem_destroy(NULL), -EINVAL);
  EXPECT(weft_sem_wait(NULL), -EINVAL);
  EXPECT(weft_sem_wait_until(NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_sem_trywait(NULL), -EINVAL);
  EXPECT(weft_sem_post(NULL), -EINVAL);
  EXPECT(weft_sem_value(NULL), -EINVAL);
}

CASE(null, sem_init) { EXPECT(weft_sem_init(NULL, 1), -EINVAL); }
CASE(null, sem_post) { EXPECT(weft_sem_post(NULL), -EINVAL); }
CASE(null, sem_value) { EXPECT(weft_sem_value(NULL), -EINVAL); }

CASE(null, waitgroup) {
  EXPECT(weft_waitgroup_init(NULL), -EINVAL);
  EXPECT(weft_waitgroup_add(NULL, 1), -EINVAL);
  EXPECT(weft_waitgroup_done(NULL), -EINVAL);
  EXPECT(weft_waitgroup_wait(NULL), -EINVAL);
  EXPECT(weft_waitgroup_wait_until(NULL, WEFT_NOWAIT), -EINVAL);
}

CASE(null, waitgroup_add) { EXPECT(weft_waitgroup_add(NULL, 1), -EINVAL); }

CASE(null, once) {
  weft_once o = WEFT_ONCE_INIT;
  EXPECT(weft_once_call(NULL, nop, NULL), -EINVAL);
  EXPECT(weft_once_call(&o, NULL, NULL), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* NULL: channels and select                                                */
/* ------------------------------------------------------------------------ */

CASE(null, chan) {
  weft_chan *ch;
  int v = 1;
  EXPECT(weft_chan_open(NULL, 4, 1), -EINVAL);
  EXPECT(weft_chan_free(NULL), -EINVAL);
  EXPECT(weft_chan_close(NULL), -EINVAL);
  EXPECT(weft_chan_send(NULL, &v), -EINVAL);
  EXPECT(weft_chan_recv(NULL, &v), -EINVAL);
  EXPECT(weft_chan_send_until(NULL, &v, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_chan_recv_until(NULL, &v, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_chan_open(&ch, sizeof v, 1), 0);
  EXPECT(weft_chan_send(ch, NULL), -EINVAL);
  EXPECT(weft_chan_send_until(ch, NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_chan_send(ch, &v), 0);
  EXPECT(weft_chan_recv(ch, NULL), -EINVAL);
  EXPECT(weft_chan_recv_until(ch, NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_chan_len(ch), 1); /* the refused receives took nothing */
  EXPECT(weft_chan_free(ch), 0);
}

CASE(null, chan_len) { EXPECT(weft_chan_len(NULL), 0); }
CASE(null, chan_cap) { EXPECT(weft_chan_cap(NULL), 0); }

CASE(null, select) {
  weft_chan *ch;
  int v = 0;
  EXPECT(weft_chan_open(&ch, sizeof v, 1), 0);
  weft_select_case ok = {.ch = ch, .op = WEFT_RECV, .elem = &v};
  weft_select_case noch = {.ch = NULL, .op = WEFT_RECV, .elem = &v};
  weft_select_case noelem = {.ch = ch, .op = WEFT_RECV, .elem = NULL};
  weft_select_case two[2] = {ok, noch};
  EXPECT(weft_select(NULL, 1, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_select(&noch, 1, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_select(&noelem, 1, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_select(two, 2, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_select(&ok, 1, WEFT_NOWAIT), -EAGAIN);
  EXPECT(weft_chan_free(ch), 0);
}

/* ------------------------------------------------------------------------ */
/* NULL: green threads, locals, tasks, stack info, stats                    */
/* ------------------------------------------------------------------------ */

static void *ret_arg(void *arg) { return arg; }

CASE(null, spawn) {
  weft_gthread t;
  start(1);
  EXPECT(weft_spawn(&t, NULL, NULL, NULL), -EINVAL);
  EXPECT(weft_spawn(NULL, NULL, ret_arg, NULL), -EINVAL);
  weft_gthread_attr noname = {.name = NULL};
  EXPECT(weft_spawn(&t, &noname, ret_arg, NULL), 0);
  EXPECT(weft_join(t, NULL), 0); /* a NULL result pointer is allowed */
  weft_gthread zero = {0};
  EXPECT(weft_join(zero, NULL), -EINVAL);
  EXPECT(weft_detach(zero), -EINVAL);
  EXPECT(weft_shutdown(), 0);
}

static void *set_null_name(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_set_name(NULL);
}

/* weft_set_name(NULL) gives the thread no name, or -EINVAL: either way no
 * crash. */
CASE(null, set_name) {
  start(1);
  intptr_t r = (intptr_t)on_green(set_null_name, NULL);
  if (r != 0 && r != -EINVAL)
    child_fail("weft_set_name(NULL)", r, -EINVAL);
  EXPECT(weft_shutdown(), 0);
}

CASE(null, stack_info) {
  weft_gthread t;
  start(1);
  EXPECT(weft_spawn(&t, NULL, ret_arg, NULL), 0);
  EXPECT(weft_stack_info_get(t, NULL), -EINVAL);
  weft_gthread zero = {0};
  weft_stack_info si;
  EXPECT(weft_stack_info_get(zero, &si), -EINVAL);
  EXPECT(weft_join(t, NULL), 0);
  EXPECT(weft_shutdown(), 0);
}

CASE(null, stats) {
  start(1);
  EXPECT(weft_stats(NULL, 1), -EINVAL);
  EXPECT(weft_stats(NULL, 0), 1); /* asks only for the count */
  EXPECT(weft_shutdown(), 0);
}

CASE(null, locals) {
  EXPECT(weft_local_create(NULL, NULL), -EINVAL);
  weft_local_key zero = {0};
  EXPECT(weft_local_set(zero, NULL), -EINVAL);
  EXPECT(weft_local_get(zero), 0);
}

CASE(null, task) {
  weft_task t;
  EXPECT(weft_task_start(NULL, WEFT_MODE_KTHREAD, ret_arg, NULL), -EINVAL);
  EXPECT(weft_task_start(&t, WEFT_MODE_KTHREAD, NULL, NULL), -EINVAL);
  EXPECT(weft_task_wait(NULL, NULL), -EINVAL);
  EXPECT(weft_task_start(&t, WEFT_MODE_KTHREAD, ret_arg, NULL), 0);
  EXPECT(weft_task_wait(&t, NULL), 0); /* a NULL result pointer is allowed */
}

static void *blocking_null(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_blocking(NULL, NULL, NULL);
}

CASE(null, blocking) {
  EXPECT(weft_blocking(NULL, NULL, NULL), -EINVAL);
  start(1);
  EXPECT((intptr_t)on_green(blocking_null, NULL), -EINVAL);
  EXPECT(weft_shutdown(), 0);
}

/* ------------------------------------------------------------------------ */
/* NULL: I/O and files                                                      */
/* ------------------------------------------------------------------------ */

CASE(null, io_buffers) {
  int p[2], sv[2];
  if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
    child_fail("pipe/socketpair", -1, 0);
  /* Nothing to read: a NULL buffer is refused before any wait. */
  EXPECT(weft_read(p[0], NULL, 16, WEFT_FOREVER), -EINVAL);
  EXPECT(weft_recv(sv[0], NULL, 16, 0, WEFT_FOREVER), -EINVAL);
  EXPECT(weft_write(p[1], NULL, 16, WEFT_FOREVER), -EINVAL);
  EXPECT(weft_send(sv[1], NULL, 16, 0, WEFT_FOREVER), -EINVAL);
  EXPECT(weft_readv(p[0], NULL, 1, WEFT_FOREVER), -EINVAL);
  EXPECT(weft_writev(p[1], NULL, 1, WEFT_FOREVER), -EINVAL);
  EXPECT(weft_pread(p[0], NULL, 16, 0), -EINVAL);
  EXPECT(weft_pwrite(p[1], NULL, 16, 0), -EINVAL);
  /* A length of zero needs no buffer. */
  EXPECT(weft_write(p[1], NULL, 0, WEFT_FOREVER), 0);
  EXPECT(weft_writev(p[1], NULL, 0, WEFT_FOREVER), 0);
  /* Nothing was written by the refused calls. */
  char b[4];
  EXPECT(weft_read(p[0], b, sizeof b, WEFT_NOWAIT), -EAGAIN);
}

CASE(null, io_addresses) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
    child_fail("socketpair", -1, 0);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT(weft_connect(s, NULL, sizeof(struct sockaddr_in), WEFT_NOWAIT),
         -EINVAL);
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1))
    child_fail("bind/listen", -1, 0);
  /* addr and addrlen may both be NULL; addr without addrlen is refused. */
  EXPECT(weft_accept(l, (struct sockaddr *)&a, NULL, 0, WEFT_NOWAIT),
         -EINVAL);
  EXPECT(weft_accept(l, NULL, NULL, 0, WEFT_NOWAIT), -EAGAIN);
}

CASE(null, open) { EXPECT(weft_open(NULL, O_RDONLY, 0), -EINVAL); }

CASE(null, getaddrinfo) {
  struct addrinfo hints = {.ai_family = AF_INET};
  EXPECT(weft_getaddrinfo("127.0.0.1", NULL, &hints, NULL), EAI_SYSTEM);
  EXPECT(h_errno_get(), EINVAL);
}

/* ------------------------------------------------------------------------ */
/* NULL: processes, the shared heap, process channels, fault injection      */
/* ------------------------------------------------------------------------ */

CASE(null, procs) { EXPECT(weft_procs_run(NULL), -EINVAL); }

CASE(null, shm) {
  EXPECT(weft_shm_alloc(16, NULL), -EINVAL);
  EXPECT(weft_shm_free(NULL), 0); /* documented: drains the queue */
  EXPECT(weft_shm_owner(NULL), -EINVAL);
  EXPECT(weft_shm_contains(NULL), false);
  EXPECT(weft_shm_ref_of(NULL).gen, 0);
  weft_shm_ref none = {0};
  EXPECT(weft_shm_ref_check(none), -EINVAL);
  EXPECT(weft_shm_setup(1 << 20, 1), 0);
  EXPECT(weft_shm_alloc(16, NULL), -EINVAL);
  EXPECT(weft_shm_owner(NULL), -EINVAL);
  EXPECT(weft_shm_contains(NULL), false);
  EXPECT(weft_shm_ref_check(none), -EINVAL);
}

CASE(null, pchan) {
  weft_pchan *ch;
  int v = 0;
  /* Without a shared region, NULL is still the caller's mistake. */
  EXPECT(weft_pchan_open(NULL, 4, 4), -EINVAL);
  EXPECT(weft_pchan_send(NULL, &v, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_pchan_recv(NULL, &v, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_pchan_close(NULL), -EINVAL);
  EXPECT(weft_shm_setup(1 << 20, 1), 0);
  EXPECT(weft_pchan_open(NULL, 4, 4), -EINVAL);
  EXPECT(weft_pchan_send(NULL, &v, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_pchan_recv(NULL, &v, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_pchan_close(NULL), -EINVAL);
  EXPECT(weft_pchan_open(&ch, sizeof v, 4), 0);
  EXPECT(weft_pchan_send(ch, NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_pchan_recv(ch, NULL, WEFT_NOWAIT), -EINVAL);
}

CASE(null, fail_inject) { EXPECT(weft_fail_inject(NULL), 0); }

/* ------------------------------------------------------------------------ */
/* The mutex checks its owner                                               */
/* ------------------------------------------------------------------------ */

static weft_mutex gm = WEFT_MUTEX_INIT;

static void *unlock_gm(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_mutex_unlock(&gm);
}

static void *lock_gm(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_mutex_lock(&gm);
}

CASE(mutex, relock_by_holder_is_edeadlk) {
  EXPECT(weft_mutex_lock(&gm), 0);
  EXPECT(weft_mutex_lock(&gm), -EDEADLK);
}

CASE(mutex, relock_until_by_holder_is_edeadlk) {
  EXPECT(weft_mutex_lock(&gm), 0);
  EXPECT(weft_mutex_lock_until(&gm, weft_deadline(MS(50))), -EDEADLK);
  EXPECT(weft_mutex_lock_until(&gm, WEFT_NOWAIT), -EDEADLK);
  /* As pthreads' error-checking mutexes: trylock reports "busy". */
  EXPECT(weft_mutex_trylock(&gm), -EBUSY);
  EXPECT(weft_mutex_unlock(&gm), 0);
  EXPECT(weft_mutex_unlock(&gm), -EPERM);
}

static void *relock_green(void *arg) {
  (void)arg;
  intptr_t r = weft_mutex_lock(&gm);
  if (r == 0) {
    weft_yield();
    r = weft_mutex_lock(&gm);
  }
  return (void *)r;
}

CASE(mutex, relock_by_green_holder_is_edeadlk) {
  start(2);
  EXPECT((intptr_t)on_green(relock_green, NULL), -EDEADLK);
}

CASE(mutex, unlock_by_other_kthread_is_eperm) {
  EXPECT(weft_mutex_lock(&gm), 0);
  EXPECT((intptr_t)on_pthread(unlock_gm, NULL), -EPERM);
  EXPECT(weft_mutex_trylock(&gm), -EBUSY); /* still held */
  EXPECT(weft_mutex_unlock(&gm), 0);
}

CASE(mutex, unlock_by_green_of_kthread_lock_is_eperm) {
  start(2);
  EXPECT(weft_mutex_lock(&gm), 0);
  EXPECT((intptr_t)on_green(unlock_gm, NULL), -EPERM);
  EXPECT(weft_mutex_unlock(&gm), 0);
}

CASE(mutex, unlock_by_other_green_is_eperm) {
  start(2);
  EXPECT((intptr_t)on_green(lock_gm, NULL), 0); /* its holder has ended */
  EXPECT((intptr_t)on_green(unlock_gm, NULL), -EPERM);
  EXPECT(weft_mutex_unlock(&gm), -EPERM);
}

static void *lock_move_unlock(void *arg) {
  (void)arg;
  intptr_t r = weft_mutex_lock(&gm);
  /* Sleeping and yielding let the green thread resume on any worker. */
  for (int i = 0; r == 0 && i < 20; i++) {
    weft_sleep(i & 1 ? MS(1) : 0);
    weft_yield();
  }
  if (r == 0)
    r = weft_mutex_unlock(&gm);
  return (void *)r;
}

CASE(mutex, owner_follows_the_green_thread) {
  start(2);
  weft_gthread t[4];
  for (int i = 0; i < 4; i++)
    EXPECT(weft_spawn(&t[i], NULL, lock_move_unlock, NULL), 0);
  for (int i = 0; i < 4; i++) {
    void *r;
    EXPECT(weft_join(t[i], &r), 0);
    EXPECT((intptr_t)r, 0);
  }
}

static atomic_int handed;

static void *lock_then_check(void *arg) {
  (void)arg;
  intptr_t r = weft_mutex_lock(&gm); /* waits: the main thread holds it */
  atomic_store(&handed, 1);
  if (r)
    return (void *)r;
  weft_sleep(MS(20)); /* the old holder tries to unlock meanwhile */
  return (void *)(intptr_t)weft_mutex_unlock(&gm);
}

CASE(mutex, handoff_moves_the_owner) {
  start(2);
  weft_gthread t;
  EXPECT(weft_mutex_lock(&gm), 0);
  EXPECT(weft_spawn(&t, NULL, lock_then_check, NULL), 0);
  weft_sleep(MS(20)); /* let it queue: the unlock then hands over */
  EXPECT(weft_mutex_unlock(&gm), 0);
  while (!atomic_load(&handed))
    weft_sleep(MS(1));
  EXPECT(weft_mutex_unlock(&gm), -EPERM); /* no longer ours */
  void *r;
  EXPECT(weft_join(t, &r), 0);
  EXPECT((intptr_t)r, 0);
}

static weft_cond gc = WEFT_COND_INIT;

static void *cond_wait_foreign(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_cond_wait_until(&gc, &gm,
                                                weft_deadline(MS(20)));
}

CASE(mutex, cond_wait_without_holding_is_eperm) {
  weft_cond c = WEFT_COND_INIT;
  EXPECT(weft_cond_wait(&c, &gm), -EPERM); /* unlocked */
  EXPECT(weft_mutex_lock(&gm), 0);
  /* Held by this thread: another thread may not wait with it. */
  EXPECT((intptr_t)on_pthread(cond_wait_foreign, NULL), -EPERM);
  EXPECT(weft_mutex_unlock(&gm), 0);
  EXPECT(weft_mutex_unlock(&gm), -EPERM);
}

static void *cond_wait_green(void *arg) {
  (void)arg;
  intptr_t r = weft_mutex_lock(&gm);
  if (r == 0)
    r = weft_cond_wait_until(&gc, &gm, weft_deadline(MS(10)));
  if (r != -ETIMEDOUT)
    return (void *)r;
  /* Woken with the mutex held again, by this green thread. */
  return (void *)(intptr_t)weft_mutex_unlock(&gm);
}

CASE(mutex, cond_wait_relocks_for_the_caller) {
  start(2);
  EXPECT((intptr_t)on_green(cond_wait_green, NULL), 0);
  EXPECT((intptr_t)on_pthread(cond_wait_green, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* The read-write lock                                                      */
/* ------------------------------------------------------------------------ */

CASE(null, rwlock) {
  EXPECT(weft_rwlock_init(NULL), -EINVAL);
  EXPECT(weft_rwlock_destroy(NULL), -EINVAL);
  EXPECT(weft_rwlock_rdlock(NULL), -EINVAL);
  EXPECT(weft_rwlock_rdlock_until(NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_rwlock_tryrdlock(NULL), -EINVAL);
  EXPECT(weft_rwlock_wrlock(NULL), -EINVAL);
  EXPECT(weft_rwlock_wrlock_until(NULL, WEFT_NOWAIT), -EINVAL);
  EXPECT(weft_rwlock_trywrlock(NULL), -EINVAL);
  EXPECT(weft_rwlock_unlock(NULL), -EINVAL);
}

TestSuite(rwlock, .timeout = 60);

static weft_rwlock grw = WEFT_RWLOCK_INIT;

static void *unlock_grw(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_rwlock_unlock(&grw);
}

static void *wrlock_grw(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_rwlock_wrlock(&grw);
}

CASE(rwlock, unlock_of_unlocked_is_eperm) {
  EXPECT(weft_rwlock_unlock(&grw), -EPERM);
  EXPECT(weft_rwlock_rdlock(&grw), 0);
  EXPECT(weft_rwlock_unlock(&grw), 0);
  EXPECT(weft_rwlock_unlock(&grw), -EPERM);
  EXPECT(weft_rwlock_wrlock(&grw), 0);
  EXPECT(weft_rwlock_unlock(&grw), 0);
  EXPECT(weft_rwlock_unlock(&grw), -EPERM);
}

CASE(rwlock, writer_relock_is_edeadlk) {
  EXPECT(weft_rwlock_wrlock(&grw), 0);
  EXPECT(weft_rwlock_wrlock(&grw), -EDEADLK);
  EXPECT(weft_rwlock_wrlock_until(&grw, weft_deadline(MS(50))), -EDEADLK);
  EXPECT(weft_rwlock_rdlock(&grw), -EDEADLK);
  EXPECT(weft_rwlock_rdlock_until(&grw, weft_deadline(MS(50))), -EDEADLK);
  EXPECT(weft_rwlock_trywrlock(&grw), -EBUSY);
  EXPECT(weft_rwlock_tryrdlock(&grw), -EBUSY);
  EXPECT(weft_rwlock_destroy(&grw), -EBUSY);
  EXPECT(weft_rwlock_unlock(&grw), 0);
  EXPECT(weft_rwlock_destroy(&grw), 0);
}

CASE(rwlock, write_unlock_by_other_is_eperm) {
  start(2);
  EXPECT(weft_rwlock_wrlock(&grw), 0);
  EXPECT((intptr_t)on_pthread(unlock_grw, NULL), -EPERM);
  EXPECT((intptr_t)on_green(unlock_grw, NULL), -EPERM);
  EXPECT(weft_rwlock_unlock(&grw), 0);
  /* A green thread's write lock, against this kernel thread. */
  EXPECT((intptr_t)on_green(wrlock_grw, NULL), 0);
  EXPECT(weft_rwlock_unlock(&grw), -EPERM);
  EXPECT((intptr_t)on_green(unlock_grw, NULL), -EPERM);
}

/* ------------------------------------------------------------------------ */
/* Time helpers: no overflow, which would be undefined                      */
/* ------------------------------------------------------------------------ */

TestSuite(time);

Test(time, units) {
  cr_expect_eq(weft_us(1), 1000);
  cr_expect_eq(weft_ms(1), 1000000);
  cr_expect_eq(weft_sec(1), 1000000000);
  cr_expect_eq(weft_sec(30), 30 * 1000000000LL);
  cr_expect_eq(weft_ms(-250), -250000000);
  cr_expect_eq(weft_us(0), 0);
  cr_expect_eq(weft_sec(0), 0);
}

Test(time, saturates) {
  cr_expect_eq(weft_sec(INT64_MAX), INT64_MAX);
  cr_expect_eq(weft_sec(INT64_MIN), INT64_MIN);
  cr_expect_eq(weft_ms(INT64_MAX / 1000), INT64_MAX);
  cr_expect_eq(weft_us(INT64_MIN / 100), INT64_MIN);
  /* The largest exact values, and one past them. */
  int64_t s = INT64_MAX / 1000000000;
  cr_expect_eq(weft_sec(s), s * 1000000000);
  cr_expect_eq(weft_sec(s + 1), INT64_MAX);
  cr_expect_eq(weft_sec(-s), -s * 1000000000);
  cr_expect_eq(weft_sec(-s - 1), INT64_MIN);
  int64_t m = INT64_MAX / 1000000;
  cr_expect_eq(weft_ms(m), m * 1000000);
  cr_expect_eq(weft_ms(m + 1), INT64_MAX);
  int64_t u = INT64_MAX / 1000;
  cr_expect_eq(weft_us(u), u * 1000);
  cr_expect_eq(weft_us(u + 1), INT64_MAX);
  cr_expect_eq(weft_us(-u - 1), INT64_MIN);
  /* A saturated duration is WEFT_FOREVER as a deadline. */
  cr_expect_eq(weft_deadline(weft_sec(INT64_MAX)), WEFT_FOREVER);
}

/* ------------------------------------------------------------------------ */
/* Error messages                                                           */
/* ------------------------------------------------------------------------ */

Test(errors, messages_name_their_cases) {
  cr_expect(strstr(weft_strerror(-EPERM), "hold"),
            "-EPERM: %s", weft_strerror(-EPERM));
  cr_expect(strstr(weft_strerror(-EPERM), "not running"),
            "-EPERM: %s", weft_strerror(-EPERM));
  cr_expect(strstr(weft_strerror(-ESRCH), "finished"),
            "-ESRCH: %s", weft_strerror(-ESRCH));
  cr_expect(strstr(weft_strerror(-EDEADLK), "already holds"),
            "-EDEADLK: %s", weft_strerror(-EDEADLK));
  cr_expect(strstr(weft_strerror(-EDEADLK), "itself"),
            "-EDEADLK: %s", weft_strerror(-EDEADLK));
  cr_expect(strstr(weft_strerror(-EINVAL), "NULL"),
            "-EINVAL: %s", weft_strerror(-EINVAL));
}
