/*
 * test_monitor.c - the hog detector and the per-worker counters.
 */
#include "helpers.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Where the pure loops put their sums, so that they are not optimised
 * away. */
static volatile uint64_t sink;

static void *spin_ms(void *arg) {
  int64_t end = weft_now() + MS((intptr_t)arg);
  while (weft_now() < end)
    ;
  return NULL;
}

/* What a child runs under the monitor: one green thread, named, running
 * body for 200 ms; it prints the hog count of all workers.  Preemption is
 * off (a lone thread that computes would not be reported with it on: it
 * stalls nobody; see the preemption tests below). */
struct watched {
  int workers, hog_ms;
  const char *name;
  void *(*body)(void *);
};

static void watched_child(void *arg) {
  const struct watched *wt = arg;
  weft_config cfg = {
      .workers = wt->workers, .hog_ms = wt->hog_ms, .slice_us = -1};
  if (weft_init(&cfg))
    _exit(10);
  weft_gthread t;
  weft_spawn(&t, &(weft_gthread_attr){.name = wt->name}, wt->body,
             (void *)(intptr_t)200);
  weft_join(t, NULL);
  weft_worker_stats st[2];
  int n = weft_stats(st, 2);
  uint64_t hogs = 0;
  for (int i = 0; i < n; i++)
    hogs += st[i].hogs;
  fprintf(stderr, "hogs=%llu\n", (unsigned long long)hogs);
  weft_shutdown();
}

static void hog_child(void *arg) {
  struct watched wt = {2, (int)(intptr_t)arg, "conn-3", spin_ms};
  watched_child(&wt);
}

Test(monitor, reports_a_green_thread_that_does_not_yield) {
  struct h_child c;
  h_fork_capture(hog_child, (void *)(intptr_t)20, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "\"conn-3\" ran ") != NULL, "stderr: %s", c.err);
  cr_assert(strstr(c.err, "without yielding on worker ") != NULL, "%s", c.err);
  cr_assert(strstr(c.err, "green thread 1 ") != NULL, "%s", c.err);
  cr_assert(strstr(c.err, "hogs=1\n") != NULL, "%s", c.err);
}

static void *sleep_ms(void *arg) {
  struct timespec ts = {0, (long)(intptr_t)arg * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR)
    ;
  return NULL;
}

static void blocking_child(void *arg) {
  (void)arg;
  struct watched wt = {1, 20, "disk-1", sleep_ms};
  watched_child(&wt);
}

/* A blocking system call stalls the worker without using the CPU: the
 * report says where the time went. */
Test(monitor, reports_a_blocking_system_call) {
  struct h_child c;
  h_fork_capture(blocking_child, NULL, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "\"disk-1\" blocked ") != NULL, "stderr: %s", c.err);
  cr_assert(strstr(c.err, " in a system call without yielding on worker 0") !=
                NULL,
            "%s", c.err);
  cr_assert(strstr(c.err, "hogs=1\n") != NULL, "%s", c.err);
}

Test(monitor, can_be_turned_off) {
  struct h_child c;
  h_fork_capture(hog_child, (void *)(intptr_t)-1, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "without yielding") == NULL, "%s", c.err);
  cr_assert(strstr(c.err, "hogs=0\n") != NULL, "%s", c.err);
}

static void *yielder(void *arg) {
  int64_t end = weft_now() + MS((intptr_t)arg);
  while (weft_now() < end)
    weft_yield();
  return NULL;
}

static void polite_child(void *arg) {
  (void)arg;
  weft_config cfg = {.workers = 1, .hog_ms = 20};
  if (weft_init(&cfg))
    _exit(10);
  weft_gthread a, b;
  weft_spawn(&a, NULL, yielder, (void *)(intptr_t)150);
  weft_spawn(&b, NULL, yielder, (void *)(intptr_t)150);
  weft_join(a, NULL);
  weft_join(b, NULL);
  weft_shutdown();
}

Test(monitor, quiet_for_threads_that_yield) {
  struct h_child c;
  h_fork_capture(polite_child, NULL, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "without yielding") == NULL, "%s", c.err);
}

/* With preemption on, one worker: a spinner and a thread waiting behind
 * it.  Preemptible, the spinner is preempted and never reported; inside a
 * non-preemptible region it cannot be, and is. */
static void *spin_region(void *arg) {
  bool region = arg != NULL;
  if (region)
    weft_preempt_disable();
  int64_t end = weft_now() + MS(150);
  while (weft_now() < end)
    for (int i = 0; i < 100000; i++)
      sink += (uint64_t)i;
  if (region)
    weft_preempt_enable();
  return NULL;
}

static atomic_int waiter_ran;

static void *waiter(void *arg) {
  (void)arg;
  atomic_store(&waiter_ran, 1);
  return NULL;
}

