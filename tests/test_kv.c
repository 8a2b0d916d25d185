/*
 * test_kv.c - the kv demo: its RESP parser and reply helpers (valid
 * frames, the same result a byte at a time, pipelines, inline commands,
 * each protocol error, random input), its store (with the time passed in,
 * so expiry needs no sleeping), and demos/kv itself, started as a child
 * ("demos/kv --port 0 --mode MODE --quiet", run from the build directory)
 * and spoken to over TCP: every command, errors, a malformed frame that
 * closes only its own connection, a pipeline answered in order, the three
 * modes, and a clean exit on SIGTERM.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "kv_store.h"
#include "resp.h"

#define TMO .timeout = 20

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

/* ------------------------------------------------------------------------ */
/* Store                                                                    */
/* ------------------------------------------------------------------------ */

static char got[256];
static size_t got_len;
static void copy_value(void *arg, const char *v, size_t n) {
  (void)arg;
  got_len = n < sizeof(got) ? n : sizeof(got);
  memcpy(got, v, got_len);
}

static bool get_is(kv_store *s, const char *k, const char *want, int64_t now) {
  got_len = 0;
  if (!kv_get(s, k, strlen(k), now, copy_value, NULL))
    return want == NULL;
  return want && got_len == strlen(want) && memcmp(got, want, got_len) == 0;
}

#define SET(s, k, v, exp, fl, now)                                             \
  kv_set((s), (k), strlen(k), (v), strlen(v), (exp), (fl), (now))

Test(store, set_get_del_exists) {
  kv_store *s = kv_create();
  cr_assert(s);
  cr_assert(get_is(s, "a", NULL, 1));
  cr_assert_eq(SET(s, "a", "1", 0, 0, 1), 1);
  cr_assert(get_is(s, "a", "1", 1));
  cr_assert_eq(SET(s, "a", "a longer value", 0, 0, 1), 1);
  cr_assert(get_is(s, "a", "a longer value", 1));
  cr_assert_eq(SET(s, "a", "", 0, 0, 1), 1);
  cr_assert(get_is(s, "a", "", 1));
  cr_assert_eq(kv_exists(s, "a", 1, 1), 1);
  cr_assert_eq(kv_exists(s, "b", 1, 1), 0);
  cr_assert_eq(kv_del(s, "a", 1, 1), 1);
  cr_assert_eq(kv_del(s, "a", 1, 1), 0);
  cr_assert(get_is(s, "a", NULL, 1));
  cr_assert_eq(kv_count(s), 0);
  /* Binary keys: "k\0x" and "k\0y" differ. */
  cr_assert_eq(kv_set(s, "k\0x", 3, "1", 1, 0, 0, 1), 1);
  cr_assert_eq(kv_exists(s, "k\0y", 3, 1), 0);
  cr_assert_eq(kv_exists(s, "k", 1, 1), 0);
  kv_destroy(s);
}

Test(store, nx_xx) {
  kv_store *s = kv_create();
  cr_assert_eq(SET(s, "k", "v", 0, KV_XX, 1), 0);
  cr_assert(get_is(s, "k", NULL, 1));
  cr_assert_eq(SET(s, "k", "v", 0, KV_NX, 1), 1);
  cr_assert_eq(SET(s, "k", "w", 0, KV_NX, 1), 0);
  cr_assert(get_is(s, "k", "v", 1));
  cr_assert_eq(SET(s, "k", "w", 0, KV_XX, 1), 1);
  cr_assert(get_is(s, "k", "w", 1));
  kv_destroy(s);
}

