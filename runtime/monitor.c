/*
 * monitor.c - the monitor: a kernel thread that watches the workers, asks
 * for the preemption of a green thread that has run its time slice
 * (preempt.c), and reports one that holds its worker too long and could
 * not be preempted.
 *
 * Preemption.  Each tick (half a slice), a worker whose running
 * green thread and switch count are the same as a slice ago, while other
 * work waits for it (its queues, the global queue, a due timer of its
 * own, green threads waiting on descriptors), is asked to preempt it, if
 * its kernel thread is running or waiting for a futex (a lock): a thread
 * asleep in another system call is not interrupted (see weft.h).
 * Spare kernel threads are started here, before the asks that need them.
 * A run is timed from the tick that first sees it, so it gets between one
 * slice and one and a half, but for a run whose start the worker marked
 * (a preempted thread going on, the first run after the worker was
 * parked: weft__mark_run), which is timed from that start; the monitor
 * then wakes when its slice ends, between ticks.  Without the mark, a thread
 * preempted again and again would run a slice and a half every time:
 * each of its resumes falls just after the tick that asked for the
 * preemption before.
 *
 * Hogs.  A green thread that computes for 50 ms holds up every other
 * green thread queued on its worker for 50 ms, unless it is preempted.
 * The monitor samples each worker's running green thread and switch
 * counter; when both stay the same while the worker spends more than the
 * threshold of CPU time, it prints
 *   weft: green thread 17 "conn-3" ran 52 ms without yielding on worker 1
 * once, and when the thread finally switches, a second line with the whole
 * time if it ran more than twice the threshold.  With preemption on, only
 * a thread that could not be preempted when other work waited for its
 * worker (in a non-preemptible region, inside weft) is reported: a
 * preempted one switches (its worker does), and one that keeps an
 * otherwise idle worker stalls nobody.  A green
 * thread that makes a blocking system call stalls its worker as much,
 * without using the CPU; when the worker has been asleep in the kernel for
 * most of the threshold the line says so:
 *   weft: green thread 17 "conn-3" blocked 52 ms in a system call without
 *   yielding on worker 1
 * Time the worker spent waiting for a CPU (a loaded machine) is neither:
 * the green thread is not at fault, and is not reported.
 *
 * Sampling costs the workers nothing (no clock reads on the switch path).
 * While no worker runs a green thread the monitor ticks once a slice (20
 * ms with preemption off), and once every worker has been parked for
 * IDLE_DEEP_NS it sleeps until one leaves its park (weft__monitor_kick,
 * a load on a path that has made a system call anyway): an idle runtime
 * wakes nobody.
 *
 * The threshold is weft_config.hog_ms, else WEFT_HOG_MS, else 100 ms; a
 * negative value (or WEFT_HOG_MS=0) turns the reports off.
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "monitor.h"
#include "netpoll.h"
#include "preempt.h"
#include "rt.h"
#include "sched.h"

#define DEFAULT_HOG_MS 100
/* How long every worker must have been parked, without a switch, before
 * the monitor sleeps until one wakes. */
#define IDLE_DEEP_NS 100000000

enum hog { HOG_NONE, HOG_RAN, HOG_BLOCKED };

struct watch {
  /* Preemption: the running thread, its worker's switch count, since,
   * and the CPU time of its kernel thread then (-1: unknown). */
  struct weft__g *pg;
  uint64_t psw;
  int64_t psince, pcpu, pwall;
  /* Hogs. */
  struct weft__g *g;
  uint64_t id; /* g's id and name when reported: g may be gone later */
  char name[WEFT_NAME_MAX];
  uint64_t switches;
  int64_t since, cpu_since; /* wall clock and the worker's CPU clock */
  clockid_t clk;            /* the worker's CPU clock */
  bool has_clk;
  enum hog reported;
  bool asked; /* preemption was asked for during this run, in vain */
};

