/*
 * http_parse_fuzz.c - fuzz target for the incremental HTTP/1.1 request-head
 * parser (servers/http_parse.c).
 *
 * Each input is one request head (or garbage).  It is parsed:
 *  - whole, in one call;
 *  - in pieces, cut at points derived from the input itself;
 *  - line by line (cut after each LF);
 *  - byte by byte, for inputs of up to BYTEWISE_MAX bytes;
 *  - after a longer prefix of itself (the parser must start over when a
 *    call brings fewer bytes than the last).
 * Every call gets a fresh heap copy of exactly the bytes it is given, so
 * AddressSanitizer catches a read past them, and the buffer moves between
 * calls (which the parser allows).  Every way must give the same outcome,
 * and every pointer and length in the result must lie inside the head.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "http_parse.h"

#define T "http_parse"
#define BYTEWISE_MAX 1024

/* What a parse gave, with pointers turned into offsets. */
struct outcome {
  int r;
  int method, version;
  size_t target_off, target_len, path_off, path_len;
  bool has_host;
  size_t host_off, host_len;
  uint64_t content_length;
  size_t head_len;
  bool has_content_length, keep_alive, expect_continue, chunked;
};

static bool inside(const char *buf, size_t len, const char *p, size_t n) {
  return p >= buf && (size_t)(p - buf) <= len && n <= len - (size_t)(p - buf);
}

/* Checks a result of http_parse(p, buf, len, req) and records it. */
static void check_result(int r, const char *buf, size_t len,
                         const http_request *req, struct outcome *o) {
  memset(o, 0, sizeof *o);
  o->r = r;
  if (r == 0) {
    if (len >= HTTP_MAX_HEAD)
      FUZZ_FAIL(T, "needs more bytes with %zu already (limit %d)", len,
                HTTP_MAX_HEAD);
    return;
  }
  if (r < 0) {
    switch (-r) {
    case 400: case 413: case 417: case 431: case 501: case 505:
      return;
    default:
      FUZZ_FAIL(T, "unexpected status %d", -r);
    }
  }
  size_t n = (size_t)r;
  if (n > len || n > HTTP_MAX_HEAD)
    FUZZ_FAIL(T, "head of %zu bytes from a buffer of %zu", n, len);
  if (req->head_len != n)
    FUZZ_FAIL(T, "head_len %zu, returned %zu", req->head_len, n);
  if (n < 4 || memcmp(buf + n - 4, "\r\n\r\n", 4) != 0)
    FUZZ_FAIL(T, "head of %zu bytes does not end with an empty line", n);
  if (http_method_name(req->method)[0] == '\0')
    FUZZ_FAIL(T, "method %d", req->method);
  if (req->version != 10 && req->version != 11)
    FUZZ_FAIL(T, "version %d", req->version);
  if (!inside(buf, n, req->target, req->target_len) || req->target_len == 0)
    FUZZ_FAIL(T, "target (%p, %zu) outside the head (%p, %zu)",
              (const void *)req->target, req->target_len, (const void *)buf,
              n);
  for (size_t i = 0; i < req->target_len; i++)
    if ((unsigned char)req->target[i] <= ' ' ||
        (unsigned char)req->target[i] >= 0x7f)
      FUZZ_FAIL(T, "target byte 0x%02x", (unsigned char)req->target[i]);
  if (!inside(req->target, req->target_len, req->path, req->path_len))
    FUZZ_FAIL(T, "path (%p, %zu) outside the target (%p, %zu)",
              (const void *)req->path, req->path_len,
              (const void *)req->target, req->target_len);
  if (req->target[0] == '/' && (req->path_len == 0 || req->path[0] != '/'))
    FUZZ_FAIL(T, "origin-form target without a path");
  if (req->host) {
    if (!inside(buf, n, req->host, req->host_len))
      FUZZ_FAIL(T, "host (%p, %zu) outside the head (%p, %zu)",
                (const void *)req->host, req->host_len, (const void *)buf, n);
  } else if (req->version == 11 || req->host_len != 0) {
    FUZZ_FAIL(T, "HTTP/1.1 request without Host accepted");
  }
  if (req->content_length > HTTP_MAX_BODY)
    FUZZ_FAIL(T, "content length %llu above the limit",
              (unsigned long long)req->content_length);
  if (!req->has_content_length && req->content_length != 0)
    FUZZ_FAIL(T, "content length without Content-Length");
  if (req->expect_continue && req->version != 11)
    FUZZ_FAIL(T, "100-continue in an HTTP/1.0 request");

  o->method = req->method;
  o->version = req->version;
  o->target_off = (size_t)(req->target - buf);
  o->target_len = req->target_len;
  o->path_off = (size_t)(req->path - buf);
  o->path_len = req->path_len;
  o->has_host = req->host != NULL;
  o->host_off = req->host ? (size_t)(req->host - buf) : 0;
  o->host_len = req->host_len;
  o->content_length = req->content_length;
  o->head_len = req->head_len;
  o->has_content_length = req->has_content_length;
  o->keep_alive = req->keep_alive;
  o->expect_continue = req->expect_continue;
  o->chunked = req->chunked;
  if (req->chunked && (req->has_content_length || req->version != 11))
    FUZZ_FAIL(T, "chunked with Content-Length or in HTTP/1.0");
}

