/*
 * test_task.c - weft_task_start / weft_task_wait in the three modes:
 * results come back, the same function runs in every mode, kernel-thread
 * tasks share weft primitives with green threads, a process task works on
 * a copy of memory and may crash without harming its parent, and waiting
 * from a green thread parks it instead of blocking its worker.
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

#define TMO .timeout = 20
/* Process tasks started from several green threads at once fork while
 * other threads run, and the child starts threads of its own: a child of
 * a ThreadSanitizer build can hang inside TSan there (it does not support
 * threads after such a fork), so those tests do not run under TSan. */
#define NOT_UNDER_TSAN .disabled = WEFT_TSAN

static const weft_mode modes[] = {WEFT_MODE_GREEN, WEFT_MODE_KTHREAD,
                                  WEFT_MODE_PROCESS};
static const char *const mode_names[] = {"", "green", "kthread", "process"};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void *square(void *arg) {
  intptr_t x = (intptr_t)arg;
  return (void *)(x * x);
}

/* What the test process wrote to stderr between the two calls. */
struct capture {
  FILE *f;
  int saved;
};

static void capture_begin(struct capture *c) {
  fflush(stderr);
  c->f = tmpfile();
  cr_assert(c->f, "tmpfile: %s", strerror(errno));
  c->saved = dup(STDERR_FILENO);
  cr_assert(c->saved >= 0);
  cr_assert(dup2(fileno(c->f), STDERR_FILENO) >= 0);
}

static void capture_end(struct capture *c, char *buf, size_t n) {
  fflush(stderr);
  dup2(c->saved, STDERR_FILENO);
  close(c->saved);
  rewind(c->f);
  size_t k = fread(buf, 1, n - 1, c->f);
  buf[k] = '\0';
  fclose(c->f);
}


/* ------------------------------------------------------------------------ */
/* Results come back                                                        */
/* ------------------------------------------------------------------------ */

Test(task, green_result, .init = h_start2, .fini = h_stop, TMO) {
  weft_task t;
  void *res = NULL;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_GREEN, square, (void *)7), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 49);
}

Test(task, kthread_result, TMO) {
  /* No runtime needed: a kernel thread of its own. */
  weft_task t;
  void *res = NULL;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_KTHREAD, square, (void *)9), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 81);
}

Test(task, process_result, TMO) {
  weft_task t;
  void *res = NULL;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, square, (void *)11), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 121);
}

Test(task, result_may_be_null, .init = h_start2, .fini = h_stop, TMO) {
  for (int m = 0; m < 3; m++) {
    weft_task t;
    cr_assert_eq(weft_task_start(&t, modes[m], square, NULL), 0);
    cr_expect_eq(weft_task_wait(&t, NULL), 0, "%s", mode_names[modes[m]]);
  }
}

/* ------------------------------------------------------------------------ */
/* The same function in every mode                                         */
/* ------------------------------------------------------------------------ */

#define NWORDS 4096
static uint32_t words[NWORDS];

struct piece {
  const uint32_t *p;
  size_t n;
};

/* FNV-1a over a piece of the array: reads memory the caller prepared. */
static void *hash_piece(void *arg) {
  const struct piece *pc = arg;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < pc->n; i++) {
    h ^= pc->p[i];
    h *= 1099511628211ull;
  }
  return (void *)(uintptr_t)h;
}

static void fill_words(void) {
  uint64_t s = 42;
  for (int i = 0; i < NWORDS; i++)
    words[i] = (uint32_t)h_rand(&s);
}

Test(task, same_function_in_all_modes, .init = h_start2, .fini = h_stop, TMO) {
  fill_words();
  struct piece whole = {words, NWORDS};
  void *want = hash_piece(&whole);
  for (int m = 0; m < 3; m++) {
    weft_task t;
    void *got = NULL;
    cr_assert_eq(weft_task_start(&t, modes[m], hash_piece, &whole), 0);
    cr_assert_eq(weft_task_wait(&t, &got), 0);
    cr_expect_eq(got, want, "mode %s", mode_names[modes[m]]);
  }
}

/* The same, started and waited for from a green thread. */
static void *all_modes_from_green(void *arg) {
  struct piece *whole = arg;
  void *want = hash_piece(whole);
  for (int m = 0; m < 3; m++) {
    weft_task t;
    void *got = NULL;
    TCHECK_EQ(weft_task_start(&t, modes[m], hash_piece, whole), 0);
    TCHECK_EQ(weft_task_wait(&t, &got), 0);
    TCHECK(got == want);
  }
  return NULL;
}

