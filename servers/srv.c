/*
 * srv.c - the frame the servers share (see srv.h): options, the
 * listening socket, one of three ways of running connections, and a clean
 * shutdown.
 *
 * Green (the default).  weft_init with --workers kernel threads; an acceptor
 * green thread waits in weft_accept for at most ACCEPT_SLICE_NS at a time,
 * so that it notices a stop (the SIGINT/SIGTERM flag, or
 * weft_procs_draining() in a worker process), and spawns one detached green
 * thread "conn-N" per connection.  Every live connection is on a list under
 * a weft_mutex and counted by a weft_waitgroup.  Shutdown closes the
 * listener, waits up to --drain-ms for the waitgroup, weft_cancels what is
 * left, waits for it too, and stops the runtime.
 *
 * --procs N.  The same green server in each of N worker processes under
 * weft_procs_run: they all accept on the listening socket the parent
 * opened, or, with --reuseport, each on a socket of its own bound with
 * SO_REUSEPORT to the port the parent reserved.  The parent prints the
 * "listening on" line once, when the workers can take connections.
 *
 * Kernel threads.  No weft runtime: weft's I/O calls block in poll(2) on
 * plain threads.  The main thread accepts; each connection gets a detached
 * pthread with a 256 KiB stack.  Shutdown closes the listener, waits up to
 * --drain-ms, then shutdown(2)s the sockets still open so that their
 * blocked reads return, and waits for the threads.
 *
 * Processes.  No weft runtime either.  The main thread accepts and forks a
 * child per connection; it reaps them as it goes (no zombies).  Shutdown
 * waits up to --drain-ms for the children, then sends SIGTERM to the rest
 * and reaps them all.
 *
 * Signals: SIGPIPE is ignored in every mode; the SIGINT/SIGTERM handler
 * only sets an atomic flag, which srv_stopping() reads.
 */
#include <errno.h>
#include <fcntl.h>
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
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
/* Stack of a connection's kernel thread. */
#define KTHREAD_STACK ((size_t)256 * 1024)

_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "the stop flag must be lock-free to be set by a signal");

enum srv_mode { MODE_GREEN, MODE_KTHREAD, MODE_PROCESS };

static struct {
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
} opt;

/* Set by the SIGINT/SIGTERM handler. */
static atomic_int stop_flag;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
  char line[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  /* Under --procs, which worker process says it ("http[1]: ..."). */
  int w = weft_procs_index();
  if (w >= 0)
    fprintf(stderr, "%s[%d]: %s\n", opt.app->name, w, line);
  else
    fprintf(stderr, "%s: %s\n", opt.app->name, line);
}

/* Informational lines, silenced by --quiet. */
#define LOG(...)                                                               \
  do {                                                                         \
    if (srv_verbose())                                                         \
      say(__VA_ARGS__);                                                        \
  } while (0)

bool srv_stopping(void) {
  return atomic_load_explicit(&stop_flag, memory_order_relaxed) != 0 ||
         weft_procs_draining();
}

bool srv_verbose(void) { return !opt.quiet; }

int64_t srv_idle_deadline(void) {
  if (opt.idle_ms <= 0)
    return WEFT_FOREVER;
  return weft_deadline((int64_t)opt.idle_ms * MS_NS);
}

static void on_stop_signal(int sig) {
  (void)sig;
  atomic_store_explicit(&stop_flag, 1, memory_order_relaxed);
}

static void install_stop_handlers(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

static void ignore_sigpipe(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGPIPE, &sa, NULL);
}