/* What decoding a chunked body gave: bytes used (0: not ended) or
 * -status, and the data's length and hash. */
struct body {
  ssize_t r;
  size_t n;
  uint64_t h;
};

/* Decodes body[0, size) fed in pieces of step bytes (each a fresh heap
 * copy: a read past it is caught), checking every call's result. */
static void dechunk(const uint8_t *body, size_t size, size_t step,
                    struct body *o) {
  http_chunked d;
  http_chunked_init(&d);
  o->r = 0;
  o->n = 0;
  o->h = 0xcbf29ce484222325ull;
  size_t at = 0;
  while (at < size && !http_chunked_done(&d)) {
    size_t piece = size - at < step ? size - at : step;
    char *copy = malloc(piece);
    if (!copy)
      abort();
    memcpy(copy, body + at, piece);
    size_t off = 0;
    while (off < piece && !http_chunked_done(&d)) {
      const char *data;
      size_t dn;
      ssize_t k = http_chunked_feed(&d, copy + off, piece - off, &data, &dn);
      if (k < 0) {
        if (k != -400 && k != -413 && k != -431)
          FUZZ_FAIL(T, "chunked: unexpected status %zd", -k);
        free(copy);
        o->r = k;
        return;
      }
      if ((size_t)k > piece - off)
        FUZZ_FAIL(T, "chunked: used %zd of %zu", k, piece - off);
      if (k == 0 && !http_chunked_done(&d))
        FUZZ_FAIL(T, "chunked: no progress");
      if (dn && (data < copy + off || data + dn > copy + off + (size_t)k))
        FUZZ_FAIL(T, "chunked: data outside what was used");
      for (size_t i = 0; i < dn; i++)
        o->h = (o->h ^ (uint8_t)data[i]) * 0x100000001b3ull;
      o->n += dn;
      if (o->n > HTTP_MAX_BODY)
        FUZZ_FAIL(T, "chunked: %zu bytes of data", o->n);
      off += (size_t)k;
    }
    at += off;
    free(copy);
  }
  o->r = http_chunked_done(&d) ? (ssize_t)at : 0;
}

/* A chunked body gives the same result in any pieces. */
static void check_chunked(const uint8_t *body, size_t size, uint64_t h) {
  struct body whole, other;
  dechunk(body, size, size ? size : 1, &whole);
  size_t steps[] = {1, 2 + (size_t)(h % 13), 1 + (size_t)((h >> 8) % 200)};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    if (steps[i] == 1 && size > BYTEWISE_MAX)
      continue;
    dechunk(body, size, steps[i], &other);
    if (whole.r != other.r || whole.n != other.n || whole.h != other.h)
      FUZZ_FAIL(T, "chunked: whole gives %zd (%zu bytes), pieces of %zu "
                   "give %zd (%zu bytes)",
                whole.r, whole.n, steps[i], other.r, other.n);
  }
}

