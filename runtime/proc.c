/*
 * proc.c - worker processes: the supervisor that forks a pool of workers,
 * restarts the ones that crash, forwards SIGTERM/SIGINT so that they
 * drain, and reaps every child.
 *
 * The actors.
 *   supervisor  the process that calls weft_procs_run.  It runs no weft
 *               workers (fork keeps only the calling thread, so a pool is
 *               forked from a clean state, with no other thread),
 *               allocates nothing from the shared heap, and only forks,
 *               waits, logs, signals and reaps.
 *   slot        a worker's place in the pool, 0 .. procs - 1.  The index,
 *               the shared-heap partition and the restart count belong to
 *               the slot and outlive the process that fills it.
 *   worker      the process in a slot: a clean runtime (the fork handler
 *               of rt.h), its signal handlers, its slot's partition
 *               (weft__shm_attach), then
 *               exit(cfg->worker(index, arg)).
 *
 * Waiting.  The supervisor blocks SIGCHLD, SIGTERM and SIGINT and reads
 * them from a signalfd, in ppoll with a timeout that is the next due
 * restart or the end of the drain: no busy polling, and no code in signal
 * handlers.  On SIGCHLD it reaps each live worker by pid (WNOHANG), not
 * with waitpid(-1), so that children the application forked itself (a
 * process task, say) are left to their owner.
 *
 * Restarts.  A worker that dies of a signal or exits non-zero is logged, its
 * partition reclaimed, and it is forked again after a backoff of 10 ms,
 * doubling to 1 s while it keeps dying young; a worker that stayed up for
 * STABLE_NS starts over at 10 ms.  max_restarts (per slot) bounds the
 * restarts; past it the slot is given up, logged, and counts as
 * failed.  max_restarts -1 never restarts: for workers whose state lives in
 * shared memory and cannot be resumed by a fresh process (a restarted worker
 * would start over on a stream its predecessor left half done).  A worker that
 * exits 0 is done, unless it was drained by a signal the supervisor did not
 * send (an operator's SIGTERM to one pid): then it exits EXIT_DRAINED_ALONE,
 * whatever its function returned, and is started again like a failed one (its
 * partition reclaimed), with a line saying why, so that the pool never shrinks
 * in silence.
 *
 * Draining.  SIGTERM or SIGINT to the supervisor: it stops restarting, stops
 * the listening socket (cfg->listen_fd: new clients are refused at once, as
 * nginx's are), sends SIGTERM to every worker (whose handler only sets the
 * flag that weft_procs_draining() reads), and waits up to drain_ms before
 * sending SIGKILL to the rest.  The supervisor returns once every worker it
 * forked has been reaped, after restoring its signal mask and SIGCHLD action.
 *
 * Orphans.  Each worker asks for SIGTERM when the supervisor dies
 * (PR_SET_PDEATHSIG), so a supervisor killed outright leaves workers that
 * drain and exit instead of working on unsupervised.
 *
 * The result is 0 if the last process of every slot exited 0, 1 if any
 * slot ended otherwise (given up, or killed or failing while draining); a
 * crash that was followed by a good restart does not count.
 */
#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "sched.h"
#include "shm.h"

#define BACKOFF_MIN_NS ((int64_t)10 * 1000000)
#define BACKOFF_MAX_NS ((int64_t)1000 * 1000000)
#define STABLE_NS ((int64_t)10 * 1000000000)
#define DRAIN_MS_DEFAULT 10000
/* A worker that could not take its shared-heap slot exits with this
 * (EX_SOFTWARE), and is restarted like any failure. */
#define EXIT_ATTACH_FAILED 70
/* A worker drained by a signal that the supervisor did not send (an
 * operator's kill of one pid) exits with this, whatever its function
 * returned, and is started again (EX_TEMPFAIL). */
#define EXIT_DRAINED_ALONE 75

/* ------------------------------------------------------------------ */
/* The worker's side                                                  */
/* ------------------------------------------------------------------ */

static int self_index = -1;
static int self_listen_fd = -1;
/* Set by the SIGTERM/SIGINT handler; lock-free atomics are
 * async-signal-safe.  Relaxed: it is a flag, it orders nothing. */
static _Atomic int self_draining;
/* One supervisor per process at a time. */
static _Atomic bool supervising;

int weft_procs_index(void) { return self_index; }

