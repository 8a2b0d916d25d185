/*
 * shm_helpers.h - a small supervisor for the shared-heap and process
 * channel tests (test_shheap.c, test_pchan.c).
 *
 * A test never maps the shared region in Criterion's own process: it runs
 * a supervisor in a forked child (sh_run), which calls weft_shm_setup,
 * forks worker processes that attach to their slots (sh_spawn) and reaps
 * them (sh_wait).  Nothing there may call Criterion's assertions, so the
 * supervisor and the workers record failures in a report page mapped
 * MAP_SHARED before the first fork (SH_CHECK, SH_CHECK_EQ), and the test
 * asserts on it afterwards (sh_expect_clean).  Data a test wants back goes
 * in pages from sh_map, shared the same way.
 */
#ifndef TESTS_SHM_HELPERS_H
#define TESTS_SHM_HELPERS_H

#include "helpers.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include "shheap.h"

struct sh_report {
  atomic_int failures;
  atomic_int taken;
  char first[512];
};

static struct sh_report *sh_rep;

/* Memory shared by the test, its supervisor and the workers. */
static H_UNUSED void *sh_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
  return p;
}

static H_UNUSED void sh_fail(const char *file, int line, const char *what,
                             long long a, long long b, int with_values) {
  atomic_fetch_add(&sh_rep->failures, 1);
  if (atomic_exchange(&sh_rep->taken, 1))
    return;
  if (with_values)
    snprintf(sh_rep->first, sizeof sh_rep->first,
             "%s:%d (pid %d): %s (%lld vs %lld)", file, line, (int)getpid(),
             what, a, b);
  else
    snprintf(sh_rep->first, sizeof sh_rep->first, "%s:%d (pid %d): %s", file,
             line, (int)getpid(), what);
}

#define SH_CHECK(cond)                                                         \
  do {                                                                         \
    if (!(cond))                                                               \
      sh_fail(__FILE__, __LINE__, #cond, 0, 0, 0);                             \
  } while (0)

#define SH_CHECK_EQ(x, y)                                                      \
  do {                                                                         \
    long long sh_x_ = (long long)(x), sh_y_ = (long long)(y);                  \
    if (sh_x_ != sh_y_)                                                        \
      sh_fail(__FILE__, __LINE__, #x " == " #y, sh_x_, sh_y_, 1);              \
  } while (0)

typedef int (*sh_worker_fn)(int index, void *arg);

/* Supervisor: forks a worker for slot index that attaches to its
 * partition, runs fn and exits with its result. */
static H_UNUSED pid_t sh_spawn(int index, sh_worker_fn fn, void *arg) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    SH_CHECK(pid >= 0);
    return -1;
  }
  if (pid == 0) {
    /* A worker never outlives its supervisor, nor hangs for ever. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(120);
    int rc = weft__shm_attach(index);
    if (rc) {
      fprintf(stderr, "worker %d: weft__shm_attach: %s\n", index,
              weft_strerror(rc));
      SH_CHECK_EQ(rc, 0);
      _exit(90);
    }
    rc = fn(index, arg);
    fflush(NULL);
    _exit(rc);
  }
  return pid;
}

/* Supervisor: reaps pid; returns its wait status. */
static H_UNUSED int sh_wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      SH_CHECK(!"waitpid failed");
      return -1;
    }
  }
  return status;
}

/* Supervisor: reaps pid and checks that it exited with status 0. */
static H_UNUSED void sh_wait_ok(pid_t pid, const char *what) {
  int st = sh_wait(pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s: %s %d\n", what,
            WIFEXITED(st) ? "exited with" : "killed by signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    SH_CHECK(!"a worker failed");
  }
}

/* Spins (yielding) until *flag reaches value, or fails after ~20 s. */
static H_UNUSED bool sh_await(atomic_int *flag, int value) {
  for (long i = 0; i < 20 * 1000 * 10; i++) {
    if (atomic_load(flag) >= value)
      return true;
    usleep(100);
  }
  SH_CHECK(!"timed out waiting for a flag");
  return false;
}

/* A worker that waits to be killed by its supervisor. */
static H_UNUSED _Noreturn void sh_hang(void) {
  for (;;)
    pause();
}

struct sh_run_arg {
  void (*fn)(void *);
  void *arg;
  unsigned seconds;
};

static H_UNUSED void sh_run_trampoline(void *p) {
  struct sh_run_arg *a = p;
  alarm(a->seconds);
  a->fn(a->arg);
}

/*
 * Runs fn(arg) as the supervisor in a forked child (stderr captured in
 * res, an alarm after `seconds`), then asserts that it exited normally.
 */
static H_UNUSED void sh_run(void (*fn)(void *), void *arg, struct h_child *res,
                            unsigned seconds) {
  sh_rep = sh_map(sizeof *sh_rep);
  struct sh_run_arg a = {fn, arg, seconds};
  h_fork_capture(sh_run_trampoline, &a, res);
  cr_expect(WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0,
            "supervisor %s %d; its stderr:\n%s",
            WIFEXITED(res->status) ? "exited with" : "killed by signal",
            WIFEXITED(res->status) ? WEXITSTATUS(res->status)
                                   : WTERMSIG(res->status),
            res->err);
  cr_expect_eq(atomic_load(&sh_rep->failures), 0,
               "%d check(s) failed in the supervisor or a worker; first: "
               "%s\nsupervisor's stderr:\n%s",
               atomic_load(&sh_rep->failures), sh_rep->first, res->err);
}

#endif /* TESTS_SHM_HELPERS_H */
