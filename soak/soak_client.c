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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

#define MS ((int64_t)1000000)
#define SEC ((int64_t)1000000000)
/* The longest one read or write may wait. */
#define IO_TIMEOUT (10 * SEC)
/* How long a failed connection waits for news of a killed worker. */
#define KILL_GRACE (3 * SEC)
#define RBUF ((size_t)65536)
#define WBUF ((size_t)524288)
#define MAX_ERR_LOG 40

/* KV: keys per slot, shared counters, values. */
#define KV_KEYS 16
#define KV_COUNTERS 8
#define KV_VALUE_MAX 16384
#define KV_BIG_VALUE 49152 /* the longest value slow clients use */
#define KV_BATCH 20        /* most commands in a pipelined batch */

/* HTTP /bytes/N sizes of the abort in the middle of a response. */
#define HTTP_ABORT_BYTES ((uint64_t)1 << 20)

enum srv { HTTP, KV, NSRV };
static const char *const srv_name[NSRV] = {"http", "kv"};

/* Request types, per server.  CONN counts connections opened. */
enum { T_CONN, T_A, T_B, T_C, T_D, T_PIPE, T_SLOW, T_ABORT, NTYPES };
static const char *const type_name[NSRV][NTYPES] = {
    {"connect", "hello", "bytes", "close", "http1.0", "pipelined", "slow",
     "abort"},
    {"connect", "set", "get", "incr", "del", "pipelined", "slow", "abort"},
};
enum { H_HELLO = T_A, H_BYTES = T_B, H_CLOSE = T_C, H_V10 = T_D };
enum { K_SET = T_A, K_GET = T_B, K_INCR = T_C, K_DEL = T_D };

struct tally {
  _Atomic uint64_t sent, ok, lost, err;
};
static struct tally tallies[NSRV][NTYPES];

/* Results of a step. */
enum { ST_OK = 0, ST_GONE = -1, ST_BAD = -2 };

enum kind { LONG, SHORT, SLOW };

enum key_state { K_UNSET, K_HAS, K_DELETED, K_UNKNOWN };

struct kv_key {
  enum key_state st;
  uint32_t seq, len;
};

struct conn {
  int fd;         /* -1: none */
  unsigned epoch; /* kill count before the last answered request was sent */
  bool drained;   /* a draining worker said "Connection: close" */
  int err;        /* last transport failure: 0 end of file, or -errno */
  char *buf;      /* RBUF bytes; unread input is buf[pos, len) */
  size_t pos, len;
  char diag[200]; /* after a timeout: where the bytes were */
  char text[300]; /* why(): the last failure in words */
};

struct slot {
  int index;
  enum srv srv;
  enum kind kind;
  uint64_t rng;
  struct conn c;
  char *wbuf;    /* WBUF bytes */
  char *scratch; /* KV_BIG_VALUE bytes: expected values */
  int64_t interval, next_at;
  struct kv_key keys[KV_KEYS];
  int64_t last_incr[KV_COUNTERS];
};

/* Set by signals. */
static atomic_uint kill_seq;
/* When the last one was announced (CLOCK_MONOTONIC, ns): a drained worker
 * may answer a request sent after the news and close the connection after
 * it, so a failure soon after the news counts as lost too. */
static _Atomic int64_t kill_at;
static atomic_int stop_signal;
static atomic_int stopping;

static struct sockaddr_in addr[NSRV];
static const char *label = "soak";
static char prefix[64];
static _Atomic int err_logged;