bool weft_procs_draining(void) {
  return self_index >= 0 && ld_relaxed(&self_draining);
}

int weft_procs_listen_fd(void) { return self_index >= 0 ? self_listen_fd : -1; }

/* In any child a worker forks (a process task, system(), popen()): that
 * child is no worker, so weft_procs_* answer as outside one.  The shared
 * heap's own fork handler keeps it out of the slot's partition. */
void weft__proc_fork_child(void) {
  self_index = -1;
  self_listen_fd = -1;
  st_relaxed(&self_draining, 0);
}

/* Who asked this worker to drain: the supervisor (its pid), the terminal
 * (SIGINT to the whole group, supervisor included), or a process that
 * signalled this worker alone. */
static pid_t self_sup_pid;
static _Atomic int self_drain_from_sup, self_drain_from_other;

static void on_drain_signal(int sig, siginfo_t *si, void *uc) {
  (void)sig, (void)uc;
  bool sent = si && (si->si_code == SI_USER || si->si_code == SI_QUEUE ||
                     si->si_code == SI_TKILL);
  if (sent && si->si_pid != self_sup_pid)
    st_relaxed(&self_drain_from_other, 1);
  else
    st_relaxed(&self_drain_from_sup, 1);
  st_relaxed(&self_draining, 1);
}

/* ------------------------------------------------------------------ */
/* The supervisor                                                     */
/* ------------------------------------------------------------------ */

struct slot {
  pid_t pid;          /* the live worker, 0 when none */
  int64_t started;    /* when it was forked */
  int64_t restart_at; /* a pending restart, 0 when none */
  int64_t backoff;
  int restarts;
  bool killed; /* SIGKILLed at the end of the drain */
  bool ended;  /* no process now, and none to come */
  bool failed; /* ended, and the last process did not exit 0 */
};

struct sup {
  const weft_procs_config *cfg;
  int procs;
  pid_t pid; /* the supervisor's */
  int sfd;   /* signalfd: SIGCHLD, SIGTERM, SIGINT */
  sigset_t old_mask;
  struct sigaction old_chld;
  bool stopping;
  bool killed_rest;
  int64_t kill_at;
  struct slot slot[WEFT__SHM_MAX_PARTS];
};

