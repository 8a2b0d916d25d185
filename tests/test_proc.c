/*
 * test_proc.c - the supervisor of worker processes (weft_procs_run).
 *
 * Each test forks a child that becomes the supervisor, so that Criterion's
 * own process never is one; the child's stderr (and so its workers') goes
 * to a file the test reads afterwards.  Workers report what they saw
 * through a MAP_SHARED page that the test maps before forking: how often
 * each slot started, with which pid, whether it saw the drain flag.  The
 * supervisor child writes weft_procs_run's result there too, and what it
 * found after it returned (zombies, its signal mask).
 */
#include "helpers.h"

#if WEFT_ASAN
/* Crashes are part of these tests: leave SIGSEGV to its default action.
 * Read by ASan at startup; ASAN_OPTIONS overrides it flag by flag. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "handle_segv=0:detect_leaks=0:detect_stack_use_after_return=0";
}
#endif

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define TMO .timeout = 20
#define MAXW 8
#define MAXSTARTS 16

enum behaviour {
  B_RETURN0 = 1, /* record, return 0 */
  B_SEGV,        /* slot 1 crashes with SIGSEGV on its first start */
  B_KILL,        /* slot 1 SIGKILLs itself on its first start */
  B_EXIT3,       /* slot 1 exits with status 3 on its first start */
  B_ALWAYS5,     /* every start of slot 0 exits with status 5 */
  B_DRAIN,       /* run until weft_procs_draining(), then return 0 */
  B_STUBBORN,    /* as B_DRAIN, but slot 0 ignores the drain */
  B_LISTEN,      /* check the inherited listening socket */
  B_GREEN,       /* start a runtime of its own in the worker */
  B_DRAIN_SEGV,  /* as B_DRAIN, but slot 1 crashes when asked to drain */
  B_SHM,         /* slot 1 allocates from the shared heap, then crashes */
  B_TASK,        /* each worker runs a process task of its own */
  B_SLOW_DRAIN,  /* as B_DRAIN, but takes 600 ms to finish its drain */
};

struct shared {
  int behaviour;
  atomic_int starts[MAXW];
  atomic_int pids[MAXW][MAXSTARTS];
  atomic_int running;
  atomic_int saw_drain[MAXW];
  atomic_int index_seen[MAXW];
  atomic_int ok[MAXW]; /* behaviour-specific checks passed */
  int listen_fd;
  ino_t listen_ino;
  weft_shm_ref shm_ref; /* slot 1's object, from its first life */
  atomic_int shm_first_owner;
  atomic_int shm_check_after;
  atomic_int shm_alloc_after;
  /* Written by the supervisor child after weft_procs_run returned. */
  int ran;
  int rc;
  int echild_after; /* waitpid(-1, WNOHANG) gave ECHILD */
  int zombies_after;
  int mask_restored;
  int chld_restored;
  int self_index;
};

static struct shared *S;
/* The address is computed as an integer so that UBSan's null-pointer
 * check (which would exit first) leaves it to the hardware fault. */
static volatile uintptr_t null_base = 0;
#define CRASH() (*(volatile int *)(null_base + 16) = 1)

static void map_shared(void) {
  void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert(p != MAP_FAILED);
  S = p;
  memset(S, 0, sizeof *S);
  S->listen_fd = -1;
  h_no_core();
}


/* ------------------------------------------------------------------------ */
/* Workers                                                                  */
/* ------------------------------------------------------------------------ */

/* Sleeps in 1 ms steps until draining; false if that took over 15 s (so
 * that no worker outlives a broken test for long). */
static bool wait_for_drain(void) {
  for (int i = 0; i < 15000; i++) {
    if (weft_procs_draining())
      return true;
    usleep(1000);
  }
  return false;
}

static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }

/* In a process task forked by a worker: it is no worker itself. */
static void *task_in_worker(void *arg) {
  (void)arg;
  return (void *)(intptr_t)(weft_procs_index() == -1 &&
                            !weft_procs_draining() &&
                            weft_procs_listen_fd() == -1);
}

