/*
 * test_resp.c - the kv demo's RESP parser and reply helpers
 * (servers/resp.c, compiled into this program), as units: valid frames, the
 * same result a byte at a time, pipelines, inline commands, each protocol
 * error, random input.
 */
#include "helpers.h"

#include "resp.h"

/* ------------------------------------------------------------------------ */
/* Parser                                                                   */
/* ------------------------------------------------------------------------ */

/* Parses the whole of s as one call; the buffer is a copy of exactly len
 * bytes, so a read past its end is caught by sanitizers. */
static int parse_copy(resp_parser *p, const char *s, size_t len, size_t *used) {
  char *b = malloc(len ? len : 1);
  cr_assert(b);
  memcpy(b, s, len);
  int r = resp_parse(p, b, len, used);
  /* Keep the arguments readable for the caller: copy them out. */
  static char keep[1 << 16];
  if (r == RESP_OK) {
    size_t k = 0;
    for (size_t i = 0; i < p->argc; i++) {
      cr_assert(p->argv[i].p >= b && p->argv[i].p + p->argv[i].len <= b + len);
      cr_assert(k + p->argv[i].len <= sizeof(keep));
      memcpy(keep + k, p->argv[i].p, p->argv[i].len);
      p->argv[i].p = keep + k;
      k += p->argv[i].len;
    }
  }
  free(b);
  return r;
}

static void expect_args(const resp_parser *p, size_t argc, ...) {
  va_list ap;
  va_start(ap, argc);
  cr_assert_eq(p->argc, argc, "argc %zu, expected %zu", p->argc, argc);
  for (size_t i = 0; i < argc; i++) {
    const char *s = va_arg(ap, const char *);
    cr_assert_eq(p->argv[i].len, strlen(s), "arg %zu: length %zu vs %zu", i,
                 p->argv[i].len, strlen(s));
    cr_assert(memcmp(p->argv[i].p, s, p->argv[i].len) == 0, "arg %zu", i);
  }
  va_end(ap);
}

#define SET_FRAME "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nhello\r\n"

Test(resp, multibulk) {
  resp_parser p;
  resp_parser_init(&p);
  size_t used;
  cr_assert_eq(parse_copy(&p, SET_FRAME, strlen(SET_FRAME), &used), RESP_OK);
  cr_assert_eq(used, strlen(SET_FRAME));
  expect_args(&p, 3, "SET", "key", "hello");
  /* Binary data, an empty argument and one past the small array. */
  static const char f[] = "*10\r\n$0\r\n\r\n$3\r\na\r\n\r\n$1\r\n1\r\n$1\r\n2"
                          "\r\n$1\r\n3\r\n$1\r\n4\r\n$1\r\n5\r\n$1\r\n6\r\n$1"
                          "\r\n7\r\n$1\r\n8\r\n";
  cr_assert_eq(parse_copy(&p, f, sizeof(f) - 1, &used), RESP_OK);
  cr_assert_eq(used, sizeof(f) - 1);
  expect_args(&p, 10, "", "a\r\n", "1", "2", "3", "4", "5", "6", "7", "8");
  resp_parser_free(&p);
}

Test(resp, byte_at_a_time) {
  static const char *const frames[] = {
      SET_FRAME,
      ("*10\r\n$0\r\n\r\n$3\r\na\r\n\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n$"
       "1\r\n4"
       "\r\n$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n$12\r\n8xxxxxxxxxxx\r\n"),
      "set  a\tb\r\n",
      "get x\n",
  };
  for (size_t f = 0; f < sizeof(frames) / sizeof(frames[0]); f++) {
    const char *s = frames[f];
    size_t len = strlen(s);
    resp_parser whole, step;
    resp_parser_init(&whole);
    resp_parser_init(&step);
    size_t used_whole, used = 0;
    cr_assert_eq(parse_copy(&whole, s, len, &used_whole), RESP_OK);
    for (size_t n = 0; n < len; n++) {
      cr_assert_eq(parse_copy(&step, s, n, &used), RESP_AGAIN,
                   "frame %zu at %zu", f, n);
      cr_assert_gt(step.need, n);
    }
    cr_assert_eq(parse_copy(&step, s, len, &used), RESP_OK);
    cr_assert_eq(used, used_whole);
    cr_assert_eq(step.argc, whole.argc);
    for (size_t i = 0; i < whole.argc; i++) {
      cr_assert_eq(step.argv[i].len, whole.argv[i].len);
    }
    cr_assert(!resp_parser_busy(&step));
    resp_parser_free(&whole);
    resp_parser_free(&step);
  }
}

