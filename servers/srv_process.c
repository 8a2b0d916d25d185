/*
 * srv_process.c - a process per connection (--mode process).
 *
 * No weft runtime.  The main thread accepts; each connection runs as a
 * WEFT_MODE_PROCESS task, in a child forked by weft_task_start, and is
 * detached at once (weft_task_detach): weft's reaper collects each child
 * as it exits, so none is left a zombie and nothing here calls waitpid.
 * Before the detach the server takes a pidfd for the child
 * (weft_task_pidfd), which is how it signals the child and sees it end
 * afterwards.  Not by pid: the reaper frees a child's pid the moment the
 * child exits, and a kill(pid) after that could reach another process.
 *
 * Shutdown closes the listener, tells every child to stop (SIGUSR1:
 * process_child_stop; an idle one ends at once, a busy one finishes its
 * request), waits up to --drain-ms for them, then sends SIGTERM to the
 * rest and waits until they have all exited, and then until weft's
 * reaper has collected them all (kids_wait_reaped).  (Under ThreadSanitizer the
 * children never run their SIGUSR1 handler: TSan turns its interceptors
 * off in the child of a multi-threaded fork, and the parent runs weft's
 * reaper thread.  They end at the SIGTERM instead.)
 *
 * Descriptors: the parent holds two per live child, weft's pidfd (until
 * the reaper collects the child) and its own, watched in an epoll set.  Its own is taken after the
 * parent has closed its copy of the connection, in the slot that frees,
 * so that running out of descriptors makes accept or weft_task_start
 * fail (and the server back off) rather than leave a child it cannot
 * watch.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv.h"
#include "srv_internal.h"
#include "weft.h"

/* The children still running, a pidfd each: an epoll set of them says
 * which have ended (a pidfd turns readable when its process exits), so
 * that a look costs one call however many there are, and an array lists
 * them for the signals of a stop (pos maps a pidfd to its index). */
static struct {
  int ep; /* the epoll set, or -1 before the first child */
  int *fd;
  size_t n, cap;
  size_t *pos;
  size_t pos_cap;
} kids = {.ep = -1};

/* Makes room for one more child. */
static bool kid_reserve(void) {
  if (kids.ep < 0 && (kids.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
    return false;
  if (kids.n < kids.cap)
    return true;
  size_t cap = kids.cap ? kids.cap * 2 : 64;
  int *p = realloc(kids.fd, cap * sizeof *p);
  if (!p)
    return false;
  kids.fd = p;
  kids.cap = cap;
  return true;
}

/* Watches pidfd; false (and pidfd closed) when out of memory. */
static bool kid_add(int pidfd) {
  if ((size_t)pidfd >= kids.pos_cap) {
    size_t cap = (size_t)pidfd * 2 + 64;
    size_t *p = realloc(kids.pos, cap * sizeof *p);
    if (!p) {
      close(pidfd);
      return false;
    }
    kids.pos = p;
    kids.pos_cap = cap;
  }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = pidfd};
  if (epoll_ctl(kids.ep, EPOLL_CTL_ADD, pidfd, &ev) < 0) {
    close(pidfd);
    return false;
  }
  kids.pos[pidfd] = kids.n;
  kids.fd[kids.n++] = pidfd;
  return true;
}

static void kid_forget(int pidfd) {
  size_t i = kids.pos[pidfd];
  int last = kids.fd[--kids.n];
  kids.fd[i] = last;
  kids.pos[last] = i;
  /* Explicitly: the children hold copies of the pidfd, which keep its
   * registration alive after the close. */
  epoll_ctl(kids.ep, EPOLL_CTL_DEL, pidfd, NULL);
  close(pidfd);
}

/* Waits up to timeout_ms (0: not at all; -1: for ever) until at least one
 * child has exited, then forgets those that have (closes their pidfds).
 * Returns how many are left. */
static size_t kids_forget_ended(int timeout_ms) {
  if (!kids.n)
    return 0;
  struct epoll_event ev[64];
  int r = epoll_wait(kids.ep, ev, 64, timeout_ms);
  for (int i = 0; i < r; i++) /* r < 0 (EINTR): the caller comes back */
    kid_forget(ev[i].data.fd);
  return kids.n;
}

/* Before each accept: forgets the children that have ended. */
static void kids_forget_some(void) { kids_forget_ended(0); }

static void kids_signal(int sig) {
  for (size_t i = 0; i < kids.n; i++)
    /* ESRCH: it has just exited; kids_forget_ended will see it. */
    (void)syscall(SYS_pidfd_send_signal, kids.fd[i], sig, NULL, 0);
}

/* Waits (up to 5 s) until weft's reaper has collected every child: one
 * that has exited is seen through its pidfd before it is reaped, and
 * would outlive the server as a zombie of whoever adopts it.  WNOWAIT
 * only looks: the reaper still collects each child. */
static void kids_wait_reaped(void) {
  for (int i = 0; i < 5000; i++) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
        errno == ECHILD)
      return;
    usleep(1000);
  }
}

/* ------------------------------------------------------------------------ */
/* The child                                                                */
/* ------------------------------------------------------------------------ */

