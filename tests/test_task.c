/*
 * test_task.c - weft_task_start / weft_task_wait in the three modes:
 * results come back, the same function runs in every mode, kernel-thread
 * tasks share weft primitives with green threads, a process task works on
 * a copy of memory and may crash without harming its parent, waiting
 * from a green thread parks it instead of blocking its worker, and
 * detached tasks release what they hold (a process child is reaped, and
 * other children are left alone), with weft_task_pid and weft_task_pidfd.
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
#include <poll.h>
#include <sys/syscall.h>

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

/* ------------------------------------------------------------------------ */
/* Detached tasks                                                           */
/* ------------------------------------------------------------------------ */

/* A number from /proc/self/status ("Threads", "VmSize"), or -1. */
static long status_field(const char *name) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  char line[256];
  size_t n = strlen(name);
  long v = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, name, n) && line[n] == ':') {
      v = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(f);
  return v;
}

/* Open descriptors of this process. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    n += e->d_name[0] != '.';
  closedir(d);
  return n - 1; /* the directory's own */
}

/* Polls cond every millisecond for up to 10 s; true once it holds. */
#define EVENTUALLY(cond)                                                       \
  ({                                                                           \
    bool ok_ = false;                                                          \
    for (int i_ = 0; i_ < 10000 && !(ok_ = (cond)); i_++)                      \
      usleep(1000);                                                            \
    ok_;                                                                       \
  })

/* True once the child behind pidfd has been reaped: it is no longer a
 * child of ours, not even a zombie (waitid without reaping says so). */
static bool reaped(int pidfd) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  return waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
         errno == ECHILD;
}

static bool has_exited(int pidfd) {
  struct pollfd p = {.fd = pidfd, .events = POLLIN};
  return poll(&p, 1, 0) == 1;
}

/* Green: a detached task's stack goes back to its worker's cache, so a
 * loop of detached tasks maps (almost) no new stacks; leaked, each would
 * map one. */
#define DETACH_N 200

static atomic_int detached_ran;

static void *count_and_yield(void *arg) {
  for (intptr_t i = 0; i < (intptr_t)arg; i++)
    weft_yield();
  atomic_fetch_add(&detached_ran, 1);
  return (void *)1;
}

static void *detach_green_loop(void *arg) {
  (void)arg;
  for (int i = 0; i < DETACH_N; i++) {
    weft_task t;
    /* Odd: detached while it runs; even: it has ended (it runs first, at
     * once, on this worker) before the detach. */
    TCHECK_EQ(weft_task_start(&t, WEFT_MODE_GREEN, count_and_yield,
                              (void *)(intptr_t)(i & 1 ? 3 : 0)),
              0);
    TCHECK_EQ(weft_task_detach(&t), 0);
    TCHECK_EQ(weft_task_wait(&t, NULL), -EINVAL);
    while (atomic_load(&detached_ran) < i + 1)
      weft_yield();
  }
  return NULL;
}

static uint64_t stack_maps(void) {
  weft_worker_stats st[1];
  cr_assert_eq(weft_stats(st, 1), 1);
  return st[0].stack_maps;
}

Test(task_detach, green_runs_and_frees_its_stack, .init = h_start1,
     .fini = h_stop, TMO) {
  atomic_store(&detached_ran, 0);
  uint64_t maps0 = stack_maps();
  h_join(h_spawn(detach_green_loop, NULL));
  EXPECT_NO_THREAD_FAILURES();
  cr_expect_eq(atomic_load(&detached_ran), DETACH_N);
  uint64_t maps = stack_maps() - maps0;
  cr_expect_lt(maps, 10,
               "%llu stacks mapped for %d detached green tasks: theirs were "
               "not released",
               (unsigned long long)maps, DETACH_N);
}

/* Kernel threads: each detached thread ends and releases its stack, which
 * the next reuses, so the address space does not grow by a stack per
 * task; leaked (ended but never joined), each would keep its stack.  The
 * bound is half of what leaked stacks would take: the C library may map
 * an arena of its own (64 MiB) for a new thread meanwhile. */
#define DETACH_KT_N 64

static weft_sem kt_sem;

static void *post_and_return(void *arg) {
  TCHECK_EQ(weft_sem_post(&kt_sem), 0);
  return arg;
}