Test(store, expiry) {
  kv_store *s = kv_create();
  cr_assert_eq(SET(s, "k", "v", 1100, 0, 1000), 1);
  cr_assert_eq(kv_ttl(s, "k", 1, 1000), 100);
  cr_assert(get_is(s, "k", "v", 1099));
  cr_assert(get_is(s, "k", NULL, 1100));
  cr_assert_eq(kv_ttl(s, "k", 1, 1100), -2);
  cr_assert_eq(kv_count(s), 0); /* removed when touched */
  /* An expired key is absent for NX, EXISTS, DEL and INCR. */
  cr_assert_eq(SET(s, "k", "5", 2000, 0, 1000), 1);
  cr_assert_eq(SET(s, "k", "v", 0, KV_NX, 2000), 1);
  cr_assert_eq(kv_ttl(s, "k", 1, 2000), -1);
  cr_assert_eq(SET(s, "k", "5", 3000, 0, 2000), 1);
  cr_assert_eq(kv_exists(s, "k", 1, 3000), 0);
  cr_assert_eq(SET(s, "k", "5", 4000, 0, 3000), 1);
  cr_assert_eq(kv_del(s, "k", 1, 4000), 0);
  cr_assert_eq(SET(s, "k", "5", 5000, 0, 4000), 1);
  int64_t v;
  cr_assert_eq(kv_incrby(s, "k", 1, 1, 5000, &v), 0);
  cr_assert_eq(v, 1);
  /* INCR keeps the expiry; SET without one drops it. */
  cr_assert_eq(SET(s, "k", "5", 6000, 0, 5000), 1);
  cr_assert_eq(kv_incrby(s, "k", 1, 1, 5000, &v), 0);
  cr_assert_eq(v, 6);
  cr_assert_eq(kv_ttl(s, "k", 1, 5000), 1000);
  cr_assert_eq(SET(s, "k", "5", 0, 0, 5000), 1);
  cr_assert_eq(kv_ttl(s, "k", 1, 5000), -1);
  kv_destroy(s);
}

Test(store, incr) {
  kv_store *s = kv_create();
  int64_t v;
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), 0);
  cr_assert_eq(v, 1);
  cr_assert_eq(kv_incrby(s, "n", 1, -3, 1, &v), 0);
  cr_assert_eq(v, -2);
  cr_assert(get_is(s, "n", "-2", 1));
  cr_assert_eq(SET(s, "n", "9223372036854775806", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), 0);
  cr_assert_eq(v, INT64_MAX);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -ERANGE);
  cr_assert(get_is(s, "n", "9223372036854775807", 1));
  cr_assert_eq(SET(s, "n", "-9223372036854775808", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, -1, 1, &v), -ERANGE);
  cr_assert_eq(SET(s, "n", "abc", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -EINVAL);
  cr_assert_eq(SET(s, "n", " 1", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -EINVAL);
  cr_assert_eq(SET(s, "n", "", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1, 1, &v), -EINVAL);
  /* A one-byte value grows to many digits. */
  cr_assert_eq(SET(s, "n", "9", 0, 0, 1), 1);
  cr_assert_eq(kv_incrby(s, "n", 1, 1000000000000, 1, &v), 0);
  cr_assert(get_is(s, "n", "1000000000009", 1));
  kv_destroy(s);
}

Test(store, many_keys) {
  kv_store *s = kv_create();
  char k[32], v[32];
  for (int i = 0; i < 100000; i++) {
    snprintf(k, sizeof(k), "key:%d", i);
    snprintf(v, sizeof(v), "value %d", i * 7);
    cr_assert_eq(SET(s, k, v, i % 2 ? 50 : 0, 0, 1), 1);
  }
  cr_assert_eq(kv_count(s), 100000);
  for (int i = 0; i < 100000; i += 37) {
    snprintf(k, sizeof(k), "key:%d", i);
    snprintf(v, sizeof(v), "value %d", i * 7);
    cr_assert(get_is(s, k, v, 10), "%s", k);
    cr_assert(get_is(s, k, i % 2 ? NULL : v, 50), "%s", k);
  }
  /* A big value, replaced by a small one and back. */
  size_t big = (size_t)1 << 20;
  char *b = malloc(big);
  memset(b, 'q', big);
  cr_assert_eq(kv_set(s, "big", 3, b, big, 0, 0, 1), 1);
  cr_assert_eq(SET(s, "big", "small", 0, 0, 1), 1);
  cr_assert(get_is(s, "big", "small", 1));
  cr_assert_eq(kv_set(s, "big", 3, b, big, 0, 0, 1), 1);
  got_len = 0;
  cr_assert_eq(kv_get(s, "big", 3, 1, copy_value, NULL), 1);
  cr_assert_eq(got_len, sizeof(got));
  free(b);
  kv_destroy(s);
}

struct incr_arg {
  kv_store *s;
  int n;
};

static void *incr_many(void *p) {
  struct incr_arg *a = p;
  int64_t v;
  for (int i = 0; i < a->n; i++) {
    TCHECK_EQ(kv_incrby(a->s, "c", 1, 1, 1, &v), 0);
    char k[16];
    snprintf(k, sizeof(k), "t%d", i % 64);
    TCHECK(kv_set(a->s, k, strlen(k), "v", 1, 0, 0, 1) == 1);
  }
  return NULL;
}

/* Kernel threads and green threads share one store. */
Test(store, concurrent, TMO) {
  kv_store *s = kv_create();
  struct incr_arg a = {s, 20000};
  cr_assert_eq(weft_init(&(weft_config){.workers = 2}), 0);
  pthread_t t[2];
  weft_gthread g[4];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&t[i], NULL, incr_many, &a), 0);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_spawn(&g[i], NULL, incr_many, &a), 0);
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(weft_join(g[i], NULL), 0);
  weft_shutdown();
  EXPECT_NO_THREAD_FAILURES();
  char want[32];
  snprintf(want, sizeof(want), "%d", 6 * a.n);
  cr_assert(get_is(s, "c", want, 1));
  kv_destroy(s);
}

