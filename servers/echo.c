/*
 * echo.c - a TCP echo server: every byte a client sends comes back.
 *
 * The connection handler is plain sequential code against weft's I/O
 * calls; srv.c runs it as a green thread, a kernel thread or a forked
 * process per connection (--mode), see srv.h for the options.
 *
 *   servers/echo --port 7000 --mode green --workers 4
 *
 * Each connection holds one 16 KiB heap buffer while it lives, and no large
 * stack frame, so an idle connection costs little memory.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "srv.h"
#include "weft.h"

#define ECHO_BUF (16 * 1024)

static void echo_serve(int fd, uint64_t conn_id) {
  char *buf = malloc(ECHO_BUF);

  (void)conn_id;
  if (!buf)
    return; /* the caller closes the connection */
  for (;;) {
    ssize_t n = weft_read(fd, buf, ECHO_BUF, srv_idle_deadline());
    if (n <= 0)
      break; /* end of file, idle timeout, cancellation or an error */
    ssize_t w = weft_write(fd, buf, (size_t)n, srv_idle_deadline());
    if (w != n)
      break; /* the peer went away, or the connection was canceled */
  }
  free(buf);
}

static const srv_app echo_app = {
    .name = "echo",
    .default_port = 7000,
    .serve = echo_serve,
};

int main(int argc, char **argv) { return srv_main(argc, argv, &echo_app); }
