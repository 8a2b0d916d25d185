/*
 * timeslice.c - time slicing on one core against cooperative switching:
 * the explainer's scheduling section, shown running.
 *
 * One worker thread, so all green threads take turns on one core.  Two of
 * them run there for 300 ms:
 *  - "spinner" computes in a pure CPU loop for 300 ms of wall time and
 *    never calls weft (it reads the clock itself, with clock_gettime);
 *  - "ticker" wants a tick every 10 ms: it sleeps 10 ms (weft_sleep),
 *    notes the time, and sleeps again, until the 300 ms are over.
 * This runs twice, each time in a runtime of its own (weft_init, then
 * weft_shutdown):
 *  - cooperative (weft_config.slice_us = -1, preemption off): a green
 *    thread gives up its worker only when it calls weft to sleep, wait or
 *    yield, which the spinner never does;
 *  - preemptive (slice_us = 10000, the default 10 ms slice): a green
 *    thread that has run its slice while other work waits for its worker
 *    (here the ticker's due timer) is stopped and resumed later, as the
 *    kernel's scheduler does with threads and processes.
 *
 * What to look for, in each mode:
 *  - the timeline, one character per 10 ms: '.' the ticker ticked, '#'
 *    only the spinner ran.  Cooperative: a row of '#' and one '.' at the
 *    end, once the spinner is done; preemptive: dots all along, the two
 *    threads sharing the core.
 *  - the ticks the ticker got of the 30 it wanted, and the worst gap
 *    between two: cooperative about 1 tick and a 300 ms gap (starved: the
 *    ticker waited for the spinner to finish); preemptive tens of ticks
 *    and a gap of at most about 2 slices (on time: 30 ms or less).
 *  - preemptions, weft_stats()'s count: 0 cooperative, about one a tick
 *    preemptive.
 * The last line says which mode kept the ticker on time.  A weft that
 * makes no preemptions (weft.h's "Preemption" says when it cannot) runs
 * the preemptive mode cooperatively too, and the program says so.
 *
 * With preemption off, all weft can do is tell: its hog monitor reports
 * the spinner on stderr ("ran 100 ms without yielding", weft_config.hog_ms).
 * A thread it preempts is not reported.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "weft.h"

#define RUN_MS 300
#define TICK_MS 10
#define WANTED (RUN_MS / TICK_MS) /* ticks the ticker wants */
/* weft's default slice, given: 0 would mean WEFT_SLICE_US if it is set */
#define SLICE_US 10000
#define ON_TIME_MS (3 * TICK_MS) /* worst gap of a ticker on time */
#define STARVED_MS (RUN_MS / 2)  /* worst gap of a starved ticker */
#define MAX_TICKS 256
#define SLOTS (2 * WANTED) /* timeline characters, at most */
#define MS_NS ((int64_t)1000000)

/* One run's record, written by the two green threads, read by main after
 * it joined them. */
static struct {
  int64_t start; /* when main spawned the two, weft_now() */
  int64_t ticks[MAX_TICKS];
  int nticks;
  bool spun[SLOTS]; /* the spinner ran in this 10 ms slot */
  uint64_t sink;    /* the spinner's result, so that it is computed */
} run;

struct result {
  const char *name;
  int slice_us;
  int ticks;
  int64_t worst_gap; /* ns */
  uint64_t preemptions;
  char timeline[SLOTS + 1];
};

