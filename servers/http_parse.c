/*
 * http_parse.c - the incremental HTTP/1.1 request-head parser of
 * servers/http (see http_parse.h for the contract, limits and errors).
 *
 * The head is cut into lines at LF, one line at a time, and each complete
 * line is checked and recorded as soon as it is there; the parser keeps
 * only offsets from the request's first byte, so the caller may move its
 * buffer between calls.  A call searches for the next LF only in bytes it
 * has not searched yet, so feeding a request in small pieces costs no more
 * than feeding it at once.
 */
#include "http_parse.h"

#include <string.h>

enum stage {
  ST_START = 0, /* before the request line (empty lines are skipped) */
  ST_FIELDS,    /* in the header section */
  ST_DONE,      /* the head is complete; p->line is its length */
  ST_FAILED,    /* p->status says why */
};

enum flag {
  F_CL = 1,            /* Content-Length seen */
  F_TE = 2,            /* Transfer-Encoding seen */
  F_CLOSE = 4,         /* Connection: close */
  F_KEEP = 8,          /* Connection: keep-alive */
  F_CONTINUE = 16,     /* Expect: 100-continue */
  F_EXPECT_OTHER = 32, /* another expectation */
  F_CHUNKED = 64,      /* the last transfer coding so far is chunked */
  F_TE_BAD = 128,      /* chunked twice, or a coding after chunked */
  F_TE_OTHER = 256,    /* a coding other than chunked (before it) */
};

/* Character classes: a token character (RFC 9110 tchar), a character that
 * may appear in a request target, a character of a Host value. */
#define C_TOKEN 1
#define C_TARGET 2
#define C_HOST 4

static const unsigned char cclass[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 7, 0, 1, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 2, /* 0x20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 0, 6, 0, 2, /* 0x30 */
    2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x40 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 0, 6, 1, 7, /* 0x50 */
    1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, /* 0x60 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0, 1, 0, 7, 0, /* 0x70 */
    /* 0x80 to 0xff: none of the classes */
};

static inline bool is_class(unsigned char c, unsigned cls) {
  return (cclass[c] & cls) != 0;
}

