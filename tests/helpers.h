/*
 * helpers.h - shared by the tests/test_*.c files; the functions are in
 * tests/helpers.c (tests/libcheck.la).
 *
 * Criterion's assertions must only be called from the test's own thread:
 * a failing cr_assert() unwinds with longjmp(), which is undefined from a
 * green thread (another stack, maybe another kernel thread) or a pthread.
 * Code that runs off the test's thread therefore records failures with
 * TCHECK()/TCHECK_EQ(), and the test reports them from its own thread with
 * EXPECT_NO_THREAD_FAILURES() once everything has been joined.
 *
 * Also here: starting and stopping the runtime from fixtures, errno access
 * that the compiler cannot cache across a switch, and a fork helper that
 * captures a child's stderr and its fate (for crash messages).
 */
#ifndef TESTS_HELPERS_H
#define TESTS_HELPERS_H

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef WEFT_ASAN
#define WEFT_ASAN 0
#endif
#ifndef WEFT_TSAN
#define WEFT_TSAN 0
#endif
#ifndef WEFT_DEBUG
#define WEFT_DEBUG 0
#endif

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

#define MS(n) ((int64_t)(n) * 1000000)

/* ------------------------------------------------------------------------ */
/* Failures seen off the test's thread                                      */
/* ------------------------------------------------------------------------ */

/*
 * One recorder for checks made off the test's thread (TCHECK): how many
 * failed, and the first, with where and in which process.  It starts
 * private to the test's process (its threads, green or not); a test whose
 * checks run in forked children too calls h_share_report() before it
 * forks, which moves the recorder to a fresh MAP_SHARED page that the
 * children inherit.
 */
struct h_report {
  atomic_int failures;
  atomic_int taken; /* first is written */
  char first[512];
};

/* The recorder in use: one per program, private until h_share_report(). */
extern struct h_report *h_rep;

void h_share_report(void);

/* Records a failed check at file:line (with its two values if with_values);
 * TCHECK and TCHECK_EQ call it. */
void h_fail(const char *file, int line, const char *what, long long a,
            long long b, int with_values);

#define TCHECK(cond)                                                         \
  do {                                                                       \
    if (!(cond))                                                             \
      h_fail(__FILE__, __LINE__, #cond, 0, 0, 0);                            \
  } while (0)

#define TCHECK_EQ(x, y)                                                      \
  do {                                                                       \
    long long h_x_ = (long long)(x), h_y_ = (long long)(y);                  \
    if (h_x_ != h_y_)                                                        \
      h_fail(__FILE__, __LINE__, #x " == " #y, h_x_, h_y_, 1);               \
  } while (0)

/* From the test's thread, after every other thread has been joined. */
#define EXPECT_NO_THREAD_FAILURES()                                          \
  cr_expect(atomic_load(&h_rep->failures) == 0,                              \
            "%d check(s) failed off the test thread; first: %s",             \
            atomic_load(&h_rep->failures), h_rep->first)

/* ------------------------------------------------------------------------ */
/* Runtime lifecycle for fixtures                                           */
/* ------------------------------------------------------------------------ */

void h_start(int workers);
void h_start1(void);
void h_start2(void);
void h_start4(void);
void h_stop(void);

/* ------------------------------------------------------------------------ */
/* Threads                                                                  */
/* ------------------------------------------------------------------------ */

/* Test thread only. */
weft_gthread h_spawn(weft_fn fn, void *arg);
/* Test thread only. */
void *h_join(weft_gthread t);

/* Any thread: failures are recorded with TCHECK. */
weft_gthread h_tspawn(weft_fn fn, void *arg);
void *h_tjoin(weft_gthread t);

/* Test thread only. */
pthread_t h_pthread(void *(*fn)(void *), void *arg);
void *h_pjoin(pthread_t t);

/* ------------------------------------------------------------------------ */
/* errno without caching                                                    */
/* ------------------------------------------------------------------------ */

/* glibc declares __errno_location() const, so within one function the
 * compiler may reuse the address of the kernel thread's errno across a call
 * after which the green thread runs elsewhere.  Going through functions that
 * cannot be inlined or analysed gives a fresh address each time. */
#if defined(__clang__)
#define H_OPAQUE __attribute__((noinline))
#else
#define H_OPAQUE __attribute__((noipa))
#endif
H_OPAQUE int h_errno_get(void);
H_OPAQUE void h_errno_set(int v);

/* ------------------------------------------------------------------------ */
/* Small deterministic random numbers (xorshift64*)                         */
/* ------------------------------------------------------------------------ */

uint64_t h_rand(uint64_t *state);

/* ------------------------------------------------------------------------ */
/* Fork and capture stderr                                                  */
/* ------------------------------------------------------------------------ */

struct h_child {
  int status;     /* from waitpid() */
  char err[8192]; /* what the child wrote to stderr, NUL-terminated */
  size_t len;
};

/*
 * Runs fn(arg) in a forked child whose stderr is a pipe, without core dumps
 * and with an alarm so that a hang ends the child (by SIGALRM) instead of
 * the test.  The child exits with status 0 if fn returns.  fn must not call
 * Criterion's assertions.  Call it before weft_init() in the parent, so the
 * child starts with a single thread and no runtime.
 */
void h_fork_capture(void (*fn)(void *), void *arg, struct h_child *res);

/* Turns off core dumps for a test that is expected to crash. */
void h_no_core(void);

/* True if process `parent` has a child in state Z (a zombie). */
bool h_has_zombie_child(pid_t parent);

#endif /* TESTS_HELPERS_H */
