/*
 * test_reset.c - a storm of connections reset by their clients at every
 * stage, against a green-thread server on 2 workers: no server thread may
 * stay parked on a dead socket.
 *
 * The server accepts in a green thread and serves each connection in a
 * green thread of its own: it reads requests of a few bytes and answers
 * each with a reply of a chosen size (up to 256 KiB, more than the socket
 * buffers hold, so that replies park the server in weft_write).  Client
 * kernel threads connect and end each connection with a reset
 * (SO_LINGER {1, 0}, then close) at one of these stages, chosen in turn:
 *   before sending anything; after half a request; after a whole request,
 *   before reading the reply; in the middle of reading a long reply; after
 *   several pipelined requests, with nothing read; after a full exchange
 *   (the server parked in its next read).
 * Every reset must end its server thread: the read or write it is parked
 * in must return (0 or -ECONNRESET, -EPIPE).  When the storm is over, the
 * test waits until no server thread is left; one that is still there
 * after 10 s is parked for good, and the test fails naming how many.
 *
 * WEFT_RESET_SECONDS sets the length of the storm (default 2 s); `make
 * soak` runs it for longer, in a loop, with and without the stall below.
 */
#include "helpers.h"
#include <weft_testing.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

/*
 * A loaded machine, made to order.  On a busy machine the kernel stops a
 * worker at any instruction for a time slice or more, and the races this
 * test looks for need a worker stopped at the wrong place: right after it
 * made the readers of ready fds runnable, while another worker takes them.
 * That is rare on an idle machine (no hit in 2.5 million resets here) and
 * common on a loaded one, so the storm runs with weft's "poll_stall" site
 * armed (weft_fail_inject): a worker stops for 1 ms there, every time.
 * WEFT_RESET_STALL=0 runs it without.
 */
#define CLIENTS 4
#define CHECKERS 3
#define BIG (256 * 1024)

static int lfd;
static struct sockaddr_in addr;
static atomic_long live, served, conns;
static atomic_int stopping;

/* A request is 4 bytes: a size in KiB (0 to 256) as text, "%3d\n". */
static void *serve(void *arg) {
  int fd = (int)(intptr_t)arg;
  static char reply[BIG]; /* contents do not matter; read-only use */
  char req[4];
  for (;;) {
    size_t got = 0;
    while (got < sizeof req) {
      ssize_t n = weft_read(fd, req + got, sizeof req - got, WEFT_FOREVER);
      if (n <= 0)
        goto out;
      got += (size_t)n;
    }
    int kib = atoi(req);
    if (kib < 0 || kib > BIG / 1024)
      kib = 1;
    ssize_t w = weft_write(fd, reply, (size_t)kib * 1024, WEFT_FOREVER);
    if (w < (ssize_t)kib * 1024)
      break;
    atomic_fetch_add(&served, 1);
  }
out:
  weft_close(fd);
  atomic_fetch_sub(&live, 1);
  return NULL;
}

static void *acceptor(void *arg) {
  (void)arg;
  while (!atomic_load(&stopping)) {
    int c = weft_accept(lfd, NULL, NULL, SOCK_CLOEXEC, weft_deadline(MS(50)));
    if (c == -ETIMEDOUT || c == -EMFILE || c == -ENFILE) {
      if (c != -ETIMEDOUT)
        weft_sleep(MS(1));
      continue;
    }
    if (c < 0)
      break;
    atomic_fetch_add(&live, 1);
    atomic_fetch_add(&conns, 1);
    weft_gthread_attr at = {.detached = true, .name = "conn"};
    if (weft_spawn(NULL, &at, serve, (void *)(intptr_t)c) != 0) {
      close(c);
      atomic_fetch_sub(&live, 1);
    }
  }
  return NULL;
}

static void reset_close(int fd) {
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

static void send_req(int fd, int kib) {
  char req[5];
  snprintf(req, sizeof req, "%3d\n", kib);
  ssize_t r = send(fd, req, 4, MSG_NOSIGNAL);
  (void)r;
}

/* Reads up to n bytes of reply, waiting at most 1 s for each piece. */
static void recv_some(int fd, size_t n) {
  char buf[16384];
  while (n > 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 1000) <= 0)
      return;
    ssize_t r = recv(fd, buf, n < sizeof buf ? n : sizeof buf, 0);
    if (r <= 0)
      return;
    n -= (size_t)r;
  }
}

