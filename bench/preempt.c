/*
 * preempt.c - what time slicing does for green threads that never yield,
 * and what it costs.
 *
 * A green thread that has run its slice (weft_config.slice_us) without
 * switching, while other work waits for its worker, is preempted (weft.h,
 * "Preemption").  Each figure is measured with preemption on and, where a
 * comparison says something, off (slice_us = -1), in turns within one
 * run.  Every run stops after a fixed time whatever the runtime does, so a
 * runtime that does not preempt gives figures too: those of cooperative
 * switching.
 *
 *   preempt.latency.p99      one worker, a 10 ms slice: a green thread
 *                            spins (pure computation, no weft call) for
 *                            SPIN_MS (quick: SPIN_MS_QUICK) while another
 *                            sleeps 1 ms in a loop (weft_sleep_until); the
 *                            99th percentile of how late each wake came
 *                            (the time it woke minus the deadline it asked
 *                            for), in ms, over the wakes of a sample that
 *                            were due while the spinner ran
 *   preempt.latency.max      the worst of the same wakes
 *   preempt.latency.off.p99  the same with preemption off: a wake waits
 *                            for the spinner's whole run
 *   preempt.cost             one worker, the shortest slice (1 ms): a
 *                            spinner stores a clock reading on every
 *                            iteration, and a second green thread, always
 *                            runnable, records on each run how long ago
 *                            the spinner's last reading was, then yields
 *                            back to it: the gap is one preemption, from
 *                            the spinner's last instruction to the next
 *                            thread's first; the median, in ns
 *   preempt.signal           reference, not weft: the floor of any
 *                            preemption by signal on this machine.  A
 *                            plain kernel thread (no runtime) stores a
 *                            clock reading on every iteration, and
 *                            another sends it SIGURG (tgkill) every
 *                            millisecond, as weft's monitor does: from
 *                            its last reading to its handler's first, the
 *                            median, in ns.  preempt.cost less this is
 *                            what weft adds: the checks, the queueing,
 *                            and the wake of the spare kernel thread
 *   preempt.resume           the other way: from that thread's yield to the
 *                            spinner's first iteration after it (the worker
 *                            handed back to the spinner's kernel thread)
 *   preempt.overhead         two workers, two green threads each, each
 *                            hashing through a 32 KiB table of its own for
 *                            a fixed count (about WORK_MS of CPU; the count
 *                            is calibrated once, before the runs): the CPU
 *                            time of the process (user + system, all its
 *                            threads: workers, spare kernel threads, the
 *                            monitor) with preemption on (10 ms slice)
 *                            against off, four runs a sample taking turns
 *                            (on, off, off, on: the machine's drift over
 *                            the sample cancels); (on - off) / off in %,
 *                            the median over the samples.  CPU
 *                            time, because the wall time of a run moves
 *                            by tens of percent with other work on two
 *                            CPUs (measured: 271 to 535 ms for the same
 *                            run, the CPU time 531 to 557 ms); the note
 *                            gives the wall time's figure too, which also
 *                            counts a worker left idle
 *
 * Each row's note gives the preemptions weft_stats counted (a sample's
 * median), the sanity check that the runs are what their names say: none
 * with preemption off, or where the runtime cannot preempt.  When no
 * preemption happened at all, preempt.cost and preempt.resume have no
 * gap to measure and are written n/a, with the reason.
 *
 * With --tsv, the wakes of every sample are written too, for the report's
 * plot (preempt.png, bench/preempt.gp):
 *   #series<TAB>preempt.wakes.on<TAB>due:late,due:late,...
 *   #series<TAB>preempt.wakes.off<TAB>...
 * due: when the wake was due, in ms since the spinner started; late: how
 * late it came, in ms.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gbench.h"

#define SLICE_US 10000    /* the default slice, given explicitly */
#define SLICE_MIN_US 1000 /* the shortest slice weft takes */
#define SLEEP_NS 1000000LL
#define SPIN_MS 300
#define SPIN_MS_QUICK 100
#define COST_MS 400
#define COST_MS_QUICK 150
#define WORK_MS 200
#define WORK_MS_QUICK 50
#define MAX_WAKES 4096
#define MAX_GAPS 200000
#define SIGNALS 400       /* preempt.signal: signals a sample */
#define SIGNALS_QUICK 100
#define TAB 4096 /* 64-bit entries: 32 KiB per thread */