/* A field-value byte: VCHAR, obs-text, SP or HTAB. */
static inline bool is_value_char(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline unsigned char lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* s[0, n) equals the lower-case word w (length wn), ignoring case. */
static bool eq_nocase(const char *s, size_t n, const char *w, size_t wn) {
  if (n != wn)
    return false;
  for (size_t i = 0; i < n; i++)
    if (lower((unsigned char)s[i]) != (unsigned char)w[i])
      return false;
  return true;
}

#define EQ_NOCASE(s, n, lit) eq_nocase((s), (n), lit, sizeof lit - 1)

static const struct {
  const char *name;
  unsigned char len;
} methods[] = {
    [HTTP_GET] = {"GET", 3},         [HTTP_HEAD] = {"HEAD", 4},
    [HTTP_POST] = {"POST", 4},       [HTTP_PUT] = {"PUT", 3},
    [HTTP_DELETE] = {"DELETE", 6},   [HTTP_CONNECT] = {"CONNECT", 7},
    [HTTP_OPTIONS] = {"OPTIONS", 7}, [HTTP_TRACE] = {"TRACE", 5},
    [HTTP_PATCH] = {"PATCH", 5},
};

#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

const char *http_method_name(int method) {
  if (method <= 0 || method >= N_METHODS)
    return "";
  return methods[method].name;
}

static int method_of(const char *s, size_t n) {
  if (n == 3 && memcmp(s, "GET", 3) == 0)
    return HTTP_GET; /* the common case first */
  for (int m = 1; m < N_METHODS; m++)
    if (n == methods[m].len && memcmp(s, methods[m].name, n) == 0)
      return m;
  return 0;
}

void http_parser_init(http_parser *p) { memset(p, 0, sizeof *p); }

static int fail(http_parser *p, int status) {
  p->stage = ST_FAILED;
  p->status = (uint16_t)status;
  return -status;
}

/*
 * The request line, buf[s, e) without its CRLF.  Returns 0 or -status.
 */
static int request_line(http_parser *p, const char *buf, size_t s, size_t e) {
  const unsigned char *u = (const unsigned char *)buf;
  size_t i = s;
  while (i < e && is_class(u[i], C_TOKEN))
    i++;
  if (i == s || i == e || u[i] != ' ')
    return -400;
  size_t method_end = i;
  size_t t = ++i;
  while (i < e && is_class(u[i], C_TARGET))
    i++;
  if (i == t || i == e || u[i] != ' ')
    return -400;
  size_t target_end = i++;
  /* "HTTP/" DIGIT "." DIGIT and nothing else. */
  if (e - i != 8 || memcmp(buf + i, "HTTP/", 5) != 0 || u[i + 5] < '0' ||
      u[i + 5] > '9' || u[i + 6] != '.' || u[i + 7] < '0' || u[i + 7] > '9')
    return -400;
  if (u[i + 5] != '1')
    return -505;
  p->version = u[i + 7] == '0' ? 10 : 11;
  int m = method_of(buf + s, method_end - s);
  if (m == 0)
    return -501;
  p->method = (uint8_t)m;

  /* The target's form, and its path. */
  size_t tn = target_end - t;
  p->target_off = (uint16_t)t;
  p->target_len = (uint16_t)tn;
  size_t path = t, path_end = t;
  if (m == HTTP_CONNECT) {
    if (u[t] == '/' || u[t] == '*')
      return -400; /* authority form only */
  } else if (u[t] == '/') {
    path_end = t;
    while (path_end < target_end && u[path_end] != '?')
      path_end++;
  } else if (u[t] == '*') {
    if (tn != 1 || m != HTTP_OPTIONS)
      return -400;
  } else {
    /* Absolute form: scheme "://" authority [path-abempty] ["?" query]. */
    size_t k = t;
    if (!((u[k] | 0x20) >= 'a' && (u[k] | 0x20) <= 'z'))
      return -400;
    while (k < target_end && (((u[k] | 0x20) >= 'a' && (u[k] | 0x20) <= 'z') ||
                              (u[k] >= '0' && u[k] <= '9') || u[k] == '+' ||
                              u[k] == '-' || u[k] == '.'))
      k++;
    if (target_end - k < 3 || memcmp(buf + k, "://", 3) != 0)
      return -400;
    k += 3;
    while (k < target_end && u[k] != '/' && u[k] != '?')
      k++;
    path = path_end = k;
    while (path_end < target_end && u[path_end] != '?')
      path_end++;
  }
  p->path_off = (uint16_t)path;
  p->path_len = (uint16_t)(path_end - path);
  return 0;
}

/* Content-Length: 1*DIGIT, saturating just above the limit. */
static int content_length(http_parser *p, const char *v, size_t n) {
  if (p->flags & F_CL)
    return -400;
  if (n == 0)
    return -400;
  uint64_t x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9')
      return -400;
    if (x <= HTTP_MAX_BODY)
      x = x * 10 + (uint64_t)(v[i] - '0');
  }
  p->flags |= F_CL;
  p->content_length = x;
  return 0;
}

/*
 * Transfer-Encoding: a comma-separated list of codings, in the order they
 * were applied; several field lines add to one list.  Only chunked is
 * known, and a request's list must end with it (RFC 9112, 6.3): anything
 * after chunked, or chunked twice, is 400 at the end of the head; another
 * coding before it is 501 there (the body's length is known, its content
 * could not be decoded).  A coding's parameters (";q=...") are skipped.
 */
static void transfer_encoding(http_parser *p, const char *v, size_t n) {
  size_t i = 0;
  p->flags |= F_TE;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    if (i == n)
      break;
    size_t s = i;
    while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t' && v[i] != ';')
      i++;
    if (p->flags & F_CHUNKED)
      p->flags |= F_TE_BAD; /* a coding after chunked */
    if (EQ_NOCASE(v + s, i - s, "chunked"))
      p->flags |= F_CHUNKED;
    else
      p->flags |= F_TE_OTHER;
    while (i < n && v[i] != ',')
      i++;
  }
}

