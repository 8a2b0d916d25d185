/*
 * mmswitch.c - what a process switch costs beyond a thread switch: the
 * change of address space, isolated.
 *
 * One ping, the main thread of a fresh process, hands one CPU back and
 * forth with two pongs pinned to the same CPU: a thread of its own
 * process, and a process forked from it.  A handoff is a futex wake, a
 * futex wait and the switch to the other side; each pong has its own
 * futex word, in one MAP_SHARED mapping, so that the futex is a shared one
 * for both (the kernel finds it by page, not by address space).  The ping
 * runs a block of BLOCK round trips with the thread, then one with the
 * process, and so on: the same thread, the same code, the same moment of
 * the run for both; only the address space of the other side differs.
 *
 *   handoff.futex.kthread.1cpu   ns per one-way handoff between two threads
 *                                of one process: the switch keeps the
 *                                page tables (the median of the blocks)
 *   handoff.futex.process.1cpu   the same between two processes: each
 *                                switch loads the other's page tables (a
 *                                CR3 write on x86-64)
 *   handoff.mm_switch            process - thread: the address-space
 *                                switch, per one-way handoff
 *
 * The .touch variants make the TLB's part show: after each handoff each
 * side reads one cache line in each of TOUCH_PAGES pages of its own
 * (mapped by itself after the fork), lines spread over the cache's sets
 * so that only the TLB, not the cache, can miss:
 *
 *   handoff.futex.kthread.touch.1cpu, handoff.futex.process.touch.1cpu
 *   handoff.mm_switch.touch      their difference: the address-space switch
 *                                and the TLB refills it causes
 *
 * What a refill costs depends on the CPU: with PCID (process-context
 * identifiers, x86-64 since 2010) the kernel tags TLB entries with their
 * address space, so a CR3 write need not flush them, and the pages of a
 * process that ran a moment ago may still be in the TLB.  The note says
 * whether this CPU has PCID.  On a virtual machine a refill walks two
 * levels of tables (the guest's and the host's).
 *
 * No weft here: these are the operating system's costs, the floor under
 * weft's own thread and process handoffs (bench/handoff).  A third
 * program that takes the CPU during a block would make that block slow,
 * and would put an address-space switch into a thread block too: a block
 * whose wall time exceeds the CPU time of its two sides by more than
 * STRANGER_NS is left out (the note counts them), and a sample with fewer
 * than MIN_BLOCKS blocks of each kind left fails.  Of the rest, each
 * figure is the median.  Each sample is a fresh process.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define WARMUP_NS (20 * 1000000LL)
#define TOUCH_PAGES 32
#define BLOCK 32 /* round trips a block */
#define MAX_BLOCKS 65536
#define MIN_BLOCKS 16          /* of each kind, for a sample */
#define STRANGER_NS (5 * 1000) /* see block() */

enum { THREAD, PROCESS };

/* One futex word a line, in a MAP_SHARED mapping. */
struct word {
  _Atomic uint32_t turn; /* 0: ping's, 1: the pong's */
  _Atomic int stop;
  char pad[56];
};

struct pp {
  struct word w[2]; /* THREAD: ping and the pong thread; PROCESS: ping and
                     * the pong process */
  int touch;        /* pages each side reads after each handoff */
};

static size_t page;

static long futex(_Atomic uint32_t *w, int op, uint32_t v) {
  return syscall(SYS_futex, w, op, v, NULL, NULL, 0);
}

/* Waits for the turn to be me's: sleeps while it is the other's. */
static void await(struct word *w, uint32_t me) {
  uint32_t t;

  while ((t = atomic_load_explicit(&w->turn, memory_order_acquire)) != me)
    if (futex(&w->turn, FUTEX_WAIT, t) < 0 && errno != EAGAIN &&
        errno != EINTR) {
      perror("bench: futex wait");
      exit(1);
    }
}

/* Gives the turn to the other side and wakes it. */
static void pass(struct word *w, uint32_t other) {
  /* release: pairs with the other side's acquire in await() */
  atomic_store_explicit(&w->turn, other, memory_order_release);
  futex(&w->turn, FUTEX_WAKE, 1);
}

/*
 * The pages a side reads after each handoff, its own: one line of each,
 * at a different offset in each page so that the lines fall in different
 * cache sets (at one offset, 32 lines would crowd one set of an 8-way L1
 * and miss in the cache instead of the TLB).
 */
