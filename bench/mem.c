/*
 * mem.c - what an idle unit costs in memory in each mode, how the cost of
 * starting units and their memory change from 10 units alive at once to a
 * million, and whether a million green threads fit in one process.
 *
 * A crowd is N units started with weft_task_start (green threads with
 * weft_spawn from a green thread, which is what the GREEN mode does) that
 * each report that they run and then block until released:
 *   green    in weft_chan_recv on one channel (the green thread parks)
 *   kthread  in weft_chan_recv on one channel (the thread sleeps on a futex;
 *            no weft runtime running)
 *   process  in read() on a pipe whose writer is the parent (each child
 *            closes its copy of the write end)
 * The clock runs from the first start until all N have reported; the
 * memory is read 100 ms later, with all N blocked, against a reading taken
 * before the first start.  Then the channel is closed or the pipe's write
 * end, and every unit is waited for.
 *
 * Memory per unit, and what is counted:
 *   user    green, kthread: the growth of the process's RSS (its stacks,
 *           descriptors, TLS, the task records).  process: the growth of
 *           the summed Pss of the anonymous and shared-memory pages of the
 *           parent and all children (Pss splits a page among the processes
 *           that map it, so the sum counts each physical page once: the
 *           pages the children copied on write, not those they share with
 *           the parent).  File-backed pages (library code) are left out:
 *           they exist once whatever the count.
 *   pt      page tables: the growth of VmPTE of the process (green,
 *           kthread: one address space), or the sum of the children's
 *           VmPTE plus the parent's growth (process).
 *   kstack  the kernel stack of each kernel thread or process: 16 KiB on
 *           x86-64 (THREAD_SIZE, without KASAN), counted as that constant;
 *           the note gives the growth of KernelStack in /proc/meminfo as a
 *           check.  Green threads have none.
 *   slab    the growth of SUnreclaim in /proc/meminfo (task_struct,
 *           mm_struct, VMAs, file tables...): system-wide, so other work on
 *           the machine shows in it; reported, not added to the total.
 * The total (mem.idle.MODE) is user + pt + kstack.
 *
 *   mem.idle.green      KiB per green thread, 100,000 of them
 *   mem.idle.kthread    KiB per kernel thread, 10,000 of them
 *   mem.idle.process    KiB per process, 1,000 of them
 *   mem.idle.MODE.user, .pt, .kstack, .slab   the parts
 *   scale.MODE.N.ns     ns per unit to start N units and see them all run
 *   scale.MODE.N.kib    KiB per unit with N alive (user + pt + kstack)
 *   alive.1m.green.scaling  ns per thread to start the alive.1m run's
 *                       threads over ns per thread with 10,000 alive (the
 *                       10,000 rung's median): 1 is linear
 *   alive.1m.green      1 if 1,000,000 guarded green threads were alive at
 *                       once, else 0 (default vm.max_map_count: a runtime
 *                       that spends a kernel mapping per guard page stops
 *                       near 32k threads); .ms, .rss: how long the spawns
 *                       took and the RSS with all alive
 *
 * The ladder of N: green 10 to 1,000,000 (the top is the alive.1m run),
 * kernel threads 10 to 10,000, processes 10 to 1,000 (this machine's
 * pid_max and the time fork takes bound them).  Quick mode stops each
 * ladder lower (green 100,000, kthread 1,000, process 100) and the
 * mem.idle rows use the second highest rung (10,000, 1,000, 100); the
 * notes say so.  Each figure is a fresh process; every rung is the median
 * of 3 runs (in quick mode only the mem.idle rungs; the others are one
 * run), alive.1m is the faster of two runs (ALIVE_RUNS says why).  The
 * memory is read after 100 ms of rest
 * (50 ms in quick mode).
 */
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gbench.h"

