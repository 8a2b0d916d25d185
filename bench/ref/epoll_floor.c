/*
 * epoll_floor.c - the least a server can do per request with epoll, a
 * reference for kv.cpu_us and http.cpu_us (not weft, no store, no routes).
 *
 * One thread, level-triggered epoll.  For each readable connection: one
 * read, a fixed answer for every whole request in it ("+OK\r\n", or a 200
 * with "hello\n"), one write.  The requests are framed (floor_frame.h: a
 * Redis multibulk, or an HTTP head ended by an empty line; a request may
 * straddle reads) but nothing else is looked at, so a GET gets +OK too,
 * which redis-benchmark accepts.  Its CPU time per request is what the
 * calls cost: the kernel's system calls, TCP over loopback and wake-ups.
 * weft's kv and http, redis-server and nginx make the same calls per
 * request (a read and a write), so most of their time is this too; only
 * fewer calls per request (uring_floor.c) take a server well below it.
 *
 *   epoll_floor resp|http PORT    listens on 127.0.0.1:PORT; SIGTERM ends
 *                                 it (0)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor_frame.h"

#define MAX_FDS 65536
#define BUF 65536

static struct conn conns[MAX_FDS];

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  static char in[BUF], out[BUF];
  struct epoll_event evs[256];
  int one = 1;

  if (argc != 3 || (strcmp(argv[1], "resp") && strcmp(argv[1], "http")) ||
      atoi(argv[2]) <= 0 || atoi(argv[2]) > 65535) {
    fprintf(stderr, "usage: epoll_floor resp|http PORT\n");
    return 2;
  }
  bool http = strcmp(argv[1], "http") == 0;
  const char *ok = http ? floor_http_ok : floor_resp_ok;
  size_t oklen = http ? sizeof(floor_http_ok) - 1 : sizeof(floor_resp_ok) - 1;
  signal(SIGTERM, on_term);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)atoi(argv[2])),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1024)) {
    perror("epoll_floor: listen");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) {
    perror("epoll_floor: epoll");
    return 1;
  }
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) {
      perror("epoll_floor: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event e = {.events = EPOLLIN, .data.fd = c};
          if (c >= MAX_FDS || epoll_ctl(ep, EPOLL_CTL_ADD, c, &e)) {
            close(c);
            continue;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          conns[c] = (struct conn){0};
        }
        continue;
      }
      ssize_t r = read(fd, in, sizeof(in));
      if (r < 0 && (errno == EAGAIN || errno == EINTR))
        continue;
      int cmds = r <= 0 ? -1
                 : http ? frame_http(&conns[fd], in, (size_t)r)
                        : frame(&conns[fd], in, (size_t)r);
      if (cmds < 0) {
        close(fd); /* end of stream, an error, or not the protocol */
        continue;
      }
      size_t len = 0;
      for (int k = 0; k < cmds; k++) {
        if (len + oklen > sizeof(out)) {
          if (write(fd, out, len) < 0)
            break;
          len = 0;
        }
        memcpy(out + len, ok, oklen);
        len += oklen;
      }
      if (len && write(fd, out, len) < 0 && errno != EAGAIN)
        close(fd);
    }
  }
}
