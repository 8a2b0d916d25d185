/*
 * test_example_server.c - examples/server, the small server that
 * docs/embedding.md is built around, end to end over TCP: answers, many
 * clients at once, the per-request and the idle deadline, the cap on a
 * request's size, shutdown on SIGTERM and SIGINT, and its arguments.
 *
 * Each test starts examples/server on port 0 (tests/srv_harness.h: it
 * learns the port from the "listening on" line), with deadlines of a few
 * hundred milliseconds where they are under test.  Lower bounds on when
 * the server hung up are exact (the server cannot time out before its
 * deadline); upper bounds are generous, for a loaded 2-core machine.
 */
#include "srv_harness.h"

#define SERVER "examples/server"
#define GUARD_MS 10000 /* a step that takes longer counts as hung */

static void start(const char *request_ms, const char *idle_ms) {
  const char *argv[] = {SERVER, "0", request_ms, idle_ms, NULL};
  srvh_start(argv, 0);
}

/* Reads exactly the answer want from fd (5 s receive timeout). */
static void expect_answer(int fd, const char *want) {
  size_t len = strlen(want);
  char buf[2048];
  cr_assert_lt(len, sizeof buf);
  ssize_t n = recv(fd, buf, len, MSG_WAITALL);
  cr_assert_eq(n, (ssize_t)len, "answer to '%.*s': %zd bytes (%s), not %zu",
               (int)len - 1, want, n, n < 0 ? strerror(errno) : "closed", len);
  cr_assert_arr_eq(buf, want, len, "answer '%.*s', expected '%s'", (int)n, buf,
                   want);
}

static void request(int fd, const char *line, const char *want) {
  srvh_send_all(fd, line, strlen(line));
  expect_answer(fd, want);
}

/* Waits until the server closes fd (end of file or a reset) and returns
 * when, in ms since t0; -1 if it is still open at t0 + guard_ms.  Data
 * that arrives meanwhile fails the test. */
static int64_t closed_at(int fd, int64_t t0, int guard_ms) {
  for (;;) {
    int64_t left = t0 + guard_ms - srvh_now_ms();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (left <= 0)
      return -1;
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
      return srvh_now_ms() - t0;
    cr_assert(n < 0, "unexpected data from the server: '%c'", c);
  }
}

/* Sends one byte every 50 ms, never a newline, until the server closes
 * the connection; returns when, in ms since the first byte, or -1 if it
 * is still open after guard_ms. */
static int64_t trickle(int fd, int guard_ms) {
  int64_t t0 = srvh_now_ms();
  while (srvh_now_ms() - t0 < guard_ms) {
    if (send(fd, "x", 1, MSG_NOSIGNAL) < 0) {
      cr_assert(errno == EPIPE || errno == ECONNRESET, "send: %s",
                strerror(errno));
      return srvh_now_ms() - t0;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 50) > 0)
      return closed_at(fd, t0, guard_ms);
  }
  return -1;
}

/* Sends sig, reads the server's output to its end into out, and waits for
 * it to exit; returns the ms that took, with its wait status in *status
 * (-1 if it had not exited within GUARD_MS). */
static int64_t stop(int sig, char *out, size_t size, int *status) {
  int64_t t0 = srvh_now_ms();
  size_t len = 0;
  cr_assert_eq(kill(srvh.pid, sig), 0);
  for (;;) {
    struct pollfd p = {.fd = srvh.out, .events = POLLIN};
    int64_t left = t0 + GUARD_MS - srvh_now_ms();
    cr_assert_gt(left, 0, "the server still runs %d ms after signal %d",
                 GUARD_MS, sig);
    if (poll(&p, 1, (int)left) <= 0)
      continue;
    ssize_t n = read(srvh.out, out + len, size - 1 - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || (len += (size_t)n) == size - 1)
      break;
  }
  out[len] = '\0';
  *status = srvh_wait(GUARD_MS);
  return srvh_now_ms() - t0;
}

/* stop(), and the server must have exited 0 within the bound. */
static void stop_cleanly(int sig, char *out, size_t size) {
  int status;
  int64_t ms = stop(sig, out, size, &status);
  cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "after signal %d the server ended with wait status %#x, not "
            "exit status 0",
            sig, status);
  cr_expect_lt(ms, 3000, "the server took %lld ms to stop", (long long)ms);
}