Test(task, all_modes_from_green_threads, .init = h_start2, .fini = h_stop,
     TMO, NOT_UNDER_TSAN) {
  fill_words();
  struct piece whole = {words, NWORDS};
  weft_gthread g[4];
  for (int i = 0; i < 4; i++)
    g[i] = h_spawn(all_modes_from_green, &whole);
  for (int i = 0; i < 4; i++)
    h_join(g[i]);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Arguments and states                                                     */
/* ------------------------------------------------------------------------ */

Test(task, bad_arguments, TMO) {
  weft_task t;
  cr_expect_eq(weft_task_start(NULL, WEFT_MODE_KTHREAD, square, NULL), -EINVAL);
  cr_expect_eq(weft_task_start(&t, WEFT_MODE_KTHREAD, NULL, NULL), -EINVAL);
  cr_expect_eq(weft_task_start(&t, (weft_mode)0, square, NULL), -EINVAL);
  cr_expect_eq(weft_task_start(&t, (weft_mode)99, square, NULL), -EINVAL);
  /* A task whose start failed cannot be waited for. */
  cr_expect_eq(weft_task_wait(&t, NULL), -EINVAL);
  weft_task zero;
  memset(&zero, 0, sizeof zero);
  cr_expect_eq(weft_task_wait(&zero, NULL), -EINVAL);
  cr_expect_eq(weft_task_wait(NULL, NULL), -EINVAL);
}

Test(task, green_needs_the_runtime, TMO) {
  weft_task t;
  cr_expect_eq(weft_task_start(&t, WEFT_MODE_GREEN, square, NULL), -EPERM);
  cr_expect_eq(weft_task_wait(&t, NULL), -EINVAL);
}

Test(task, waiting_twice, .init = h_start2, .fini = h_stop, TMO) {
  for (int m = 0; m < 3; m++) {
    weft_task t;
    void *res = NULL;
    cr_assert_eq(weft_task_start(&t, modes[m], square, (void *)3), 0);
    cr_expect_eq(weft_task_wait(&t, &res), 0);
    cr_expect_eq((intptr_t)res, 9);
    res = (void *)1;
    cr_expect_eq(weft_task_wait(&t, &res), -EINVAL, "mode %s",
                 mode_names[modes[m]]);
    cr_expect_eq((intptr_t)res, 1, "a failed wait leaves *result alone");
  }
}

/* ------------------------------------------------------------------------ */
/* Kernel-thread tasks and green threads share primitives                   */
/* ------------------------------------------------------------------------ */

#define SHARE_N 2000
#define SHARE_GREEN 4

struct share {
  weft_mutex m;
  weft_chan *ch;
  long counter; /* under m */
  long received;
};

/* As a kernel-thread task: sends 1..SHARE_N, bumping the counter. */
static void *share_producer(void *arg) {
  struct share *s = arg;
  TCHECK(!weft_in_gthread());
  for (long i = 1; i <= SHARE_N; i++) {
    weft_mutex_lock(&s->m);
    s->counter++;
    weft_mutex_unlock(&s->m);
    TCHECK_EQ(weft_chan_send(s->ch, &i), 0);
  }
  weft_chan_close(s->ch);
  return (void *)SHARE_N;
}

/* As green threads: receive until closed, bumping the same counter. */
static void *share_consumer(void *arg) {
  struct share *s = arg;
  long v, sum = 0;
  TCHECK(weft_in_gthread());
  while (weft_chan_recv(s->ch, &v) == 0) {
    weft_mutex_lock(&s->m);
    s->counter++;
    s->received++;
    weft_mutex_unlock(&s->m);
    sum += v;
  }
  return (void *)sum;
}

Test(task, kthread_and_green_share_mutex_and_channel, .init = h_start2,
     .fini = h_stop, TMO) {
  struct share s = {.m = WEFT_MUTEX_INIT};
  cr_assert_eq(weft_chan_open(&s.ch, sizeof(long), 0), 0);
  weft_task green[SHARE_GREEN], kt;
  for (int i = 0; i < SHARE_GREEN; i++)
    cr_assert_eq(
        weft_task_start(&green[i], WEFT_MODE_GREEN, share_consumer, &s), 0);
  cr_assert_eq(weft_task_start(&kt, WEFT_MODE_KTHREAD, share_producer, &s), 0);
  void *res;
  long sum = 0;
  cr_assert_eq(weft_task_wait(&kt, &res), 0);
  cr_expect_eq((intptr_t)res, SHARE_N);
  for (int i = 0; i < SHARE_GREEN; i++) {
    cr_assert_eq(weft_task_wait(&green[i], &res), 0);
    sum += (long)(intptr_t)res;
  }
  cr_expect_eq(sum, (long)SHARE_N * (SHARE_N + 1) / 2);
  cr_expect_eq(s.received, SHARE_N);
  cr_expect_eq(s.counter, 2 * SHARE_N);
  cr_expect_eq(weft_chan_free(s.ch), 0);
  EXPECT_NO_THREAD_FAILURES();
}

/* ------------------------------------------------------------------------ */
/* Process tasks: a copy of memory, crashes stay in the child               */
/* ------------------------------------------------------------------------ */

static int value = 1;

static void *overwrite_value(void *arg) {
  int seen = value;
  value = (int)(intptr_t)arg;
  return (void *)(intptr_t)(seen * 1000 + value);
}

Test(task, process_works_on_a_copy, .init = h_start2, .fini = h_stop, TMO) {
  value = 7; /* the child sees memory as it is at the fork */
  weft_task t;
  void *res;
  cr_assert_eq(
      weft_task_start(&t, WEFT_MODE_PROCESS, overwrite_value, (void *)99), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 7099, "the child saw 7 and wrote 99");
  cr_expect_eq(value, 7, "the child's write stayed in the child");

  /* A kernel-thread task writes the same variable as the caller. */
  cr_assert_eq(
      weft_task_start(&t, WEFT_MODE_KTHREAD, overwrite_value, (void *)5), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq(value, 5, "a thread shares the caller's memory");
}

/* The address is computed as an integer so that UBSan's null-pointer
 * check (which would exit first) leaves it to the hardware fault. */
static volatile uintptr_t null_base = 0;
#define CRASH() (*(volatile int *)(null_base + 16) = 1)

static void *crash(void *arg) {
  (void)arg;
  CRASH();
  return (void *)1;
}

static void *exit_inside(void *arg) { exit((int)(intptr_t)arg); }

Test(task, crashing_process_gives_echild, .init = h_start2, .fini = h_stop,
     TMO) {
  h_no_core();
  struct capture c;
  char err[4096];
  weft_task t;
  void *res = (void *)5;

  capture_begin(&c);
  int rs = weft_task_start(&t, WEFT_MODE_PROCESS, crash, NULL);
  int rw = rs == 0 ? weft_task_wait(&t, &res) : rs;
  capture_end(&c, err, sizeof err);
  cr_assert_eq(rs, 0);
  cr_expect_eq(rw, -ECHILD);
  cr_expect_eq((intptr_t)res, 5, "no result from a crashed child");
  cr_expect(strstr(err, "weft: process task (pid ") &&
                strstr(err, ") killed by SIGSEGV\n"),
            "stderr was: %s", err);

  /* The parent is fine: its runtime and more tasks work. */
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, square, (void *)4), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 16);
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_GREEN, square, (void *)5), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 25);
}