/* ------------------------------------------------------------------------ */
/* The server                                                               */
/* ------------------------------------------------------------------------ */

static pid_t srv_pid = -1;
static int srv_out = -1;
static int srv_port;

/* Starts demos/kv in the given mode with extra arguments (NULL-ended) and
 * reads its port from the "listening on HOST:PORT" line. */
static void start_server(const char *mode, ...) {
  const char *argv[32];
  int n = 0;
  argv[n++] = "demos/kv";
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--mode";
  argv[n++] = mode;
  argv[n++] = "--quiet";
  va_list ap;
  va_start(ap, mode);
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 30)
    argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;

  int pfd[2];
  cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    dup2(pfd[1], STDOUT_FILENO);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(pfd[1]);
  srv_pid = pid;
  srv_out = pfd[0];

  char line[256];
  size_t len = 0;
  int64_t end = weft_now() + MS(10000);
  while (len < sizeof(line) - 1 && !memchr(line, '\n', len)) {
    int64_t left = (end - weft_now()) / MS(1);
    cr_assert_gt(left, 0, "no \"listening on\" line from demos/kv");
    struct pollfd p = {.fd = srv_out, .events = POLLIN};
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    ssize_t r = read(srv_out, line + len, sizeof(line) - 1 - len);
    cr_assert_gt(r, 0, "demos/kv exited before listening");
    len += (size_t)r;
  }
  line[len] = '\0';
  cr_assert(strncmp(line, "listening on ", 13) == 0, "got: %s", line);
  char *colon = strrchr(line, ':');
  cr_assert(colon);
  srv_port = atoi(colon + 1);
  cr_assert_gt(srv_port, 0);
}

/* Waits up to ms for the server to exit; its wait status, or -1. */
static int reap_server(int ms) {
  for (int i = 0; i < ms; i++) {
    int st;
    pid_t r = waitpid(srv_pid, &st, WNOHANG);
    if (r == srv_pid) {
      srv_pid = -1;
      return st;
    }
    usleep(1000);
  }
  return -1;
}

static void stop_server(void) {
  if (srv_pid > 0) {
    kill(srv_pid, SIGKILL);
    waitpid(srv_pid, NULL, 0);
    srv_pid = -1;
  }
  if (srv_out >= 0) {
    close(srv_out);
    srv_out = -1;
  }
}