/* What a child runs with preemption on, one worker: a spinner, "crunch",
 * inside a non-preemptible region or not, with a thread waiting behind it
 * or alone; it prints the hogs and preemptions counted. */
struct crunch {
  bool region, waiter;
};

static void preempt_child(void *arg) {
  const struct crunch *c = arg;
  weft_config cfg = {.workers = 1, .hog_ms = 20, .slice_us = 2000};
  if (weft_init(&cfg))
    _exit(10);
  weft_gthread a, b;
  weft_spawn(&a, &(weft_gthread_attr){.name = "crunch"}, spin_region,
             c->region ? (void *)1 : NULL);
  if (c->waiter)
    weft_spawn(&b, NULL, waiter, NULL);
  weft_join(a, NULL);
  if (c->waiter)
    weft_join(b, NULL);
  weft_worker_stats st;
  weft_stats(&st, 1);
  fprintf(stderr, "hogs=%llu preemptions=%llu\n",
          (unsigned long long)st.hogs, (unsigned long long)st.preemptions);
  weft_shutdown();
}

Test(monitor, quiet_for_a_thread_that_is_preempted) {
  if (WEFT_TSAN)
    cr_skip_test("no preemption under ThreadSanitizer");
  struct h_child c;
  h_fork_capture(preempt_child, &(struct crunch){false, true}, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "without yielding") == NULL, "%s", c.err);
  cr_assert(strstr(c.err, "hogs=0 ") != NULL, "%s", c.err);
  cr_assert(strstr(c.err, "preemptions=0\n") == NULL, "%s", c.err);
}

/* A lone thread that computes, with preemption on: nothing waits for its
 * worker, so nothing asks to preempt it, and it stalls nobody. */
Test(monitor, quiet_for_a_lone_thread_that_stalls_nobody) {
  if (WEFT_TSAN)
    cr_skip_test("no preemption under ThreadSanitizer");
  struct h_child c;
  h_fork_capture(preempt_child, &(struct crunch){false, false}, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "without yielding") == NULL, "%s", c.err);
  cr_assert(strstr(c.err, "hogs=0 ") != NULL, "%s", c.err);
}

Test(monitor, reports_a_thread_that_cannot_be_preempted) {
  if (WEFT_TSAN)
    cr_skip_test("no preemption under ThreadSanitizer");
  struct h_child c;
  h_fork_capture(preempt_child, &(struct crunch){true, true}, &c);
  cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s", c.err);
  cr_assert(strstr(c.err, "\"crunch\" ran ") != NULL, "%s", c.err);
  cr_assert(strstr(c.err, "hogs=1 preemptions=0\n") != NULL, "%s", c.err);
}

/* ------------------------------------------------------------------------ */
/* An idle runtime wakes nobody                                             */
/* ------------------------------------------------------------------------ */

/* The threads of this process whose name is name (or, with prefix, starts
 * with it), from /proc/self/task/N/status; *switches, unless NULL, gets
 * their context switches: each wake of a sleeping thread is one. */
static int threads_named(const char *name, bool prefix, long *switches) {
  char path[320], line[128];
  int n = 0;
  size_t len = strlen(name);
  DIR *d = opendir("/proc/self/task");
  cr_assert_not_null(d, "/proc/self/task: %s", strerror(errno));
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue; /* gone meanwhile */
    bool match = false;
    while (fgets(line, sizeof line, f)) {
      long v;
      if (strncmp(line, "Name:\t", 6) == 0) {
        const char *nm = line + 6;
        match = strncmp(nm, name, len) == 0 &&
                (prefix || nm[len] == '\n' || nm[len] == 0);
      } else if (match && switches &&
                 (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
                  sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)) {
        *switches += v;
      }
    }
    n += match;
    fclose(f);
  }
  closedir(d);
  return n;
}

/* Context switches of the runtime's own threads (named weft-...; not a
 * sanitizer's, not Criterion's); *n is how many there are. */
static long weft_switches(int *n) {
  long sum = 0;
  *n = threads_named("weft-", true, &sum);
  return sum;
}

static void *nap(void *arg) {
  weft_sleep(MS(2));
  return arg;
}

/* Computes for about that long, mostly outside weft (where it may be
 * preempted: weft_now is weft's code). */
static void *busy_ms(void *arg) {
  int64_t end = weft_now() + MS((intptr_t)arg);
  while (weft_now() < end)
    for (int i = 0; i < 100000; i++)
      sink += (uint64_t)i;
  return NULL;
}

/* With its default monitor (preemption, hog reports), a runtime that has
 * nothing to do leaves every one of its threads asleep: no tick, no
 * timer.  The monitor ticked 100 times a second before (50 wakes in the
 * half second below).  Then a green thread that computes beside a
 * sleeper is preempted as before: the first wake after the quiet spell
 * wakes the monitor too. */
