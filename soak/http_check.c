/*
 * http_check.c - the soak client's HTTP side: requests to servers/http of
 * each slot kind (long keep-alive connections with pipelined batches,
 * short ones that end in "Connection: close", HTTP/1.0 or abruptly, slow
 * writers and readers), and the checks of every response (see "Checks" atop
 * soak_client.c).  The connection layer is soak_client.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft.h>

#include "soak_client.h"

/* HTTP /bytes/N sizes of the abort in the middle of a response. */
#define HTTP_ABORT_BYTES ((uint64_t)1 << 20)

enum { H_HELLO = T_A, H_BYTES = T_B, H_CLOSE = T_C, H_V10 = T_D };

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

void http_connection(struct slot *s) {
  if (s->kind == LONG)
    http_long(s);
  else if (s->kind == SHORT)
    http_short(s);
  else
    http_slow(s);
}
