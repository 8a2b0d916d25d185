/*
 * test_http.c - the HTTP demo: its request parser (demos/http_parse.c,
 * compiled into this program) and the server, demos/http, run as a child
 * process and spoken to over TCP.
 *
 * Parser tests check each request twice: given at once, and given one byte
 * more per call, each time in a fresh buffer of exactly that size (so that
 * a sanitizer catches a read past the end), which must give the same result.
 *
 * Server tests run "demos/http --port 0 --mode MODE --quiet" from the build
 * directory (the tests' working directory), read "listening on HOST:PORT"
 * from its standard output, and always kill and reap it (also when an
 * assertion fails: the fixture's fini does it, and the child gets SIGKILL
 * if the test process dies).
 */
#include "helpers.h"

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
/* Parser helpers                                                           */
/* ------------------------------------------------------------------------ */

static int parse_once(const char *s, size_t n, http_request *req) {
  http_parser p;
  http_parser_init(&p);
  char *copy = malloc(n ? n : 1);
  cr_assert(copy);
  memcpy(copy, s, n);
  int r = http_parse(&p, copy, n, req);
  if (r > 0) {
    /* Re-point into the caller's bytes: copy is freed. */
    req->target = s + (req->target - copy);
    req->path = s + (req->path - copy);
    if (req->host)
      req->host = s + (req->host - copy);
  }
  free(copy);
  return r;
}

/* One byte more per call, each time in a new buffer of exactly that size.
 * Returns the first result that is not "need more" (0 if none). */
static int parse_bytewise(const char *s, size_t n, http_request *req) {
  http_parser p;
  http_parser_init(&p);
  for (size_t k = 1; k <= n; k++) {
    char *copy = malloc(k);
    cr_assert(copy);
    memcpy(copy, s, k);
    int r = http_parse(&p, copy, k, req);
    if (r != 0) {
      if (r > 0) {
        cr_assert_eq((size_t)r, k, "complete at %zu, not when the head ended",
                     k);
        req->target = s + (req->target - copy);
        req->path = s + (req->path - copy);
        if (req->host)
          req->host = s + (req->host - copy);
      }
      /* Errors are sticky. */
      if (r < 0)
        cr_assert_eq(http_parse(&p, copy, k, req), r);
      free(copy);
      return r;
    }
    free(copy);
  }
  return 0;
}

static void expect_same(const http_request *a, const http_request *b) {
  cr_expect_eq(a->method, b->method);
  cr_expect_eq(a->version, b->version);
  cr_expect_eq(a->target, b->target);
  cr_expect_eq(a->target_len, b->target_len);
  cr_expect_eq(a->path, b->path);
  cr_expect_eq(a->path_len, b->path_len);
  cr_expect_eq(a->host, b->host);
  cr_expect_eq(a->host_len, b->host_len);
  cr_expect_eq(a->content_length, b->content_length);
  cr_expect_eq(a->head_len, b->head_len);
  cr_expect_eq(a->has_content_length, b->has_content_length);
  cr_expect_eq(a->keep_alive, b->keep_alive);
  cr_expect_eq(a->expect_continue, b->expect_continue);
}

/* Parses s both ways; the results must agree.  Returns the result. */
static int parse_n(const char *s, size_t n, http_request *req) {
  http_request a, b;
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  int ra = parse_once(s, n, &a);
  int rb = parse_bytewise(s, n, &b);
  cr_assert_eq(ra, rb, "at once: %d, byte by byte: %d, for \"%.*s\"", ra, rb,
               (int)(n > 200 ? 200 : n), s);
  if (ra > 0)
    expect_same(&a, &b);
  if (req)
    *req = a;
  return ra;
}

static int parse(const char *s, http_request *req) {
  return parse_n(s, strlen(s), req);
}

static bool str_is(const char *p, size_t n, const char *want) {
  return n == strlen(want) && memcmp(p, want, n) == 0;
}

#define EXPECT_STR(p, n, want)                                                 \
  cr_expect(str_is((p), (n), (want)), "\"%.*s\" is not \"%s\"", (int)(n), (p), \
            (want))

