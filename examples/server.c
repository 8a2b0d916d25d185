/*
 * server.c - a complete small TCP server on weft, to copy from: each line
 * a client sends is a request, answered with the line in upper case.
 *
 * It shows: SIGTERM and SIGINT blocked before weft_init and awaited with
 * sigwait in main; a green thread per connection, its handle kept so that
 * shutdown can cancel and join it; per request, one absolute deadline from
 * its first byte to the end of its answer (a client that trickles bytes
 * is dropped when it passes); an idle deadline; a size cap (an over-long
 * request gets an error line and its connection is closed).
 *
 * Usage: server [PORT [REQUEST_MS [IDLE_MS]]] (defaults 7000, 5000 and
 * 30000; port 0 picks a free one).  It prints "listening on
 * 127.0.0.1:PORT" once it accepts.  Try it:
 *   examples/server 7000 5000 10000 &
 *   nc 127.0.0.1 7000      (type lines; 10 s of silence and it hangs up)
 *   kill %1                (SIGTERM: the summary, exit status 0)
 */
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define MAX_REQUEST 1024 /* bytes of one request, its newline included */

static int64_t request_ns, idle_ns; /* from the command line */

/* For the summary; every connection thread adds to them. */
static atomic_long accepted, answered, dropped_request, dropped_idle, too_long,
    at_shutdown;

/* A connection, on a list until its thread is joined: live while it
 * serves, then ended (it moves itself there on its way out).  Under lock. */
struct conn {
  weft_gthread t;
  int fd;
  struct conn *next, **pprev;
};
static weft_mutex lock = WEFT_MUTEX_INIT;
static struct conn *live, *ended;

static void push(struct conn **head, struct conn *c) {
  if ((c->next = *head))
    c->next->pprev = &c->next;
  *head = c;
  c->pprev = head;
}

static void unlink_conn(struct conn *c) {
  if ((*c->pprev = c->next))
    c->next->pprev = c->pprev;
}

/* One connection's green thread: requests in, answers out, until the
 * client closes, a deadline passes, a request is too long, or main
 * cancels it (every weft call below then returns -ECANCELED). */
static void *serve(void *arg) {
  struct conn *c = arg;
  char buf[MAX_REQUEST];
  size_t len = 0; /* bytes in buf: the start of the next request, if any */
  ssize_t n = 0;
  atomic_fetch_add(&accepted, 1);
  for (;;) {
    /* Between requests only the idle deadline runs.  A request's own
     * starts with its first byte (already in buf if it was pipelined). */
    int64_t deadline = weft_deadline(len ? request_ns : idle_ns);
    char *nl;
    while (!(nl = memchr(buf, '\n', len))) {
      if (len == sizeof buf) {
        static const char err[] = "ERR request too long\n";
        weft_write(c->fd, err, sizeof err - 1, deadline);
        /* End of file, then drain until the client closes (or the
         * deadline): a close with unread data resets, losing the line. */
        shutdown(c->fd, SHUT_WR);
        while (weft_read(c->fd, buf, sizeof buf, deadline) > 0)
          ;
        n = -EMSGSIZE;
        goto failed;
      }
      n = weft_read(c->fd, buf + len, sizeof buf - len, deadline);
      if (n <= 0)
        goto failed;
      if (len == 0) /* the first byte: the request starts now */
        deadline = weft_deadline(request_ns);
      len += (size_t)n;
    }
    size_t line = (size_t)(nl - buf) + 1;
    for (size_t i = 0; i < line; i++)
      buf[i] = (char)toupper((unsigned char)buf[i]);
    /* A write stops short at the deadline or an error; the next one says */
    for (size_t off = 0; off < line; off += (size_t)n)
      if ((n = weft_write(c->fd, buf + off, line - off, deadline)) < 0)
        goto failed;
    atomic_fetch_add(&answered, 1);
    len -= line;
    memmove(buf, buf + line, len);
  }
failed: /* n: 0 the client closed, or -errno */
  if (n == -ETIMEDOUT)
    atomic_fetch_add(len ? &dropped_request : &dropped_idle, 1);
  else if (n == -ECANCELED)
    atomic_fetch_add(&at_shutdown, 1);
  else if (n == -EMSGSIZE)
    atomic_fetch_add(&too_long, 1);
  weft_close(c->fd); /* works in a canceled thread too */
  weft_mutex_lock(&lock);
  unlink_conn(c);
  push(&ended, c); /* whoever joins c next frees it: do not touch it */
  weft_mutex_unlock(&lock);
  return NULL;
}

/* Joins the connection threads that have ended; with all, every one,
 * waiting for those still live (main cancels them first). */
static void join_conns(bool all) {
  for (;;) {
    weft_mutex_lock(&lock);
    struct conn *c = ended ? ended : all ? live : NULL;
    weft_mutex_unlock(&lock);
    if (!c)
      return;
    weft_join(c->t, NULL); /* then c is on ended, never to move again */
    weft_mutex_lock(&lock);
    unlink_conn(c);
    weft_mutex_unlock(&lock);
    free(c);
  }
}

