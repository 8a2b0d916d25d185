/*
 * conn_hold.c - opens many idle keep-alive HTTP connections and holds them,
 * so that a script can read what they cost the server.
 *
 *   bench/conn_hold --port P [--host ADDR] [-n N] [--window W]
 *                   [--timeout S] [--max-hold S] [--signal-only]
 *
 * Opens N connections (at most W connecting or waiting for their answer at
 * once), sends "GET / HTTP/1.1" on each and reads the whole response
 * (headers and a Content-Length body), and keeps every connection that got
 * its answer open.  Then it prints one line to stdout, "held K of N", and
 * waits: until standard input reaches end of file, a SIGTERM or SIGINT, or
 * --max-hold seconds (default 120; a safety net).  --signal-only ignores
 * standard input (for scripts that start it in the background, where
 * standard input is /dev/null).  Before closing, it counts how many of the
 * held connections the server has closed meanwhile and says so on stderr.
 *
 * It uses plain non-blocking sockets and epoll, not weft, so that the
 * client's own costs stay out of the way and it runs anywhere.
 * Exit status: 0 if every connection got its answer and stayed open, 1
 * otherwise, 2 for bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RESP_MAX 2048

enum state { IDLE, CONNECTING, SENDING, READING, HELD, FAILED };

struct conn {
  int fd;
  enum state st;
  int sent; /* bytes of the request sent */
  int got;  /* bytes of the response read */
  char *buf;
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(const char *prog) {
  fprintf(stderr,
          "usage: %s --port P [--host ADDR] [-n N] [--window W] "
          "[--timeout S] [--max-hold S] [--signal-only]\n",
          prog);
  exit(2);
}

/* Returns true once buf[0..n) holds a whole response: headers and a body
 * of Content-Length bytes (none when the header is absent).  *bad is set
 * for a response that is not "HTTP/1.x 200". */