static void set_nodelay(int fd) {
  int one = 1;
  /* Best effort: a failure only costs latency. */
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* What an acceptor does with an accept error: go on at once, back off and
 * go on, or stop. */
/* ACCEPT_DRAIN: under --procs, the supervisor stopped the shared listening
 * socket (accept gives -EINVAL): a drain has begun, its SIGTERM follows. */
enum accept_next { ACCEPT_RETRY, ACCEPT_BACKOFF, ACCEPT_STOP, ACCEPT_DRAIN };

static enum accept_next accept_failed(int err, int64_t *next_log) {
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
      say("accept: %s; backing off and serving the open connections",
          weft_strerror(err));
      *next_log = now + LOG_EVERY_NS;
    }
    return ACCEPT_BACKOFF;
  }
  case -ECANCELED:
    return ACCEPT_STOP;
  case -EINVAL:
    if (opt.procs)
      return ACCEPT_DRAIN;
    /* fall through */
  default:
    say("accept on the listening socket failed: %s", weft_strerror(err));
    return ACCEPT_STOP;
  }
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
          opt.app->name, opt.app->default_port);
  if (opt.app->usage)
    fputs(opt.app->usage, f);
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
            opt.app->name, value, name, lo, hi);
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
      opt.reuseport = true;
    } else if (!strcmp(name, "--quiet")) {
      opt.quiet = true;
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
        fprintf(stderr, "%s: %s takes no value (got '%s')\n", opt.app->name,
                name, value);
        *done = true;
        return 2;
      }
      continue;
    }
    if (!known) {
      int used = opt.app->option
                     ? opt.app->option(arg, inline_value ? NULL : value)
                     : -1;
      if (used < 1 || used > 2 || (used == 2 && !value)) {
        if (value && !inline_value)
          fprintf(stderr,
                  "%s: unknown option or bad value: '%s' (next argument "
                  "'%s'); see --help\n",
                  opt.app->name, arg, value);
        else
          fprintf(stderr, "%s: unknown option or bad value: '%s'; see --help\n",
                  opt.app->name, arg);
        *done = true;
        return 2;
      }
      i += used - 1;
      continue;
    }

    /* An option with a value. */
    if (!value) {
      fprintf(stderr, "%s: %s needs a value; see --help\n", opt.app->name,
              name);
      *done = true;
      return 2;
    }
    if (!inline_value)
      i++;
    bool ok = true;
    if (!strcmp(name, "--mode")) {
      if (!strcmp(value, "green"))
        opt.mode = MODE_GREEN;
      else if (!strcmp(value, "kthread"))
        opt.mode = MODE_KTHREAD;
      else if (!strcmp(value, "process"))
        opt.mode = MODE_PROCESS;
      else {
        fprintf(stderr,
                "%s: bad value '%s' for --mode: expected green, kthread or "
                "process\n",
                opt.app->name, value);
        ok = false;
      }
    } else if (!strcmp(name, "--workers")) {
      ok = parse_int(name, value, 0, 1024, &opt.workers);
    } else if (!strcmp(name, "--procs")) {
      ok = parse_int(name, value, 1, 64, &opt.procs);
    } else if (!strcmp(name, "--host")) {
      if (!*value) {
        fprintf(stderr, "%s: bad value '' for --host: expected an address\n",
                opt.app->name);
        ok = false;
      }
      opt.host = value;
    } else if (!strcmp(name, "--port")) {
      ok = parse_int(name, value, 0, 65535, &opt.port);
    } else if (!strcmp(name, "--idle-ms")) {
      ok = parse_int(name, value, 0, INT_MAX, &opt.idle_ms);
    } else if (!strcmp(name, "--drain-ms")) {
      ok = parse_int(name, value, 0, 3600000, &opt.drain_ms);
    } else if (!strcmp(name, "--backlog")) {
      ok = parse_int(name, value, 1, 65535, &opt.backlog);
    }
    if (!ok) {
      *done = true;
      return 2;
    }
  }
  if (opt.procs && opt.mode != MODE_GREEN) {
    fprintf(stderr, "%s: --procs works only with --mode green\n",
            opt.app->name);
    *done = true;
    return 2;
  }
  if (opt.reuseport && !opt.procs) {
    fprintf(stderr, "%s: --reuseport works only with --procs\n", opt.app->name);
    *done = true;
    return 2;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* The listening socket                                                     */
/* ------------------------------------------------------------------------ */

/*
 * Opens a TCP socket on --host and port, with SO_REUSEADDR (and
 * SO_REUSEPORT if reuseport), bound, and listening if do_listen.  Stores
 * the port actually bound in *bound (may be NULL).  Returns the fd, or -1
 * after a message.
 */
static int open_listener(int port, bool reuseport, bool do_listen, int *bound) {
  struct addrinfo hints, *res, *ai;
  char service[16];
  int fd = -1, err = 0;
  const char *step = "socket";

  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  snprintf(service, sizeof service, "%d", port);
  int gai = getaddrinfo(opt.host, service, &hints, &res);
  if (gai) {
    say("cannot resolve --host '%s': %s", opt.host, gai_strerror(gai));
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
    } else if (do_listen && listen(fd, opt.backlog) < 0) {
      err = errno, step = "listen";
    } else {
      break;
    }
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) {
    say("cannot listen on %s port %d: %s: %s", opt.host, port, step,
        strerror(err));
    return -1;
  }
  if (bound) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
      say("getsockname on the listening socket: %s", strerror(errno));
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

/* The port the listening socket was bound to, announced by each mode once
 * it can take connections (its runtime started, its setup done). */
static int listen_port;

static void announce(int port) {
  if (strchr(opt.host, ':'))
    printf("listening on [%s]:%d\n", opt.host, port);
  else
    printf("listening on %s:%d\n", opt.host, port);
  fflush(stdout);
}

static int run_setup(void) {
  if (!opt.app->setup)
    return 0;
  int rc = opt.app->setup();
  if (rc < 0) {
    say("setup failed: %s", weft_strerror(rc));
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Live connections (green and kthread modes)                               */
/* ------------------------------------------------------------------------ */

struct conn {
  struct conn *prev, *next;
  int fd;
  uint64_t id;
  weft_gthread t; /* green: set by the thread itself once it runs */
  bool started;   /* green: t is valid */
  bool cancel;    /* green: canceled before it started */
  _Atomic int idle; /* green: waiting for a new request (srv_idle) */
};

static void conn_link(struct conn **head, struct conn *c) {
  c->prev = NULL;
  c->next = *head;
  if (*head)
    (*head)->prev = c;
  *head = c;
}

static void conn_unlink(struct conn **head, struct conn *c) {
  if (c->prev)
    c->prev->next = c->next;
  else
    *head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

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

/*
 * Idle connections at shutdown.  A connection waiting for its next request
 * (a keep-alive connection between requests) has nothing to finish, so a
 * drain closes it at once, as nginx does, instead of waiting --drain-ms for
 * a request that may never come.  The connection marks itself idle, then
 * looks at srv_stopping(); the drain begins once srv_stopping() is true,
 * then cancels every connection marked idle.  Both seq_cst, so either the
 * connection sees the stop and closes, or the drain sees it idle and
 * cancels it (its read returns -ECANCELED).
 */
/* The calling connection's struct conn in kthread mode, and the one
 * connection of a process-mode child (its fd, and whether it is idle: read
 * by the child's stop handler). */
static __thread struct conn *kt_self;
static int proc_conn_fd = -1;
static volatile sig_atomic_t proc_idle;

bool srv_idle(bool idle) {
  struct conn *c = green.keyed ? weft_local_get(green.conn_key) : kt_self;
  if (c)
    atomic_store(&c->idle, idle ? 1 : 0);
  else if (proc_conn_fd >= 0)
    proc_idle = idle;
  return !(idle && srv_stopping());
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
    opt.app->serve(c->fd, c->id);
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
static void green_start_conn(int fd, uint64_t id) {
  struct conn *c = calloc(1, sizeof *c);
  char name[WEFT_NAME_MAX];
  int rc;

  if (!c) {
    say("out of memory for connection %" PRIu64 "; closing it", id);
    weft_close(fd);
    weft_sleep(BACKOFF_NS);
    return;
  }
  c->fd = fd;
  c->id = id;
  weft_mutex_lock(&green.lock);
  conn_link(&green.head, c);
  green.live++;
  weft_mutex_unlock(&green.lock);
  weft_waitgroup_add(&green.wg, 1);

  snprintf(name, sizeof name, "conn-%" PRIu64, id);
  weft_gthread_attr attr = {.name = name, .detached = true};
  rc = weft_spawn(NULL, &attr, green_conn_main, c);
  if (rc < 0) {
    say("cannot start a green thread for connection %" PRIu64 ": %s; "
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
        live - idle == 1 ? "it" : "them", opt.drain_ms);

  int rc =
      weft_waitgroup_wait_until(&green.wg, weft_deadline(opt.drain_ms * MS_NS));
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
      n == 1 ? "" : "s", opt.drain_ms);

  rc = weft_waitgroup_wait_until(&green.wg, weft_deadline(CANCEL_GRACE_NS));
  if (rc == -ETIMEDOUT) {
    weft_mutex_lock(&green.lock);
    live = green.live;
    weft_mutex_unlock(&green.lock);
    say("%zu connection%s did not end after being canceled; leaving %s", live,
        live == 1 ? "" : "s", live == 1 ? "it" : "them");
  }
}

static void *green_acceptor_main(void *arg) {
  uint64_t next_id = 1;
  int64_t next_log = 0;
  intptr_t status = 0;

  (void)arg;
  while (!srv_stopping()) {
    int fd = weft_accept(green.lfd, NULL, NULL, SOCK_CLOEXEC,
                         weft_deadline(ACCEPT_SLICE_NS));
    if (fd < 0) {
      enum accept_next next = accept_failed(fd, &next_log);
      if (next == ACCEPT_BACKOFF)
        weft_sleep(BACKOFF_NS);
      else if (next == ACCEPT_STOP || next == ACCEPT_DRAIN) {
        status = next == ACCEPT_DRAIN || fd == -ECANCELED ? 0 : 1;
        break;
      }
      continue;
    }
    set_nodelay(fd);
    green_start_conn(fd, next_id++);
  }
  green_drain();
  return (void *)status;
}

/* Runs the green server on the listening socket lfd (taken over and
 * closed).  Returns the exit status. */
static int run_green(int lfd) {
  weft_config cfg = {.workers = opt.workers};
  weft_gthread acceptor;
  void *result = NULL;
  int rc;

  memset(&green, 0, sizeof green);
  green.lfd = lfd;
  rc = weft_init(&cfg);
  if (rc < 0) {
    say("cannot start the weft runtime (%d workers): %s", opt.workers,
        weft_strerror(rc));
    close(lfd);
    return 1;
  }
  green.keyed = weft_local_create(&green.conn_key, NULL) == 0;
  if (run_setup() < 0) {
    weft_shutdown();
    close(lfd);
    return 1;
  }
  weft_gthread_attr attr = {.name = "acceptor"};
  rc = weft_spawn(&acceptor, &attr, green_acceptor_main, NULL);
  if (rc < 0) {
    say("cannot start the acceptor green thread: %s", weft_strerror(rc));
    weft_shutdown();
    close(lfd);
    return 1;
  }
  if (!opt.procs) /* under --procs the supervisor announces the pool */
    announce(listen_port);
  rc = weft_join(acceptor, &result);
  if (rc < 0)
    say("joining the acceptor: %s", weft_strerror(rc));
  rc = weft_shutdown();
  if (rc < 0) {
    say("stopping the weft runtime: %s", weft_strerror(rc));
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
  if (!opt.reuseport)
    return run_green(weft_procs_listen_fd());

  /* A socket of our own in the SO_REUSEPORT group of the port. */
  close(procs.parent_fd);
  lfd = open_listener(procs.port, true, true, NULL);
  if (lfd < 0)
    return 1;
  if (atomic_fetch_add(procs.listening, 1) + 1 == opt.procs)
    announce(procs.port); /* restarted workers count past procs */
  return run_green(lfd);
}

static int run_procs(void) {
  int rc;

  procs.parent_fd =
      open_listener(opt.port, opt.reuseport, !opt.reuseport, &procs.port);
  if (procs.parent_fd < 0)
    return 1;
  if (opt.reuseport) {
    void *page = mmap(NULL, sizeof(*procs.listening), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
      say("mmap: %s", strerror(errno));
      close(procs.parent_fd);
      return 1;
    }
    procs.listening = page;
    atomic_init(procs.listening, 0);
  } else {
    announce(procs.port);
  }

  weft_procs_config cfg = {
      .procs = opt.procs,
      .worker = procs_worker,
      .listen_fd = opt.reuseport ? -1 : procs.parent_fd,
      /* a worker drains for --drain-ms, then cancels: give it time */
      .drain_ms = opt.drain_ms + (int)(CANCEL_GRACE_NS / MS_NS) + 1000,
  };
  rc = weft_procs_run(&cfg);
  if (procs.listening)
    munmap((void *)procs.listening, sizeof(*procs.listening));
  close(procs.parent_fd);
  if (rc < 0 && rc != -ECHILD) { /* -ECHILD: a worker failed, and said so */
    say("cannot run %d worker processes: %s", opt.procs, weft_strerror(rc));
    return 1;
  }
  return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------------ */
/* Kernel-thread mode                                                       */
/* ------------------------------------------------------------------------ */

static struct {
  pthread_mutex_t lock;
  pthread_cond_t idle; /* live reached 0 */
  struct conn *head;   /* connections whose fd is still open */
  size_t live;         /* threads not yet done */
} kt = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void *kthread_conn_main(void *arg) {
  struct conn *c = arg;

  kt_self = c; /* for srv_idle */
  opt.app->serve(c->fd, c->id);
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

static void kthread_start_conn(int fd, uint64_t id,
                               const pthread_attr_t *attr) {
  struct conn *c = calloc(1, sizeof *c);
  pthread_t t;
  int rc;

  if (!c) {
    say("out of memory for connection %" PRIu64 "; closing it", id);
    weft_close(fd);
    weft_sleep(BACKOFF_NS);
    return;
  }
  c->fd = fd;
  c->id = id;
  pthread_mutex_lock(&kt.lock);
  conn_link(&kt.head, c);
  kt.live++;
  pthread_mutex_unlock(&kt.lock);
  rc = pthread_create(&t, attr, kthread_conn_main, c);
  if (rc) {
    say("cannot start a thread for connection %" PRIu64 ": %s; closing it", id,
        strerror(rc));
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

static int run_kthread(int lfd) {
  pthread_condattr_t ca;
  pthread_attr_t attr;
  uint64_t next_id = 1;
  int64_t next_log = 0;
  int status = 0;
  size_t left;

  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&kt.idle, &ca);
  pthread_condattr_destroy(&ca);
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, KTHREAD_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);

  if (run_setup() < 0) {
    close(lfd);
    return 1;
  }
  announce(listen_port);
  while (!srv_stopping()) {
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC,
                         weft_deadline(ACCEPT_SLICE_NS));
    if (fd < 0) {
      enum accept_next next = accept_failed(fd, &next_log);
      if (next == ACCEPT_BACKOFF)
        weft_sleep(BACKOFF_NS);
      else if (next == ACCEPT_STOP) {
        status = 1;
        break;
      }
      continue;
    }
    set_nodelay(fd);
    kthread_start_conn(fd, next_id++, &attr);
  }
  pthread_attr_destroy(&attr);

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
        kt.live - idle == 1 ? "it" : "them", opt.drain_ms);
  left = kthread_wait_locked(weft_deadline(opt.drain_ms * MS_NS));
  if (left) {
    for (struct conn *c = kt.head; c; c = c->next)
      shutdown(c->fd, SHUT_RDWR);
    LOG("shut down %zu connection%s still open after %d ms", left,
        left == 1 ? "" : "s", opt.drain_ms);
    left = kthread_wait_locked(weft_deadline(CANCEL_GRACE_NS));
    if (left)
      say("%zu connection thread%s did not end after its socket was shut "
          "down; leaving %s",
          left, left == 1 ? "" : "s", left == 1 ? "it" : "them");
  }
  pthread_mutex_unlock(&kt.lock);
  return status;
}

/* ------------------------------------------------------------------------ */
/* Process mode                                                             */
/* ------------------------------------------------------------------------ */

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

/* In a connection's child: the parent's SIGUSR1 says the server is
 * stopping.  The child finishes the request it is in (answering with
 * "Connection: close"), and an idle one ends at once: its read is shut
 * down, so it returns end of file.  Async-signal-safe: a flag and
 * shutdown(2). */
static void process_child_stop(int sig) {
  (void)sig;
  atomic_store_explicit(&stop_flag, 1, memory_order_relaxed);
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
  opt.app->serve(fd, id);
  weft_close(fd);
  fflush(NULL);
  _exit(0);
}

static int run_process(int lfd) {
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

  if (run_setup() < 0) {
    close(lfd);
    return 1;
  }
  announce(listen_port);
  while (!srv_stopping()) {
    reap_kids();
    int fd = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC,
                         weft_deadline(ACCEPT_SLICE_NS));
    if (fd < 0) {
      enum accept_next next = accept_failed(fd, &next_log);
      if (next == ACCEPT_BACKOFF)
        weft_sleep(BACKOFF_NS);
      else if (next == ACCEPT_STOP) {
        status = 1;
        break;
      }
      continue;
    }
    set_nodelay(fd);
    uint64_t id = next_id++;
    if (!kid_reserve()) {
      say("out of memory for connection %" PRIu64 "; closing it", id);
      weft_close(fd);
      weft_sleep(BACKOFF_NS);
      continue;
    }
    fflush(NULL); /* nothing buffered may be written twice */
    pid_t pid = fork();
    if (pid == 0)
      process_child(lfd, fd, id);
    if (pid < 0) {
      say("fork for connection %" PRIu64 ": %s; closing it", id,
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
        opt.drain_ms);
  int64_t deadline = weft_deadline(opt.drain_ms * MS_NS);
  while (kids.n && weft_now() < deadline) {
    weft_sleep(5 * MS_NS);
    reap_kids();
  }
  if (kids.n) {
    LOG("sending SIGTERM to %zu connection process%s still running after "
        "%d ms",
        kids.n, kids.n == 1 ? "" : "es", opt.drain_ms);
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

/* ------------------------------------------------------------------------ */
/* srv_main                                                                 */
/* ------------------------------------------------------------------------ */

int srv_main(int argc, char **argv, const srv_app *app) {
  bool done;
  int rc, lfd, port;

  memset(&opt, 0, sizeof opt);
  opt.app = app;
  opt.mode = MODE_GREEN;
  opt.host = "127.0.0.1";
  opt.port = app->default_port;
  opt.drain_ms = 2000;
  opt.idle_ms = 60000; /* a silent or slow client is not held forever */
  opt.backlog = 1024;
  rc = parse_args(argc, argv, &done);
  if (done)
    return rc;

  ignore_sigpipe();
  if (opt.procs)
    return run_procs(); /* signals: the supervisor's and the workers' */

  install_stop_handlers();
  lfd = open_listener(opt.port, false, true, &port);
  if (lfd < 0)
    return 1;
  listen_port = port;
  switch (opt.mode) {
  case MODE_KTHREAD:
    return run_kthread(lfd);
  case MODE_PROCESS:
    return run_process(lfd);
  case MODE_GREEN:
  default:
    return run_green(lfd);
  }
}