static int connect_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)srv_port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0,
               "connect: %s", strerror(errno));
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t r = send(fd, c, n, MSG_NOSIGNAL);
    cr_assert_gt(r, 0, "send: %s", strerror(errno));
    c += r;
    n -= (size_t)r;
  }
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

/* Reads exactly n bytes (or fails the test). */
static void recv_exact(int fd, char *buf, size_t n) {
  size_t k = 0;
  while (k < n) {
    ssize_t r = recv(fd, buf + k, n - k, 0);
    cr_assert_gt(r, 0, "recv after %zu of %zu bytes (%.*s): %s", k, n, (int)k,
                 buf, r < 0 ? strerror(errno) : "end of stream");
    k += (size_t)r;
  }
}

static void expect_reply(int fd, const char *want, size_t n) {
  char *buf = malloc(n + 1);
  recv_exact(fd, buf, n);
  buf[n] = '\0';
  cr_assert(memcmp(buf, want, n) == 0, "got \"%s\"\nwanted \"%.*s\"", buf,
            (int)n, want);
  free(buf);
}

/* Appends a multibulk command made of the NULL-ended arguments. */
static size_t build(char *buf, size_t cap, va_list ap) {
  const char *args[64];
  int n = 0;
  const char *a;
  while ((a = va_arg(ap, const char *)) && n < 64)
    args[n++] = a;
  size_t len = (size_t)snprintf(buf, cap, "*%d\r\n", n);
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, cap - len, "$%zu\r\n%s\r\n",
                            strlen(args[i]), args[i]);
  cr_assert_lt(len, cap);
  return len;
}

/* Sends one command and checks the reply's exact bytes. */
static void cmd(int fd, const char *want, ...) {
  char buf[4096];
  va_list ap;
  va_start(ap, want);
  size_t len = build(buf, sizeof(buf), ap);
  va_end(ap);
  send_all(fd, buf, len);
  expect_reply(fd, want, strlen(want));
}

static void expect_eof(int fd) {
  char c;
  ssize_t r = recv(fd, &c, 1, 0);
  cr_assert_eq(r, 0, "expected the connection closed (got %zd)", r);
}

TestSuite(server, .fini = stop_server, .timeout = 20);

