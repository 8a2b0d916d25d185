/*
 * srv.c - the frame the servers share (see srv.h): options, the
 * listening socket, signals, srv_main, and what every way of running
 * connections uses (srv_internal.h).  The modes have a file each:
 *
 *   srv_green.c    green threads on weft's M:N scheduler, one per
 *                  connection; with --procs, that server in each of N
 *                  worker processes under weft_procs_run.
 *   srv_kthread.c  a kernel thread per connection: a detached
 *                  WEFT_MODE_KTHREAD task.
 *   srv_process.c  a process per connection: a detached
 *                  WEFT_MODE_PROCESS task.
 *
 * Signals: SIGPIPE is ignored in every mode; the SIGINT/SIGTERM handler
 * only sets an atomic flag, which srv_stopping() reads.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "srv.h"
#include "srv_internal.h"
#include "weft.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "the stop flag must be lock-free to be set by a signal");

struct srv_options srv_opt;

atomic_int srv_stop_flag;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

void srv_say(const char *fmt, ...) {
  char line[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* Under --procs, which worker process says it ("http[1]: ..."). */
  int w = weft_procs_index();
  if (w >= 0)
    fprintf(stderr, "%s[%d]: %s\n", srv_opt.app->name, w, line);
  else
    fprintf(stderr, "%s: %s\n", srv_opt.app->name, line);
}

bool srv_stopping(void) {
  return atomic_load_explicit(&srv_stop_flag, memory_order_relaxed) != 0 ||
         weft_procs_draining();
}

bool srv_verbose(void) { return !srv_opt.quiet; }

int64_t srv_idle_deadline(void) {
  if (srv_opt.idle_ms <= 0)
    return WEFT_FOREVER;
  return weft_deadline((int64_t)srv_opt.idle_ms * MS_NS);
}

static void on_stop_signal(int sig) {
  (void)sig;
  atomic_store_explicit(&srv_stop_flag, 1, memory_order_relaxed);
}