WEFT_NORETURN static void worker_main(struct sup *s, int index) {
  const weft_procs_config *cfg = s->cfg;

  close(s->sfd); /* the fork reset this process's runtime (rt.c) */

  /* Signals: SIGTERM and SIGINT ask for a drain (no SA_RESTART, so that a
   * worker blocked in a call sees EINTR and can look at the flag);
   * SIGCHLD gets back what the application had; the mask is the one the
   * supervisor was called with, less the drain signals. */
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_drain_signal;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGCHLD, &s->old_chld, NULL);
  sigset_t mask = s->old_mask;
  sigdelset(&mask, SIGTERM);
  sigdelset(&mask, SIGINT);
  sigdelset(&mask, SIGCHLD);

  self_index = index;
  self_listen_fd = cfg->listen_fd;
  self_sup_pid = s->pid;
  st_relaxed(&self_draining, 0);
  st_relaxed(&self_drain_from_sup, 0);
  st_relaxed(&self_drain_from_other, 0);
  /* A supervisor that dies without draining us (SIGKILL, a crash) must
   * not leave orphans working on: its death asks us to drain.  If it died
   * before the prctl, the parent is already someone else. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (getppid() != s->pid) {
    st_relaxed(&self_drain_from_sup, 1); /* its death asked for it */
    st_relaxed(&self_draining, 1);
  }
  if (cfg->listen_fd >= 0) {
    int fl = fcntl(cfg->listen_fd, F_GETFD);
    if (fl >= 0 && (fl & FD_CLOEXEC))
      fcntl(cfg->listen_fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  /* SIGTERM sent before this point is pending (blocked since before the
   * fork) and lands now, on the handler. */
  sigprocmask(SIG_SETMASK, &mask, NULL);

  if (weft__shm) {
    int r = weft__shm_attach(index);
    if (r < 0) {
      fprintf(stderr, "weft: worker %d cannot take its shared-heap slot: %s\n",
              index, weft_strerror(r));
      fflush(NULL);
      _exit(EXIT_ATTACH_FAILED);
    }
  }
  int status = cfg->worker(index, cfg->arg);
  /* Stopped by someone else while the supervisor still runs the pool: the
   * supervisor starts another worker in this slot. */
  if (ld_relaxed(&self_drain_from_other) && !ld_relaxed(&self_drain_from_sup))
    status = EXIT_DRAINED_ALONE;
  exit(status);
}

static int fork_worker(struct sup *s, int i) {
  /* Buffered output would otherwise be written again by every worker's
   * exit(). */
  fflush(NULL);
  pid_t pid = weft__fork();
  if (pid < 0)
    return -errno;
  if (pid == 0)
    worker_main(s, i);
  struct slot *sl = &s->slot[i];
  sl->pid = pid;
  sl->started = weft__now();
  sl->restart_at = 0;
  sl->killed = false;
  return 0;
}

/* "killed by SIGSEGV" or "exited with status 3" */
static void describe(int status, char *buf, size_t n) {
  if (WIFSIGNALED(status)) {
    const char *abbrev = sigabbrev_np(WTERMSIG(status));
    if (abbrev)
      snprintf(buf, n, "killed by SIG%s", abbrev);
    else
      snprintf(buf, n, "killed by signal %d", WTERMSIG(status));
  } else {
    snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
  }
}

/* Slot i's worker pid ended with status: log, reclaim, and decide. */
static void on_death(struct sup *s, int i, int status) {
  struct slot *sl = &s->slot[i];
  pid_t pid = sl->pid;
  int64_t now = weft__now();
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  bool killed = sl->killed;

  sl->pid = 0;
  sl->killed = false;
  /* A worker that finished keeps its partition: objects it handed to
   * others stay valid.  One that failed loses it (it is restarted over a
   * clean partition, and stale references are detected). */
  if (weft__shm) {
    if (ok)
      weft__shm_retire(i);
    else
      weft__shm_reclaim(i);
  }

  if (ok) {
    sl->ended = true;
    sl->failed = false;
    return;
  }
  char what[64];
  describe(status, what, sizeof(what));
  bool alone = WIFEXITED(status) && WEXITSTATUS(status) == EXIT_DRAINED_ALONE;
  if (alone && s->stopping) { /* it drained, only a little early */
    sl->ended = true;
    sl->failed = false;
    return;
  }
  if (alone) {
    /* A drain of the whole pool on its way (the same signal sent to the
     * group, read after this death) makes a replacement pointless. */
    sigset_t pending;
    if (sigpending(&pending) == 0 && (sigismember(&pending, SIGTERM) ||
                                      sigismember(&pending, SIGINT))) {
      sl->ended = true;
      sl->failed = false;
      return;
    }
    snprintf(what, sizeof what,
             "drained on a signal the supervisor did not send");
  }
  if (s->stopping) {
    sl->ended = true;
    sl->failed = true;
    if (!killed) /* a kill was logged when it was sent */
      fprintf(stderr,
              "weft: worker %d (pid %d) %s; draining, not "
              "restarting\n",
              i, (int)pid, what);
    return;
  }
  int max = s->cfg->max_restarts;
  if (max < 0) {
    sl->ended = true;
    sl->failed = true;
    fprintf(stderr,
            "weft: worker %d (pid %d) %s; not restarting (max_restarts "
            "-1)\n",
            i, (int)pid, what);
    return;
  }
  if (max > 0 && sl->restarts >= max) {
    sl->ended = true;
    sl->failed = true;
    fprintf(stderr,
            "weft: worker %d (pid %d) %s; restarted %d time%s "
            "already, giving up\n",
            i, (int)pid, what, sl->restarts, sl->restarts == 1 ? "" : "s");
    return;
  }
  fprintf(stderr, "weft: worker %d (pid %d) %s; restarting\n", i, (int)pid,
          what);
  if (sl->backoff == 0 || now - sl->started >= STABLE_NS)
    sl->backoff = BACKOFF_MIN_NS;
  else if ((sl->backoff *= 2) > BACKOFF_MAX_NS)
    sl->backoff = BACKOFF_MAX_NS;
  sl->restarts++;
  sl->restart_at = now + sl->backoff;
}

/* Reaps whatever workers have exited. */
static void reap_workers(struct sup *s) {
  for (int i = 0; i < s->procs; i++) {
    struct slot *sl = &s->slot[i];
    if (!sl->pid)
      continue;
    int status;
    pid_t r = waitpid(sl->pid, &status, WNOHANG);
    if (r == sl->pid) {
      on_death(s, i, status);
    } else if (r < 0 && errno == ECHILD) {
      /* Reaped behind our back (waitpid(-1) elsewhere): status lost. */
      fprintf(stderr,
              "weft: worker %d (pid %d) was reaped elsewhere; "
              "its status is lost\n",
              i, (int)sl->pid);
      on_death(s, i, 0xff << 8);
    }
  }
}

static void begin_stop(struct sup *s) {
  int drain_ms = s->cfg->drain_ms ? s->cfg->drain_ms : DRAIN_MS_DEFAULT;
  s->stopping = true;
  /* No worker will accept again: stop listening (for every process that
   * shares the socket), so that a new client is refused at once instead
   * of waiting in a backlog until the drain ends and then being reset. */
  if (s->cfg->listen_fd >= 0)
    shutdown(s->cfg->listen_fd, SHUT_RDWR);
  s->kill_at = weft__now() + (int64_t)drain_ms * 1000000;
  for (int i = 0; i < s->procs; i++) {
    struct slot *sl = &s->slot[i];
    if (sl->pid) {
      kill(sl->pid, SIGTERM);
    } else if (!sl->ended) {
      /* A restart was pending: the slot ends with its last failure. */
      sl->restart_at = 0;
      sl->ended = true;
      sl->failed = true;
    }
  }
}

static void kill_rest(struct sup *s) {
  int drain_ms = s->cfg->drain_ms ? s->cfg->drain_ms : DRAIN_MS_DEFAULT;
  s->killed_rest = true;
  for (int i = 0; i < s->procs; i++) {
    struct slot *sl = &s->slot[i];
    if (!sl->pid)
      continue;
    fprintf(stderr,
            "weft: worker %d (pid %d) still running %d ms after "
            "SIGTERM; killing it\n",
            i, (int)sl->pid, drain_ms);
    sl->killed = true;
    kill(sl->pid, SIGKILL);
  }
}

/* Kills and reaps every live worker at once (error paths). */
static void kill_all_now(struct sup *s) {
  for (int i = 0; i < s->procs; i++)
    if (s->slot[i].pid)
      kill(s->slot[i].pid, SIGKILL);
  for (int i = 0; i < s->procs; i++) {
    struct slot *sl = &s->slot[i];
    if (!sl->pid)
      continue;
    while (waitpid(sl->pid, NULL, 0) < 0 && errno == EINTR)
      ;
    sl->pid = 0;
    if (weft__shm)
      weft__shm_reclaim(i);
  }
}

/* Starts the restarts that are due; returns the earliest one still to
 * come (0: none). */
static int64_t restart_due(struct sup *s, int64_t now) {
  int64_t next = 0;
  for (int i = 0; i < s->procs; i++) {
    struct slot *sl = &s->slot[i];
    if (!sl->restart_at)
      continue;
    if (sl->restart_at <= now) {
      int r = fork_worker(s, i);
      if (r == 0)
        continue;
      fprintf(stderr, "weft: cannot restart worker %d: %s; retrying\n", i,
              weft_strerror(r));
      if ((sl->backoff *= 2) > BACKOFF_MAX_NS)
        sl->backoff = BACKOFF_MAX_NS;
      sl->restart_at = now + sl->backoff;
    }
    if (!next || sl->restart_at < next)
      next = sl->restart_at;
  }
  return next;
}

static bool anything_left(struct sup *s) {
  for (int i = 0; i < s->procs; i++)
    if (s->slot[i].pid || !s->slot[i].ended)
      return true;
  return false;
}

/* Reads the pending signals and acts on SIGTERM and SIGINT. */
static void read_signals(struct sup *s) {
  struct signalfd_siginfo si[8];
  for (;;) {
    ssize_t n = read(s->sfd, si, sizeof(si));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* EAGAIN: drained */
    for (size_t k = 0; k < (size_t)n / sizeof(si[0]); k++) {
      int sig = (int)si[k].ssi_signo;
      if (sig != SIGTERM && sig != SIGINT)
        continue; /* SIGCHLD: the reap at the top of the loop */
      if (!s->stopping)
        begin_stop(s);
      else /* again: pass it on to those still draining */
        for (int i = 0; i < s->procs; i++)
          if (s->slot[i].pid && !s->slot[i].killed)
            kill(s->slot[i].pid, SIGTERM);
    }
  }
}

static int supervise(struct sup *s) {
  for (;;) {
    reap_workers(s);
    if (!anything_left(s))
      break;
    int64_t now = weft__now();
    int64_t wake = s->stopping ? 0 : restart_due(s, now);
    if (s->stopping && !s->killed_rest) {
      if (now >= s->kill_at) {
        kill_rest(s);
        continue;
      }
      wake = s->kill_at;
    }
    struct timespec ts, *tsp = NULL;
    if (wake) {
      int64_t d = wake > now ? wake - now : 0;
      ts.tv_sec = d / 1000000000;
      ts.tv_nsec = d % 1000000000;
      tsp = &ts;
    }
    struct pollfd pfd = {.fd = s->sfd, .events = POLLIN};
    int r = ppoll(&pfd, 1, tsp, NULL);
    if (r < 0 && errno != EINTR) {
      int err = -errno;
      fprintf(stderr, "weft: supervisor: ppoll: %s; killing the workers\n",
              strerror(errno));
      kill_all_now(s);
      return err;
    }
    if (r > 0)
      read_signals(s);
  }
  for (int i = 0; i < s->procs; i++)
    if (s->slot[i].failed)
      return -ECHILD;
  return 0;
}

static int check_config(const weft_procs_config *cfg) {
  if (!cfg || cfg->procs < 1 || cfg->procs > WEFT__SHM_MAX_PARTS ||
      !cfg->worker || cfg->listen_fd < -1 || cfg->drain_ms < 0 ||
      cfg->max_restarts < -1)
    return -EINVAL;
  if (cfg->listen_fd >= 0 && fcntl(cfg->listen_fd, F_GETFD) < 0)
    return -EBADF;
  return 0;
}

int weft_procs_run(const weft_procs_config *cfg) {
  int err = check_config(cfg);
  if (err)
    return err;
  /* Workers running here would be lost in every child; a worker process
   * cannot supervise a pool of its own (its slot, its partition). */
  if (weft_running() || self_index >= 0)
    return -EBUSY;
  if (atomic_exchange(&supervising, true))
    return -EBUSY;
  weft__fork_watch(); /* before the first fork; workers inherit it */

  if (cfg->shm_size && !weft__shm) {
    err = weft_shm_setup(cfg->shm_size, cfg->procs);
    if (err)
      goto error0;
  }
  if (weft__shm && weft__shm->nparts < cfg->procs) {
    fprintf(stderr,
            "weft: the shared heap has %d partitions, fewer than "
            "the %d worker processes\n",
            weft__shm->nparts, cfg->procs);
    err = -EINVAL;
    goto error0;
  }

  struct sup *s = weft__calloc(1, sizeof(*s));
  if (!s) {
    err = -ENOMEM;
    goto error0;
  }
  s->cfg = cfg;
  s->procs = cfg->procs;
  s->pid = getpid();

  /* Block before the first fork, so that no SIGCHLD or SIGTERM can slip
   * past the signalfd.  SIGCHLD must not be SIG_IGN meanwhile: the kernel
   * would reap the workers itself. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, &s->old_mask) != 0) {
    err = -errno;
    goto error1;
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  if (sigaction(SIGCHLD, &dfl, &s->old_chld) != 0) {
    err = -errno;
    goto error2;
  }
  s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (s->sfd < 0) {
    err = -errno;
    goto error3;
  }

  for (int i = 0; i < s->procs; i++) {
    err = fork_worker(s, i);
    if (err) {
      fprintf(stderr, "weft: cannot start worker %d: %s\n", i,
              weft_strerror(err));
      kill_all_now(s);
      goto error4;
    }
  }
  err = supervise(s);

error4:
  close(s->sfd);
error3:
  sigaction(SIGCHLD, &s->old_chld, NULL);
error2:
  /* A SIGCHLD still pending is left to the application (a handler must
   * cope with a spurious one; a lost one would strand its children). */
  sigprocmask(SIG_SETMASK, &s->old_mask, NULL);
error1:
  free(s);
error0:
  atomic_store(&supervising, false);
  return err;
}