/* Connection: a comma-separated list of options. */
static void connection(http_parser *p, const char *v, size_t n) {
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    size_t s = i;
    while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
      i++;
    if (EQ_NOCASE(v + s, i - s, "close"))
      p->flags |= F_CLOSE;
    else if (EQ_NOCASE(v + s, i - s, "keep-alive"))
      p->flags |= F_KEEP;
    while (i < n && v[i] != ',')
      i++; /* whatever follows an option up to the next comma */
  }
}

/*
 * A field line, buf[s, e) without its CRLF and not empty.  Returns 0 or
 * -status.
 */
static int field_line(http_parser *p, const char *buf, size_t s, size_t e) {
  const unsigned char *u = (const unsigned char *)buf;
  if (u[s] == ' ' || u[s] == '\t')
    return -400; /* obs-fold */
  size_t i = s;
  while (i < e && is_class(u[i], C_TOKEN))
    i++;
  if (i == s || i == e || u[i] != ':')
    return -400;
  const char *name = buf + s;
  size_t name_len = i - s;
  i++;
  while (i < e && (u[i] == ' ' || u[i] == '\t'))
    i++;
  size_t vs = i;
  for (; i < e; i++)
    if (!is_value_char(u[i]))
      return -400;
  size_t ve = e;
  while (ve > vs && (u[ve - 1] == ' ' || u[ve - 1] == '\t'))
    ve--;
  const char *v = buf + vs;
  size_t vn = ve - vs;

  switch (name_len) {
  case 4:
    if (EQ_NOCASE(name, name_len, "host")) {
      if (++p->hosts > 1)
        return -400;
      for (size_t k = 0; k < vn; k++)
        if (!is_class((unsigned char)v[k], C_HOST))
          return -400;
      p->host_off = (uint16_t)vs;
      p->host_len = (uint16_t)vn;
    }
    break;
  case 6:
    if (EQ_NOCASE(name, name_len, "expect") && p->version == 11) {
      if (EQ_NOCASE(v, vn, "100-continue"))
        p->flags |= F_CONTINUE;
      else
        p->flags |= F_EXPECT_OTHER;
    }
    break;
  case 10:
    if (EQ_NOCASE(name, name_len, "connection"))
      connection(p, v, vn);
    break;
  case 14:
    if (EQ_NOCASE(name, name_len, "content-length"))
      return content_length(p, v, vn);
    break;
  case 17:
    if (EQ_NOCASE(name, name_len, "transfer-encoding"))
      transfer_encoding(p, v, vn);
    break;
  default:
    break;
  }
  return 0;
}

/* The checks that need the whole header section. */
static int end_of_head(http_parser *p) {
  if (p->version == 11 && p->hosts == 0)
    return -400;
  if ((p->flags & (F_CL | F_TE)) == (F_CL | F_TE))
    return -400;
  if (p->flags & F_TE) {
    /* HTTP/1.0 has no transfer codings: its framing cannot be trusted. */
    if (p->version == 10 || !(p->flags & F_CHUNKED) || (p->flags & F_TE_BAD))
      return -400;
    if (p->flags & F_TE_OTHER)
      return -501;
  }
  if (p->content_length > HTTP_MAX_BODY)
    return -413;
  if (p->flags & F_EXPECT_OTHER)
    return -417;
  return 0;
}

static void fill(const http_parser *p, const char *buf, http_request *req) {
  req->method = p->method;
  req->version = p->version;
  req->target = buf + p->target_off;
  req->target_len = p->target_len;
  req->path = buf + p->path_off;
  req->path_len = p->path_len;
  req->host = p->hosts ? buf + p->host_off : NULL;
  req->host_len = p->hosts ? p->host_len : 0;
  req->content_length = p->content_length;
  req->head_len = p->line;
  req->has_content_length = (p->flags & F_CL) != 0;
  req->chunked = (p->flags & F_TE) != 0;
  if (p->version == 11)
    req->keep_alive = !(p->flags & F_CLOSE);
  else
    req->keep_alive = (p->flags & (F_KEEP | F_CLOSE)) == F_KEEP;
  req->expect_continue = (p->flags & F_CONTINUE) != 0;
}