/* ---- the work ------------------------------------------------------------ */

/* Hashes through tab for iters steps, each depending on the one before;
 * the table keeps the caches in play, as a real computation would. */
static uint64_t work(uint64_t *tab, long iters, uint64_t h) {
  for (long i = 0; i < iters; i++) {
    size_t k = h & (TAB - 1);

    h = (h ^ tab[k]) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 29;
    tab[k] = h;
  }
  return h;
}

static uint64_t *table(uint64_t seed) {
  uint64_t *tab = malloc(TAB * sizeof(*tab));

  if (!tab) {
    fprintf(stderr, "bench: out of memory\n");
    exit(1);
  }
  for (size_t i = 0; i < TAB; i++)
    tab[i] = seed + i * 0xBF58476D1CE4E5B9ULL;
  return tab;
}

/* The runtime, with preemption on at slice_us or off (slice_us < 0).  Off,
 * the hog monitor is off too: a thread that computes for its whole run is
 * what is measured there, not news. */
static void start(int workers, int slice_us) {
  weft_config cfg = {.workers = workers,
                     .slice_us = slice_us,
                     .hog_ms = slice_us < 0 ? -1 : 0};

  gb_check(weft_init(&cfg), "weft_init");
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

  return (x > y) - (x < y);
}

/* ---- latency ------------------------------------------------------------- */

struct lat {
  int64_t spin_ns;
  _Atomic int sleeper_up, started, done;
  _Atomic int64_t t0, t1; /* when the spinner started, and stopped */
  int64_t due[MAX_WAKES], late[MAX_WAKES];
  long n;
  int err;
};

static void *lat_spinner(void *p) {
  struct lat *l = p;
  uint64_t *tab = table(1), h = 1;
  int64_t t0 = bench_now(), end = t0 + l->spin_ns;

  atomic_store(&l->t0, t0);
  atomic_store(&l->started, 1);
  do
    h = work(tab, 256, h);
  while (bench_now() < end);
  bench_keep(h);
  atomic_store(&l->t1, bench_now());
  atomic_store(&l->done, 1);
  free(tab);
  return NULL;
}

static void *lat_sleeper(void *p) {
  struct lat *l = p;

  atomic_store(&l->sleeper_up, 1);
  /* A sleep that began before the spinner ended counts, however late it
   * woke: with preemption off, a run's one wake is due 1 ms in and comes
   * after the spinner's whole run. */
  while (!atomic_load(&l->done) && l->n < MAX_WAKES) {
    int64_t due = weft_now() + SLEEP_NS, now;
    int rc = weft_sleep_until(due);

    now = weft_now();
    if (rc < 0) {
      fprintf(stderr, "bench: weft_sleep_until: %s\n", weft_strerror(rc));
      l->err = rc;
      return NULL;
    }
    /* Only wakes due while the spinner ran (its end is checked once it
     * is known). */
    if (atomic_load(&l->started) && due >= atomic_load(&l->t0)) {
      l->due[l->n] = due;
      l->late[l->n++] = now - due;
    }
  }
  return NULL;
}

/* Child "latency MODE SPIN_MS WAKES_FD": writes the 99th percentile and
 * the worst lateness (ms), the wakes, and the preemptions and deferrals
 * weft_stats counted; each wake, "due:late" in ms, goes to WAKES_FD. */
