/*
 * srv_harness.h - the server under test, for the tests that run a server
 * demo (servers/echo, servers/http, servers/kv) as a child and talk to it over
 * TCP: start it, read its port from its "listening on HOST:PORT" line,
 * connect, stop it, and never leave it behind.  The functions are in
 * tests/srv_harness.c (tests/libcheck.la).
 *
 * The server runs in a process group of its own (so that a process-mode
 * server's children go with it) and gets SIGKILL if the test process
 * dies.  One server at a time: its pid, the read end of its standard
 * output and its port are in srvh.
 */
#ifndef TESTS_SRV_HARNESS_H
#define TESTS_SRV_HARNESS_H

#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>

struct srvh_server {
  pid_t pid; /* also its process group; -1 when none */
  int out;   /* its standard output, or -1 */
  int port;
  /* After the server exited by itself (srvh_wait): whether processes of
   * its group were still there 200 ms later, alive or not yet reaped. */
  bool left;
};

/* The server under test (one per program). */
extern struct srvh_server srvh;

int64_t srvh_now_ms(void);
void srvh_sleep_ms(int ms);

/*
 * Starts argv[0] (a path relative to the build directory, the tests'
 * working directory) with argv (NULL-ended); nofile > 0 sets its
 * RLIMIT_NOFILE.  Returns once it has printed its listening line (within
 * 10 s), with srvh.port set.
 */
void srvh_start(const char *const *argv, int nofile);

/* Forgets the server once it has been reaped: kills what is left of its
 * process group (a process-mode server's children) and closes its
 * output. */
void srvh_reaped(void);

/* Waits up to ms for the server to exit by itself; returns its wait
 * status, or -1 if it still runs.  Once it has exited, sets srvh.left.
 * (The test process is made a subreaper by srvh_start, so that a child
 * the server leaves unreaped is the test's to see, not init's to reap.) */
int srvh_wait(int ms);

/* SIGTERM, then up to ms for the server to exit; returns its wait status,
 * or -1 if it had to be killed. */
int srvh_stop(int ms);

/* Kills the server and whatever is left of its group, and reaps it (a
 * fixture's fini: also after a failed assertion). */
void srvh_kill(void);

bool srvh_alive(void);

/* A connection to the server: the fd, or -errno (no assertion). */
int srvh_try_connect(void);

/* A connection to the server, with 5 s send and receive timeouts and
 * TCP_NODELAY; a failure fails the test. */
int srvh_connect(void);

/* Sends all n bytes; a failure fails the test. */
void srvh_send_all(int fd, const void *p, size_t n);

#endif /* TESTS_SRV_HARNESS_H */