/* Whether the request line begun at buf[s, e), whose line feed has not
 * come yet, can only be refused: its method has a byte that is neither a
 * token character nor the space after it, or it starts with a space
 * (request_line answers 400 to both once the line is complete).  Checked
 * early, so that a client speaking another protocol (a TLS ClientHello)
 * gets its 400 at once.  A lone CR may still begin an empty line. */
static bool bad_method_so_far(const char *buf, size_t s, size_t e) {
  const unsigned char *u = (const unsigned char *)buf;
  if (e - s == 1 && u[s] == '\r')
    return false;
  for (size_t i = s; i < e; i++) {
    if (u[i] == ' ')
      return i == s;
    if (!is_class(u[i], C_TOKEN))
      return true;
  }
  return false;
}

int http_parse(http_parser *p, const char *buf, size_t len, http_request *req) {
  if (p->stage == ST_FAILED)
    return -(int)p->status;
  if ((size_t)p->line + p->scanned > len) {
    /* Fewer bytes than before: the caller broke the contract.  Start over
     * rather than trust offsets beyond the buffer. */
    http_parser_init(p);
  }
  if (p->stage == ST_DONE) {
    fill(p, buf, req);
    return (int)p->line;
  }
  /* Every LF of the head lies within its first HTTP_MAX_HEAD bytes. */
  size_t limit = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
  for (;;) {
    size_t s = p->line;
    size_t from = s + p->scanned;
    const char *lf =
        from < limit ? memchr(buf + from, '\n', limit - from) : NULL;
    if (lf == NULL) {
      if (p->stage == ST_START && bad_method_so_far(buf, s, limit))
        return fail(p, 400);
      if (len >= HTTP_MAX_HEAD)
        return fail(p, 431);
      p->scanned = (uint32_t)(limit - s);
      return 0;
    }
    size_t end = (size_t)(lf - buf);
    p->line = (uint32_t)(end + 1);
    p->scanned = 0;
    /* The line is buf[s, end); it must end with CR, and have no other. */
    if (end == s || buf[end - 1] != '\r')
      return fail(p, 400);
    end--;
    int r;
    if (p->stage == ST_START) {
      if (end == s)
        continue; /* an empty line before the request line */
      r = request_line(p, buf, s, end);
      p->stage = ST_FIELDS;
    } else if (end == s) {
      r = end_of_head(p);
      if (r == 0) {
        p->stage = ST_DONE;
        fill(p, buf, req);
        return (int)p->line;
      }
    } else {
      r = field_line(p, buf, s, end);
    }
    if (r < 0)
      return fail(p, -r);
  }
}

/* ------------------------------------------------------------------------ */
/* Chunked bodies                                                           */
/* ------------------------------------------------------------------------ */

/*
 * A byte-at-a-time state machine: it keeps no bytes, only counts, so the
 * caller never holds a partial chunk line for it, and feeding a body in
 * any pieces gives the same result.  Only the data runs are handed back,
 * as spans of the caller's buffer.
 */
enum chunked_state {
  CK_SIZE0 = 0, /* the first hex digit of a chunk size */
  CK_SIZE,      /* more digits, BWS, ";" or CR */
  CK_SIZE_WS,   /* after BWS: more of it, ";" or CR */
  CK_EXT,       /* a chunk extension, up to CR */
  CK_SIZE_LF,   /* the LF of a size line */
  CK_DATA,      /* d->left bytes of data */
  CK_DATA_CR,   /* the CRLF after a chunk's data */
  CK_DATA_LF,
  CK_TRAILER,   /* the start of a trailer line, or the final CR */
  CK_TR_NAME,   /* a trailer field's name, up to ":" */
  CK_TR_VALUE,  /* its value, up to CR */
  CK_TR_LF,
  CK_END_LF,    /* the final LF */
  CK_DONE,
  CK_FAILED,
};

void http_chunked_init(http_chunked *d) { memset(d, 0, sizeof *d); }

bool http_chunked_done(const http_chunked *d) { return d->state == CK_DONE; }

static ssize_t chunked_fail(http_chunked *d, int status) {
  d->state = CK_FAILED;
  d->status = (uint16_t)status;
  return -status;
}

static int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = lower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

