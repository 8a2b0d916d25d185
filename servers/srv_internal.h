/*
 * srv_internal.h - what srv.c shares with the files of the three ways of
 * running connections (srv_green.c, srv_kthread.c, srv_process.c): the
 * parsed options, the stop flag, log lines, the accept loop's error
 * handling, the listening socket, the list of live connections, and each
 * mode's entry point.  Not for the servers themselves: they use srv.h.
 */
#ifndef SERVERS_SRV_INTERNAL_H
#define SERVERS_SRV_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "srv.h"
#include "weft.h"

#define MS_NS ((int64_t)1000000)
/* The longest an acceptor waits before it looks at the stop flag. */
#define ACCEPT_SLICE_NS (100 * MS_NS)
/* Back-off after running out of fds (or memory) in accept. */
#define BACKOFF_NS (20 * MS_NS)
/* At most one "out of file descriptors" line per this long. */
#define LOG_EVERY_NS (1000 * MS_NS)
/* How long connections get to end after they were canceled (green) or
 * their socket shut down (kthread) before the server gives up on them. */
#define CANCEL_GRACE_NS (5000 * MS_NS)

enum srv_mode { MODE_GREEN, MODE_KTHREAD, MODE_PROCESS };

/* The options, as srv_main parsed them. */
struct srv_options {
  const srv_app *app;
  enum srv_mode mode;
  int workers; /* --workers: weft worker threads, 0 = weft's default */
  int procs;   /* --procs: worker processes, 0 = none */
  bool reuseport;
  bool quiet;
  const char *host;
  int port;
  int idle_ms;
  int drain_ms;
  int backlog;
};
extern struct srv_options srv_opt;

/* Set by the SIGINT/SIGTERM handler (and by a process-mode child's stop
 * handler); srv_stopping() reads it. */
extern atomic_int srv_stop_flag;

/* Kernel-thread mode takes SIGINT and SIGTERM synchronously: the calling
 * thread (the first, before it starts any other) blocks them, every
 * thread it starts inherits that, and srv_accept_loop collects one that
 * is pending (sigtimedwait) and sets srv_stop_flag.  See srv.c. */
void srv_stop_signals_sync(void);

/* A line on stderr: "NAME: ...", or "NAME[i]: ..." in worker process i. */
__attribute__((format(printf, 1, 2))) void srv_say(const char *fmt, ...);

/* Informational lines, silenced by --quiet. */
#define LOG(...)                                                               \
  do {                                                                         \
    if (srv_verbose())                                                         \
      srv_say(__VA_ARGS__);                                                    \
  } while (0)

/* TCP_NODELAY on an accepted connection, best effort. */
void srv_set_nodelay(int fd);

/* What an acceptor does with an accept error: go on at once, back off and
 * go on, or stop.  ACCEPT_DRAIN: under --procs, the supervisor stopped the
 * shared listening socket (accept gives -EINVAL): a drain has begun, its
 * SIGTERM follows. */
enum accept_next { ACCEPT_RETRY, ACCEPT_BACKOFF, ACCEPT_STOP, ACCEPT_DRAIN };
enum accept_next srv_accept_failed(int err, int64_t *next_log);

/* Accepts on lfd until the server stops, handing each connection (with
 * TCP_NODELAY) to start with the next id; tick, if not NULL, runs before
 * each accept.  Returns 0 when stopped (or draining, or canceled), 1 when
 * accepting failed for good. */
int srv_accept_loop(int lfd, void (*tick)(void),
                    void (*start)(int lfd, int fd, uint64_t id));

/*
 * Opens a TCP socket on --host and port, with SO_REUSEADDR (and
 * SO_REUSEPORT if reuseport), bound, and listening if do_listen.  Stores
 * the port actually bound in *bound (may be NULL).  Returns the fd, or -1
 * after a message.
 */
int srv_open_listener(int port, bool reuseport, bool do_listen, int *bound);

/* The port the listening socket was bound to (without --procs). */
extern int srv_listen_port;

/* Prints the one "listening on HOST:PORT" line to stdout, once the mode
 * can take connections (its runtime started, its setup done). */
void srv_announce(int port);

/* Runs the app's setup, if any; 0, or -1 after a message. */
int srv_run_setup(void);

/* A live connection (green and kthread modes), on a doubly linked list. */
struct conn {
  struct conn *prev, *next;
  int fd;
  uint64_t id;
  weft_gthread t;   /* green: set by the thread itself once it runs */
  bool started;     /* green: t is valid */
  bool cancel;      /* green: canceled before it started */
  _Atomic int idle; /* waiting for a new request (srv_idle) */
};

/* A new record for connection fd with its id; NULL when out of memory,
 * after saying so, closing fd and pausing (srv.c). */
struct conn *srv_conn_new(int fd, uint64_t id);

static inline void conn_link(struct conn **head, struct conn *c) {
  c->prev = NULL;
  c->next = *head;
  if (*head)
    (*head)->prev = c;
  *head = c;
}

static inline void conn_unlink(struct conn **head, struct conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    *head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

/* The modes.  Each takes over the listening socket lfd (and closes it)
 * and returns the exit status for main. */
int srv_run_green(int lfd);   /* srv_green.c */
int srv_run_procs(void);      /* srv_green.c: --procs, opens its own */
int srv_run_kthread(int lfd); /* srv_kthread.c */
int srv_run_process(int lfd); /* srv_process.c */

/* srv_idle's part in each mode: marks the calling connection idle or
 * busy, where that connection's mode keeps it. */
void srv_green_idle(bool idle);
void srv_kthread_idle(bool idle);
void srv_process_idle(bool idle);

#endif /* SERVERS_SRV_INTERNAL_H */
