/*
 * when.c - when to use processes, kernel threads or green threads: the
 * explainer's "When to Use Processes vs Threads" as one program.
 *
 * The same job runs three ways with the same function and one call,
 * weft_task_start(mode, fn, arg): hash a 32 MiB buffer in 8 pieces, one
 * task per piece, then combine the 8 results.  For each mode it measures
 *  - what one task costs to start and wait for (a task that does nothing),
 *  - the wall time of the whole job,
 * and shows what the mode shares: every task also writes its piece's hash
 * into an array of the parent's.  Threads (green or kernel) write the
 * parent's own array; a process writes its copy, so the parent sees
 * nothing and the result has to come back another way (here fn's return
 * value; for more, the shared heap or a process channel).
 *
 * The table is followed by the explainer's advice, with the numbers that
 * back it.  examples/crash shows the other half of the trade: what a crash
 * takes down in each case.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define BUF_BYTES ((size_t)32 << 20)
#define PIECES 8
#define WORDS (BUF_BYTES / sizeof(uint64_t))
#define REPEAT 3

static uint64_t *buf;
static uint64_t sums[PIECES]; /* written by the tasks, read by the parent */

struct mode_info {
  weft_mode mode;
  const char *name;
  int empty_tasks; /* how many empty tasks to time */
  const char *memory;
  const char *crash;
};

static const struct mode_info modes[] = {
    {WEFT_MODE_GREEN, "green", 20000, "the parent's (one address space)",
     "the whole process"},
    {WEFT_MODE_KTHREAD, "kthread", 300, "the parent's (one address space)",
     "the whole process"},
    {WEFT_MODE_PROCESS, "process", 20, "its own copy (fork)",
     "only that process"},
};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