Test(resp, need_covers_a_big_bulk) {
  resp_parser p;
  resp_parser_init(&p);
  static const char head[] = "*2\r\n$3\r\nSET\r\n$100000\r\n";
  size_t used;
  cr_assert_eq(parse_copy(&p, head, sizeof(head) - 1, &used), RESP_AGAIN);
  cr_assert_eq(p.need, sizeof(head) - 1 + 100000 + 2);
  resp_parser_free(&p);
}

Test(resp, pipelined) {
  char buf[4096];
  size_t len = 0;
  for (int i = 0; i < 16; i++)
    len += (size_t)snprintf(buf + len, sizeof(buf) - len,
                            i % 3 == 2 ? "incr n%d\r\n"
                                       : "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n",
                            i < 10 ? 1 : 2, i < 10 ? "k" : "kk");
  resp_parser p;
  resp_parser_init(&p);
  size_t off = 0;
  for (int i = 0; i < 16; i++) {
    size_t used;
    cr_assert_eq(resp_parse(&p, buf + off, len - off, &used), RESP_OK, "cmd %d",
                 i);
    cr_assert_eq(p.argc, 2);
    cr_assert_eq(p.argv[0].len, i % 3 == 2 ? 4u : 3u);
    off += used;
  }
  cr_assert_eq(off, len);
  size_t used;
  cr_assert_eq(resp_parse(&p, buf + off, 0, &used), RESP_AGAIN);
  resp_parser_free(&p);
}

Test(resp, inline_commands) {
  resp_parser p;
  resp_parser_init(&p);
  size_t used;
  cr_assert_eq(parse_copy(&p, "PING\r\n", 6, &used), RESP_OK);
  cr_assert_eq(used, 6);
  expect_args(&p, 1, "PING");
  cr_assert_eq(parse_copy(&p, "  set a \t b  \n", 14, &used), RESP_OK);
  cr_assert_eq(used, 14);
  expect_args(&p, 3, "set", "a", "b");
  /* Blank lines and empty arrays are commands with nothing to run. */
  cr_assert_eq(parse_copy(&p, "\r\nPING\r\n", 8, &used), RESP_OK);
  cr_assert_eq(used, 2);
  cr_assert_eq(p.argc, 0);
  cr_assert_eq(parse_copy(&p, "*0\r\n", 4, &used), RESP_OK);
  cr_assert_eq(used, 4);
  cr_assert_eq(p.argc, 0);
  cr_assert_eq(parse_copy(&p, "*-1\r\n", 5, &used), RESP_OK);
  cr_assert_eq(used, 5);
  cr_assert_eq(p.argc, 0);
  resp_parser_free(&p);
}

static void expect_error(const char *frame, size_t len, const char *msg) {
  resp_parser p;
  resp_parser_init(&p);
  size_t used = 99;
  cr_assert_eq(parse_copy(&p, frame, len, &used), RESP_ERR, "frame %.*s",
               (int)len, frame);
  cr_assert_str_eq(p.error, msg);
  cr_assert_eq(used, 0);
  /* Sticky. */
  cr_assert_eq(resp_parse(&p, "PING\r\n", 6, &used), RESP_ERR);
  resp_parser_reset(&p);
  cr_assert_eq(resp_parse(&p, "PING\r\n", 6, &used), RESP_OK);
  resp_parser_free(&p);
}
#define EXPECT_ERROR(lit, msg) expect_error((lit), sizeof(lit) - 1, (msg))