static int worker(int index, void *arg) {
  struct shared *s = arg;
  int n = atomic_fetch_add(&s->starts[index], 1) + 1;
  if (n <= MAXSTARTS)
    atomic_store(&s->pids[index][n - 1], (int)getpid());
  atomic_store(&s->index_seen[index], weft_procs_index() + 1);
  if (weft_procs_draining())
    return 77; /* never at the start */

  switch (s->behaviour) {
  case B_SEGV:
    if (index == 1 && n == 1)
      CRASH();
    return 0;
  case B_KILL:
    if (index == 1 && n == 1)
      raise(SIGKILL);
    return 0;
  case B_EXIT3:
    if (index == 1 && n == 1)
      exit(3);
    return 0;
  case B_ALWAYS5:
    return index == 0 ? 5 : 0;
  case B_DRAIN:
  case B_DRAIN_SEGV:
    atomic_fetch_add(&s->running, 1);
    if (!wait_for_drain())
      return 9;
    atomic_store(&s->saw_drain[index], 1);
    if (s->behaviour == B_DRAIN_SEGV && index == 1)
      CRASH();
    return 0;
  case B_SLOW_DRAIN:
    atomic_fetch_add(&s->running, 1);
    if (!wait_for_drain())
      return 9;
    atomic_store(&s->saw_drain[index], 1);
    usleep(600000); /* finishing the connections it has */
    return 0;
  case B_STUBBORN:
    atomic_fetch_add(&s->running, 1);
    if (!wait_for_drain())
      return 9;
    atomic_store(&s->saw_drain[index], 1);
    if (index == 0)
      for (int i = 0; i < 15000; i++)
        usleep(1000); /* ignores it: the supervisor must SIGKILL us */
    return 0;
  case B_LISTEN: {
    int fd = weft_procs_listen_fd();
    struct stat st;
    int acc = 0;
    socklen_t len = sizeof acc;
    int fl = fcntl(fd, F_GETFD);
    if (fd == s->listen_fd && fl >= 0 && !(fl & FD_CLOEXEC) &&
        fstat(fd, &st) == 0 && st.st_ino == s->listen_ino &&
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc)
      atomic_store(&s->ok[index], 1);
    return 0;
  }
  case B_GREEN: {
    weft_config cfg = {.workers = 2};
    if (weft_running() || weft_init(&cfg) != 0)
      return 10;
    weft_gthread g;
    void *r = NULL;
    if (weft_spawn(&g, NULL, add_one, (void *)(intptr_t)index) != 0 ||
        weft_join(g, &r) != 0 || (intptr_t)r != index + 1)
      return 11;
    weft_shutdown();
    atomic_store(&s->ok[index], 1);
    return 0;
  }
  case B_SHM: {
    if (index != 1)
      return 0;
    void *p = NULL;
    if (n == 1) {
      if (weft_shm_alloc(64, &p) != 0)
        return 12;
      memset(p, 0xab, 64);
      atomic_store(&s->shm_first_owner, weft_shm_owner(p) + 1);
      s->shm_ref = weft_shm_ref_of(p);
      CRASH();
    }
    atomic_store(&s->shm_check_after, weft_shm_ref_check(s->shm_ref));
    atomic_store(&s->shm_alloc_after, weft_shm_alloc(64, &p));
    return 0;
  }
  case B_TASK: {
    weft_task t;
    void *r = NULL;
    if (weft_task_start(&t, WEFT_MODE_PROCESS, task_in_worker, NULL) != 0 ||
        weft_task_wait(&t, &r) != 0)
      return 13;
    atomic_store(&s->ok[index], r != NULL && weft_procs_index() == index);
    return 0;
  }
  default:
    return 0;
  }
}

/* ------------------------------------------------------------------------ */
/* The supervisor, in a child                                               */
/* ------------------------------------------------------------------------ */

struct sup {
  pid_t pid;
  int errfd; /* the file its stderr goes to */
  char log[16384];
};

static void supervisor_child(weft_procs_config *cfg) {
  sigset_t before, after;
  struct sigaction chld;
  /* Start from something the supervisor must restore: SIGCHLD ignored
   * (it has to undo that while it runs, or the kernel reaps for it). */
  signal(SIGCHLD, SIG_IGN);
  sigemptyset(&before);
  sigaddset(&before, SIGUSR1);
  sigprocmask(SIG_SETMASK, &before, NULL);

  S->self_index = weft_procs_index();
  S->rc = weft_procs_run(cfg);
  S->ran = 1;

  errno = 0;
  S->echild_after = waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD;
  S->zombies_after = h_has_zombie_child(getpid());
  sigprocmask(SIG_SETMASK, NULL, &after);
  S->mask_restored =
      sigismember(&after, SIGUSR1) && !sigismember(&after, SIGTERM) &&
      !sigismember(&after, SIGINT) && !sigismember(&after, SIGCHLD);
  sigaction(SIGCHLD, NULL, &chld);
  S->chld_restored = chld.sa_handler == SIG_IGN;
}

