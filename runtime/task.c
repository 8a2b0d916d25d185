/*
 * task.c - one call, three ways to run a function: as a green thread, as a
 * kernel thread of its own, or in a forked child process.
 *
 * GREEN is weft_spawn/weft_join.  KTHREAD and PROCESS keep a small record
 * whose completion is signalled through the waiter (wait.h), as a green
 * thread's exit is: whoever finishes the task marks the record done under
 * its spinlock and wakes the waiter that queued itself there, if any.  So
 * weft_task_wait parks a green thread (its worker runs others) and sleeps a
 * kernel thread on a futex, whatever the mode.
 *
 * KTHREAD.  The thread runs fn(arg), stores the result, marks the record
 * done and wakes the waiter; the waiter then joins the thread, which by
 * then has nothing left to do but return.
 *
 * Detached tasks (weft_task_detach).  GREEN is weft_detach.  KTHREAD and
 * PROCESS records carry a detached flag beside done, under the same
 * spinlock, and exactly one side frees the record: the detacher if the
 * task was done already, else whoever finishes it (the kernel thread
 * itself, after fn; the reaper, after collecting the child).  A detached
 * kernel thread is pthread_detach'ed before its flag is set, so nobody
 * joins it; a detached process is reaped like any other (below), its
 * status discarded.
 *
 * PROCESS.  The caller forks.  The child drops every trace of the parent's
 * runtime (the fork handler of rt.h, which also drops its worker slot, if
 * the caller is a worker process), runs fn(arg) on
 * its only thread, writes the result into the task's record, flushes stdio
 * and calls _exit(0), so that none of the parent's atexit handlers run
 * twice.  The record lives in a MAP_SHARED page mapped before the fork,
 * which is how one pointer-sized result crosses over without a pipe.  The
 * parent never blocks on the child: one reaper kernel thread, started with
 * the first process task, waits in epoll on a pidfd per child; when one
 * turns readable the child has exited, and the reaper collects its status
 * with waitid(P_PIDFD) (so no zombie is left, even for a task nobody waits
 * for), marks the record done and wakes the waiter, or, for a detached
 * task, frees the record.  The reaper waits for its own children by pidfd
 * only, never with waitpid(-1) or P_ALL: children the application forked
 * itself are left to it, whoever waits for them.  A record whose child
 * exited without writing its result (a signal, or exit() inside fn) gives
 * -ECHILD and a line on stderr.
 *
 * weft_task_pidfd duplicates the record's pidfd under the record's lock,
 * and the reaper clears it under that lock before it closes it, so a
 * caller gets either a pidfd of the child or -ESRCH once it was reaped.
 * (The record does not keep its pidfd until the wait: a program that
 * starts many tasks and waits for them later would hold a descriptor per
 * finished child.)  Why a pidfd for the caller and not only the pid
 * (weft_task_pid): the reaper collects a child as soon as it exits,
 * whether or not anyone waits, so its number is free for the kernel to
 * give to another process from then on; a caller that signals or watches
 * a child by number (a server draining its per-connection processes)
 * could hit a stranger.  A pidfd refers to that one process for as long
 * as it is open.  The alternative, leaving the child a zombie until
 * weft_task_wait (waitid with WNOWAIT), would keep the number reserved,
 * but would leave zombies behind tasks nobody waits for, and would not
 * help a detached task at all.
 *
 * Cost per process task, besides fork itself: pidfd_open and one
 * epoll_ctl in the caller; epoll_wait, waitid, epoll_ctl and close in the
 * reaper.  No pipe, no mmap (records come from a pool of shared pages).
 *
 * Forking from a running runtime.  weft otherwise insists on forks from a
 * clean state; a process task cannot have one, since fn and arg point into the
 * caller's memory, so the child must be a fork of the caller itself (a zygote
 * forked early could not run them).  What makes this safe: the child runs only
 * the forking thread; glibc and jemalloc reset their own locks in the child;
 * weft's fork handler (rt.h) forgets the parent's workers, queues and stack
 * pools, and with weft__task_fork_child this file's reaper and record pool
 * (the epoll instance would otherwise be shared with the parent, and the free
 * records handed out twice).  What the child must not do: use weft objects of
 * the parent (a mutex may be held by a thread that does not exist in the
 * child).
 *
 * Rejected: a pipe per process task for the result (three more syscalls
 * and two descriptors per task); SIGCHLD handling in the library (the
 * application owns that signal, and waitpid(-1) would steal its
 * children); a waitid() per task on a blocking-pool thread (one kernel
 * thread per pending child instead of one for all).
 */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "sched.h"