Test(resp, errors) {
  const char *mb = "ERR Protocol error: invalid multibulk length";
  const char *bl = "ERR Protocol error: invalid bulk length";
  EXPECT_ERROR("*abc\r\n", mb);
  EXPECT_ERROR("*\r\n", mb);
  EXPECT_ERROR("*-2\r\n", mb);
  EXPECT_ERROR("*+1\r\n", mb);
  EXPECT_ERROR("*01\r\n", mb);
  EXPECT_ERROR("*1 \r\n", mb);
  EXPECT_ERROR("*1\rx", mb);
  EXPECT_ERROR("*1048577\r\n", mb);
  EXPECT_ERROR("*99999999999999999999\r\n", mb);
  EXPECT_ERROR("*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'");
  EXPECT_ERROR("*1\r\n$-1\r\n", bl);
  EXPECT_ERROR("*1\r\n$x\r\n", bl);
  EXPECT_ERROR("*1\r\n$\r\n", bl);
  EXPECT_ERROR("*1\r\n$67108865\r\n", bl);
  EXPECT_ERROR("*1\r\n$3\r\nabcd\r\n",
               "ERR Protocol error: expected CRLF after bulk data");
  EXPECT_ERROR("*1\r\n$1\r\naX\n",
               "ERR Protocol error: expected CRLF after bulk data");
  EXPECT_ERROR("*123456789012345678901234567890123",
               "ERR Protocol error: too big mbulk count string");
  EXPECT_ERROR("*1\r\n$123456789012345678901234567890123",
               "ERR Protocol error: too big bulk count string");
  static char line[RESP_MAX_INLINE + 2];
  memset(line, 'a', sizeof(line));
  expect_error(line, sizeof(line),
               "ERR Protocol error: too big inline request");
  line[sizeof(line) - 1] = '\n';
  expect_error(line, sizeof(line),
               "ERR Protocol error: too big inline request");
}

Test(resp, need_of_a_largest_bulk) {
  resp_parser p;
  resp_parser_init(&p);
  size_t used;
  static const char head[] = "*5\r\n$67108864\r\n";
  cr_assert_eq(parse_copy(&p, head, sizeof(head) - 1, &used), RESP_AGAIN);
  cr_assert_eq(p.need, sizeof(head) - 1 + ((size_t)64 << 20) + 2);
  resp_parser_free(&p);
}

Test(resp, limits_accepted) {
  resp_parser p;
  resp_parser_init(&p);
  size_t used;
  cr_assert_eq(parse_copy(&p, "*1048576\r\n", 10, &used), RESP_AGAIN);
  resp_parser_reset(&p);
  cr_assert_eq(parse_copy(&p, "*1\r\n$67108864\r\n", 15, &used), RESP_AGAIN);
  resp_parser_free(&p);
}

Test(resp, many_arguments) {
  size_t n = 5000;
  char *buf = malloc(16 + n * 8);
  cr_assert(buf);
  size_t len = (size_t)sprintf(buf, "*%zu\r\n", n);
  for (size_t i = 0; i < n; i++)
    len += (size_t)sprintf(buf + len, "$1\r\n%c\r\n", (char)('a' + i % 26));
  resp_parser p;
  resp_parser_init(&p);
  size_t used;
  /* In pieces of 7 bytes: the work done so far is kept. */
  for (size_t k = 7; k < len; k += 7)
    cr_assert_eq(resp_parse(&p, buf, k, &used), RESP_AGAIN);
  cr_assert_eq(resp_parse(&p, buf, len, &used), RESP_OK);
  cr_assert_eq(used, len);
  cr_assert_eq(p.argc, n);
  for (size_t i = 0; i < n; i++)
    cr_assert(p.argv[i].len == 1 && p.argv[i].p[0] == 'a' + (int)(i % 26));
  resp_parser_free(&p);
  free(buf);
}

/* Random frames, mutated: the parser must stay in bounds, answer
 * RESP_AGAIN only with need > len, and consume something on RESP_OK. */