static void die(const char *what, int rc) {
  fprintf(stderr, "timeslice: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* CLOCK_MONOTONIC, weft_now()'s clock, read without calling weft. */
static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Computes until RUN_MS after the start, calling nothing of weft's. */
static void *spinner(void *arg) {
  (void)arg;
  int64_t end = run.start + RUN_MS * MS_NS;
  uint64_t x = 88172645463325252ULL;
  for (;;) {
    for (int i = 0; i < 4096; i++) { /* a few microseconds */
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    int64_t now = mono_ns();
    int64_t slot = (now - run.start) / (TICK_MS * MS_NS);
    if (slot >= 0 && slot < SLOTS)
      run.spun[slot] = true;
    if (now >= end)
      break;
  }
  run.sink = x;
  return NULL;
}

/* A tick every TICK_MS: sleeps TICK_MS and notes the time, until RUN_MS
 * after the start. */
static void *ticker(void *arg) {
  (void)arg;
  int64_t end = run.start + RUN_MS * MS_NS;
  int64_t now;
  do {
    int rc = weft_sleep(weft_ms(TICK_MS));
    if (rc < 0)
      return (void *)(intptr_t)rc;
    now = weft_now();
    if (run.nticks < MAX_TICKS)
      run.ticks[run.nticks++] = now;
  } while (now < end);
  return NULL;
}

static bool on_time(const struct result *r) {
  return r->worst_gap <= ON_TIME_MS * MS_NS;
}

static const char *verdict(const struct result *r) {
  if (on_time(r))
    return "on time";
  return r->worst_gap >= STARVED_MS * MS_NS ? "starved" : "late";
}

/* One runtime with one worker and this slice; the spinner and the ticker
 * on it; what the ticker got. */
static void measure(struct result *r) {
  weft_config cfg = {.workers = 1, .slice_us = r->slice_us};
  weft_gthread_attr spin_attr = {.name = "spinner"};
  weft_gthread_attr tick_attr = {.name = "ticker"};
  weft_gthread spin, tick;
  weft_worker_stats stats;
  void *res;
  int rc;

  run.nticks = 0;
  for (int i = 0; i < SLOTS; i++)
    run.spun[i] = false;
  if ((rc = weft_init(&cfg)) < 0)
    die("weft_init", rc);
  run.start = weft_now();
  if ((rc = weft_spawn(&tick, &tick_attr, ticker, NULL)) < 0)
    die("weft_spawn", rc);
  if ((rc = weft_spawn(&spin, &spin_attr, spinner, NULL)) < 0)
    die("weft_spawn", rc);
  if ((rc = weft_join(spin, NULL)) < 0)
    die("weft_join", rc);
  if ((rc = weft_join(tick, &res)) < 0)
    die("weft_join", rc);
  if (res)
    die("weft_sleep", (int)(intptr_t)res);
  if ((rc = weft_stats(&stats, 1)) < 0)
    die("weft_stats", rc);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);

  r->ticks = run.nticks;
  r->preemptions = stats.preemptions;
  r->worst_gap = 0;
  int64_t prev = run.start;
  int slots = WANTED;
  for (int i = 0; i < run.nticks; i++) {
    if (run.ticks[i] - prev > r->worst_gap)
      r->worst_gap = run.ticks[i] - prev;
    prev = run.ticks[i];
    int64_t slot = (run.ticks[i] - run.start) / (TICK_MS * MS_NS);
    if (slot >= slots)
      slots = slot < SLOTS ? (int)slot + 1 : SLOTS;
  }
  for (int i = 0; i < slots; i++)
    r->timeline[i] = run.spun[i] ? '#' : ' ';
  r->timeline[slots] = '\0';
  for (int i = 0; i < run.nticks; i++) {
    int64_t slot = (run.ticks[i] - run.start) / (TICK_MS * MS_NS);
    if (slot >= 0 && slot < slots)
      r->timeline[slot] = '.';
  }
}

/* The mode's heading, printed before the run: the hog monitor's reports
 * during the run come under it. */
static void heading(const struct result *r) {
  if (r->slice_us < 0)
    printf("%s (slice_us = %d: preemption off)\n", r->name, r->slice_us);
  else
    printf("%s (slice_us = %d: a %d ms slice)\n", r->name, r->slice_us,
           r->slice_us / 1000);
}

static void report(const struct result *r) {
  printf("  timeline     |%s|\n", r->timeline);
  printf("  ticks        %d of %d wanted, worst gap %.1f ms\n", r->ticks,
         WANTED, (double)r->worst_gap / MS_NS);
  printf("  preemptions  %llu (weft_stats)\n",
         (unsigned long long)r->preemptions);
  printf("  -> the ticker was %s\n\n", verdict(r));
}

int main(void) {
  struct result coop = {.name = "cooperative", .slice_us = -1};
  struct result pre = {.name = "preemptive", .slice_us = SLICE_US};

  /* Line by line, so that the hog monitor's reports on stderr come where
   * they happen when both go to one file (as in examples/run.sh). */
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("Time slicing on one core: one worker; \"spinner\" computes for %d "
         "ms without\ncalling weft, \"ticker\" wants a tick every %d ms.  "
         "Timeline: a character per\n%d ms, '.' the ticker ticked, '#' only "
         "the spinner ran.\n\n",
         RUN_MS, TICK_MS, TICK_MS);

  heading(&coop);
  measure(&coop);
  report(&coop);
  heading(&pre);
  measure(&pre);
  report(&pre);

  if (on_time(&pre) && !on_time(&coop))
    printf("Kept the ticker on time: preemptive.  Time slicing shared the "
           "core; cooperative\nswitching left the ticker %.0f ms without a "
           "tick, until the spinner was done.\n",
           (double)coop.worst_gap / MS_NS);
  else if (!on_time(&pre) && pre.preemptions == 0)
    printf("Kept the ticker on time: %s.  This weft made no preemptions, "
           "so the\npreemptive run was cooperative too (weft.h, "
           "\"Preemption\", says when weft\ncannot preempt).\n",
           on_time(&coop) ? "cooperative" : "neither");
  else
    printf("Kept the ticker on time: %s.\n",
           on_time(&pre) ? (on_time(&coop) ? "both" : "preemptive")
                         : (on_time(&coop) ? "cooperative" : "neither"));
  return 0;
}