static void die(const char *what, int rc) {
  fprintf(stderr, "when: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* A 64-bit multiply-xor hash of one piece; stores it in sums[] too. */
static void *hash_piece(void *arg) {
  size_t i = (size_t)(uintptr_t)arg;
  size_t n = WORDS / PIECES;
  const uint64_t *p = buf + i * n;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ i;
  for (size_t k = 0; k < n; k++) {
    h ^= p[k];
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  sums[i] = h;
  return (void *)(uintptr_t)h;
}

static void *nothing(void *arg) { return arg; }

/* Best of REPEAT: ns per empty task started and waited for. */
static double time_empty(const struct mode_info *m) {
  double best = 0;
  for (int r = 0; r < REPEAT; r++) {
    int64_t t0 = weft_now();
    for (int i = 0; i < m->empty_tasks; i++) {
      weft_task t;
      int rc = weft_task_start(&t, m->mode, nothing, NULL);
      if (rc < 0)
        die("weft_task_start", rc);
      if ((rc = weft_task_wait(&t, NULL)) < 0)
        die("weft_task_wait", rc);
    }
    double ns = (double)(weft_now() - t0) / m->empty_tasks;
    if (r == 0 || ns < best)
      best = ns;
  }
  return best;
}

/* Runs the job once; returns its wall time in ns, the combined hash in
 * *combined, and how many of the tasks' writes the parent saw. */
static int64_t run_job(const struct mode_info *m, uint64_t *combined,
                       int *seen) {
  weft_task t[PIECES];
  memset(sums, 0, sizeof(sums));
  int64_t t0 = weft_now();
  for (int i = 0; i < PIECES; i++) {
    int rc = weft_task_start(&t[i], m->mode, hash_piece, (void *)(uintptr_t)i);
    if (rc < 0)
      die("weft_task_start", rc);
  }
  uint64_t h = 0;
  for (int i = 0; i < PIECES; i++) {
    void *res;
    int rc = weft_task_wait(&t[i], &res);
    if (rc < 0)
      die("weft_task_wait", rc);
    h = (h ^ (uint64_t)(uintptr_t)res) * 0x100000001b3ULL;
  }
  int64_t ns = weft_now() - t0;
  *seen = 0;
  for (int i = 0; i < PIECES; i++)
    *seen += sums[i] != 0;
  *combined = h;
  return ns;
}

static void print_time(double ns) {
  if (ns < 10e3)
    printf("%8.2f us", ns / 1e3);
  else if (ns < 10e6)
    printf("%8.1f us", ns / 1e3);
  else
    printf("%8.2f ms", ns / 1e6);
}

/* Everything below runs in one green thread, the driver: starting and
 * waiting for a green task is then a switch on the driver's worker, not a
 * wake-up of a worker from another kernel thread.  Its waits for kernel
 * threads and processes park it, as they would any green thread. */
static void *driver(void *arg) {
  (void)arg;
  printf("The same job three ways: hash %zu MiB in %d pieces, one task per "
         "piece\n(weft_task_start with the same function, from a green "
         "thread; %d workers)\n\n",
         BUF_BYTES >> 20, PIECES, weft_workers());
  printf("%-8s %11s %11s  %-8s %-10s %-34s %s\n", "mode", "start+wait", "job",
         "result", "writes", "memory a task writes", "a crash ends");

  uint64_t first = 0;
  bool agree = true;
  double empty_ns[NMODES], job_ns[NMODES];
  int seen_by_mode[NMODES];
  for (size_t k = 0; k < NMODES; k++) {
    const struct mode_info *m = &modes[k];
    empty_ns[k] = time_empty(m);
    uint64_t h = 0;
    int seen = 0;
    job_ns[k] = 0;
    for (int r = 0; r < REPEAT; r++) {
      double ns = (double)run_job(m, &h, &seen);
      if (r == 0 || ns < job_ns[k])
        job_ns[k] = ns;
    }
    seen_by_mode[k] = seen;
    if (k == 0)
      first = h;
    agree = agree && h == first;
    printf("%-8s ", m->name);
    print_time(empty_ns[k]);
    printf(" ");
    print_time(job_ns[k]);
    printf("  %-8s %d/%d seen  %-34s %s\n", h == first ? "same" : "DIFFERS",
           seen, PIECES, m->memory, m->crash);
  }

  printf("\n(start+wait: one empty task, best of %d; job: wall time, best "
         "of %d; writes: how\nmany of the tasks' writes to the parent's "
         "array the parent saw afterwards)\n",
         REPEAT, REPEAT);

  printf("\nWhen to use which\n\n");
  printf("Processes, when isolation matters:\n"
         "  - a crash (or a leak, or a stray write) stays in one process: "
         "a supervisor\n    restarts it while the rest work on (run "
         "examples/crash);\n"
         "  - security: separate address spaces, separate privileges;\n"
         "  - parallel work that shares little: every task above got a "
         "copy of the 32 MiB\n    for free at the fork, but none of its "
         "writes came back (%d/%d seen) -\n    results travel by return "
         "value, pipe, or a shared heap mapped before the fork.\n"
         "  The price: about %.0fx a kernel thread to start here.\n\n",
         seen_by_mode[2], PIECES,
         empty_ns[2] / (empty_ns[1] > 0 ? empty_ns[1] : 1));
  printf("Threads, when the work shares memory and must talk fast:\n"
         "  - every write above landed in the parent's own array: no "
         "copying, no IPC,\n    but a lock or a channel wherever two "
         "threads touch the same data;\n"
         "  - one crash ends every thread of the process (examples/crash, part "
         "1).\n"
         "  Kernel threads (1:1) suit a few long jobs, or calls that block "
         "in the kernel:\n    the kernel schedules each one on its own.\n"
         "  Green threads (M:N) suit very many concurrent tasks (a "
         "connection each):\n    about %.0fx cheaper to start than a kernel "
         "thread here, and they switch without\n    the kernel; but they "
         "share the worker threads, so a long loop or a blocking\n    call "
         "holds up the others on its worker.\n",
         empty_ns[1] / (empty_ns[0] > 0 ? empty_ns[0] : 1));
  printf("\nThe hashing runs at the same speed in every mode; on %d CPUs "
         "each mode runs the\npieces in parallel.  What differs is the cost "
         "of starting the tasks, and for\nprocesses the fork, which copies "
         "the page tables of the whole parent.\n",
         weft_workers());

  if (!agree)
    printf("\nthe modes disagree on the result: something is broken\n");
  return (void *)(uintptr_t)agree;
}

int main(void) {
  weft_gthread t;
  void *agree = NULL;
  int rc;

  /* The data, made before the runtime starts: filling 32 MiB (8192 first
   * touches of a page) in the driver would hold its worker for as long,
   * which the hog monitor would rightly report. */
  buf = malloc(BUF_BYTES);
  if (!buf)
    die("malloc", -ENOMEM);
  uint64_t s = 88172645463325252ULL;
  for (size_t k = 0; k < WORDS; k++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    buf[k] = s;
  }
  if ((rc = weft_init(NULL)) < 0)
    die("weft_init", rc);
  weft_gthread_attr attr = {.name = "driver", .stack_size = 256 << 10};
  if ((rc = weft_spawn(&t, &attr, driver, NULL)) < 0)
    die("weft_spawn", rc);
  if ((rc = weft_join(t, &agree)) < 0)
    die("weft_join", rc);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  free(buf);
  return agree ? 0 : 1;
}