/* KV counters: INCRs answered, and INCRs whose answer never came. */
static _Atomic uint64_t incr_acked[KV_COUNTERS];
static _Atomic uint64_t incr_unknown[KV_COUNTERS];

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void add(_Atomic uint64_t *v, uint64_t n) {
  atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

static unsigned kills(void) {
  return atomic_load_explicit(&kill_seq, memory_order_acquire);
}

static bool is_stopping(void) {
  return atomic_load_explicit(&stopping, memory_order_relaxed) != 0;
}

static uint64_t rnd(struct slot *s) {
  /* xorshift64* */
  uint64_t x = s->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  s->rng = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* 0 .. n-1 */
static uint32_t below(struct slot *s, uint32_t n) {
  return n ? (uint32_t)((rnd(s) >> 32) % n) : 0;
}

/* true with probability pct percent */
static bool chance(struct slot *s, uint32_t pct) { return below(s, 100) < pct; }

__attribute__((format(printf, 2, 3))) static void complain(struct slot *s,
                                                           const char *fmt,
                                                           ...) {
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
static const char *first_line(const char *p, size_t n, char *out, size_t cap) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < cap && p[i] != '\r' && p[i] != '\n';
       i++)
    out[k++] = (p[i] >= 32 && p[i] < 127) ? p[i] : '?';
  out[k] = '\0';
  return out;
}

static const char *why(struct conn *c) {
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
static void pace(struct slot *s, int units) {
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

static void conn_close(struct slot *s, bool reset) {
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
static int conn_open(struct slot *s) {
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

static int send_all(struct slot *s, const char *p, size_t n) {
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
static int send_slowly(struct slot *s, const char *p, size_t n) {
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

enum check { C_EXACT, C_XS, C_SKIP };

/*
 * Consumes n bytes of input, checked against exp (C_EXACT), as all 'x'
 * (C_XS), or not at all (C_SKIP).  A slow reader reads at most `limit`
 * bytes at a time and pauses `pause` ns before each read.  ST_OK, ST_GONE or
 * ST_BAD (after a message naming `what`).
 */
static int consume(struct slot *s, uint64_t n, enum check how, const char *exp,
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
static int find(struct slot *s, const char *pat, size_t plen, size_t *at,
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
static int expect_eof(struct slot *s, const char *what) {
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
static void settle(struct slot *s, int type, uint64_t n, int rc,
                   const char *what) {
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
/* HTTP                                                                     */
/* ------------------------------------------------------------------------ */

struct hreq {
  bool hello;    /* GET /, else /bytes/n */
  uint64_t n;
  bool close;    /* "Connection: close" */
  bool v10;      /* HTTP/1.0 */
};

static size_t http_put(char *p, const struct hreq *r) {
  int k;
  if (r->hello)
    k = sprintf(p, "GET / HTTP/1.%d\r\nHost: soak\r\n", r->v10 ? 0 : 1);
  else
    k = sprintf(p, "GET /bytes/%" PRIu64 " HTTP/1.%d\r\nHost: soak\r\n", r->n,
                r->v10 ? 0 : 1);
  if (r->close)
    k += sprintf(p + k, "Connection: close\r\n");
  k += sprintf(p + k, "User-Agent: weft-soak\r\n\r\n");
  return (size_t)k;
}

/* A size for /bytes/N: mostly small, some up to 32 KiB, a few up to
 * 256 KiB. */
static uint64_t http_size(struct slot *s) {
  uint32_t d = below(s, 100);
  if (d < 60)
    return below(s, 1025);
  if (d < 95)
    return below(s, 32769);
  return below(s, 262145);
}

static void http_pick(struct slot *s, struct hreq *r) {
  memset(r, 0, sizeof *r);
  r->hello = chance(s, 55);
  if (!r->hello)
    r->n = http_size(s);
}

/* Whether a worker was killed or drained since the connection's last
 * answered request was sent (the news may come a moment late). */
static bool drain_announced(struct slot *s) {
  int64_t until = weft_deadline(KILL_GRACE);
  while (kills() == s->c.epoch && weft_now() < until)
    weft_sleep(20 * MS);
  return kills() != s->c.epoch;
}

/* Reads the head of a response and checks it; leaves the body unread.
 * ST_OK, ST_GONE, ST_BAD. */
static int http_head(struct slot *s, const struct hreq *r, uint64_t *length) {
  struct conn *c = &s->c;
  size_t at;
  int rc = find(s, "\r\n\r\n", 4, &at, "response head");
  if (rc < 0)
    return rc;
  const char *h = c->buf + c->pos, *end = h + at + 2;
  char l[96], path[32];
  if (r->hello)
    snprintf(path, sizeof path, "/");
  else
    snprintf(path, sizeof path, "/bytes/%" PRIu64, r->n);
  if (at < 12 || memcmp(h, "HTTP/1.1 200 ", 13) != 0) {
    complain(s, "GET %s: status line '%s'", path,
             first_line(h, at, l, sizeof l));
    return ST_BAD;
  }
  bool have_len = false, closing = false;
  uint64_t len = 0;
  const char *p = (const char *)memchr(h, '\n', at + 2) + 1;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol)
      break;
    size_t ln = (size_t)(eol - p);
    if (ln > 15 && strncasecmp(p, "content-length:", 15) == 0) {
      const char *q = p + 15;
      while (*q == ' ')
        q++;
      len = strtoull(q, NULL, 10);
      have_len = true;
    } else if (ln > 11 && strncasecmp(p, "connection:", 11) == 0) {
      closing = memmem(p, ln, "close", 5) != NULL;
    }
    p = eol + 1;
  }
  uint64_t want = r->hello ? 6 : r->n;
  if (!have_len || len != want) {
    complain(s, "GET %s: Content-Length %s%" PRIu64 ", expected %" PRIu64,
             path, have_len ? "" : "missing ", len, want);
    return ST_BAD;
  }
  bool asked = r->close || r->v10;
  if (closing && !asked && drain_announced(s)) {
    c->drained = true; /* a right answer, and the last on c */
  } else if (closing != asked) {
    complain(s, "GET %s: response %s \"Connection: close\" unexpectedly",
             path, closing ? "carries" : "lacks");
    return ST_BAD;
  }
  c->pos += at + 4;
  *length = len;
  return ST_OK;
}

/* Reads and checks a whole response. */
static int http_response(struct slot *s, const struct hreq *r, size_t limit,
                         int64_t pause) {
  uint64_t len;
  int rc = http_head(s, r, &len);
  if (rc < 0)
    return rc;
  if (r->hello)
    rc = consume(s, len, C_EXACT, "hello\n", limit, pause, "GET / body");
  else
    rc = consume(s, len, C_XS, NULL, limit, pause, "GET /bytes/N body");
  if (rc < 0)
    return rc;
  if (r->close || r->v10 || s->c.drained)
    return expect_eof(s, "after Connection: close");
  return ST_OK;
}

/* One request and its answer, booked under `type`.  slow: written in
 * pieces and read in small bites.  Returns ST_OK to go on with the
 * connection. */
static int http_one(struct slot *s, const struct hreq *r, int type, bool slow) {
  size_t n = http_put(s->wbuf, r);
  unsigned epoch = kills();
  add(&tallies[HTTP][type].sent, 1);
  int rc = slow ? send_slowly(s, s->wbuf, n) : send_all(s, s->wbuf, n);
  if (rc == ST_OK)
    rc = slow ? http_response(s, r, 2048, (1 + below(s, 4)) * MS)
              : http_response(s, r, 0, 0);
  if (rc < 0) {
    settle(s, type, 1, rc, "GET");
    return rc;
  }
  s->c.epoch = epoch;
  add(&tallies[HTTP][type].ok, 1);
  return ST_OK;
}

/* 2 to 12 pipelined requests in one write, the answers read in order
 * (read_them), or never read: an abort.  *count: how many were sent. */
static int http_pipeline(struct slot *s, bool read_them, int *count) {
  struct hreq rs[12];
  uint32_t n = 2 + below(s, 11);
  size_t len = 0;
  for (uint32_t i = 0; i < n; i++) {
    http_pick(s, &rs[i]);
    if (!rs[i].hello && rs[i].n > 8192)
      rs[i].n %= 8193;
    len += http_put(s->wbuf + len, &rs[i]);
  }
  *count = (int)n;
  if (!read_them) {
    add(&tallies[HTTP][T_ABORT].sent, 1);
    int rc = send_all(s, s->wbuf, len);
    if (rc < 0) {
      settle(s, T_ABORT, 1, rc, "pipelined batch (abort)");
      return rc;
    }
    add(&tallies[HTTP][T_ABORT].ok, 1);
    return ST_OK;
  }
  unsigned epoch = kills();
  add(&tallies[HTTP][T_PIPE].sent, n);
  int rc = send_all(s, s->wbuf, len);
  uint32_t done = 0;
  while (rc == ST_OK && done < n && !s->c.drained) {
    rc = http_response(s, &rs[done], 0, 0);
    if (rc == ST_OK)
      done++;
  }
  add(&tallies[HTTP][T_PIPE].ok, done);
  if (rc == ST_OK && done < n) { /* the rest died with the drain */
    add(&tallies[HTTP][T_PIPE].lost, n - done);
    return ST_OK;
  }
  if (rc < 0) {
    settle(s, T_PIPE, n - done, rc, "pipelined batch");
    return rc;
  }
  s->c.epoch = epoch;
  return ST_OK;
}

/* Abrupt ends: a request cut in the middle (closed or reset), or a long
 * response reset after a part of it was read and checked. */
static void http_abort(struct slot *s) {
  struct tally *t = &tallies[HTTP][T_ABORT];
  add(&t->sent, 1);
  if (chance(s, 60)) {
    struct hreq r;
    http_pick(s, &r);
    size_t n = http_put(s->wbuf, &r);
    int rc = send_all(s, s->wbuf, 1 + below(s, (uint32_t)n - 1));
    if (rc < 0) {
      settle(s, T_ABORT, 1, rc, "cut request");
      conn_close(s, true);
      return;
    }
    weft_sleep(below(s, 5) * MS);
    add(&t->ok, 1);
    conn_close(s, chance(s, 50));
    return;
  }
  struct hreq r = {.hello = false, .n = HTTP_ABORT_BYTES};
  size_t n = http_put(s->wbuf, &r);
  uint64_t len;
  int rc = send_all(s, s->wbuf, n);
  if (rc == ST_OK)
    rc = http_head(s, &r, &len);
  if (rc == ST_OK)
    rc = consume(s, 1 + below(s, 200000), C_XS, NULL, 0, 0,
                 "GET /bytes/N body (abort)");
  if (rc < 0) {
    settle(s, T_ABORT, 1, rc, "long response (abort)");
  } else {
    add(&t->ok, 1);
  }
  conn_close(s, true);
}

static void http_long(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t rounds = 200 + below(s, 1800);
  for (uint32_t i = 0; i < rounds && !is_stopping(); i++) {
    int rc;
    if (chance(s, 12)) {
      int n;
      rc = http_pipeline(s, true, &n);
      pace(s, n / 2 + 1);
    } else {
      struct hreq r;
      http_pick(s, &r);
      rc = http_one(s, &r, r.hello ? H_HELLO : H_BYTES, false);
      pace(s, 1);
    }
    if (rc < 0 || s->c.drained)
      break;
  }
  conn_close(s, false);
}

static void http_short(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t v = below(s, 100);
  int rc = ST_OK;
  if (v < 15) {
    http_abort(s);
    pace(s, 1);
    return;
  }
  if (v < 20) {
    int n;
    (void)http_pipeline(s, false, &n);
    pace(s, 1);
    conn_close(s, chance(s, 50));
    return;
  }
  uint32_t n = 1 + below(s, 3);
  for (uint32_t i = 0; i < n && rc == ST_OK && !s->c.drained; i++) {
    struct hreq r;
    http_pick(s, &r);
    int type = r.hello ? H_HELLO : H_BYTES;
    if (i == n - 1 && v < 50) {
      r.close = true;
      type = H_CLOSE;
    } else if (i == n - 1 && v < 60) {
      r.v10 = true;
      type = H_V10;
    }
    rc = http_one(s, &r, type, false);
    pace(s, 1);
  }
  conn_close(s, false);
}

static void http_slow(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t n = 2 + below(s, 5);
  int rc = ST_OK;
  for (uint32_t i = 0; i < n && rc == ST_OK && !s->c.drained && !is_stopping();
       i++) {
    struct hreq r;
    http_pick(s, &r);
    if (chance(s, 50)) { /* a slow reader of a long body */
      r.hello = false;
      r.n = 65536 + below(s, 196609);
    }
    rc = http_one(s, &r, T_SLOW, true);
    if (rc == ST_OK)
      weft_sleep((50 + below(s, 400)) * MS); /* an idle gap */
  }
  conn_close(s, false);
}

/* ------------------------------------------------------------------------ */
/* KV                                                                       */
/* ------------------------------------------------------------------------ */

/* A command as RESP: an array of bulk strings. */
static size_t resp_cmd(char *p, int argc, const char *const *argv,
                       const size_t *len) {
  size_t k = (size_t)sprintf(p, "*%d\r\n", argc);
  for (int i = 0; i < argc; i++) {
    k += (size_t)sprintf(p + k, "$%zu\r\n", len[i]);
    memcpy(p + k, argv[i], len[i]);
    k += len[i];
    memcpy(p + k, "\r\n", 2);
    k += 2;
  }
  return k;
}

static size_t key_name(char *p, const struct slot *s, int i) {
  return (size_t)sprintf(p, "%s:k:%d:%d", prefix, s->index, i);
}

static size_t counter_name(char *p, int j) {
  return (size_t)sprintf(p, "%s:c:%d", prefix, j);
}

static size_t abort_key(char *p) {
  return (size_t)sprintf(p, "%s:never", prefix);
}

/* The value of key i of slot s at sequence seq: its sequence number, then
 * letters that depend on all three. */
static void value_gen(char *dst, const struct slot *s, int i, uint32_t seq,
                      uint32_t len) {
  char head[16];
  int h = snprintf(head, sizeof head, "%08x:", seq);
  uint32_t x = (uint32_t)s->index * 2654435761u ^ (uint32_t)i * 40503u ^ seq;
  for (uint32_t k = 0; k < len; k++)
    dst[k] = k < (uint32_t)h ? head[k] : (char)('a' + (x + k * 7) % 26);
}

static uint32_t value_len(struct slot *s) {
  uint32_t d = below(s, 100);
  if (d < 70)
    return 9 + below(s, 120);
  if (d < 98)
    return 9 + below(s, 2048);
  return 9 + below(s, KV_VALUE_MAX - 9);
}

/* What a reply must be. */
enum exp_kind { E_OK, E_INT, E_INCR, E_VALUE, E_NIL, E_ANY };

struct expect {
  enum exp_kind kind;
  int type;      /* tally type */
  int key;       /* E_VALUE: key; E_INCR: counter */
  uint32_t seq, len;
  int64_t n;     /* E_INT */
};

/* Adds one command to the batch in s->wbuf at *off and its expectation,
 * updating the slot's idea of its keys as if it had run.  key: the key to
 * use (-1: one at random); vlen: the length of a SET's value (0: at
 * random). */
static void kv_add(struct slot *s, size_t *off, struct expect *e, int type,
                   int key, uint32_t vlen) {
  char name[96];
  const char *argv[3];
  size_t len[3];
  int i = key >= 0 ? key : (int)below(s, KV_KEYS);
  struct kv_key *k = &s->keys[i];
  memset(e, 0, sizeof *e);
  e->type = type;
  e->key = i;
  argv[1] = name;
  len[1] = key_name(name, s, i);
  switch (type) {
  case K_SET:
    k->seq++;
    k->len = vlen ? vlen : value_len(s);
    k->st = K_HAS;
    value_gen(s->scratch, s, i, k->seq, k->len);
    argv[0] = "SET", len[0] = 3;
    argv[2] = s->scratch, len[2] = k->len;
    *off += resp_cmd(s->wbuf + *off, 3, argv, len);
    e->kind = E_OK;
    break;
  case K_GET:
    argv[0] = "GET", len[0] = 3;
    *off += resp_cmd(s->wbuf + *off, 2, argv, len);
    e->kind = k->st == K_HAS ? E_VALUE : k->st == K_UNKNOWN ? E_ANY : E_NIL;
    e->seq = k->seq;
    e->len = k->len;
    break;
  case K_DEL:
    argv[0] = "DEL", len[0] = 3;
    *off += resp_cmd(s->wbuf + *off, 2, argv, len);
    e->kind = k->st == K_UNKNOWN ? E_ANY : E_INT;
    e->n = k->st == K_HAS ? 1 : 0;
    k->st = K_DELETED;
    break;
  case K_INCR:
  default:
    e->key = (int)below(s, KV_COUNTERS);
    argv[0] = "INCR", len[0] = 4;
    len[1] = counter_name(name, e->key);
    *off += resp_cmd(s->wbuf + *off, 2, argv, len);
    e->kind = E_INCR;
    break;
  }
}

/* Reads one reply line ("+OK", ":12", "$5", "-ERR ...") into out. */
static int kv_line(struct slot *s, char *out, size_t cap) {
  size_t at;
  int rc = find(s, "\r\n", 2, &at, "reply");
  if (rc < 0)
    return rc;
  size_t n = at < cap - 1 ? at : cap - 1;
  memcpy(out, s->c.buf + s->c.pos, n);
  out[n] = '\0';
  s->c.pos += at + 2;
  return ST_OK;
}

/* Reads and checks one reply.  A slow reader reads values in small bites
 * (limit, pause). */
static int kv_reply(struct slot *s, const struct expect *e, size_t limit,
                    int64_t pause) {
  char line[128];
  int rc = kv_line(s, line, sizeof line);
  if (rc < 0)
    return rc;
  const char *tn = type_name[KV][e->type];
  switch (e->kind) {
  case E_OK:
    if (strcmp(line, "+OK") != 0)
      goto wrong;
    return ST_OK;
  case E_INT: {
    char want[32];
    snprintf(want, sizeof want, ":%" PRId64, e->n);
    if (strcmp(line, want) != 0)
      goto wrong;
    return ST_OK;
  }
  case E_INCR: {
    char *end;
    if (line[0] != ':')
      goto wrong;
    long long v = strtoll(line + 1, &end, 10);
    if (*end || v <= s->last_incr[e->key]) {
      complain(s, "INCR counter %d: %lld after %" PRId64 " (must grow)",
               e->key, v, s->last_incr[e->key]);
      return ST_BAD;
    }
    s->last_incr[e->key] = v;
    add(&incr_acked[e->key], 1);
    return ST_OK;
  }
  case E_NIL:
    if (strcmp(line, "$-1") != 0)
      goto wrong;
    return ST_OK;
  case E_VALUE: {
    char want[32];
    snprintf(want, sizeof want, "$%" PRIu32, e->len);
    if (strcmp(line, want) != 0)
      goto wrong;
    value_gen(s->scratch, s, e->key, e->seq, e->len);
    rc = consume(s, e->len, C_EXACT, s->scratch, limit, pause, "GET value");
    if (rc == ST_OK)
      rc = consume(s, 2, C_EXACT, "\r\n", 0, 0, "GET value end");
    return rc;
  }
  case E_ANY:
  default:
    if (line[0] == '$' && line[1] != '-') {
      uint64_t n = strtoull(line + 1, NULL, 10);
      rc = consume(s, n + 2, C_SKIP, NULL, limit, pause, "GET value");
      return rc;
    }
    if (line[0] == ':' || line[0] == '+' || line[0] == '$')
      return ST_OK;
    goto wrong;
  }
wrong:
  complain(s, "%s: unexpected reply '%s'", tn, line);
  return ST_BAD;
}

/* After a failure the slot no longer knows its keys: accept anything once
 * and start over. */
static void kv_forget(struct slot *s) {
  for (int i = 0; i < KV_KEYS; i++)
    s->keys[i].st = K_UNKNOWN;
}

/* Runs a batch of n commands (pipelined when n > 1) on keys[] (NULL: at
 * random), booked under their own types, or all under `as` (T_PIPE,
 * T_SLOW) when as >= 0.  slow: written in pieces, values read in small
 * bites; vlen: the length of SET values (0: at random). */
static int kv_batch(struct slot *s, int n, const int *types, const int *keys,
                    int as, bool slow, uint32_t vlen) {
  struct expect es[KV_BATCH];
  size_t off = 0;
  for (int i = 0; i < n; i++)
    kv_add(s, &off, &es[i], types[i], keys ? keys[i] : -1, vlen);
  for (int i = 0; i < n; i++)
    add(&tallies[KV][as >= 0 ? as : es[i].type].sent, 1);
  int rc = slow ? send_slowly(s, s->wbuf, off) : send_all(s, s->wbuf, off);
  int done = 0;
  while (rc == ST_OK && done < n) {
    rc = slow ? kv_reply(s, &es[done], 1024, 2 * MS)
              : kv_reply(s, &es[done], 0, 0);
    if (rc == ST_OK) {
      add(&tallies[KV][as >= 0 ? as : es[done].type].ok, 1);
      done++;
    }
  }
  if (rc < 0) {
    /* The one that was wrong (ST_BAD, already reported) or the first that
     * got no answer (ST_GONE), and the rest: errors, as KV is never
     * killed. */
    for (int i = done; i < n; i++) {
      if (es[i].kind == E_INCR)
        add(&incr_unknown[es[i].key], 1);
      settle(s, as >= 0 ? as : es[i].type, 1, i == done ? rc : ST_BAD,
             "command");
    }
    kv_forget(s);
    return rc;
  }
  return ST_OK;
}

static int kv_type(struct slot *s) {
  uint32_t d = below(s, 100);
  return d < 35 ? K_SET : d < 65 ? K_GET : d < 95 ? K_INCR : K_DEL;
}

/* A batch of 3 to 20 commands, or one command (a SET is read back half
 * the time). */
static int kv_round(struct slot *s) {
  int types[KV_BATCH];
  if (chance(s, 15)) {
    int n = 3 + (int)below(s, KV_BATCH - 3);
    for (int i = 0; i < n; i++)
      types[i] = kv_type(s);
    int rc = kv_batch(s, n, types, NULL, T_PIPE, false, 0);
    pace(s, n / 2 + 1);
    return rc;
  }
  int key = (int)below(s, KV_KEYS);
  types[0] = kv_type(s);
  int rc = kv_batch(s, 1, types, &key, -1, false, 0);
  if (rc == ST_OK && types[0] == K_SET && chance(s, 50)) {
    types[0] = K_GET;
    rc = kv_batch(s, 1, types, &key, -1, false, 0);
  }
  pace(s, 1);
  return rc;
}

/* A command cut in the middle: an INCR of a key nothing else touches,
 * which must therefore never exist. */
static void kv_abort(struct slot *s) {
  struct tally *t = &tallies[KV][T_ABORT];
  char name[96];
  const char *argv[2] = {"INCR", name};
  size_t len[2] = {4, abort_key(name)};
  size_t n = resp_cmd(s->wbuf, 2, argv, len);
  add(&t->sent, 1);
  int rc = send_all(s, s->wbuf, 1 + below(s, (uint32_t)n - 2));
  if (rc < 0) {
    settle(s, T_ABORT, 1, rc, "cut command");
  } else {
    weft_sleep(below(s, 5) * MS);
    add(&t->ok, 1);
  }
  conn_close(s, chance(s, 50));
}

/* GETs pipelined, then a close without reading the replies. */
static void kv_unread(struct slot *s) {
  struct tally *t = &tallies[KV][T_ABORT];
  struct expect e;
  size_t off = 0;
  int n = 2 + (int)below(s, 10);
  for (int i = 0; i < n; i++)
    kv_add(s, &off, &e, K_GET, -1, 0);
  add(&t->sent, 1);
  if (send_all(s, s->wbuf, off) < 0)
    settle(s, T_ABORT, 1, ST_GONE, "pipelined GETs (abort)");
  else
    add(&t->ok, 1);
  conn_close(s, chance(s, 50));
}

static void kv_long(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t rounds = 200 + below(s, 1800);
  for (uint32_t i = 0; i < rounds && !is_stopping(); i++)
    if (kv_round(s) < 0)
      break;
  conn_close(s, false);
}

static void kv_short(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t v = below(s, 100);
  if (v < 12) {
    kv_abort(s);
    pace(s, 1);
    return;
  }
  if (v < 17) {
    kv_unread(s);
    pace(s, 1);
    return;
  }
  uint32_t n = 1 + below(s, 3);
  for (uint32_t i = 0; i < n; i++)
    if (kv_round(s) < 0)
      break;
  conn_close(s, false);
}

/* Slow writers and readers: a SET and a GET of one key written a few
 * bytes at a time, the value read back 1 KiB at a time; 40% of the time
 * a big value (24 to 48 KiB); idle gaps between. */
static void kv_slow(struct slot *s) {
  if (conn_open(s) < 0) {
    weft_sleep(100 * MS);
    return;
  }
  uint32_t n = 2 + below(s, 5);
  for (uint32_t i = 0; i < n && !is_stopping(); i++) {
    int types[2] = {K_SET, K_GET};
    int key = (int)below(s, KV_KEYS), keys[2] = {key, key};
    uint32_t big = chance(s, 40) ? KV_BIG_VALUE / 2 + below(s, KV_BIG_VALUE / 2)
                                 : 0;
    if (kv_batch(s, 2, types, keys, T_SLOW, true, big) < 0)
      break;
    weft_sleep((50 + below(s, 400)) * MS); /* an idle gap */
  }
  conn_close(s, false);
}

/* ------------------------------------------------------------------------ */
/* Slots, the final check, main                                             */
/* ------------------------------------------------------------------------ */

static void *slot_main(void *arg) {
  struct slot *s = arg;
  s->next_at = weft_now();
  while (!is_stopping()) {
    if (s->srv == HTTP) {
      if (s->kind == LONG)
        http_long(s);
      else if (s->kind == SHORT)
        http_short(s);
      else
        http_slow(s);
    } else {
      if (s->kind == LONG)
        kv_long(s);
      else if (s->kind == SHORT)
        kv_short(s);
      else
        kv_slow(s);
    }
  }
  return NULL;
}

static int failures; /* checks that failed */

static void check_line(const char *srv, const char *what, bool ok,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void check_line(const char *srv, const char *what, bool ok,
                       const char *fmt, ...) {
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

/* The KV counters against the INCRs answered; the key only cut commands
 * named must not exist. */
static void *kv_final(void *arg) {
  struct slot *s = arg;
  if (conn_open(s) < 0) {
    check_line("kv", "counters", false, "cannot connect for the final check");
    return NULL;
  }
  uint64_t total = 0;
  bool all = true;
  char detail[200] = "";
  for (int j = 0; j < KV_COUNTERS; j++) {
    char name[96], line[128];
    const char *argv[2] = {"GET", name};
    size_t len[2] = {3, counter_name(name, j)};
    size_t n = resp_cmd(s->wbuf, 2, argv, len);
    uint64_t acked = get(&incr_acked[j]), unknown = get(&incr_unknown[j]);
    uint64_t v = 0;
    if (send_all(s, s->wbuf, n) < 0 || kv_line(s, line, sizeof line) < 0) {
      check_line("kv", "counters", false, "final GET failed: %s", why(&s->c));
      return NULL;
    }
    if (line[0] == '$' && line[1] != '-') {
      size_t l = strtoull(line + 1, NULL, 10);
      char num[32];
      if (l >= sizeof num || kv_line(s, num, sizeof num) < 0) {
        all = false;
        break;
      }
      v = strtoull(num, NULL, 10);
    }
    total += v;
    if (v < acked || v > acked + unknown) {
      all = false;
      size_t k = strlen(detail);
      snprintf(detail + k, sizeof detail - k,
               "counter %d is %" PRIu64 ", expected %" PRIu64 "%s; ", j, v,
               acked, unknown ? " (+ unknown)" : "");
    }
  }
  if (all)
    check_line("kv", "counters", true,
               "%d counters total %" PRIu64 " = INCRs answered", KV_COUNTERS,
               total);
  else
    check_line("kv", "counters", false, "%s", detail);

  char name[96], line[128];
  const char *argv[2] = {"EXISTS", name};
  size_t len[2] = {6, abort_key(name)};
  size_t n = resp_cmd(s->wbuf, 2, argv, len);
  if (send_all(s, s->wbuf, n) < 0 || kv_line(s, line, sizeof line) < 0)
    check_line("kv", "cut-commands", false, "EXISTS failed: %s", why(&s->c));
  else
    check_line("kv", "cut-commands", strcmp(line, ":0") == 0,
               "key named only by cut commands: EXISTS %s", line);
  conn_close(s, false);
  return NULL;
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