static void sup_start(struct sup *sp, weft_procs_config *cfg) {
  char path[] = "/tmp/weft-proc-XXXXXX";
  sp->errfd = mkstemp(path);
  cr_assert(sp->errfd >= 0);
  unlink(path);
  fflush(NULL);
  sp->pid = fork();
  cr_assert(sp->pid >= 0);
  if (sp->pid == 0) {
    alarm(18); /* outlive a broken test only briefly (workers: 15 s) */
    dup2(sp->errfd, STDERR_FILENO);
    setvbuf(stderr, NULL, _IONBF, 0);
    supervisor_child(cfg);
    _exit(0);
  }
}

static void sup_finish(struct sup *sp) {
  int status;
  while (waitpid(sp->pid, &status, 0) < 0)
    cr_assert_eq(errno, EINTR);
  ssize_t n = pread(sp->errfd, sp->log, sizeof sp->log - 1, 0);
  sp->log[n > 0 ? n : 0] = '\0';
  close(sp->errfd);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the supervisor child ended with status %#x; log:\n%s", status,
            sp->log);
  cr_assert(S->ran, "weft_procs_run did not return; log:\n%s", sp->log);
  cr_expect_eq(S->self_index, -1, "the supervisor is no worker");
  cr_expect(S->echild_after, "children left after weft_procs_run");
  cr_expect(!S->zombies_after, "zombies left after weft_procs_run");
  cr_expect(S->mask_restored, "signal mask not restored");
  cr_expect(S->chld_restored, "SIGCHLD action not restored");
}

static void run_pool(struct sup *sp, int behaviour, int procs,
                     int max_restarts) {
  S->behaviour = behaviour;
  weft_procs_config cfg = {.procs = procs,
                           .worker = worker,
                           .arg = S,
                           .listen_fd = -1,
                           .max_restarts = max_restarts};
  sup_start(sp, &cfg);
  sup_finish(sp);
}

/* Waits until n workers are in their loop (the test's timeout bounds it). */
static void wait_running(int n) {
  while (atomic_load(&S->running) < n)
    usleep(1000);
}

/* ------------------------------------------------------------------------ */
/* Starting, indexes, normal exits                                          */
/* ------------------------------------------------------------------------ */

Test(proc, workers_run_once_and_return_0, .init = map_shared, TMO) {
  struct sup sp;
  run_pool(&sp, B_RETURN0, 4, 0);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
  for (int i = 0; i < 4; i++) {
    cr_expect_eq(atomic_load(&S->starts[i]), 1, "slot %d", i);
    cr_expect_eq(atomic_load(&S->index_seen[i]), i + 1,
                 "weft_procs_index() in slot %d", i);
  }
  cr_expect_eq(atomic_load(&S->starts[4]), 0);
  cr_expect_eq(sp.log[0], '\0', "nothing to log: %s", sp.log);
}

Test(proc, worker_runs_its_own_runtime, .init = map_shared, TMO) {
  struct sup sp;
  run_pool(&sp, B_GREEN, 2, 0);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
  cr_expect(atomic_load(&S->ok[0]) && atomic_load(&S->ok[1]));
}

Test(proc, process_task_of_a_worker_is_no_worker, .init = map_shared, TMO) {
  struct sup sp;
  run_pool(&sp, B_TASK, 2, 0);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
  cr_expect(atomic_load(&S->ok[0]) && atomic_load(&S->ok[1]));
}

Test(proc, outside_a_worker, TMO) {
  cr_expect_eq(weft_procs_index(), -1);
  cr_expect(!weft_procs_draining());
  cr_expect_eq(weft_procs_listen_fd(), -1);
}

/* ------------------------------------------------------------------------ */
/* Restarts                                                                 */
/* ------------------------------------------------------------------------ */

static void expect_restart(int behaviour, const char *what) {
  struct sup sp;
  run_pool(&sp, behaviour, 3, 0);
  cr_expect_eq(S->rc, 0, "a good restart ends well; log:\n%s", sp.log);
  cr_expect_eq(atomic_load(&S->starts[0]), 1);
  cr_expect_eq(atomic_load(&S->starts[1]), 2, "slot 1 restarted once");
  cr_expect_eq(atomic_load(&S->starts[2]), 1);
  cr_expect_eq(atomic_load(&S->index_seen[1]), 2, "the slot is kept");
  char line[128];
  snprintf(line, sizeof line, "weft: worker 1 (pid %d) %s; restarting\n",
           atomic_load(&S->pids[1][0]), what);
  cr_expect(strstr(sp.log, line), "expected \"%s\" in the log:\n%s", line,
            sp.log);
  cr_expect_neq(atomic_load(&S->pids[1][0]), atomic_load(&S->pids[1][1]));
}