Test(monitor, an_idle_runtime_wakes_nobody, .fini = h_stop, .timeout = 60) {
  int rc = weft_init(&(weft_config){.workers = 2});
  cr_assert_eq(rc, 0, "weft_init: %s", weft_strerror(rc));
  weft_gthread t[4];
  for (int i = 0; i < 4; i++)
    t[i] = h_spawn(nap, NULL);
  for (int i = 0; i < 4; i++)
    h_join(t[i]);
  usleep(400 * 1000); /* the monitor's quiet spell, and more */
  int n0, n1;
  long before = weft_switches(&n0);
  usleep(500 * 1000);
  long woke = weft_switches(&n1) - before;
  cr_assert_geq(n0, 3, "%d threads named weft-... (2 workers, the monitor)",
                n0);
  cr_assert_eq(n1, n0);
  cr_assert_leq(woke, 2, "the idle runtime's threads woke %ld times in 500 ms",
                woke);

  if (WEFT_TSAN)
    return; /* no preemption under ThreadSanitizer */
  weft_worker_stats st[2];
  int n = weft_stats(st, 2);
  uint64_t p0 = 0, p1 = 0;
  for (int i = 0; i < n; i++)
    p0 += st[i].preemptions;
  /* Two spinners and a napper on two workers: one of them waits. */
  weft_gthread a = h_spawn(busy_ms, (void *)(intptr_t)200);
  weft_gthread b = h_spawn(busy_ms, (void *)(intptr_t)200);
  weft_gthread c = h_spawn(busy_ms, (void *)(intptr_t)200);
  h_join(a);
  h_join(b);
  h_join(c);
  n = weft_stats(st, 2);
  for (int i = 0; i < n; i++)
    p1 += st[i].preemptions;
  cr_assert_geq(p1 - p0, 3, "%llu preemptions after the quiet spell",
                (unsigned long long)(p1 - p0));
}

/* The runtime's kernel threads carry names (ps -L, top -H, perf, gdb):
 * its workers, its monitor, a blocking-pool thread, a kernel-thread
 * task's (which its code may rename). */
static void *count_tasks_named(void *arg) {
  return (void *)(intptr_t)threads_named(arg, false, NULL);
}

/* weft_blocking from a green thread (from main it runs on the caller). */
static void *count_in_pool(void *arg) {
  void *r = NULL;
  int rc = weft_blocking(count_tasks_named, arg, &r);
  return rc ? (void *)(intptr_t)rc : r;
}

Test(monitor, the_runtime_threads_have_names, .fini = h_stop) {
  int rc = weft_init(&(weft_config){.workers = 2});
  cr_assert_eq(rc, 0, "weft_init: %s", weft_strerror(rc));
  cr_assert_eq(threads_named("weft-worker", false, NULL), 2);
  cr_assert_eq(threads_named("weft-monitor", false, NULL), 1);
  void *r = NULL;
  weft_gthread g;
  rc = weft_spawn(&g, NULL, count_in_pool, "weft-blocking");
  cr_assert_eq(rc, 0, "weft_spawn: %s", weft_strerror(rc));
  cr_assert_eq(weft_join(g, &r), 0);
  cr_assert_geq((intptr_t)r, 1, "weft_blocking: %s, or no thread named %s",
                (intptr_t)r < 0 ? weft_strerror((int)(intptr_t)r) : "ok",
                "weft-blocking");
  weft_task t;
  rc = weft_task_start(&t, WEFT_MODE_KTHREAD, count_tasks_named, "weft-task");
  cr_assert_eq(rc, 0, "weft_task_start: %s", weft_strerror(rc));
  rc = weft_task_wait(&t, &r);
  cr_assert_eq(rc, 0, "weft_task_wait: %s", weft_strerror(rc));
  cr_assert_eq((intptr_t)r, 1, "no thread named weft-task");
}

static int sv[2];

static void *reader(void *arg) {
  (void)arg;
  char b;
  return (void *)(intptr_t)weft_read(sv[0], &b, 1, WEFT_FOREVER);
}

Test(stats, count_netpoller_waits, .init = h_start1, .fini = h_stop) {
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  weft_gthread t = h_spawn(reader, NULL);
  weft_sleep(MS(20)); /* the reader parks on the netpoller */
  cr_assert_eq(write(sv[1], "x", 1), 1);
  cr_assert_eq((intptr_t)h_join(t), 1);
  weft_worker_stats st;
  cr_assert_eq(weft_stats(&st, 1), 1);
  cr_assert_geq(st.io_waits, 1);
  cr_assert_geq(st.polls, 1);
  cr_assert_geq(st.spawns + st.wakes, 1);
  weft_close(sv[0]);
  weft_close(sv[1]);
}