#define ALIVE_FULL 1000000L
/* alive.1m runs twice and the faster run gives its figures.  Its first
 * run touches about 4 GiB that the machine may never have handed out
 * since it booted: on a virtual machine, the first touch of such memory
 * costs several times an ordinary page fault (1.7x the whole run's time
 * has been seen), which says nothing about weft.  The Go reference runs
 * twice for the same reason, each time right after one of weft's.  And
 * memory given back goes cold again within seconds on such a machine (its
 * balloon takes free memory back), so before each run of either a child
 * touches as much as the run will need and gives it back (warm()): then
 * each side starts on memory that is as warm as the other's, whichever
 * needs more of it or ran first. */
#define ALIVE_RUNS 2
/* KiB that warm() touches per unit of the run after it: more than the 4.1
 * a green thread touches. */
#define WARM_KIB_PER_UNIT 5
#define KSTACK_KIB 16.0
#define NOUT 10

enum mode { GREEN, KTHREAD, PROCESS, NMODES };

static const char *const mode_name[NMODES] = {"green", "kthread", "process"};

struct crowd {
  enum mode mode;
  long n;
  weft_chan *ch;
  weft_gthread *g; /* green */
  weft_task *t;    /* kthread, process */
  long spawned;
  int err;
  _Atomic long *ready; /* in shared memory for processes */
  int *pids;           /* process: each child's pid, written by the child */
  int fd[2];           /* process: the pipe they block on */
};

/* ---- the units -------------------------------------------------------- */

static void *gwaiter(void *p) {
  weft_chan *ch = p;
  int v;

  weft_chan_recv(ch, &v); /* returns -EPIPE when the channel is closed */
  return NULL;
}

static struct crowd *C; /* the one crowd of this process */

static void *kwaiter(void *p) {
  int v;

  (void)p;
  atomic_fetch_add(C->ready, 1);
  weft_chan_recv(C->ch, &v);
  return NULL;
}

/* In the child process: runs until the parent closes the pipe. */
static void *pwaiter(void *p) {
  long i = (long)(intptr_t)p;
  char c;

  C->pids[i] = (int)getpid();
  close(C->fd[1]);
  atomic_fetch_add(C->ready, 1);
  while (read(C->fd[0], &c, 1) < 0 && errno == EINTR)
    ;
  return NULL;
}

/* Spawning from a green thread runs each new thread at once, until it
 * blocks in recv: the crowd never sits in a run queue. */
static void *spawner(void *p) {
  struct crowd *c = p;

  for (long i = 0; i < c->n; i++) {
    int rc = weft_spawn(&c->g[i], NULL, gwaiter, c->ch);

    if (rc < 0) {
      c->err = rc;
      fprintf(stderr, "bench: spawn of green thread %ld of %ld failed: %s\n",
              i + 1, c->n, weft_strerror(rc));
      break;
    }
    c->spawned++;
  }
  return NULL;
}

static void *releaser(void *p) {
  struct crowd *c = p;

  gb_check(weft_chan_close(c->ch), "weft_chan_close");
  for (long i = 0; i < c->spawned; i++)
    gb_join(c->g[i]);
  return NULL;
}

static void *nothing(void *p) { return p; }

static long settle_ms = 100;

static void settle(void) {
  struct timespec ts = {0, settle_ms * 1000000};

  nanosleep(&ts, NULL);
}

/* Starts the crowd; returns when every unit runs (or a start failed). */
static void crowd_start(struct crowd *c) {
  weft_mode m = c->mode == KTHREAD ? WEFT_MODE_KTHREAD : WEFT_MODE_PROCESS;

  if (c->mode == GREEN) {
    gb_join(gb_spawn(spawner, c));
    return;
  }
  for (long i = 0; i < c->n; i++) {
    int rc =
        weft_task_start(&c->t[i], m, c->mode == KTHREAD ? kwaiter : pwaiter,
                        (void *)(intptr_t)i);

    if (rc < 0) {
      c->err = rc;
      fprintf(stderr, "bench: start of %s %ld of %ld failed: %s\n",
              mode_name[c->mode], i + 1, c->n, weft_strerror(rc));
      break;
    }
    c->spawned++;
  }
  while (atomic_load(c->ready) < c->spawned)
    sched_yield();
}

