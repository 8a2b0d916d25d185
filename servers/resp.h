/*
 * resp.h - the Redis protocol (RESP2) for the kv demo: an incremental
 * request parser and helpers that append replies to an output buffer.
 *
 * The parser does no I/O.  It is handed the bytes received so far, starting
 * at the first byte of a command, and answers one of:
 *   RESP_OK    a whole command of *used bytes: p->argc arguments, p->argv
 *              slices pointing into that buffer (valid until the next call
 *              and as long as the buffer is not changed).  argc may be 0 (a
 *              blank inline line, "*0\r\n" or "*-1\r\n"): nothing to run.
 *   RESP_AGAIN the command is not complete: call again with the same bytes
 *              (the buffer may have moved) followed by more.  p->need is
 *              the buffer length needed before the next step can be taken,
 *              so the caller can grow its buffer once for a big bulk.
 *   RESP_ERR   a protocol error: p->error is the reply text ("ERR Protocol
 *              error: ..."), to be sent as an error before the connection
 *              is closed.  Errors are sticky until resp_parser_reset().
 * Work done on an incomplete command is kept, so a command that arrives a
 * byte at a time is parsed in linear time.
 *
 * Two request forms are accepted, as redis does:
 *   multibulk  *<count>\r\n then <count> times $<len>\r\n<len bytes>\r\n
 *   inline     a line of arguments separated by spaces or tabs, ended by
 *              \n or \r\n (no quoting: "a b" is two arguments)
 *
 * Limits (redis allows 512 MiB bulks; this demo keeps less in memory):
 *   RESP_MAX_ARGS     arguments of a multibulk command (1048576)
 *   RESP_MAX_BULK     bytes of one argument (64 MiB)
 *   RESP_MAX_COMMAND  bytes of one multibulk command, framing included
 *                     (256 MiB)
 *   RESP_MAX_INLINE   bytes of an inline line (64 KiB)
 *   RESP_MAX_NUMBER   bytes of a count or length line after its '*' or '$'
 *                     (32)
 * Counts and lengths are plain decimals: no sign (except the "*-1" null
 * array), no leading zeros, no spaces.  A count of 0 or -1 is an empty
 * command; a count below -1, a negative length, or one over its limit is an
 * error, as is a bulk not followed by \r\n.
 */
#ifndef DEMOS_RESP_H
#define DEMOS_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RESP_MAX_ARGS (1024 * 1024)
#define RESP_MAX_BULK ((size_t)64 << 20)
#define RESP_MAX_COMMAND ((size_t)256 << 20)
#define RESP_MAX_INLINE ((size_t)64 << 10)
#define RESP_MAX_NUMBER 32

/* Arguments kept in the parser itself; more are allocated as they come. */
#define RESP_SMALL_ARGS 8

enum { RESP_ERR = -1, RESP_AGAIN = 0, RESP_OK = 1 };

typedef struct resp_arg {
  const char *p;
  size_t len;
} resp_arg;

typedef struct resp_parser {
  /* Results. */
  size_t argc;
  resp_arg *argv;
  const char *error; /* set with RESP_ERR */
  size_t need;       /* set with RESP_AGAIN */
  /* Progress on the current command (private). */
  int state;
  size_t pos;    /* bytes of the command parsed (or scanned, inline) */
  int64_t count; /* declared arguments of a multibulk command */
  int64_t bulk;  /* length of the argument being read; -1: its header */
  size_t cap;    /* entries of argv */
  resp_arg small[RESP_SMALL_ARGS];
  char errbuf[64];
} resp_parser;

void resp_parser_init(resp_parser *p);
/* Forgets the command in progress and any error; frees the argument array
 * if it was allocated (so an idle connection holds no memory). */
void resp_parser_reset(resp_parser *p);
/* Frees what the parser allocated; it may be initialised again. */
void resp_parser_free(resp_parser *p);
/* True while part of a command has been parsed but not all of it. */
bool resp_parser_busy(const resp_parser *p);

int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *used);

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

/* A growable output buffer.  All-zero is empty.  It may start in storage
 * of the caller's (resp_buf_use), e.g. on the stack, and moves to the heap
 * only when that is full.  When memory runs out, failed is set and later
 * appends do nothing: the caller should close the connection. */
typedef struct resp_buf {
  char *data;
  size_t len;
  size_t cap;
  bool failed;
  bool owned; /* data is from malloc */
} resp_buf;

/* Makes room for n more bytes; false (and failed set) when out of memory. */
bool resp_buf_grow(resp_buf *b, size_t n);
/* Frees what the buffer allocated and leaves it empty (all-zero). */
void resp_buf_free(resp_buf *b);
/* Frees what the buffer allocated and makes it empty, writing into the
 * caller's storage of cap bytes first. */
void resp_buf_use(resp_buf *b, char *storage, size_t cap);

static inline bool resp_buf_room(resp_buf *b, size_t n) {
  return b->cap - b->len >= n || resp_buf_grow(b, n);
}

/* Raw bytes, e.g. a constant reply: resp_put_lit(b, "+OK\r\n"). */
static inline void resp_put(resp_buf *b, const void *s, size_t n) {
  if (resp_buf_room(b, n)) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
  }
}
#define resp_put_lit(b, lit) resp_put((b), (lit), sizeof(lit) - 1)

/* +s\r\n; s must hold no \r or \n. */
void resp_put_simple(resp_buf *b, const char *s, size_t n);
/* -msg\r\n; msg starts with the error code ("ERR ...").  \r and \n in msg
 * become spaces. */
void resp_put_error(resp_buf *b, const char *msg, size_t n);
void resp_put_errorz(resp_buf *b, const char *msg);
/* :v\r\n */
void resp_put_int(resp_buf *b, int64_t v);
/* $n\r\n<bytes>\r\n */
void resp_put_bulk(resp_buf *b, const void *s, size_t n);
/* $-1\r\n */
void resp_put_null(resp_buf *b);
/* *n\r\n, to be followed by n replies */
void resp_put_array(resp_buf *b, size_t n);

/* Writes v in decimal to out (at least 21 bytes); returns the length. */
size_t resp_fmt_int(char *out, int64_t v);
/* Parses a strict decimal int64 (optional '-', no leading zeros, no '+',
 * no spaces), as redis reads integers.  Returns false if s is not one or is
 * out of range. */
bool resp_parse_int(const char *s, size_t n, int64_t *v);

#endif /* DEMOS_RESP_H */
