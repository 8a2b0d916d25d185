/*
 * test_http.c - the HTTP demo's server, servers/http, run as a child process
 * and spoken to over TCP, in each mode.  Its parser is tested as a unit by
 * test_http_parse.c.
 *
 * Server tests run "servers/http --port 0 --mode MODE --quiet" from the build
 * directory (the tests' working directory), read "listening on HOST:PORT"
 * from its standard output, and always kill and reap it (also when an
 * assertion fails: the fixture's fini does it, and the child gets SIGKILL
 * if the test process dies).
 */
#include "srv_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>

#include "http_parse.h"

/* ------------------------------------------------------------------------ */
/* Server helpers                                                           */
/* ------------------------------------------------------------------------ */

#define TMO .timeout = 20

/* Starts servers/http with the given mode and extra arguments (NULL-ended). */
static void start_server(const char *mode, ...) {
  const char *argv[32];
  int argc = 0;
  argv[argc++] = "servers/http";
  argv[argc++] = "--port";
  argv[argc++] = "0";
  argv[argc++] = "--mode";
  argv[argc++] = mode;
  argv[argc++] = "--quiet";
  va_list ap;
  va_start(ap, mode);
  const char *a;
  while ((a = va_arg(ap, const char *)) != NULL && argc < 30)
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  srvh_start(argv, 0);
}

/* Stops the server with SIGTERM and returns its wait status (or -1 if it
 * had to be killed). */
static int stop_server(void) { return srvh_stop(8000); }

static void fini_server(void) { stop_server(); }

static int connect_server(void) { return srvh_connect(); }

static void send_all(int fd, const char *s, size_t n) {
  srvh_send_all(fd, s, n);
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

/* A connection's received bytes not yet consumed. */
struct conn {
  int fd;
  char *buf;
  size_t len, cap;
};

static void conn_open(struct conn *c) {
  c->fd = connect_server();
  c->cap = 1 << 16;
  c->len = 0;
  c->buf = malloc(c->cap);
  cr_assert(c->buf);
}

static void conn_close(struct conn *c) {
  close(c->fd);
  free(c->buf);
}

/* Reads more; returns the bytes read (0 at end of file, -1 on error). */
static ssize_t conn_fill(struct conn *c) {
  if (c->len == c->cap) {
    c->cap *= 2;
    c->buf = realloc(c->buf, c->cap);
    cr_assert(c->buf);
  }
  ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
  if (k > 0)
    c->len += (size_t)k;
  return k;
}

struct resp {
  int status;
  char head[4096];
  size_t body_len;
  char *body;
};

/* The value of header name in r->head, or NULL. */
static const char *resp_header(const struct resp *r, const char *name,
                               char *out, size_t outn) {
  const char *p = strstr(r->head, "\r\n");
  size_t nl = strlen(name);
  while (p && p[2] != '\r') {
    p += 2;
    const char *e = strstr(p, "\r\n");
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      size_t vn = (size_t)(e - v);
      if (vn >= outn)
        vn = outn - 1;
      memcpy(out, v, vn);
      out[vn] = 0;
      return out;
    }
    p = e;
  }
  return NULL;
}

/* Reads one response; head_only: the request was HEAD (no body). */
static void read_response(struct conn *c, struct resp *r, bool head_only) {
  char *end;
  for (;;) {
    end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
    if (end)
      break;
    ssize_t k = conn_fill(c);
    cr_assert_gt(k, 0, "connection ended (%zd, %s) before a response head", k,
                 strerror(errno));
  }
  size_t hl = (size_t)(end - c->buf) + 4;
  cr_assert_lt(hl, sizeof r->head);
  memcpy(r->head, c->buf, hl);
  r->head[hl] = 0;
  cr_assert(sscanf(r->head, "HTTP/1.1 %d ", &r->status) == 1, "head: %s",
            r->head);
  char v[64];
  cr_assert_not_null(resp_header(r, "Content-Length", v, sizeof v),
                     "no Content-Length in %s", r->head);
  size_t cl = strtoul(v, NULL, 10);
  r->body_len = head_only ? 0 : cl;
  while (c->len < hl + r->body_len) {
    ssize_t k = conn_fill(c);
    cr_assert_gt(k, 0, "connection ended after %zu of %zu body bytes",
                 c->len - hl, r->body_len);
  }
  r->body = malloc(r->body_len + 1);
  memcpy(r->body, c->buf + hl, r->body_len);
  r->body[r->body_len] = 0;
  memmove(c->buf, c->buf + hl + r->body_len, c->len - hl - r->body_len);
  c->len -= hl + r->body_len;
}