static volatile char *own_pages(int n) {
  char *m;

  if (n == 0)
    return NULL;
  m = mmap(NULL, (size_t)n * page, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (m == MAP_FAILED) {
    perror("bench: mmap");
    exit(1);
  }
  /* Small pages: one TLB entry each. */
  madvise(m, (size_t)n * page, MADV_NOHUGEPAGE);
  for (int i = 0; i < n; i++)
    m[(size_t)i * page] = 1;
  return m;
}

static inline void touch(volatile char *m, int n) {
  unsigned sum = 0;

  for (int i = 0; i < n; i++)
    sum += (unsigned char)m[(size_t)i * page + (size_t)i * 64 % page];
  bench_keep(sum);
}

/* A pong: answers each turn on its word until told to stop. */
static void pong(struct pp *p, struct word *w) {
  volatile char *m = own_pages(p->touch);

  bench_pin(0);
  for (;;) {
    await(w, 1);
    if (atomic_load(&w->stop))
      return;
    touch(m, p->touch);
    pass(w, 0);
  }
}

static void *pong_thread(void *arg) {
  struct pp *p = arg;

  pong(p, &p->w[THREAD]);
  return NULL;
}

/* The CPU time of the clock's thread or process so far, in ns. */
static int64_t cpu_ns(clockid_t c) {
  struct timespec ts;

  if (clock_gettime(c, &ts) != 0) {
    perror("bench: clock_gettime");
    exit(1);
  }
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * BLOCK round trips with the pong of w, whose CPU clock is pong_cpu: ns
 * per one-way handoff, or -1 if another program ran on the CPU meanwhile.
 * With only the two sides on the CPU, the wall time of the block is their
 * CPU time; a third program's turn shows as wall time neither was charged
 * for.  Only such a turn, not the clocks' granularity (a microsecond or
 * two here), reaches STRANGER_NS.
 */
static double block(struct pp *p, struct word *w, clockid_t pong_cpu,
                    volatile char *m) {
  int64_t c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID) + cpu_ns(pong_cpu);
  int64_t t0 = bench_now();

  for (int k = 0; k < BLOCK; k++) {
    pass(w, 1);
    await(w, 0);
    touch(m, p->touch);
  }
  int64_t t1 = bench_now();
  int64_t c1 = cpu_ns(CLOCK_THREAD_CPUTIME_ID) + cpu_ns(pong_cpu);
  if ((t1 - t0) - (c1 - c0) > STRANGER_NS)
    return -1;
  return (double)(t1 - t0) / (2.0 * BLOCK);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/*
 * Child: args TOUCH BUDGET_MS.  One ping, the main thread, takes turns
 * with two pongs pinned to its CPU: a thread of its own process and a
 * process forked from it, a block of BLOCK round trips with one, then a
 * block with the other.  The ping is the same thread with the same code
 * and the same kind of futex for both; only the pong's address space
 * differs.  Writes the median of the blocks, ns per one-way handoff, with
 * the thread and with the process, and the number of blocks of each.
 */
static int child(const struct bench_opts *o) {
  struct pp *p = bench_shared(sizeof(*p));
  static double ns[2][MAX_BLOCKS];
  long n[2] = {0, 0}, left_out = 0;
  int64_t budget = atol(o->child_argv[1]) * 1000000LL, end;

  page = (size_t)sysconf(_SC_PAGESIZE);
  p->touch = atoi(o->child_argv[0]);
  /* All three start on the one CPU, so that none runs a moment
   * elsewhere.  The process is forked before the thread exists. */
  bench_pin(0);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("bench: fork");
    return 1;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the ping */
    pong(p, &p->w[PROCESS]);
    _exit(0);
  }
  pthread_t t;
  int rc = pthread_create(&t, NULL, pong_thread, p);
  if (rc != 0) {
    fprintf(stderr, "bench: pthread_create: %s\n", strerror(rc));
    kill(pid, SIGKILL);
    return 1;
  }
  volatile char *m = own_pages(p->touch);
  clockid_t pong_cpu[2];
  if ((rc = pthread_getcpuclockid(t, &pong_cpu[THREAD])) != 0 ||
      (rc = clock_getcpuclockid(pid, &pong_cpu[PROCESS])) != 0) {
    fprintf(stderr, "bench: a pong's CPU clock: %s\n", strerror(rc));
    kill(pid, SIGKILL);
    return 1;
  }
  end = bench_now() + WARMUP_NS;
  while (bench_now() < end)
    for (int k = 0; k < 2; k++)
      block(p, &p->w[k], pong_cpu[k], m);
  end = bench_now() + budget;
  while (bench_now() < end && n[PROCESS] < MAX_BLOCKS)
    for (int k = 0; k < 2; k++) {
      double v = block(p, &p->w[k], pong_cpu[k], m);
      if (v >= 0)
        ns[k][n[k]++] = v;
      else
        left_out++;
    }
  for (int k = 0; k < 2; k++) {
    atomic_store(&p->w[k].stop, 1);
    pass(&p->w[k], 1);
  }
  pthread_join(t, NULL);
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
    return 1;
  if (n[THREAD] < MIN_BLOCKS || n[PROCESS] < MIN_BLOCKS) {
    fprintf(stderr,
            "bench: mmswitch: other programs kept the CPU busy: %ld and "
            "%ld blocks ran alone, %ld did not\n",
            n[THREAD], n[PROCESS], left_out);
    return 1;
  }
  for (int k = 0; k < 2; k++) {
    qsort(ns[k], (size_t)n[k], sizeof ns[k][0], cmp_double);
    bench_put(o, ns[k][n[k] / 2]);
  }
  bench_put(o, (double)(n[THREAD] + n[PROCESS]));
  bench_put(o, (double)left_out);
  return 0;
}

