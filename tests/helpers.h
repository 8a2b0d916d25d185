/*
 * helpers.h - shared by the tests/test_*.c files.
 *
 * Criterion's assertions must only be called from the test's own thread:
 * a failing cr_assert() unwinds with longjmp(), which is undefined from a
 * green thread (another stack, maybe another kernel thread) or a pthread.
 * Code that runs off the test's thread therefore records failures with
 * TCHECK()/TCHECK_EQ(), and the test reports them from its own thread with
 * EXPECT_NO_THREAD_FAILURES() once everything has been joined.
 *
 * Also here: starting and stopping the runtime from fixtures, errno access
 * that the compiler cannot cache across a switch, and a fork helper that
 * captures a child's stderr and its fate (for crash messages).
 */
#ifndef TESTS_HELPERS_H
#define TESTS_HELPERS_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef WEFT_ASAN
#define WEFT_ASAN 0
#endif
#ifndef WEFT_TSAN
#define WEFT_TSAN 0
#endif
#ifndef WEFT_DEBUG
#define WEFT_DEBUG 0
#endif

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

#define H_UNUSED __attribute__((unused))
#define MS(n) ((int64_t)(n) * 1000000)

/* ------------------------------------------------------------------------ */
/* Failures seen off the test's thread                                      */
/* ------------------------------------------------------------------------ */

/*
 * One recorder for checks made off the test's thread (TCHECK): how many
 * failed, and the first, with where and in which process.  It starts
 * private to the test's process (its threads, green or not); a test whose
 * checks run in forked children too calls h_share_report() before it
 * forks, which moves the recorder to a fresh MAP_SHARED page that the
 * children inherit.
 */
struct h_report {
  atomic_int failures;
  atomic_int taken; /* first is written */
  char first[512];
};

static struct h_report h_local_report H_UNUSED;
static struct h_report *h_rep H_UNUSED = &h_local_report;

static H_UNUSED void h_share_report(void) {
  void *p = mmap(NULL, sizeof *h_rep, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("h_share_report: mmap");
    abort();
  }
  h_rep = p; /* zeroed: no failure yet */
}

static H_UNUSED void h_fail(const char *file, int line, const char *what,
                            long long a, long long b, int with_values) {
  atomic_fetch_add(&h_rep->failures, 1);
  if (atomic_exchange(&h_rep->taken, 1))
    return;
  if (with_values)
    snprintf(h_rep->first, sizeof h_rep->first,
             "%s:%d (pid %d): %s (%lld vs %lld)", file, line, (int)getpid(),
             what, a, b);
  else
    snprintf(h_rep->first, sizeof h_rep->first, "%s:%d (pid %d): %s", file,
             line, (int)getpid(), what);
}

