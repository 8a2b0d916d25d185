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
 * rest and waits until they have all exited.  (Under ThreadSanitizer the
 * children never run their SIGUSR1 handler: TSan turns its interceptors
 * off in the child of a multi-threaded fork, and the parent runs weft's
 * reaper thread.  They end at the SIGTERM instead.)
 *
 * Descriptors: the parent holds two per live child, weft's pidfd (until
 * the reaper collects the child) and its own.  Its own is taken after the
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
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "srv.h"
#include "srv_internal.h"
#include "weft.h"

/* The children still running: a pidfd each, as poll(2) wants them. */
static struct {
  struct pollfd *pfd;
  size_t n, cap;
} kids;

/* Makes room for one more child. */
static bool kid_reserve(void) {
  if (kids.n < kids.cap)
    return true;
  size_t cap = kids.cap ? kids.cap * 2 : 64;
  struct pollfd *p = realloc(kids.pfd, cap * sizeof *p);
  if (!p)
    return false;
  kids.pfd = p;
  kids.cap = cap;
  return true;
}

/* Waits up to timeout_ms (0: not at all; -1: for ever) until at least one
 * child has exited, then forgets every child that has (closes its pidfd).
 * Returns how many are left. */
static size_t kids_forget_ended(int timeout_ms) {
  if (!kids.n)
    return 0;
  int r = poll(kids.pfd, kids.n, timeout_ms);
  if (r <= 0)
    return kids.n; /* none yet, or EINTR: the caller comes back */
  for (size_t i = 0; i < kids.n;) {
    if (kids.pfd[i].revents) { /* POLLIN: it exited */
      close(kids.pfd[i].fd);
      kids.pfd[i] = kids.pfd[--kids.n];
    } else {
      i++;
    }
  }
  return kids.n;
}

static void kids_signal(int sig) {
  for (size_t i = 0; i < kids.n; i++)
    /* ESRCH: it has just exited; kids_forget_ended will see it. */
    (void)syscall(SYS_pidfd_send_signal, kids.pfd[i].fd, sig, NULL, 0);
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
  /* The parent's pidfds of the other children are not ours to hold. */
  for (size_t i = 0; i < kids.n; i++)
    close(kids.pfd[i].fd);
  free(kids.pfd);
  kids.pfd = NULL;
  kids.n = kids.cap = 0;
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
  kids.pfd[kids.n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
}

int srv_run_process(int lfd) {
  uint64_t next_id = 1;
  int64_t next_log = 0;
  int status = 0;

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
  while (!srv_stopping()) {
    kids_forget_ended(0);
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC,
                         weft_deadline(ACCEPT_SLICE_NS));
    if (fd < 0) {
      enum accept_next next = srv_accept_failed(fd, &next_log);
      if (next == ACCEPT_BACKOFF)
        weft_sleep(BACKOFF_NS);
      else if (next == ACCEPT_STOP) {
        status = 1;
        break;
      }
      continue;
    }
    srv_set_nodelay(fd);
    process_start_conn(lfd, fd, next_id++);
  }

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
  free(kids.pfd);
  kids.pfd = NULL;
  kids.cap = 0;
  return status;
}
