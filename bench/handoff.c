/*
 * handoff.c - one message from one unit to another and back, between
 * kernel threads and between processes, over the transport each can use.
 *
 * Two units ping-pong a 64-bit counter: the ping side sends, waits for the
 * reply, and so on; every message wakes the other side, so a one-way
 * message is a wake-up plus, when the two share a CPU, a context switch.
 *
 *   handoff.kthread             two kernel threads (KTHREAD tasks, no weft
 *                               runtime running), unbuffered weft channels:
 *                               a blocked kernel thread sleeps on a futex
 *   handoff.kthread.pipe        the same two threads over a pair of pipes
 *   handoff.process.pipe        two worker processes (weft_procs_run), 8
 *                               bytes through a pair of pipes
 *   handoff.process.shm         two worker processes, weft_pchan (a ring in
 *                               the shared region; a blocked call spins
 *                               briefly, then sleeps on a shared futex)
 *   handoff.process.shm.green   the same, between one green thread in each
 *                               process (a runtime of one worker each): a
 *                               blocked green thread spins, yielding, then
 *                               parks on its slot's doorbell
 *
 * And one figure of lateness, not of a ping-pong:
 *
 *   pchan.green.wake_late.max   a kernel thread in one worker process
 *                               sends a time stamp after a gap of 50 us to
 *                               1.5 ms (longer than a blocked call spins,
 *                               and long enough for a poller's naps to grow
 *                               to their longest), to a green thread of
 *                               another, parked at each send: the worst of
 *                               WAKE_N wakes per sample (quick:
 *                               WAKE_N_QUICK) of how long after the stamp
 *                               the receive returned, in us; over the
 *                               default 5 samples, 10,000 wakes
 *   pchan.green.wake_late.p99   the 99th percentile of the same wakes
 *   pchan.wake_late.ref.max     reference, not weft: the same wakes
 *   pchan.wake_late.ref.p99     between the same two pinned processes,
 *                               with nothing but an eventfd in an epoll
 *                               set: what this machine's kernel and CPUs
 *                               make of a cross-process wake-up, the floor
 *                               the two above sit on
 *
 * Placement matters more than anything else here, so it is fixed: the
 * names above have the two units pinned to two different CPUs (the first
 * two this process may use): a message is a cross-CPU wake-up.  The same
 * names with .1cpu have both pinned to one CPU: every message is then a
 * real context switch from one unit to the other (a process switch changes
 * the page tables, a thread switch does not).  Each kind here uses the
 * transport its units have, so handoff.kthread.1cpu (a weft channel) and
 * handoff.process.shm.1cpu (a weft_pchan, which spins a little before it
 * sleeps) differ in more than the address space: bench/mmswitch compares
 * the two kinds of unit over one and the same futex code, which isolates
 * the page-table switch (handoff.mm_switch).  Green threads are measured
 * by chan (handoff.green.local, .cross) and yield.
 *
 * Each sample is a fresh process; the kinds take turns within a
 * repetition.  Each ping-pong runs for a fixed time after a warm-up and
 * counts its round trips.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gbench.h"

#define STOP UINT64_MAX
#define WARMUP_NS (20 * 1000000LL)
#define SHM_SIZE ((size_t)64 << 20)

#define WAKE_GAP_MIN_NS (50 * 1000LL)
#define WAKE_GAP_MAX_NS (1500 * 1000LL)
#define WAKE_N 2000
#define WAKE_N_QUICK 400

enum kind { KT_CHAN, KT_PIPE, PR_PIPE, PR_SHM, PR_SHM_GREEN, NKINDS };

static const char *const kind_arg[NKINDS] = {
    "kthread.chan", "kthread.pipe", "process.pipe", "process.shm",
    "process.shm.green"};
static const char *const kind_name[NKINDS] = {
    "handoff.kthread", "handoff.kthread.pipe", "handoff.process.pipe",
    "handoff.process.shm", "handoff.process.shm.green"};

/* Lives in shared memory when the units are processes. */
struct pp {
  enum kind kind;
  int cpus;
  int64_t budget;
  weft_chan *ch[2];   /* KT_CHAN: 0 ping -> pong, 1 back */
  int pipe_fd[2][2];  /* *_PIPE */
  weft_pchan *pch[2]; /* PR_SHM, PR_SHM_GREEN */
  /* Results, written by ping. */
  int64_t ns;
  long rounds;
  int err;
  /* The lateness run: wakes to measure, the worst and the 99th
   * percentile, in ns. */
  long wakes;
  int64_t late_max, late_p99;
  _Atomic int late_ready; /* the receiver is about to take the first */
};