Test(resp, random_input) {
  static const char *const seeds[] = {SET_FRAME, "get a\r\n", "*0\r\n",
                                      "*2\r\n$1\r\na\r\n$0\r\n\r\n"};
  uint64_t x = 88172645463325252ull;
  for (int iter = 0; iter < 20000; iter++) {
    char frame[128];
    const char *s = seeds[iter % 4];
    size_t len = strlen(s);
    memcpy(frame, s, len);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    int muts = (int)(x % 4);
    for (int m = 0; m < muts; m++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      static const char alphabet[] = "*$\r\n-0129a ";
      frame[x % len] = alphabet[(x >> 20) % (sizeof(alphabet) - 1)];
    }
    size_t cut = (size_t)(x >> 40) % (len + 1);
    resp_parser p;
    resp_parser_init(&p);
    size_t off = 0;
    for (int steps = 0; steps < 64; steps++) {
      size_t used = 0;
      char *b = malloc(cut - off + 1);
      memcpy(b, frame + off, cut - off);
      int r = resp_parse(&p, b, cut - off, &used);
      if (r == RESP_OK) {
        cr_assert(used > 0 && used <= cut - off);
        for (size_t i = 0; i < p.argc; i++)
          cr_assert(p.argv[i].p >= b &&
                    p.argv[i].p + p.argv[i].len <= b + cut - off);
        off += used;
      } else if (r == RESP_AGAIN) {
        cr_assert(p.need > cut - off);
        free(b);
        if (cut == len)
          break;
        cut = len;
        continue;
      }
      free(b);
      if (r == RESP_ERR)
        break;
    }
    resp_parser_free(&p);
  }
}

Test(resp, integers) {
  int64_t v;
  cr_assert(resp_parse_int("0", 1, &v) && v == 0);
  cr_assert(resp_parse_int("-12", 3, &v) && v == -12);
  cr_assert(resp_parse_int("9223372036854775807", 19, &v) && v == INT64_MAX);
  cr_assert(resp_parse_int("-9223372036854775808", 20, &v) && v == INT64_MIN);
  cr_assert(!resp_parse_int("9223372036854775808", 19, &v));
  cr_assert(!resp_parse_int("-9223372036854775809", 20, &v));
  cr_assert(!resp_parse_int("", 0, &v));
  cr_assert(!resp_parse_int("-", 1, &v));
  cr_assert(!resp_parse_int("-0", 2, &v));
  cr_assert(!resp_parse_int("01", 2, &v));
  cr_assert(!resp_parse_int("+1", 2, &v));
  cr_assert(!resp_parse_int(" 1", 2, &v));
  cr_assert(!resp_parse_int("1a", 2, &v));
  char out[24];
  cr_assert_eq(resp_fmt_int(out, INT64_MIN), 20);
  cr_assert(memcmp(out, "-9223372036854775808", 20) == 0);
}

Test(resp, replies) {
  resp_buf b = {0};
  resp_put_lit(&b, "+OK\r\n");
  resp_put_simple(&b, "PONG", 4);
  resp_put_errorz(&b, "ERR bad\r\nthing");
  resp_put_int(&b, -42);
  resp_put_bulk(&b, "hi", 2);
  resp_put_bulk(&b, "", 0);
  resp_put_null(&b);
  resp_put_array(&b, 3);
  static const char want[] = "+OK\r\n+PONG\r\n-ERR bad  thing\r\n:-42\r\n$2\r\n"
                             "hi\r\n$0\r\n\r\n$-1\r\n*3\r\n";
  cr_assert_eq(b.len, sizeof(want) - 1);
  cr_assert(memcmp(b.data, want, b.len) == 0, "%.*s", (int)b.len, b.data);
  /* Growth past the first allocation keeps what was there. */
  char big[100000];
  memset(big, 'z', sizeof(big));
  resp_put_bulk(&b, big, sizeof(big));
  cr_assert_eq(b.len, sizeof(want) - 1 + 11 + sizeof(big));
  cr_assert(memcmp(b.data, want, sizeof(want) - 1) == 0);
  cr_assert(!b.failed);
  resp_buf_free(&b);
}
