/*
 * rt.c - the runtime's lifecycle: weft_init (workers, their arenas and
 * stacks, the monitor), weft_shutdown, the reset of a forked child, and
 * the queries and counters that outlive a scheduling decision
 * (weft_running, weft_workers, weft_stats).  The scheduler itself, which
 * each worker thread runs (weft__sched_worker_main), is sched.c.
 *
 * Order.  weft_init checks its arguments and prepares everything that can
 * fail (arenas, stacks, the fault handler, memory for the workers) before
 * any worker starts, so an error leaves nothing running; then it starts
 * the workers, waits until every one is up (a fork before that could copy
 * a lock a starting thread holds), and starts the monitor.  Shutdown runs
 * the same steps backwards.  One lock (lifecycle_lock) orders init and
 * shutdown against each other.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jemalloc/jemalloc.h>

#include "fault.h"
#include "inject.h"
#include "monitor.h"
#include "preempt.h"
#include "rt.h"
#include "sched.h"
#include "stack.h"
#include "timer.h"

static pthread_mutex_t lifecycle_lock = PTHREAD_MUTEX_INITIALIZER;

/* A worker's own stack runs only the scheduler loop and post-switch
 * actions (green threads have stacks of their own), so it need not be
 * glibc's 8 MiB: a runtime of many workers then does not spend address
 * space it never uses, which under ulimit -v made worker threads fail to
 * start, or start and then fail inside the allocator.  The sanitizers'
 * frames are larger. */
#if WEFT_ASAN || WEFT_TSAN
#define WORKER_STACK ((size_t)4 << 20)
#else
#define WORKER_STACK ((size_t)512 << 10)
#endif

/*
 * jemalloc gives each new thread one of its automatic arenas, creating the
 * arena on the thread's first allocation; when that fails (the address
 * space is exhausted: ulimit -v), jemalloc crashes in that thread instead
 * of failing the allocation.  So weft_init creates the workers' arenas
 * here, on its caller's thread, where a failure is an error it can return,
 * before any worker starts.  (Where jemalloc is not in use, mallctl fails
 * and nothing is done.)
 */
static int prepare_arenas(int workers) {
#if WEFT_ASAN || WEFT_TSAN
  /* The sanitizers bring their own allocator: jemalloc's arenas would be
   * made for nothing, and ThreadSanitizer's deadlock detector, which keeps
   * at most 64 held locks a thread, overflows when jemalloc's fork handler
   * takes every lock of every arena. */
  (void)workers;
  return 0;
#else
  unsigned n, cur;
  size_t sz = sizeof n;
  if (mallctl("opt.narenas", &n, &sz, NULL, 0) != 0)
    return 0;
  /* One for each worker (and the caller's): each new thread takes an
   * arena no thread uses yet, if there is one. */
  if (n > (unsigned)workers + 1)
    n = (unsigned)workers + 1;
  sz = sizeof cur;
  if (mallctl("thread.arena", &cur, &sz, NULL, 0) != 0)
    return 0;
  int err = 0;
  for (unsigned i = 0; i < n && !err; i++)
    if (weft__inject(WEFT__F_ALLOC) ||
        mallctl("thread.arena", NULL, NULL, &i, sizeof i) != 0)
      err = -ENOMEM;
  mallctl("thread.arena", NULL, NULL, &cur, sizeof cur);
  if (err)
    fprintf(stderr, "weft: cannot create the allocator's arenas for the "
                    "workers: out of memory or address space (ulimit -v)\n");
  return err;
#endif
}

static int parse_workers(const weft_config *cfg, int *out) {
  long n = cfg ? cfg->workers : 0;
  if (n < 0 || n > 1024)
    return -EINVAL;
  if (n == 0) {
    const char *e = getenv("WEFT_WORKERS");
    if (e && *e) {
      char *end;
      n = strtol(e, &end, 10);
      if (*end || n < 1 || n > 1024) {
        fprintf(stderr,
                "weft: WEFT_WORKERS=%s is not a number from 1 to 1024\n", e);
        return -EINVAL;
      }
    } else {
      n = sysconf(_SC_NPROCESSORS_ONLN);
      if (n < 1)
        n = 1;
      if (n > 1024)
        n = 1024;
    }
  }
  *out = (int)n;
  return 0;
}

/* The kernel threads of the scheduler: one per worker from the start,
 * and spares that preemption adds (preempt.c).  All are listed in
 * weft__rt.kts, joined and freed at shutdown. */
