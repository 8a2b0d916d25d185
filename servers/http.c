/*
 * http.c - an HTTP/1.1 server on the shared server frame (srv.h), in the
 * modes green, kthread and process.
 *
 * Routes:
 *   GET|HEAD /          "hello\n", text/plain.
 *   GET|HEAD /bytes/N   N bytes of 'x', application/octet-stream, for
 *                       0 <= N <= 16 MiB (N in decimal digits).  N above
 *                       16 MiB gives 400; "/bytes/" followed by anything
 *                       but digits gives 404.
 * The query string is ignored.  Any other path gives 404; another method
 * on an existing path gives 405 (with Allow: GET, HEAD).  The parser's
 * errors (http_parse.h) give 400, 413, 417, 431, 501 and 505.  Every
 * response of status 400 or more carries "Connection: close", and the
 * connection ends after it.  Whenever the server ends a connection after a
 * response (an error, "Connection: close", HTTP/1.0, shutdown), it stops
 * sending, then reads and drops what the client still sends until the
 * client closes or for LINGER_NS at most (so that the client reads the
 * responses rather than a reset), and closes.
 *
 * Connections: keep-alive (HTTP/1.1 unless "Connection: close"; HTTP/1.0
 * only with "Connection: keep-alive") and pipelining: one read fills the
 * buffer, every complete request in it is answered into one output buffer,
 * in order, and one write sends the batch.  A request body (Content-Length
 * or chunked, up to HTTP_MAX_BODY bytes of data either way) is read and
 * dropped; "Expect: 100-continue" gets "100 Continue" when the body has
 * not arrived yet.  A chunked body that is malformed or too large is
 * answered 400, 413 or 431 (http_parse.h) and ends the connection.
 *
 * Timeouts: the head of each request must be complete by
 * srv_idle_deadline() taken when the connection became ready for it (its
 * start, or the end of the previous request), so neither an idle
 * connection nor one trickling a request byte by byte lasts longer than
 * --idle-ms.  Each later read (of a body) and each write must make
 * progress within --idle-ms.
 *
 * Memory: an idle connection holds no buffer.  When everything received
 * has been answered, the buffer (read and write halves, one allocation) is
 * freed, and the connection waits in a read of at most FIRST_READ bytes to
 * a small array on its stack; the buffer is allocated again once bytes
 * arrive.
 *
 * Once srv_stopping() is true, the next response carries
 * "Connection: close" and the connection ends.  -ECANCELED from any weft
 * call ends the connection at once.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "http_parse.h"
#include "srv.h"
#include "weft.h"

#define RBUF_SIZE (2 * HTTP_MAX_HEAD) /* a head always fits, with room */
#define WBUF_SIZE 16384
#define BUF_SIZE (RBUF_SIZE + WBUF_SIZE)
/* Room a response head (without body) may take at most. */
#define HEAD_ROOM 512
/* Bodies of /bytes/N up to this go through the output buffer; longer ones
 * are written straight from the fill pattern. */
#define INLINE_BODY 4096
#define BYTES_MAX ((uint64_t)16 << 20)
#define FILL_SIZE 65536
/* How long an ended connection reads and drops what its client sends. */
#define LINGER_NS ((int64_t)1000 * 1000 * 1000)
#define LINGER_MAX ((size_t)1 << 20)

/* 'x' bytes for /bytes/N, filled by setup. */
static char fill_bytes[FILL_SIZE];

/* ------------------------------------------------------------------------ */
/* The Date header                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Writes the current date (IMF-fixdate, 29 bytes) to dst.  Each kernel
 * thread keeps its own copy, formatted at most once a second.  The
 * thread-locals are read and written only inside this function, which
 * never blocks, so a green thread cannot move to another worker while it
 * uses them.
 */
#define DATE_LEN 29

static void put2(char *p, int v) {
  unsigned u = (unsigned)v % 100;
  p[0] = (char)('0' + u / 10);
  p[1] = (char)('0' + u % 10);
}