static int lat_child(const struct bench_opts *o) {
  struct lat *l;
  int64_t sorted[MAX_WAKES];
  weft_gthread ts, tp;
  uint64_t pre, def;
  bool on;
  int fd;
  FILE *f;

  if (o->child_argc < 3 || !(l = calloc(1, sizeof(*l))))
    return 2;
  on = strcmp(o->child_argv[0], "on") == 0;
  l->spin_ns = atol(o->child_argv[1]) * 1000000LL;
  fd = atoi(o->child_argv[2]);
  start(1, on ? SLICE_US : -1);
  ts = gb_spawn(lat_sleeper, l);
  for (int k = 0; !atomic_load(&l->sleeper_up) && k < 100000; k++)
    usleep(50);
  tp = gb_spawn(lat_spinner, l);
  gb_join(tp);
  gb_join(ts);
  pre = gb_stat(preemptions);
  def = gb_stat(preempt_deferred);
  gb_check(weft_shutdown(), "weft_shutdown");
  {
    long k = 0;

    for (long i = 0; i < l->n; i++)
      if (l->due[i] < l->t1) {
        l->due[k] = l->due[i] - l->t0;
        l->late[k++] = l->late[i];
      }
    l->n = k;
  }
  if (l->err || l->n == 0) {
    fprintf(stderr, "bench: latency: no wake measured\n");
    return 1;
  }
  /* The wakes for the plot: the file is the parent's, shared with every
   * retry, so it is emptied first. */
  if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
      !(f = fdopen(fd, "w"))) {
    perror("bench: wakes file");
    return 1;
  }
  for (long i = 0; i < l->n; i++)
    fprintf(f, "%s%.3f:%.4f", i ? "," : "", (double)l->due[i] / 1e6,
            (double)l->late[i] / 1e6);
  if (fclose(f) != 0) {
    perror("bench: wakes file");
    return 1;
  }
  memcpy(sorted, l->late, sizeof(*sorted) * (size_t)l->n);
  qsort(sorted, (size_t)l->n, sizeof(*sorted), cmp_i64);
  bench_put(o, (double)sorted[l->n * 99 / 100] / 1e6);
  bench_put(o, (double)sorted[l->n - 1] / 1e6);
  bench_put(o, (double)l->n);
  bench_put(o, (double)pre);
  bench_put(o, (double)def);
  free(l);
  return 0;
}

/* ---- cost ---------------------------------------------------------------- */

struct cost {
  int64_t spin_ns;
  _Atomic int64_t last;   /* the spinner's latest clock reading */
  _Atomic int64_t ystamp; /* the other thread's reading before its yield */
  _Atomic uint64_t yseq;  /* its yields */
  _Atomic int started, done;
  int64_t *gap, *res;
  long ngap, nres;
};

static void *cost_spinner(void *p) {
  struct cost *c = p;
  uint64_t seen = atomic_load(&c->yseq);
  int64_t end = bench_now() + c->spin_ns;

  atomic_store(&c->last, bench_now());
  atomic_store(&c->started, 1);
  for (;;) {
    /* The count before the clock: a new count means the yield came
     * before this reading, never after. */
    uint64_t s = atomic_load_explicit(&c->yseq, memory_order_acquire);
    int64_t t = bench_now();

    atomic_store_explicit(&c->last, t, memory_order_relaxed);
    if (s != seen) {
      seen = s;
      if (c->nres < MAX_GAPS)
        c->res[c->nres++] =
            t - atomic_load_explicit(&c->ystamp, memory_order_relaxed);
    }
    if (t >= end)
      break;
  }
  atomic_store(&c->done, 1);
  return NULL;
}

/* Runs only when the spinner does not: on one worker, while the spinner
 * has started and not finished, that is after a preemption. */
static void *cost_probe(void *p) {
  struct cost *c = p;

  while (!atomic_load(&c->done)) {
    int64_t t = bench_now();

    if (atomic_load(&c->started) && c->ngap < MAX_GAPS)
      c->gap[c->ngap++] =
          t - atomic_load_explicit(&c->last, memory_order_relaxed);
    atomic_store_explicit(&c->ystamp, bench_now(), memory_order_relaxed);
    atomic_fetch_add_explicit(&c->yseq, 1, memory_order_release);
    weft_yield();
  }
  return NULL;
}

