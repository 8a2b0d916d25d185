/*
 * soak_client.c - the load client of the soak test (soak/soak.sh), built on
 * weft: one green thread per client slot, each opening connection after
 * connection to servers/http or servers/kv and checking every answer.
 *
 *   soak/soak_client [--http-port P] [--kv-port Q] [--host ADDR]
 *                    [--seconds S] [--http-conns N] [--kv-conns N]
 *                    [--rate R] [--workers N] [--label NAME]
 *                    [--report-every S] [--seed N]
 *
 * Each server gets N slots (--http-conns, --kv-conns; 0 or no port: that
 * server is not loaded).  A slot has one of three characters, by its index:
 *
 *   long   (half the slots) keep-alive connections of hundreds of requests,
 *          some of them pipelined in batches;
 *   short  (three eighths) connections of one to three requests: churn,
 *          so a green thread per connection comes and goes on the server.
 *          Some end with "Connection: close" or HTTP/1.0 (the server
 *          closes), some are abrupt: a request cut in the middle, a reset
 *          (SO_LINGER 0) in the middle of a long response, a pipelined
 *          batch whose answers are never read;
 *   slow   (one eighth) requests written a few bytes at a time with pauses,
 *          long answers read in small pieces with pauses, idle gaps.
 *
 * The long and short slots of a server together make at most --rate
 * requests per second (default 1000), so the load stays moderate.
 *
 * Checks.  HTTP: GET / must answer 200 with exactly "hello\n"; GET
 * /bytes/N 200 with N bytes of 'x' and Content-Length N; a response must
 * carry "Connection: close" exactly when the request asked for it (or was
 * HTTP/1.0), and the server must then close.  KV: each slot owns a few
 * keys; a GET must return what the slot last SET there (values of up to
 * 16 KiB, each with its sequence number), nil after a DEL; every slot
 * INCRs a few shared counters, each reply must exceed the one the slot saw
 * before, and at the end each counter must equal the number of INCRs
 * answered, exactly; a key only ever written by abruptly cut commands
 * must not exist.
 *
 * Killed workers.  soak.sh kills an HTTP worker process now and then and
 * sends SIGUSR1 to this client right after (operator.sh also does after
 * SIGTERM to one worker, which drains: a "Connection: close" that was not
 * asked for is then right, and the connection ends after it).  A connection to the killed
 * worker fails (reset, or closed); such a failure counts as "lost to a
 * killed worker" if a SIGUSR1 arrives after the connection's last answered
 * request was sent (the failure waits up to KILL_GRACE for it) or came
 * less than KILL_GRACE before the failure, otherwise as an error.  KV failures are always errors.
 *
 * Output: progress lines on stderr every --report-every seconds, the first
 * MAX_ERR_LOG errors on stderr with what was wrong, and at the end lines
 * on stdout, tab-separated:
 *   tally LABEL SERVER TYPE SENT OK LOST ERRORS
 *   check LABEL SERVER WHAT ok|FAIL DETAIL
 * Exit status: 0 if every answer was right (lost ones aside) and every
 * check passed, 1 otherwise, 2 for bad usage.  SIGTERM or SIGINT end the
 * run early (with the same report).
 *
 * soak/soak_client --probe http|kv (with that server's port) only tries
 * one connection, with a timeout of a second, and says what happened:
 * "connected" (exit 0), "refused" (exit 1), or the error (exit 3).  The
 * operator script uses it to see a draining server refuse new clients.
 *
 * The program is in three files.  This one holds the connection layer
 * (connect, read, find, consume, settle the requests that got no answer,
 * pacing, messages), the signals, the slots, the report and main;
 * http_check.c and kv_check.c speak to each server and check what it
 * answers; soak_client.h declares what they share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#include "soak_client.h"

const char *const srv_name[NSRV] = {"http", "kv"};
const char *const type_name[NSRV][NTYPES] = {
    {"connect", "hello", "bytes", "close", "http1.0", "pipelined", "slow",
     "abort"},
    {"connect", "set", "get", "incr", "del", "pipelined", "slow", "abort"},
};
struct tally tallies[NSRV][NTYPES];

/* Set by signals. */
atomic_uint kill_seq;
/* When the last one was announced (CLOCK_MONOTONIC, ns): a drained worker
 * may answer a request sent after the news and close the connection after
 * it, so a failure soon after the news counts as lost too. */