__attribute__((noinline)) static void put_date(char *dst) {
  static __thread time_t sec = -1;
  static __thread char text[DATE_LEN + 1];
  static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed",
                                  "Thu", "Fri", "Sat"};
  static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  if (ts.tv_sec != sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    /* "Sun, 06 Nov 1994 08:49:37 GMT" */
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000;
    memcpy(text, days[(unsigned)tm.tm_wday % 7], 3);
    memcpy(text + 3, ", ", 2);
    put2(text + 5, tm.tm_mday);
    text[7] = ' ';
    memcpy(text + 8, months[(unsigned)tm.tm_mon % 12], 3);
    text[11] = ' ';
    put2(text + 12, (int)(year / 100));
    put2(text + 14, (int)(year % 100));
    text[16] = ' ';
    put2(text + 17, tm.tm_hour);
    text[19] = ':';
    put2(text + 20, tm.tm_min);
    text[22] = ':';
    put2(text + 23, tm.tm_sec);
    memcpy(text + 25, " GMT", 4);
    sec = ts.tv_sec;
  }
  memcpy(dst, text, DATE_LEN);
}

/* ------------------------------------------------------------------------ */
/* Responses                                                                */
/* ------------------------------------------------------------------------ */

#define LIT(s) (s), (sizeof(s) - 1)

/* The hello response around its Date. */
static const char hello_a[] = "HTTP/1.1 200 OK\r\nServer: weft\r\nDate: ";
static const char hello_b[] =
    "\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n";
static const char hello_body[] = "hello\n";

static const char conn_keep[] = "Connection: keep-alive\r\n";
static const char conn_close[] = "Connection: close\r\n";
static const char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

static const char *reason(int status) {
  switch (status) {
  case 200:
    return "OK";
  case 400:
    return "Bad Request";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 413:
    return "Content Too Large";
  case 417:
    return "Expectation Failed";
  case 431:
    return "Request Header Fields Too Large";
  case 501:
    return "Not Implemented";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Error";
  }
}

static char *put(char *p, const char *s, size_t n) {
  memcpy(p, s, n);
  return p + n;
}

static char *put_str(char *p, const char *s) { return put(p, s, strlen(s)); }

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n)
    *p++ = tmp[--n];
  return p;
}

/* Which Connection header a response carries: none (HTTP/1.1 keeps the
 * connection by default), "keep-alive" (HTTP/1.0), or "close". */
enum conn_mode { KEEP_11, KEEP_10, CLOSE };

/* A response head; at most HEAD_ROOM bytes. */
static char *put_head(char *p, int status, const char *type, uint64_t length,
                      enum conn_mode cm, bool allow) {
  p = put(p, LIT("HTTP/1.1 "));
  p = put_u64(p, (uint64_t)status);
  *p++ = ' ';
  p = put_str(p, reason(status));
  p = put(p, LIT("\r\nServer: weft\r\nDate: "));
  put_date(p);
  p += DATE_LEN;
  p = put(p, LIT("\r\nContent-Type: "));
  p = put_str(p, type);
  p = put(p, LIT("\r\nContent-Length: "));
  p = put_u64(p, length);
  p = put(p, LIT("\r\n"));
  if (allow)
    p = put(p, LIT("Allow: GET, HEAD\r\n"));
  if (cm == KEEP_10)
    p = put(p, LIT(conn_keep));
  else if (cm == CLOSE)
    p = put(p, LIT(conn_close));
  return put(p, LIT("\r\n"));
}

/* ------------------------------------------------------------------------ */
/* A connection                                                             */
/* ------------------------------------------------------------------------ */

struct hconn {
  int fd;
  char *mem;         /* read buffer, then write buffer; NULL while idle */
  size_t rpos, rlen; /* unparsed input is mem[rpos, rlen) */
  size_t wlen;       /* output waiting in mem[RBUF_SIZE, +wlen) */
};

#define WBUF(c) ((c)->mem + RBUF_SIZE)

/* Sends the output buffer.  0, or -1 when the connection must end. */
static int flush(struct hconn *c) {
  if (c->wlen == 0)
    return 0;
  ssize_t n = weft_write(c->fd, WBUF(c), c->wlen, srv_idle_deadline());
  if (n < 0 || (size_t)n != c->wlen)
    return -1;
  c->wlen = 0;
  return 0;
}