static double median_i64(int64_t *v, long n) {
  if (n <= 0)
    return NAN;
  qsort(v, (size_t)n, sizeof(*v), cmp_i64);
  return n % 2 ? (double)v[n / 2] : (double)(v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Child "cost SPIN_MS": writes the median gap and resume (ns; NaN when no
 * preemption happened), the gaps, and the preemptions and deferrals
 * weft_stats counted. */
static int cost_child(const struct bench_opts *o) {
  struct cost *c = calloc(1, sizeof(*c));
  weft_gthread ts, tp;
  uint64_t pre, def;

  if (o->child_argc < 1)
    return 2;
  if (!c || !(c->gap = calloc(MAX_GAPS, sizeof(int64_t))) ||
      !(c->res = calloc(MAX_GAPS, sizeof(int64_t))))
    return 1;
  c->spin_ns = atol(o->child_argv[0]) * 1000000LL;
  start(1, SLICE_MIN_US);
  ts = gb_spawn(cost_spinner, c);
  tp = gb_spawn(cost_probe, c);
  gb_join(ts);
  gb_join(tp);
  pre = gb_stat(preemptions);
  def = gb_stat(preempt_deferred);
  gb_check(weft_shutdown(), "weft_shutdown");
  bench_put(o, median_i64(c->gap, c->ngap));
  bench_put(o, median_i64(c->res, c->nres));
  bench_put(o, (double)c->ngap);
  bench_put(o, (double)pre);
  bench_put(o, (double)def);
  return 0;
}

/* ---- a bare signal (reference) ------------------------------------------ */

/* The spinner and its handler share these: one kernel thread's only. */
static struct {
  _Atomic int64_t last; /* the spinner's latest clock reading */
  _Atomic pid_t tid;
  _Atomic int stop;
  _Atomic long got; /* signals handled */
  int64_t gap[SIGNALS];
} sig;

static void sig_handler(int signo) {
  int64_t t = bench_now();
  long k = atomic_load_explicit(&sig.got, memory_order_relaxed);

  (void)signo;
  if (k < SIGNALS)
    sig.gap[k] = t - atomic_load_explicit(&sig.last, memory_order_relaxed);
  atomic_store_explicit(&sig.got, k + 1, memory_order_release);
}

static void *sig_spinner(void *p) {
  (void)p;
  atomic_store(&sig.tid, (pid_t)syscall(SYS_gettid));
  while (!atomic_load_explicit(&sig.stop, memory_order_relaxed))
    atomic_store_explicit(&sig.last, bench_now(), memory_order_relaxed);
  return NULL;
}

/* Child "signal N": N signals to a computing kernel thread, one every
 * millisecond from this one, neither pinned (as weft's monitor and
 * workers are not); writes the median gap in ns. */
static int signal_child(const struct bench_opts *o) {
  struct sigaction sa = {.sa_handler = sig_handler};
  struct timespec ms = {0, 1000000};
  long n = o->child_argc > 0 ? atol(o->child_argv[0]) : 0;
  pthread_t t;

  if (n < 1 || n > SIGNALS)
    return 2;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGURG, &sa, NULL) != 0 ||
      pthread_create(&t, NULL, sig_spinner, NULL) != 0)
    return 1;
  while (!atomic_load(&sig.tid))
    nanosleep(&ms, NULL);
  for (long k = 0; k < n; k++) {
    nanosleep(&ms, NULL);
    syscall(SYS_tgkill, getpid(), atomic_load(&sig.tid), SIGURG);
    while (atomic_load_explicit(&sig.got, memory_order_acquire) <= k)
      ;
  }
  atomic_store(&sig.stop, 1);
  pthread_join(t, NULL);
  bench_put(o, median_i64(sig.gap, n));
  return 0;
}

/* ---- overhead ------------------------------------------------------------ */

struct job {
  long iters;
  uint64_t seed, h;
};

static void *worker_fn(void *p) {
  struct job *j = p;
  uint64_t *tab = table(j->seed);

  j->h = work(tab, j->iters, j->seed);
  free(tab);
  return NULL;
}

/* Child "work MODE ITERS": two workers, four green threads of ITERS steps;
 * writes the wall time and the CPU time of the process (ms), and the
 * preemptions and deferrals weft_stats counted. */
static int work_child(const struct bench_opts *o) {
  struct job j[4];
  weft_gthread t[4];
  int64_t t0, t1, c0, c1;

  if (o->child_argc < 2)
    return 2;
  start(2, strcmp(o->child_argv[0], "on") == 0 ? SLICE_US : -1);
  c0 = bench_cpu_ns();
  t0 = bench_now();
  for (int i = 0; i < 4; i++) {
    j[i] = (struct job){.iters = atol(o->child_argv[1]), .seed = 7 + i};
    t[i] = gb_spawn(worker_fn, &j[i]);
  }
  for (int i = 0; i < 4; i++)
    gb_join(t[i]);
  t1 = bench_now();
  c1 = bench_cpu_ns();
  for (int i = 0; i < 4; i++)
    bench_keep(j[i].h);
  bench_put(o, (double)(t1 - t0) / 1e6);
  bench_put(o, (double)(c1 - c0) / 1e6);
  bench_put(o, (double)gb_stat(preemptions));
  bench_put(o, (double)gb_stat(preempt_deferred));
  gb_check(weft_shutdown(), "weft_shutdown");
  return 0;
}