int weft__kt_start(struct weft__worker *w) {
  struct weft__kt *kt = calloc(1, sizeof(*kt));
  if (!kt)
    return -ENOMEM;
  kt->w = w;
  if (w)
    w->kt = kt;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, WORKER_STACK);
  weft__spin_lock(&weft__rt.kts_lk);
  kt->all_next = weft__rt.kts;
  weft__rt.kts = kt;
  weft__rt.nkts++;
  weft__spin_unlock(&weft__rt.kts_lk);
  int r = weft__pthread_create(&kt->thread, &attr, weft__sched_worker_main, kt);
  pthread_attr_destroy(&attr);
  if (r) {
    weft__spin_lock(&weft__rt.kts_lk);
    weft__rt.kts = kt->all_next; /* nothing else adds meanwhile */
    weft__rt.nkts--;
    weft__spin_unlock(&weft__rt.kts_lk);
    if (w)
      w->kt = NULL;
    free(kt);
    return -r;
  }
  return 0;
}

/* Joins every kernel thread of the scheduler and frees it. */
static void kts_join(void) {
  struct weft__kt *kt = weft__rt.kts;
  weft__rt.kts = NULL;
  weft__rt.nkts = 0;
  while (kt) {
    struct weft__kt *next = kt->all_next;
    pthread_join(kt->thread, NULL);
    free(kt);
    kt = next;
  }
}

static void free_workers(int n) {
  for (int i = 0; i < n; i++) {
    struct weft__worker *w = weft__rt.w[i];
    weft__timers_fini(&w->timers);
    weft__stack_cache_drain(&w->stacks);
    free(w->np_ev);
    free(w);
  }
  free(weft__rt.w);
  free(weft__rt.idle);
  weft__rt.w = NULL;
  weft__rt.idle = NULL;
}

static void stop_workers(int started) {
  weft__monitor_stop();
  atomic_store(&weft__rt.state, WEFT__RT_STOPPING); /* seq_cst: Dekker */
  /* Wait for the threads that entered before (sched.h): they may be
   * touching the global queue, the idle list and the workers. */
  for (uint32_t k; (k = atomic_load(&weft__rt.foreign)) != 0;)
    weft__futex_wait(&weft__rt.foreign, k, WEFT_FOREVER);
  for (int i = 0; i < started; i++)
    weft__sched_unpark(weft__rt.w[i]);
  weft__preempt_stop();
  kts_join();
}