/* Room for need more bytes of output.  0 or -1. */
static int reserve(struct hconn *c, size_t need) {
  if (c->wlen + need <= WBUF_SIZE)
    return 0;
  return flush(c);
}

/* Sends the output buffer, then n bytes of the fill pattern, at most
 * WRITE_IOV vectors (weft_writev copies up to 16 without allocating) per
 * write and deadline. */
#define WRITE_IOV 16
static int write_long_body(struct hconn *c, uint64_t n) {
  struct iovec iov[WRITE_IOV];
  int cnt = 0;
  size_t total = 0;
  if (c->wlen) {
    iov[cnt].iov_base = WBUF(c);
    iov[cnt++].iov_len = c->wlen;
    total += c->wlen;
  }
  while (n > 0) {
    for (; n > 0 && cnt < WRITE_IOV; cnt++) {
      size_t k = n < FILL_SIZE ? (size_t)n : FILL_SIZE;
      iov[cnt].iov_base = fill_bytes;
      iov[cnt].iov_len = k;
      total += k;
      n -= k;
    }
    ssize_t w = weft_writev(c->fd, iov, cnt, srv_idle_deadline());
    if (w < 0 || (size_t)w != total)
      return -1;
    c->wlen = 0;
    cnt = 0;
    total = 0;
  }
  return 0;
}

/* The resource a path names: 0 for "/", 1 for /bytes/N (with *n), -404 or
 * -400. */
static int route(const char *path, size_t len, uint64_t *n) {
  if (len == 0 || (len == 1 && path[0] == '/'))
    return 0;
  if (len > 7 && memcmp(path, "/bytes/", 7) == 0) {
    uint64_t v = 0;
    for (size_t i = 7; i < len; i++) {
      if (path[i] < '0' || path[i] > '9')
        return -404;
      if (v <= BYTES_MAX)
        v = v * 10 + (uint64_t)(path[i] - '0');
    }
    if (v > BYTES_MAX)
      return -400;
    *n = v;
    return 1;
  }
  return -404;
}

/* An error response, with body unless for HEAD. */
static int put_error(struct hconn *c, int status, bool head) {
  const char *text = reason(status);
  size_t tn = strlen(text);
  if (reserve(c, HEAD_ROOM + tn + 1) < 0)
    return -1;
  char *p = WBUF(c) + c->wlen;
  p = put_head(p, status, "text/plain", tn + 1, CLOSE, status == 405);
  if (!head) {
    p = put(p, text, tn);
    *p++ = '\n';
  }
  c->wlen = (size_t)(p - WBUF(c));
  return 0;
}

/*
 * Ends a connection (after an error, or a last response): sends what is
 * pending, stops sending, and reads what the client still sends until it
 * closes, for LINGER_NS at most, so that requests it sent meanwhile do not
 * turn our close into a reset that could destroy the responses before the
 * client reads them.
 */
static void linger(struct hconn *c) {
  if (flush(c) < 0) {
    c->wlen = 0;
    return;
  }
  shutdown(c->fd, SHUT_WR);
  int64_t until = weft_deadline(LINGER_NS);
  size_t dropped = 0;
  while (dropped < LINGER_MAX) {
    ssize_t n = weft_read(c->fd, c->mem, RBUF_SIZE, until);
    if (n <= 0)
      return;
    dropped += (size_t)n;
  }
}

/* Reads and drops n bytes of body that are not in the buffer yet; bytes
 * read past the body stay in the buffer.  0 or -1. */
static int skip_body(struct hconn *c, uint64_t n) {
  c->rpos = c->rlen = 0;
  while (n > 0) {
    ssize_t k = weft_read(c->fd, c->mem, RBUF_SIZE, srv_idle_deadline());
    if (k <= 0)
      return -1;
    if ((uint64_t)k <= n) {
      n -= (uint64_t)k;
    } else {
      c->rpos = (size_t)n;
      c->rlen = (size_t)k;
      n = 0;
    }
  }
  return 0;
}