/* Steps of work() that take about ms of CPU here (in this process, before
 * any runtime starts): from the fastest of 5 timed runs of 10 ms or more,
 * so that other work on the machine meanwhile does not shrink the count. */
static long calibrate(int ms) {
  uint64_t *tab = table(3), h = 3;
  long n = 1 << 16;
  int64_t best = INT64_MAX;

  for (;;) {
    int64_t t = bench_now();

    h = work(tab, n, h);
    t = bench_now() - t;
    if (t >= 10000000 || n >= (1L << 40))
      break;
    n *= 2;
  }
  for (int k = 0; k < 5; k++) {
    int64_t t = bench_now();

    h = work(tab, n, h);
    t = bench_now() - t;
    if (t < best)
      best = t;
  }
  bench_keep(h);
  free(tab);
  return (long)((double)n * ms * 1e6 / (double)best);
}

/* ---- the parent ---------------------------------------------------------- */

/* The whole of file fd, appended to *s (comma-separated). */
static void take_wakes(int fd, char **s, size_t *len) {
  struct stat st;
  char *p;

  if (fstat(fd, &st) != 0 || st.st_size <= 0)
    return;
  p = realloc(*s, *len + (size_t)st.st_size + 2);
  if (!p)
    return;
  *s = p;
  if (*len)
    p[(*len)++] = ',';
  if (pread(fd, p + *len, (size_t)st.st_size, 0) == st.st_size)
    *len += (size_t)st.st_size;
  else if (*len)
    (*len)--;
  p[*len] = '\0';
}

static void series(const struct bench_opts *o, const char *name,
                   const char *s) {
  FILE *f;

  if (!o->tsv || !s)
    return;
  if ((f = fopen(o->tsv, "a"))) {
    fprintf(f, "#series\t%s\t%s\n", name, s);
    fclose(f);
  }
}

