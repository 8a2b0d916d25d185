/*
 * srv_green.c - connections as green threads (--mode green, the default),
 * and that server in each of N worker processes (--procs N).
 *
 * Green.  weft_init with --workers kernel threads; an acceptor green
 * thread waits in weft_accept for at most ACCEPT_SLICE_NS at a time, so
 * that it notices a stop (the SIGINT/SIGTERM flag, or
 * weft_procs_draining() in a worker process), and spawns one detached
 * green thread "conn-N" per connection.  Every live connection is on a
 * list under a weft_mutex and counted by a weft_waitgroup.  Shutdown closes
 * the listener, cancels the idle connections, waits up to --drain-ms for
 * the waitgroup, weft_cancels what is left, waits for it too, and stops the
 * runtime.
 *
 * --procs N.  The same green server in each of N worker processes under
 * weft_procs_run: they all accept on the listening socket the parent
 * opened, or, with --reuseport, each on a socket of its own bound with
 * SO_REUSEPORT to the port the parent reserved.  The parent prints the
 * "listening on" line once, when the workers can take connections.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "srv.h"
#include "srv_internal.h"
#include "weft.h"

/* ------------------------------------------------------------------------ */
/* Green mode                                                               */
/* ------------------------------------------------------------------------ */

static struct {
  weft_mutex lock;
  weft_waitgroup wg; /* one per live connection */
  struct conn *head;
  size_t live;
  int lfd;
  weft_local_key conn_key; /* each connection thread's struct conn */
  bool keyed;              /* conn_key was created */
} green;

void srv_green_idle(bool idle) {
  struct conn *c = green.keyed ? weft_local_get(green.conn_key) : NULL;
  if (c)
    atomic_store(&c->idle, idle ? 1 : 0);
}

static void *green_conn_main(void *arg) {
  struct conn *c = arg;
  bool skip;

  weft_local_set(green.conn_key, c); /* for srv_idle */
  weft_mutex_lock(&green.lock);
  c->t = weft_self();
  c->started = true;
  skip = c->cancel;
  weft_mutex_unlock(&green.lock);

  if (!skip)
    srv_opt.app->serve(c->fd, c->id);
  weft_close(c->fd);

  weft_mutex_lock(&green.lock);
  conn_unlink(&green.head, c);
  green.live--;
  weft_mutex_unlock(&green.lock);
  free(c);
  weft_waitgroup_done(&green.wg);
  return NULL;
}

/* Starts a green thread for fd; on failure closes fd. */
static void green_start_conn(int lfd, int fd, uint64_t id) {
  (void)lfd;
  struct conn *c = srv_conn_new(fd, id);
  char name[WEFT_NAME_MAX];
  int rc;

  if (!c)
    return;
  weft_mutex_lock(&green.lock);
  conn_link(&green.head, c);
  green.live++;
  weft_mutex_unlock(&green.lock);
  weft_waitgroup_add(&green.wg, 1);

  snprintf(name, sizeof name, "conn-%" PRIu64, id);
  weft_gthread_attr attr = {.name = name, .detached = true};
  rc = weft_spawn(NULL, &attr, green_conn_main, c);
  if (rc < 0) {
    srv_say("cannot start a green thread for connection %" PRIu64 ": %s; "
            "closing it",
            id, weft_strerror(rc));
    weft_mutex_lock(&green.lock);
    conn_unlink(&green.head, c);
    green.live--;
    weft_mutex_unlock(&green.lock);
    weft_waitgroup_done(&green.wg);
    weft_close(fd);
    free(c);
    weft_sleep(BACKOFF_NS);
  }
}

/* Closes the listener, lets connections finish for --drain-ms, then
 * cancels the rest and waits for them. */
static void green_drain(void) {
  size_t live, idle = 0;

  weft_close(green.lfd);
  weft_mutex_lock(&green.lock);
  live = green.live;
  for (struct conn *c = green.head; c; c = c->next)
    if (c->started && atomic_load(&c->idle)) {
      weft_cancel(c->t); /* -ESRCH if it is just ending: fine */
      idle++;
    }
  weft_mutex_unlock(&green.lock);
  if (idle)
    LOG("stopping: closing %zu idle connection%s (between requests)", idle,
        idle == 1 ? "" : "s");
  if (live > idle)
    LOG("stopping: %zu connection%s in a request, letting %s finish for up "
        "to %d ms",
        live - idle, live - idle == 1 ? "" : "s",
        live - idle == 1 ? "it" : "them", srv_opt.drain_ms);

  int rc = weft_waitgroup_wait_until(&green.wg,
                                     weft_deadline(srv_opt.drain_ms * MS_NS));
  if (rc != -ETIMEDOUT)
    return;

  size_t n = 0;
  weft_mutex_lock(&green.lock);
  for (struct conn *c = green.head; c; c = c->next, n++) {
    if (c->started)
      weft_cancel(c->t); /* -ESRCH if it is just ending: fine */
    else
      c->cancel = true;
  }
  weft_mutex_unlock(&green.lock);
  LOG("canceled %zu connection%s still in a request after %d ms", n,
      n == 1 ? "" : "s", srv_opt.drain_ms);

  rc = weft_waitgroup_wait_until(&green.wg, weft_deadline(CANCEL_GRACE_NS));
  if (rc == -ETIMEDOUT) {
    weft_mutex_lock(&green.lock);
    live = green.live;
    weft_mutex_unlock(&green.lock);
    srv_say("%zu connection%s did not end after being canceled; leaving %s",
            live, live == 1 ? "" : "s", live == 1 ? "it" : "them");
  }
}