static void install_stop_handlers(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/*
 * Stop signals taken synchronously (kernel-thread mode).  With a handler,
 * under ThreadSanitizer (which runs a handler late, when the thread that
 * took the signal next enters its runtime), the echo server's kthread
 * stop tests failed about 1 run in 10 under load: the stop was never acted
 * on and the server went on accepting.  One failure left the accepting
 * thread alone, the connection thread gone; blocking the signals in the
 * connection threads only, so that the accepting thread takes them, still
 * failed 1 run in 8.  Blocked everywhere, the signal stays pending for the
 * process until the accept loop takes it: 0 failures in 46.
 */
static bool stop_sync;
static sigset_t stop_set; /* SIGINT and SIGTERM, once stop_sync */

void srv_stop_signals_sync(void) {
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGINT);
  sigaddset(&stop_set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
  stop_sync = true;
}

/* A pending SIGINT or SIGTERM, taken (accept loop, stop_sync only). */
static void collect_stop_signal(void) {
  struct timespec now = {0, 0};
  if (sigtimedwait(&stop_set, NULL, &now) > 0)
    atomic_store_explicit(&srv_stop_flag, 1, memory_order_relaxed);
}

static void ignore_sigpipe(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

void srv_set_nodelay(int fd) {
  int one = 1;
  /* Best effort: a failure only costs latency. */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

enum accept_next srv_accept_failed(int err, int64_t *next_log) {
  switch (err) {
  case -ETIMEDOUT:
  case -EAGAIN:
  case -EINTR:
  case -ECONNABORTED:
  case -EPROTO:
  case -EPERM: /* a firewall said no to this one connection */
    return ACCEPT_RETRY;
  case -EMFILE:
  case -ENFILE:
  case -ENOBUFS:
  case -ENOMEM: {
    int64_t now = weft_now();
    if (now >= *next_log) {
      srv_say("accept: %s; backing off and serving the open connections",
              weft_strerror(err));
      *next_log = now + LOG_EVERY_NS;
    }
    return ACCEPT_BACKOFF;
  }
  case -ECANCELED:
    return ACCEPT_STOP;
  case -EINVAL:
    if (srv_opt.procs)
      return ACCEPT_DRAIN;
    /* fall through */
  default:
    srv_say("accept on the listening socket failed: %s", weft_strerror(err));
    return ACCEPT_STOP;
  }
}

struct conn *srv_conn_new(int fd, uint64_t id) {
  struct conn *c = calloc(1, sizeof *c);
  if (!c) {
    srv_say("out of memory for connection %" PRIu64 "; closing it", id);
    weft_close(fd);
    weft_sleep(BACKOFF_NS);
    return NULL;
  }
  c->fd = fd;
  c->id = id;
  return c;
}

int srv_accept_loop(int lfd, void (*tick)(void),
                    void (*start)(int lfd, int fd, uint64_t id)) {
  uint64_t next_id = 1;
  int64_t next_log = 0;

  for (;;) {
    if (stop_sync)
      collect_stop_signal();
    if (srv_stopping())
      break;
    if (tick)
      tick();
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC,
                         weft_deadline(ACCEPT_SLICE_NS));
    if (fd < 0) {
      enum accept_next next = srv_accept_failed(fd, &next_log);
      if (next == ACCEPT_BACKOFF)
        weft_sleep(BACKOFF_NS);
      else if (next == ACCEPT_STOP || next == ACCEPT_DRAIN)
        return next == ACCEPT_DRAIN || fd == -ECANCELED ? 0 : 1;
      continue;
    }
    srv_set_nodelay(fd);
    start(lfd, fd, next_id++);
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s [options]\n"
          "  --mode green|kthread|process  how connections run (green)\n"
          "  --workers N     weft worker threads in green mode (0: one per "
          "CPU)\n"
          "  --procs N       N worker processes, each a green server "
          "(green only)\n"
          "  --reuseport     with --procs: a SO_REUSEPORT socket per "
          "worker\n"
          "  --host ADDR     address to listen on (127.0.0.1)\n"
          "  --port N        port to listen on (%d; 0: any free port)\n"
          "  --idle-ms N     close a connection idle for N ms, or that takes\n"
          "                  longer to send a request (60000, as nginx's\n"
          "                  header and keep-alive timeouts; 0: never)\n"
          "  --drain-ms N    at shutdown, let connections finish for N ms "
          "(2000)\n"
          "  --backlog N     listen(2) backlog (1024)\n"
          "  --quiet         no log lines on stderr\n"
          "  --help          this text\n",
          srv_opt.app->name, srv_opt.app->default_port);
  if (srv_opt.app->usage)
    fputs(srv_opt.app->usage, f);
}

/* Parses value as an integer in [lo, hi] for option name. */
static bool parse_int(const char *name, const char *value, long lo, long hi,
                      int *out) {
  char *end;
  long v;

  errno = 0;
  v = strtol(value, &end, 10);
  if (errno || end == value || *end || v < lo || v > hi) {
    fprintf(stderr,
            "%s: bad value '%s' for %s: expected an integer from %ld to "
            "%ld\n",
            srv_opt.app->name, value, name, lo, hi);
    return false;
  }
  *out = (int)v;
  return true;
}

/* Returns 0 when all is well, or the exit status (2 for bad usage, 0 after
 * --help) with *done set. */
static int parse_args(int argc, char **argv, bool *done) {
  *done = false;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    char name[64];
    const char *value = NULL;
    bool inline_value = false;

    /* --name=value as well as --name value */
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (eq && (size_t)(eq - arg) < sizeof name) {
      memcpy(name, arg, (size_t)(eq - arg));
      name[eq - arg] = '\0';
      value = eq + 1;
      inline_value = true;
    } else {
      snprintf(name, sizeof name, "%s", arg);
      value = i + 1 < argc ? argv[i + 1] : NULL;
    }

    bool flag = true, known = true;
    if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
      usage(stdout);
      *done = true;
      return 0;
    } else if (!strcmp(name, "--reuseport")) {
      srv_opt.reuseport = true;
    } else if (!strcmp(name, "--quiet")) {
      srv_opt.quiet = true;
    } else if (!strcmp(name, "--mode") || !strcmp(name, "--workers") ||
               !strcmp(name, "--procs") || !strcmp(name, "--host") ||
               !strcmp(name, "--port") || !strcmp(name, "--idle-ms") ||
               !strcmp(name, "--drain-ms") || !strcmp(name, "--backlog")) {
      flag = false;
    } else {
      known = false;
    }

    if (known && flag) {
      if (inline_value) {
        fprintf(stderr, "%s: %s takes no value (got '%s')\n", srv_opt.app->name,
                name, value);
        *done = true;
        return 2;
      }
      continue;
    }
    if (!known) {
      int used = srv_opt.app->option
                     ? srv_opt.app->option(arg, inline_value ? NULL : value)
                     : -1;
      if (used < 1 || used > 2 || (used == 2 && !value)) {
        if (value && !inline_value)
          fprintf(stderr,
                  "%s: unknown option or bad value: '%s' (next argument "
                  "'%s'); see --help\n",
                  srv_opt.app->name, arg, value);
        else
          fprintf(stderr, "%s: unknown option or bad value: '%s'; see --help\n",
                  srv_opt.app->name, arg);
        *done = true;
        return 2;
      }
      i += used - 1;
      continue;
    }

    /* An option with a value. */
    if (!value) {
      fprintf(stderr, "%s: %s needs a value; see --help\n", srv_opt.app->name,
              name);
      *done = true;
      return 2;
    }
    if (!inline_value)
      i++;
    bool ok = true;
    if (!strcmp(name, "--mode")) {
      if (!strcmp(value, "green"))
        srv_opt.mode = MODE_GREEN;
      else if (!strcmp(value, "kthread"))
        srv_opt.mode = MODE_KTHREAD;
      else if (!strcmp(value, "process"))
        srv_opt.mode = MODE_PROCESS;
      else {
        fprintf(stderr,
                "%s: bad value '%s' for --mode: expected green, kthread or "
                "process\n",
                srv_opt.app->name, value);
        ok = false;
      }
    } else if (!strcmp(name, "--workers")) {
      ok = parse_int(name, value, 0, 1024, &srv_opt.workers);
    } else if (!strcmp(name, "--procs")) {
      ok = parse_int(name, value, 1, 64, &srv_opt.procs);
    } else if (!strcmp(name, "--host")) {
      if (!*value) {
        fprintf(stderr, "%s: bad value '' for --host: expected an address\n",
                srv_opt.app->name);
        ok = false;
      }
      srv_opt.host = value;
    } else if (!strcmp(name, "--port")) {
      ok = parse_int(name, value, 0, 65535, &srv_opt.port);
    } else if (!strcmp(name, "--idle-ms")) {
      ok = parse_int(name, value, 0, INT_MAX, &srv_opt.idle_ms);
    } else if (!strcmp(name, "--drain-ms")) {
      ok = parse_int(name, value, 0, 3600000, &srv_opt.drain_ms);
    } else if (!strcmp(name, "--backlog")) {
      ok = parse_int(name, value, 1, 65535, &srv_opt.backlog);
    }
    if (!ok) {
      *done = true;
      return 2;
    }
  }
  if (srv_opt.procs && srv_opt.mode != MODE_GREEN) {
    fprintf(stderr, "%s: --procs works only with --mode green\n",
            srv_opt.app->name);
    *done = true;
    return 2;
  }
  if (srv_opt.reuseport && !srv_opt.procs) {
    fprintf(stderr, "%s: --reuseport works only with --procs\n",
            srv_opt.app->name);
    *done = true;
    return 2;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The listening socket                                                     */
/* ------------------------------------------------------------------------ */

int srv_open_listener(int port, bool reuseport, bool do_listen, int *bound) {
  struct addrinfo hints, *res, *ai;
  char service[16];
  int fd = -1, err = 0;
  const char *step = "socket";

  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(service, sizeof service, "%d", port);
  int gai = getaddrinfo(srv_opt.host, service, &hints, &res);
  if (gai) {
    srv_say("cannot resolve --host '%s': %s", srv_opt.host, gai_strerror(gai));
    return -1;
  }
  for (ai = res; ai; ai = ai->ai_next) {
    int one = 1;

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno, step = "socket";
      continue;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
      err = errno, step = "setsockopt(SO_REUSEADDR)";
    } else if (reuseport &&
               setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
      err = errno, step = "setsockopt(SO_REUSEPORT)";
    } else if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      err = errno, step = "bind";
    } else if (do_listen && listen(fd, srv_opt.backlog) < 0) {
      err = errno, step = "listen";
    } else {
      break;
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    srv_say("cannot listen on %s port %d: %s: %s", srv_opt.host, port, step,
            strerror(err));
    return -1;
  }
  if (bound) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
      srv_say("getsockname on the listening socket: %s", strerror(errno));
      close(fd);
      return -1;
    }
    if (ss.ss_family == AF_INET6)
      *bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    else
      *bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  }
  return fd;
}