static struct {
  pthread_t thread;
  bool running;
  _Atomic uint32_t stop; /* futex */
  _Atomic uint32_t up;   /* futex: 1 once its thread runs (monitor_start) */
  int64_t threshold_ns; /* 0: no reports */
  int64_t slice_ns;     /* 0: no preemption */
  int64_t period;       /* between ticks while a worker is busy */
  struct watch *watch;
  int *ask; /* the workers asked in a tick, by index */
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

/* A clock's time in ns, or -1. */
static int64_t clock_ns(clockid_t clk) {
  struct timespec ts;
  if (clock_gettime(clk, &ts))
    return -1;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The worker's CPU time; its wall time when that clock is unavailable. */
static int64_t cpu_now(const struct watch *s, int64_t wall) {
  int64_t t = s->has_clk ? clock_ns(s->clk) : -1;
  return t < 0 ? wall : t;
}

/* The state of a kernel thread of this process in /proc ('R' running
 * or runnable, 'S' or 'D' asleep in the kernel), or 0. */
static char thread_state(pid_t tid) {
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the name may hold spaces */
  return p && p[1] == ' ' ? p[2] : 0;
}

/* Whether the worker thread is asleep in the kernel, as opposed to
 * running or waiting for a CPU. */
static bool asleep_in_kernel(const struct weft__worker *w) {
  char st = thread_state(__atomic_load_n(&w->kt, __ATOMIC_RELAXED)->tid);
  return st == 'S' || st == 'D';
}

/* Whether the kernel thread is in a futex wait (/proc's syscall file). */
static bool in_futex(pid_t tid) {
  char path[64], buf[32];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return false;
  buf[n] = 0;
  return strtol(buf, NULL, 10) == SYS_futex;
}

/* Whether anything waits for w besides its running thread (read racily:
 * a hint, as the slice is). */
static bool work_waiting(struct weft__worker *w, int64_t now) {
  return weft__has_local_work(w) || ld_relaxed(&weft__rt.gq.n) ||
         ld_relaxed(&w->npin) || weft__timers_next(&w->timers) <= now ||
         ld_relaxed(&weft__netpoll_waiting) > 0;
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

/* The CPU time of a kernel thread, or -1. */
static int64_t kt_cpu(const struct weft__kt *kt) {
  clockid_t clk;
  return pthread_getcpuclockid(kt->thread, &clk) ? -1 : clock_ns(clk);
}

/* Preemption's half of a tick: whether w's thread has run its slice with
 * work waiting, and may be asked (see the file comment).  A kernel thread
 * that used most of the CPU since the last tick is running; only one
 * that did not is looked up in /proc (about 20 us, against 0.5 for the
 * clock), to tell a futex wait from another system call. */
static bool want_preempt(struct weft__worker *w, struct watch *s,
                         struct weft__g *g, uint64_t sw, int64_t now) {
  struct weft__kt *kt = __atomic_load_n(&w->kt, __ATOMIC_RELAXED);
  if (!g || g != s->pg || sw != s->psw) {
    s->pg = g;
    s->psw = sw;
    s->pcpu = -1;
    /* A run seen first now began within the last tick; one that is a
     * preempted thread going on (no switch since) began when it did, and
     * is timed from then: otherwise a thread preempted again and again
     * would run a slice and a tick each time, as its every resume falls
     * just after a tick. */
    uint64_t rsw = atomic_load_explicit(&w->run_sw, memory_order_acquire);
    int64_t from = atomic_load_explicit(&w->run_from, memory_order_relaxed);
    s->psince = g && rsw == sw && from <= now ? from : now;
    if (now - s->psince + mon.period < mon.slice_ns)
      return false;
  }
  /* The clock is read from the tick before the slice is up on, so that
   * the ask has a tick's worth to compare. */
  int64_t cpu = -1, last = s->pcpu, since = now - s->pwall;
  if (now - s->psince + mon.period >= mon.slice_ns) {
    cpu = kt_cpu(kt);
    s->pcpu = cpu;
    s->pwall = now;
  }
  if (now - s->psince < mon.slice_ns || !work_waiting(w, now))
    return false;
  if (cpu >= 0 && last >= 0 && cpu - last >= since / 2)
    return true; /* running */
  char st = thread_state(kt->tid);
  return st == 'R' || (st == 'S' && in_futex(kt->tid));
}

_Atomic uint32_t weft__monitor_asleep; /* futex */

void weft__monitor_wake(void) {
  if (atomic_exchange(&weft__monitor_asleep, 0))
    weft__futex_wake(&weft__monitor_asleep, 1);
}

/* Sleeps while every worker is parked: until a worker leaves its park
 * (weft__monitor_kick) or the monitor stops.  The worker's side clears
 * nidle then reads asleep; this side sets asleep then reads nidle (both
 * seq_cst): one of the two sees the other. */
static void sleep_while_parked(void) {
  atomic_store(&weft__monitor_asleep, 1);
  while (atomic_load(&weft__rt.nidle) == weft__rt.nworkers &&
         !ld_acquire(&mon.stop) && atomic_load(&weft__monitor_asleep))
    weft__futex_wait(&weft__monitor_asleep, 1, WEFT_FOREVER);
  atomic_store(&weft__monitor_asleep, 0);
}

static void *monitor_main(void *arg) {
  (void)arg;
  weft__thread_name("weft-monitor");
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  atomic_store(&mon.up, 1);
  weft__futex_wake(&mon.up, 1);
  int64_t period = mon.threshold_ns ? mon.threshold_ns / 4 : INT64_MAX;
  if (mon.slice_ns && mon.slice_ns / 2 < period)
    period = mon.slice_ns / 2;
  mon.period = period;
  /* While no worker runs a green thread: a slice at most, so that the
   * first preemption of a thread that starts then is late by a slice at
   * most (100 wakes a second at the default); 20 ms without preemption. */
  int64_t idle_period = mon.slice_ns ? mon.slice_ns : 20000000;
  if (idle_period < period)
    idle_period = period;
  int64_t limit = mon.threshold_ns;
  bool busy = true;
  int nask, *ask = mon.ask;
  int64_t due = INT64_MAX; /* the next slice to end between ticks */
  int64_t idle_since = 0;  /* every worker parked, no switch, since */
  uint64_t last_sw = 0, all_sw;
  while (!ld_acquire(&mon.stop)) {
    int64_t wake = weft__now() + (busy ? period : idle_period);
    weft__futex_wait(&mon.stop, 0, due < wake ? due : wake);
    int64_t now = weft__now();
    busy = false;
    due = INT64_MAX;
    nask = 0;
    all_sw = 0;
    for (int i = 0; i < mon.n; i++) {
      struct weft__worker *w = weft__rt.w[i];
      struct watch *s = &mon.watch[i];
      struct weft__g *g = __atomic_load_n(&w->cur, __ATOMIC_RELAXED);
      uint64_t sw = __atomic_load_n(&w->st.switches, __ATOMIC_RELAXED);
      all_sw += sw;
      if (g)
        busy = true;
      if (mon.slice_ns && want_preempt(w, s, g, sw, now)) {
        ask[nask++] = i;
        s->psince = now - mon.slice_ns + period; /* again next tick */
        s->asked = true;
      } else if (mon.slice_ns && g && s->psince + mon.slice_ns > now &&
                 s->psince + mon.slice_ns < due) {
        due = s->psince + mon.slice_ns; /* checked then, not a tick late */
      }
      if (!limit)
        continue;
      sw += __atomic_load_n(&w->lone_yields, __ATOMIC_RELAXED);
      int64_t cpu = cpu_now(s, now);
      int64_t wall = now - s->since, ran = cpu - s->cpu_since;
      if (g && g == s->g && sw == s->switches) {
        enum hog kind = HOG_NONE;
        if (s->reported)
          continue;
        /* With preemption on, a thread that computes is a hog only if it
         * could not be preempted when other work needed its worker. */
        if (ran >= limit && (!mon.slice_ns || s->asked))
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
      /* The worker's kernel thread may be another one now. */
      s->has_clk = pthread_getcpuclockid(
                       __atomic_load_n(&w->kt, __ATOMIC_RELAXED)->thread,
                       &s->clk) == 0;
      s->cpu_since = cpu_now(s, now);
      s->reported = HOG_NONE;
      s->asked = false;
    }
    if (nask && weft__preempt_stock(nask))
      for (int k = 0; k < nask; k++) {
        struct weft__worker *w = weft__rt.w[ask[k]];
        weft__preempt_ask(__atomic_load_n(&w->kt, __ATOMIC_RELAXED), w,
                          mon.watch[ask[k]].psw);
      }
    /* Asleep only once the runtime has done nothing for IDLE_DEEP_NS:
     * a server under a light load, idle between requests, does not pay
     * the monitor's wake on each. */
    if (!busy && atomic_load(&weft__rt.nidle) == weft__rt.nworkers &&
        all_sw == last_sw) {
      if (!idle_since)
        idle_since = now;
      else if (now - idle_since >= IDLE_DEEP_NS) {
        sleep_while_parked();
        busy = true; /* a worker woke: look again a tick from now */
        idle_since = 0;
      }
    } else {
      idle_since = 0;
    }
    last_sw = all_sw;
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
  mon.threshold_ns = ms > 0 ? ms * 1000000LL : 0;
  mon.slice_ns = weft__preempt_slice();
  if (!mon.threshold_ns && !mon.slice_ns)
    return 0;
  mon.n = weft__rt.nworkers;
  mon.watch = weft__calloc((size_t)mon.n, sizeof(*mon.watch));
  mon.ask = weft__calloc((size_t)mon.n, sizeof(*mon.ask));
  if (!mon.watch || !mon.ask) {
    free(mon.watch);
    free(mon.ask);
    mon.watch = NULL;
    mon.ask = NULL;
    return -ENOMEM;
  }
  for (int i = 0; i < mon.n; i++)
    mon.watch[i].has_clk =
        pthread_getcpuclockid(weft__rt.w[i]->kt->thread, &mon.watch[i].clk) ==
        0;
  atomic_store(&mon.stop, 0);
  atomic_store(&mon.up, 0);
  int r = weft__pthread_create(&mon.thread, NULL, monitor_main, NULL);
  if (r) {
    free(mon.watch);
    free(mon.ask);
    mon.watch = NULL;
    mon.ask = NULL;
    return -r;
  }
  /* weft_init returns once the thread runs, as it does for the workers'
   * (sched.c): a fork before that could copy a lock the starting thread
   * held (the C library's, or a sanitizer's thread registry), which
   * nobody would release in the child. */
  while (!atomic_load(&mon.up))
    weft__futex_wait(&mon.up, 0, WEFT_FOREVER);
  mon.running = true;
  return 0;
}

void weft__monitor_stop(void) {
  if (!mon.running)
    return;
  st_release(&mon.stop, 1);
  weft__futex_wake(&mon.stop, 1);
  weft__monitor_wake();
  pthread_join(mon.thread, NULL);
  free(mon.watch);
  free(mon.ask);
  mon.watch = NULL;
  mon.ask = NULL;
  mon.running = false;
}

void weft__monitor_fork_child(void) {
  mon.running = false; /* its thread did not survive the fork */
  atomic_store(&weft__monitor_asleep, 0);
  mon.watch = NULL;
  mon.ask = NULL;
}