static int xsend(struct pp *p, int dir, uint64_t v) {
  switch (p->kind) {
  case KT_CHAN:
    return weft_chan_send(p->ch[dir], &v);
  case PR_SHM:
  case PR_SHM_GREEN:
    return weft_pchan_send(p->pch[dir], &v, weft_deadline(10000000000LL));
  default:
    for (;;) {
      ssize_t w = write(p->pipe_fd[dir][1], &v, sizeof(v));

      if (w == (ssize_t)sizeof(v))
        return 0;
      if (w < 0 && errno == EINTR)
        continue;
      return w < 0 ? -errno : -EIO;
    }
  }
}

static int xrecv(struct pp *p, int dir, uint64_t *v) {
  switch (p->kind) {
  case KT_CHAN:
    return weft_chan_recv(p->ch[dir], v);
  case PR_SHM:
  case PR_SHM_GREEN:
    return weft_pchan_recv(p->pch[dir], v, weft_deadline(10000000000LL));
  default:
    for (;;) {
      ssize_t r = read(p->pipe_fd[dir][0], v, sizeof(*v));

      if (r == (ssize_t)sizeof(*v))
        return 0;
      if (r < 0 && errno == EINTR)
        continue;
      return r < 0 ? -errno : -EPIPE;
    }
  }
}

static int ping(struct pp *p) {
  uint64_t v = 0;
  int64_t t0, now, end;
  long n = 0;
  int rc;

  bench_pin(0);
  end = bench_now() + (p->budget / 2 < WARMUP_NS ? p->budget / 2 : WARMUP_NS);
  do {
    for (int k = 0; k < 16; k++)
      if ((rc = xsend(p, 0, v)) < 0 || (rc = xrecv(p, 1, &v)) < 0)
        goto fail;
  } while (bench_now() < end);
  t0 = bench_now();
  do {
    for (int k = 0; k < 16; k++) {
      xsend(p, 0, v);
      xrecv(p, 1, &v);
    }
    n += 16;
    now = bench_now();
  } while (now - t0 < p->budget);
  p->ns = now - t0;
  p->rounds = n;
  rc = xsend(p, 0, STOP);
fail:
  if (rc < 0) {
    fprintf(stderr, "bench: %s ping: %s\n", kind_arg[p->kind],
            weft_strerror(rc));
    p->err = rc;
    return 1;
  }
  return 0;
}

static int pong(struct pp *p) {
  uint64_t v;
  int rc;

  bench_pin(p->cpus == 2 ? 1 : 0);
  while ((rc = xrecv(p, 0, &v)) == 0 && v != STOP)
    if ((rc = xsend(p, 1, v + 1)) < 0)
      break;
  if (rc < 0) {
    fprintf(stderr, "bench: %s pong: %s\n", kind_arg[p->kind],
            weft_strerror(rc));
    return 1;
  }
  return 0;
}

static void *ping_thread(void *p) { return (void *)(intptr_t)ping(p); }
static void *pong_thread(void *p) { return (void *)(intptr_t)pong(p); }