Test(task_detach, kthread_runs_and_ends, TMO) {
  size_t stack = 0;
  pthread_attr_t a;
  cr_assert_eq(pthread_getattr_default_np(&a), 0);
  pthread_attr_getstacksize(&a, &stack);
  pthread_attr_destroy(&a);
  if (stack < ((size_t)1 << 20))
    stack = (size_t)1 << 20; /* glibc's floor for the default, roughly */
  cr_assert_eq(weft_sem_init(&kt_sem, 0), 0);
  long threads0 = status_field("Threads");

  /* One to warm up whatever a first thread sets up. */
  weft_task t;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_KTHREAD, post_and_return, NULL),
               0);
  cr_assert_eq(weft_task_detach(&t), 0);
  cr_assert_eq(weft_sem_wait(&kt_sem), 0);
  cr_assert(EVENTUALLY(status_field("Threads") == threads0));
  long vm0 = status_field("VmSize"); /* KiB */

  for (int i = 0; i < DETACH_KT_N; i++) {
    cr_assert_eq(weft_task_start(&t, WEFT_MODE_KTHREAD, post_and_return, NULL),
                 0);
    if (i & 1) { /* detached while it may still run */
      cr_assert_eq(weft_task_detach(&t), 0);
      cr_assert_eq(weft_sem_wait(&kt_sem), 0);
    } else { /* detached once it has ended */
      cr_assert_eq(weft_sem_wait(&kt_sem), 0);
      cr_assert(EVENTUALLY(status_field("Threads") == threads0));
      cr_assert_eq(weft_task_detach(&t), 0);
    }
    cr_expect_eq(weft_task_wait(&t, NULL), -EINVAL);
    cr_assert(EVENTUALLY(status_field("Threads") == threads0),
              "a detached kernel-thread task did not end");
  }
  long grown = status_field("VmSize") - vm0;
  cr_expect_lt(grown, (long)(DETACH_KT_N / 2 * stack / 1024),
               "the address space grew by %ld KiB over %d detached "
               "kernel-thread tasks (stacks of %zu KiB): stacks not released",
               grown, DETACH_KT_N, stack / 1024);
  weft_sem_destroy(&kt_sem);
}

/* A kernel-thread task may detach itself. */
struct self_detach {
  weft_task t;
  atomic_int started; /* weft_task_start has returned */
  int rc;
};

static void *detach_myself(void *arg) {
  struct self_detach *s = arg;
  while (!atomic_load(&s->started))
    usleep(100);
  s->rc = weft_task_detach(&s->t);
  TCHECK_EQ(weft_sem_post(&kt_sem), 0);
  return NULL;
}

Test(task_detach, kthread_detaches_itself, TMO) {
  static struct self_detach s;
  cr_assert_eq(weft_sem_init(&kt_sem, 0), 0);
  long threads0 = status_field("Threads");
  cr_assert_eq(weft_task_start(&s.t, WEFT_MODE_KTHREAD, detach_myself, &s), 0);
  atomic_store(&s.started, 1);
  cr_assert_eq(weft_sem_wait(&kt_sem), 0);
  cr_expect_eq(s.rc, 0);
  cr_expect_eq(weft_task_wait(&s.t, NULL), -EINVAL);
  cr_expect(EVENTUALLY(status_field("Threads") == threads0));
  EXPECT_NO_THREAD_FAILURES();
  weft_sem_destroy(&kt_sem);
}

/* Processes: the child is reaped with nobody waiting (no zombie), and the
 * task's descriptor is closed. */
static void *block_on_read(void *arg) {
  int fd = (int)(intptr_t)arg;
  char c;
  alarm(15); /* a broken test must not leave it behind for long */
  return (void *)(intptr_t)read(fd, &c, 1);
}