static void crowd_release(struct crowd *c) {
  if (c->mode == GREEN) {
    gb_join(gb_spawn(releaser, c));
    return;
  }
  if (c->mode == KTHREAD)
    gb_check(weft_chan_close(c->ch), "weft_chan_close");
  else
    close(c->fd[1]);
  for (long i = 0; i < c->spawned; i++)
    gb_check(weft_task_wait(&c->t[i], NULL), "weft_task_wait");
}

/* ---- memory readings -------------------------------------------------- */

struct reading {
  double rss, pt, slab, kstack; /* KiB */
  double pss;                   /* process: anon + shmem Pss, KiB */
};

static double pss_of(const char *pid) {
  char path[64];
  long a, s;

  snprintf(path, sizeof(path), "/proc/%s/smaps_rollup", pid);
  a = bench_file_kib(path, "Pss_Anon");
  s = bench_file_kib(path, "Pss_Shmem");
  return (double)(a > 0 ? a : 0) + (double)(s > 0 ? s : 0);
}

static double pte_of(const char *pid) {
  char path[64];
  long k;

  snprintf(path, sizeof(path), "/proc/%s/status", pid);
  k = bench_file_kib(path, "VmPTE");
  return k > 0 ? (double)k : 0;
}

/* The system-wide figures first: reading the children's /proc files below
 * makes the kernel allocate for them. */
static void take(struct reading *r, const struct crowd *c, bool children) {
  r->slab = (double)bench_file_kib("/proc/meminfo", "SUnreclaim");
  r->kstack = (double)bench_file_kib("/proc/meminfo", "KernelStack");
  r->rss = (double)bench_rss_kib();
  r->pt = pte_of("self");
  r->pss = c->mode == PROCESS ? pss_of("self") : 0;
  if (children && c->mode == PROCESS)
    for (long i = 0; i < c->spawned; i++) {
      char pid[16];

      snprintf(pid, sizeof(pid), "%d", c->pids[i]);
      r->pss += pss_of(pid);
      r->pt += pte_of(pid);
    }
}

/* ---- the child -------------------------------------------------------- */

/* Child: args MODE N.  Writes NOUT figures: units running, ns per unit to
 * start, KiB per unit (user, pt, kstack, slab, KernelStack growth), memory
 * at the top (MiB), ms to start all, ms to release and wait for all. */