Test(task, exit_inside_process_task_gives_echild, TMO) {
  struct capture c;
  char err[4096];
  weft_task t;
  int rw3, rw0;

  capture_begin(&c);
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, exit_inside, (void *)3),
               0);
  rw3 = weft_task_wait(&t, NULL);
  /* exit(0) is no return either: fn's result never came back. */
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, exit_inside, (void *)0),
               0);
  rw0 = weft_task_wait(&t, NULL);
  capture_end(&c, err, sizeof err);
  cr_expect_eq(rw3, -ECHILD);
  cr_expect_eq(rw0, -ECHILD);
  cr_expect(strstr(err, ") exited with status 3\n"), "stderr was: %s", err);
  cr_expect(strstr(err, ") exited with status 0\n"), "stderr was: %s", err);
}

/* ------------------------------------------------------------------------ */
/* Waiting from a green thread parks it                                     */
/* ------------------------------------------------------------------------ */

/*
 * With one worker, green thread A waits for a task that cannot finish
 * until green thread B, on the same worker, does something.  If A's wait
 * blocked the worker, B would never run and the test would hang (and fail
 * by its timeout).  B also counts how often it ran meanwhile.
 */
struct handshake {
  weft_mode mode;
  int pipe[2];  /* PROCESS: the child waits for a byte from B */
  weft_sem sem; /* KTHREAD: the thread waits for B's post */
  atomic_int a_waiting;
  atomic_int a_done;
  long b_rounds_while_waiting;
};

