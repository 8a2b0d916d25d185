/*
 * floor_frame.h - what the floor servers (epoll_floor.c, uring_floor.c)
 * look at in a request stream: where each request ends, and nothing else;
 * and the one answer they give to every request.
 */
#ifndef FLOOR_FRAME_H
#define FLOOR_FRAME_H

#include <stddef.h>

/* The answers: to a Redis command, and to an HTTP request (what nginx
 * answers in the bench: a 200 with "hello\n"). */
static const char floor_resp_ok[] = "+OK\r\n";
static const char floor_http_ok[] = "HTTP/1.1 200 OK\r\n"
                                    "Content-Type: text/plain\r\n"
                                    "Content-Length: 6\r\n"
                                    "\r\n"
                                    "hello\n";

/* Where a connection is in its current request. */
struct conn {
  int args;  /* bulk strings still to come; 0: before the '*' */
  long skip; /* bytes of a bulk string (and its \r\n) still to come */
  int num;   /* in a "*N" or "$LEN" line: 1 for '*', 2 for '$' */
  long val;  /* that line's number so far */
  unsigned crlf; /* HTTP: how much of the \r\n\r\n ending a head is in */
};

/* Frames buf[0..n) on c; returns the number of commands completed, or -1
 * when the stream is not the protocol. */
static inline int frame(struct conn *c, const char *buf, size_t n) {
  int done = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = buf[i];
    if (c->skip > 0) {
      size_t take = (size_t)c->skip < n - i ? (size_t)c->skip : n - i;
      c->skip -= (long)take;
      i += take - 1;
      if (c->skip == 0 && --c->args == 0)
        done++;
      continue;
    }
    if (c->num) {
      if (ch >= '0' && ch <= '9') {
        c->val = c->val * 10 + (ch - '0');
        if (c->val > 1 << 29)
          return -1;
      } else if (ch == '\n') {
        if (c->num == 1) {
          c->args = (int)c->val;
          if (c->args == 0)
            done++;
        } else {
          c->skip = c->val + 2;
        }
        c->num = 0;
      } else if (ch != '\r') {
        return -1;
      }
      continue;
    }
    if ((c->args == 0 && ch != '*') || (c->args > 0 && ch != '$'))
      return -1;
    c->num = c->args == 0 ? 1 : 2;
    c->val = 0;
  }
  return done;
}

/* Frames buf[0..n) on c as HTTP/1.1 requests without bodies (what wrk
 * sends): returns the number of heads completed, each ended by an empty
 * line. */
static inline int frame_http(struct conn *c, const char *buf, size_t n) {
  int done = 0;
  unsigned s = c->crlf;
  for (size_t i = 0; i < n; i++) {
    char ch = buf[i];
    if (ch == '\r')
      s = s == 2 ? 3 : 1;
    else if (ch == '\n' && s == 3) {
      done++;
      s = 0;
    } else
      s = ch == '\n' && s == 1 ? 2 : 0;
  }
  c->crlf = s;
  return done;
}

#endif /* FLOOR_FRAME_H */