int weft_init(const weft_config *cfg) {
  int n, err;

  if (weft__worker_get())
    return -EPERM;
  pthread_mutex_lock(&lifecycle_lock);
  if (atomic_load(&weft__rt.state) != WEFT__RT_OFF) {
    err = -EALREADY;
    goto error0;
  }
  if ((err = parse_workers(cfg, &n)))
    goto error0;
  weft__fork_watch(); /* a child of a running runtime starts clean */
  if ((err = prepare_arenas(n)))
    goto error0;
  size_t ss = weft__stack_round(cfg ? cfg->stack_size : 0);
  if (cfg && cfg->stack_size && !ss) {
    err = -EINVAL;
    goto error0;
  }
  if ((err = weft__stack_setup(cfg ? cfg->stack_size : 0,
                               cfg ? cfg->guard_size : 0)))
    goto error0;
  if ((err = weft__fault_setup()))
    goto error0;
  if ((err = weft__preempt_setup(cfg)))
    goto error0;

  weft__rt.nworkers = n;
  weft__rt.stack_default = weft__stack_round(0);
  weft__rt.blocking_max = cfg ? cfg->blocking_threads : 0;
  if (weft__rt.blocking_max < 0 || weft__rt.blocking_max > 4096) {
    err = -EINVAL;
    goto error1;
  }
  /* A peer that goes away must give -EPIPE, not kill the process. */
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  weft__rt.w = weft__calloc((size_t)n, sizeof(*weft__rt.w));
  weft__rt.idle = weft__calloc((size_t)n, sizeof(*weft__rt.idle));
  if (!weft__rt.w || !weft__rt.idle) {
    err = -ENOMEM;
    goto error1;
  }
  weft__rt.nidle_list = 0;
  atomic_store(&weft__rt.nidle, 0);
  atomic_store(&weft__rt.nspinning, 0);
  weft__rt.gq.head = weft__rt.gq.tail = NULL;
  atomic_store(&weft__rt.gq.n, 0);
  if (atomic_load(&weft__rt.next_id) == 0)
    atomic_store(&weft__rt.next_id, 1);

  weft__rt.seed = 0;
  if (weft_debug) {
    const char *e = getenv("WEFT_SEED");
    weft__rt.seed = e && *e ? strtoull(e, NULL, 10)
                            : (uint64_t)weft__now() ^ (uint64_t)getpid();
    if (!weft__rt.seed)
      weft__rt.seed = 1;
    fprintf(stderr,
            "weft: debug build, scheduling seed %llu "
            "(WEFT_SEED=%llu replays it)\n",
            (unsigned long long)weft__rt.seed,
            (unsigned long long)weft__rt.seed);
  }

  for (int i = 0; i < n; i++) {
    struct weft__worker *w = aligned_alloc(WEFT_CACHELINE, sizeof(*w));
    if (!w) {
      weft__rt.nworkers = i;
      err = -ENOMEM;
      goto error2;
    }
    memset(w, 0, sizeof(*w));
    w->index = i;
    w->idle_pos = -1;
    w->rng = (weft__rt.seed ? weft__rt.seed : 0x9E3779B97F4A7C15ULL) *
                 (uint64_t)(i + 1) |
             1;
    weft__timers_init(&w->timers);
    weft__rt.w[i] = w;
  }

  atomic_store(&weft__rt.started, 0);
  /* A new runtime: green threads of an earlier one stay abandoned. */
  atomic_fetch_add(&weft__rt.epoch, 1);
  atomic_store(&weft__rt.state, WEFT__RT_RUNNING);
  pthread_sigmask(SIG_SETMASK, NULL, &weft__rt.kt_sigmask);
  for (int i = 0; i < n; i++) {
    int r = weft__kt_start(weft__rt.w[i]);
    if (r) {
      fprintf(stderr, "weft: cannot start worker %d: %s\n", i,
              strerror(-r));
      stop_workers(i);
      err = r;
      goto error2;
    }
  }
  for (uint32_t k; (k = ld_acquire(&weft__rt.started)) < (uint32_t)n;)
    weft__futex_wait(&weft__rt.started, k, WEFT_FOREVER);
  if ((err = weft__monitor_start(cfg))) {
    fprintf(stderr, "weft: cannot start the monitor thread: %s\n",
            weft_strerror(err));
    stop_workers(n);
    goto error2;
  }
  pthread_mutex_unlock(&lifecycle_lock);
  return 0;

error2:
  free_workers(weft__rt.nworkers);
error1:
  weft__rt.nworkers = 0;
  free(weft__rt.w);
  free(weft__rt.idle);
  weft__rt.w = NULL;
  weft__rt.idle = NULL;
  atomic_store(&weft__rt.state, WEFT__RT_OFF);
error0:
  pthread_mutex_unlock(&lifecycle_lock);
  return err;
}

int weft_shutdown(void) {
  if (weft__worker_get())
    return -EPERM;
  pthread_mutex_lock(&lifecycle_lock);
  if (atomic_load(&weft__rt.state) != WEFT__RT_RUNNING) {
    pthread_mutex_unlock(&lifecycle_lock);
    return -ESRCH;
  }
  stop_workers(weft__rt.nworkers);
  /* Every green thread still alive is abandoned now: kernel threads
   * waiting to join one get -ESRCH. */
  weft__join_abandon_all();
  if (getenv("WEFT_STATS"))
    weft__stats_print();
  free_workers(weft__rt.nworkers);
  weft__rt.nworkers = 0;
  weft__rt.gq.head = weft__rt.gq.tail = NULL;
  atomic_store(&weft__rt.gq.n, 0);
  atomic_store(&weft__rt.state, WEFT__RT_OFF);
  pthread_mutex_unlock(&lifecycle_lock);
  return 0;
}

/* The child handler (rt.h): only the forking thread exists in the child.
 * The runtime's own state first: the workers, and any lock they held, are
 * gone.  Forget them (their memory is leaked, it may be mid-update) and
 * start from a clean, stopped runtime, so that weft_init can start
 * afresh; then every part, in layer order. */