static void *wait_for_b(void *arg) {
  struct handshake *h = arg;
  if (h->mode == WEFT_MODE_PROCESS) {
    char byte;
    alarm(15); /* a broken parent must not leave us behind for long */
    while (read(h->pipe[0], &byte, 1) < 0 && errno == EINTR)
      ;
    usleep(50 * 1000); /* and takes a while longer */
    return (void *)42;
  }
  weft_sem_wait(&h->sem); /* a kernel thread: sleeps on the futex */
  return (void *)42;
}

static void *thread_b(void *arg) {
  struct handshake *h = arg;
  while (!atomic_load(&h->a_waiting))
    weft_yield();
  /* Only reached while A is parked in weft_task_wait (one worker). */
  if (h->mode == WEFT_MODE_PROCESS)
    TCHECK_EQ(write(h->pipe[1], "x", 1), 1);
  else
    TCHECK_EQ(weft_sem_post(&h->sem), 0);
  while (!atomic_load(&h->a_done)) {
    h->b_rounds_while_waiting++;
    weft_sleep(MS(1));
  }
  return NULL;
}

static void *thread_a(void *arg) {
  struct handshake *h = arg;
  weft_task t;
  void *res = NULL;
  TCHECK_EQ(weft_task_start(&t, h->mode, wait_for_b, h), 0);
  weft_gthread b = h_tspawn(thread_b, h); /* B runs first, then yields */
  atomic_store(&h->a_waiting, 1);
  TCHECK_EQ(weft_task_wait(&t, &res), 0);
  TCHECK_EQ((intptr_t)res, 42);
  atomic_store(&h->a_done, 1);
  h_tjoin(b);
  return NULL;
}

static void run_handshake(weft_mode mode) {
  struct handshake h = {.mode = mode};
  cr_assert_eq(pipe(h.pipe), 0);
  cr_assert_eq(weft_sem_init(&h.sem, 0), 0);
  h_join(h_spawn(thread_a, &h));
  EXPECT_NO_THREAD_FAILURES();
  cr_expect_gt(h.b_rounds_while_waiting, 0, "B kept running while A waited");
  close(h.pipe[0]);
  close(h.pipe[1]);
}

Test(task, waiting_for_process_does_not_block_worker, .init = h_start1,
     .fini = h_stop, TMO) {
  run_handshake(WEFT_MODE_PROCESS);
}

Test(task, waiting_for_kthread_does_not_block_worker, .init = h_start1,
     .fini = h_stop, TMO) {
  run_handshake(WEFT_MODE_KTHREAD);
}

/* ------------------------------------------------------------------------ */
/* Many process tasks; no zombies                                           */
/* ------------------------------------------------------------------------ */

#define PROC_STARTERS 4
#define PROC_EACH 6

static void *start_several(void *arg) {
  intptr_t base = (intptr_t)arg;
  weft_task t[PROC_EACH];
  for (intptr_t i = 0; i < PROC_EACH; i++)
    TCHECK_EQ(
        weft_task_start(&t[i], WEFT_MODE_PROCESS, square, (void *)(base + i)),
        0);
  for (intptr_t i = PROC_EACH - 1; i >= 0; i--) {
    void *res = NULL;
    TCHECK_EQ(weft_task_wait(&t[i], &res), 0);
    TCHECK_EQ((intptr_t)res, (base + i) * (base + i));
  }
  return NULL;
}

Test(task, many_process_tasks_leave_no_zombies, .init = h_start2,
     .fini = h_stop, TMO, NOT_UNDER_TSAN) {
  weft_gthread g[PROC_STARTERS];
  for (int i = 0; i < PROC_STARTERS; i++)
    g[i] = h_spawn(start_several, (void *)(intptr_t)(100 * (i + 1)));
  for (int i = 0; i < PROC_STARTERS; i++)
    h_join(g[i]);
  EXPECT_NO_THREAD_FAILURES();
  errno = 0;
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1);
  cr_expect_eq(errno, ECHILD, "every child was reaped");
  cr_expect(!h_has_zombie_child(getpid()));
}

static void *sleep_then_return(void *arg) {
  usleep(20 * 1000);
  return arg;
}

Test(task, unwaited_process_task_is_still_reaped, TMO) {
  weft_task t;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, sleep_then_return, NULL),
               0);
  /* Never waited for: the reaper collects the child anyway.  Poll until
   * it has (the test's timeout bounds the loop). */
  for (;;) {
    errno = 0;
    if (waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD &&
        !h_has_zombie_child(getpid()))
      break;
    usleep(1000);
  }
}