static int child(const struct bench_opts *o) {
  struct crowd *c = calloc(1, sizeof(*c));
  struct reading r0, r1;
  struct rlimit rl;
  int64_t t0, t1, t2, t3;
  double n, user, kst;
  int m;

  for (m = 0; m < NMODES; m++)
    if (strcmp(o->child_argv[0], mode_name[m]) == 0)
      break;
  if (!c || m == NMODES)
    return 2;
  C = c;
  if (o->quick)
    settle_ms = 50;
  c->mode = (enum mode)m;
  c->n = atol(o->child_argv[1]);
  c->ready = bench_shared(sizeof(*c->ready));
  /* A process task holds a pidfd until it is waited for. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  /* Touch the handles now, so that they do not count as the units'. */
  if (c->mode == GREEN) {
    c->g = calloc((size_t)c->n, sizeof(*c->g));
    if (!c->g)
      return 1;
    memset(c->g, 0xff, (size_t)c->n * sizeof(*c->g));
    memset(c->g, 0, (size_t)c->n * sizeof(*c->g));
  } else {
    c->t = calloc((size_t)c->n, sizeof(*c->t));
    if (!c->t)
      return 1;
    memset(c->t, 0xff, (size_t)c->n * sizeof(*c->t));
    memset(c->t, 0, (size_t)c->n * sizeof(*c->t));
  }
  if (c->mode == GREEN) {
    /* A one-page guard, as a program with a million threads would run:
     * the bench is built with -fstack-clash-protection (configure adds it
     * where the compiler has it), which probes every page of a large
     * frame, so one page cannot be jumped.  The default 1 MiB guard, for
     * code built without it, costs about 2 KiB of page tables more per
     * thread (weft.h, weft_config.guard_size). */
    weft_config cfg = {.guard_size = 4096};
    gb_check(weft_init(&cfg), "weft_init");
  }
  if (c->mode == PROCESS) {
    c->pids = bench_shared((size_t)c->n * sizeof(*c->pids));
    if (pipe(c->fd) != 0) {
      perror("bench: pipe");
      return 1;
    }
  } else {
    gb_check(weft_chan_open(&c->ch, sizeof(int), 0), "weft_chan_open");
  }

  /* Bring the parent to its resting size: the runtime, the reaper, the
   * first stack; one unit started and waited for. */
  if (c->mode == GREEN) {
    gb_join(gb_spawn(nothing, NULL));
  } else {
    weft_task t;

    gb_check(weft_task_start(
                 &t, c->mode == KTHREAD ? WEFT_MODE_KTHREAD : WEFT_MODE_PROCESS,
                 nothing, NULL),
             "weft_task_start");
    gb_check(weft_task_wait(&t, NULL), "weft_task_wait");
  }
  settle();
  take(&r0, c, false);
  t0 = bench_now();
  crowd_start(c);
  t1 = bench_now();
  settle();
  take(&r1, c, true);
  t2 = bench_now();
  crowd_release(c);
  t3 = bench_now();

  n = c->spawned ? (double)c->spawned : 1;
  user = c->mode == PROCESS ? r1.pss - r0.pss : r1.rss - r0.rss;
  kst = c->mode == GREEN ? 0 : KSTACK_KIB;
  bench_put(o, (double)c->spawned);
  bench_put(o, (double)(t1 - t0) / n);
  bench_put(o, user / n);
  bench_put(o, (r1.pt - r0.pt) / n);
  bench_put(o, kst);
  bench_put(o, (r1.slab - r0.slab) / n);
  bench_put(o, (r1.kstack - r0.kstack) / n);
  bench_put(o, (c->mode == PROCESS ? r1.pss : r1.rss) / 1024.0);
  bench_put(o, (double)(t1 - t0) / 1e6);
  bench_put(o, (double)(t3 - t2) / 1e6);
  if (c->mode == GREEN)
    gb_check(weft_shutdown(), "weft_shutdown");
  return c->err && c->mode != GREEN ? 1 : 0;
}

/* ---- the parent ------------------------------------------------------- */

#define MAX_RUNGS 8

struct rung {
  long n;
  int reps;
  double out[NOUT][BENCH_MAX_REPS];
  int got;
  long short_of;        /* a run in which not every unit could be started */
  struct bench_tally t; /* named after the figure the rung gives */
};

static struct rung ladder[NMODES][MAX_RUNGS];
static int nrungs[NMODES];

static void add_rung(enum mode m, long n, int reps) {
  struct rung *r = &ladder[m][nrungs[m]++];

  r->n = n;
  r->reps = reps;
  snprintf(r->t.name, sizeof(r->t.name), "scale.%s.%ld", mode_name[m], n);
}

static void run_rung(const struct bench_opts *o, enum mode m, struct rung *r) {
  char nstr[32];
  const char *args[3] = {mode_name[m], nstr, NULL};
  double out[NOUT];

  snprintf(nstr, sizeof(nstr), "%ld", r->n);
  if (r->n >= 10000 || m == PROCESS)
    bench_progress(o, "%ld %s", r->n,
                   m == GREEN     ? "green threads"
                   : m == KTHREAD ? "kernel threads"
                                  : "processes");
  if (bench_childv(o, &r->t, "crowd", out, NOUT, args) != NOUT)
    return;
  if (out[0] != (double)r->n) { /* not all started: a result for alive */
    r->short_of = r->n - (long)out[0];
    fprintf(stderr, "bench: %s: %.0f of %ld units started\n", mode_name[m],
            out[0], r->n);
    return;
  }
  for (int k = 0; k < NOUT; k++)
    r->out[k][r->got] = out[k];
  r->got++;
}

/* A child maps n * WARM_KIB_PER_UNIT KiB, touches every page and exits,
 * giving it back warm for the run that follows (see ALIVE_RUNS). */
