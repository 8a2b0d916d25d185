/*
 * resp.c - the RESP2 request parser and reply helpers of the kv demo (see
 * resp.h for the contract and the limits).
 *
 * While a command is incomplete its arguments are recorded as offsets from
 * the command's first byte (the caller's buffer may move between calls);
 * they become pointers into the buffer once the command is whole.
 */
#include "resp.h"

#include <stdio.h>
#include <stdlib.h>

enum { ST_START = 0, ST_INLINE = 1, ST_MULTI = 2 };

/* The first buffer of a reply stream: big enough for a pipeline of small
 * replies, small enough to allocate per batch. */
#define RESP_BUF_MIN ((size_t)16 << 10)

void resp_parser_init(resp_parser *p) {
  memset(p, 0, sizeof(*p));
  p->argv = p->small;
  p->cap = RESP_SMALL_ARGS;
  p->bulk = -1;
}

void resp_parser_free(resp_parser *p) {
  if (p->argv != p->small)
    free(p->argv);
  p->argv = p->small;
  p->cap = RESP_SMALL_ARGS;
}

void resp_parser_reset(resp_parser *p) {
  resp_parser_free(p);
  resp_parser_init(p);
}

bool resp_parser_busy(const resp_parser *p) { return p->state != ST_START; }

bool resp_parse_int(const char *s, size_t n, int64_t *v) {
  bool neg = false;
  size_t i = 0;
  if (n > 0 && s[0] == '-') {
    neg = true;
    i = 1;
  }
  if (i == n || n - i > 19)
    return false;
  if (s[i] == '0') {
    if (n == 1) { /* "0" alone; "-0" and "01" are refused, as by redis */
      *v = 0;
      return true;
    }
    return false;
  }
  uint64_t x = 0;
  for (; i < n; i++) {
    unsigned d = (unsigned char)s[i] - '0';
    if (d > 9)
      return false;
    if (x > (UINT64_MAX - d) / 10)
      return false;
    x = x * 10 + d;
  }
  if (neg) {
    if (x > (uint64_t)INT64_MAX + 1)
      return false;
    *v = x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
  } else {
    if (x > (uint64_t)INT64_MAX)
      return false;
    *v = (int64_t)x;
  }
  return true;
}

static int fail(resp_parser *p, const char *msg) {
  p->error = msg;
  p->state = -1;
  return RESP_ERR;
}

/* Records an argument at offset off of the command, len bytes. */
static bool add_arg(resp_parser *p, size_t off, size_t len) {
  if (p->argc == p->cap) {
    size_t ncap = p->cap * 2;
    resp_arg *n;
    if (p->argv == p->small) {
      n = malloc(ncap * sizeof(*n));
      if (n)
        memcpy(n, p->small, sizeof(p->small));
    } else {
      n = realloc(p->argv, ncap * sizeof(*n));
    }
    if (!n)
      return false;
    p->argv = n;
    p->cap = ncap;
  }
  p->argv[p->argc].p = (const char *)(uintptr_t)off;
  p->argv[p->argc].len = len;
  p->argc++;
  return true;
}

/* The command is whole: offsets become pointers, progress is forgotten. */
static int done(resp_parser *p, const char *buf, size_t end, size_t *used) {
  for (size_t i = 0; i < p->argc; i++)
    p->argv[i].p = buf + (uintptr_t)p->argv[i].p;
  *used = end;
  p->state = ST_START;
  p->pos = 0;
  p->count = 0;
  p->bulk = -1;
  return RESP_OK;
}

enum { NUM_OK = 1, NUM_AGAIN = 0, NUM_LONG = -1, NUM_BAD = -2 };

/* The number line at buf[at] (just after its '*' or '$'): its value in *v
 * and the offset after its \r\n in *next. */