Test(server, commands) {
  start_server("green", NULL);
  int fd = connect_server();
  cmd(fd, "+PONG\r\n", "PING", NULL);
  cmd(fd, "$5\r\nhello\r\n", "ping", "hello", NULL);
  cmd(fd, "$3\r\nh i\r\n", "ECHO", "h i", NULL);
  cmd(fd, "$-1\r\n", "GET", "k", NULL);
  cmd(fd, "+OK\r\n", "SET", "k", "v1", NULL);
  cmd(fd, "$2\r\nv1\r\n", "get", "k", NULL);
  cmd(fd, "$-1\r\n", "SET", "k", "v2", "NX", NULL);
  cmd(fd, "+OK\r\n", "SET", "k", "v2", "xx", NULL);
  cmd(fd, "$2\r\nv2\r\n", "GET", "k", NULL);
  cmd(fd, "$-1\r\n", "SET", "other", "v", "XX", NULL);
  cmd(fd, "+OK\r\n", "SET", "k2", "x", "EX", "100", NULL);
  cmd(fd, ":2\r\n", "EXISTS", "k", "k2", NULL);
  cmd(fd, ":3\r\n", "EXISTS", "k", "k", "k2", "nope", NULL);
  cmd(fd, ":2\r\n", "DEL", "k", "k2", "nope", NULL);
  cmd(fd, ":0\r\n", "EXISTS", "k", NULL);
  cmd(fd, ":1\r\n", "INCR", "n", NULL);
  cmd(fd, ":2\r\n", "INCR", "n", NULL);
  cmd(fd, ":1\r\n", "DECR", "n", NULL);
  cmd(fd, ":-1\r\n", "DECR", "m", NULL);
  cmd(fd, "+OK\r\n", "SET", "s", "abc", NULL);
  cmd(fd, "-ERR value is not an integer or out of range\r\n", "INCR", "s",
      NULL);
  cmd(fd, "+OK\r\n", "SET", "big", "9223372036854775807", NULL);
  cmd(fd, "-ERR increment or decrement would overflow\r\n", "INCR", "big",
      NULL);
  cmd(fd, "+OK\r\n", "MSET", "a", "1", "b", "2", NULL);
  cmd(fd, "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n2\r\n", "MGET", "a", "zz", "b", NULL);
  cmd(fd, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n", "CONFIG", "GET", "save", NULL);
  cmd(fd, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n", "config", "get",
      "appendonly", NULL);
  cmd(fd, "*0\r\n", "CONFIG", "GET", "maxmemory", NULL);
  cmd(fd, "*0\r\n", "COMMAND", NULL);
  cmd(fd, "*0\r\n", "COMMAND", "DOCS", NULL);
  /* Inline commands too. */
  static const char inl[] = "set il  one\r\nget il\n";
  send_all(fd, inl, sizeof(inl) - 1);
  expect_reply(fd, "+OK\r\n$3\r\none\r\n", 14);
  cmd(fd, "+OK\r\n", "QUIT", NULL);
  expect_eof(fd);
  close(fd);
}

Test(server, errors) {
  start_server("green", NULL);
  int fd = connect_server();
  cmd(fd, "-ERR wrong number of arguments for 'get' command\r\n", "GET", NULL);
  cmd(fd, "-ERR wrong number of arguments for 'get' command\r\n", "GET", "a",
      "b", NULL);
  cmd(fd, "-ERR wrong number of arguments for 'set' command\r\n", "SET", "a",
      NULL);
  cmd(fd, "-ERR wrong number of arguments for 'mset' command\r\n", "MSET", "a",
      "1", "b", NULL);
  cmd(fd, "-ERR wrong number of arguments for 'del' command\r\n", "DEL", NULL);
  cmd(fd, "-ERR wrong number of arguments for 'ping' command\r\n", "PING", "a",
      "b", NULL);
  cmd(fd, "-ERR wrong number of arguments for 'incr' command\r\n", "INCR",
      NULL);
  cmd(fd,
      "-ERR unknown command 'foo', with args beginning with: 'a' 'b c' \r\n",
      "foo", "a", "b c", NULL);
  cmd(fd, "-ERR unknown command 'nope', with args beginning with: \r\n", "nope",
      NULL);
  cmd(fd, "-ERR syntax error\r\n", "SET", "a", "b", "NX", "XX", NULL);
  cmd(fd, "-ERR syntax error\r\n", "SET", "a", "b", "EX", "1", "PX", "5", NULL);
  cmd(fd, "-ERR syntax error\r\n", "SET", "a", "b", "EX", NULL);
  cmd(fd, "-ERR syntax error\r\n", "SET", "a", "b", "FOO", NULL);
  cmd(fd, "-ERR value is not an integer or out of range\r\n", "SET", "a", "b",
      "EX", "x", NULL);
  cmd(fd, "-ERR invalid expire time in 'set' command\r\n", "SET", "a", "b",
      "PX", "0", NULL);
  cmd(fd, "-ERR invalid expire time in 'set' command\r\n", "SET", "a", "b",
      "EX", "-5", NULL);
  cmd(fd, "-ERR unknown subcommand 'SET'. Try CONFIG HELP.\r\n", "CONFIG",
      "SET", "a", NULL);
  cmd(fd, "$-1\r\n", "GET", "a", NULL); /* none of the bad SETs did a thing */
  close(fd);
}

Test(server, malformed_frame_closes_only_its_connection) {
  start_server("green", NULL);
  int good = connect_server();
  int bad = connect_server();
  cmd(good, "+OK\r\n", "SET", "k", "v", NULL);
  /* The reply to the command before the bad frame comes first. */
  static const char frame[] = "*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n";
  send_all(bad, frame, sizeof(frame) - 1);
  static const char want[] =
      "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n";
  expect_reply(bad, want, sizeof(want) - 1);
  expect_eof(bad);
  close(bad);
  cmd(good, "$1\r\nv\r\n", "GET", "k", NULL);
  close(good);
}

Test(server, pipeline_in_order) {
  start_server("green", NULL);
  int fd = connect_server();
  char req[4096], want[4096];
  size_t rl = 0, wl = 0;
  for (int i = 0; i < 16; i++) {
    switch (i % 4) {
    case 0:
      rl += (size_t)snprintf(req + rl, sizeof(req) - rl,
                             "*3\r\n$3\r\nSET\r\n$3\r\nk%02d\r\n$2\r\n%02d\r\n",
                             i, i);
      wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "+OK\r\n");
      break;
    case 1:
      rl += (size_t)snprintf(req + rl, sizeof(req) - rl,
                             "*2\r\n$3\r\nGET\r\n$3\r\nk%02d\r\n", i - 1);
      wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "$2\r\n%02d\r\n",
                             i - 1);
      break;
    case 2:
      rl += (size_t)snprintf(req + rl, sizeof(req) - rl,
                             "*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n");
      wl +=
          (size_t)snprintf(want + wl, sizeof(want) - wl, ":%d\r\n", i / 4 + 1);
      break;
    default:
      rl += (size_t)snprintf(req + rl, sizeof(req) - rl, "PING\r\n");
      wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "+PONG\r\n");
    }
  }
  send_all(fd, req, rl);
  expect_reply(fd, want, wl);
  close(fd);
}