static _Atomic int64_t kill_at;
static atomic_int stop_signal;
atomic_int stopping;

static struct sockaddr_in addr[NSRV];
static const char *label = "soak";
char prefix[64];
static _Atomic int err_logged;

/* ------------------------------------------------------------------------ */
/* Messages and pacing                                                      */
/* ------------------------------------------------------------------------ */

void complain(struct slot *s, const char *fmt, ...) {
  int n = atomic_fetch_add_explicit(&err_logged, 1, memory_order_relaxed);
  if (n >= MAX_ERR_LOG) {
    if (n == MAX_ERR_LOG)
      fprintf(stderr, "soak_client %s: more errors: not shown\n", label);
    return;
  }
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "soak_client %s: %s slot %d: %s\n", label,
          srv_name[s->srv], s->index, line);
}

/* A printable copy of the first line of p[0, n) for messages. */
const char *first_line(const char *p, size_t n, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < cap && p[i] != '\r' && p[i] != '\n';
       i++)
    out[k++] = (p[i] >= 32 && p[i] < 127) ? p[i] : '?';
  out[k] = '\0';
  return out;
}

const char *why(struct conn *c) {
  snprintf(c->text, sizeof c->text, "%s%s",
           c->err == 0 ? "the server closed the connection"
                       : weft_strerror(c->err),
           c->err == -ETIMEDOUT ? c->diag : "");
  return c->text;
}

/*
 * After a timeout: says where the bytes are, to tell a server that never
 * answered from a client that missed its wakeup.  Looks up the server's
 * end of the connection in /proc/net/tcp: bytes it has not read yet (the
 * request waits in the server), and counts what waits unread here.
 */
static void diagnose(struct conn *c) {
  struct sockaddr_in me, peer;
  socklen_t l = sizeof me;
  int here = -1;
  c->diag[0] = '\0';
  if (getsockname(c->fd, (struct sockaddr *)&me, &l) < 0)
    return;
  l = sizeof peer;
  if (getpeername(c->fd, (struct sockaddr *)&peer, &l) < 0)
    return;
  (void)ioctl(c->fd, FIONREAD, &here);
  unsigned mine = ntohs(me.sin_port), theirs = ntohs(peer.sin_port);
  unsigned st = 0, tx = 0, rx = 0;
  bool found = false;
  FILE *f = fopen("/proc/net/tcp", "r");
  if (f) {
    char line[256];
    while (!found && fgets(line, sizeof line, f)) {
      unsigned la, lp, ra, rp, s, t, r;
      if (sscanf(line, " %*u: %8X:%4X %8X:%4X %2X %8X:%8X", &la, &lp, &ra,
                 &rp, &s, &t, &r) == 7 &&
          lp == theirs && rp == mine) {
        found = true;
        st = s, tx = t, rx = r;
      }
    }
    fclose(f);
  }
  if (found)
    snprintf(c->diag, sizeof c->diag,
             " [then: %d bytes unread by this client; the server's end "
             "(port %u, client port %u): state %02X, %u bytes unread by the "
             "server, %u bytes unacknowledged]",
             here, theirs, mine, st, rx, tx);
  else
    snprintf(c->diag, sizeof c->diag,
             " [then: %d bytes unread by this client; the server's end "
             "(port %u, client port %u) not found]",
             here, theirs, mine);
}