Test(proc, restart_after_sigsegv, .init = map_shared, TMO) {
  expect_restart(B_SEGV, "killed by SIGSEGV");
}

Test(proc, restart_after_sigkill, .init = map_shared, TMO) {
  expect_restart(B_KILL, "killed by SIGKILL");
}

Test(proc, restart_after_abnormal_exit, .init = map_shared, TMO) {
  expect_restart(B_EXIT3, "exited with status 3");
}

Test(proc, max_restarts_gives_up, .init = map_shared, TMO) {
  struct sup sp;
  run_pool(&sp, B_ALWAYS5, 2, 2);
  cr_expect_eq(S->rc, -ECHILD, "a slot failed; log:\n%s", sp.log);
  cr_expect_eq(atomic_load(&S->starts[0]), 3, "the first start + 2 restarts");
  cr_expect_eq(atomic_load(&S->starts[1]), 1);
  char line[160];
  for (int k = 0; k < 2; k++) {
    snprintf(line, sizeof line,
             "weft: worker 0 (pid %d) exited with status 5; restarting\n",
             atomic_load(&S->pids[0][k]));
    cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
  }
  snprintf(line, sizeof line,
           "weft: worker 0 (pid %d) exited with status 5; restarted 2 "
           "times already, giving up\n",
           atomic_load(&S->pids[0][2]));
  cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
}

Test(proc, max_restarts_minus_one_never_restarts, .init = map_shared, TMO) {
  struct sup sp;
  run_pool(&sp, B_ALWAYS5, 2, -1);
  cr_expect_eq(S->rc, -ECHILD, "a slot failed; log:\n%s", sp.log);
  cr_expect_eq(atomic_load(&S->starts[0]), 1, "started once, never again");
  cr_expect_eq(atomic_load(&S->starts[1]), 1);
  char line[160];
  snprintf(line, sizeof line,
           "weft: worker 0 (pid %d) exited with status 5; not restarting "
           "(max_restarts -1)\n",
           atomic_load(&S->pids[0][0]));
  cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
}

/* ------------------------------------------------------------------------ */
/* Draining                                                                 */
/* ------------------------------------------------------------------------ */

static void expect_drain(int sig) {
  struct sup sp;
  S->behaviour = B_DRAIN;
  weft_procs_config cfg = {
      .procs = 3, .worker = worker, .arg = S, .listen_fd = -1};
  sup_start(&sp, &cfg);
  wait_running(3);
  cr_assert_eq(kill(sp.pid, sig), 0);
  sup_finish(&sp);
  cr_expect_eq(S->rc, 0, "every worker drained; log:\n%s", sp.log);
  for (int i = 0; i < 3; i++) {
    cr_expect(atomic_load(&S->saw_drain[i]), "slot %d saw the drain", i);
    cr_expect_eq(atomic_load(&S->starts[i]), 1, "slot %d not restarted", i);
  }
  cr_expect_eq(sp.log[0], '\0', "nothing to log: %s", sp.log);
}

Test(proc, sigterm_drains_workers, .init = map_shared, TMO) {
  expect_drain(SIGTERM);
}

Test(proc, sigint_drains_workers, .init = map_shared, TMO) {
  expect_drain(SIGINT);
}

/* A drain deadline the well-behaved worker meets even under
 * ThreadSanitizer, which slows its exit down several-fold. */
#define STUBBORN_DRAIN_MS (WEFT_TSAN ? 2000 : 200)

Test(proc, worker_ignoring_drain_is_killed, .init = map_shared, TMO) {
  struct sup sp;
  S->behaviour = B_STUBBORN;
  weft_procs_config cfg = {.procs = 2,
                           .worker = worker,
                           .arg = S,
                           .listen_fd = -1,
                           .drain_ms = STUBBORN_DRAIN_MS};
  sup_start(&sp, &cfg);
  wait_running(2);
  cr_assert_eq(kill(sp.pid, SIGTERM), 0);
  sup_finish(&sp);
  cr_expect_eq(S->rc, -ECHILD, "a worker had to be killed; log:\n%s", sp.log);
  cr_expect(atomic_load(&S->saw_drain[0]) && atomic_load(&S->saw_drain[1]));
  char line[160];
  snprintf(line, sizeof line,
           "weft: worker 0 (pid %d) still running %d ms after SIGTERM; "
           "killing it\n",
           atomic_load(&S->pids[0][0]), STUBBORN_DRAIN_MS);
  cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
  cr_expect(!strstr(sp.log, "worker 1"), "worker 1 drained: %s", sp.log);
}

