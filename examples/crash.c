/*
 * crash.c - crash isolation: what a crash takes down with it.
 *
 * 1. Threads share one address space, so one bad pointer ends them all.
 *    A child process (a weft process task) starts a runtime with three
 *    "sibling" green threads that make steady progress and one
 *    "bad-request" green thread that writes through a NULL pointer.  The
 *    runtime names the green thread that crashed, and the whole process
 *    dies of SIGSEGV: the siblings die with it, mid-work.  Their progress
 *    counters live in a shared page, so the parent can show where they
 *    stopped.  The parent itself is untouched: its weft_task_wait returns
 *    -ECHILD.
 *
 * 2. Processes do not share an address space, so a crash stays in the
 *    process that made it.  A pool of three worker processes under a
 *    supervisor (weft_procs_run) does batches of work and prints its
 *    progress; worker 1 crashes on purpose in its first life.  The
 *    supervisor logs it, reclaims the slot and forks a new worker 1 while
 *    workers 0 and 2 keep going with the same pids.  Then SIGTERM (sent
 *    here by a helper thread, as an operator would with kill) makes every
 *    worker finish its batch and exit 0, and the supervisor returns 0 with
 *    every child reaped.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "weft.h"

#if defined(__SANITIZE_ADDRESS__)
/* In a sanitizer build, leave SIGSEGV to weft's report and the default
 * action, as in a normal build (ASAN_OPTIONS still overrides this). */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "handle_segv=0:detect_leaks=0";
}
#endif

#define SIBLINGS 3
#define WORKERS 3
#define BATCH_MS 100
#define STOP_AFTER_MS 1200

/* A write through a NULL struct pointer to its field at offset 16.  The
 * address is computed as an integer so that a sanitizer's null check
 * leaves it to the hardware, as a real bug would. */
static volatile uintptr_t null_base = 0;

static void crash_now(void) { *(volatile int *)(null_base + 16) = 42; }

/* Memory shared by this process and its children (mapped before fork). */
struct board {
  atomic_int sibling_ticks[SIBLINGS];
  atomic_int sibling_done[SIBLINGS];
  atomic_int starts[WORKERS];
};

static struct board *board;