/* Paces the long and short slots: `units` requests at the slot's rate. */
void pace(struct slot *s, int units) {
  if (s->kind == SLOW || s->interval <= 0)
    return;
  int64_t now = weft_now();
  s->next_at += s->interval * units;
  if (s->next_at < now - SEC)
    s->next_at = now; /* far behind: do not make up for it in a burst */
  if (s->next_at > now)
    weft_sleep_until(s->next_at);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

void conn_close(struct slot *s, bool reset) {
  if (s->c.fd < 0)
    return;
  if (reset) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(s->c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  weft_close(s->c.fd);
  s->c.fd = -1;
  s->c.pos = s->c.len = 0;
}

/* Opens a connection to the slot's server.  ST_OK or ST_BAD. */
int conn_open(struct slot *s) {
  struct tally *t = &tallies[s->srv][T_CONN];
  int one = 1;

  add(&t->sent, 1);
  s->c.pos = s->c.len = 0;
  s->c.epoch = kills();
  s->c.drained = false;
  s->c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->c.fd < 0) {
    add(&t->err, 1);
    complain(s, "socket: %s", strerror(errno));
    return ST_BAD;
  }
  (void)setsockopt(s->c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int r = weft_connect(s->c.fd, (struct sockaddr *)&addr[s->srv],
                       sizeof addr[s->srv], weft_deadline(IO_TIMEOUT));
  if (r < 0) {
    add(&t->err, 1);
    complain(s, "connect: %s", weft_strerror(r));
    weft_close(s->c.fd);
    s->c.fd = -1;
    return ST_BAD;
  }
  add(&t->ok, 1);
  return ST_OK;
}

/* Reads more input, at most `limit` bytes (0: as much as fits).  ST_OK or
 * ST_GONE (c->err says why). */
static int fill(struct conn *c, size_t limit) {
  if (c->pos == c->len) {
    c->pos = c->len = 0;
  } else if (c->len == RBUF && c->pos > 0) {
    memmove(c->buf, c->buf + c->pos, c->len - c->pos);
    c->len -= c->pos;
    c->pos = 0;
  }
  size_t room = RBUF - c->len;
  if (limit && room > limit)
    room = limit;
  ssize_t n = weft_read(c->fd, c->buf + c->len, room, weft_deadline(IO_TIMEOUT));
  if (n <= 0) {
    c->err = (int)n;
    if (n == -ETIMEDOUT)
      diagnose(c);
    return ST_GONE;
  }
  c->len += (size_t)n;
  return ST_OK;
}

int send_all(struct slot *s, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = weft_write(s->c.fd, p, n, weft_deadline(IO_TIMEOUT));
    if (w <= 0) {
      s->c.err = w == 0 ? -EIO : (int)w;
      if (w == -ETIMEDOUT)
        diagnose(&s->c);
      return ST_GONE;
    }
    p += w;
    n -= (size_t)w;
  }
  return ST_OK;
}

/* Sends p[0, n) in 2 to 8 pieces with 5-40 ms pauses between them. */
int send_slowly(struct slot *s, const char *p, size_t n) {
  uint32_t pieces = 2 + below(s, 7);
  size_t step = n / pieces ? n / pieces : 1;
  while (n > 0) {
    size_t k = n < step ? n : step;
    if (send_all(s, p, k) < 0)
      return ST_GONE;
    p += k;
    n -= k;
    if (n > 0)
      weft_sleep((5 + below(s, 36)) * MS);
  }
  return ST_OK;
}

/*
 * Consumes n bytes of input, checked against exp (C_EXACT), as all 'x'
 * (C_XS), or not at all (C_SKIP).  A slow reader reads at most `limit`
 * bytes at a time and pauses `pause` ns before each read.  ST_OK, ST_GONE or
 * ST_BAD (after a message naming `what`).
 */
int consume(struct slot *s, uint64_t n, enum check how, const char *exp,
            size_t limit, int64_t pause, const char *what) {
  struct conn *c = &s->c;
  uint64_t off = 0;
  while (off < n) {
    if (c->pos == c->len) {
      if (pause)
        weft_sleep(pause);
      if (fill(c, limit) < 0)
        return ST_GONE;
    }
    size_t k = c->len - c->pos;
    if (k > n - off)
      k = (size_t)(n - off);
    const char *p = c->buf + c->pos;
    if (how == C_EXACT && memcmp(p, exp + off, k) != 0) {
      complain(s, "%s: wrong content at byte %" PRIu64, what, off);
      return ST_BAD;
    }
    if (how == C_XS) {
      for (size_t i = 0; i < k; i++)
        if (p[i] != 'x') {
          complain(s, "%s: byte %" PRIu64 " is 0x%02x, not 'x'", what, off + i,
                   (unsigned char)p[i]);
          return ST_BAD;
        }
    }
    c->pos += k;
    off += k;
  }
  return ST_OK;
}

/* Finds pat in the unread input, reading more as needed; *at is its offset
 * from c->pos.  ST_OK, ST_GONE, ST_BAD (no room: the input is malformed). */
int find(struct slot *s, const char *pat, size_t plen, size_t *at,
         const char *what) {
  struct conn *c = &s->c;
  for (;;) {
    const char *p = memmem(c->buf + c->pos, c->len - c->pos, pat, plen);
    if (p) {
      *at = (size_t)(p - (c->buf + c->pos));
      return ST_OK;
    }
    if (c->len - c->pos >= RBUF / 2) {
      char l[80];
      complain(s, "%s: no end of line in %zu bytes: '%s'", what,
               c->len - c->pos,
               first_line(c->buf + c->pos, c->len - c->pos, l, sizeof l));
      return ST_BAD;
    }
    if (c->pos > 0) {
      memmove(c->buf, c->buf + c->pos, c->len - c->pos);
      c->len -= c->pos;
      c->pos = 0;
    }
    if (fill(c, 0) < 0)
      return ST_GONE;
  }
}

/* After an answer that announced the end of the connection: the server
 * must close.  ST_OK, ST_GONE (reset) or ST_BAD (more bytes came). */
int expect_eof(struct slot *s, const char *what) {
  struct conn *c = &s->c;
  if (c->pos < c->len || fill(c, 0) == ST_OK) {
    char l[80];
    complain(s, "%s: bytes after the last answer: '%s'", what,
             first_line(c->buf + c->pos, c->len - c->pos, l, sizeof l));
    return ST_BAD;
  }
  return c->err == 0 ? ST_OK : ST_GONE;
}

/*
 * Books the outcome of n requests of type `type` that were sent and not
 * answered (rc ST_GONE or ST_BAD).  A transport failure on the HTTP server
 * is "lost to a killed worker" when a kill was announced since the last
 * answered request was sent; the announcement may come a moment after the
 * failure, so it is waited for (KILL_GRACE at most).
 */
void settle(struct slot *s, int type, uint64_t n, int rc, const char *what) {
  struct tally *t = &tallies[s->srv][type];
  if (n == 0)
    return;
  if (rc == ST_GONE && s->srv == HTTP) {
    int64_t failed_at = weft_now();
    int64_t until = weft_deadline(KILL_GRACE);
    while (kills() == s->c.epoch && weft_now() < until)
      weft_sleep(20 * MS);
    int64_t at = atomic_load_explicit(&kill_at, memory_order_relaxed);
    if (kills() != s->c.epoch || (at && failed_at - at < KILL_GRACE)) {
      add(&t->lost, n);
      return;
    }
  }
  add(&t->err, n);
  int64_t at = atomic_load_explicit(&kill_at, memory_order_relaxed);
  if (rc == ST_GONE)
    complain(s, "%s: %s (%" PRIu64 " request%s unanswered; last kill "
                "announced %.1f s before)",
             what, why(&s->c), n, n == 1 ? "" : "s",
             at ? (double)(weft_now() - at) / SEC : -1.0);
}

/* ------------------------------------------------------------------------ */
/* Slots, the report, main                                                  */
/* ------------------------------------------------------------------------ */

static void *slot_main(void *arg) {
  struct slot *s = arg;
  s->next_at = weft_now();
  while (!is_stopping()) {
    if (s->srv == HTTP)
      http_connection(s);
    else
      kv_connection(s);
  }
  return NULL;
}

static int failures; /* checks that failed */

void check_line(const char *srv, const char *what, bool ok, const char *fmt,
                ...) {
  char detail[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  printf("check\t%s\t%s\t%s\t%s\t%s\n", label, srv, what, ok ? "ok" : "FAIL",
         detail);
  if (!ok)
    failures++;
}

static void on_signal(int sig) {
  if (sig == SIGUSR1) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe */
    atomic_store_explicit(&kill_at, ts.tv_sec * SEC + ts.tv_nsec,
                          memory_order_relaxed);
    atomic_fetch_add_explicit(&kill_seq, 1, memory_order_release);
  }
  else
    atomic_store_explicit(&stop_signal, sig, memory_order_relaxed);
}

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s [--http-port P] [--kv-port Q] [--host ADDR] "
          "[--seconds S] [--http-conns N] [--kv-conns N] [--rate R] "
          "[--workers N] [--label NAME] [--report-every S] [--seed N]\n"
          "       %s --probe http|kv [--http-port P] [--kv-port Q]\n",
          prog, prog);
  exit(2);
}

