/*
 * test_echo.c - the echo demo (servers/echo on servers/srv.c), end to end, in
 * each way it runs connections: green threads, kernel threads, a process
 * per connection, and green threads in two worker processes (sharing one
 * listening socket, or with a SO_REUSEPORT socket each).
 *
 * Each test starts servers/echo (the tests run in the build directory) with
 * --port 0 in a process group of its own, learns the port from its
 * "listening on HOST:PORT" line, talks to it over TCP, and kills and reaps
 * the whole group when it ends, whatever happened.  Waits are bounded by
 * generous timeouts that only matter when something is broken.
 */
#include <dirent.h>

#include "srv_harness.h"

#define ECHO_PATH "servers/echo"
#define GUARD_MS 5000 /* how long a step may take before it counts as hung */

/* ------------------------------------------------------------------------ */
/* The server under test                                                    */
/* ------------------------------------------------------------------------ */

/* Kills whatever is left of the server's process group and reaps it. */
static void kill_server(void) { srvh_kill(); }

/*
 * Starts servers/echo with the mode's arguments, then extra's (both
 * NULL-terminated; extra may be NULL).  nofile > 0: RLIMIT_NOFILE of the
 * server.  Returns once it listens, with srvh.port set.
 */
static void start_server(const char *const *mode, const char *const *extra,
                         int nofile) {
  const char *argv[32];
  int argc = 0;

  argv[argc++] = ECHO_PATH;
  argv[argc++] = "--port";
  argv[argc++] = "0";
  for (int i = 0; mode[i]; i++)
    argv[argc++] = mode[i];
  for (int i = 0; extra && extra[i]; i++)
    argv[argc++] = extra[i];
  argv[argc] = NULL;
  cr_assert(argc < 32);
  srvh_start(argv, nofile);
}

/* Waits up to ms for the server to exit; returns its status, or -1 if it
 * is still running. */
static int wait_server(int ms) { return srvh_wait(ms); }

/* Counts the children of process parent, and those of them that are
 * zombies. */
static int children_of(pid_t parent, int *zombies) {
  DIR *d = opendir("/proc");
  int n = 0;

  *zombies = 0;
  cr_assert(d, "opendir /proc: %s", strerror(errno));
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0)
      continue;
    buf[len] = '\0';
    char *p = strrchr(buf, ')'), state;
    int ppid;
    if (p && sscanf(p + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == (int)parent) {
      n++;
      if (state == 'Z')
        ++*zombies;
    }
  }
  closedir(d);
  return n;
}

static bool server_alive(void) { return srvh_alive(); }

/* ------------------------------------------------------------------------ */
/* Clients                                                                  */
/* ------------------------------------------------------------------------ */

static int try_connect(void) { return srvh_try_connect(); }

static int client(void) {
  int fd = try_connect();
  cr_assert(fd >= 0, "connect to port %d: %s", srvh.port, strerror(-fd));
  return fd;
}

/* Waits for events on fd; false on timeout. */
static bool wait_for(int fd, short events, int ms) {
  struct pollfd pfd = {.fd = fd, .events = events};
  int64_t end = srvh_now_ms() + ms;
  for (;;) {
    int64_t left = end - srvh_now_ms();
    if (left < 0)
      left = 0;
    int n = poll(&pfd, 1, (int)left);
    if (n > 0)
      return true;
    if (n == 0)
      return false;
    cr_assert(errno == EINTR, "poll: %s", strerror(errno));
  }
}

static void send_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    cr_assert(wait_for(fd, POLLOUT, GUARD_MS), "send blocked for %d ms",
              GUARD_MS);
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    cr_assert(w > 0, "send: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
}

/* Reads exactly n bytes. */
static void recv_exact(int fd, void *buf, size_t n) {
  char *p = buf;
  while (n > 0) {
    cr_assert(wait_for(fd, POLLIN, GUARD_MS),
              "no echo within %d ms (%zu bytes missing)", GUARD_MS, n);
    ssize_t r = recv(fd, p, n, MSG_DONTWAIT);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    cr_assert(r >= 0, "recv: %s", strerror(errno));
    cr_assert(r > 0, "end of file with %zu echoed bytes missing", n);
    p += r;
    n -= (size_t)r;
  }
}

/* Reads until end of file (or a reset); returns the bytes read, or -1 if
 * it did not come within ms.  fd must be readable without blocking once
 * poll says so (a socket or pipe with a single reader). */