int main(int argc, char **argv) {
  struct bench_opts o;
  /* Latency, [0] on, [1] off: p99, max, wakes, preemptions, deferrals. */
  double lat[2][5][BENCH_MAX_REPS];
  struct bench_tally tl[2] = {{.name = "preempt.latency.p99"},
                              {.name = "preempt.latency.off.p99"}};
  int nlat[2] = {0, 0};
  char *wakes[2] = {NULL, NULL};
  size_t wlen[2] = {0, 0};
  /* Cost: gap, resume, gaps, preemptions, deferrals. */
  double cost[5][BENCH_MAX_REPS], gaps[BENCH_MAX_REPS], res[BENCH_MAX_REPS],
      rate[BENCH_MAX_REPS];
  struct bench_tally tc = {.name = "preempt.cost"},
                     ts = {.name = "preempt.signal"};
  double sgap[BENCH_MAX_REPS];
  int ncost = 0, ngap = 0, nres = 0, nsig = 0;
  /* Overhead: each run's wall and CPU time and preemptions, per mode, and
   * each sample's figure (CPU time; wall time for the note). */
  double wall[2][2 * BENCH_MAX_REPS], cpu[2][2 * BENCH_MAX_REPS],
      wpre[2][2 * BENCH_MAX_REPS], over[BENCH_MAX_REPS], wover[BENCH_MAX_REPS];
  struct bench_tally tw = {.name = "preempt.overhead"};
  int nwall[2] = {0, 0}, nover = 0;
  char spin[16], cspin[16], nsigs[16], iters[32], fdstr[16], note[320];
  int spin_ms, cost_ms, fd;
  long n;

  bench_init(&o, argc, argv, "preemption: latency, cost and overhead", 60);
  if (o.child) {
    if (strcmp(o.child, "latency") == 0)
      return lat_child(&o);
    if (strcmp(o.child, "cost") == 0)
      return cost_child(&o);
    if (strcmp(o.child, "work") == 0)
      return work_child(&o);
    if (strcmp(o.child, "signal") == 0)
      return signal_child(&o);
    return 2;
  }
  spin_ms = o.quick ? SPIN_MS_QUICK : SPIN_MS;
  cost_ms = o.quick ? COST_MS_QUICK : COST_MS;
  snprintf(spin, sizeof(spin), "%d", spin_ms);
  snprintf(cspin, sizeof(cspin), "%d", cost_ms);
  snprintf(nsigs, sizeof(nsigs), "%d", o.quick ? SIGNALS_QUICK : SIGNALS);
  /* The children write their wakes here (it is inherited through exec). */
  fd = memfd_create("preempt-wakes", 0);
  if (fd < 0) {
    perror("bench: memfd_create");
    return 1;
  }
  snprintf(fdstr, sizeof(fdstr), "%d", fd);

  /* 1. Latency, on and off taking turns. */
  for (int r = 0; r < o.reps; r++)
    for (int m = 0; m < 2; m++) {
      const char *args[4] = {m ? "off" : "on", spin, fdstr, NULL};
      double out[5];

      if (bench_childv(&o, &tl[m], "latency", out, 5, args) == 5) {
        for (int k = 0; k < 5; k++)
          lat[m][k][nlat[m]] = out[k];
        nlat[m]++;
        take_wakes(fd, &wakes[m], &wlen[m]);
      }
    }

  /* 2. Cost. */
  for (int r = 0; r < o.reps; r++) {
    double out[5];

    if (bench_child(&o, &tc, "cost", out, 5, cspin, NULL) == 5) {
      for (int k = 0; k < 5; k++)
        cost[k][ncost] = out[k];
      rate[ncost] = out[3] / (cost_ms / 1000.0);
      ncost++;
      if (!isnan(out[0]))
        gaps[ngap++] = out[0];
      if (!isnan(out[1]))
        res[nres++] = out[1];
    }
  }

  /* The signal alone, taking turns with the cost's runs would be better
   * still; right after them is close enough for a floor. */
  for (int r = 0; r < o.reps; r++) {
    double out[1];

    if (bench_child(&o, &ts, "signal", out, 1, nsigs, NULL) == 1)
      sgap[nsig++] = out[0];
  }

  /* 3. Overhead: on, off, off, on in each sample, so that the machine's
   * drift (its speed moves by a few percent over seconds) cancels. */
  n = calibrate(o.quick ? WORK_MS_QUICK : WORK_MS);
  snprintf(iters, sizeof(iters), "%ld", n);
  for (int r = 0; r < o.reps; r++) {
    double sum[2][2] = {{0, 0}, {0, 0}}; /* [mode][wall, cpu] */
    int got[2] = {0, 0};

    for (int k = 0; k < 4; k++) {
      int m = k == 1 || k == 2; /* 1: off */
      const char *args[3] = {m ? "off" : "on", iters, NULL};
      double out[4];

      if (bench_childv(&o, &tw, "work", out, 4, args) == 4) {
        wall[m][nwall[m]] = out[0];
        cpu[m][nwall[m]] = out[1];
        wpre[m][nwall[m]++] = out[2];
        sum[m][0] += out[0];
        sum[m][1] += out[1];
        got[m]++;
      }
    }
    if (got[0] && got[1]) {
      over[nover] = (sum[0][1] / got[0] - sum[1][1] / got[1]) /
                    (sum[1][1] / got[1]) * 100.0;
      wover[nover++] = (sum[0][0] / got[0] - sum[1][0] / got[1]) /
                       (sum[1][0] / got[1]) * 100.0;
    }
  }

  bench_table(&o, "Preemption: a sleeper beside a spinner, the cost of one "
                  "preemption, compute-bound overhead");
  {
    /* One child gives p99 and max: the same tally, under the other name. */
    struct bench_tally tmax = tl[0];
    double med_n[2], med_pre[2];

    snprintf(tmax.name, sizeof(tmax.name), "%s", "preempt.latency.max");
    for (int m = 0; m < 2; m++) {
      double c[BENCH_MAX_REPS];

      memcpy(c, lat[m][2], sizeof(c));
      med_n[m] = bench_median(c, nlat[m]);
      memcpy(c, lat[m][3], sizeof(c));
      med_pre[m] = bench_median(c, nlat[m]);
    }
    snprintf(note, sizeof(note),
             "the 99th percentile of %.0f wakes a sample (1 ms sleeps) "
             "beside a %d ms spinner, 1 worker, %d ms slice; %.0f "
             "preemptions a sample (weft_stats)",
             med_n[0], spin_ms, SLICE_US / 1000, med_pre[0]);
    bench_row(&o, "preempt.latency.p99", &tl[0], lat[0][0], nlat[0], "ms",
              note);
    snprintf(note, sizeof(note), "the worst of the same wakes");
    bench_row(&o, "preempt.latency.max", &tmax, lat[0][1], nlat[0], "ms", note);
    snprintf(note, sizeof(note),
             "preemption off: %.0f wakes a sample, late by the spinner's "
             "run (%d ms); %.0f preemptions a sample (weft_stats)",
             med_n[1], spin_ms, med_pre[1]);
    bench_row(&o, "preempt.latency.off.p99", &tl[1], lat[1][0], nlat[1], "ms",
              note);
  }
  {
    double c[BENCH_MAX_REPS], med_pre, med_def, med_rate;
    struct bench_tally tr = tc;

    snprintf(tr.name, sizeof(tr.name), "%s", "preempt.resume");
    memcpy(c, cost[3], sizeof(c));
    med_pre = bench_median(c, ncost);
    memcpy(c, cost[4], sizeof(c));
    med_def = bench_median(c, ncost);
    memcpy(c, rate, sizeof(c));
    med_rate = bench_median(c, ncost);
    memcpy(c, cost[2], sizeof(c));
    if (ngap > 0) {
      snprintf(note, sizeof(note),
               "median of %.0f preemptions a sample, 1 worker, %d ms slice: "
               "the spinner's last clock reading to the next thread's "
               "first; %.0f preemptions/s, %.0f deferred a sample "
               "(weft_stats)",
               bench_median(c, ncost), SLICE_MIN_US / 1000, med_rate, med_def);
      bench_row(&o, "preempt.cost", &tc, gaps, ngap, "ns", note);
    } else if (ncost > 0) {
      snprintf(note, sizeof(note),
               "no preemption seen in %d runs of %d ms (weft_stats counted "
               "%.0f a run)%s",
               ncost, cost_ms, med_pre,
               med_pre > 0 ? "" : ": the runtime does not preempt here");
      bench_na_row(&o, "preempt.cost", "ns", note);
    } else {
      bench_row(&o, "preempt.cost", &tc, gaps, 0, "ns", NULL);
    }
    snprintf(note, sizeof(note),
             "reference, not weft: a signal to a kernel thread computing "
             "on another CPU (tgkill every ms, %s a sample), its last clock "
             "reading to its handler's first, the median: the floor of any "
             "preemption by signal here",
             nsigs);
    bench_row(&o, "preempt.signal", &ts, sgap, nsig, "ns", note);
    if (nres > 0) {
      snprintf(note, sizeof(note),
               "median: the other thread's weft_yield to the spinner's "
               "first step after it (the worker handed back)");
      bench_row(&o, "preempt.resume", &tr, res, nres, "ns", note);
    } else if (ncost > 0) {
      snprintf(note, sizeof(note),
               "no resume after a preemption in %d runs of %d ms (weft_stats "
               "counted %.0f preemptions a run)%s",
               ncost, cost_ms, med_pre,
               med_pre > 0 ? "" : ": the runtime does not preempt here");
      bench_na_row(&o, "preempt.resume", "ns", note);
    } else {
      bench_row(&o, "preempt.resume", &tr, res, 0, "ns", NULL);
    }
  }
  {
    double c[2][2 * BENCH_MAX_REPS], w[2][2 * BENCH_MAX_REPS],
        p[2][2 * BENCH_MAX_REPS], u[BENCH_MAX_REPS];

    memcpy(c, cpu, sizeof(c));
    memcpy(w, wall, sizeof(w));
    memcpy(p, wpre, sizeof(p));
    memcpy(u, wover, sizeof(u));
    snprintf(note, sizeof(note),
             "(on - off) / off of the CPU time, 2 workers x 2 threads of "
             "%ld steps, 4 runs a sample: on %.0f ms, off %.0f ms a run; "
             "wall time on %.0f ms, off %.0f ms, %+.2f %%; %.0f preemptions "
             "a run on, %.0f off (weft_stats)",
             n, bench_median(c[0], nwall[0]), bench_median(c[1], nwall[1]),
             bench_median(w[0], nwall[0]), bench_median(w[1], nwall[1]),
             bench_median(u, nover), bench_median(p[0], nwall[0]),
             bench_median(p[1], nwall[1]));
    bench_row(&o, "preempt.overhead", &tw, over, nover, "%", note);
  }
  series(&o, "preempt.wakes.on", wakes[0]);
  series(&o, "preempt.wakes.off", wakes[1]);
  free(wakes[0]);
  free(wakes[1]);
  close(fd);
  return bench_status();
}