/* Queues the interim "100 Continue" for a body that has not arrived.  0 or
 * -1. */
static int put_continue(struct hconn *c) {
  if (reserve(c, sizeof continue_100) < 0)
    return -1;
  memcpy(WBUF(c) + c->wlen, LIT(continue_100));
  c->wlen += sizeof continue_100 - 1;
  return 0;
}

/*
 * Reads and drops a chunked body: what is buffered, then what arrives.
 * Bytes after the body stay in the buffer.  "100 Continue" is sent first
 * if asked for and the body is not all here.  Returns 0, -1 to end the
 * connection at once (it failed or timed out), or -status for a body
 * that is malformed or too large (http_chunked_feed).
 */
static int skip_chunked(struct hconn *c, bool expect_continue) {
  http_chunked d;
  http_chunked_init(&d);
  for (;;) {
    while (c->rpos < c->rlen && !http_chunked_done(&d)) {
      const char *data;
      size_t n;
      ssize_t k = http_chunked_feed(&d, c->mem + c->rpos, c->rlen - c->rpos,
                                    &data, &n);
      if (k < 0)
        return (int)k;
      c->rpos += (size_t)k;
    }
    if (http_chunked_done(&d))
      return 0;
    if (expect_continue) {
      if (put_continue(c) < 0)
        return -1;
      expect_continue = false;
    }
    /* The decoder keeps no bytes: the buffer starts over. */
    if (flush(c) < 0)
      return -1;
    c->rpos = c->rlen = 0;
    ssize_t k = weft_read(c->fd, c->mem, RBUF_SIZE, srv_idle_deadline());
    if (k <= 0)
      return -1;
    c->rlen = (size_t)k;
  }
}

/*
 * Answers one complete request whose head ends at c->rpos.  Returns 1 to
 * go on with the connection, 0 to end it once the output is sent, -1 to
 * end it at once.
 */
static int answer(struct hconn *c, const http_request *req) {
  bool head = req->method == HTTP_HEAD;
  uint64_t n = 0;
  int res = route(req->path, req->path_len, &n);
  if (res >= 0 && req->method != HTTP_GET && !head)
    res = -405;
  if (res < 0)
    return put_error(c, -res, head) < 0 ? -1 : 0;

  /* The body, if any: what is buffered is skipped, the rest read. */
  uint64_t body = req->content_length;
  size_t have = c->rlen - c->rpos;
  if (req->chunked) {
    int r = skip_chunked(c, req->expect_continue);
    if (r == -1)
      return -1;
    if (r < 0)
      return put_error(c, -r, head) < 0 ? -1 : 0;
  } else if (body <= have) {
    c->rpos += (size_t)body;
  } else {
    if (req->expect_continue && put_continue(c) < 0)
      return -1;
    if (flush(c) < 0 || skip_body(c, body - have) < 0)
      return -1;
  }

  bool keep = req->keep_alive && !srv_stopping();
  enum conn_mode cm = !keep ? CLOSE : req->version == 10 ? KEEP_10 : KEEP_11;
  if (res == 0) {
    /* The hot path: the prebuilt hello response. */
    if (reserve(c, HEAD_ROOM) < 0)
      return -1;
    char *p = WBUF(c) + c->wlen;
    p = put(p, LIT(hello_a));
    put_date(p);
    p += DATE_LEN;
    p = put(p, LIT(hello_b));
    if (cm == KEEP_10)
      p = put(p, LIT(conn_keep));
    else if (cm == CLOSE)
      p = put(p, LIT(conn_close));
    p = put(p, LIT("\r\n"));
    if (!head)
      p = put(p, LIT(hello_body));
    c->wlen = (size_t)(p - WBUF(c));
  } else {
    bool inline_body = head || n <= INLINE_BODY;
    if (reserve(c, HEAD_ROOM + (inline_body && !head ? n : 0)) < 0)
      return -1;
    char *p = WBUF(c) + c->wlen;
    p = put_head(p, 200, "application/octet-stream", n, cm, false);
    if (!head && inline_body)
      p = put(p, fill_bytes, (size_t)n);
    c->wlen = (size_t)(p - WBUF(c));
    if (!inline_body && write_long_body(c, n) < 0)
      return -1;
  }
  return keep ? 1 : 0;
}