#include "wait.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* ------------------------------------------------------------------ */
/* The public handle                                                  */
/* ------------------------------------------------------------------ */

#define TASK_LIVE 0x7461736bu     /* "task": started, not waited for yet */
#define TASK_WAITED 0x646f6e65u   /* "done" */
#define TASK_DETACHED 0x64746368u /* "dtch" */

struct kt;
struct prec;

struct task {
  /* TASK_LIVE until weft_task_wait or weft_task_detach claims it with a
   * compare-and-swap (to TASK_WAITED or TASK_DETACHED), so that a second
   * wait or detach (even a concurrent one) sees -EINVAL. */
  _Atomic uint32_t state;
  uint32_t mode;
  union {
    weft_gthread g;
    struct kt *kt;
    struct prec *pr;
  } u;
  pid_t pid; /* PROCESS: the child's, kept after wait and detach */
};

_Static_assert(sizeof(struct task) <= sizeof(weft_task), "task size");
_Static_assert(_Alignof(struct task) <= _Alignof(weft_task), "task align");

/* The common completion protocol of KTHREAD and PROCESS records: lk
 * guards done, detached and joiner. */
struct completion {
  weft__spin lk;
  bool done;
  bool detached; /* nobody will wait: the finisher frees the record */
  struct weft__waiter *joiner;
};

/* The finishing side: marks c done and wakes its waiter, if one is
 * parked.  Returns true when the task was detached: the caller then frees
 * the record (nobody else will).  Otherwise, after this returns, the
 * record may be freed by the waiter or the detacher at any time. */
static bool completion_finish(struct completion *c) {
  weft__spin_lock(&c->lk);
  c->done = true;
  bool detached = c->detached;
  struct weft__waiter *joiner = c->joiner;
  weft__spin_unlock(&c->lk);
  if (joiner && weft__waiter_claim(joiner, 0))
    weft__waiter_wake(joiner);
  return detached;
}

/* The detaching side: returns true when the task is done already, and the
 * caller frees the record; otherwise marks it detached, and the finisher
 * will. */
static bool completion_detach(struct completion *c) {
  weft__spin_lock(&c->lk);
  bool done = c->done;
  if (!done)
    c->detached = true;
  weft__spin_unlock(&c->lk);
  return done;
}

/* The waiting side: returns once c is done (parks if it is not). */
static void completion_wait(struct completion *c) {
  weft__spin_lock(&c->lk);
  if (c->done) {
    weft__spin_unlock(&c->lk);
    return;
  }
  struct weft__waiter w;
  weft__waiter_init(&w);
  w.reason = "task";
  c->joiner = &w;
  /* The unlock runs once we are parked; the finisher reads joiner under
   * lk, so it either sees us queued or we saw done above. */
  weft__waiter_park(&w, weft__unlock_spin, &c->lk, WEFT_FOREVER);
  /* Pairs with the release of lk in completion_finish: done and whatever
   * was written before it are visible. */
  weft__spin_lock(&c->lk);
  weft__assert(c->done);
  weft__spin_unlock(&c->lk);
}

/* ------------------------------------------------------------------ */
/* KTHREAD                                                            */
/* ------------------------------------------------------------------ */

struct kt {
  struct completion c;
  pthread_t thread;
  weft_fn fn;
  void *arg;
  void *result;
};

static void *kt_main(void *p) {
  struct kt *kt = p;
  /* Before the task's code, which may name its thread itself. */
  weft__thread_name("weft-task");
  kt->result = kt->fn(kt->arg);
  if (completion_finish(&kt->c))
    free(kt); /* detached: the thread is too, nobody joins it */
  return NULL;
}

static int kt_start(struct task *t, weft_fn fn, void *arg) {
  struct kt *kt = weft__calloc(1, sizeof(*kt));
  if (!kt)
    return -ENOMEM;
  kt->fn = fn;
  kt->arg = arg;
  int r = weft__pthread_create(&kt->thread, NULL, kt_main, kt);
  if (r) {
    free(kt);
    return -r;
  }
  t->u.kt = kt;
  return 0;
}

static int kt_wait(struct kt *kt, void **result) {
  completion_wait(&kt->c);
  /* The thread has finished fn and is only returning: this join is
   * short even on a worker. */
  pthread_join(kt->thread, NULL);
  if (result)
    *result = kt->result;
  free(kt);
  return 0;
}