static ssize_t read_to_eof(int fd, void *buf, size_t cap, int ms) {
  size_t len = 0;
  int64_t end = srvh_now_ms() + ms;
  for (;;) {
    int64_t left = end - srvh_now_ms();
    if (left <= 0 || !wait_for(fd, POLLIN, (int)left))
      return -1;
    char sink[4096];
    char *dst = len < cap ? (char *)buf + len : sink;
    size_t room = len < cap ? cap - len : sizeof sink;
    ssize_t r = read(fd, dst, room); /* a socket or a pipe */
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (r <= 0)
      return (ssize_t)len; /* 0: end of file; ECONNRESET counts too */
    len += (size_t)r;
  }
}

static void fill(char *buf, size_t n, unsigned seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)(h_rand(&s) >> 56);
}

/* Sends n bytes of seeded data and checks they come back, sending and
 * receiving at once (so that data larger than the socket buffers works). */
static void echo_check(int fd, size_t n, unsigned seed) {
  char *out = malloc(n), *in = malloc(n);
  size_t sent = 0, got = 0;

  cr_assert(out && in);
  fill(out, n, seed);
  while (got < n) {
    struct pollfd pfd = {.fd = fd,
                         .events = (short)(POLLIN | (sent < n ? POLLOUT : 0))};
    int r = poll(&pfd, 1, GUARD_MS);
    cr_assert(r > 0, "echo of %zu bytes stalled at %zu sent, %zu back", n, sent,
              got);
    if ((pfd.revents & POLLOUT) && sent < n) {
      ssize_t w = send(fd, out + sent, n - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0)
        sent += (size_t)w;
      else
        cr_assert(errno == EAGAIN || errno == EINTR, "send: %s",
                  strerror(errno));
    }
    if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t q = recv(fd, in + got, n - got, MSG_DONTWAIT);
      if (q < 0)
        cr_assert(errno == EAGAIN || errno == EINTR, "recv: %s",
                  strerror(errno));
      else {
        cr_assert(q > 0, "end of file after %zu of %zu echoed bytes", got, n);
        got += (size_t)q;
      }
    }
  }
  cr_assert(memcmp(in, out, n) == 0, "the echo differs from what was sent");
  free(out);
  free(in);
}

/* ------------------------------------------------------------------------ */
/* The modes, and one test of each kind per mode                            */
/* ------------------------------------------------------------------------ */

static const char *const m_green[] = {"--mode", "green", "--workers", "2",
                                      NULL};
static const char *const m_kthread[] = {"--mode", "kthread", NULL};
static const char *const m_process[] = {"--mode", "process", NULL};
static const char *const m_procs[] = {"--mode",  "green", "--workers", "1",
                                      "--procs", "2",     NULL};
static const char *const m_reuseport[] = {
    "--mode", "green", "--workers", "1", "--procs", "2", "--reuseport", NULL};

TestSuite(green, .fini = kill_server, .timeout = 30);
TestSuite(kthread, .fini = kill_server, .timeout = 30);
TestSuite(process, .fini = kill_server, .timeout = 30);
TestSuite(procs, .fini = kill_server, .timeout = 30);
TestSuite(reuseport, .fini = kill_server, .timeout = 30);

#define MODE_TESTS(name)                                                       \
  static void name(const char *const *mode);                                   \
  Test(green, name) { name(m_green); }                                         \
  Test(kthread, name) { name(m_kthread); }                                     \
  Test(process, name) { name(m_process); }                                     \
  Test(procs, name) { name(m_procs); }                                         \
  Test(reuseport, name) { name(m_reuseport); }

/* Whether every thread of process pid blocks signal sig
 * (/proc/PID/task/TID/status, SigBlk); -1 if none could be read. */
static int all_block(pid_t pid, int sig, int *threads) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  if (!d)
    return -1;
  int all = 1;
  *threads = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    int tid = atoi(e->d_name);
    if (tid <= 0)
      continue;
    char sp[96], line[128];
    snprintf(sp, sizeof sp, "/proc/%d/task/%d/status", (int)pid, tid);
    FILE *f = fopen(sp, "r");
    if (!f)
      continue; /* ended meanwhile */
    while (fgets(line, sizeof line, f))
      if (strncmp(line, "SigBlk:", 7) == 0) {
        unsigned long long m = strtoull(line + 7, NULL, 16);
        (*threads)++;
        if (!(m & (1ull << (sig - 1))))
          all = 0;
      }
    fclose(f);
  }
  closedir(d);
  return *threads ? all : -1;
}