Test(task_detach, process_is_reaped_and_released, TMO) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  /* The first process task starts the reaper (an epoll descriptor). */
  weft_task t;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, square, NULL), 0);
  cr_assert_eq(weft_task_wait(&t, NULL), 0);
  int fds0 = count_fds();

  for (int i = 0; i < 8; i++) {
    /* The child waits for a byte.  Even: it gets it, ends and is reaped
     * before the detach; odd: it is detached while it waits. */
    bool end_first = i % 2 == 0;
    cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, block_on_read,
                                 (void *)(intptr_t)p[0]),
                 0);
    pid_t pid = weft_task_pid(&t);
    cr_assert_gt(pid, 0);
    int pidfd = weft_task_pidfd(&t);
    cr_assert_geq(pidfd, 0, "weft_task_pidfd: %s", weft_strerror(pidfd));
    if (end_first) {
      cr_assert_eq(write(p[1], "x", 1), 1);
      cr_assert(EVENTUALLY(reaped(pidfd)), "not reaped before the detach");
      cr_assert_eq(weft_task_detach(&t), 0);
    } else {
      cr_assert_eq(weft_task_detach(&t), 0);
      usleep(1000);
      cr_expect(!has_exited(pidfd));
      cr_assert_eq(write(p[1], "y", 1), 1);
    }
    cr_expect_eq(weft_task_pid(&t), pid, "the pid outlives the detach");
    cr_expect_eq(weft_task_wait(&t, NULL), -EINVAL);
    cr_expect(EVENTUALLY(reaped(pidfd)), "detached child %d left a zombie",
              (int)pid);
    close(pidfd);
    cr_expect(EVENTUALLY(count_fds() == fds0),
              "%d descriptors open, %d before: the task's was not closed",
              count_fds(), fds0);
  }
  close(p[0]);
  close(p[1]);
}

/* A pidfd taken before the detach still signals that child and sees it
 * end; the pid names it (as /proc/self/fdinfo says). */
Test(task_detach, pidfd_signals_the_detached_child, TMO) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  weft_task t;
  cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, block_on_read,
                               (void *)(intptr_t)p[0]),
               0);
  int pidfd = weft_task_pidfd(&t);
  cr_assert_geq(pidfd, 0);
  char path[64], line[128];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
  FILE *f = fopen(path, "r");
  cr_assert(f);
  long fdpid = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "Pid:", 4))
      fdpid = strtol(line + 4, NULL, 10);
  fclose(f);
  cr_expect_eq(fdpid, (long)weft_task_pid(&t));
  cr_expect_eq(fcntl(pidfd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  cr_assert_eq(weft_task_detach(&t), 0);
  cr_expect_eq(weft_task_pidfd(&t), -EINVAL, "no pidfd after the detach");
  cr_expect(!has_exited(pidfd));
  cr_assert_eq(syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0), 0);
  cr_expect(EVENTUALLY(has_exited(pidfd)));
  cr_expect(EVENTUALLY(reaped(pidfd)));
  /* Gone: the pidfd refuses, rather than reach another process. */
  errno = 0;
  cr_expect_eq(syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0), -1);
  cr_expect_eq(errno, ESRCH);
  close(pidfd);
  close(p[0]);
  close(p[1]);
}

/* Once the child has been reaped (at once, with nobody waiting), there is
 * no pidfd to take (-ESRCH), and the task holds no descriptor until its
 * wait: a program may start many and wait for them later. */
static int pidfd_or_error(weft_task *t) {
  int fd = weft_task_pidfd(t);
  if (fd >= 0)
    close(fd);
  return fd;
}

Test(task_detach, pidfd_after_the_reap_gives_esrch, TMO) {
  enum { N = 16 };
  weft_task t[N];
  /* The first process task starts the reaper (an epoll descriptor). */
  cr_assert_eq(weft_task_start(&t[0], WEFT_MODE_PROCESS, square, NULL), 0);
  cr_assert_eq(weft_task_wait(&t[0], NULL), 0);
  int fds0 = count_fds();
  for (intptr_t i = 0; i < N; i++)
    cr_assert_eq(weft_task_start(&t[i], WEFT_MODE_PROCESS, square, (void *)i),
                 0);
  for (int i = 0; i < N; i++)
    cr_expect(EVENTUALLY(pidfd_or_error(&t[i]) == -ESRCH),
              "task %d: weft_task_pidfd did not turn -ESRCH", i);
  cr_expect_eq(count_fds(), fds0, "finished tasks still hold descriptors");
  for (intptr_t i = 0; i < N; i++) {
    void *res = NULL;
    cr_expect_eq(weft_task_wait(&t[i], &res), 0);
    cr_expect_eq((intptr_t)res, i * i);
  }
}

/* The reaper waits for its own children only: a child the program forked
 * itself is left for the program's waitpid, status and all, while
 * detached process tasks come and go. */