/* A crash during the drain is logged, not restarted, and fails the pool. */
Test(proc, no_restart_while_draining, .init = map_shared, TMO) {
  struct sup sp;
  S->behaviour = B_DRAIN_SEGV;
  weft_procs_config cfg = {
      .procs = 2, .worker = worker, .arg = S, .listen_fd = -1};
  sup_start(&sp, &cfg);
  wait_running(2);
  cr_assert_eq(kill(sp.pid, SIGTERM), 0);
  sup_finish(&sp);
  cr_expect_eq(S->rc, -ECHILD, "log:\n%s", sp.log);
  cr_expect_eq(atomic_load(&S->starts[0]), 1);
  cr_expect_eq(atomic_load(&S->starts[1]), 1, "not restarted");
  char line[160];
  snprintf(line, sizeof line,
           "weft: worker 1 (pid %d) killed by SIGSEGV; draining, not "
           "restarting\n",
           atomic_load(&S->pids[1][0]));
  cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
}

/* SIGTERM sent to one worker, not by the supervisor (an operator, a
 * script): the worker drains and exits 0, and the supervisor starts
 * another in its slot, with a line saying so, instead of silently running
 * a smaller pool; a SIGTERM to the supervisor then drains them all. */
Test(proc, sigterm_to_one_worker_restarts_it, .init = map_shared, TMO) {
  struct sup sp;
  S->behaviour = B_DRAIN;
  weft_procs_config cfg = {
      .procs = 2, .worker = worker, .arg = S, .listen_fd = -1};
  sup_start(&sp, &cfg);
  wait_running(2);
  int victim = atomic_load(&S->pids[0][0]);
  cr_assert_eq(kill(victim, SIGTERM), 0);
  /* Its replacement starts (the test's timeout bounds the wait). */
  while (atomic_load(&S->starts[0]) < 2)
    usleep(1000);
  wait_running(3); /* the replacement is in its loop */
  cr_assert_eq(kill(sp.pid, SIGTERM), 0);
  sup_finish(&sp);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
  cr_expect_eq(atomic_load(&S->starts[1]), 1, "slot 1 untouched");
  char line[200];
  snprintf(line, sizeof line,
           "weft: worker 0 (pid %d) drained on a signal the supervisor did "
           "not send; restarting\n",
           victim);
  cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
}

/* The same to every worker: the pool does not end, it is started again. */
Test(proc, sigterm_to_every_worker_restarts_them, .init = map_shared, TMO) {
  struct sup sp;
  S->behaviour = B_DRAIN;
  weft_procs_config cfg = {
      .procs = 2, .worker = worker, .arg = S, .listen_fd = -1};
  sup_start(&sp, &cfg);
  wait_running(2);
  cr_assert_eq(kill(atomic_load(&S->pids[0][0]), SIGTERM), 0);
  cr_assert_eq(kill(atomic_load(&S->pids[1][0]), SIGTERM), 0);
  while (atomic_load(&S->starts[0]) < 2 || atomic_load(&S->starts[1]) < 2)
    usleep(1000);
  wait_running(4);
  cr_assert_eq(kill(sp.pid, SIGTERM), 0);
  sup_finish(&sp);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
}

/* A supervisor killed outright: its workers are asked to drain. */
Test(proc, supervisor_death_drains_workers, .init = map_shared, TMO) {
  struct sup sp;
  S->behaviour = B_DRAIN;
  weft_procs_config cfg = {
      .procs = 2, .worker = worker, .arg = S, .listen_fd = -1};
  sup_start(&sp, &cfg);
  wait_running(2);
  cr_assert_eq(kill(sp.pid, SIGKILL), 0);
  int status;
  while (waitpid(sp.pid, &status, 0) < 0)
    cr_assert_eq(errno, EINTR);
  close(sp.errfd);
  /* The orphans see weft_procs_draining() (the test's timeout bounds the
   * wait; without the drain they would run 15 s). */
  while (!atomic_load(&S->saw_drain[0]) || !atomic_load(&S->saw_drain[1]))
    usleep(1000);
}

/* With a shared heap: the dead worker's partition is reclaimed before its
 * replacement starts, so references into it are detected as stale. */