/* In kernel-thread mode the stop signals are taken synchronously: every
 * thread blocks them, and the accept loop collects one that is pending
 * (the sigterm_* tests show that it still stops).  With a handler, under
 * ThreadSanitizer, a stop was now and then never acted on, and the server
 * went on accepting (see srv.c). */
Test(kthread, stop_signals_blocked_in_every_thread) {
  enum { N = 4 };
  int fd[N];
  start_server(m_kthread, NULL, 0);
  for (int i = 0; i < N; i++) {
    fd[i] = client();
    echo_check(fd[i], 10, 20 + i);
  }
  int threads = 0;
  cr_expect_eq(all_block(srvh.pid, SIGTERM, &threads), 1,
               "a thread of the server does not block SIGTERM");
  cr_expect_eq(all_block(srvh.pid, SIGINT, &threads), 1,
               "a thread of the server does not block SIGINT");
  cr_expect_gt(threads, N, "only %d threads", threads);
  for (int i = 0; i < N; i++)
    close(fd[i]);
}

/* A small and a large echo on one connection, then one on another. */
MODE_TESTS(round_trip)
static void round_trip(const char *const *mode) {
  start_server(mode, NULL, 0);
  int fd = client();
  send_all(fd, "hello\n", 6);
  char buf[6];
  recv_exact(fd, buf, 6);
  cr_assert(memcmp(buf, "hello\n", 6) == 0);
  echo_check(fd, 1 << 20, 1); /* bigger than any socket buffer */
  close(fd);
  fd = client();
  echo_check(fd, 1000, 2);
  close(fd);
}

/* 50 connections open at once, each echoing data of its own. */
MODE_TESTS(concurrent)
static void concurrent(const char *const *mode) {
  enum { N = 50, LEN = 4096 };
  int fd[N];
  static char out[N][LEN], in[LEN];

  start_server(mode, NULL, 0);
  for (int i = 0; i < N; i++)
    fd[i] = client();
  for (int i = 0; i < N; i++) {
    fill(out[i], LEN, 100 + (unsigned)i);
    send_all(fd[i], out[i], LEN);
  }
  for (int i = N - 1; i >= 0; i--) {
    recv_exact(fd[i], in, LEN);
    cr_assert(memcmp(in, out[i], LEN) == 0, "connection %d: wrong echo", i);
  }
  for (int i = 0; i < N; i++)
    close(fd[i]);

  /* Every connection process ends and is reaped: the server is left with
   * its worker processes (--procs) or no child at all, and no zombie. */
  int want = 0, kids = -1, zombies = -1;
  for (int i = 0; mode[i]; i++)
    if (!strcmp(mode[i], "--procs"))
      want = atoi(mode[i + 1]);
  int64_t end = srvh_now_ms() + GUARD_MS;
  while (srvh_now_ms() < end) {
    kids = children_of(srvh.pid, &zombies);
    if (kids == want && zombies == 0)
      break;
    srvh_sleep_ms(20);
  }
  cr_assert(kids == want && zombies == 0,
            "the server has %d children (%d of them zombies), expected %d "
            "and none",
            kids, zombies, want);
  cr_assert(server_alive());
}

/* The client stops sending: the server echoes what it got, then closes. */
MODE_TESTS(half_close)
static void half_close(const char *const *mode) {
  enum { LEN = 10000 };
  static char out[LEN], in[LEN + 1];

  start_server(mode, NULL, 0);
  int fd = client();
  fill(out, LEN, 7);
  send_all(fd, out, LEN);
  cr_assert_eq(shutdown(fd, SHUT_WR), 0);
  ssize_t n = read_to_eof(fd, in, sizeof in, GUARD_MS);
  cr_assert(n >= 0, "the server did not close after the client's FIN");
  cr_assert_eq(n, LEN, "echoed %zd bytes of %d before closing", n, LEN);
  cr_assert(memcmp(in, out, LEN) == 0);
  close(fd);
}

/* A client that resets its connection mid-stream does not disturb the
 * others, nor new ones. */