static void kt_detach(struct kt *kt) {
  /* First, while kt is certainly ours: once the flag is set, the thread
   * frees kt as soon as fn returns.  A thread that has ended already is
   * released here; a running one releases itself when it returns. */
  int r = pthread_detach(kt->thread);
  weft__assert(r == 0);
  (void)r;
  if (completion_detach(&kt->c))
    free(kt); /* done: the thread has nothing left to do with kt */
}

/* ------------------------------------------------------------------ */
/* PROCESS: records in shared pages                                   */
/* ------------------------------------------------------------------ */

/*
 * One record per process task.  It sits in a MAP_SHARED page so that the
 * child can write `returned` and `result` where the parent reads them;
 * every other field is the parent's own (the child never touches it).
 */
struct prec {
  /* Written by the child: result, then returned = 1 (store-release).  The
   * parent reads them after the reaper collected the child's status, so
   * the child's exit orders them. */
  _Atomic uint32_t returned;
  void *result;
  /* Parent only. */
  struct completion c;
  pid_t pid;
  int pidfd;
  int code;   /* si_code of the child's exit (CLD_*), 0 if unknown */
  int status; /* si_status: exit status or signal number */
  struct prec *next_free;
} WEFT_ALIGNED_CL;

#define POOL_CHUNK (64 << 10) /* bytes mapped at a time */
_Static_assert(POOL_CHUNK % sizeof(struct prec) == 0, "records fill chunks");

/*
 * The record pool and the reaper.  All of it belongs to one process: the
 * fork handler forgets it (the inherited pages stay mapped and
 * unused in the child, which maps its own).
 */
static struct {
  weft__spin lk; /* guards the pool fields */
  struct prec *free;
  char *bump, *end;

  weft__spin start_lk; /* guards starting the reaper */
  _Atomic bool started;
  _Atomic uint32_t running; /* futex: 1 once the reaper thread runs */
  int epfd;
} R = {.epfd = -1};

static struct prec *prec_alloc(void) {
  struct prec *r;
  weft__spin_lock(&R.lk);
  if ((r = R.free)) {
    R.free = r->next_free;
  } else {
    if (R.bump == R.end) {
      void *p = weft__mmap(NULL, POOL_CHUNK, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        weft__spin_unlock(&R.lk);
        return NULL;
      }
      R.bump = p;
      R.end = R.bump + POOL_CHUNK;
    }
    r = (struct prec *)R.bump;
    R.bump += sizeof(*r);
  }
  weft__spin_unlock(&R.lk);
  memset(r, 0, sizeof(*r));
  r->pidfd = -1;
  return r;
}

static void prec_free(struct prec *r) {
  weft__spin_lock(&R.lk);
  r->next_free = R.free;
  R.free = r;
  weft__spin_unlock(&R.lk);
}

/* In any child forked from this process: the reaper thread does not exist
 * there, its epoll instance is the parent's, and the pool's free records
 * are the parent's to hand out.  Forget all three. */
void weft__task_fork_child(void) {
  if (R.epfd >= 0)
    close(R.epfd); /* the child's descriptor only; the parent keeps its */
  R.epfd = -1;
  atomic_store(&R.started, false);
  atomic_store(&R.running, 0);
  atomic_store(&R.start_lk.v, 0);
  atomic_store(&R.lk.v, 0);
  R.free = NULL;
  R.bump = R.end = NULL;
}

/* Collects the exit status of the child of r, whose pidfd turned
 * readable, and completes r. */
static void reap(int epfd, struct prec *r) {
  siginfo_t si;
  memset(&si, 0, sizeof(si));
  int fd = r->pidfd;
  int rc;
  do
    rc = waitid(P_PIDFD, (id_t)fd, &si, WEXITED);
  while (rc < 0 && errno == EINTR);
  /* Deregister explicitly: a child forked meanwhile may hold a copy of
   * the pidfd, which would keep it registered after our close. */
  epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
  /* Under the lock, for weft_task_pidfd, which duplicates it. */
  weft__spin_lock(&r->c.lk);
  r->pidfd = -1;
  weft__spin_unlock(&r->c.lk);
  close(fd);
  /* rc < 0 (ECHILD): somebody else reaped it (SIGCHLD set to SIG_IGN, or
   * a waitpid(-1) in the application); the status is lost. */
  r->code = rc == 0 ? si.si_code : 0;
  r->status = rc == 0 ? si.si_status : 0;
  if (completion_finish(&r->c))
    prec_free(r); /* detached: its status goes unread */
}

