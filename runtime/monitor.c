/*
 * monitor.c - the hog detector: a kernel thread that watches the workers
 * and reports a green thread that runs too long without switching.
 *
 * weft does not preempt, so one green thread that computes for 50 ms holds
 * up every other green thread queued on its worker for 50 ms.  The monitor
 * samples each worker's running green thread and switch counter a few
 * times per threshold; when both stay the same while the worker spends
 * more than the threshold of CPU time, it prints
 *   weft: green thread 17 "conn-3" ran 52 ms without yielding on worker 1
 * once, and when the thread finally switches, a second line with the whole
 * time if it ran more than twice the threshold.  A green thread that makes
 * a blocking system call stalls its worker as much, without using the CPU;
 * when the worker has been asleep in the kernel for most of the threshold
 * the line says so:
 *   weft: green thread 17 "conn-3" blocked 52 ms in a system call without
 *   yielding on worker 1
 * Time the worker spent waiting for a CPU (a loaded machine) is neither:
 * the green thread is not at fault, and is not reported.
 *
 * Sampling costs the workers nothing (no clock reads on the switch path);
 * the figure is accurate to a quarter of the threshold.
 *
 * The threshold is weft_config.hog_ms, else WEFT_HOG_MS, else 100 ms; a
 * negative value (or WEFT_HOG_MS=0) turns the monitor off.
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "monitor.h"
#include "rt.h"
#include "worker.h"

#define DEFAULT_HOG_MS 100

enum hog { HOG_NONE, HOG_RAN, HOG_BLOCKED };

struct watch {
  struct weft__g *g;
  uint64_t id; /* g's id and name when reported: g may be gone later */
  char name[WEFT_NAME_MAX];
  uint64_t switches;
  int64_t since, cpu_since; /* wall clock and the worker's CPU clock */
  clockid_t clk;            /* the worker's CPU clock */
  bool has_clk;
  enum hog reported;
};

static struct {
  pthread_t thread;
  bool running;
  _Atomic uint32_t stop; /* futex */
  int64_t threshold_ns;
  struct watch *watch;
  int n;
} mon;

static void report(struct weft__worker *w, struct watch *s, int64_t ns,
                   enum hog kind, bool in_all) {
  fprintf(stderr,
          "weft: green thread %llu \"%s\" %s%s %lld ms%s without yielding "
          "on worker %d\n",
          (unsigned long long)s->id, s->name,
          kind == HOG_RAN ? "ran" : "blocked", in_all ? " in all" : "",
          (long long)(ns / 1000000),
          kind == HOG_BLOCKED ? " in a system call" : "", w->index);
}

/* The worker's CPU time; its wall time when that clock is unavailable. */
static int64_t cpu_now(const struct watch *s, int64_t wall) {
  struct timespec ts;
  if (!s->has_clk || clock_gettime(s->clk, &ts))
    return wall;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether the worker thread is asleep in the kernel (state S or D in
 * /proc), as opposed to running or waiting for a CPU. */
static bool asleep_in_kernel(const struct weft__worker *w) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)w->kt->tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the name may hold spaces */
  return p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D');
}

/* The descriptor reads below are racy on purpose (a diagnostic of a
 * thread that may be anywhere in its life); ThreadSanitizer is told so. */
#if WEFT_TSAN
void AnnotateIgnoreReadsBegin(const char *file, int line);
void AnnotateIgnoreReadsEnd(const char *file, int line);
static void tsan_ignore_reads(bool on) {
  if (on)
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  else
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
}
#else
static void tsan_ignore_reads(bool on) { (void)on; }
#endif

static void *monitor_main(void *arg) {
  (void)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  int64_t period = mon.threshold_ns / 4;
  int64_t limit = mon.threshold_ns;
  while (!ld_acquire(&mon.stop)) {
    weft__futex_wait(&mon.stop, 0, weft__now() + period);
    int64_t now = weft__now();
    for (int i = 0; i < mon.n; i++) {
      struct weft__worker *w = weft__rt.w[i];
      struct watch *s = &mon.watch[i];
      struct weft__g *g = __atomic_load_n(&w->cur, __ATOMIC_RELAXED);
      uint64_t sw = __atomic_load_n(&w->st.switches, __ATOMIC_RELAXED) +
                    __atomic_load_n(&w->lone_yields, __ATOMIC_RELAXED);
      int64_t cpu = cpu_now(s, now);
      int64_t wall = now - s->since, ran = cpu - s->cpu_since;
      if (g && g == s->g && sw == s->switches) {
        enum hog kind = HOG_NONE;
        if (s->reported)
          continue;
        if (ran >= limit)
          kind = HOG_RAN;
        else if (wall >= limit && ran < wall / 2 && asleep_in_kernel(w))
          kind = HOG_BLOCKED;
        if (kind == HOG_NONE)
          continue;
        /* g is running and its stack is never unmapped: reading its
         * descriptor is safe, if racy. */
        tsan_ignore_reads(true);
        s->id = __atomic_load_n(&g->id, __ATOMIC_RELAXED);
        memcpy(s->name, g->name, sizeof s->name);
        tsan_ignore_reads(false);
        s->name[sizeof s->name - 1] = 0;
        report(w, s, kind == HOG_RAN ? ran : wall, kind, false);
        __atomic_fetch_add(&w->st.hogs, 1, __ATOMIC_RELAXED);
        s->reported = kind;
        continue;
      }
      int64_t total = s->reported == HOG_RAN ? ran : wall;
      if (s->reported && total >= 2 * limit)
        report(w, s, total, s->reported, true);
      s->g = g;
      s->switches = sw;
      s->since = now;
      s->cpu_since = cpu;
      s->reported = HOG_NONE;
    }
  }
  return NULL;
}

int weft__monitor_start(const weft_config *cfg) {
  long ms = cfg && cfg->hog_ms ? cfg->hog_ms : 0;
  if (!ms) {
    const char *e = getenv("WEFT_HOG_MS");
    ms = e && *e ? strtol(e, NULL, 10) : DEFAULT_HOG_MS;
    if (ms == 0)
      ms = -1;
  }
  if (ms < 0)
    return 0;
  mon.threshold_ns = ms * 1000000LL;
  mon.n = weft__rt.nworkers;
  mon.watch = weft__calloc((size_t)mon.n, sizeof(*mon.watch));
  if (!mon.watch)
    return -ENOMEM;
  for (int i = 0; i < mon.n; i++)
    mon.watch[i].has_clk =
        pthread_getcpuclockid(weft__rt.w[i]->kt->thread, &mon.watch[i].clk) ==
        0;
  atomic_store(&mon.stop, 0);
  int r = weft__pthread_create(&mon.thread, NULL, monitor_main, NULL);
  if (r) {
    free(mon.watch);
    mon.watch = NULL;
    return -r;
  }
  mon.running = true;
  return 0;
}

void weft__monitor_stop(void) {
  if (!mon.running)
    return;
  st_release(&mon.stop, 1);
  weft__futex_wake(&mon.stop, 1);
  pthread_join(mon.thread, NULL);
  free(mon.watch);
  mon.watch = NULL;
  mon.running = false;
}

void weft__monitor_fork_child(void) {
  mon.running = false; /* its thread did not survive the fork */
  mon.watch = NULL;
}