Test(server, split_frames_and_big_values) {
  start_server("green", NULL);
  int fd = connect_server();
  /* A command in three pieces. */
  send_str(fd, "*2\r\n$4\r\nEC");
  usleep(20000);
  send_str(fd, "HO\r\n$5\r\nhel");
  usleep(20000);
  send_str(fd, "lo\r\n");
  expect_reply(fd, "$5\r\nhello\r\n", 11);
  /* A 3 MiB value goes in and comes back, also pipelined with a GET. */
  size_t n = (size_t)3 << 20;
  char *req = malloc(n + 200);
  size_t len =
      (size_t)sprintf(req, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%zu\r\n", n);
  for (size_t i = 0; i < n; i++)
    req[len + i] = (char)('a' + i % 26);
  len += n;
  len += (size_t)sprintf(req + len, "\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
  send_all(fd, req, len);
  char head[32];
  int hl = snprintf(head, sizeof(head), "+OK\r\n$%zu\r\n", n);
  expect_reply(fd, head, (size_t)hl);
  char *body = malloc(n + 2);
  recv_exact(fd, body, n + 2);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(body[i], (char)('a' + i % 26), "byte %zu", i);
  cr_assert(body[n] == '\r' && body[n + 1] == '\n');
  free(body);
  free(req);
  cmd(fd, "+PONG\r\n", "PING", NULL);
  close(fd);
}

/* An MGET of large values goes out in pieces as it is built: every byte
 * still comes in order, across the flushes, with nulls where keys miss. */
Test(server, mget_of_large_values_in_pieces) {
  start_server("green", "--workers", "1", NULL);
  int fd = connect_server();
  enum { NV = 6, VN = 100 << 10 };
  static char req[VN + 100], want[NV * (VN + 32) + 64];
  for (int k = 0; k < NV; k++) {
    size_t len = (size_t)sprintf(req, "*3\r\n$3\r\nSET\r\n$2\r\nk%d\r\n$%d\r\n",
                                 k, VN);
    memset(req + len, 'A' + k, VN);
    len += VN;
    len += (size_t)sprintf(req + len, "\r\n");
    send_all(fd, req, len);
    expect_reply(fd, "+OK\r\n", 5);
  }
  /* MGET k0 nope k1 nope k2 ... : 2 * NV keys. */
  size_t len = (size_t)sprintf(req, "*%d\r\n$4\r\nMGET\r\n", 2 * NV + 1);
  size_t wl = (size_t)sprintf(want, "*%d\r\n", 2 * NV);
  for (int k = 0; k < NV; k++) {
    len += (size_t)sprintf(req + len, "$2\r\nk%d\r\n$4\r\nnope\r\n", k);
    wl += (size_t)sprintf(want + wl, "$%d\r\n", VN);
    memset(want + wl, 'A' + k, VN);
    wl += VN;
    wl += (size_t)sprintf(want + wl, "\r\n$-1\r\n");
  }
  send_all(fd, req, len);
  char *reply = malloc(wl);
  recv_exact(fd, reply, wl);
  for (size_t i = 0; i < wl; i++)
    cr_assert_eq(reply[i], want[i], "byte %zu of %zu", i, wl);
  free(reply);
  cmd(fd, "+PONG\r\n", "PING", NULL);
  close(fd);
}

Test(server, expiry) {
  start_server("green", NULL);
  int fd = connect_server();
  cmd(fd, "+OK\r\n", "SET", "k", "v", "PX", "100", NULL);
  cmd(fd, "+OK\r\n", "SET", "long", "v", "EX", "100", NULL);
  cmd(fd, "$1\r\nv\r\n", "GET", "k", NULL);
  usleep(400000);
  cmd(fd, "$-1\r\n", "GET", "k", NULL);
  cmd(fd, "$1\r\nv\r\n", "GET", "long", NULL);
  close(fd);
}

/* SET/GET in every mode; a second connection sees the first one's keys
 * except in process mode, where each connection has a store of its own. */
static void modes_check(const char *mode, bool shared) {
  start_server(mode, NULL);
  int a = connect_server();
  cmd(a, "+OK\r\n", "SET", "mode", mode, NULL);
  char want[64];
  snprintf(want, sizeof(want), "$%zu\r\n%s\r\n", strlen(mode), mode);
  cmd(a, want, "GET", "mode", NULL);
  int b = connect_server();
  cmd(b, shared ? want : "$-1\r\n", "GET", "mode", NULL);
  close(a);
  close(b);
  kill(srv_pid, SIGTERM);
  int st = reap_server(10000);
  cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
            "%s: wait status %d", mode, st);
}

Test(server, green) { modes_check("green", true); }
Test(server, kthread) { modes_check("kthread", true); }
Test(server, process) { modes_check("process", false); }

Test(server, sigterm_exits_zero_with_an_idle_client) {
  start_server("green", "--drain-ms", "100", NULL);
  int fd = connect_server();
  cmd(fd, "+PONG\r\n", "PING", NULL);
  kill(srv_pid, SIGTERM);
  int st = reap_server(10000);
  cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %d",
            st);
  close(fd);
}