static void *reaper_main(void *arg) {
  int epfd = (int)(intptr_t)arg;
  struct epoll_event ev[32];
  weft__thread_name("weft-reaper");
  /* store-release, pairs with the load-acquire in reaper_start_slow */
  st_release(&R.running, 1);
  weft__futex_wake(&R.running, 1);
  for (;;) {
    int n = epoll_wait(epfd, ev, 32, -1);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      weft__throw("process task reaper: epoll_wait: %s", strerror(errno));
    }
    for (int i = 0; i < n; i++)
      reap(epfd, ev[i].data.ptr);
  }
  return NULL;
}

/* Starts the reaper once per process.  Its thread blocks every signal, so
 * that signals meant for the application's threads never land on it. */
WEFT_NOINLINE static int reaper_start_slow(void) {
  int err = 0;
  weft__fork_watch();
  weft__spin_lock(&R.start_lk);
  if (ld_acquire(&R.started))
    goto out;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    err = -errno;
    goto out;
  }
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t th;
  int r = weft__pthread_create(&th, &attr, reaper_main, (void *)(intptr_t)epfd);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r) {
    close(epfd);
    err = -r;
    goto out;
  }
  /* Wait until the thread runs: a fork while it is still starting would
   * copy whatever locks its startup holds (a sanitizer's allocator, for
   * one, is not reset in the child).  Once per process. */
  while (!ld_acquire(&R.running))
    weft__futex_wait(&R.running, 0, WEFT_FOREVER);
  R.epfd = epfd;
  /* store-release, pairs with the load-acquire in reaper_start */
  st_release(&R.started, true);
out:
  weft__spin_unlock(&R.start_lk);
  return err;
}

static inline int reaper_start(void) {
  if (WEFT_LIKELY(ld_acquire(&R.started)))
    return 0;
  return reaper_start_slow();
}

WEFT_NORETURN static void proc_child(struct prec *r, weft_fn fn, void *arg) {
  /* The fork reset this process's runtime (rt.c). */
  r->result = fn(arg);
  /* store-release: the parent reads result after seeing returned */
  st_release(&r->returned, 1);
  fflush(NULL);
  _exit(0);
}

static int proc_start(struct task *t, weft_fn fn, void *arg) {
  int err = reaper_start();
  if (err)
    return err;
  struct prec *r = prec_alloc();
  if (!r)
    return -ENOMEM;
  /* Whatever is buffered now would otherwise be written by the parent
   * and by the child (which flushes before it exits). */
  fflush(NULL);
  pid_t pid = weft__fork();
  if (pid < 0) {
    err = -errno;
    goto error1;
  }
  if (pid == 0)
    proc_child(r, fn, arg);
  r->pid = pid;
  int fd = (int)syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0) {
    err = -errno;
    goto error2;
  }
  /* Before the registration: the reaper may reap at once. */
  r->pidfd = fd;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = r};
  if (weft__epoll_ctl(R.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
    err = -errno;
    goto error3;
  }
  t->u.pr = r;
  t->pid = pid;
  return 0;

  /* The child is running and nothing would collect it: stop it, reap it,
   * and report the shortage. */
error3:
  r->pidfd = -1;
  close(fd);
error2:
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
    ;
  if (err == -EMFILE || err == -ENFILE)
    err = -EAGAIN;
error1:
  prec_free(r);
  return err;
}

static int proc_wait(struct prec *r, void **result) {
  completion_wait(&r->c);
  int rc = 0;
  if (ld_acquire(&r->returned)) {
    if (result)
      *result = r->result;
  } else {
    rc = -ECHILD;
    if (r->code == CLD_KILLED || r->code == CLD_DUMPED) {
      const char *abbrev = sigabbrev_np(r->status);
      if (abbrev)
        fprintf(stderr, "weft: process task (pid %d) killed by SIG%s\n",
                (int)r->pid, abbrev);
      else
        fprintf(stderr, "weft: process task (pid %d) killed by signal %d\n",
                (int)r->pid, r->status);
    } else if (r->code == CLD_EXITED) {
      fprintf(stderr, "weft: process task (pid %d) exited with status %d\n",
              (int)r->pid, r->status);
    } else {
      fprintf(stderr,
              "weft: process task (pid %d) ended without returning (its "
              "status was collected elsewhere: SIGCHLD ignored, or "
              "waitpid(-1) in the application?)\n",
              (int)r->pid);
    }
  }
  prec_free(r);
  return rc;
}