static void warm(long n) {
  size_t len = (size_t)n * WARM_KIB_PER_UNIT * 1024;
  pid_t pid = fork();
  if (pid == 0) {
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    _exit(p == MAP_FAILED);
  }
  if (pid > 0)
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/* The Go reference of alive.1m (bench/ref/alive.go), when bench/run.sh
 * built it and named it in BENCH_ALIVE_GO: run right after each of weft's
 * alive.1m runs, so that the two take turns on the machine in the same
 * state (how much a first touch of memory costs drifts over a run: when
 * Go ran a minute after weft, the ratio moved by 2x between runs). */
struct go_ref {
  const char *bin;
  int got;
  double ms[ALIVE_RUNS], rss[ALIVE_RUNS];
  char why[200]; /* of the last failed run */
};

static void run_go(const struct bench_opts *o, struct go_ref *g, long n) {
  char cmd[600];
  long got_n = 0;
  double ms = 0, rss = 0;

  if (!g->bin || g->got == ALIVE_RUNS)
    return;
  bench_progress(o, "%ld goroutines (reference)", n);
  snprintf(cmd, sizeof(cmd), "'%s' %ld", g->bin, n);
  FILE *f = popen(cmd, "r");
  if (!f) {
    snprintf(g->why, sizeof(g->why), "could not run %s: %s", g->bin,
             strerror(errno));
    return;
  }
  int k = fscanf(f, "%ld %lf %lf", &got_n, &ms, &rss);
  int st = pclose(f);
  if (k != 3 || st != 0 || got_n != n || ms <= 0) {
    snprintf(g->why, sizeof(g->why), "%s %ld failed (status %d)", g->bin, n,
             st);
    return;
  }
  g->ms[g->got] = ms;
  g->rss[g->got++] = rss;
}

static void go_rows(const struct bench_opts *o, struct go_ref *g, long n) {
  char note[256];
  const char *ver = getenv("BENCH_ALIVE_GO_VERSION");

  if (!g->bin)
    return; /* bench/alive_go.sh wrote why not */
  if (!g->got) {
    bench_na_row(o, "alive.1m.go.ms", "ms", g->why[0] ? g->why : "not run");
    bench_na_row(o, "alive.1m.go.rss", "MiB", g->why[0] ? g->why : "not run");
    return;
  }
  int b = g->got > 1 && g->ms[1] < g->ms[0];
  char other[64] = "";
  if (g->got > 1)
    snprintf(other, sizeof(other), " (the other %.1f ms)", g->ms[!b]);
  snprintf(note, sizeof(note),
           "%sreference, not weft: %s; %ld goroutines; the faster of %d "
           "runs%s, in turns with weft's, each on warmed memory",
           n != ALIVE_FULL ? "quick: " : "", ver && *ver ? ver : "go", n,
           g->got, other);
  bench_row(o, "alive.1m.go.ms", NULL, &g->ms[b], 1, "ms", note);
  bench_row(o, "alive.1m.go.rss", NULL, &g->rss[b], 1, "MiB", note);
}

static double med(struct rung *r, int k) {
  double v[BENCH_MAX_REPS];

  memcpy(v, r->out[k], sizeof(double) * (size_t)r->got);
  return bench_median(v, r->got);
}

int main(int argc, char **argv) {
  struct bench_opts o;
  struct rung *idle[NMODES], *alive;
  char name[64], note[256];
  int rc = 0, reps3, lower;

  bench_init(&o, argc, argv, "memory per idle unit, and scaling", 600);
  if (o.child)
    return child(&o);
  /* A memory figure barely varies between runs, and each run maps and
   * touches many stacks: three runs are enough. */
  reps3 = o.reps < 3 ? o.reps : 3;
  /* Quick mode: one run for the rungs that give no mem.idle figure. */
  lower = o.quick ? 1 : reps3;
  for (long n = 10; n < (o.quick ? 10000 : 100000); n *= 10)
    add_rung(GREEN, n, lower);
  add_rung(GREEN, o.quick ? 10000 : 100000, reps3);
  add_rung(GREEN, o.quick ? ALIVE_FULL / 10 : ALIVE_FULL, ALIVE_RUNS);
  for (long n = 10; n < (o.quick ? 1000 : 10000); n *= 10)
    add_rung(KTHREAD, n, lower);
  add_rung(KTHREAD, o.quick ? 1000 : 10000, reps3);
  for (long n = 10; n < (o.quick ? 100 : 1000); n *= 10)
    add_rung(PROCESS, n, lower);
  add_rung(PROCESS, o.quick ? 100 : 1000, reps3);
  idle[GREEN] = &ladder[GREEN][nrungs[GREEN] - 2];
  idle[KTHREAD] = &ladder[KTHREAD][nrungs[KTHREAD] - 1];
  idle[PROCESS] = &ladder[PROCESS][nrungs[PROCESS] - 1];
  alive = &ladder[GREEN][nrungs[GREEN] - 1];
  for (int m = 0; m < NMODES; m++)
    snprintf(idle[m]->t.name, sizeof(idle[m]->t.name), "mem.idle.%s",
             mode_name[m]);
  snprintf(alive->t.name, sizeof(alive->t.name), "alive.1m.green");

  /* The modes take turns, rung by rung; alive.1m, the longest, last. */
  for (int rep = 0; rep < reps3; rep++)
    for (int i = 0; i < MAX_RUNGS; i++)
      for (int m = 0; m < NMODES; m++)
        if (i < nrungs[m] && &ladder[m][i] != alive && rep < ladder[m][i].reps)
          run_rung(&o, (enum mode)m, &ladder[m][i]);
  struct go_ref go = {.bin = getenv("BENCH_ALIVE_GO")};
  if (go.bin && !*go.bin)
    go.bin = NULL;
  for (int rep = 0; rep < alive->reps; rep++) {
    warm(alive->n);
    run_rung(&o, GREEN, alive);
    if (go.bin)
      warm(alive->n);
    run_go(&o, &go, alive->n);
  }

  bench_table(&o, "Memory per idle unit (KiB; user + page tables + kernel "
                  "stack)");
  for (int m = 0; m < NMODES; m++) {
    struct rung *r = idle[m];
    double tot[BENCH_MAX_REPS], part[BENCH_MAX_REPS];
    static const char *const parts[5] = {"user", "pt", "kstack", "slab",
                                         "kstack.meminfo"};

    for (int k = 0; k < r->got; k++)
      tot[k] = r->out[2][k] + r->out[3][k] + r->out[4][k];
    snprintf(note, sizeof(note),
             "%s%ld blocked; user %.2f + pt %.2f + kstack %.0f; slab %+.2f "
             "(not counted), KernelStack %+.2f (check)",
             o.quick ? "quick: " : "", r->n, med(r, 2), med(r, 3), med(r, 4),
             med(r, 5), med(r, 6));
    snprintf(name, sizeof(name), "mem.idle.%s", mode_name[m]);
    bench_row(&o, name, &r->t, tot, r->got, "KiB", note);
    /* A crowd that could not be started whole is no stall: it fails. */
    rc |= r->got + r->t.stalled != r->reps;
    for (int p = 0; p < 5; p++) {
      for (int k = 0; k < r->got; k++)
        part[k] = r->out[2 + p][k];
      snprintf(name, sizeof(name), "mem.idle.%s.%s", mode_name[m], parts[p]);
      bench_row(&o, name, &r->t, part, r->got, "KiB",
                p == 3   ? "system-wide SUnreclaim growth per unit"
                : p == 4 ? "system-wide KernelStack growth per unit"
                         : NULL);
    }
  }

  bench_table(&o, "Scaling: N units alive at once");
  for (int m = 0; m < NMODES; m++)
    for (int i = 0; i < nrungs[m]; i++) {
      struct rung *r = &ladder[m][i];
      double ns[BENCH_MAX_REPS], kib[BENCH_MAX_REPS];

      if (r == alive)
        continue; /* below, under its own names */
      for (int k = 0; k < r->got; k++) {
        ns[k] = r->out[1][k];
        kib[k] = r->out[2][k] + r->out[3][k] + r->out[4][k];
      }
      snprintf(note, sizeof(note), "start %.1f ms, release and wait %.1f ms",
               med(r, 8), med(r, 9));
      snprintf(name, sizeof(name), "scale.%s.%ld.ns", mode_name[m], r->n);
      bench_row(&o, name, &r->t, ns, r->got, "ns", note);
      snprintf(name, sizeof(name), "scale.%s.%ld.kib", mode_name[m], r->n);
      bench_row(&o, name, &r->t, kib, r->got, "KiB", NULL);
      rc |= r->got + r->t.stalled != r->reps;
    }

  /* The faster run's figures; the note gives the other's time. */
  bench_table(&o, "A million green threads alive at once");
  if (alive->got > 0) {
    int b = 0;
    char other[64] = "";

    for (int k = 1; k < alive->got; k++)
      if (alive->out[8][k] < alive->out[8][b])
        b = k;
    for (int k = 0; k < alive->got; k++)
      if (k != b)
        snprintf(other, sizeof(other), " (the other run %.0f ms)",
                 alive->out[8][k]);
    for (int k = 0; k < NOUT; k++)
      alive->out[k][0] = alive->out[k][b];
    double ns = alive->out[1][0];
    double kib = alive->out[2][0] + alive->out[3][0];

    snprintf(note, sizeof(note),
             "%s%ld alive; spawned in %.0f ms%s, RSS %.0f MiB, joined in "
             "%.0f ms; the faster of %d runs, each on warmed memory",
             alive->n != ALIVE_FULL ? "quick: " : "", alive->n,
             alive->out[8][0], other, alive->out[7][0], alive->out[9][0],
             alive->got);
    alive->out[0][0] = 1;
    bench_row(&o, "alive.1m.green", &alive->t, alive->out[0], 1, "bool", note);
    bench_row(&o, "alive.1m.green.ms", &alive->t, alive->out[8], 1, "ms",
              "time to spawn them, the faster of two runs");
    bench_row(&o, "alive.1m.green.rss", &alive->t, alive->out[7], 1, "MiB",
              "RSS when all alive");
    snprintf(name, sizeof(name), "scale.green.%ld.ns", alive->n);
    bench_row(&o, name, &alive->t, &ns, 1, "ns", "the alive.1m run");
    for (int i = 0; i < nrungs[GREEN]; i++) {
      struct rung *r = &ladder[GREEN][i];

      if (r->n == 10000 && r->got > 0 && med(r, 1) > 0) {
        double x = ns / med(r, 1);

        snprintf(note, sizeof(note),
                 "%.0f ns a thread with %ld alive, %.0f ns with 10,000",
                 ns, alive->n, med(r, 1));
        bench_row(&o, "alive.1m.green.scaling", &alive->t, &x, 1, "x", note);
      }
    }
    snprintf(name, sizeof(name), "scale.green.%ld.kib", alive->n);
    bench_row(&o, name, &alive->t, &kib, 1, "KiB", "the alive.1m run");
  } else if (alive->t.stalled) {
    bench_row(&o, "alive.1m.green", &alive->t, NULL, 0, "bool", NULL);
    bench_row(&o, "alive.1m.green.ms", &alive->t, NULL, 0, "ms", NULL);
    bench_row(&o, "alive.1m.green.rss", &alive->t, NULL, 0, "MiB", NULL);
    bench_row(&o, "alive.1m.green.scaling", &alive->t, NULL, 0, "x", NULL);
  } else {
    double zero = 0;

    if (alive->short_of)
      snprintf(note, sizeof(note), "%s%ld of %ld could be spawned",
               alive->n != ALIVE_FULL ? "quick: " : "",
               alive->n - alive->short_of, alive->n);
    else
      snprintf(note, sizeof(note), "the run failed");
    bench_row(&o, "alive.1m.green", NULL, &zero, 1, "bool", note);
    rc |= !alive->short_of;
  }
  go_rows(&o, &go, alive->n);
  return rc | bench_status();
}
