/*
 * srv.h - what the servers (echo, http, kv) share: option parsing,
 * the listening socket, the three ways of running connections, and a clean
 * shutdown.
 *
 * A demo supplies a connection handler written as plain sequential code
 * against weft's I/O calls (weft_read, weft_write, ...), which work in every
 * mode:
 *   --mode green    one green thread per connection on the M:N scheduler
 *                   (--workers kernel threads); with --procs N, N worker
 *                   processes (weft_procs_run) each accept on a shared
 *                   listening socket (--reuseport: each binds its own with
 *                   SO_REUSEPORT instead).
 *   --mode kthread  one kernel thread per connection (blocking in poll).
 *   --mode process  one forked process per connection.
 *
 * Common options: --host ADDR (127.0.0.1), --port N (0: ephemeral),
 * --idle-ms N (idle timeout of a connection; 0: none), --drain-ms N (how
 * long shutdown lets connections finish; 2000), --backlog N, --quiet.
 * Once listening, the server prints exactly one line to stdout,
 * "listening on HOST:PORT", and flushes it, so a test or bench script can
 * start it with --port 0 and read the port back.
 *
 * Shutdown: SIGINT or SIGTERM stop accepting; live connections get
 * --drain-ms to finish, then are canceled (green: weft_cancel; kthread:
 * shutdown(2) of the socket; process: SIGTERM); the server exits 0.
 */
#ifndef DEMOS_SRV_H
#define DEMOS_SRV_H

#include <stdbool.h>
#include <stdint.h>

typedef struct srv_app {
  const char *name; /* for usage and log lines, e.g. "http" */
  int default_port;
  /* Once per process that serves connections, before the first one (for
   * --mode process: in the parent, before any fork).  May be NULL.
   * Returns 0 or -errno. */
  int (*setup)(void);
  /* Serves one connection until the peer closes, an error, the idle
   * timeout, or cancellation (-ECANCELED from a weft call: return soon).
   * Must not close fd: the caller does.  conn_id counts from 1. */
  void (*serve)(int fd, uint64_t conn_id);
  /* Extra usage text for the demo's own options, or NULL. */
  const char *usage;
  /* The demo's own options: called for every argument srv does not know,
   * with the next argument as value (NULL at the end).  Returns how many
   * arguments it used (1 or 2), or -1 for an unknown or bad option. */
  int (*option)(const char *arg, const char *value);
} srv_app;

/* Parses argv, listens, serves until SIGINT/SIGTERM, returns the exit
 * status for main (0 after a clean shutdown, 2 for bad usage, 1 on error,
 * with a message on stderr naming what was wrong). */
int srv_main(int argc, char **argv, const srv_app *app);

/* The deadline for the next read of an idle connection: now + --idle-ms,
 * or WEFT_FOREVER without an idle timeout. */
int64_t srv_idle_deadline(void);

/* True once shutdown has begun: a handler between requests should finish
 * (e.g. answer "Connection: close") rather than wait for another. */
bool srv_stopping(void);

/* A handler calls srv_idle(true) just before it waits for a new request
 * (nothing of one received yet), and srv_idle(false) once bytes of it
 * arrived.  A shutdown closes idle connections at once (their wait returns
 * -ECANCELED) instead of letting them run out the drain.  srv_idle(true)
 * returns false when shutdown has begun: close instead of waiting. */
bool srv_idle(bool idle);

/* --quiet not given: log lines to stderr are wanted. */
bool srv_verbose(void);

#endif /* DEMOS_SRV_H */