static void same(const struct outcome *a, const struct outcome *b,
                 const char *how) {
  if (a->r != b->r)
    FUZZ_FAIL(T, "whole input gives %d, %s gives %d", a->r, how, b->r);
  if (memcmp(a, b, sizeof *a) != 0)
    FUZZ_FAIL(T, "whole input and %s give %d but different requests "
                 "(target %zu+%zu vs %zu+%zu, path %zu+%zu vs %zu+%zu, "
                 "host %zu+%zu vs %zu+%zu, keep-alive %d vs %d)",
              how, a->r, a->target_off, a->target_len, b->target_off,
              b->target_len, a->path_off, a->path_len, b->path_off,
              b->path_len, a->host_off, a->host_len, b->host_off, b->host_len,
              a->keep_alive, b->keep_alive);
}

/* One call on a fresh heap copy of data[0, len). */
static int parse_copy(http_parser *p, const uint8_t *data, size_t len,
                      struct outcome *o) {
  char *buf = malloc(len ? len : 1);
  if (!buf)
    abort();
  if (len)
    memcpy(buf, data, len);
  else
    buf[0] = '\0';
  http_request req;
  memset(&req, 0xa5, sizeof req);
  int r = http_parse(p, buf, len, &req);
  check_result(r, buf, len, &req, o);
  free(buf);
  return r;
}

/* Feeds prefixes of lengths cuts[0] <= cuts[1] <= ... then the whole
 * input, stopping at the first non-zero result. */
static void feed(const uint8_t *data, size_t size, const size_t *cuts,
                 size_t ncuts, struct outcome *o) {
  http_parser p;
  http_parser_init(&p);
  for (size_t i = 0; i <= ncuts; i++) {
    size_t len = i < ncuts ? cuts[i] : size;
    if (parse_copy(&p, data, len, o) != 0)
      return;
  }
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t hash(const uint8_t *data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; i++)
    h = (h ^ data[i]) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

void fuzz_http_parse_check(const uint8_t *data, size_t size) {
  struct outcome whole, other;
  http_parser p;

  /* Whole, then the same bytes again: a result is sticky. */
  http_parser_init(&p);
  int r = parse_copy(&p, data, size, &whole);
  parse_copy(&p, data, size, &other);
  same(&whole, &other, "a second call with the same bytes");
  if (r > 0 && size > (size_t)r) {
    /* More bytes after a complete head: still the same head. */
    parse_copy(&p, data, size, &other);
    same(&whole, &other, "a call after the head was complete");
  }

  /* Cut at up to four points derived from the input. */
  size_t cuts[4];
  uint64_t h = hash(data, size);
  if (r > 0 && whole.chunked)
    check_chunked(data + r, size - (size_t)r, h);
  size_t ncuts = 1 + (size_t)(h & 3);
  for (size_t i = 0; i < ncuts; i++)
    cuts[i] = (size_t)((h >> (8 + 13 * i)) % (size + 1));
  qsort(cuts, ncuts, sizeof cuts[0], cmp_size);
  feed(data, size, cuts, ncuts, &other);
  same(&whole, &other, "split feeding");

  /* Line by line. */
  size_t nlines = 0;
  for (size_t i = 0; i < size; i++)
    nlines += data[i] == '\n';
  if (nlines) {
    size_t *lines = malloc(nlines * sizeof *lines);
    if (!lines)
      abort();
    size_t k = 0;
    for (size_t i = 0; i < size; i++)
      if (data[i] == '\n')
        lines[k++] = i + 1;
    feed(data, size, lines, nlines, &other);
    free(lines);
    same(&whole, &other, "line-by-line feeding");
  }

  /* Byte by byte. */
  if (size <= BYTEWISE_MAX) {
    http_parser_init(&p);
    other.r = 0;
    for (size_t len = 0; len <= size; len++)
      if (parse_copy(&p, data, len, &other) != 0)
        break;
    same(&whole, &other, "byte-by-byte feeding");
  }

  /* A call with fewer bytes than the last one: the parser starts over, so
   * the result is that of a fresh parser on the shorter prefix. */
  if (size >= 2) {
    size_t shorter = cuts[0] < size ? cuts[0] : size / 2;
    struct outcome fresh;
    http_parser_init(&p);
    if (parse_copy(&p, data, size, &other) == 0) {
      parse_copy(&p, data, shorter, &other);
      http_parser_init(&p);
      parse_copy(&p, data, shorter, &fresh);
      same(&fresh, &other, "a shorter call after a longer one");
    }
  }
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_http_parse_check(data, size);
  return 0;
}
#endif