/* True if the server closes the connection (nothing more comes). */
static bool conn_closed(struct conn *c) {
  if (c->len)
    return false;
  ssize_t k = conn_fill(c);
  return k == 0 || (k < 0 && errno == ECONNRESET);
}

static void expect_hello(struct resp *r) {
  cr_expect_eq(r->status, 200, "%s", r->head);
  cr_expect_str_eq(r->body, "hello\n");
  char v[64];
  cr_expect_str_eq(resp_header(r, "Content-Length", v, sizeof v), "6");
  cr_expect_not_null(resp_header(r, "Content-Type", v, sizeof v));
  cr_expect_str_eq(v, "text/plain");
  cr_expect_not_null(resp_header(r, "Date", v, sizeof v));
  cr_expect_eq(strlen(v), 29, "Date: %s", v);
}

/* One request, one response, on a new connection that then closes. */
static void one_request(const char *req, struct resp *r, bool head_only) {
  struct conn c;
  conn_open(&c);
  send_str(c.fd, req);
  read_response(&c, r, head_only);
  conn_close(&c);
}

/* An error status, then the connection closes. */
static void expect_error(const char *req, int status) {
  struct conn c;
  struct resp r;
  conn_open(&c);
  send_str(c.fd, req);
  read_response(&c, &r, false);
  cr_expect_eq(r.status, status, "%s", r.head);
  char v[64];
  cr_expect_not_null(resp_header(&r, "Connection", v, sizeof v));
  cr_expect_str_eq(v, "close");
  cr_expect(conn_closed(&c), "the connection stayed open after %d", status);
  free(r.body);
  conn_close(&c);
}

/* Reads the interim "100 Continue" response, which must come first, and
 * drops it from what c received. */
