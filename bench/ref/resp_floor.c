/*
 * resp_floor.c - the least a server can do per Redis-protocol request with
 * epoll, a reference for kv.cpu_us (not weft, and no store).
 *
 * One thread, level-triggered epoll.  For each readable connection: one
 * read, "+OK\r\n" for every whole command in it, one write.  The commands
 * are framed (a multibulk "*N\r\n" of N bulk strings "$LEN\r\n...\r\n", a
 * command may straddle reads) but nothing else is looked at, so a GET gets
 * +OK too, which redis-benchmark accepts.  Its CPU time per request is
 * what the calls cost: the kernel's system calls, TCP over loopback and
 * wake-ups.  weft's kv and redis-server make the same calls per request,
 * so most of their time is this too; only fewer calls per request would
 * take a server well below it.
 *
 *   resp_floor PORT      listens on 127.0.0.1:PORT; SIGTERM ends it (0)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
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

  if (argc != 2 || atoi(argv[1]) <= 0 || atoi(argv[1]) > 65535) {
    fprintf(stderr, "usage: resp_floor PORT\n");
    return 2;
  }
  signal(SIGTERM, on_term);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)atoi(argv[1])),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
      bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1024)) {
    perror("resp_floor: listen");
    return 1;
  }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev)) {
    perror("resp_floor: epoll");
    return 1;
  }
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno != EINTR) {
      perror("resp_floor: epoll_wait");
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
      int cmds = r > 0 ? frame(&conns[fd], in, (size_t)r) : -1;
      if (cmds < 0) {
        close(fd); /* end of stream, an error, or not the protocol */
        continue;
      }
      size_t len = 0;
      for (int k = 0; k < cmds; k++) {
        if (len + 5 > sizeof(out)) {
          if (write(fd, out, len) < 0)
            break;
          len = 0;
        }
        memcpy(out + len, "+OK\r\n", 5);
        len += 5;
      }
      if (len && write(fd, out, len) < 0 && errno != EAGAIN)
        close(fd);
    }
  }
}