/* stop_cleanly() on SIGTERM, and its summary must contain part. */
static void stop_expecting(const char *part) {
  char out[512];
  stop_cleanly(SIGTERM, out, sizeof out);
  cr_expect(strstr(out, part), "summary: %s", out);
}

TestSuite(example_server, .fini = srvh_kill, .timeout = 60);

Test(example_server, answers_each_line) {
  start("5000", "5000");
  int fd = srvh_connect();
  request(fd, "hello\n", "HELLO\n");
  /* A request in pieces, and pieces of two requests in one send. */
  srvh_send_all(fd, "ab", 2);
  srvh_sleep_ms(20);
  srvh_send_all(fd, "c\nde", 4);
  srvh_sleep_ms(20);
  request(fd, "f\n", "ABC\nDEF\n");
  request(fd, "x\ny\nz\n", "X\nY\nZ\n");
  close(fd);
}

#define CLIENTS 200
#define ROUNDS 3

/* CLIENTS connections open at once, each with a request outstanding at
 * the same time, ROUNDS times; every answer is its own request's. */
Test(example_server, serves_many_clients_at_once) {
  static int fd[CLIENTS];
  char line[64], want[64];
  start("5000", "5000");
  for (int i = 0; i < CLIENTS; i++)
    fd[i] = srvh_connect();
  for (int r = 0; r < ROUNDS; r++) {
    for (int i = 0; i < CLIENTS; i++) {
      snprintf(line, sizeof line, "client %d round %d\n", i, r);
      srvh_send_all(fd[i], line, strlen(line));
    }
    for (int i = 0; i < CLIENTS; i++) {
      snprintf(want, sizeof want, "CLIENT %d ROUND %d\n", i, r);
      expect_answer(fd[i], want);
    }
  }
  stop_expecting("stopped by SIGTERM; connections: 200, answered: "
                 "600,");
  for (int i = 0; i < CLIENTS; i++)
    close(fd[i]);
}

/* Request deadline 400 ms.  A client that keeps sending a byte every
 * 50 ms is dropped at about 400 ms all the same: the deadline is the
 * request's, not each read's.  One that sends its request in three
 * pieces within the deadline is answered. */
Test(example_server, request_deadline_drops_a_trickling_client) {
  start("400", "5000");
  int ok = srvh_connect();
  srvh_send_all(ok, "ab", 2);
  srvh_sleep_ms(50);
  srvh_send_all(ok, "c", 1);
  srvh_sleep_ms(50);
  request(ok, "d\n", "ABCD\n");

  int fd = srvh_connect();
  int64_t at = trickle(fd, 3000);
  cr_assert_neq(at, -1,
                "a client trickling a byte every 50 ms is still "
                "connected after 3 s, with a request deadline of "
                "400 ms");
  cr_expect_geq(at, 400,
                "dropped %lld ms after its first byte, before the "
                "deadline",
                (long long)at);
  cr_expect_leq(at, 2000, "dropped only %lld ms after its first byte",
                (long long)at);
  close(fd);

  request(ok, "still here\n", "STILL HERE\n"); /* the others go on */
  stop_expecting("dropped at the request deadline: 1, at the idle "
                 "deadline: 0,");
  close(ok);
}

/* Idle deadline 600 ms, request deadline 200 ms: a connection that never
 * sends, and one that goes quiet after a request, are closed at about
 * 600 ms, not at the request deadline. */
Test(example_server, idle_deadline_closes_quiet_connections) {
  start("200", "600");
  int64_t t0 = srvh_now_ms();
  int silent = srvh_connect();
  int quiet = srvh_connect();
  request(quiet, "one\n", "ONE\n");
  int64_t t1 = srvh_now_ms();

  int64_t a = closed_at(silent, t0, 4000);
  int64_t b = closed_at(quiet, t1, 4000);
  cr_assert(a != -1 && b != -1, "idle connections still open after 4 s "
                                "with an idle deadline of 600 ms");
  cr_expect_geq(a, 600, "a silent connection closed after %lld ms",
                (long long)a);
  /* t1 is taken after the answer arrived: the deadline may start a
   * little before it. */
  cr_expect_geq(b, 550,
                "a quiet connection closed %lld ms after its "
                "answer",
                (long long)b);
  cr_expect_leq(a, 2500, "closed only after %lld ms", (long long)a);
  cr_expect_leq(b, 2500, "closed only %lld ms after its answer", (long long)b);
  close(silent);
  close(quiet);

  stop_expecting("dropped at the request deadline: 0, at the idle "
                 "deadline: 2,");
}

