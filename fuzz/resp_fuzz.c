/*
 * resp_fuzz.c - fuzz target for the RESP2 request parser and the reply
 * helpers (servers/resp.c).
 *
 * The input is a stream of pipelined commands, parsed one command after
 * another:
 *  - whole: each call gets every byte that is left;
 *  - in chunks whose sizes are derived from the input, and byte by byte
 *    for inputs of up to BYTEWISE_MAX bytes: each call gets a fresh heap
 *    copy of exactly the bytes received so far for the current command, so
 *    AddressSanitizer catches a read past them and the buffer moves between
 *    calls (which the parser allows).
 * All ways must find the same commands (same arguments at the same
 * offsets) and end the same way (same error, or same bytes needed).  Every
 * argument must lie inside the bytes its command used, every command must
 * use at least one byte, and a command that needs more bytes must ask for
 * more than it has (progress).  The arguments of each command are then fed
 * to the reply helpers: a multibulk built from them must parse back to the
 * same arguments, and integers must print back to their own text.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <string.h>

#include "resp.h"

#define T "resp"
#define BYTEWISE_MAX 512

struct arg {
  size_t off, len; /* in the stream */
};

struct cmd {
  size_t start, used, argc, first; /* first: index in run.args */
};

struct run {
  struct cmd *cmds;
  size_t ncmds, cmd_cap;
  struct arg *args;
  size_t nargs, arg_cap;
  int end;       /* RESP_AGAIN or RESP_ERR */
  size_t at;     /* stream offset of the unfinished or refused command */
  size_t need;   /* with RESP_AGAIN: stream bytes needed */
  char err[128]; /* with RESP_ERR */
};

static void *grow(void *p, size_t *cap, size_t n, size_t size) {
  if (n < *cap)
    return p;
  size_t ncap = *cap ? *cap * 2 : 16;
  void *q = realloc(p, ncap * size);
  if (!q)
    abort();
  *cap = ncap;
  return q;
}

static void run_free(struct run *r) {
  free(r->cmds);
  free(r->args);
}

/* ------------------------------------------------------------------------ */
/* Reply helpers                                                            */
/* ------------------------------------------------------------------------ */

static bool has_crlf(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (s[i] == '\r' || s[i] == '\n')
      return true;
  return false;
}