MODE_TESTS(reset_mid_stream)
static void reset_mid_stream(const char *const *mode) {
  enum { LEN = 256 * 1024 };
  static char out[LEN];

  start_server(mode, NULL, 0);
  int other = client();
  echo_check(other, 100, 3);

  for (int round = 0; round < 5; round++) {
    int fd = client();
    fill(out, LEN, 4);
    /* As much as fits without reading: the server is mid-echo. */
    ssize_t w = send(fd, out, LEN, MSG_NOSIGNAL | MSG_DONTWAIT);
    cr_assert(w > 0, "send: %s", strerror(errno));
    srvh_sleep_ms(10);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(fd); /* RST */
  }

  echo_check(other, 64 * 1024, 5);
  close(other);
  int fresh = client();
  echo_check(fresh, 1000, 6);
  close(fresh);
  cr_assert(server_alive());
}

/* SIGTERM with a connection that stays open: the server keeps serving it
 * for --drain-ms, then ends it (cancel, shutdown or SIGTERM) and exits 0. */
MODE_TESTS(sigterm_drain)
static void sigterm_drain(const char *const *mode) {
  static const char *const extra[] = {"--drain-ms", "400", NULL};

  start_server(mode, extra, 0);
  int fd = client();
  echo_check(fd, 100, 8);

  int64_t t0 = srvh_now_ms();
  cr_assert_eq(kill(srvh.pid, SIGTERM), 0);
  srvh_sleep_ms(50);
  echo_check(fd, 100, 9); /* still served while draining */
  char buf[16];
  ssize_t n = read_to_eof(fd, buf, sizeof buf, GUARD_MS);
  int64_t closed = srvh_now_ms() - t0;
  cr_assert_eq(n, 0, "the connection was not closed at the end of the drain");
  cr_assert(closed >= 300,
            "the connection was closed after %lld ms, before "
            "the 400 ms drain",
            (long long)closed);

  int status = wait_server(GUARD_MS);
  int64_t took = srvh_now_ms() - t0;
  cr_assert(status != -1, "the server did not exit within %d ms of SIGTERM",
            GUARD_MS);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the server ended with status 0x%x", status);
  cr_assert(took < 3000, "exit took %lld ms", (long long)took);
  cr_assert(!srvh.left, "the server exited before its children were gone");
  close(fd);
}

/* SIGTERM, then the last connection ends by itself: no need to wait for
 * the rest of the drain time. */
MODE_TESTS(sigterm_early)
static void sigterm_early(const char *const *mode) {
  static const char *const extra[] = {"--drain-ms", "4000", NULL};

  start_server(mode, extra, 0);
  int fd = client();
  echo_check(fd, 100, 10);
  int64_t t0 = srvh_now_ms();
  cr_assert_eq(kill(srvh.pid, SIGTERM), 0);
  srvh_sleep_ms(100);
  echo_check(fd, 100, 11);
  close(fd);

  int status = wait_server(GUARD_MS);
  int64_t took = srvh_now_ms() - t0;
  cr_assert(status != -1, "the server did not exit within %d ms of SIGTERM",
            GUARD_MS);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the server ended with status 0x%x", status);
  cr_assert(took < 2000,
            "exit took %lld ms with a 4000 ms drain but no "
            "connection left",
            (long long)took);
  cr_assert(!srvh.left, "the server exited before its children were gone");
  int again = try_connect();
  cr_assert(again < 0, "the server still accepts after it exited");
}

/* SIGTERM with 50 idle connections: each ends at once, and the server
 * exits only once every process it started is gone (reaped, not a zombie
 * left to whoever adopts it). */
MODE_TESTS(sigterm_many_idle)
static void sigterm_many_idle(const char *const *mode) {
  enum { N = 50 };
  int fd[N];

  start_server(mode, NULL, 0);
  for (int i = 0; i < N; i++) {
    fd[i] = client();
    echo_check(fd[i], 10, 12);
  }
  cr_assert_eq(kill(srvh.pid, SIGTERM), 0);
  int status = wait_server(GUARD_MS);
  cr_assert(status != -1, "the server did not exit within %d ms of SIGTERM",
            GUARD_MS);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the server ended with status 0x%x", status);
  cr_assert(!srvh.left, "the server exited before its children were gone");
  for (int i = 0; i < N; i++)
    close(fd[i]);
}

