/*
 * shm_helpers.h - a small supervisor for the shared-heap and process
 * channel tests (test_shheap.c, test_pchan.c).
 *
 * A test never maps the shared region in Criterion's own process: it runs
 * a supervisor in a forked child (sh_run), which calls weft_shm_setup,
 * forks worker processes that attach to their slots (sh_spawn) and reaps
 * them (sh_wait).  Nothing there may call Criterion's assertions, so the
 * supervisor and the workers record failures with TCHECK's recorder,
 * which sh_run moves to a page mapped MAP_SHARED before the first fork
 * (SH_CHECK and SH_CHECK_EQ are TCHECK's), and the test asserts on it
 * afterwards.  Data a test wants back goes
 * in pages from sh_map, shared the same way.
 */
#ifndef TESTS_SHM_HELPERS_H
#define TESTS_SHM_HELPERS_H

#include "helpers.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include "shm_test.h"

/* Memory shared by the test, its supervisor and the workers. */
static H_UNUSED void *sh_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
  return p;
}

/* Checks in the supervisor and the workers: TCHECK's recorder, shared
 * across their forks by sh_run. */
#define SH_CHECK(cond) TCHECK(cond)
#define SH_CHECK_EQ(x, y) TCHECK_EQ(x, y)

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
  h_share_report();
  struct sh_run_arg a = {fn, arg, seconds};
  h_fork_capture(sh_run_trampoline, &a, res);
  cr_expect(WIFEXITED(res->status) && WEXITSTATUS(res->status) == 0,
            "supervisor %s %d; its stderr:\n%s",
            WIFEXITED(res->status) ? "exited with" : "killed by signal",
            WIFEXITED(res->status) ? WEXITSTATUS(res->status)
                                   : WTERMSIG(res->status),
            res->err);
  cr_expect_eq(atomic_load(&h_rep->failures), 0,
               "%d check(s) failed in the supervisor or a worker; first: "
               "%s\nsupervisor's stderr:\n%s",
               atomic_load(&h_rep->failures), h_rep->first, res->err);
}

#endif /* TESTS_SHM_HELPERS_H */