/* --probe: one plain connection attempt (no weft), see the top. */
static int probe(const struct sockaddr_in *to) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    printf("socket: %s\n", strerror(errno));
    return 3;
  }
  struct timeval tv = {.tv_sec = 1};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int r = connect(fd, (const struct sockaddr *)to, sizeof *to);
  int e = errno;
  close(fd);
  if (r == 0) {
    printf("connected\n");
    return 0;
  }
  printf("%s\n", e == ECONNREFUSED ? "refused" : strerror(e));
  return e == ECONNREFUSED ? 1 : 3;
}

static void progress(double t) {
  uint64_t s[NSRV] = {0}, ok[NSRV] = {0}, lost[NSRV] = {0}, err[NSRV] = {0};
  for (int v = 0; v < NSRV; v++)
    for (int ty = 1; ty < NTYPES; ty++) {
      s[v] += get(&tallies[v][ty].sent);
      ok[v] += get(&tallies[v][ty].ok);
      lost[v] += get(&tallies[v][ty].lost);
      err[v] += get(&tallies[v][ty].err);
    }
  fprintf(stderr,
          "soak_client %s: %4.0f s: http %" PRIu64 " ok, %" PRIu64
          " lost, %" PRIu64 " errors, %" PRIu64 " conns; kv %" PRIu64
          " ok, %" PRIu64 " errors, %" PRIu64 " conns; kills seen %u\n",
          label, t, ok[HTTP], lost[HTTP], err[HTTP],
          get(&tallies[HTTP][T_CONN].ok), ok[KV], err[KV],
          get(&tallies[KV][T_CONN].ok), kills());
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port[NSRV] = {0, 0}, nconn[NSRV] = {48, 24}, workers = 2;
  double secs = 60, every = 10, rate = 1000;
  uint64_t seed = 0;
  int probe_srv = -1;

  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      usage(argv[0]);
    if (!strcmp(a, "--http-port"))
      port[HTTP] = atoi(v);
    else if (!strcmp(a, "--kv-port"))
      port[KV] = atoi(v);
    else if (!strcmp(a, "--host"))
      host = v;
    else if (!strcmp(a, "--seconds"))
      secs = atof(v);
    else if (!strcmp(a, "--http-conns"))
      nconn[HTTP] = atoi(v);
    else if (!strcmp(a, "--kv-conns"))
      nconn[KV] = atoi(v);
    else if (!strcmp(a, "--rate"))
      rate = atof(v);
    else if (!strcmp(a, "--workers"))
      workers = atoi(v);
    else if (!strcmp(a, "--label"))
      label = v;
    else if (!strcmp(a, "--report-every"))
      every = atof(v);
    else if (!strcmp(a, "--seed"))
      seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--probe") && !strcmp(v, "http"))
      probe_srv = HTTP;
    else if (!strcmp(a, "--probe") && !strcmp(v, "kv"))
      probe_srv = KV;
    else
      usage(argv[0]);
  }
  for (int v = 0; v < NSRV; v++) {
    if (port[v] < 0 || port[v] > 65535 || nconn[v] < 0 || nconn[v] > 1000)
      usage(argv[0]);
    if (!port[v])
      nconn[v] = 0;
    addr[v].sin_family = AF_INET;
    addr[v].sin_port = htons((uint16_t)port[v]);
    if (inet_pton(AF_INET, host, &addr[v].sin_addr) != 1) {
      fprintf(stderr, "soak_client: bad address %s\n", host);
      return 2;
    }
  }
  if (probe_srv >= 0) {
    if (!port[probe_srv])
      usage(argv[0]);
    return probe(&addr[probe_srv]);
  }
  if (secs <= 0 || rate <= 0 || workers <= 0 || every <= 0 ||
      nconn[HTTP] + nconn[KV] == 0)
    usage(argv[0]);
  if (!seed)
    seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  snprintf(prefix, sizeof prefix, "soak:%s:%d", label, (int)getpid());

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct rlimit rl;
  rlim_t want = (rlim_t)(nconn[HTTP] + nconn[KV]) + 64;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  weft_config cfg = {.workers = workers};
  int r = weft_init(&cfg);
  if (r < 0) {
    fprintf(stderr, "soak_client: weft_init: %s\n", weft_strerror(r));
    return 1;
  }

  int total = nconn[HTTP] + nconn[KV];
  struct slot *slots = calloc((size_t)total + 1, sizeof *slots);
  weft_gthread *ts = calloc((size_t)total, sizeof *ts);
  if (!slots || !ts) {
    fprintf(stderr, "soak_client: out of memory\n");
    return 1;
  }
  /* The long and short slots of a server share its --rate. */
  int paced[NSRV];
  for (int v = 0; v < NSRV; v++)
    paced[v] = nconn[v] - nconn[v] / 8;
  fprintf(stderr,
          "soak_client %s: %d http and %d kv slots, %.0f req/s each server, "
          "%.0f s, seed %" PRIu64 "\n",
          label, nconn[HTTP], nconn[KV], rate, secs, seed);

  int started = 0;
  for (int i = 0; i <= total; i++) {
    struct slot *s = &slots[i];
    s->srv = i < nconn[HTTP] ? HTTP : KV;
    s->index = s->srv == HTTP ? i : i - nconn[HTTP];
    int m = s->index % 8;
    s->kind = m < 4 ? LONG : m < 7 ? SHORT : SLOW;
    s->rng = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1);
    if (!s->rng)
      s->rng = 1;
    s->c.fd = -1;
    s->c.buf = malloc(RBUF);
    s->wbuf = malloc(WBUF);
    s->scratch = malloc(KV_BIG_VALUE);
    if (!s->c.buf || !s->wbuf || !s->scratch) {
      fprintf(stderr, "soak_client: out of memory\n");
      return 1;
    }
    if (paced[s->srv] > 0)
      s->interval = (int64_t)((double)paced[s->srv] * 1e9 / rate);
    if (i == total)
      break; /* the last one is for the final check */
    char name[WEFT_NAME_MAX];
    snprintf(name, sizeof name, "%s-%d", srv_name[s->srv], s->index);
    r = weft_spawn(&ts[i], &(weft_gthread_attr){.name = name}, slot_main, s);
    if (r < 0) {
      fprintf(stderr, "soak_client: weft_spawn: %s\n", weft_strerror(r));
      break;
    }
    started++;
  }

  int64_t t0 = weft_now(), end = t0 + (int64_t)(secs * 1e9);
  int64_t next_report = t0 + (int64_t)(every * 1e9);
  while (weft_now() < end &&
         atomic_load_explicit(&stop_signal, memory_order_relaxed) == 0) {
    weft_sleep(100 * MS);
    if (weft_now() >= next_report) {
      progress((double)(weft_now() - t0) / 1e9);
      next_report += (int64_t)(every * 1e9);
    }
  }
  atomic_store(&stopping, 1);
  for (int i = 0; i < started; i++)
    weft_join(ts[i], NULL);
  progress((double)(weft_now() - t0) / 1e9);

  if (nconn[KV] > 0) {
    struct slot *s = &slots[total];
    s->srv = KV;
    s->index = -1;
    weft_gthread t;
    if (weft_spawn(&t, NULL, kv_final, s) == 0)
      weft_join(t, NULL);
  }

  uint64_t errors = 0;
  for (int v = 0; v < NSRV; v++) {
    if (!nconn[v])
      continue;
    for (int ty = 0; ty < NTYPES; ty++) {
      struct tally *t = &tallies[v][ty];
      uint64_t s = get(&t->sent), ok = get(&t->ok), lost = get(&t->lost),
               err = get(&t->err);
      printf("tally\t%s\t%s\t%s\t%" PRIu64 "\t%" PRIu64 "\t%" PRIu64
             "\t%" PRIu64 "\n",
             label, srv_name[v], type_name[v][ty], s, ok, lost, err);
      errors += err;
      if (s != ok + lost + err)
        check_line(srv_name[v], type_name[v][ty], false,
                   "the books do not balance: %" PRIu64 " sent, %" PRIu64
                   " accounted for",
                   s, ok + lost + err);
    }
  }
  check_line("all", "errors", errors == 0, "%" PRIu64 " unexpected error%s",
             errors, errors == 1 ? "" : "s");
  fflush(stdout);
  weft_shutdown();
  for (int i = 0; i <= total; i++) {
    free(slots[i].c.buf);
    free(slots[i].wbuf);
    free(slots[i].scratch);
  }
  free(slots);
  free(ts);
  return failures ? 1 : 0;
}
