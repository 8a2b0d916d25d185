/*
 * srv_process.c - a process per connection (--mode process).
 *
 * No weft runtime.  The main thread accepts and forks a child per
 * connection; it reaps them as it goes (no zombies).  Shutdown waits up to
 * --drain-ms for the children, then sends SIGTERM to the rest and reaps
 * them all.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "srv.h"
#include "srv_internal.h"
#include "weft.h"

static struct {
  pid_t *pid;
  size_t n, cap;
} kids;

static void kid_remove(pid_t pid) {
  for (size_t i = 0; i < kids.n; i++)
    if (kids.pid[i] == pid) {
      kids.pid[i] = kids.pid[--kids.n];
      return;
    }
}

/* Makes room for one more child. */
static bool kid_reserve(void) {
  if (kids.n < kids.cap)
    return true;
  size_t cap = kids.cap ? kids.cap * 2 : 64;
  pid_t *p = realloc(kids.pid, cap * sizeof *p);
  if (!p)
    return false;
  kids.pid = p;
  kids.cap = cap;
  return true;
}

/* Reaps the children that have ended, without waiting. */
static void reap_kids(void) {
  for (;;) {
    pid_t pid = waitpid(-1, NULL, WNOHANG);
    if (pid <= 0)
      return;
    kid_remove(pid);
  }
}

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

__attribute__((noreturn)) static void process_child(int lfd, int fd,
                                                    uint64_t id) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGCHLD, &sa, NULL);
  proc_conn_fd = fd;
  sa.sa_handler = process_child_stop;
  sigaction(SIGUSR1, &sa, NULL);
  /* Blocked in the parent since before the fork (run_process): a stop
   * sent meanwhile waits for the handler, and lands now. */
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_UNBLOCK, &usr1, NULL);
  free(kids.pid);
  weft_fd_forget(lfd);
  close(lfd);
  srv_opt.app->serve(fd, id);
  weft_close(fd);
  fflush(NULL);
  _exit(0);
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
    reap_kids();
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
    uint64_t id = next_id++;
    if (!kid_reserve()) {
      srv_say("out of memory for connection %" PRIu64 "; closing it", id);
      weft_close(fd);
      weft_sleep(BACKOFF_NS);
      continue;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid == 0)
      process_child(lfd, fd, id);
    if (pid < 0) {
      srv_say("fork for connection %" PRIu64 ": %s; closing it", id,
              strerror(errno));
      weft_sleep(BACKOFF_NS);
    } else {
      kids.pid[kids.n++] = pid;
    }
    weft_fd_forget(fd);
    close(fd);
  }

  weft_fd_forget(lfd);
  close(lfd);
  reap_kids();
  /* Tell each connection's process: idle ones end at once, busy ones
   * finish their request (process_child_stop). */
  for (size_t i = 0; i < kids.n; i++)
    kill(kids.pid[i], SIGUSR1);
  if (kids.n)
    LOG("stopping: %zu connection%s open, letting %s finish for up to %d ms",
        kids.n, kids.n == 1 ? "" : "s", kids.n == 1 ? "it" : "them",
        srv_opt.drain_ms);
  int64_t deadline = weft_deadline(srv_opt.drain_ms * MS_NS);
  while (kids.n && weft_now() < deadline) {
    weft_sleep(5 * MS_NS);
    reap_kids();
  }
  if (kids.n) {
    LOG("sending SIGTERM to %zu connection process%s still running after "
        "%d ms",
        kids.n, kids.n == 1 ? "" : "es", srv_opt.drain_ms);
    for (size_t i = 0; i < kids.n; i++)
      kill(kids.pid[i], SIGTERM);
    while (kids.n) {
      pid_t pid = kids.pid[kids.n - 1];
      if (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        continue;
      kids.n--; /* reaped, or not our child after all (ECHILD) */
    }
  }
  free(kids.pid);
  kids.pid = NULL;
  kids.cap = 0;
  return status;
}