static void die(const char *what, int rc) {
  fprintf(stderr, "crash: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* ------------------------------------------------------------------ */
/* 1. A crash in one green thread ends its whole process              */
/* ------------------------------------------------------------------ */

static void *sibling(void *arg) {
  int i = (int)(intptr_t)arg;
  for (int tick = 0; tick < 100; tick++) { /* 2 s of work, if let live */
    atomic_fetch_add(&board->sibling_ticks[i], 1);
    weft_sleep(20 * 1000000);
  }
  atomic_store(&board->sibling_done[i], 1);
  return NULL;
}

static void *bad_request(void *arg) {
  (void)arg;
  weft_sleep(100 * 1000000); /* let the siblings get going */
  printf("   bad-request: about to write through a NULL pointer\n");
  crash_now();
  return NULL;
}

/* Runs in the child process. */
static void *doomed_process(void *arg) {
  (void)arg;
  weft_config cfg = {.workers = 2};
  weft_gthread t[SIBLINGS + 1];
  char name[WEFT_NAME_MAX];

  if (weft_init(&cfg) != 0)
    return (void *)1;
  for (int i = 0; i < SIBLINGS; i++) {
    snprintf(name, sizeof name, "sibling-%d", i + 1);
    weft_gthread_attr a = {.name = name};
    weft_spawn(&t[i], &a, sibling, (void *)(intptr_t)i);
  }
  weft_gthread_attr a = {.name = "bad-request"};
  weft_spawn(&t[SIBLINGS], &a, bad_request, NULL);
  printf("   child pid %d: %d sibling green threads and \"bad-request\" "
         "running on %d workers\n",
         (int)getpid(), SIBLINGS, weft_workers());
  for (int i = 0; i <= SIBLINGS; i++)
    weft_join(t[i], NULL);
  weft_shutdown();
  return (void *)0; /* not reached: the crash ends the process first */
}

static void part1(void) {
  weft_task task;
  int rc;

  printf("1. green threads share one process: a crash in one ends all\n");
  if ((rc = weft_task_start(&task, WEFT_MODE_PROCESS, doomed_process, NULL)) <
      0)
    die("weft_task_start", rc);
  rc = weft_task_wait(&task, NULL);
  printf("   parent: weft_task_wait returned %d (%s)\n", rc, weft_strerror(rc));
  int done = 0;
  for (int i = 0; i < SIBLINGS; i++)
    done += atomic_load(&board->sibling_done[i]);
  printf("   siblings that finished their 100 ticks: %d of %d; they had "
         "done %d, %d and %d\n",
         done, SIBLINGS, atomic_load(&board->sibling_ticks[0]),
         atomic_load(&board->sibling_ticks[1]),
         atomic_load(&board->sibling_ticks[2]));
  printf("   -> nothing wrong with the siblings, yet they died with the "
         "process: threads share its fate\n\n");
}

/* ------------------------------------------------------------------ */
/* 2. A crash in one worker process is only that process's            */
/* ------------------------------------------------------------------ */

static uint64_t do_batch(uint64_t h) {
  for (int i = 0; i < 200000; i++)
    h = (h ^ (uint64_t)i) * 0x100000001b3ULL;
  return h;
}

static int pool_worker(int index, void *arg) {
  (void)arg;
  int life = atomic_fetch_add(&board->starts[index], 1) + 1;
  uint64_t h = 0xcbf29ce484222325ULL;
  int batch = 0;

  printf("   worker %d (pid %d): started (life %d)\n", index, (int)getpid(),
         life);
  while (!weft_procs_draining()) {
    h = do_batch(h);
    batch++;
    printf("   worker %d (pid %d): batch %d done\n", index, (int)getpid(),
           batch);
    if (index == 1 && life == 1 && batch == 3) {
      printf("   worker %d (pid %d): crashing on purpose\n", index,
             (int)getpid());
      crash_now();
    }
    usleep(BATCH_MS * 1000); /* cut short by SIGTERM */
  }
  printf("   worker %d (pid %d): draining after %d batches, exiting 0\n", index,
         (int)getpid(), batch);
  return 0;
}

/* The "operator": asks the supervisor (this process) to stop.  A helper
 * kernel thread of the supervisor, so it blocks the signals the
 * supervisor waits for, lest they be delivered to it. */
static void *stop_later(void *arg) {
  (void)arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  usleep(STOP_AFTER_MS * 1000);
  printf("   operator: kill -TERM %d (the supervisor)\n", (int)getpid());
  kill(getpid(), SIGTERM);
  return NULL;
}

static void part2(void) {
  weft_task op;
  int rc;

  printf("2. worker processes: a crash stays in its process\n");
  printf("   supervisor pid %d starts %d workers\n", (int)getpid(), WORKERS);
  if ((rc = weft_task_start(&op, WEFT_MODE_KTHREAD, stop_later, NULL)) < 0)
    die("weft_task_start", rc);
  weft_procs_config cfg = {
      .procs = WORKERS,
      .worker = pool_worker,
      .listen_fd = -1,
      .drain_ms = 2000,
  };
  rc = weft_procs_run(&cfg);
  weft_task_wait(&op, NULL);
  printf("   supervisor: weft_procs_run returned %d; worker 1 lived %d "
         "times, workers 0 and 2 once each (%d, %d)\n",
         rc, atomic_load(&board->starts[1]), atomic_load(&board->starts[0]),
         atomic_load(&board->starts[2]));
  printf("   -> the crash cost one worker one restart; the others never "
         "noticed\n");
  if (rc != 0)
    exit(1);
}

int main(void) {
  struct rlimit nocore = {0, 0};
  setrlimit(RLIMIT_CORE, &nocore);  /* crashes here are on purpose */
  setvbuf(stdout, NULL, _IOLBF, 0); /* lines in order with stderr's */
  board = mmap(NULL, sizeof(*board), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (board == MAP_FAILED)
    die("mmap", -errno);
  memset(board, 0, sizeof(*board));

  part1();
  part2();
  return 0;
}