static int worker(int index, void *arg) {
  struct pp *p = arg;
  gb_worker_setup();
  if (p->kind != PR_SHM_GREEN)
    return index == 0 ? ping(p) : pong(p);
  /* One green thread on a runtime of one worker, which ping and pong pin
   * (the worker thread is the one they run on). */
  gb_init(1);
  int rc = (int)(intptr_t)gb_join(gb_spawn(index == 0 ? ping_thread
                                                      : pong_thread,
                                           p));
  gb_check(weft_shutdown(), "weft_shutdown");
  return rc;
}

/* The lateness run: slot 0 sends stamps from its kernel thread, slot 1
 * receives them in a green thread. */
static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static void *late_receiver(void *arg) {
  struct pp *p = arg;
  int64_t *late = calloc((size_t)p->wakes, sizeof *late);
  long n = 0;
  if (!late)
    return (void *)1;
  atomic_store(&p->late_ready, 1);
  for (long i = 0;; i++) {
    int64_t stamp;
    int rc = weft_pchan_recv(p->pch[0], &stamp, weft_deadline(10000000000LL));
    if (rc < 0) {
      fprintf(stderr, "bench: wake_late receiver: %s\n", weft_strerror(rc));
      p->err = rc;
      return (void *)1;
    }
    if (stamp < 0)
      break;
    if (n < p->wakes)
      late[n++] = weft_now() - stamp;
  }
  qsort(late, (size_t)n, sizeof *late, cmp_i64);
  p->late_max = n ? late[n - 1] : 0;
  p->late_p99 = n ? late[n * 99 / 100] : 0;
  free(late);
  return NULL;
}

static int late_worker(int index, void *arg) {
  struct pp *p = arg;
  gb_worker_setup();
  bench_pin(index);
  if (index == 1) {
    gb_init(1);
    int rc = gb_join(gb_spawn(late_receiver, p)) != NULL;
    gb_check(weft_shutdown(), "weft_shutdown");
    return rc;
  }
  /* The first stamp waits for the receiver: otherwise it would measure
   * how long the receiver's process took to start. */
  for (int k = 0; !atomic_load(&p->late_ready) && k < 100000; k++)
    usleep(100); /* (10 s at most: a receiver that failed says so) */
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  for (long i = 0; i <= p->wakes; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    struct timespec gap = {
        0, WAKE_GAP_MIN_NS +
               (long)(rng % (uint64_t)(WAKE_GAP_MAX_NS - WAKE_GAP_MIN_NS))};
    while (nanosleep(&gap, &gap) != 0 && errno == EINTR)
      ;
    int64_t stamp = i < p->wakes ? weft_now() : -1;
    int rc = weft_pchan_send(p->pch[0], &stamp, weft_deadline(10000000000LL));
    if (rc < 0) {
      fprintf(stderr, "bench: wake_late sender: %s\n", weft_strerror(rc));
      return 1;
    }
  }
  return 0;
}

/* Child "late": writes the worst lateness and its 99th percentile, in
 * us. */
static int late_child(const struct bench_opts *o) {
  struct pp *p = bench_shared(sizeof(*p));
  p->wakes = o->quick ? WAKE_N_QUICK : WAKE_N;
  gb_check(weft_shm_setup(SHM_SIZE, 2), "weft_shm_setup");
  gb_check(weft_pchan_open(&p->pch[0], sizeof(int64_t), 1), "weft_pchan_open");
  if (gb_procs_pair(late_worker, p) || p->err)
    return 1;
  bench_put(o, (double)p->late_max / 1000.0);
  bench_put(o, (double)p->late_p99 / 1000.0);
  return 0;
}

static void open_pipes(struct pp *p) {
  for (int d = 0; d < 2; d++)
    if (pipe(p->pipe_fd[d]) != 0) {
      perror("bench: pipe");
      exit(1);
    }
}

/* The reference run: the sender (pinned as slot 0 is) writes a stamp and
 * rings an eventfd after each gap, and waits until the receiver (pinned
 * as slot 1 is), blocked in epoll_wait, has taken it before the next gap;
 * no weft.  Writes the worst lateness and its 99th percentile, in us. */