Test(task_detach, reaper_leaves_other_children_alone, TMO) {
  pid_t own = fork();
  cr_assert_geq(own, 0);
  if (own == 0) {
    usleep(200 * 1000);
    _exit(7);
  }
  int pidfds[6];
  for (int i = 0; i < 6; i++) {
    weft_task t;
    cr_assert_eq(weft_task_start(&t, WEFT_MODE_PROCESS, square, NULL), 0);
    pidfds[i] = weft_task_pidfd(&t); /* -ESRCH: reaped already */
    cr_assert(pidfds[i] >= 0 || pidfds[i] == -ESRCH);
    cr_assert_eq(weft_task_detach(&t), 0);
  }
  for (int i = 0; i < 6; i++) {
    if (pidfds[i] < 0)
      continue;
    cr_expect(EVENTUALLY(reaped(pidfds[i])));
    close(pidfds[i]);
  }
  int st = 0;
  cr_assert_eq(waitpid(own, &st, 0), own, "waitpid: %s", strerror(errno));
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status 0x%x", st);
}

/* ------------------------------------------------------------------------ */
/* Detach, pid and pidfd: misuse                                            */
/* ------------------------------------------------------------------------ */

Test(task_detach, misuse, .init = h_start2, .fini = h_stop, TMO) {
  cr_expect_eq(weft_task_detach(NULL), -EINVAL);
  cr_expect_eq(weft_task_pid(NULL), -EINVAL);
  cr_expect_eq(weft_task_pidfd(NULL), -EINVAL);

  weft_task zero;
  memset(&zero, 0, sizeof zero);
  cr_expect_eq(weft_task_detach(&zero), -EINVAL, "never started");
  cr_expect_eq(weft_task_pid(&zero), -EINVAL);
  cr_expect_eq(weft_task_pidfd(&zero), -EINVAL);

  weft_task t;
  cr_assert_eq(weft_task_start(&t, (weft_mode)0, square, NULL), -EINVAL);
  cr_expect_eq(weft_task_detach(&t), -EINVAL, "a failed start");

  for (int m = 0; m < 3; m++) {
    const char *name = mode_names[modes[m]];
    bool proc = modes[m] == WEFT_MODE_PROCESS;

    /* Detached twice; waited for after the detach. */
    cr_assert_eq(weft_task_start(&t, modes[m], square, (void *)2), 0);
    if (!proc) {
      cr_expect_eq(weft_task_pid(&t), -EINVAL, "%s has no pid", name);
      cr_expect_eq(weft_task_pidfd(&t), -EINVAL, "%s has no pidfd", name);
    }
    cr_expect_eq(weft_task_detach(&t), 0, "%s", name);
    cr_expect_eq(weft_task_detach(&t), -EINVAL, "%s: detached twice", name);
    void *res = (void *)1;
    cr_expect_eq(weft_task_wait(&t, &res), -EINVAL, "%s: wait after detach",
                 name);
    cr_expect_eq((intptr_t)res, 1, "a refused wait leaves *result alone");
    if (proc)
      cr_expect_eq(weft_task_pidfd(&t), -EINVAL, "pidfd after detach");

    /* Detached after the wait. */
    cr_assert_eq(weft_task_start(&t, modes[m], square, (void *)2), 0);
    pid_t pid = weft_task_pid(&t);
    cr_expect_eq(weft_task_wait(&t, &res), 0, "%s", name);
    cr_expect_eq((intptr_t)res, 4);
    cr_expect_eq(weft_task_detach(&t), -EINVAL, "%s: detach after wait", name);
    if (proc) {
      cr_expect_gt(pid, 0);
      cr_expect_eq(weft_task_pid(&t), pid, "the pid outlives the wait");
      cr_expect_eq(weft_task_pidfd(&t), -EINVAL, "pidfd after the wait");
    }
  }
}

/* A GREEN task may detach itself; its stack is released at its end. */
static void *green_detach_myself(void *arg) {
  weft_task *t = arg;
  weft_yield(); /* let the start return */
  TCHECK_EQ(weft_task_detach(t), 0);
  atomic_fetch_add(&detached_ran, 1);
  return NULL;
}

static void *start_self_detaching(void *arg) {
  weft_task *t = arg;
  TCHECK_EQ(weft_task_start(t, WEFT_MODE_GREEN, green_detach_myself, t), 0);
  while (!atomic_load(&detached_ran))
    weft_yield();
  TCHECK_EQ(weft_task_wait(t, NULL), -EINVAL);
  return NULL;
}

Test(task_detach, green_detaches_itself, .init = h_start1, .fini = h_stop,
     TMO) {
  static weft_task t;
  atomic_store(&detached_ran, 0);
  h_join(h_spawn(start_self_detaching, &t));
  EXPECT_NO_THREAD_FAILURES();
}