int srv_listen_port;

void srv_announce(int port) {
  if (strchr(srv_opt.host, ':'))
    printf("listening on [%s]:%d\n", srv_opt.host, port);
  else
    printf("listening on %s:%d\n", srv_opt.host, port);
  fflush(stdout);
}

int srv_run_setup(void) {
  if (!srv_opt.app->setup)
    return 0;
  int rc = srv_opt.app->setup();
  if (rc < 0) {
    srv_say("setup failed: %s", weft_strerror(rc));
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Idle connections                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Idle connections at shutdown.  A connection waiting for its next request
 * (a keep-alive connection between requests) has nothing to finish, so a
 * drain closes it at once, as nginx does, instead of waiting --drain-ms for
 * a request that may never come.  The connection marks itself idle, then
 * looks at srv_stopping(); the drain begins once srv_stopping() is true,
 * then ends every connection marked idle (green: cancels it, its read
 * returns -ECANCELED; kthread and process: shuts its read down, its read
 * returns end of file).  Both seq_cst, so either the connection sees the
 * stop and closes, or the drain sees it idle and ends it.
 */
bool srv_idle(bool idle) {
  switch (srv_opt.mode) {
  case MODE_GREEN:
    srv_green_idle(idle);
    break;
  case MODE_KTHREAD:
    srv_kthread_idle(idle);
    break;
  case MODE_PROCESS:
    srv_process_idle(idle);
    break;
  }
  return !(idle && srv_stopping());
}

/* ------------------------------------------------------------------------ */
/* srv_main                                                                 */
/* ------------------------------------------------------------------------ */

int srv_main(int argc, char **argv, const srv_app *app) {
  bool done;
  int rc, lfd, port;

  memset(&srv_opt, 0, sizeof srv_opt);
  srv_opt.app = app;
  srv_opt.mode = MODE_GREEN;
  srv_opt.host = "127.0.0.1";
  srv_opt.port = app->default_port;
  srv_opt.drain_ms = 2000;
  srv_opt.idle_ms = 60000; /* a silent or slow client is not held forever */
  srv_opt.backlog = 1024;
  rc = parse_args(argc, argv, &done);
  if (done)
    return rc;

  ignore_sigpipe();
  if (srv_opt.procs)
    return srv_run_procs(); /* signals: the supervisor's and the workers' */

  install_stop_handlers();
  lfd = srv_open_listener(srv_opt.port, false, true, &port);
  if (lfd < 0)
    return 1;
  srv_listen_port = port;
  switch (srv_opt.mode) {
  case MODE_KTHREAD:
    return srv_run_kthread(lfd);
  case MODE_PROCESS:
    return srv_run_process(lfd);
  case MODE_GREEN:
  default:
    return srv_run_green(lfd);
  }
}