/* "0" or -?[1-9][0-9]{0,17}: certainly an int64 resp_parse_int must take. */
static bool plain_decimal(const char *s, size_t n) {
  size_t i = n > 0 && s[0] == '-' ? 1 : 0;
  if (n == 1 && s[0] == '0')
    return true;
  if (i == n || n - i > 18 || s[i] == '0')
    return false;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static void expect_bytes(const resp_buf *b, const char *want, size_t n,
                         const char *what) {
  if (b->failed)
    FUZZ_FAIL(T, "%s: buffer failed", what);
  if (b->len != n || memcmp(b->data, want, n) != 0)
    FUZZ_FAIL(T, "%s: wrote %zu bytes \"%.*s\", expected %zu \"%.*s\"", what,
              b->len, (int)(b->len < 64 ? b->len : 64), b->data, n,
              (int)(n < 64 ? n : 64), want);
}

static void replies(const resp_arg *argv, size_t argc) {
  char small[48];
  resp_buf b = {0};

  /* A multibulk of the arguments parses back to them. */
  resp_buf_use(&b, small, sizeof small);
  resp_put_array(&b, argc);
  for (size_t i = 0; i < argc; i++)
    resp_put_bulk(&b, argv[i].p, argv[i].len);
  if (b.failed)
    FUZZ_FAIL(T, "multibulk reply: buffer failed");
  char *copy = malloc(b.len);
  if (!copy)
    abort();
  memcpy(copy, b.data, b.len);
  resp_parser q;
  resp_parser_init(&q);
  size_t used;
  int r = resp_parse(&q, copy, b.len, &used);
  if (r != RESP_OK || used != b.len || q.argc != argc)
    FUZZ_FAIL(T, "multibulk of %zu arguments (%zu bytes) parses as %d, "
                 "%zu arguments, %zu bytes used",
              argc, b.len, r, q.argc, used);
  for (size_t i = 0; i < argc; i++)
    if (q.argv[i].len != argv[i].len ||
        memcmp(q.argv[i].p, argv[i].p, argv[i].len) != 0)
      FUZZ_FAIL(T, "argument %zu changed in a round trip", i);
  resp_parser_free(&q);
  free(copy);

  /* The other helpers, against what they are documented to write. */
  for (size_t i = 0; i < argc; i++) {
    const char *s = argv[i].p;
    size_t n = argv[i].len;
    char *want = malloc(n + 32);
    if (!want)
      abort();

    if (!has_crlf(s, n)) {
      resp_buf_use(&b, small, sizeof small);
      resp_put_simple(&b, s, n);
      want[0] = '+';
      memcpy(want + 1, s, n);
      memcpy(want + 1 + n, "\r\n", 2);
      expect_bytes(&b, want, n + 3, "resp_put_simple");
    }

    resp_buf_use(&b, small, sizeof small);
    resp_put_error(&b, s, n);
    want[0] = '-';
    for (size_t k = 0; k < n; k++)
      want[1 + k] = s[k] == '\r' || s[k] == '\n' ? ' ' : s[k];
    memcpy(want + 1 + n, "\r\n", 2);
    expect_bytes(&b, want, n + 3, "resp_put_error");

    int64_t v;
    if (resp_parse_int(s, n, &v)) {
      char num[24];
      size_t k = resp_fmt_int(num, v);
      if (k != n || memcmp(num, s, n) != 0)
        FUZZ_FAIL(T, "\"%.*s\" parses as %lld, which prints as \"%.*s\"",
                  (int)n, s, (long long)v, (int)k, num);
      resp_buf_use(&b, small, sizeof small);
      resp_put_int(&b, v);
      want[0] = ':';
      memcpy(want + 1, s, n);
      memcpy(want + 1 + n, "\r\n", 2);
      expect_bytes(&b, want, n + 3, "resp_put_int");
    } else if (plain_decimal(s, n)) {
      FUZZ_FAIL(T, "resp_parse_int refuses \"%.*s\"", (int)n, s);
    }
    free(want);
  }

  resp_buf_use(&b, small, sizeof small);
  resp_put_null(&b);
  expect_bytes(&b, "$-1\r\n", 5, "resp_put_null");
  resp_buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* Checks and records the result of one call on buf[0, len), which holds
 * the stream's bytes from offset start.  Returns r. */
static int record(struct run *run, resp_parser *p, int r, const char *buf,
                  size_t len, size_t start, size_t used) {
  if (r == RESP_OK) {
    if (used == 0 || used > len)
      FUZZ_FAIL(T, "command at %zu used %zu bytes of %zu", start, used, len);
    if (p->argc > RESP_MAX_ARGS)
      FUZZ_FAIL(T, "%zu arguments", p->argc);
    run->cmds = grow(run->cmds, &run->cmd_cap, run->ncmds, sizeof *run->cmds);
    run->cmds[run->ncmds++] =
        (struct cmd){.start = start, .used = used, .argc = p->argc,
                     .first = run->nargs};
    for (size_t i = 0; i < p->argc; i++) {
      const char *a = p->argv[i].p;
      size_t n = p->argv[i].len;
      if (a < buf || (size_t)(a - buf) > used || n > used - (size_t)(a - buf))
        FUZZ_FAIL(T, "argument %zu (%p, %zu) of the command at %zu is "
                     "outside its %zu bytes at %p",
                  i, (const void *)a, n, start, used, (const void *)buf);
      if (buf[0] == '*') {
        if (a + n + 2 > buf + used || a[n] != '\r' || a[n + 1] != '\n')
          FUZZ_FAIL(T, "bulk argument %zu not followed by CRLF", i);
      } else {
        for (size_t k = 0; k < n; k++)
          if (a[k] == ' ' || a[k] == '\t' || a[k] == '\r' || a[k] == '\n' ||
              a[k] == '\v' || a[k] == '\f')
            FUZZ_FAIL(T, "inline argument %zu holds a separator", i);
        if (n == 0)
          FUZZ_FAIL(T, "empty inline argument %zu", i);
      }
      run->args = grow(run->args, &run->arg_cap, run->nargs, sizeof *run->args);
      run->args[run->nargs++] =
          (struct arg){.off = start + (size_t)(a - buf), .len = n};
    }
    if (p->argc == 0 && used > 0 && buf[0] == '*' && used < 4)
      FUZZ_FAIL(T, "empty multibulk of %zu bytes", used);
    replies(p->argv, p->argc);
    if (resp_parser_busy(p))
      FUZZ_FAIL(T, "parser busy after a whole command");
  } else if (r == RESP_AGAIN) {
    if (p->need <= len)
      FUZZ_FAIL(T, "needs %zu bytes with %zu at hand: no progress", p->need,
                len);
    if (p->need > RESP_MAX_COMMAND + RESP_MAX_NUMBER + 16)
      FUZZ_FAIL(T, "needs %zu bytes, more than a command may have",
                p->need);
    run->end = RESP_AGAIN;
    run->at = start;
    run->need = start + p->need;
  } else if (r == RESP_ERR) {
    if (!p->error || strncmp(p->error, "ERR Protocol error: ", 20) != 0)
      FUZZ_FAIL(T, "error \"%s\"", p->error ? p->error : "(null)");
    run->end = RESP_ERR;
    run->at = start;
    snprintf(run->err, sizeof run->err, "%s", p->error);
  } else {
    FUZZ_FAIL(T, "resp_parse returned %d", r);
  }
  return r;
}

/* Every call gets all the bytes that are left. */
static void parse_whole(const uint8_t *data, size_t size, struct run *run) {
  resp_parser p;
  resp_parser_init(&p);
  size_t off = 0;
  for (;;) {
    size_t used = 0;
    const char *buf = (const char *)data + off;
    int r = resp_parse(&p, buf, size - off, &used);
    record(run, &p, r, buf, size - off, off, used);
    if (r != RESP_OK) {
      /* The same call again: the same answer (errors are sticky, work on
       * an incomplete command is kept). */
      size_t need = p.need;
      int r2 = resp_parse(&p, buf, size - off, &used);
      if (r2 != r || (r == RESP_AGAIN && p.need != need))
        FUZZ_FAIL(T, "a second call gives %d (need %zu), the first %d "
                     "(need %zu)",
                  r2, p.need, r, need);
      break;
    }
    off += used;
  }
  resp_parser_free(&p);
}

/* The stream arrives in chunks of the sizes next_chunk() gives. */
struct chunker {
  uint64_t state;
  bool bytewise;
};

static size_t next_chunk(struct chunker *c) {
  if (c->bytewise)
    return 1;
  c->state ^= c->state << 13;
  c->state ^= c->state >> 7;
  c->state ^= c->state << 17;
  return 1 + (size_t)(c->state % 48);
}

static void parse_chunks(const uint8_t *data, size_t size, struct chunker *c,
                         struct run *run) {
  resp_parser p;
  resp_parser_init(&p);
  size_t start = 0, have = 0;
  for (;;) {
    size_t used = 0, len = have - start;
    char *buf = malloc(len ? len : 1);
    if (!buf)
      abort();
    if (len)
      memcpy(buf, data + start, len);
    else
      buf[0] = '\0';
    int r = resp_parse(&p, buf, len, &used);
    record(run, &p, r, buf, len, start, used);
    free(buf);
    if (r == RESP_OK) {
      start += used;
      continue;
    }
    if (r == RESP_ERR || have == size)
      break;
    size_t n = next_chunk(c);
    have = n < size - have ? have + n : size;
  }
  resp_parser_free(&p);
}

static void same(const struct run *a, const struct run *b, const char *how) {
  size_t n = a->ncmds < b->ncmds ? a->ncmds : b->ncmds;
  for (size_t i = 0; i < n; i++) {
    const struct cmd *x = &a->cmds[i], *y = &b->cmds[i];
    if (x->start != y->start || x->used != y->used || x->argc != y->argc)
      FUZZ_FAIL(T, "command %zu: whole input finds %zu arguments in %zu "
                   "bytes at %zu, %s %zu in %zu at %zu",
                i, x->argc, x->used, x->start, how, y->argc, y->used,
                y->start);
    for (size_t k = 0; k < x->argc; k++) {
      const struct arg *u = &a->args[x->first + k], *v = &b->args[y->first + k];
      if (u->off != v->off || u->len != v->len)
        FUZZ_FAIL(T, "command %zu argument %zu: whole input %zu+%zu, %s "
                     "%zu+%zu",
                  i, k, u->off, u->len, how, v->off, v->len);
    }
  }
  if (a->ncmds != b->ncmds)
    FUZZ_FAIL(T, "whole input finds %zu commands, %s %zu", a->ncmds, how,
              b->ncmds);
  if (a->end != b->end || a->at != b->at)
    FUZZ_FAIL(T, "whole input ends with %d at %zu, %s with %d at %zu",
              a->end, a->at, how, b->end, b->at);
  if (a->end == RESP_ERR && strcmp(a->err, b->err) != 0)
    FUZZ_FAIL(T, "whole input fails with \"%s\", %s with \"%s\"", a->err,
              how, b->err);
  if (a->end == RESP_AGAIN && a->need != b->need)
    FUZZ_FAIL(T, "whole input needs %zu bytes, %s %zu", a->need, how,
              b->need);
}

void fuzz_resp_check(const uint8_t *data, size_t size) {
  struct run whole = {0}, other = {0};
  parse_whole(data, size, &whole);

  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < size; i++)
    h = (h ^ data[i]) * 0x100000001b3ull;
  struct chunker c = {.state = h | 1, .bytewise = false};
  parse_chunks(data, size, &c, &other);
  same(&whole, &other, "chunked feeding");
  run_free(&other);

  if (size <= BYTEWISE_MAX) {
    memset(&other, 0, sizeof other);
    c.bytewise = true;
    parse_chunks(data, size, &c, &other);
    same(&whole, &other, "byte-by-byte feeding");
    run_free(&other);
  }
  run_free(&whole);
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_resp_check(data, size);
  return 0;
}
#endif
