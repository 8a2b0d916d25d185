/*
 * test_http_parse.c - the HTTP demo's request parser and chunked-body
 * decoder (servers/http_parse.c, compiled into this program), as units.
 *
 * Each request is checked twice: given at once, and given one byte more
 * per call, each time in a fresh buffer of exactly that size (so that a
 * sanitizer catches a read past the end), which must give the same result.
 * Chunked bodies are fed in pieces of several sizes, each a fresh heap copy.
 * The server, servers/http, is tested end to end by test_http.c.
 */
#include "helpers.h"

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
