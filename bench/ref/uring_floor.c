/*
 * uring_floor.c - the least a server can do per request with io_uring, a
 * reference for kv.cpu_us and http.cpu_us (not weft, no store, no routes).
 *
 * One thread and one ring.  Connections come from a multishot accept;
 * each has one multishot receive into a ring of provided buffers, so data
 * arrives with no system call per read.  For every whole request in what
 * arrived (floor_frame.h) it queues one send of a fixed answer ("+OK\r\n",
 * or a 200 with "hello\n"), and the sends of a whole batch of completions
 * go to the kernel in the one io_uring_enter that also waits for the next
 * batch.  epoll_floor.c makes a read and a write system call per readable
 * connection instead; the two together show what readiness (epoll)
 * against completion (io_uring) costs this machine per request, below
 * any real server.
 *
 *   uring_floor resp|http PORT    listens on 127.0.0.1:PORT; SIGTERM ends
 *                                 it (0); 1 if io_uring is not usable
 */
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_frame.h"

#define MAX_FDS 65536
#define NBUF 1024   /* provided receive buffers (a power of two) */
#define BUFSZ 4096
#define OUTSZ 65536 /* answers, back to back, sent from one array */

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };
#define UDATA(op, fd) (((uint64_t)(op) << 32) | (uint32_t)(fd))

static struct conn conns[MAX_FDS];
static char answers[OUTSZ];
static size_t answer_len;
static bool http;
static struct io_uring ring;
static struct io_uring_buf_ring *bufring;
static char *bufs;

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

static void die(const char *what, int err) {
  fprintf(stderr, "uring_floor: %s: %s\n", what, strerror(err));
  exit(1);
}

/* The next free entry; the queue goes to the kernel early when full. */
static struct io_uring_sqe *entry(void) {
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  if (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  if (!s)
    die("io_uring_get_sqe", EBUSY);
  return s;
}

static void arm_accept(int ls) {
  struct io_uring_sqe *s = entry();
  io_uring_prep_multishot_accept(s, ls, NULL, NULL, 0);
  io_uring_sqe_set_data64(s, UDATA(OP_ACCEPT, ls));
}

static void arm_recv(int fd) {
  struct io_uring_sqe *s = entry();
  io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = 0;
  io_uring_sqe_set_data64(s, UDATA(OP_RECV, fd));
}

/* Queues the answers to n requests on fd, as few sends as fit. */
static void answer(int fd, int n) {
  size_t per = OUTSZ / answer_len;
  while (n > 0) {
    int k = n < (int)per ? n : (int)per;
    struct io_uring_sqe *s = entry();
    io_uring_prep_send(s, fd, answers, (size_t)k * answer_len, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, UDATA(OP_SEND, fd));
    s->flags |= IOSQE_CQE_SKIP_SUCCESS; /* only failures come back */
    n -= k;
  }
}

int main(int argc, char **argv) {
  int one = 1;
  int port = argc == 3 ? atoi(argv[2]) : 0;
  if (argc != 3 || (strcmp(argv[1], "resp") && strcmp(argv[1], "http")) ||
      port <= 0 || port > 65535) {
    fprintf(stderr, "usage: uring_floor resp|http PORT\n");
    return 2;
  }
  http = strcmp(argv[1], "http") == 0;
  const char *a1 = http ? floor_http_ok : floor_resp_ok;
  answer_len = strlen(a1);
  for (size_t i = 0; i + answer_len <= OUTSZ; i += answer_len)
    memcpy(answers + i, a1, answer_len);
  signal(SIGTERM, on_term);

  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 4096))
    die("listen", errno);

  /* One issuer, and completions' work run when it enters: no interrupts
   * of the thread while it frames and queues. */
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER |
                                       IORING_SETUP_DEFER_TASKRUN};
  int r = io_uring_queue_init_params(4096, &ring, &p);
  if (r < 0)
    die("io_uring_queue_init", -r);
  bufring = mmap(NULL, NBUF * sizeof(struct io_uring_buf),
                 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  bufs = malloc((size_t)NBUF * BUFSZ);
  if (bufring == MAP_FAILED || !bufs)
    die("buffers", ENOMEM);
  struct io_uring_buf_reg reg = {
      .ring_addr = (uint64_t)(uintptr_t)bufring, .ring_entries = NBUF};
  if ((r = io_uring_register_buf_ring(&ring, &reg, 0)) < 0)
    die("io_uring_register_buf_ring", -r);
  io_uring_buf_ring_init(bufring);
  for (int i = 0; i < NBUF; i++)
    io_uring_buf_ring_add(bufring, bufs + (size_t)i * BUFSZ, BUFSZ,
                          (unsigned short)i, io_uring_buf_ring_mask(NBUF), i);
  io_uring_buf_ring_advance(bufring, NBUF);
  arm_accept(ls);

  for (;;) {
    r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR)
      die("io_uring_enter", -r);
    struct io_uring_cqe *c;
    unsigned head, seen = 0;
    int returned = 0; /* buffers handed back this batch */
    io_uring_for_each_cqe(&ring, head, c) {
      seen++;
      int op = (int)(c->user_data >> 32), fd = (int)(uint32_t)c->user_data;
      bool more = c->flags & IORING_CQE_F_MORE;
      if (op == OP_ACCEPT) {
        int cfd = c->res;
        if (cfd >= MAX_FDS) {
          close(cfd);
        } else if (cfd >= 0) {
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          conns[cfd] = (struct conn){0};
          arm_recv(cfd);
        }
        if (!more)
          arm_accept(ls);
      } else if (op == OP_RECV) {
        if (c->res == -ENOBUFS) { /* every buffer in use: ask again */
          arm_recv(fd);
          continue;
        }
        if (c->res <= 0) { /* end of stream or an error */
          close(fd);
          continue;
        }
        int bid = (int)(c->flags >> IORING_CQE_BUFFER_SHIFT);
        char *b = bufs + (size_t)bid * BUFSZ;
        int n = http ? frame_http(&conns[fd], b, (size_t)c->res)
                     : frame(&conns[fd], b, (size_t)c->res);
        io_uring_buf_ring_add(bufring, b, BUFSZ, (unsigned short)bid,
                              io_uring_buf_ring_mask(NBUF), returned++);
        if (n < 0) { /* not the protocol: end it */
          if (more)
            shutdown(fd, SHUT_RDWR); /* the receive ends, and closes it */
          else
            close(fd);
          continue;
        }
        answer(fd, n);
        if (!more)
          arm_recv(fd);
      } else if (op == OP_SEND && c->res < 0) {
        shutdown(fd, SHUT_RDWR); /* its receive ends, and closes it */
      }
    }
    io_uring_buf_ring_advance(bufring, returned);
    io_uring_cq_advance(&ring, seen);
  }
}
