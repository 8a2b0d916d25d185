/*
 * mget_stall.c - how long one large reply holds up a RESP server's other
 * clients: one connection stores VALUES values of SIZE bytes, then asks
 * for all of them at once with MGET, ROUNDS times, reading each reply as
 * fast as it comes, while a second connection sends PING every half
 * millisecond and times each answer.
 *
 *   bench/mget_stall HOST PORT VALUES SIZE ROUNDS
 *
 * Prints "STALL_MS MGET_MS": the longest PING round trip while an MGET was
 * under way, and the median time of one MGET.  Plain blocking sockets and
 * one pthread for the PINGs: the client must not be what stalls.  Exit
 * status 1 (with a message) on any protocol or socket error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "mget_stall: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int dial(const char *host, int port) {
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "mget_stall: bad address %s\n", host);
    exit(2);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static void send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      die("send");
    c += k;
    n -= (size_t)k;
  }
}

/* Reads exactly n bytes into buf (or drops them when buf is NULL). */
static void recv_n(int fd, char *buf, size_t n) {
  static char sink[1 << 16];
  while (n > 0) {
    size_t want = n;
    char *to = buf;
    if (!to)
      to = sink, want = n < sizeof sink ? n : sizeof sink;
    ssize_t k = recv(fd, to, want, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      die("recv");
    if (buf)
      buf += k;
    n -= (size_t)k;
  }
}

/* Reads one line (up to CRLF) into line. */
static void recv_line(int fd, char *line, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    recv_n(fd, line + n, 1);
    if (line[n++] == '\n')
      break;
  }
  line[n] = '\0';
}

static atomic_int mget_on, stop;
static int64_t stall_max;
static int ping_fd;

static void *pinger(void *arg) {
  (void)arg;
  char line[64];
  while (!atomic_load(&stop)) {
    int64_t t0 = now_ns();
    int during = atomic_load(&mget_on);
    send_all(ping_fd, "*1\r\n$4\r\nPING\r\n", 14);
    recv_line(ping_fd, line, sizeof line);
    if (strcmp(line, "+PONG\r\n") != 0) {
      fprintf(stderr, "mget_stall: PING answered '%s'\n", line);
      exit(1);
    }
    int64_t rtt = now_ns() - t0;
    if ((during || atomic_load(&mget_on)) && rtt > stall_max)
      stall_max = rtt;
    struct timespec gap = {0, 500000};
    nanosleep(&gap, NULL);
  }
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: %s HOST PORT VALUES SIZE ROUNDS\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), nv = atoi(argv[3]), rounds = atoi(argv[5]);
  long size = atol(argv[4]);
  if (port <= 0 || nv <= 0 || nv > 10000 || size <= 0 || rounds <= 0 ||
      rounds > 100) {
    fprintf(stderr, "mget_stall: bad arguments\n");
    return 2;
  }
  int fd = dial(host, port);
  ping_fd = dial(host, port);

  /* The values: SET kI with SIZE bytes each. */
  char *val = malloc((size_t)size);
  char head[128], line[128];
  if (!val)
    die("malloc");
  memset(val, 'v', (size_t)size);
  for (int i = 0; i < nv; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "ms%d", i);
    int hl = snprintf(head, sizeof head, "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%ld\r\n",
                      kl, key, size);
    send_all(fd, head, (size_t)hl);
    send_all(fd, val, (size_t)size);
    send_all(fd, "\r\n", 2);
    recv_line(fd, line, sizeof line);
    if (strcmp(line, "+OK\r\n") != 0) {
      fprintf(stderr, "mget_stall: SET answered '%s'\n", line);
      return 1;
    }
  }
  /* MGET ms0 .. msN-1, and the size of its reply. */
  size_t cap = (size_t)nv * 24 + 32, len = 0;
  char *req = malloc(cap);
  if (!req)
    die("malloc");
  len += (size_t)snprintf(req + len, cap - len, "*%d\r\n$4\r\nMGET\r\n", nv + 1);
  for (int i = 0; i < nv; i++) {
    char key[16];
    int kl = snprintf(key, sizeof key, "ms%d", i);
    len += (size_t)snprintf(req + len, cap - len, "$%d\r\n%s\r\n", kl, key);
  }
  int sl = snprintf(head, sizeof head, "$%ld\r\n", size);
  size_t reply_rest = (size_t)nv * ((size_t)sl + (size_t)size + 2);

  pthread_t t;
  if (pthread_create(&t, NULL, pinger, NULL) != 0)
    die("pthread_create");
  int64_t took[100];
  for (int r = 0; r < rounds; r++) {
    struct timespec settle = {0, 20 * 1000000};
    nanosleep(&settle, NULL);
    atomic_store(&mget_on, 1);
    int64_t t0 = now_ns();
    send_all(fd, req, len);
    recv_line(fd, line, sizeof line); /* "*N\r\n" */
    recv_n(fd, NULL, reply_rest);
    took[r] = now_ns() - t0;
    atomic_store(&mget_on, 0);
  }
  atomic_store(&stop, 1);
  pthread_join(t, NULL);
  qsort(took, (size_t)rounds, sizeof took[0], cmp_i64);
  printf("%.3f %.3f\n", (double)stall_max / 1e6,
         (double)took[rounds / 2] / 1e6);
  return 0;
}