/* A request of more than 1024 bytes (its newline included) gets an error
 * line and its connection is closed; a request of 1024 is answered, and
 * another client's request in progress is not disturbed. */
Test(example_server, over_long_request_is_refused) {
  static char big[2048], want[2048];
  start("5000", "5000");
  int other = srvh_connect();
  srvh_send_all(other, "part", 4);

  int fd = srvh_connect();
  memset(big, 'x', 1023);
  big[1023] = '\n';
  memset(want, 'X', 1023);
  want[1023] = '\n';
  srvh_send_all(fd, big, 1024);
  expect_answer(fd, want);

  memset(big, 'y', sizeof big);
  memcpy(big, "ok\n", 3);
  srvh_send_all(fd, big, sizeof big);
  expect_answer(fd, "OK\nERR request too long\n");
  cr_expect_neq(closed_at(fd, srvh_now_ms(), 4000), -1,
                "the connection stays open after an over-long request");
  close(fd);

  request(other, "ial\n", "PARTIAL\n");
  stop_expecting("too long: 1,");
  close(other);
}

/* Shuts down on sig with idle clients and clients in the middle of a
 * request (each answered once first, so all were accepted): exit status
 * 0 within the bound, every connection closed, each counted. */
static void shutdown_with_clients(int sig, const char *name) {
  enum { IDLE = 20, BUSY = 20 };
  int fd[IDLE + BUSY];
  char out[512], want[256];
  start("5000", "5000");
  for (int i = 0; i < IDLE + BUSY; i++) {
    fd[i] = srvh_connect();
    request(fd[i], "hi\n", "HI\n");
    if (i >= IDLE)
      srvh_send_all(fd[i], "half a requ", 11);
  }
  int64_t t0 = srvh_now_ms();
  stop_cleanly(sig, out, sizeof out);
  for (int i = 0; i < IDLE + BUSY; i++) {
    int64_t at = closed_at(fd[i], t0, 3000);
    cr_expect_neq(at, -1, "connection %d still open 3 s after signal %d", i,
                  sig);
    close(fd[i]);
  }
  snprintf(want, sizeof want,
           "stopped by %s; connections: 40, answered: 40, dropped at the "
           "request deadline: 0, at the idle deadline: 0, too long: 0, "
           "closed at shutdown: 40\n",
           name);
  cr_expect_str_eq(out, want);
}

Test(example_server, sigterm_ends_it_cleanly) {
  shutdown_with_clients(SIGTERM, "SIGTERM");
}

Test(example_server, sigint_ends_it_cleanly) {
  shutdown_with_clients(SIGINT, "SIGINT");
}

/* Runs the server with bad arguments: exit status 2 and a message on
 * standard error that contains what. */
static void expect_refused(const char *const *argv, const char *what) {
  int p[2];
  char err[512];
  size_t len = 0;
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(p[1], STDERR_FILENO);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(p[1]);
  for (ssize_t n; len < sizeof err - 1 &&
                  (n = read(p[0], err + len, sizeof err - 1 - len)) != 0;)
    if (n > 0)
      len += (size_t)n;
    else if (errno != EINTR)
      break;
  err[len] = '\0';
  close(p[0]);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2,
            "%s: wait status %#x, not exit status 2", what, status);
  cr_expect(strstr(err, what), "no '%s' in its message: %s", what, err);
}

Test(example_server, bad_arguments_exit_2) {
  expect_refused((const char *[]){SERVER, "70000", NULL}, "PORT 70000");
  expect_refused((const char *[]){SERVER, "0", "soon", NULL},
                 "REQUEST_MS soon");
  expect_refused((const char *[]){SERVER, "0", "100", "0", NULL}, "IDLE_MS 0");
  expect_refused((const char *[]){SERVER, "0", "1", "2", "3", NULL}, "usage");
}
