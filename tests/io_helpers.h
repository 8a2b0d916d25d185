/*
 * io_helpers.h - sockets, pipes and thread runners shared by the I/O tests
 * (tests/test_io.c, tests/test_blocking.c, tests/test_cancel.c); the
 * functions are in tests/io_helpers.c (tests/libcheck.la).
 *
 * Everything here may be called from any thread: failures are recorded with
 * TCHECK (see helpers.h) and reported by the test's own thread, except the
 * functions marked "test thread only", which use Criterion's assertions.
 */
#ifndef TESTS_IO_HELPERS_H
#define TESTS_IO_HELPERS_H

#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Where a scenario runs                                                    */
/* ------------------------------------------------------------------------ */

/* A scenario is a weft_fn; it runs either on a green thread or on a plain
 * pthread (a kernel thread that is not a worker). */
enum io_where { IO_GREEN, IO_PTHREAD };

const char *io_where_name(enum io_where w);

/* Any thread: starts fn(arg) where asked.  io_finish() joins it. */
typedef struct io_thread {
  enum io_where where;
  weft_gthread g;
  pthread_t p;
  bool started;
} io_thread;

io_thread io_start(enum io_where where, weft_fn fn, void *arg);
void *io_finish(io_thread *t);

/* Test thread only: runs fn(arg) where asked, waits for it, and reports
 * the failures recorded off the test's thread, naming where it ran. */
void *io_run(enum io_where where, weft_fn fn, void *arg);

pid_t io_gettid(void);

/* A kernel-level sleep that never parks a green thread: it holds the
 * worker, as a blocking library call would. */
void io_nanosleep(int64_t ns);

/* Waits (from any thread, without parking) until *flag is non-zero or the
 * guard expires; true if the flag was seen. */
bool io_await_flag(atomic_int *flag, int64_t guard_ns);

/* Same, but parks a green thread (weft_sleep) between looks. */
bool io_await_flag_parking(atomic_int *flag, int64_t guard_ns);

/* ------------------------------------------------------------------------ */
/* Sockets                                                                  */
/* ------------------------------------------------------------------------ */

/* A stream socketpair, plain (blocking, not taken over). */
bool io_socketpair(int sv[2]);

/* A TCP listener on 127.0.0.1 at an ephemeral port; returns its fd (plain,
 * blocking) and stores the address; -1 on failure. */
int io_listener(struct sockaddr_in *addr, int backlog);

/* A connected loopback TCP pair made with plain system calls (the
 * listener is closed again); sv[0] is the connecting side. */
bool io_tcp_pair(int sv[2]);

/* Either kind of connected stream pair. */
enum io_kind { IO_UNIX, IO_TCP };

bool io_pair(enum io_kind kind, int sv[2]);

bool io_nonblocking(int fd);
bool io_cloexec(int fd);
bool io_fd_open(int fd);

/* The byte at offset i of the test pattern. */
unsigned char io_pat(size_t i);

/* CPU time (user + system) of the whole process, in nanoseconds. */
int64_t io_cpu_ns(void);

/* Makes the socket buffers of both ends small, so that a few hundred KiB
 * fill them. */
void io_small_buffers(const int sv[2]);

/* Writes with WEFT_NOWAIT until the socket is full; returns the bytes
 * written. */
size_t io_fill_socket(int fd);

#endif /* TESTS_IO_HELPERS_H */