static void fork_child(void) {
  /* Only the forking thread exists in the child: the workers, and any
   * lock they held, are gone.  Forget them (their memory is leaked, it may
   * be mid-update) and start from a clean, stopped runtime. */
  weft__tls_w = NULL;
  weft__rt.nworkers = 0;
  weft__rt.w = NULL;
  weft__rt.idle = NULL;
  weft__rt.nidle_list = 0;
  atomic_store(&weft__rt.nidle, 0);
  atomic_store(&weft__rt.nspinning, 0);
  atomic_store(&weft__rt.idle_lk.v, 0);
  atomic_store(&weft__rt.gq.lk.v, 0);
  weft__rt.gq.head = weft__rt.gq.tail = NULL;
  atomic_store(&weft__rt.gq.n, 0);
  atomic_store(&weft__rt.state, WEFT__RT_OFF);
  atomic_store(&weft__rt.foreign, 0);
  atomic_store(&weft__rt.kjoin_lk.v, 0);
  weft__rt.kjoins = NULL; /* their threads are not in the child */
  weft__tls_kt = NULL;
  atomic_store(&weft__rt.kts_lk.v, 0);
  weft__rt.kts = NULL; /* nor are the scheduler's */
  weft__rt.nkts = 0;
  pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
  lifecycle_lock = fresh;
  weft__stack_fork_child();
  weft__monitor_fork_child();
  weft__preempt_fork_child();
  weft__netpoll_fork_child();
  weft__blocking_fork_child();
  weft__task_fork_child();
  weft__shm_fork_child();
  weft__shm_chan_fork_child();
  weft__proc_fork_child();
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_register(void) { pthread_atfork(NULL, NULL, fork_child); }

void weft__fork_watch(void) { pthread_once(&fork_once, fork_register); }

bool weft_running(void) { return weft__rt_running(); }

int weft_workers(void) { return weft__rt_running() ? weft__rt.nworkers : 0; }

int weft_worker_index(void) {
  struct weft__worker *w = weft__worker_get();
  return w ? w->index : -1;
}

int weft_stats(weft_worker_stats *stats, int n) {
  if (n < 0 || (n > 0 && !stats))
    return -EINVAL;
  /* The workers stay allocated while we are inside (sched.h). */
  if (!weft__foreign_enter())
    return -ESRCH;
  for (int i = 0; i < n && i < weft__rt.nworkers; i++) {
    struct weft__worker *w = weft__rt.w[i];
    /* Field by field with relaxed loads: the worker is counting on. */
    const uint64_t *src = (const uint64_t *)&w->st;
    uint64_t *dst = (uint64_t *)&stats[i];
    _Static_assert(sizeof(weft_worker_stats) % sizeof(uint64_t) == 0,
                   "weft_worker_stats holds only uint64_t counters");
    for (size_t k = 0; k < sizeof(weft_worker_stats) / sizeof(uint64_t); k++)
      dst[k] = __atomic_load_n(&src[k], __ATOMIC_RELAXED);
    stats[i].stack_hits = __atomic_load_n(&w->stacks.hits, __ATOMIC_RELAXED);
    stats[i].stack_maps = __atomic_load_n(&w->stacks.maps, __ATOMIC_RELAXED);
  }
  int nw = weft__rt.nworkers;
  weft__foreign_leave();
  return nw;
}

void weft__stats_print(void) {
  fprintf(stderr,
          "weft: %-6s %12s %10s %8s %8s %8s %10s %8s %8s %8s %8s %9s %5s "
          "%8s %8s\n",
          "worker", "switches", "spawns", "foreign", "steals", "parks", "wakes",
          "runq_hwm", "stk_hit", "stk_map", "polls", "io_waits", "hogs",
          "preempt", "deferred");
  for (int i = 0; i < weft__rt.nworkers; i++) {
    struct weft__worker *w = weft__rt.w[i];
    fprintf(stderr,
            "weft: %-6d %12llu %10llu %8llu %8llu %8llu %10llu %8llu %8lu "
            "%8lu %8llu %9llu %5llu %8llu %8llu\n",
            i, (unsigned long long)w->st.switches,
            (unsigned long long)w->st.spawns,
            (unsigned long long)w->st.foreign_spawns,
            (unsigned long long)w->st.steals, (unsigned long long)w->st.parks,
            (unsigned long long)w->st.wakes, (unsigned long long)w->st.runq_hwm,
            w->stacks.hits, w->stacks.maps, (unsigned long long)w->st.polls,
            (unsigned long long)w->st.io_waits, (unsigned long long)w->st.hogs,
            (unsigned long long)w->st.preemptions,
            (unsigned long long)w->st.preempt_deferred);
  }
}