#define EXPECT_STATUS(s, status)                                               \
  do {                                                                         \
    int r_ = parse((s), NULL);                                                 \
    cr_expect_eq(r_, -(status), "%d instead of %d for \"%s\"", r_, -(status),  \
                 (s));                                                         \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Parser: valid requests                                                   */
/* ------------------------------------------------------------------------ */

Test(http_parse, simple_get) {
  const char *s = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
  http_request r;
  cr_assert_eq(parse(s, &r), (int)strlen(s));
  cr_expect_eq(r.method, HTTP_GET);
  cr_expect_eq(r.version, 11);
  EXPECT_STR(r.target, r.target_len, "/");
  EXPECT_STR(r.path, r.path_len, "/");
  EXPECT_STR(r.host, r.host_len, "example.com");
  cr_expect_eq(r.content_length, 0);
  cr_expect(!r.has_content_length);
  cr_expect(r.keep_alive);
  cr_expect(!r.expect_continue);
  cr_expect_eq(r.head_len, strlen(s));
}

Test(http_parse, head_with_query_and_port) {
  http_request r;
  const char *s = "HEAD /bytes/10?x=1&y=%20 HTTP/1.1\r\n"
                  "Host: [::1]:8080\r\nUser-Agent: t/1.0 (x; y)\r\n"
                  "Accept: */*\r\n\r\n";
  cr_assert_eq(parse(s, &r), (int)strlen(s));
  cr_expect_eq(r.method, HTTP_HEAD);
  EXPECT_STR(r.target, r.target_len, "/bytes/10?x=1&y=%20");
  EXPECT_STR(r.path, r.path_len, "/bytes/10");
  EXPECT_STR(r.host, r.host_len, "[::1]:8080");
}

Test(http_parse, all_methods) {
  static const char *names[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  for (int i = 0; i < 9; i++) {
    char s[128];
    const char *target = i == 5 ? "example.com:443" : "/x";
    snprintf(s, sizeof s, "%s %s HTTP/1.1\r\nHost: h\r\n\r\n", names[i],
             target);
    http_request r;
    cr_assert_eq(parse(s, &r), (int)strlen(s), "%s", s);
    cr_expect_eq(r.method, HTTP_GET + i);
    cr_expect_str_eq(http_method_name(r.method), names[i]);
  }
  cr_expect_str_eq(http_method_name(0), "");
  cr_expect_str_eq(http_method_name(99), "");
  cr_expect_str_eq(http_method_name(-1), "");
}

Test(http_parse, http10_and_connection) {
  http_request r;
  cr_assert_gt(parse("GET / HTTP/1.0\r\n\r\n", &r), 0);
  cr_expect_eq(r.version, 10);
  cr_expect(!r.keep_alive);
  cr_expect_null(r.host);
  cr_assert_gt(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r),
               0);
  cr_expect(r.keep_alive);
  cr_assert_gt(
      parse("GET / HTTP/1.0\r\nConnection: foo ,Keep-Alive\t\r\n\r\n", &r), 0);
  cr_expect(r.keep_alive);
  cr_assert_gt(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n"
                     "Connection: close\r\n\r\n",
                     &r),
               0);
  cr_expect(!r.keep_alive);
  cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect(r.keep_alive);
  cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nconnection: Upgrade, "
                     "CLOSE\r\n\r\n",
                     &r),
               0);
  cr_expect(!r.keep_alive);
  cr_assert_gt(
      parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", &r), 0);
  cr_expect(r.keep_alive);
  cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection:\r\n\r\n", &r),
               0);
  cr_expect(r.keep_alive);
}

