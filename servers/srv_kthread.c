/*
 * srv_kthread.c - a kernel thread per connection (--mode kthread).
 *
 * No weft runtime: weft's I/O calls block in poll(2) on plain threads.
 * The main thread accepts; each connection runs as a WEFT_MODE_KTHREAD
 * task, detached at once (weft_task_detach), so that nobody joins it: the
 * thread and its task are released when the connection's function
 * returns, and a list of live connections with a count under a pthread
 * mutex is what shutdown waits on.  The stacks are 256 KiB (the default
 * thread attributes of this process).  Shutdown closes the listener, shuts
 * down the read side of idle connections, waits up to --drain-ms, then
 * shutdown(2)s the sockets still open so that their blocked reads and
 * writes return, and waits for the threads.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "srv.h"
#include "srv_internal.h"
#include "weft.h"

/* Stack of a connection's kernel thread. */
#define KTHREAD_STACK ((size_t)256 * 1024)

static struct {
  pthread_mutex_t lock;
  pthread_cond_t idle; /* live reached 0 */
  struct conn *head;   /* connections whose fd is still open */
  size_t live;         /* threads not yet done */
} kt = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The calling connection thread's struct conn (for srv_idle). */
static __thread struct conn *kt_self;

void srv_kthread_idle(bool idle) {
  if (kt_self)
    atomic_store(&kt_self->idle, idle ? 1 : 0);
}

static void *kthread_conn_main(void *arg) {
  struct conn *c = arg;

  kt_self = c; /* for srv_idle */
  srv_opt.app->serve(c->fd, c->id);
  /* Off the list first, so that shutdown(2) never hits a closed (or
   * reused) fd number. */
  pthread_mutex_lock(&kt.lock);
  conn_unlink(&kt.head, c);
  pthread_mutex_unlock(&kt.lock);
  weft_close(c->fd);
  free(c);
  pthread_mutex_lock(&kt.lock);
  if (--kt.live == 0)
    pthread_cond_broadcast(&kt.idle);
  pthread_mutex_unlock(&kt.lock);
  return NULL;
}

/* Starts a detached kernel-thread task for fd; on failure closes fd. */
static void kthread_start_conn(int lfd, int fd, uint64_t id) {
  (void)lfd;
  struct conn *c = srv_conn_new(fd, id);
  weft_task t;
  int rc;

  if (!c)
    return;
  pthread_mutex_lock(&kt.lock);
  conn_link(&kt.head, c);
  kt.live++;
  pthread_mutex_unlock(&kt.lock);
  rc = weft_task_start(&t, WEFT_MODE_KTHREAD, kthread_conn_main, c);
  if (rc == 0) {
    /* Nobody waits for it: the list and kt.live track it, and the thread
     * and its task release themselves when it returns. */
    weft_task_detach(&t);
  } else {
    srv_say("cannot start a thread for connection %" PRIu64 ": %s; closing it",
            id, weft_strerror(rc));
    pthread_mutex_lock(&kt.lock);
    conn_unlink(&kt.head, c);
    kt.live--;
    pthread_mutex_unlock(&kt.lock);
    weft_close(fd);
    free(c);
    weft_sleep(BACKOFF_NS);
  }
}

/* Waits until no connection thread is left or the deadline passes;
 * returns how many are left.  kt.lock held. */
static size_t kthread_wait_locked(int64_t deadline) {
  while (kt.live > 0) {
    int64_t now = weft_now();
    if (now >= deadline)
      break;
    /* kt.idle uses CLOCK_MONOTONIC, weft_now()'s clock */
    struct timespec ts = {.tv_sec = deadline / 1000000000,
                          .tv_nsec = deadline % 1000000000};
    pthread_cond_timedwait(&kt.idle, &kt.lock, &ts);
  }
  return kt.live;
}

int srv_run_kthread(int lfd) {
  pthread_condattr_t ca;
  pthread_attr_t attr;
  size_t left;

  srv_stop_signals_sync(); /* before any thread starts: see srv.c */
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&kt.idle, &ca);
  pthread_condattr_destroy(&ca);
  /* Threads started without attributes, as weft_task_start starts them,
   * get KTHREAD_STACK.  This process runs no other threads of weft's. */
  int err = pthread_getattr_default_np(&attr);
  if (err == 0) {
    err = pthread_attr_setstacksize(&attr, KTHREAD_STACK);
    if (err == 0)
      err = pthread_setattr_default_np(&attr);
    pthread_attr_destroy(&attr);
  }
  if (err)
    srv_say("cannot make connection threads' stacks %zu KiB: %s; they get "
            "the default",
            KTHREAD_STACK / 1024, strerror(err));

  if (srv_run_setup() < 0) {
    close(lfd);
    return 1;
  }
  srv_announce(srv_listen_port);
  int status = srv_accept_loop(lfd, NULL, kthread_start_conn);

  /* Shutdown: no new connections, some time for the open ones, then their
   * sockets are shut down so that blocked reads and writes return. */
  weft_close(lfd);
  pthread_mutex_lock(&kt.lock);
  /* Idle connections (between requests) end at once: a read shut down
   * returns end of file (see srv_idle). */
  size_t idle = 0;
  for (struct conn *c = kt.head; c; c = c->next)
    if (atomic_load(&c->idle)) {
      shutdown(c->fd, SHUT_RD);
      idle++;
    }
  if (idle)
    LOG("stopping: closing %zu idle connection%s (between requests)", idle,
        idle == 1 ? "" : "s");
  if (kt.live > idle)
    LOG("stopping: %zu connection%s in a request, letting %s finish for up "
        "to %d ms",
        kt.live - idle, kt.live - idle == 1 ? "" : "s",
        kt.live - idle == 1 ? "it" : "them", srv_opt.drain_ms);
  left = kthread_wait_locked(weft_deadline(srv_opt.drain_ms * MS_NS));
  if (left) {
    for (struct conn *c = kt.head; c; c = c->next)
      shutdown(c->fd, SHUT_RDWR);
    LOG("shut down %zu connection%s still open after %d ms", left,
        left == 1 ? "" : "s", srv_opt.drain_ms);
    left = kthread_wait_locked(weft_deadline(CANCEL_GRACE_NS));
    if (left)
      srv_say("%zu connection thread%s did not end after its socket was shut "
              "down; leaving %s",
              left, left == 1 ? "" : "s", left == 1 ? "it" : "them");
  }
  pthread_mutex_unlock(&kt.lock);
  return status;
}