struct lref {
  _Atomic int64_t stamp;
  _Atomic long taken;
  _Atomic int ready;
  int64_t max, p99;
  int err;
};

static int lref_receiver(struct lref *l, int efd, long wakes) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event e = {.events = EPOLLIN};
  int64_t *late = calloc((size_t)wakes, sizeof *late);
  if (ep < 0 || !late || epoll_ctl(ep, EPOLL_CTL_ADD, efd, &e) < 0)
    return 1;
  atomic_store(&l->ready, 1);
  for (long n = 0; n < wakes;) {
    struct epoll_event ev;
    int r = epoll_wait(ep, &ev, 1, 10000);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return 1;
    int64_t t = weft_now();
    uint64_t v;
    if (read(efd, &v, sizeof v) != sizeof v)
      continue;
    late[n++] = t - atomic_load(&l->stamp);
    atomic_store(&l->taken, n);
  }
  qsort(late, (size_t)wakes, sizeof *late, cmp_i64);
  l->max = late[wakes - 1];
  l->p99 = late[wakes * 99 / 100];
  return 0;
}

static int lref_child(const struct bench_opts *o) {
  struct lref *l = bench_shared(sizeof(*l));
  long wakes = o->quick ? WAKE_N_QUICK : WAKE_N;
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0)
    return 1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return 1;
  if (pid == 0) {
    bench_pin(1);
    _exit(lref_receiver(l, efd, wakes));
  }
  bench_pin(0);
  for (int k = 0; !atomic_load(&l->ready) && k < 100000; k++)
    usleep(100);
  uint64_t rng = 0x9E3779B97F4A7C15ULL, one = 1;
  for (long i = 0; i < wakes; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    struct timespec gap = {
        0, WAKE_GAP_MIN_NS +
               (long)(rng % (uint64_t)(WAKE_GAP_MAX_NS - WAKE_GAP_MIN_NS))};
    while (nanosleep(&gap, &gap) != 0 && errno == EINTR)
      ;
    atomic_store(&l->stamp, weft_now());
    if (write(efd, &one, sizeof one) != sizeof one)
      break;
    /* The next stamp waits for this one's receipt (10 s at most). */
    for (int k = 0; atomic_load(&l->taken) <= i && k < 1000000; k++)
      usleep(10);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
    return 1;
  bench_put(o, (double)l->max / 1000.0);
  bench_put(o, (double)l->p99 / 1000.0);
  return 0;
}

/* Child: args KIND CPUS BUDGET_MS.  Writes ns per one-way message and the
 * number of round trips. */