ssize_t http_chunked_feed(http_chunked *d, const char *buf, size_t len,
                          const char **data, size_t *data_len) {
  const unsigned char *u = (const unsigned char *)buf;
  size_t i = 0;
  *data = NULL;
  *data_len = 0;
  if (d->state == CK_FAILED)
    return -(ssize_t)d->status;
  while (i < len && d->state != CK_DONE) {
    unsigned char c = u[i];
    int x;
    switch ((enum chunked_state)d->state) {
    case CK_DATA: {
      /* The only state that takes more than one byte at a time; the call
       * ends with the run, so that the caller sees it. */
      size_t n = len - i;
      if (n > d->left)
        n = (size_t)d->left;
      *data = buf + i;
      *data_len = n;
      d->left -= n;
      if (d->left == 0)
        d->state = CK_DATA_CR;
      return (ssize_t)(i + n);
    }
    case CK_SIZE0:
    case CK_SIZE:
      if ((x = hex_value(c)) >= 0) {
        /* The sum of the sizes may not pass HTTP_MAX_BODY; leading zeros
         * are free.  total never passes it, so room does not wrap. */
        uint64_t room = HTTP_MAX_BODY - d->total;
        if ((uint64_t)x > room || d->left > (room - (uint64_t)x) / 16)
          return chunked_fail(d, 413);
        d->left = d->left * 16 + (uint64_t)x;
        d->state = CK_SIZE;
      } else if (d->state == CK_SIZE0) {
        return chunked_fail(d, 400);
      } else if (c == ' ' || c == '\t') {
        d->state = CK_SIZE_WS;
      } else if (c == ';') {
        d->state = CK_EXT;
      } else if (c == '\r') {
        d->state = CK_SIZE_LF;
      } else {
        return chunked_fail(d, 400);
      }
      break;
    case CK_SIZE_WS:
      if (c == ';')
        d->state = CK_EXT;
      else if (c == '\r')
        d->state = CK_SIZE_LF;
      else if (c != ' ' && c != '\t')
        return chunked_fail(d, 400);
      break;
    case CK_EXT:
      if (c == '\r')
        d->state = CK_SIZE_LF;
      else if (!is_value_char(c))
        return chunked_fail(d, 400);
      break;
    case CK_SIZE_LF:
      if (c != '\n')
        return chunked_fail(d, 400);
      d->line = 0;
      if (d->left == 0) {
        d->state = CK_TRAILER; /* the last chunk */
      } else {
        d->total += d->left;
        d->state = CK_DATA;
      }
      i++;
      continue; /* a line's length is not counted past its end */
    case CK_DATA_CR:
      if (c != '\r')
        return chunked_fail(d, 400);
      d->state = CK_DATA_LF;
      break;
    case CK_DATA_LF:
      if (c != '\n')
        return chunked_fail(d, 400);
      d->state = CK_SIZE0;
      d->line = 0;
      i++;
      continue;
    case CK_TRAILER:
      if (c == '\r')
        d->state = CK_END_LF;
      else if (is_class(c, C_TOKEN))
        d->state = CK_TR_NAME;
      else
        return chunked_fail(d, 400);
      break;
    case CK_TR_NAME:
      if (c == ':')
        d->state = CK_TR_VALUE;
      else if (!is_class(c, C_TOKEN))
        return chunked_fail(d, 400);
      break;
    case CK_TR_VALUE:
      if (c == '\r')
        d->state = CK_TR_LF;
      else if (!is_value_char(c))
        return chunked_fail(d, 400);
      break;
    case CK_TR_LF:
      if (c != '\n')
        return chunked_fail(d, 400);
      d->state = CK_TRAILER;
      break;
    case CK_END_LF:
      if (c != '\n')
        return chunked_fail(d, 400);
      d->state = CK_DONE;
      break;
    case CK_DONE:
    case CK_FAILED:
      break;
    }
    i++;
    /* Size lines and the trailer section are bounded. */
    if (++d->line > (d->state >= CK_TRAILER ? (uint32_t)HTTP_MAX_HEAD
                                            : (uint32_t)HTTP_MAX_CHUNK_LINE))
      return chunked_fail(d, d->state >= CK_TRAILER ? 431 : 400);
  }
  return (ssize_t)i;
}