/* Whether the CPU has process-context identifiers (x86-64 "pcid"). */
static const char *pcid(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[4096];
  const char *has = "PCID unknown";

  if (!f)
    return has;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "flags", 5) == 0) {
      has = strstr(line, " pcid") ? "CPU has PCID" : "CPU without PCID";
      break;
    }
  fclose(f);
  return has;
}

int main(int argc, char **argv) {
  static const char *const names[2][3] = {
      {"handoff.futex.kthread.1cpu", "handoff.futex.process.1cpu",
       "handoff.mm_switch"},
      {"handoff.futex.kthread.touch.1cpu", "handoff.futex.process.touch.1cpu",
       "handoff.mm_switch.touch"}};
  struct bench_opts o;
  /* [touch][thread, process, difference] */
  double ns[2][3][BENCH_MAX_REPS], blocks[2][BENCH_MAX_REPS];
  double left[2][BENCH_MAX_REPS];
  struct bench_tally t[2];
  int got[2] = {0, 0};
  char budget[16], pages[16], note[240];

  bench_init(&o, argc, argv,
             "one CPU handed between two threads and between two processes",
             60);
  if (o.child)
    return child(&o);
  snprintf(budget, sizeof budget, "%d", o.quick ? 100 : 400);
  snprintf(pages, sizeof pages, "%d", TOUCH_PAGES);
  for (int w = 0; w < 2; w++) {
    memset(&t[w], 0, sizeof t[w]);
    snprintf(t[w].name, sizeof t[w].name, "%s", names[w][0]);
  }
  for (int r = 0; r < o.reps; r++)
    for (int w = 0; w < 2; w++) {
      const char *args[3] = {w ? pages : "0", budget, NULL};
      double out[4];

      if (bench_childv(&o, &t[w], "mmswitch", out, 4, args) == 4) {
        ns[w][THREAD][got[w]] = out[0];
        ns[w][PROCESS][got[w]] = out[1];
        ns[w][2][got[w]] = out[1] - out[0];
        blocks[w][got[w]] = out[2];
        left[w][got[w]++] = out[3];
      }
    }
  bench_table(&o, "One CPU handed over through a futex: threads against "
                  "processes, ns per one-way handoff");
  for (int w = 0; w < 2; w++) {
    /* One child measures the three figures of a row group: they share
     * its tally, under their own names. */
    struct bench_tally tw = t[w];
    for (int k = 0; k < 3; k++) {
      snprintf(tw.name, sizeof tw.name, "%s", names[w][k]);
      if (k < 2)
        snprintf(note, sizeof note,
                 "one ping, %s pong, one CPU, a shared futex%s; the median "
                 "of the blocks of %d round trips (%.0f of each kind a sample; "
                 "%.0f left out, when another program ran)",
                 k == THREAD ? "a thread" : "a process",
                 w ? ", 32 pages read after each handoff" : "", BLOCK,
                 bench_median(blocks[w], got[w]) / 2,
                 bench_median(left[w], got[w]));
      else
        snprintf(note, sizeof note,
                 "process - thread, measured in turns by one ping%s; %s",
                 w ? " (32 pages read after each handoff)" : "", pcid());
      bench_row(&o, names[w][k], &tw, ns[w][k], got[w], "ns", note);
    }
  }
  return bench_status();
}