static void expect_continue_100(struct conn *c) {
  while (memmem(c->buf, c->len, "\r\n\r\n", 4) == NULL)
    cr_assert_gt(conn_fill(c), 0);
  cr_assert(c->len >= 25 &&
            memcmp(c->buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  memmove(c->buf, c->buf + 25, c->len - 25);
  c->len -= 25;
}

/* ------------------------------------------------------------------------ */
/* Server tests                                                             */
/* ------------------------------------------------------------------------ */

static void get_root(const char *mode) {
  start_server(mode, NULL);
  struct resp r;
  one_request("GET / HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
  expect_hello(&r);
  free(r.body);
  int st = stop_server();
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(http_server, get_green, .fini = fini_server, TMO) { get_root("green"); }
Test(http_server, get_kthread, .fini = fini_server, TMO) {
  get_root("kthread");
}
Test(http_server, get_process, .fini = fini_server, TMO) {
  get_root("process");
}

Test(http_server, head_then_get, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct conn c;
  struct resp r;
  conn_open(&c);
  send_str(c.fd, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, true);
  cr_expect_eq(r.status, 200);
  char v[64];
  cr_expect_str_eq(resp_header(&r, "Content-Length", v, sizeof v), "6");
  free(r.body);
  /* No body may follow: the next bytes are the next response. */
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  conn_close(&c);
}

Test(http_server, bytes_body, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct resp r;
  one_request("GET /bytes/100000 HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
  cr_expect_eq(r.status, 200);
  cr_assert_eq(r.body_len, 100000);
  free(r.body);
  one_request("GET /bytes/0 HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 0);
  free(r.body);
  one_request("HEAD /bytes/77 HTTP/1.1\r\nHost: t\r\n\r\n", &r, true);
  char v[64];
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(resp_header(&r, "Content-Length", v, sizeof v), "77");
  free(r.body);
  expect_error("GET /bytes/16777217 HTTP/1.1\r\nHost: t\r\n\r\n", 400);
  expect_error("GET /bytes/12x HTTP/1.1\r\nHost: t\r\n\r\n", 404);
  expect_error("GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", 404);
  expect_error("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 405);
}

Test(http_server, bytes_16mib, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct resp r;
  one_request("GET /bytes/16777216 HTTP/1.1\r\nHost: t\r\n\r\n", &r, false);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 16777216);
  free(r.body);
}

Test(http_server, pipelined, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct conn c;
  conn_open(&c);
  send_str(c.fd, "GET /bytes/3 HTTP/1.1\r\nHost: t\r\n\r\n"
                 "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /bytes/70000 HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  struct resp r;
  read_response(&c, &r, false);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 3);
  free(r.body);
  read_response(&c, &r, true);
  cr_expect_eq(r.status, 200);
  char v[64];
  cr_expect_str_eq(resp_header(&r, "Content-Length", v, sizeof v), "6");
  free(r.body);
  read_response(&c, &r, false);
  cr_expect_eq(r.body_len, 70000);
  free(r.body);
  read_response(&c, &r, false);
  expect_hello(&r);
  cr_expect_str_eq(resp_header(&r, "Connection", v, sizeof v), "close");
  free(r.body);
  cr_expect(conn_closed(&c));
  conn_close(&c);
}

Test(http_server, keep_alive_and_body, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct conn c;
  struct resp r;
  conn_open(&c);
  for (int i = 0; i < 5; i++) {
    send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    read_response(&c, &r, false);
    expect_hello(&r);
    free(r.body);
  }
  /* A body is read and discarded, also when it comes in pieces. */
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
                 "0123");
  usleep(20000);
  send_str(c.fd, "456789GET /bytes/2 HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  read_response(&c, &r, false);
  cr_expect_eq(r.body_len, 2);
  free(r.body);
  /* Expect: 100-continue gets its interim response. */
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                 "Expect: 100-continue\r\n\r\n");
  expect_continue_100(&c);
  send_str(c.fd, "abc");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  conn_close(&c);
}

/* A chunked body is read and dropped, in pieces, with 100-continue; the
 * connection goes on; a bad or oversized one is refused and closes it. */
static void chunked_bodies(const char *mode) {
  start_server(mode, NULL);
  struct conn c;
  struct resp r;
  conn_open(&c);
  send_str(c.fd, "POST /bytes/3 HTTP/1.1\r\nHost: t\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n");
  read_response(&c, &r, false);
  cr_expect_eq(r.status, 405, "%s", r.head); /* POST is not allowed... */
  free(r.body);
  conn_close(&c);

  conn_open(&c);
  /* ...but GET with a body is, and the body is skipped. */
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n5\r\nhel");
  usleep(20000);
  send_str(c.fd, "lo\r\n1");
  usleep(20000);
  send_str(c.fd, "0;ext=1\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n");
  usleep(20000);
  send_str(c.fd, "\r\nGET /bytes/2 HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  read_response(&c, &r, false);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 2);
  free(r.body);
  /* Pipelined, all in one send. */
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
  for (int i = 0; i < 2; i++) {
    read_response(&c, &r, false);
    expect_hello(&r);
    free(r.body);
  }
  /* Expect: 100-continue gets its interim response first. */
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "Expect: 100-continue\r\n\r\n");
  expect_continue_100(&c);
  send_str(c.fd, "2\r\nab\r\n0\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  conn_close(&c);

  /* A body of HTTP_MAX_BODY bytes in 4 KiB chunks is taken. */
  conn_open(&c);
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                 "\r\n");
  static char chunk[4096 + 16];
  int k = sprintf(chunk, "1000\r\n");
  memset(chunk + k, 'c', 4096);
  memcpy(chunk + k + 4096, "\r\n", 2);
  for (uint64_t sent = 0; sent < HTTP_MAX_BODY; sent += 4096)
    send_all(c.fd, chunk, (size_t)k + 4098);
  send_str(c.fd, "0\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  conn_close(&c);

  /* Too large (the size alone says so), malformed: refused, closed. */
  expect_error("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               "\r\n100001\r\n",
               413);
  expect_error("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               "\r\n3\r\nabcdef\r\n",
               400);
  expect_error("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               "\r\nzz\r\n",
               400);
  cr_expect_eq(stop_server(), 0, "the server did not exit cleanly");
}

Test(http_server, chunked_bodies_green, .fini = fini_server, TMO) {
  chunked_bodies("green");
}
Test(http_server, chunked_bodies_kthread, .fini = fini_server, TMO) {
  chunked_bodies("kthread");
}
Test(http_server, chunked_bodies_process, .fini = fini_server, TMO) {
  chunked_bodies("process");
}

Test(http_server, http10, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct conn c;
  struct resp r;
  char v[64];
  conn_open(&c);
  send_str(c.fd, "GET / HTTP/1.0\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  cr_expect(conn_closed(&c), "HTTP/1.0 without keep-alive stayed open");
  conn_close(&c);

  conn_open(&c);
  for (int i = 0; i < 2; i++) {
    send_str(c.fd, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    read_response(&c, &r, false);
    expect_hello(&r);
    cr_expect_str_eq(resp_header(&r, "Connection", v, sizeof v), "keep-alive");
    free(r.body);
  }
  conn_close(&c);
}

Test(http_server, errors, .fini = fini_server, TMO) {
  start_server("green", NULL);
  expect_error("GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\r\n\r\n", 400);
  expect_error("GET / HTTP/1.1\nHost: t\n\n", 400);
  expect_error("BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501);
  expect_error("GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, "
               "chunked\r\n\r\n",
               501);
  expect_error("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505);
  expect_error("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n"
               "\r\n",
               413);
  /* Oversized headers; the rest of what was sent is not read. */
  size_t n = 20000;
  char *big = malloc(n + 64);
  int k = sprintf(big, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: ");
  memset(big + k, 'b', n - (size_t)k);
  strcpy(big + n, "\r\n\r\n");
  expect_error(big, 431);
  free(big);
}

Test(http_server, slowloris_idle_timeout, .fini = fini_server, TMO) {
  start_server("green", "--idle-ms", "300", NULL);
  struct conn c;
  conn_open(&c);
  int64_t t0 = srvh_now_ms();
  send_str(c.fd, "GET / HTTP/1.1\r\nHo");
  bool closed = false;
  while (!closed && srvh_now_ms() - t0 < 5000) {
    struct pollfd pf = {.fd = c.fd, .events = POLLIN};
    if (poll(&pf, 1, 50) > 0) {
      char b[64];
      ssize_t k = recv(c.fd, b, sizeof b, 0);
      cr_assert(k <= 0, "the server answered a partial request");
      closed = true;
      break;
    }
    /* One more byte of a header that never ends. */
    send(c.fd, "s", 1, MSG_NOSIGNAL);
  }
  int64_t took = srvh_now_ms() - t0;
  cr_expect(closed, "a trickling request kept its connection");
  cr_expect(took >= 250 && took < 4000, "closed after %lld ms",
            (long long)took);
  conn_close(&c);

  /* An idle keep-alive connection is closed too, and others still work. */
  conn_open(&c);
  struct resp r;
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  t0 = srvh_now_ms();
  cr_expect(conn_closed(&c));
  took = srvh_now_ms() - t0;
  cr_expect(took >= 200 && took < 4000, "idle close after %lld ms",
            (long long)took);
  conn_close(&c);
}

Test(http_server, abrupt_disconnect, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct conn a, b;
  struct resp r;
  conn_open(&b);
  send_str(b.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&b, &r, false);
  expect_hello(&r);
  free(r.body);
  for (int i = 0; i < 3; i++) {
    conn_open(&a);
    send_str(a.fd, "GET /bytes/5000000 HTTP/1.1\r\nHost: t\r\n\r\nGET / HT");
    if (i == 1) {
      /* Reset, without reading anything. */
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(a.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (i == 2)
      send_str(a.fd, "TP/1.1\r\nHost:");
    conn_close(&a);
  }
  send_str(b.fd, "GET /bytes/10 HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&b, &r, false);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.body_len, 10);
  free(r.body);
  conn_close(&b);
  int st = stop_server();
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
}

Test(http_server, sigterm_exits_0, .fini = fini_server, TMO) {
  start_server("green", NULL);
  struct conn c;
  struct resp r;
  conn_open(&c);
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  /* With a connection still open (and idle). */
  int64_t t0 = srvh_now_ms();
  int st = stop_server();
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  cr_expect(srvh_now_ms() - t0 < 5000);
  conn_close(&c);
}

/* Idle keep-alive connections are closed at once at shutdown, as nginx
 * closes them: a drain of 20 s must not be spent waiting for a client
 * that has nothing in flight. */
static void idle_closed_at_once(const char *mode) {
  start_server(mode, "--drain-ms", "20000", NULL);
  struct conn c;
  struct resp r;
  conn_open(&c);
  send_str(c.fd, "GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  read_response(&c, &r, false);
  expect_hello(&r);
  free(r.body);
  int64_t t0 = srvh_now_ms();
  int st = stop_server();
  int64_t took = srvh_now_ms() - t0;
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  cr_expect(took < 10000,
            "the server waited %lld ms for an idle keep-alive connection",
            (long long)took);
  char b;
  cr_expect_eq(read(c.fd, &b, 1), 0, "the server closed the connection");
  conn_close(&c);
}

Test(http_server, sigterm_closes_idle_connections_at_once, .fini = fini_server,
     .timeout = 40) {
  idle_closed_at_once("green");
}

Test(http_server, sigterm_closes_idle_kthread_connections_at_once,
     .fini = fini_server, .timeout = 40) {
  idle_closed_at_once("kthread");
}

/* Not under ThreadSanitizer: the server forks each connection's process
 * from a parent that runs weft's process-task reaper thread, and TSan runs
 * the child of a multi-threaded fork with its interceptors turned off, so
 * the child's SIGUSR1 handler (its stop) is never called and the idle
 * connection waits out the drain. */
Test(http_server, sigterm_closes_idle_process_connections_at_once,
     .fini = fini_server, .timeout = 40, .disabled = WEFT_TSAN) {
  idle_closed_at_once("process");
}

/* "listening on" is a promise that the port takes connections: a server
 * whose runtime cannot start must not print it (a script waiting for the
 * line would connect to a port about to close), and must exit 1. */
Test(http_server, no_listening_line_when_the_runtime_cannot_start, TMO) {
  int pfd[2];
  cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(pfd[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    /* The runtime's first worker thread cannot be created. */
    setenv("WEFT_FAIL", "pthread_create:0:1", 1);
    execl("servers/http", "servers/http", "--port", "0", "--mode", "green",
          "--workers", "2", (char *)NULL);
    _exit(127);
  }
  close(pfd[1]);
  char out[512];
  size_t n = 0;
  ssize_t k;
  while (n < sizeof out - 1 &&
         (k = read(pfd[0], out + n, sizeof out - 1 - n)) > 0)
    n += (size_t)k;
  out[n] = 0;
  close(pfd[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 1,
            "exit status %#x", status);
  cr_expect(strstr(out, "listening on") == NULL,
            "printed a listening line though it could not start: %s", out);
}

/* Under an address-space limit (ulimit -v) a server either starts or exits
 * 1 with a message; it never dies of a signal.  Worker threads used to
 * start and then crash inside the allocator, whose per-thread arena could
 * not be created: weft_init now creates the arenas before any worker
 * starts, and workers take a small stack instead of 8 MiB. */
/* (Not under the sanitizers: their shadow memory alone is terabytes of
 * address space.) */
Test(http_server, address_space_limit_gives_a_clean_exit, .timeout = 120,
     .disabled = WEFT_ASAN || WEFT_TSAN) {
  int signals = 0, started = 0, refused = 0;
  for (long kib = 20000; kib <= 60000; kib += 5000) {
    for (int round = 0; round < 2; round++) {
      int pfd[2];
      cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
      pid_t pid = fork();
      cr_assert_geq(pid, 0);
      if (pid == 0) {
        dup2(pfd[1], 1);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 2);
        struct rlimit as = {(rlim_t)kib * 1024, (rlim_t)kib * 1024};
        setrlimit(RLIMIT_AS, &as);
        struct rlimit nocore = {0, 0};
        setrlimit(RLIMIT_CORE, &nocore);
        execl("servers/http", "servers/http", "--port", "0", "--workers", "8",
              (char *)NULL);
        _exit(127);
      }
      close(pfd[1]);
      /* A started server prints its line: stop it then. */
      char out[256];
      ssize_t n = 0;
      struct pollfd pf = {.fd = pfd[0], .events = POLLIN};
      if (poll(&pf, 1, 10000) > 0)
        n = read(pfd[0], out, sizeof out - 1);
      close(pfd[0]);
      if (n > 0) {
        started++;
        kill(pid, SIGKILL);
      }
      int status;
      cr_assert_eq(waitpid(pid, &status, 0), pid);
      if (n > 0)
        continue;
      if (WIFSIGNALED(status)) {
        signals++;
        cr_log_error("ulimit -v %ld: the server died of signal %d", kib,
                     WTERMSIG(status));
      } else if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
        refused++;
      } else {
        cr_log_error("ulimit -v %ld: exit status %#x", kib, status);
        signals++;
      }
    }
  }
  cr_log_info("%d started, %d refused to start with a message", started,
              refused);
  cr_expect_eq(signals, 0, "%d starts under an address-space limit died",
               signals);
  cr_expect_gt(refused, 0, "no limit was tight enough to refuse a start");
}