static bool response_done(const char *buf, int n, bool *bad) {
  const char *end = memmem(buf, (size_t)n, "\r\n\r\n", 4);
  if (!end)
    return false;
  *bad = strncmp(buf, "HTTP/1.", 7) != 0 || n < 12 ||
         strncmp(buf + 9, "200", 3) != 0;
  long clen = 0;
  const char *p = buf;
  while (p < end) {
    const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (!eol)
      break;
    if (eol - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
      clen = strtol(p + 15, NULL, 10);
    p = eol + 2;
  }
  return (long)(n - (end + 4 - buf)) >= clen;
}

static void fail(struct conn *c, int ep, int *inflight, int *failed) {
  if (c->fd >= 0) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  free(c->buf);
  c->buf = NULL;
  c->st = FAILED;
  (*inflight)--;
  (*failed)++;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1";
  int port = -1, n = 10000, window = 256;
  double timeout = 60, max_hold = 120;
  bool signal_only = false;

  for (int i = 1; i < argc;) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--signal-only") == 0) {
      signal_only = true;
      i++;
      continue;
    }
    if (!v)
      usage(argv[0]);
    if (strcmp(a, "--host") == 0)
      host = v;
    else if (strcmp(a, "--port") == 0 || strcmp(a, "-p") == 0)
      port = atoi(v);
    else if (strcmp(a, "-n") == 0)
      n = atoi(v);
    else if (strcmp(a, "--window") == 0)
      window = atoi(v);
    else if (strcmp(a, "--timeout") == 0)
      timeout = atof(v);
    else if (strcmp(a, "--max-hold") == 0)
      max_hold = atof(v);
    else
      usage(argv[0]);
    i += 2;
  }
  if (port <= 0 || port > 65535 || n <= 0 || window <= 0)
    usage(argv[0]);

  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "conn_hold: bad address %s\n", host);
    return 2;
  }

  /* One fd per connection, plus a few. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 64) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)n + 64 ? rl.rlim_max : (rlim_t)n + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)n + 64)
      fprintf(stderr,
              "conn_hold: RLIMIT_NOFILE is %llu: fewer than %d "
              "connections will open\n",
              (unsigned long long)rl.rlim_cur, n);
  }

  struct sigaction sig = {.sa_handler = on_signal};
  sigemptyset(&sig.sa_mask);
  sigaction(SIGTERM, &sig, NULL);
  sigaction(SIGINT, &sig, NULL);
  signal(SIGPIPE, SIG_IGN);

  static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
  const int reqlen = (int)sizeof req - 1;

  struct conn *cs = calloc((size_t)n, sizeof *cs);
  struct epoll_event *evs = calloc(512, sizeof *evs);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (!cs || !evs || ep < 0) {
    perror("conn_hold");
    return 1;
  }
  for (int i = 0; i < n; i++)
    cs[i].fd = -1;

  double t0 = now_s();
  int next = 0, inflight = 0, held = 0, failed = 0;
  int errs[4] = {0}; /* connect, reset/eof, bad response, timeout */
  while ((next < n || inflight > 0) && !stop_signal) {
    while (next < n && inflight < window) {
      struct conn *c = &cs[next];
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        fprintf(stderr, "conn_hold: socket: %s (after %d)\n", strerror(errno),
                next);
        c->st = FAILED;
        failed++;
        next++;
        errs[0]++;
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      c->fd = fd;
      c->buf = malloc(RESP_MAX);
      inflight++;
      int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
      if (r < 0 && errno != EINPROGRESS) {
        errs[0]++;
        fail(c, ep, &inflight, &failed);
        next++;
        continue;
      }
      c->st = CONNECTING;
      struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN,
                               .data.u32 = (uint32_t)next};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      next++;
    }
    int k = epoll_wait(ep, evs, 512, 100);
    if (k < 0 && errno != EINTR) {
      perror("conn_hold: epoll_wait");
      return 1;
    }
    for (int j = 0; j < k; j++) {
      struct conn *c = &cs[evs[j].data.u32];
      if (c->st == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          errs[0]++;
          fail(c, ep, &inflight, &failed);
          continue;
        }
        c->st = SENDING;
      }
      if (c->st == SENDING) {
        ssize_t w = send(c->fd, req + c->sent, (size_t)(reqlen - c->sent),
                         MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          errs[1]++;
          fail(c, ep, &inflight, &failed);
          continue;
        }
        if (w > 0)
          c->sent += (int)w;
        if (c->sent == reqlen) {
          c->st = READING;
          struct epoll_event ev = {.events = EPOLLIN,
                                   .data.u32 = evs[j].data.u32};
          epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        }
        continue;
      }
      if (c->st == READING) {
        ssize_t r =
            recv(c->fd, c->buf + c->got, (size_t)(RESP_MAX - c->got), 0);
        if (r < 0 && errno == EAGAIN)
          continue;
        if (r <= 0) {
          errs[1]++;
          fail(c, ep, &inflight, &failed);
          continue;
        }
        c->got += (int)r;
        bool bad = false;
        if (response_done(c->buf, c->got, &bad)) {
          if (bad) {
            errs[2]++;
            fail(c, ep, &inflight, &failed);
            continue;
          }
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          free(c->buf);
          c->buf = NULL;
          c->st = HELD;
          inflight--;
          held++;
        } else if (c->got == RESP_MAX) {
          errs[2]++;
          fail(c, ep, &inflight, &failed);
        }
      }
    }
    if (now_s() - t0 > timeout) {
      for (int i = 0; i < next; i++)
        if (cs[i].st == CONNECTING || cs[i].st == SENDING ||
            cs[i].st == READING) {
          errs[3]++;
          fail(&cs[i], ep, &inflight, &failed);
        }
      for (; next < n; next++, failed++)
        errs[3]++;
      break;
    }
  }
  double t1 = now_s();
  fprintf(stderr,
          "conn_hold: %d of %d connections open after one request each "
          "(%.2f s)",
          held, n, t1 - t0);
  if (failed)
    fprintf(stderr,
            "; failed: %d (connect %d, closed %d, bad answer %d, "
            "timeout %d)",
            failed, errs[0], errs[1], errs[2], errs[3]);
  fprintf(stderr, "\n");
  printf("held %d of %d\n", held, n);
  fflush(stdout);

  /* Hold until told to stop. */
  struct pollfd pfd = {.fd = signal_only ? -1 : 0, .events = POLLIN};
  while (!stop_signal && now_s() - t1 < max_hold) {
    int r = poll(&pfd, 1, 200);
    if (r > 0 && pfd.revents) {
      char b[256];
      ssize_t got = read(0, b, sizeof b);
      if (got <= 0)
        break;
    }
  }

  int closed = 0;
  for (int i = 0; i < n; i++) {
    if (cs[i].st != HELD)
      continue;
    char b;
    ssize_t r = recv(cs[i].fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN))
      closed++;
    close(cs[i].fd);
  }
  if (closed)
    fprintf(stderr, "conn_hold: the server closed %d of the %d while held\n",
            closed, held);
  close(ep);
  free(cs);
  free(evs);
  return failed || closed ? 1 : 0;
}