static int64_t storm_end;
static atomic_long checks;


/* A keep-alive client beside the storm: one connection, a request and its
 * whole reply at a time, all through the storm.  It keeps the workers
 * busy (they poll from their slow path then) and checks that the server
 * keeps answering. */
static void *checker(void *arg) {
  (void)arg;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
    return (void *)1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while (weft_now() < storm_end) {
    send_req(fd, 1);
    char buf[1024];
    size_t got = 0;
    while (got < sizeof buf) {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      if (poll(&p, 1, 5000) <= 0)
        return (void *)2; /* the server stopped answering */
      ssize_t r = recv(fd, buf, sizeof buf - got, 0);
      if (r <= 0)
        return (void *)3;
      got += (size_t)r;
    }
    atomic_fetch_add(&checks, 1);
  }
  reset_close(fd);
  return NULL;
}

static void *client(void *arg) {
  unsigned stage = (unsigned)(uintptr_t)arg;
  while (weft_now() < storm_end) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      continue;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
      close(fd);
      continue;
    }
    switch (stage++ % 6) {
    case 0: /* before any data */
      break;
    case 1: /* half a request */
      send(fd, " 1", 2, MSG_NOSIGNAL);
      break;
    case 2: /* a request, reply not read */
      send_req(fd, 1);
      break;
    case 3: /* in the middle of a long reply */
      send_req(fd, BIG / 1024);
      recv_some(fd, 20000);
      break;
    case 4: /* pipelined requests, nothing read */
      for (int i = 0; i < 6; i++)
        send_req(fd, 64);
      break;
    case 5: /* a full exchange: the server parks in its next read */
      send_req(fd, 2);
      recv_some(fd, 2048);
      break;
    }
    reset_close(fd);
  }
  return NULL;
}

Test(reset, every_reset_ends_its_server_thread, .timeout = 180) {
  double secs = 2;
  const char *e = getenv("WEFT_RESET_SECONDS");
  if (e && *e)
    secs = atof(e);
  weft_config cfg = {.workers = 2};
  cr_assert_eq(weft_init(&cfg), 0);

  lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(lfd >= 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  addr = (struct sockaddr_in){.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof addr;
  cr_assert_eq(bind(lfd, (struct sockaddr *)&addr, sizeof addr), 0);
  cr_assert_eq(listen(lfd, 1024), 0);
  cr_assert_eq(getsockname(lfd, (struct sockaddr *)&addr, &al), 0);

  const char *st = getenv("WEFT_RESET_STALL");
  bool stall = !st || strcmp(st, "0") != 0;
  if (stall)
    cr_assert_eq(weft_fail_inject("poll_stall:0:0"), 0);
  weft_gthread acc = h_spawn(acceptor, NULL);
  storm_end = weft_now() + (int64_t)(secs * 1e9);
  pthread_t c[CLIENTS], k[CHECKERS];
  for (uintptr_t i = 0; i < CLIENTS; i++)
    c[i] = h_pthread(client, (void *)(i * 2));
  for (int i = 0; i < CHECKERS; i++)
    k[i] = h_pthread(checker, NULL);
  for (int i = 0; i < CLIENTS; i++)
    h_pjoin(c[i]);
  long bad_checkers = 0;
  for (int i = 0; i < CHECKERS; i++)
    bad_checkers += h_pjoin(k[i]) != NULL;
  cr_expect_eq(bad_checkers, 0,
               "%ld keep-alive checkers saw the server stop answering",
               bad_checkers);

  weft_fail_inject(NULL);
  /* Every connection was reset: every server thread must end. */
  int64_t give_up = weft_now() + (int64_t)10 * 1000000000;
  while (atomic_load(&live) > 0 && weft_now() < give_up)
    usleep(10000);
  long stuck = atomic_load(&live);
  atomic_store(&stopping, 1);
  h_join(acc);
  cr_log_info("%ld connections reset, %ld replies served (%ld keep-alive), "
              "%ld stuck",
              atomic_load(&conns), atomic_load(&served), atomic_load(&checks),
              stuck);
  cr_expect_eq(stuck, 0,
               "%ld of %ld server threads stayed parked on a reset "
               "connection",
               stuck, atomic_load(&conns));
  if (stuck == 0)
    cr_expect_eq(weft_shutdown(), 0);
  /* else leave the runtime: the stuck threads point into it */
}