/* --idle-ms: a connection that talks stays; one that is silent for the
 * idle time is closed. */
MODE_TESTS(idle_timeout)
static void idle_timeout(const char *const *mode) {
  static const char *const extra[] = {"--idle-ms", "300", NULL};

  start_server(mode, extra, 0);
  int fd = client();
  for (int i = 0; i < 4; i++) {
    echo_check(fd, 10, 20 + (unsigned)i);
    srvh_sleep_ms(100);
  }
  int64_t t0 = srvh_now_ms();
  char buf[16];
  ssize_t n = read_to_eof(fd, buf, sizeof buf, GUARD_MS);
  int64_t took = srvh_now_ms() - t0;
  cr_assert_eq(n, 0, "the idle connection was not closed");
  cr_assert(took >= 50 && took < 2000,
            "the idle connection was closed after %lld ms (idle 300 ms, "
            "100 ms of which had passed)",
            (long long)took);
  close(fd);
  cr_assert(server_alive());
}

/* Out of file descriptors: the server backs off, keeps serving the
 * connections it has, and takes new ones once fds are free again. */
MODE_TESTS(out_of_fds)
static void out_of_fds(const char *const *mode) {
  enum { N = 48 };
  int fd[N];

  start_server(mode, NULL, 32);
  for (int i = 0; i < N; i++)
    fd[i] = client();         /* the kernel completes them into the backlog */
  echo_check(fd[0], 100, 30); /* the first one is served */
  srvh_sleep_ms(300);              /* the server runs into its fd limit */
  cr_assert(server_alive(), "the server died when it ran out of fds");
  echo_check(fd[0], 100, 31);
  for (int i = 0; i < N; i++)
    close(fd[i]);

  int64_t end = srvh_now_ms() + GUARD_MS;
  int fresh = client();
  /* Served once the closed connections ahead of it are accepted and
   * ended. */
  echo_check(fresh, 1000, 32);
  cr_assert(srvh_now_ms() < end);
  cr_assert(server_alive());
  close(fresh);

  /* And it still shuts down cleanly. */
  cr_assert_eq(kill(srvh.pid, SIGTERM), 0);
  int status = wait_server(GUARD_MS);
  cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "after running out of fds, SIGTERM gave status 0x%x", status);
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* Runs servers/echo with args; returns its exit status and what it wrote to
 * stderr. */
static int run_echo(const char *const *args, char *err, size_t cap) {
  const char *argv[16];
  int argc = 0, p[2];

  argv[argc++] = ECHO_PATH;
  for (int i = 0; args[i]; i++)
    argv[argc++] = args[i];
  argv[argc] = NULL;
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0)
      dup2(devnull, STDOUT_FILENO);
    alarm(10);
    execv(ECHO_PATH, (char **)argv);
    _exit(127);
  }
  close(p[1]);
  ssize_t n = read_to_eof(p[0], err, cap - 1, 10000);
  err[n > 0 ? n : 0] = '\0';
  close(p[0]);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    cr_assert_eq(errno, EINTR);
  return status;
}

Test(options, bad_values_exit_2) {
  static const struct {
    const char *args[5];
    const char *want[2]; /* what the message must name */
  } cases[] = {
      {{"--mode", "fibers"}, {"--mode", "fibers"}},
      {{"--workers", "lots"}, {"--workers", "lots"}},
      {{"--port", "70000"}, {"--port", "70000"}},
      {{"--idle-ms", "-1"}, {"--idle-ms", "-1"}},
      {{"--drain-ms=1x"}, {"--drain-ms", "1x"}},
      {{"--backlog", "0"}, {"--backlog", "0"}},
      {{"--procs", "0"}, {"--procs", "0"}},
      {{"--no-such-option"}, {"--no-such-option", NULL}},
      {{"--mode", "kthread", "--procs", "2"}, {"--procs", NULL}},
      {{"--workers"}, {"--workers", NULL}},
  };
  char err[2048];

  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int status = run_echo(cases[i].args, err, sizeof err);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 2,
              "case %zu (%s): status 0x%x, not exit 2", i, cases[i].args[0],
              status);
    for (int k = 0; k < 2; k++)
      if (cases[i].want[k])
        cr_expect(strstr(err, cases[i].want[k]) != NULL,
                  "case %zu: the message does not name '%s': %s", i,
                  cases[i].want[k], err);
  }
}