static int child(const struct bench_opts *o) {
  struct pp *p = bench_shared(sizeof(*p));
  int k;

  if (strcmp(o->child, "late") == 0)
    return late_child(o);
  if (strcmp(o->child, "lateref") == 0)
    return lref_child(o);
  for (k = 0; k < NKINDS; k++)
    if (strcmp(o->child_argv[0], kind_arg[k]) == 0)
      break;
  if (k == NKINDS)
    return 2;
  p->kind = (enum kind)k;
  p->cpus = atoi(o->child_argv[1]);
  p->budget = atol(o->child_argv[2]) * 1000000LL;
  if (p->kind == KT_CHAN || p->kind == KT_PIPE) {
    if (p->kind == KT_CHAN)
      for (int d = 0; d < 2; d++)
        gb_check(weft_chan_open(&p->ch[d], sizeof(uint64_t), 0),
                 "weft_chan_open");
    else
      open_pipes(p);
    if (gb_kthread_pair(ping_thread, pong_thread, p))
      return 1;
  } else {
    if (p->kind == PR_SHM || p->kind == PR_SHM_GREEN) {
      gb_check(weft_shm_setup(SHM_SIZE, 2), "weft_shm_setup");
      for (int d = 0; d < 2; d++)
        gb_check(weft_pchan_open(&p->pch[d], sizeof(uint64_t), 1),
                 "weft_pchan_open");
    } else {
      open_pipes(p);
    }
    if (gb_procs_pair(worker, p))
      return 1;
  }
  if (p->err || p->rounds == 0)
    return 1;
  bench_put(o, (double)p->ns / (2.0 * (double)p->rounds));
  bench_put(o, (double)p->rounds);
  return 0;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double ns[2][NKINDS][BENCH_MAX_REPS], rounds[2][NKINDS][BENCH_MAX_REPS];
  struct bench_tally t[2][NKINDS] = {{{.runs = 0}}};
  int got[2][NKINDS] = {{0}};
  double late[4][BENCH_MAX_REPS];
  struct bench_tally tl[4] = {{.name = "pchan.green.wake_late.max"},
                              {.name = "pchan.green.wake_late.p99"},
                              {.name = "pchan.wake_late.ref.max"},
                              {.name = "pchan.wake_late.ref.p99"}};
  int nlate[2] = {0, 0};
  char budget[16], note[160];

  bench_init(&o, argc, argv,
             "ping-pong between kernel threads and "
             "between processes",
             120);
  if (o.child)
    return child(&o);
  snprintf(budget, sizeof(budget), "%d", o.quick ? 25 : 120);
  for (int c = 0; c < 2; c++)
    for (int k = 0; k < NKINDS; k++)
      snprintf(t[c][k].name, sizeof(t[c][k].name), "%s%s", kind_name[k],
               c ? ".1cpu" : "");
  for (int r = 0; r < o.reps; r++)
    for (int c = 0; c < 2; c++)
      for (int k = 0; k < NKINDS; k++) {
        const char *args[4] = {kind_arg[k], c == 0 ? "2" : "1", budget, NULL};
        double out[2];

        if (bench_childv(&o, &t[c][k], "handoff", out, 2, args) == 2) {
          ns[c][k][got[c][k]] = out[0];
          rounds[c][k][got[c][k]++] = out[1];
        }
      }
  /* weft's run and the reference take turns. */
  for (int r = 0; r < o.reps; r++)
    for (int j = 0; j < 2; j++) {
      double out[2];
      if (bench_child(&o, &tl[2 * j], j ? "lateref" : "late", out, 2, NULL,
                      NULL) == 2) {
        late[2 * j][nlate[j]] = out[0];
        late[2 * j + 1][nlate[j]++] = out[1];
      }
    }
  /* One child gives both figures: the same tally, under the other name. */
  for (int j = 0; j < 2; j++) {
    char p99_name[sizeof tl[1].name];
    memcpy(p99_name, tl[2 * j + 1].name, sizeof p99_name);
    tl[2 * j + 1] = tl[2 * j];
    memcpy(tl[2 * j + 1].name, p99_name, sizeof p99_name);
  }
  bench_table(&o, "Ping-pong, ns per one-way message (kernel threads and "
                  "processes)");
  for (int c = 0; c < 2; c++)
    for (int k = 0; k < NKINDS; k++) {
      snprintf(note, sizeof(note), "%s; %.0f round trips in %s ms",
               c                   ? "both on one CPU"
               : bench_ncpus() > 1 ? "pinned to two CPUs"
                                   : "one CPU only (this machine)",
               bench_median(rounds[c][k], got[c][k]), budget);
      bench_row(&o, t[c][k].name, &t[c][k], ns[c][k], got[c][k], "ns", note);
    }
  for (int k = 0; k < 4; k++) {
    snprintf(note, sizeof(note),
             "%s of %d wakes a sample of %s, a send every %lld to %lld us "
             "from another process",
             k & 1 ? "99th percentile" : "worst",
             o.quick ? WAKE_N_QUICK : WAKE_N,
             k < 2 ? "a parked green receiver"
                   : "a process in epoll_wait on an eventfd (not weft)",
             WAKE_GAP_MIN_NS / 1000, WAKE_GAP_MAX_NS / 1000);
    bench_row(&o, tl[k].name, &tl[k], late[k], nlate[k / 2], "us", note);
  }
  return bench_status();
}