static void *green_acceptor_main(void *arg) {
  (void)arg;
  intptr_t status = srv_accept_loop(green.lfd, NULL, green_start_conn);
  green_drain();
  return (void *)status;
}

/* Runs the green server on the listening socket lfd (taken over and
 * closed).  Returns the exit status. */
int srv_run_green(int lfd) {
  weft_config cfg = {.workers = srv_opt.workers};
  weft_gthread acceptor;
  void *result = NULL;
  int rc;

  memset(&green, 0, sizeof green);
  green.lfd = lfd;
  rc = weft_init(&cfg);
  if (rc < 0) {
    srv_say("cannot start the weft runtime (%d workers): %s", srv_opt.workers,
            weft_strerror(rc));
    close(lfd);
    return 1;
  }
  green.keyed = weft_local_create(&green.conn_key, NULL) == 0;
  if (srv_run_setup() < 0) {
    weft_shutdown();
    close(lfd);
    return 1;
  }
  weft_gthread_attr attr = {.name = "acceptor"};
  rc = weft_spawn(&acceptor, &attr, green_acceptor_main, NULL);
  if (rc < 0) {
    srv_say("cannot start the acceptor green thread: %s", weft_strerror(rc));
    weft_shutdown();
    close(lfd);
    return 1;
  }
  if (!srv_opt.procs) /* under --procs the supervisor announces the pool */
    srv_announce(srv_listen_port);
  rc = weft_join(acceptor, &result);
  if (rc < 0)
    srv_say("joining the acceptor: %s", weft_strerror(rc));
  rc = weft_shutdown();
  if (rc < 0) {
    srv_say("stopping the weft runtime: %s", weft_strerror(rc));
    return 1;
  }
  return (int)(intptr_t)result;
}

/* ------------------------------------------------------------------------ */
/* Worker processes (--procs)                                               */
/* ------------------------------------------------------------------------ */

static struct {
  int parent_fd; /* the parent's socket (listening, or only bound) */
  int port;      /* the port it is bound to */
  /* --reuseport: workers that listen, counted in a shared page; the one
   * that completes the count announces the port.  (Not a thread in the
   * parent: forking a process that runs other threads can copy a lock
   * they hold, e.g. a sanitizer's, into the child.) */
  _Atomic int *listening;
} procs;

static int procs_worker(int index, void *arg) {
  int lfd;

  (void)arg, (void)index;
  if (!srv_opt.reuseport)
    return srv_run_green(weft_procs_listen_fd());

  /* A socket of our own in the SO_REUSEPORT group of the port. */
  close(procs.parent_fd);
  lfd = srv_open_listener(procs.port, true, true, NULL);
  if (lfd < 0)
    return 1;
  if (atomic_fetch_add(procs.listening, 1) + 1 == srv_opt.procs)
    srv_announce(procs.port); /* restarted workers count past procs */
  return srv_run_green(lfd);
}

int srv_run_procs(void) {
  int rc;

  procs.parent_fd = srv_open_listener(srv_opt.port, srv_opt.reuseport,
                                      !srv_opt.reuseport, &procs.port);
  if (procs.parent_fd < 0)
    return 1;
  if (srv_opt.reuseport) {
    void *page = mmap(NULL, sizeof(*procs.listening), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
      srv_say("mmap: %s", strerror(errno));
      close(procs.parent_fd);
      return 1;
    }
    procs.listening = page;
    atomic_init(procs.listening, 0);
  } else {
    srv_announce(procs.port);
  }

  weft_procs_config cfg = {
      .procs = srv_opt.procs,
      .worker = procs_worker,
      .listen_fd = srv_opt.reuseport ? -1 : procs.parent_fd,
      /* a worker drains for --drain-ms, then cancels: give it time */
      .drain_ms = srv_opt.drain_ms + (int)(CANCEL_GRACE_NS / MS_NS) + 1000,
  };
  rc = weft_procs_run(&cfg);
  if (procs.listening)
    munmap((void *)procs.listening, sizeof(*procs.listening));
  close(procs.parent_fd);
  if (rc < 0 && rc != -ECHILD) { /* -ECHILD: a worker failed, and said so */
    srv_say("cannot run %d worker processes: %s", srv_opt.procs,
            weft_strerror(rc));
    return 1;
  }
  return rc == 0 ? 0 : 1;
}