/* The one connection of a child: its fd, and whether it is idle (read by
 * the stop handler). */
static int proc_conn_fd = -1;
static volatile sig_atomic_t proc_idle;

void srv_process_idle(bool idle) {
  if (proc_conn_fd >= 0)
    proc_idle = idle;
}

/* In a connection's child: the parent's SIGUSR1 says the server is
 * stopping.  The child finishes the request it is in (answering with
 * "Connection: close"), and an idle one ends at once: its read is shut
 * down, so it returns end of file.  Async-signal-safe: a flag and
 * shutdown(2). */
static void process_child_stop(int sig) {
  (void)sig;
  atomic_store_explicit(&srv_stop_flag, 1, memory_order_relaxed);
  if (proc_idle)
    shutdown(proc_conn_fd, SHUT_RD);
}

struct child_arg {
  int lfd;
  int fd;
  uint64_t id;
};

/* The task's function, in the child (a copy of the parent's memory at the
 * fork); weft_task_start's child flushes stdio and _exits when it
 * returns. */
static void *process_child(void *arg) {
  const struct child_arg *a = arg;
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  proc_conn_fd = a->fd;
  sa.sa_handler = process_child_stop;
  sigaction(SIGUSR1, &sa, NULL);
  /* Blocked in the parent since before the fork (srv_run_process): a stop
   * sent meanwhile waits for the handler, and lands now. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_UNBLOCK, &usr1, NULL);
  /* The parent's watch of the other children is not ours.  (Their pidfds
   * are left open: closing them costs a call each, per connection, and
   * holding them keeps nothing alive.) */
  close(kids.ep);
  kids.ep = -1;
  weft_fd_forget(a->lfd);
  close(a->lfd);
  srv_opt.app->serve(a->fd, a->id);
  weft_close(a->fd);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* The parent                                                               */
/* ------------------------------------------------------------------------ */

/* Starts a detached process task for fd and closes the parent's copy. */
static void process_start_conn(int lfd, int fd, uint64_t id) {
  if (!kid_reserve()) {
    srv_say("out of memory for connection %" PRIu64 "; closing it", id);
    weft_close(fd);
    weft_sleep(BACKOFF_NS);
    return;
  }
  struct child_arg a = {.lfd = lfd, .fd = fd, .id = id};
  weft_task t;
  int rc = weft_task_start(&t, WEFT_MODE_PROCESS, process_child, &a);
  weft_fd_forget(fd);
  close(fd); /* the child has its own */
  if (rc < 0) {
    srv_say("fork for connection %" PRIu64 ": %s; closing it", id,
            weft_strerror(rc));
    weft_sleep(BACKOFF_NS);
    return;
  }
  int pidfd = weft_task_pidfd(&t);
  (void)weft_task_detach(&t); /* cannot fail: started, not yet waited for */
  if (pidfd == -ESRCH)
    return; /* it has ended already, and weft has reaped it */
  if (pidfd < 0) {
    /* Only when the system as a whole is out of descriptors (ENFILE) or
     * memory: this child is left to end with its connection, unwatched,
     * and a drain will not wait for it.  weft still reaps it. */
    srv_say("cannot watch the process of connection %" PRIu64 ": %s", id,
            weft_strerror(pidfd));
    return;
  }
  if (!kid_add(pidfd))
    srv_say("cannot watch the process of connection %" PRIu64
            ": out of memory", id);
}

int srv_run_process(int lfd) {

  /* SIGUSR1 is the children's stop (process_child_stop); the parent
   * never takes it, and a child forked just before a stop gets it once
   * its handler is in place. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, NULL);

  if (srv_run_setup() < 0) {
    close(lfd);
    return 1;
  }
  srv_announce(srv_listen_port);
  int status = srv_accept_loop(lfd, kids_forget_some, process_start_conn);

  weft_fd_forget(lfd);
  close(lfd);
  kids_forget_ended(0);
  /* Tell each connection's process: idle ones end at once, busy ones
   * finish their request (process_child_stop). */
  kids_signal(SIGUSR1);
  if (kids.n)
    LOG("stopping: %zu connection%s open, letting %s finish for up to %d ms",
        kids.n, kids.n == 1 ? "" : "s", kids.n == 1 ? "it" : "them",
        srv_opt.drain_ms);
  int64_t deadline = weft_deadline(srv_opt.drain_ms * MS_NS);
  while (kids.n) {
    int64_t left = deadline - weft_now();
    if (left <= 0)
      break;
    kids_forget_ended((int)((left + MS_NS - 1) / MS_NS));
  }
  if (kids.n) {
    LOG("sending SIGTERM to %zu connection process%s still running after "
        "%d ms",
        kids.n, kids.n == 1 ? "" : "es", srv_opt.drain_ms);
    kids_signal(SIGTERM);
    while (kids.n)
      kids_forget_ended(-1);
  }
  kids_wait_reaped();
  free(kids.fd);
  free(kids.pos);
  kids.fd = NULL;
  kids.pos = NULL;
  kids.cap = kids.pos_cap = 0;
  if (kids.ep >= 0)
    close(kids.ep);
  kids.ep = -1;
  return status;
}
