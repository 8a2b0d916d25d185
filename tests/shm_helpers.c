/*
 * shm_helpers.c - the functions of shm_helpers.h, in tests/libcheck_shm.la.
 *
 * sh_spawn calls weft__shm_attach, which the shared libweft hides: only
 * programs that link libweft statically (test_shm, test_pchan) can link
 * this file, so it has a library of its own, apart from tests/libcheck.la.
 */
#include "shm_helpers.h"

void *sh_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  cr_assert(p != MAP_FAILED, "mmap: %s", strerror(errno));
  return p;
}

pid_t sh_spawn(int index, sh_worker_fn fn, void *arg) {
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

int sh_wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      SH_CHECK(!"waitpid failed");
      return -1;
    }
  }
  return status;
}

void sh_wait_ok(pid_t pid, const char *what) {
  int st = sh_wait(pid);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    fprintf(stderr, "%s: %s %d\n", what,
            WIFEXITED(st) ? "exited with" : "killed by signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    SH_CHECK(!"a worker failed");
  }
}

void sh_pair(sh_worker_fn fn0, const char *what0, sh_worker_fn fn1,
             const char *what1, void *arg) {
  pid_t a = sh_spawn(0, fn0, arg);
  pid_t b = sh_spawn(1, fn1, arg);
  sh_wait_ok(a, what0);
  sh_wait_ok(b, what1);
}

bool sh_await(atomic_int *flag, int value) {
  for (long i = 0; i < 20 * 1000 * 10; i++) {
    if (atomic_load(flag) >= value)
      return true;
    usleep(100);
  }
  SH_CHECK(!"timed out waiting for a flag");
  return false;
}

_Noreturn void sh_hang(void) {
  for (;;)
    pause();
}

struct sh_run_arg {
  void (*fn)(void *);
  void *arg;
  unsigned seconds;
};

static void sh_run_trampoline(void *p) {
  struct sh_run_arg *a = p;
  alarm(a->seconds);
  a->fn(a->arg);
}

void sh_run(void (*fn)(void *), void *arg, struct h_child *res,
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