Test(server, idle_timeout) {
  start_server("green", "--idle-ms", "100", NULL);
  int fd = connect_server();
  cmd(fd, "+PONG\r\n", "PING", NULL);
  int64_t t0 = weft_now();
  expect_eof(fd);
  cr_assert_lt(weft_now() - t0, MS(3000));
  close(fd);
}

static int64_t kv_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --idle-ms bounds a whole command, not each read: a client that trickles
 * one byte of a command every 100 ms is closed within about the bound,
 * not held forever (each byte used to start the wait over). */
Test(server, trickled_command_is_bounded) {
  start_server("green", "--idle-ms", "300", NULL);
  int fd = connect_server();
  const char *frame = "*2\r\n$4\r\nECHO\r\n$40\r\n"
                      "0123456789012345678901234567890123456789\r\n";
  int64_t t0 = kv_now_ms();
  bool closed = false;
  for (size_t i = 0; frame[i] && kv_now_ms() - t0 < 5000; i++) {
    if (send(fd, frame + i, 1, MSG_NOSIGNAL) < 0) {
      closed = true;
      break;
    }
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 100) > 0) {
      char b[64];
      ssize_t k = recv(fd, b, sizeof b, 0);
      cr_assert(k <= 0, "the server answered a partial command");
      closed = true;
      break;
    }
  }
  int64_t took = kv_now_ms() - t0;
  cr_expect(closed, "a trickled command kept its connection %lld ms",
            (long long)took);
  cr_expect(took < 4000, "closed after %lld ms", (long long)took);
  close(fd);
}