#define TCHECK(cond)                                                         \
  do {                                                                       \
    if (!(cond))                                                             \
      h_fail(__FILE__, __LINE__, #cond, 0, 0, 0);                            \
  } while (0)

#define TCHECK_EQ(x, y)                                                      \
  do {                                                                       \
    long long h_x_ = (long long)(x), h_y_ = (long long)(y);                  \
    if (h_x_ != h_y_)                                                        \
      h_fail(__FILE__, __LINE__, #x " == " #y, h_x_, h_y_, 1);               \
  } while (0)

/* From the test's thread, after every other thread has been joined. */
#define EXPECT_NO_THREAD_FAILURES()                                          \
  cr_expect(atomic_load(&h_rep->failures) == 0,                              \
            "%d check(s) failed off the test thread; first: %s",             \
            atomic_load(&h_rep->failures), h_rep->first)

/* ------------------------------------------------------------------------ */
/* Runtime lifecycle for fixtures                                           */
/* ------------------------------------------------------------------------ */

static H_UNUSED void h_start(int workers) {
  weft_config cfg = {.workers = workers};
  int rc = weft_init(&cfg);
  cr_assert_eq(rc, 0, "weft_init(workers=%d): %s", workers,
               weft_strerror(rc));
  cr_assert_eq(weft_workers(), workers);
}

static H_UNUSED void h_start1(void) { h_start(1); }
static H_UNUSED void h_start2(void) { h_start(2); }
static H_UNUSED void h_start4(void) { h_start(4); }

static H_UNUSED void h_stop(void) {
  if (weft_running()) {
    int rc = weft_shutdown();
    cr_expect_eq(rc, 0, "weft_shutdown: %s", weft_strerror(rc));
  }
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

/* Test thread only. */
static H_UNUSED weft_gthread h_spawn(weft_fn fn, void *arg) {
  weft_gthread t;
  int rc = weft_spawn(&t, NULL, fn, arg);
  cr_assert_eq(rc, 0, "weft_spawn: %s", weft_strerror(rc));
  return t;
}

/* Test thread only. */
static H_UNUSED void *h_join(weft_gthread t) {
  void *res = NULL;
  int rc = weft_join(t, &res);
  cr_assert_eq(rc, 0, "weft_join: %s", weft_strerror(rc));
  return res;
}

/* Any thread: failures are recorded with TCHECK. */
static H_UNUSED weft_gthread h_tspawn(weft_fn fn, void *arg) {
  weft_gthread t = {0};
  int rc = weft_spawn(&t, NULL, fn, arg);
  TCHECK_EQ(rc, 0);
  return t;
}

static H_UNUSED void *h_tjoin(weft_gthread t) {
  void *res = NULL;
  int rc = weft_join(t, &res);
  TCHECK_EQ(rc, 0);
  return res;
}

/* Test thread only. */
static H_UNUSED pthread_t h_pthread(void *(*fn)(void *), void *arg) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, fn, arg);
  cr_assert_eq(rc, 0, "pthread_create: %s", strerror(rc));
  return t;
}

static H_UNUSED void *h_pjoin(pthread_t t) {
  void *res = NULL;
  int rc = pthread_join(t, &res);
  cr_assert_eq(rc, 0, "pthread_join: %s", strerror(rc));
  return res;
}

/* ------------------------------------------------------------------------ */
/* errno without caching                                                    */
/* ------------------------------------------------------------------------ */

/* glibc declares __errno_location() const, so within one function the
 * compiler may reuse the address of the kernel thread's errno across a call
 * after which the green thread runs elsewhere.  Going through functions that
 * cannot be inlined or analysed gives a fresh address each time. */
#if defined(__clang__)
#define H_OPAQUE __attribute__((noinline))
#else
#define H_OPAQUE __attribute__((noipa))
#endif
H_OPAQUE static H_UNUSED int h_errno_get(void) { return errno; }
H_OPAQUE static H_UNUSED void h_errno_set(int v) { errno = v; }

/* ------------------------------------------------------------------------ */
/* Small deterministic random numbers (xorshift64*)                         */
/* ------------------------------------------------------------------------ */

static H_UNUSED uint64_t h_rand(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------------ */
/* Fork and capture stderr                                                  */
/* ------------------------------------------------------------------------ */

struct h_child {
  int status;     /* from waitpid() */
  char err[8192]; /* what the child wrote to stderr, NUL-terminated */
  size_t len;
};

/*
 * Runs fn(arg) in a forked child whose stderr is a pipe, without core dumps
 * and with an alarm so that a hang ends the child (by SIGALRM) instead of
 * the test.  The child exits with status 0 if fn returns.  fn must not call
 * Criterion's assertions.  Call it before weft_init() in the parent, so the
 * child starts with a single thread and no runtime.
 */
static H_UNUSED void h_fork_capture(void (*fn)(void *), void *arg,
                                    struct h_child *res) {
  int p[2];
  cr_assert_eq(pipe(p), 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    struct rlimit nocore = {0, 0};
    close(p[0]);
    if (dup2(p[1], STDERR_FILENO) < 0)
      _exit(100);
    close(p[1]);
    setvbuf(stderr, NULL, _IONBF, 0);
    setrlimit(RLIMIT_CORE, &nocore);
    alarm(30);
    fn(arg);
    fflush(NULL);
    _exit(0);
  }
  close(p[1]);
  res->len = 0;
  for (;;) {
    ssize_t n = read(p[0], res->err + res->len, sizeof res->err - 1 - res->len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    res->len += (size_t)n;
    if (res->len == sizeof res->err - 1) {
      char sink[512]; /* keep draining so the child never blocks */
      while (read(p[0], sink, sizeof sink) > 0)
        ;
      break;
    }
  }
  res->err[res->len] = '\0';
  close(p[0]);
  while (waitpid(pid, &res->status, 0) < 0)
    cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
}

/* Turns off core dumps for a test that is expected to crash. */
static H_UNUSED void h_no_core(void) {
  struct rlimit nocore = {0, 0};
  setrlimit(RLIMIT_CORE, &nocore);
}

/* True if process `parent` has a child in state Z (a zombie). */
static inline bool h_has_zombie_child(pid_t parent) {
  DIR *d = opendir("/proc");
  if (!d)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
      continue;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    char state;
    int ppid;
    if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == (int)parent && state == 'Z')
      found = true;
  }
  closedir(d);
  return found;
}

#endif /* TESTS_HELPERS_H */
