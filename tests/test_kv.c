/*
 * test_kv.c - the kv demo, servers/kv, started as a child ("servers/kv --port
 * 0 --mode MODE --quiet", run from the build directory) and spoken to over
 * TCP: every command, errors, a malformed frame that closes only its own
 * connection, a pipeline answered in order, large values, the three
 * modes, timeouts, and a clean exit on SIGTERM.  Its parser and store are
 * tested as units by test_resp.c and test_kv_store.c.
 */
#include "srv_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>


#define TMO .timeout = 20

/* ------------------------------------------------------------------------ */
/* The server                                                               */
/* ------------------------------------------------------------------------ */

/* Starts servers/kv in the given mode with extra arguments (NULL-ended) and
 * reads its port from the "listening on HOST:PORT" line. */
static void start_server(const char *mode, ...) {
  const char *argv[32];
  int n = 0;
  argv[n++] = "servers/kv";
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
  srvh_start(argv, 0);
}

/* Waits up to ms for the server to exit; its wait status, or -1. */
static int reap_server(int ms) { return srvh_wait(ms); }

static void stop_server(void) { srvh_kill(); }

static int connect_server(void) { return srvh_connect(); }

static void send_all(int fd, const void *p, size_t n) {
  srvh_send_all(fd, p, n);
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
  kill(srvh.pid, SIGTERM);
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
  kill(srvh.pid, SIGTERM);
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