Test(http_parse, later_minor_version_is_11) {
  http_request r;
  cr_assert_gt(parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect_eq(r.version, 11);
  cr_assert_gt(parse("GET / HTTP/1.9\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect_eq(r.version, 11);
}

Test(http_parse, content_length) {
  http_request r;
  const char *s = "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
                  "hello";
  cr_assert_eq(parse(s, &r), (int)strlen(s) - 5);
  cr_expect_eq(r.method, HTTP_POST);
  cr_expect(r.has_content_length);
  cr_expect_eq(r.content_length, 5);
  cr_assert_gt(
      parse("GET / HTTP/1.1\r\nHost: a\r\ncontent-length:  007 \r\n\r\n", &r),
      0);
  cr_expect_eq(r.content_length, 7);
  cr_assert_gt(
      parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", &r), 0);
  cr_expect(r.has_content_length);
  cr_expect_eq(r.content_length, 0);
}

Test(http_parse, expect) {
  http_request r;
  cr_assert_gt(parse("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                     "Expect: 100-Continue\r\n\r\n",
                     &r),
               0);
  cr_expect(r.expect_continue);
  EXPECT_STATUS("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417);
  /* HTTP/1.0 requests' expectations are ignored. */
  cr_assert_gt(parse("PUT /x HTTP/1.0\r\nExpect: 100-continue\r\n"
                     "Expect: whatever\r\n\r\n",
                     &r),
               0);
  cr_expect(!r.expect_continue);
}

Test(http_parse, empty_lines_before_request_line) {
  http_request r;
  const char *s = "\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  cr_assert_eq(parse(s, &r), (int)strlen(s));
  EXPECT_STR(r.path, r.path_len, "/a");
  EXPECT_STATUS("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(http_parse, target_forms) {
  http_request r;
  cr_assert_gt(
      parse("GET http://example.com/bytes/5?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            &r),
      0);
  EXPECT_STR(r.path, r.path_len, "/bytes/5");
  cr_assert_gt(
      parse("GET HTTP://user@ex.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect_eq(r.path_len, 0);
  cr_assert_gt(parse("GET h2+x.y-z://e?q HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect_eq(r.path_len, 0);
  cr_assert_gt(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect_eq(r.method, HTTP_OPTIONS);
  EXPECT_STR(r.target, r.target_len, "*");
  cr_expect_eq(r.path_len, 0);
  cr_assert_gt(
      parse("CONNECT ex.com:443 HTTP/1.1\r\nHost: ex.com:443\r\n\r\n", &r), 0);
  cr_expect_eq(r.path_len, 0);
  EXPECT_STATUS("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET 1http://x/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

Test(http_parse, obs_text_in_value) {
  http_request r;
  cr_assert_gt(
      parse("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\t!\r\n\r\n", &r),
      0);
}

Test(http_parse, need_more) {
  http_parser p;
  http_request r;
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, "", 0, &r), 0);
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r";
  cr_expect_eq(http_parse(&p, s, strlen(s), &r), 0);
  cr_expect_eq(http_parse(&p, s, strlen(s), &r), 0);
  const char *t = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  cr_expect_eq(http_parse(&p, t, strlen(t), &r), (int)strlen(t));
  /* Done stays done until init. */
  cr_expect_eq(http_parse(&p, t, strlen(t), &r), (int)strlen(t));
}

Test(http_parse, buffer_moves_between_calls) {
  const char *s = "GET /moved HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
  size_t n = strlen(s);
  http_parser p;
  http_request r;
  http_parser_init(&p);
  char *a = malloc(n), *b = malloc(n);
  memcpy(a, s, 20);
  cr_assert_eq(http_parse(&p, a, 20, &r), 0);
  memcpy(b, s, n);
  memset(a, 'Z', 20);
  cr_assert_eq(http_parse(&p, b, n, &r), (int)n);
  cr_expect_eq(r.path, b + 4);
  EXPECT_STR(r.path, r.path_len, "/moved");
  free(a);
  free(b);
}

Test(http_parse, shorter_buffer_restarts) {
  http_parser p;
  http_request r;
  http_parser_init(&p);
  const char *s = "GET / HTTP/1.1\r\nHost: a\r\n";
  cr_assert_eq(http_parse(&p, s, strlen(s), &r), 0);
  /* A contract breach must not read past the end. */
  cr_expect_eq(http_parse(&p, s, 3, &r), 0);
  const char *t = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  cr_expect_eq(http_parse(&p, t, strlen(t), &r), (int)strlen(t));
}

Test(http_parse, pipelined) {
  const char *s = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                  "HEAD /2 HTTP/1.1\r\nHost: a\r\n\r\n"
                  "POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"
                  "GET /4 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  size_t n = strlen(s), pos = 0;
  static const char *paths[] = {"/1", "/2", "/3", "/4"};
  static const int meth[] = {HTTP_GET, HTTP_HEAD, HTTP_POST, HTTP_GET};
  for (int i = 0; i < 4; i++) {
    http_request r;
    int got = parse_n(s + pos, n - pos, &r);
    cr_assert_gt(got, 0, "request %d: %d", i, got);
    EXPECT_STR(r.path, r.path_len, paths[i]);
    cr_expect_eq(r.method, meth[i]);
    cr_expect_eq(r.keep_alive, i != 3);
    pos += (size_t)got + r.content_length;
  }
  cr_expect_eq(pos, n);
}

/* ------------------------------------------------------------------------ */
/* Parser: errors                                                           */
/* ------------------------------------------------------------------------ */

Test(http_parse, malformed_request_line) {
  EXPECT_STATUS("GET / HTTP/1.1\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /\r\n\r\n", 400);
  EXPECT_STATUS("GET\r\n\r\n", 400);
  EXPECT_STATUS("GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /a\"b HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /a{b} HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / http/1.1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/11\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTPS/1.1\r\nHost: a\r\n\r\n", 400);
  /* A NUL in the target. */
  http_request r;
  static const char nul[] = "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n";
  cr_expect_eq(parse_n(nul, sizeof nul - 1, &r), -400);
}

Test(http_parse, malformed_fields) {
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\n: nameless\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX@y: z\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nX\x80: z\r\n\r\n", 400);
  http_request r;
  static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
  cr_expect_eq(parse_n(nul, sizeof nul - 1, &r), -400);
}

Test(http_parse, host_rules) {
  EXPECT_STATUS("GET / HTTP/1.1\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400);
  http_request r;
  /* An empty Host is allowed (a target without authority). */
  cr_assert_gt(parse("GET / HTTP/1.1\r\nHost:\r\n\r\n", &r), 0);
  cr_expect_not_null(r.host);
  cr_expect_eq(r.host_len, 0);
  cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: \t  \r\n\r\n", &r), 0);
  cr_expect_eq(r.host_len, 0);
}

Test(http_parse, content_length_errors) {
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                "Content-Length: 1\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                "content-length: 2\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 12a\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Content-Length: 3\r\n\r\n",
                400);
}

Test(http_parse, body_too_large) {
  char s[256];
  http_request r;
  snprintf(s, sizeof s,
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %llu\r\n\r\n",
           (unsigned long long)HTTP_MAX_BODY);
  cr_assert_gt(parse(s, &r), 0);
  cr_expect_eq(r.content_length, HTTP_MAX_BODY);
  snprintf(s, sizeof s,
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %llu\r\n\r\n",
           (unsigned long long)HTTP_MAX_BODY + 1);
  EXPECT_STATUS(s, 413);
  /* Leading zeros do not count against the limit. */
  cr_assert_gt(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                     "0000000000000000000000000000000000000000000000012\r\n"
                     "\r\n",
                     &r),
               0);
  cr_expect_eq(r.content_length, 12);
  EXPECT_STATUS("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                "99999999999999999999999999999999999999999999999\r\n\r\n",
                413);
  EXPECT_STATUS("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                "18446744073709551616\r\n\r\n",
                413);
}

Test(http_parse, not_implemented) {
  EXPECT_STATUS("BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
  EXPECT_STATUS("get / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
  EXPECT_STATUS("GETS / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
  EXPECT_STATUS("X-Custom! / HTTP/1.1\r\nHost: a\r\n\r\n", 501);
  /* A coding before chunked: the length is known, the content not. */
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, "
                "chunked\r\n\r\n",
                501);
  EXPECT_STATUS("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
                501);
}

Test(http_parse, transfer_encoding_chunked) {
  http_request r;
  cr_assert_gt(parse("POST / HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n",
                     &r),
               0);
  cr_expect(r.chunked);
  cr_expect_not(r.has_content_length);
  cr_expect_eq(r.content_length, 0);
  cr_assert_gt(parse("POST / HTTP/1.1\r\nHost: a\r\n"
                     "transfer-encoding:  ChUnKeD \r\n\r\n",
                     &r),
               0);
  cr_expect(r.chunked);
  cr_assert_gt(parse("POST / HTTP/1.1\r\nHost: a\r\n"
                     "Transfer-Encoding: , chunked,\r\n\r\n",
                     &r),
               0);
  cr_expect(r.chunked);
  cr_assert_gt(parse("POST / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 0);
  cr_expect_not(r.chunked);
}

Test(http_parse, transfer_encoding_errors) {
  /* The list must end with chunked, once (RFC 9112, 6.3). */
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                "\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, "
                "gzip\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Transfer-Encoding: chunked\r\n\r\n",
                400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\ntransfer-encoding:\r\n\r\n", 400);
  /* HTTP/1.0 has no transfer codings. */
  EXPECT_STATUS("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                400);
}

Test(http_parse, bad_version) {
  EXPECT_STATUS("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
  EXPECT_STATUS("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
  EXPECT_STATUS("GET / HTTP/9.1\r\n\r\n", 505);
  /* The version is checked before the method. */
  EXPECT_STATUS("BREW / HTTP/3.0\r\n\r\n", 505);
}

Test(http_parse, first_offence_decides) {
  /* A bad line before an oversized Content-Length, and the other way. */
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999\r\n"
                "Bad Line\r\n\r\n",
                400);
  /* Checks at the end of the head, in their documented order. */
  EXPECT_STATUS("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, "
                "chunked\r\nExpect: nope\r\n\r\n",
                501);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                "Expect: nope\r\n\r\n",
                417);
  EXPECT_STATUS("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999\r\n"
                "Expect: nope\r\n\r\n",
                413);
}

Test(http_parse, errors_are_sticky) {
  http_parser p;
  http_request r;
  http_parser_init(&p);
  const char *bad = "GET / HTTP/1.1\r\nHost a\r\n";
  cr_assert_eq(http_parse(&p, bad, strlen(bad), &r), -400);
  const char *good = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  cr_expect_eq(http_parse(&p, good, strlen(good), &r), -400);
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, good, strlen(good), &r), (int)strlen(good));
}

/* ------------------------------------------------------------------------ */
/* Parser: the head's size limit                                            */
/* ------------------------------------------------------------------------ */

/* A request whose head is exactly n bytes, padded with one X-Pad field. */
static char *head_of_size(size_t n) {
  const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  const char *post = "\r\n\r\n";
  size_t fixed = strlen(pre) + strlen(post);
  cr_assert_gt(n, fixed);
  char *s = malloc(n + 1);
  cr_assert(s);
  memcpy(s, pre, strlen(pre));
  memset(s + strlen(pre), 'p', n - fixed);
  memcpy(s + n - strlen(post), post, strlen(post));
  s[n] = 0;
  return s;
}

Test(http_parse, head_at_limit) {
  char *s = head_of_size(HTTP_MAX_HEAD);
  http_request r;
  cr_expect_eq(parse(s, &r), HTTP_MAX_HEAD);
  free(s);
  s = head_of_size(HTTP_MAX_HEAD + 1);
  cr_expect_eq(parse(s, &r), -431);
  free(s);
  s = head_of_size(HTTP_MAX_HEAD - 1);
  cr_expect_eq(parse(s, &r), HTTP_MAX_HEAD - 1);
  free(s);
}

Test(http_parse, endless_line) {
  size_t n = HTTP_MAX_HEAD + 100;
  char *s = malloc(n);
  cr_assert(s);
  memcpy(s, "GET /", 5);
  memset(s + 5, 'a', n - 5);
  http_parser p;
  http_request r;
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, s, HTTP_MAX_HEAD - 1, &r), 0);
  cr_expect_eq(http_parse(&p, s, HTTP_MAX_HEAD, &r), -431);
  cr_expect_eq(parse_n(s, n, &r), -431);
  /* Many short field lines add up too. */
  size_t m = 0;
  m += (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
  while (m + 8 < n)
    m += (size_t)sprintf(s + m, "X: 12\r\n");
  cr_expect_eq(parse_n(s, m, &r), -431);
  free(s);
}

Test(http_parse, empty_lines_count_toward_limit) {
  size_t n = HTTP_MAX_HEAD + 2;
  char *s = malloc(n);
  cr_assert(s);
  for (size_t i = 0; i + 1 < n; i += 2)
    memcpy(s + i, "\r\n", 2);
  http_request r;
  cr_expect_eq(parse_n(s, n, &r), -431);
  cr_expect_eq(parse_n(s, HTTP_MAX_HEAD - 2, &r), 0);
  free(s);
}

/* ------------------------------------------------------------------------ */
/* Chunked bodies                                                           */
/* ------------------------------------------------------------------------ */

/*
 * Decodes s[0, n) as a chunked body, fed in pieces of step bytes (0: all
 * at once), each piece a fresh heap copy so that a read past it is caught.
 * The data goes to out (at most cap bytes, *outn of them).  Returns the
 * bytes used up to the end of the body, 0 if it did not end, or -status.
 */
static ssize_t dechunk(const char *s, size_t n, size_t step, char *out,
                       size_t cap, size_t *outn) {
  http_chunked d;
  http_chunked_init(&d);
  size_t at = 0;
  *outn = 0;
  while (at < n && !http_chunked_done(&d)) {
    size_t piece = step == 0 || n - at < step ? n - at : step;
    char *copy = malloc(piece);
    cr_assert_not_null(copy);
    memcpy(copy, s + at, piece);
    size_t off = 0;
    while (off < piece && !http_chunked_done(&d)) {
      const char *data;
      size_t dn;
      ssize_t k = http_chunked_feed(&d, copy + off, piece - off, &data, &dn);
      if (k < 0) {
        free(copy);
        return k;
      }
      cr_assert_leq((size_t)k, piece - off);
      if (dn) {
        cr_assert(data >= copy + off && data + dn <= copy + off + (size_t)k,
                  "data outside what was used");
        cr_assert_leq(*outn + dn, cap);
        memcpy(out + *outn, data, dn);
        *outn += dn;
      }
      cr_assert(k > 0 || http_chunked_done(&d), "no progress");
      off += (size_t)k;
    }
    at += off;
    free(copy);
  }
  return http_chunked_done(&d) ? (ssize_t)at : 0;
}

/* s decodes to want, using all of s but tail bytes, whatever the pieces. */
static void expect_dechunk(const char *s, const char *want, size_t tail) {
  size_t n = strlen(s);
  static const size_t steps[] = {0, 1, 2, 3, 5, 7, 64};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    char out[256];
    size_t outn;
    ssize_t used = dechunk(s, n, steps[i], out, sizeof out, &outn);
    cr_expect_eq(used, (ssize_t)(n - tail), "step %zu: used %zd of %zu",
                 steps[i], used, n);
    cr_expect(outn == strlen(want) && memcmp(out, want, outn) == 0,
              "step %zu: decoded \"%.*s\", expected \"%s\"", steps[i],
              (int)outn, out, want);
  }
}

/* s is refused with status, whatever the pieces. */
static void expect_dechunk_error(const char *s, size_t n, int status) {
  static const size_t steps[] = {0, 1, 3, 100};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    static char out[HTTP_MAX_BODY + 64];
    size_t outn;
    ssize_t r = dechunk(s, n, steps[i], out, sizeof out, &outn);
    cr_expect_eq(r, -status, "step %zu: %zd, expected -%d", steps[i], r,
                 status);
  }
}

Test(http_chunked, decodes) {
  expect_dechunk("0\r\n\r\n", "", 0);
  expect_dechunk("5\r\nhello\r\n0\r\n\r\n", "hello", 0);
  expect_dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", 0);
  /* Hex in either case, leading zeros, extensions, BWS, trailers. */
  expect_dechunk("000A\r\n0123456789\r\na;name=value;x=\"q;s\"\r\n"
                 "abcdefghij\r\n0 ;last\r\nX-Sum: 1\r\nY:\r\n\r\n",
                 "0123456789abcdefghij", 0);
  /* The next request stays where it is. */
  expect_dechunk("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n", "abc", 16);
  /* Data may hold anything, CRLF included. */
  expect_dechunk("4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n", 0);
}

Test(http_chunked, incomplete_needs_more) {
  static const char *parts[] = {"", "5", "5\r", "5\r\nhel", "5\r\nhello\r\n",
                                "0\r\n", "0\r\nX: y\r\n", "0\r\n\r"};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    char out[16];
    size_t outn;
    cr_expect_eq(dechunk(parts[i], strlen(parts[i]), 0, out, sizeof out,
                         &outn),
                 0, "\"%s\" ended a body", parts[i]);
  }
}

Test(http_chunked, malformed) {
  static const char *bad[] = {
      "\r\n",                      /* no size */
      "x\r\n",                     /* not hex */
      "-1\r\n",                    /* not hex */
      " 5\r\nhello\r\n0\r\n\r\n",  /* space before the size */
      "5\n",                       /* bare LF */
      "5\rx",                      /* bare CR */
      "5 x\r\n",                   /* junk after BWS */
      "5;a\x01\r\n",               /* control character in an extension */
      "3\r\nabcd\r\n",             /* data longer than its size */
      "3\r\nabc\n0\r\n\r\n",       /* no CR after the data */
      "0\r\nBad Field\r\n\r\n",    /* trailer without a colon */
      "0\r\n: v\r\n\r\n",          /* trailer without a name */
      "0\r\nX: \x7f\r\n\r\n",      /* control character in a trailer */
      "0\r\n\r\r",                 /* bare CR at the end */
      "0\r\n\n",                   /* bare LF at the end */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    expect_dechunk_error(bad[i], strlen(bad[i]), 400);
}

Test(http_chunked, size_limit_is_the_body_limit, .timeout = 60) {
  /* HTTP_MAX_BODY in one chunk, or in two, is taken... */
  static char body[HTTP_MAX_BODY + 256];
  int k = sprintf(body, "%llx\r\n", (unsigned long long)HTTP_MAX_BODY);
  memset(body + k, 'z', HTTP_MAX_BODY);
  k += (int)HTTP_MAX_BODY;
  k += sprintf(body + k, "\r\n0\r\n\r\n");
  static char out[HTTP_MAX_BODY];
  size_t outn;
  cr_expect_eq(dechunk(body, (size_t)k, 0, out, sizeof out, &outn), k);
  cr_expect_eq(outn, HTTP_MAX_BODY);
  k = sprintf(body, "%llx\r\n", (unsigned long long)HTTP_MAX_BODY - 1);
  memset(body + k, 'z', HTTP_MAX_BODY - 1);
  k += (int)HTTP_MAX_BODY - 1;
  k += sprintf(body + k, "\r\n1\r\nz\r\n0\r\n\r\n");
  cr_expect_eq(dechunk(body, (size_t)k, 0, out, sizeof out, &outn), k);
  /* ...one byte more is 413, as soon as a size says so: with no data
   * sent, and whatever the digits (leading zeros are free, overflow is
   * caught). */
  char s[128];
  sprintf(s, "%llx\r\n", (unsigned long long)HTTP_MAX_BODY + 1);
  expect_dechunk_error(s, strlen(s), 413);
  sprintf(s, "00000000000000000000%llx\r\n",
          (unsigned long long)HTTP_MAX_BODY + 1);
  expect_dechunk_error(s, strlen(s), 413);
  expect_dechunk_error("ffffffffffffffffffff\r\n", 22, 413);
  expect_dechunk_error("10000000000000001\r\n", 19, 413);
  k = sprintf(body, "%llx\r\n", (unsigned long long)HTTP_MAX_BODY);
  memset(body + k, 'z', HTTP_MAX_BODY);
  k += (int)HTTP_MAX_BODY;
  k += sprintf(body + k, "\r\n1\r\n");
  expect_dechunk_error(body, (size_t)k, 413);
}

Test(http_chunked, line_and_trailer_limits) {
  /* A size line of HTTP_MAX_CHUNK_LINE bytes with its CRLF is taken. */
  size_t n = HTTP_MAX_CHUNK_LINE;
  char *s = malloc(n + HTTP_MAX_HEAD + 64);
  cr_assert_not_null(s);
  memcpy(s, "1;", 2);
  memset(s + 2, 'e', n - 4);
  memcpy(s + n - 2, "\r\nz\r\n0\r\n\r\n", 11);
  char out[8];
  size_t outn;
  cr_expect_eq(dechunk(s, n + 8, 0, out, sizeof out, &outn), (ssize_t)n + 8);
  /* One byte more, 400, before its end arrives. */
  memset(s + 2, 'e', n - 2);
  expect_dechunk_error(s, n + 1, 400);
  /* A trailer section of HTTP_MAX_HEAD bytes is taken; more is 431. */
  memcpy(s, "0\r\nX: ", 6);
  size_t t = 3 + HTTP_MAX_HEAD; /* "0\r\n" then the section */
  memset(s + 6, 'v', t - 6 - 4);
  memcpy(s + t - 4, "\r\n\r\n", 4);
  cr_expect_eq(dechunk(s, t, 0, out, sizeof out, &outn), (ssize_t)t);
  memset(s + 6, 'v', t + 1 - 6);
  expect_dechunk_error(s, t + 1, 431);
  free(s);
}

Test(http_chunked, errors_are_sticky) {
  http_chunked d;
  http_chunked_init(&d);
  const char *data;
  size_t dn;
  cr_assert_eq(http_chunked_feed(&d, "z", 1, &data, &dn), -400);
  cr_expect_eq(http_chunked_feed(&d, "0\r\n\r\n", 5, &data, &dn), -400);
  cr_expect_not(http_chunked_done(&d));
  http_chunked_init(&d);
  cr_expect_eq(http_chunked_feed(&d, "0\r\n\r\n", 5, &data, &dn), 5);
  cr_expect(http_chunked_done(&d));
  /* Once done, nothing more is used. */
  cr_expect_eq(http_chunked_feed(&d, "GET", 3, &data, &dn), 0);
}

Test(http_chunked, random_bytes, .timeout = 60) {
  uint64_t seed = 4242;
  static const char alphabet[] = "0123456789abcdefABCDEFxyz;= \t\r\n\r\n:\x01";
  char buf[300], out[300];
  for (int iter = 0; iter < 5000; iter++) {
    size_t n = h_rand(&seed) % sizeof buf;
    for (size_t i = 0; i < n; i++)
      buf[i] = alphabet[h_rand(&seed) % (sizeof alphabet - 1)];
    size_t outa, outb;
    ssize_t a = dechunk(buf, n, 0, out, sizeof out, &outa);
    ssize_t b = dechunk(buf, n, 1, out, sizeof out, &outb);
    cr_assert(a == b, "whole %zd, byte by byte %zd", a, b);
    cr_assert(a >= 0 || a == -400 || a == -413 || a == -431, "%zd", a);
    if (a > 0)
      cr_assert_eq(outa, outb);
  }
}

/* ------------------------------------------------------------------------ */
/* Parser: arbitrary input                                                  */
/* ------------------------------------------------------------------------ */

/* Any status the parser may give. */
static bool known_result(int r, size_t n) {
  if (r > 0)
    return (size_t)r <= n && r <= HTTP_MAX_HEAD;
  switch (-r) {
  case 0:
  case 400:
  case 413:
  case 417:
  case 431:
  case 501:
  case 505:
    return true;
  default:
    return false;
  }
}

Test(http_parse, random_bytes, .timeout = 60) {
  uint64_t seed = 12345;
  static const char alphabet[] = "GET / HTTP/1.1\r\n:Host: Content-Length 0 9"
                                 " \t\r\n\r\n\x01\x80*?%chunked";
  char buf[600];
  for (int iter = 0; iter < 3000; iter++) {
    size_t n = h_rand(&seed) % sizeof buf;
    bool raw = h_rand(&seed) % 4 == 0;
    for (size_t i = 0; i < n; i++) {
      uint64_t x = h_rand(&seed);
      buf[i] = raw ? (char)x : alphabet[x % (sizeof alphabet - 1)];
    }
    http_request r;
    int got = parse_n(buf, n, &r);
    cr_assert(known_result(got, n), "result %d", got);
  }
}

Test(http_parse, mutated_requests, .timeout = 60) {
  static const char *base[] = {
      "GET /bytes/100?x=y HTTP/1.1\r\nHost: localhost:8080\r\n"
      "Connection: keep-alive\r\nContent-Length: 12\r\n\r\n",
      "\r\nHEAD / HTTP/1.0\r\nExpect: 100-continue\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      "OPTIONS * HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
  };
  uint64_t seed = 777;
  char buf[256];
  for (int iter = 0; iter < 3000; iter++) {
    const char *b = base[iter % 3];
    size_t n = strlen(b);
    memcpy(buf, b, n);
    int flips = 1 + (int)(h_rand(&seed) % 4);
    for (int f = 0; f < flips; f++) {
      size_t at = h_rand(&seed) % n;
      uint64_t x = h_rand(&seed);
      switch (x % 4) {
      case 0:
        buf[at] = (char)(x >> 8);
        break;
      case 1:
        buf[at] = "\r\n :\t/"[(x >> 8) % 6];
        break;
      case 2: /* delete a byte */
        memmove(buf + at, buf + at + 1, n - at - 1);
        n--;
        break;
      default: /* truncate */
        n = at + 1;
        break;
      }
      if (n == 0)
        break;
    }
    http_request r;
    int got = parse_n(buf, n, &r);
    cr_assert(known_result(got, n), "result %d", got);
  }
}

/* ------------------------------------------------------------------------ */
/* Server helpers                                                           */
/* ------------------------------------------------------------------------ */

#define TMO .timeout = 20

static pid_t server_pid;
static int server_port;
static int server_out = -1;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Starts demos/http with the given mode and extra arguments (NULL-ended). */
static void start_server(const char *mode, ...) {
  const char *argv[32];
  int argc = 0;
  argv[argc++] = "demos/http";
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

  int pfd[2];
  cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(pfd[1], 1);
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(pfd[1]);
  server_pid = pid;
  server_out = pfd[0];

  char line[256];
  size_t n = 0;
  int64_t end = now_ms() + 10000;
  while (n < sizeof line - 1 && memchr(line, '\n', n) == NULL) {
    struct pollfd pf = {.fd = server_out, .events = POLLIN};
    int left = (int)(end - now_ms());
    cr_assert_gt(left, 0, "no \"listening on\" line from demos/http");
    if (poll(&pf, 1, left) <= 0)
      continue;
    ssize_t k = read(server_out, line + n, sizeof line - 1 - n);
    cr_assert_gt(k, 0, "demos/http ended before listening");
    n += (size_t)k;
  }
  line[n] = 0;
  char *colon = strrchr(line, ':');
  cr_assert(strncmp(line, "listening on ", 13) == 0 && colon,
            "unexpected first line: %s", line);
  server_port = atoi(colon + 1);
  cr_assert_gt(server_port, 0, "%s", line);
}

/* Stops the server with SIGTERM and returns its wait status (or -1 if it
 * had to be killed). */
static int stop_server(void) {
  if (server_pid <= 0)
    return -1;
  kill(server_pid, SIGTERM);
  int status = -1;
  int64_t end = now_ms() + 8000;
  for (;;) {
    pid_t w = waitpid(server_pid, &status, WNOHANG);
    if (w == server_pid)
      break;
    if (now_ms() > end) {
      kill(server_pid, SIGKILL);
      waitpid(server_pid, &status, 0);
      status = -1;
      break;
    }
    usleep(2000);
  }
  server_pid = 0;
  if (server_out >= 0)
    close(server_out);
  server_out = -1;
  return status;
}

static void fini_server(void) { stop_server(); }

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)server_port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect: %s",
               strerror(errno));
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
    cr_assert_gt(k, 0, "send: %s", strerror(errno));
    s += k;
    n -= (size_t)k;
  }
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
  while (memmem(c.buf, c.len, "\r\n\r\n", 4) == NULL)
    cr_assert_gt(conn_fill(&c), 0);
  cr_assert(c.len >= 25 &&
            memcmp(c.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  memmove(c.buf, c.buf + 25, c.len - 25);
  c.len -= 25;
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
  while (memmem(c.buf, c.len, "\r\n\r\n", 4) == NULL)
    cr_assert_gt(conn_fill(&c), 0);
  cr_assert(c.len >= 25 &&
            memcmp(c.buf, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
  memmove(c.buf, c.buf + 25, c.len - 25);
  c.len -= 25;
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
  int64_t t0 = now_ms();
  send_str(c.fd, "GET / HTTP/1.1\r\nHo");
  bool closed = false;
  while (!closed && now_ms() - t0 < 5000) {
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
  int64_t took = now_ms() - t0;
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
  t0 = now_ms();
  cr_expect(conn_closed(&c));
  took = now_ms() - t0;
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
  int64_t t0 = now_ms();
  int st = stop_server();
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
  cr_expect(now_ms() - t0 < 5000);
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
  int64_t t0 = now_ms();
  int st = stop_server();
  int64_t took = now_ms() - t0;
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

Test(http_server, sigterm_closes_idle_process_connections_at_once,
     .fini = fini_server, .timeout = 40) {
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
    execl("demos/http", "demos/http", "--port", "0", "--mode", "green",
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

/* A request line whose method is already impossible is refused before its
 * end arrives: a client speaking another protocol (a TLS ClientHello sent
 * to the HTTP port) gets its 400 at once instead of a silent wait for a
 * line feed that may never come.  A lone CR may still be an empty line. */
Test(http_parse, impossible_method_refused_before_the_line_ends) {
  http_parser p;
  http_request r;
  const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00};
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, (const char *)hello, sizeof hello, &r), -400);
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, "GE\x01", 3, &r), -400);
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, " GET", 4, &r), -400);
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, "\r\nG@T /", 7, &r), -400);
  /* Still possible: wait for more. */
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, "\r", 1, &r), 0);
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, "\r\nGET", 5, &r), 0);
  http_parser_init(&p);
  cr_expect_eq(http_parse(&p, "GET /\x01", 6, &r), 0); /* target: at its end */
  /* Byte by byte and at once agree. */
  cr_expect_eq(parse_bytewise((const char *)hello, sizeof hello, &r), -400);
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
        execl("demos/http", "demos/http", "--port", "0", "--workers", "8",
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