/* The acceptor green thread: a green thread per connection until main
 * cancels it; it joins the ended ones as it goes. */
static void *acceptor(void *arg) {
  int lfd = (int)(intptr_t)arg;
  for (;;) {
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, WEFT_FOREVER);
    if (fd == -ECANCELED)
      return NULL;
    join_conns(false);
    if (fd < 0) { /* -EMFILE (out of fds) or a passing error: back off */
      fprintf(stderr, "server: accept: %s\n", weft_strerror(fd));
      weft_sleep(weft_ms(20));
      continue;
    }
    /* lock is held until c is on live: serve may end before spawn returns */
    struct conn *c = malloc(sizeof *c);
    weft_gthread_attr attr = {.name = "conn"};
    int rc = -ENOMEM;
    weft_mutex_lock(&lock);
    if (c) {
      c->fd = fd;
      if ((rc = weft_spawn(&c->t, &attr, serve, c)) == 0)
        push(&live, c);
    }
    weft_mutex_unlock(&lock);
    if (rc < 0) { /* out of memory: this client alone is dropped */
      fprintf(stderr, "server: weft_spawn: %s\n", weft_strerror(rc));
      weft_close(fd);
      free(c);
    }
  }
}

/* Argument i, named name, a number from lo to hi; def when absent. */
static long arg(int argc, char **argv, int i, const char *name, long def,
                long lo, long hi) {
  char *end;
  if (i >= argc)
    return def;
  long v = strtol(argv[i], &end, 10); /* an overflow is out of range too */
  if (end != argv[i] && !*end && v >= lo && v <= hi)
    return v;
  fprintf(stderr, "server: %s %s: not a number from %ld to %ld\n", name,
          argv[i], lo, hi);
  exit(2);
}

static void die(int status, const char *what, const char *why) {
  fprintf(stderr, "server: %s: %s\n", what, why);
  exit(status);
}

int main(int argc, char **argv) {
  if (argc > 4)
    die(2, "too many arguments", "usage: server [PORT [REQUEST_MS [IDLE_MS]]]");
  long port = arg(argc, argv, 1, "PORT", 7000, 0, 65535);
  request_ns = weft_ms(arg(argc, argv, 2, "REQUEST_MS", 5000, 1, 3600000));
  idle_ns = weft_ms(arg(argc, argv, 3, "IDLE_MS", 30000, 1, 86400000));

  /* Block the stop signals first, before any thread exists: weft's
   * workers start with the mask of weft_init's caller and its other
   * threads block every signal, so a SIGTERM stays pending until main
   * takes it with sigwait.  No handler runs, so no code has to be
   * async-signal-safe, and no worker is ever interrupted by it. */
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, NULL);

  /* A plain listening socket: weft takes it over at its first weft_accept
   * (non-blocking, registered with the netpoller). */
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t salen = sizeof sa;
  int one = 1, rc, sig;
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, SOMAXCONN) ||
      getsockname(lfd, (struct sockaddr *)&sa, &salen))
    die(1, "listening on 127.0.0.1", strerror(errno));

  if ((rc = weft_init(NULL)) < 0) /* workers: WEFT_WORKERS, else CPUs */
    die(1, "weft_init", weft_strerror(rc));
  weft_gthread acc;
  weft_gthread_attr attr = {.name = "acceptor"};
  if ((rc = weft_spawn(&acc, &attr, acceptor, (void *)(intptr_t)lfd)) < 0)
    die(1, "weft_spawn", weft_strerror(rc));
  printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
  fflush(stdout);

  sigwait(&stop, &sig); /* main's whole job while the server runs */

  /* Stop accepting, then end every connection: canceled, a thread wakes
   * from weft_read or weft_write with -ECANCELED and closes its fd. */
  weft_cancel(acc);
  weft_join(acc, NULL);
  weft_close(lfd);
  weft_mutex_lock(&lock);
  for (struct conn *c = live; c; c = c->next)
    weft_cancel(c->t); /* -ESRCH if it has just returned: fine */
  weft_mutex_unlock(&lock);
  join_conns(true);
  if ((rc = weft_shutdown()) < 0) /* nothing left to abandon */
    die(1, "weft_shutdown", weft_strerror(rc));

  printf("stopped by %s; connections: %ld, answered: %ld, dropped at the "
         "request deadline: %ld, at the idle deadline: %ld, too long: %ld, "
         "closed at shutdown: %ld\n",
         sig == SIGTERM ? "SIGTERM" : "SIGINT", atomic_load(&accepted),
         atomic_load(&answered), atomic_load(&dropped_request),
         atomic_load(&dropped_idle), atomic_load(&too_long),
         atomic_load(&at_shutdown));
  return 0;
}