Test(proc, crashed_workers_partition_is_reclaimed, .init = map_shared, TMO) {
  struct sup sp;
  S->behaviour = B_SHM;
  weft_procs_config cfg = {.procs = 2,
                           .worker = worker,
                           .arg = S,
                           .listen_fd = -1,
                           .shm_size = (size_t)64 << 20};
  sup_start(&sp, &cfg);
  sup_finish(&sp);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
  cr_expect_eq(atomic_load(&S->starts[1]), 2);
  cr_expect_eq(atomic_load(&S->shm_first_owner), 2, "owned by slot 1");
  cr_expect_eq(atomic_load(&S->shm_check_after), -ESTALE);
  cr_expect_eq(atomic_load(&S->shm_alloc_after), 0,
               "the replacement allocates from the reclaimed partition");
  char line[128];
  snprintf(line, sizeof line,
           "weft: worker 1 (pid %d) killed by SIGSEGV; restarting\n",
           atomic_load(&S->pids[1][0]));
  cr_expect(strstr(sp.log, line), "expected \"%s\" in:\n%s", line, sp.log);
}

/* ------------------------------------------------------------------------ */
/* The listening socket                                                     */
/* ------------------------------------------------------------------------ */

Test(proc, listen_fd_is_inherited, .init = map_shared, TMO) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 16), 0);
  struct stat st;
  cr_assert_eq(fstat(fd, &st), 0);
  S->listen_fd = fd;
  S->listen_ino = st.st_ino;
  S->behaviour = B_LISTEN;

  struct sup sp;
  weft_procs_config cfg = {
      .procs = 3, .worker = worker, .arg = S, .listen_fd = fd};
  sup_start(&sp, &cfg);
  sup_finish(&sp);
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
  for (int i = 0; i < 3; i++)
    cr_expect(atomic_load(&S->ok[i]), "slot %d has the socket", i);
  int fl = fcntl(fd, F_GETFD);
  cr_expect(fl >= 0 && (fl & FD_CLOEXEC), "the caller's flags are its own");
  close(fd);
}

/* While the workers drain (finishing what they have, accepting no more),
 * a new client is refused at once: the listening socket stops listening,
 * instead of queueing connections no one will accept (they would hang
 * until the drain ends, then be reset). */
Test(proc, new_clients_are_refused_during_a_drain, .init = map_shared, TMO) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 16), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  S->behaviour = B_SLOW_DRAIN;

  struct sup sp;
  weft_procs_config cfg = {
      .procs = 2, .worker = worker, .arg = S, .listen_fd = fd};
  sup_start(&sp, &cfg);
  wait_running(2);
  close(fd); /* the supervisor and its workers have their own copies */
  cr_assert_eq(kill(sp.pid, SIGTERM), 0);
  while (!atomic_load(&S->saw_drain[0]) || !atomic_load(&S->saw_drain[1]))
    usleep(1000);
  int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(c >= 0);
  int rc = connect(c, (struct sockaddr *)&a, sizeof a);
  int err = errno;
  close(c);
  sup_finish(&sp);
  cr_expect(rc < 0 && err == ECONNREFUSED,
            "a client connecting during the drain got %s",
            rc == 0 ? "a connection no one accepts" : strerror(err));
  cr_expect_eq(S->rc, 0, "log:\n%s", sp.log);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

static int noop_worker(int index, void *arg) {
  (void)index;
  (void)arg;
  return 0;
}

Test(proc, bad_configs, TMO) {
  weft_procs_config ok = {.procs = 1, .worker = noop_worker, .listen_fd = -1};
  weft_procs_config c;
  cr_expect_eq(weft_procs_run(NULL), -EINVAL);
  c = ok, c.procs = 0;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  c = ok, c.procs = -1;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  c = ok, c.procs = 65;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  c = ok, c.worker = NULL;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  c = ok, c.drain_ms = -1;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  c = ok, c.max_restarts = -2;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  c = ok, c.listen_fd = -2;
  cr_expect_eq(weft_procs_run(&c), -EINVAL);
  int fd = dup(0);
  close(fd);
  c = ok, c.listen_fd = fd; /* not an open descriptor */
  cr_expect_eq(weft_procs_run(&c), -EBADF);
  errno = 0;
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "nothing was forked");
}

Test(proc, busy_while_weft_runs, .init = h_start1, .fini = h_stop, TMO) {
  weft_procs_config c = {.procs = 1, .worker = noop_worker, .listen_fd = -1};
  cr_expect_eq(weft_procs_run(&c), -EBUSY);
  errno = 0;
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "nothing was forked");
}