/* ------------------------------------------------------------------ */
/* The calls                                                          */
/* ------------------------------------------------------------------ */

int weft_task_start(weft_task *task, weft_mode mode, weft_fn fn, void *arg) {
  struct task *t = (struct task *)task;
  if (!t || !fn)
    return -EINVAL;
  atomic_store_explicit(&t->state, 0, memory_order_relaxed);
  int err;
  switch (mode) {
  case WEFT_MODE_GREEN:
    err = weft_spawn(&t->u.g, NULL, fn, arg);
    break;
  case WEFT_MODE_KTHREAD:
    err = kt_start(t, fn, arg);
    break;
  case WEFT_MODE_PROCESS:
    err = proc_start(t, fn, arg);
    break;
  default:
    return -EINVAL;
  }
  if (err)
    return err;
  t->mode = (uint32_t)mode;
  /* store-release: a waiter on another thread that sees TASK_LIVE sees
   * the handle written above. */
  st_release(&t->state, TASK_LIVE);
  return 0;
}

/* Moves t from TASK_LIVE to state; false if it was not live (never
 * started, waited for or detached already, or claimed by a concurrent
 * call).  A handle that is not live is left as it is. */
static bool task_claim(struct task *t, uint32_t state) {
  uint32_t live = TASK_LIVE;
  return atomic_compare_exchange_strong_explicit(
      &t->state, &live, state, memory_order_acq_rel, memory_order_acquire);
}

int weft_task_wait(weft_task *task, void **result) {
  struct task *t = (struct task *)task;
  if (!t)
    return -EINVAL;
  if (!task_claim(t, TASK_WAITED))
    return -EINVAL;
  switch (t->mode) {
  case WEFT_MODE_GREEN: {
    int err = weft_join(t->u.g, result);
    if (err == -EDEADLK) /* the task itself: still waitable by others */
      st_release(&t->state, TASK_LIVE);
    return err;
  }
  case WEFT_MODE_KTHREAD:
    return kt_wait(t->u.kt, result);
  case WEFT_MODE_PROCESS:
    return proc_wait(t->u.pr, result);
  default:
    weft__throw("weft_task_wait: a live task with mode %u", t->mode);
  }
}

int weft_task_detach(weft_task *task) {
  struct task *t = (struct task *)task;
  if (!t)
    return -EINVAL;
  if (!task_claim(t, TASK_DETACHED))
    return -EINVAL;
  switch (t->mode) {
  case WEFT_MODE_GREEN: {
    int err = weft_detach(t->u.g);
    if (err) /* -ESRCH: abandoned by weft_shutdown; it stays as it was */
      st_release(&t->state, TASK_LIVE);
    return err;
  }
  case WEFT_MODE_KTHREAD:
    kt_detach(t->u.kt);
    return 0;
  case WEFT_MODE_PROCESS:
    if (completion_detach(&t->u.pr->c))
      prec_free(t->u.pr); /* reaped already: its status goes unread */
    return 0;
  default:
    weft__throw("weft_task_detach: a live task with mode %u", t->mode);
  }
}

/* Whether t was started (live, waited for or detached) as a PROCESS
 * task. */
static bool task_is_process(const struct task *t) {
  uint32_t s = ld_acquire(&t->state);
  return (s == TASK_LIVE || s == TASK_WAITED || s == TASK_DETACHED) &&
         t->mode == WEFT_MODE_PROCESS;
}

pid_t weft_task_pid(const weft_task *task) {
  const struct task *t = (const struct task *)task;
  if (!t || !task_is_process(t))
    return -EINVAL;
  return t->pid;
}

int weft_task_pidfd(const weft_task *task) {
  const struct task *t = (const struct task *)task;
  if (!t || !task_is_process(t) || ld_acquire(&t->state) != TASK_LIVE)
    return -EINVAL;
  /* Live: the record stays until a wait or a detach, which the caller
   * does not run at the same time (weft.h); its pidfd until the reap. */
  struct prec *r = t->u.pr;
  int fd;
  weft__spin_lock(&r->c.lk);
  if (r->pidfd < 0)
    fd = -ESRCH; /* reaped */
  else if ((fd = fcntl(r->pidfd, F_DUPFD_CLOEXEC, 0)) < 0)
    fd = -errno;
  weft__spin_unlock(&r->c.lk);
  return fd;
}