/* ------------------------------------------------------------------------ */
/* A process task may start a runtime of its own                            */
/* ------------------------------------------------------------------------ */

static void *add_one(void *arg) { return (void *)((intptr_t)arg + 1); }

/* Runs in the child: weft is not running there (even though the parent's
 * is); it starts its own and runs green threads. */
static void *child_runtime(void *arg) {
  (void)arg;
  alarm(15); /* a hang must not outlive the test for long */
  if (weft_running() || weft_in_gthread() || weft_worker_index() != -1)
    return (void *)-1;
  weft_config cfg = {.workers = 2};
  if (weft_init(&cfg) != 0)
    return (void *)-2;
  intptr_t sum = 0;
  weft_gthread g[16];
  for (intptr_t i = 0; i < 16; i++)
    if (weft_spawn(&g[i], NULL, add_one, (void *)i) != 0)
      return (void *)-3;
  for (int i = 0; i < 16; i++) {
    void *r;
    if (weft_join(g[i], &r) != 0)
      return (void *)-4;
    sum += (intptr_t)r;
  }
  if (weft_shutdown() != 0)
    return (void *)-5;
  return (void *)sum;
}

static void *start_child_runtime(void *arg) {
  (void)arg;
  weft_task t;
  void *res = NULL;
  TCHECK_EQ(weft_task_start(&t, WEFT_MODE_PROCESS, child_runtime, NULL), 0);
  TCHECK_EQ(weft_task_wait(&t, &res), 0);
  TCHECK_EQ((intptr_t)res, 136); /* 1 + 2 + ... + 16 */
  return NULL;
}

/*
 * Returns once every worker is past its startup (it has gone to sleep for
 * want of work at least once).  The child below allocates a lot, and GCC's
 * AddressSanitizer does not take its allocator's locks around fork: a
 * worker still in its startup, inside the allocator, at the fork would
 * leave the child a lock that nobody releases.  (glibc and jemalloc handle
 * fork themselves.)
 */
static void settle_workers(void) {
  weft_worker_stats st[4];
  for (;;) {
    int n = weft_stats(st, 4), idle = 0;
    cr_assert_gt(n, 0);
    for (int i = 0; i < n && i < 4; i++)
      idle += st[i].parks > 0;
    if (idle == n)
      return;
    usleep(1000);
  }
}

Test(task, process_task_runs_its_own_runtime, .init = h_start2, .fini = h_stop,
     TMO) {
  settle_workers();
  /* Forked from a green thread while the parent's workers run. */
  h_join(h_spawn(start_child_runtime, NULL));
  EXPECT_NO_THREAD_FAILURES();
  /* And from the test's own thread. */
  weft_task t;
  void *res = NULL;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, child_runtime, NULL), 0);
  cr_assert_eq(weft_task_wait(&t, &res), 0);
  cr_expect_eq((intptr_t)res, 136);
}

/* The application's own fork(), not a process task, from a running
 * runtime: the child starts clean as well (one fork handler resets every
 * part of weft, rt.h), so it can run a runtime of its own. */
Test(task, plain_fork_child_runs_its_own_runtime, .init = h_start2,
     .fini = h_stop, TMO) {
  settle_workers();
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0)
    _exit((int)(intptr_t)child_runtime(NULL) == 136 ? 0 : 1);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "the child of a plain fork could not start its own runtime "
            "(status 0x%x)", st);
}

/* ------------------------------------------------------------------------ */
/* Output written by a process task is flushed, and not written twice       */
/* ------------------------------------------------------------------------ */

static FILE *out_file;

static void *print_line(void *arg) {
  fprintf(out_file, "child line %d\n", (int)(intptr_t)arg);
  return NULL;
}

Test(task, process_task_output_is_flushed_once, TMO) {
  char path[] = "/tmp/weft-task-XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  unlink(path);
  out_file = fdopen(dup(fd), "w"); /* a file: fully buffered */
  cr_assert(out_file);
  fprintf(out_file, "parent line\n"); /* still buffered at the fork */
  weft_task t;
  int rs = weft_task_start(&t, WEFT_MODE_PROCESS, print_line, (void *)1);
  int rw = rs == 0 ? weft_task_wait(&t, NULL) : rs;
  fclose(out_file);
  char buf[256] = {0};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  close(fd);
  cr_assert_eq(rs, 0);
  cr_assert_eq(rw, 0);
  cr_assert(n > 0);
  cr_expect_str_eq(buf, "parent line\nchild line 1\n");
}