static int number_line(resp_parser *p, const char *buf, size_t len, size_t at,
                       int64_t *v, size_t *next) {
  size_t end = len - at > RESP_MAX_NUMBER ? at + RESP_MAX_NUMBER + 1 : len;
  const char *cr = memchr(buf + at, '\r', end - at);
  if (!cr) {
    if (end - at > RESP_MAX_NUMBER)
      return NUM_LONG;
    p->need = len + 1;
    return NUM_AGAIN;
  }
  size_t i = (size_t)(cr - buf);
  if (i + 1 >= len) {
    p->need = i + 2;
    return NUM_AGAIN;
  }
  if (buf[i + 1] != '\n' || !resp_parse_int(buf + at, i - at, v))
    return NUM_BAD;
  *next = i + 2;
  return NUM_OK;
}

static bool is_sep(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int parse_inline(resp_parser *p, const char *buf, size_t len,
                        size_t *used) {
  const char *nl = memchr(buf + p->pos, '\n', len - p->pos);
  if (!nl) {
    p->pos = len;
    if (len > RESP_MAX_INLINE)
      return fail(p, "ERR Protocol error: too big inline request");
    p->need = len + 1;
    return RESP_AGAIN;
  }
  size_t line = (size_t)(nl - buf);
  if (line > RESP_MAX_INLINE)
    return fail(p, "ERR Protocol error: too big inline request");
  size_t i = 0;
  for (;;) {
    while (i < line && is_sep(buf[i]))
      i++;
    if (i == line)
      break;
    size_t start = i;
    while (i < line && !is_sep(buf[i]))
      i++;
    if (!add_arg(p, start, i - start))
      return fail(p, "ERR Protocol error: out of memory");
  }
  return done(p, buf, line + 1, used);
}

static int parse_multi(resp_parser *p, const char *buf, size_t len,
                       size_t *used) {
  int64_t v = 0;
  size_t next = 0;
  if (p->state == ST_START) {
    int r = number_line(p, buf, len, 1, &v, &next);
    if (r == NUM_AGAIN)
      return RESP_AGAIN;
    if (r == NUM_LONG)
      return fail(p, "ERR Protocol error: too big mbulk count string");
    if (r == NUM_BAD || v < -1 || v > RESP_MAX_ARGS)
      return fail(p, "ERR Protocol error: invalid multibulk length");
    if (v <= 0) /* "*0" and the null array "*-1": nothing to run */
      return done(p, buf, next, used);
    p->state = ST_MULTI;
    p->count = v;
    p->pos = next;
    p->bulk = -1;
  }
  while ((int64_t)p->argc < p->count) {
    if (p->bulk < 0) {
      if (p->pos >= len) {
        p->need = p->pos + 1;
        return RESP_AGAIN;
      }
      if (buf[p->pos] != '$') {
        snprintf(p->errbuf, sizeof(p->errbuf),
                 "ERR Protocol error: expected '$', got '%c'", buf[p->pos]);
        return fail(p, p->errbuf);
      }
      int r = number_line(p, buf, len, p->pos + 1, &v, &next);
      if (r == NUM_AGAIN)
        return RESP_AGAIN;
      if (r == NUM_LONG)
        return fail(p, "ERR Protocol error: too big bulk count string");
      if (r == NUM_BAD || v < 0 || (uint64_t)v > RESP_MAX_BULK)
        return fail(p, "ERR Protocol error: invalid bulk length");
      if (next + (size_t)v + 2 > RESP_MAX_COMMAND)
        return fail(p, "ERR Protocol error: command too big");
      p->pos = next;
      p->bulk = v;
    }
    size_t end = p->pos + (size_t)p->bulk;
    if (end + 2 > len) {
      p->need = end + 2;
      return RESP_AGAIN;
    }
    if (buf[end] != '\r' || buf[end + 1] != '\n')
      return fail(p, "ERR Protocol error: expected CRLF after bulk data");
    if (!add_arg(p, p->pos, (size_t)p->bulk))
      return fail(p, "ERR Protocol error: out of memory");
    p->pos = end + 2;
    p->bulk = -1;
  }
  return done(p, buf, p->pos, used);
}

int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *used) {
  *used = 0;
  if (p->state < 0)
    return RESP_ERR;
  if (p->pos > len) {
    /* Fewer bytes than were seen before: not the same command.  Start
     * over rather than trust the offsets. */
    p->state = ST_START;
    p->pos = 0;
  }
  if (p->state == ST_START) {
    p->argc = 0;
    p->pos = 0;
    p->count = 0;
    p->bulk = -1;
    if (len == 0) {
      p->need = 1;
      return RESP_AGAIN;
    }
    if (buf[0] != '*') {
      p->state = ST_INLINE;
      return parse_inline(p, buf, len, used);
    }
    return parse_multi(p, buf, len, used);
  }
  if (p->state == ST_INLINE)
    return parse_inline(p, buf, len, used);
  return parse_multi(p, buf, len, used);
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

bool resp_buf_grow(resp_buf *b, size_t n) {
  if (b->failed)
    return false;
  if (b->cap - b->len >= n)
    return true;
  if (n > SIZE_MAX / 2 - b->len) {
    b->failed = true;
    return false;
  }
  size_t want = b->len + n;
  size_t ncap = b->cap * 2 > RESP_BUF_MIN ? b->cap * 2 : RESP_BUF_MIN;
  if (ncap < want)
    ncap = want;
  char *d;
  if (b->owned) {
    d = realloc(b->data, ncap);
  } else {
    d = malloc(ncap);
    if (d && b->len)
      memcpy(d, b->data, b->len);
  }
  if (!d) {
    b->failed = true;
    return false;
  }
  b->data = d;
  b->cap = ncap;
  b->owned = true;
  return true;
}

void resp_buf_free(resp_buf *b) {
  if (b->owned)
    free(b->data);
  memset(b, 0, sizeof(*b));
}

void resp_buf_use(resp_buf *b, char *storage, size_t cap) {
  resp_buf_free(b);
  b->data = storage;
  b->cap = cap;
}

size_t resp_fmt_int(char *out, int64_t v) {
  char tmp[24];
  size_t n = 0;
  uint64_t x = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
  do {
    tmp[n++] = (char)('0' + x % 10);
    x /= 10;
  } while (x);
  size_t k = 0;
  if (v < 0)
    out[k++] = '-';
  while (n)
    out[k++] = tmp[--n];
  return k;
}

/* <c><v>\r\n */
static void put_num(resp_buf *b, char c, int64_t v) {
  if (!resp_buf_room(b, 24))
    return;
  char *o = b->data + b->len;
  o[0] = c;
  size_t k = 1 + resp_fmt_int(o + 1, v);
  o[k] = '\r';
  o[k + 1] = '\n';
  b->len += k + 2;
}

void resp_put_simple(resp_buf *b, const char *s, size_t n) {
  if (!resp_buf_room(b, n + 3))
    return;
  char *o = b->data + b->len;
  o[0] = '+';
  memcpy(o + 1, s, n);
  o[n + 1] = '\r';
  o[n + 2] = '\n';
  b->len += n + 3;
}

void resp_put_error(resp_buf *b, const char *msg, size_t n) {
  if (!resp_buf_room(b, n + 3))
    return;
  char *o = b->data + b->len;
  o[0] = '-';
  for (size_t i = 0; i < n; i++)
    o[i + 1] = msg[i] == '\r' || msg[i] == '\n' ? ' ' : msg[i];
  o[n + 1] = '\r';
  o[n + 2] = '\n';
  b->len += n + 3;
}

void resp_put_errorz(resp_buf *b, const char *msg) {
  resp_put_error(b, msg, strlen(msg));
}

void resp_put_int(resp_buf *b, int64_t v) { put_num(b, ':', v); }

void resp_put_bulk(resp_buf *b, const void *s, size_t n) {
  if (n > SIZE_MAX / 2 || !resp_buf_room(b, n + 26))
    return;
  put_num(b, '$', (int64_t)n);
  memcpy(b->data + b->len, s, n);
  b->data[b->len + n] = '\r';
  b->data[b->len + n + 1] = '\n';
  b->len += n + 2;
}

void resp_put_null(resp_buf *b) { resp_put_lit(b, "$-1\r\n"); }

void resp_put_array(resp_buf *b, size_t n) { put_num(b, '*', (int64_t)n); }