/*
 * Answers every complete request in the buffer.  Returns 1 to go on, 0 to
 * end the connection (what is pending is sent first), -1 to end it at once.
 * *deadline is the deadline for the head of the next request.
 */
static int answer_all(struct hconn *c, http_parser *p, int64_t *deadline) {
  for (;;) {
    http_request req;
    int r = http_parse(p, c->mem + c->rpos, c->rlen - c->rpos, &req);
    if (r == 0)
      return 1;
    if (r < 0)
      return put_error(c, -r, false) < 0 ? -1 : 0;
    c->rpos += (size_t)r;
    int a = answer(c, &req);
    if (a <= 0)
      return a;
    http_parser_init(p);
    *deadline = srv_idle_deadline();
  }
}

/*
 * The first read of a request, when the connection holds no buffer, goes
 * to this many bytes on the stack: little next to a green thread's stack,
 * enough for a typical GET (a longer request is read on into the buffer).
 * Waiting in weft_read rather than in weft_wait_fd saves system calls per
 * request: weft_wait_fd polls once before it parks and once after it
 * wakes, and the read follows; weft_read tries once, parks, and reads.
 */
#define FIRST_READ 256

/* Waits for the next request on a connection that holds no buffer, then
 * allocates one with what arrived.  Returns 0, or -1 to end the
 * connection. */
static int wait_request(struct hconn *c, int64_t deadline) {
  char first[FIRST_READ];
  if (!srv_idle(true))
    return -1; /* stopping: nothing of a request here to finish */
  ssize_t n = weft_read(c->fd, first, sizeof first, deadline);
  srv_idle(false);
  if (n <= 0)
    return -1; /* end of file, idle timeout, error or canceled */
  if (!(c->mem = malloc(BUF_SIZE)))
    return -1;
  memcpy(c->mem, first, (size_t)n);
  c->rpos = 0;
  c->rlen = (size_t)n;
  if (n == (ssize_t)sizeof first) {
    /* There may be more (a longer head, pipelined requests). */
    ssize_t m =
        weft_read(c->fd, c->mem + n, RBUF_SIZE - (size_t)n, WEFT_NOWAIT);
    if (m > 0)
      c->rlen += (size_t)m;
    else if (m == -ECANCELED)
      return -1;
  }
  return 0;
}

static void serve(int fd, uint64_t conn_id) {
  (void)conn_id;
  struct hconn c = {.fd = fd};
  http_parser p;
  http_parser_init(&p);
  int64_t deadline = srv_idle_deadline();

  for (;;) {
    if (c.rpos == c.rlen) {
      /* Everything received is answered (and sent): hold no buffer while
       * waiting for more. */
      free(c.mem);
      c.mem = NULL;
      if (wait_request(&c, deadline) < 0)
        break;
    } else {
      /* Keep the unparsed start of a request at the buffer's start, and
       * read the rest of it. */
      if (c.rpos > 0) {
        memmove(c.mem, c.mem + c.rpos, c.rlen - c.rpos);
        c.rlen -= c.rpos;
        c.rpos = 0;
      }
      ssize_t n = weft_read(fd, c.mem + c.rlen, RBUF_SIZE - c.rlen, deadline);
      if (n <= 0)
        break; /* end of file, idle timeout, error or canceled */
      c.rlen += (size_t)n;
    }
    int a = answer_all(&c, &p, &deadline);
    if (a == 0)
      linger(&c);
    if (a <= 0 || flush(&c) < 0)
      break;
  }
  free(c.mem);
}

static int setup(void) {
  memset(fill_bytes, 'x', sizeof fill_bytes);
  return 0;
}

int main(int argc, char **argv) {
  static const srv_app app = {
      .name = "http",
      .default_port = 8080,
      .setup = setup,
      .serve = serve,
  };
  return srv_main(argc, argv, &app);
}
