/*
 * gdb_target.c - the program tests/gdb_check.sh debugs with the gdb
 * extension (tools/weft-gdb.py).
 *
 * It runs on one worker and spawns four named green threads that park on a
 * channel, a mutex, a sleep and a read from a socket pair.  Each one posts a
 * semaphore just before it blocks.  Once main has seen all four posts it
 * spawns a fifth, "gdb-stop", which calls gdb_target_stop(), where gdb has a
 * breakpoint.  With a single worker, gdb-stop can only run once the fourth
 * thread has parked, so at the breakpoint all four are parked, whatever the
 * timing: the check is deterministic.
 *
 * main joins gdb-stop before it wakes the others, so nothing changes while
 * gdb looks.  Without gdb the program simply wakes them all, joins them and
 * exits 0.
 * The ids of the five threads are kept in gdb_target_ids for the check.
 *
 * Where weft preempts, it also spawns "gdb-spin", which computes until
 * main stops it, before gdb-stop: on one worker gdb-stop then runs only
 * once gdb-spin has been preempted, and at the breakpoint gdb-spin is held
 * by its kernel thread.  Linked statically, or under ThreadSanitizer,
 * weft does not preempt, and gdb-spin would keep the worker: it is left
 * out, and gdb_target_spins (read by the check) says so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft.h"

enum { T_CHAN, T_MUTEX, T_SLEEP, T_READ, T_SPIN, T_STOP, NT };

static weft_chan *ch;
static weft_mutex mu = WEFT_MUTEX_INIT;
static weft_sem ready;
/* Posted once main has stored every id in gdb_target_ids: the stopper
 * waits for it, so gdb never stops before the ids it reads are there. */
static weft_sem ids_stored;
static int sv[2];

/* Read by gdb: the ids of the threads, indexed as the enum above. */
volatile unsigned long long gdb_target_ids[NT];

static void die(const char *what, int rc) {
  fprintf(stderr, "gdb_target: %s: %s\n", what, weft_strerror(rc));
  exit(1);
}

/* The functions that park are not inlined, so that the backtrace of each
 * parked thread names them. */
__attribute__((noinline)) static void *park_on_chan(void *arg) {
  long v = 0;
  weft_sem_post(&ready);
  int rc = weft_chan_recv(ch, &v);
  return rc == 0 && v == 42 ? NULL : (void *)1;
}

__attribute__((noinline)) static void *park_on_mutex(void *arg) {
  weft_sem_post(&ready);
  int rc = weft_mutex_lock(&mu);
  if (rc == 0)
    weft_mutex_unlock(&mu);
  return rc == 0 ? NULL : (void *)1;
}

__attribute__((noinline)) static void *park_on_sleep(void *arg) {
  weft_sem_post(&ready);
  /* Ended early by weft_cancel. */
  int rc = weft_sleep(60LL * 1000 * 1000 * 1000);
  return rc == 0 || rc == -ECANCELED ? NULL : (void *)1;
}

__attribute__((noinline)) static void *park_on_read(void *arg) {
  char c = 0;
  weft_sem_post(&ready);
  ssize_t n = weft_read(sv[0], &c, 1, WEFT_FOREVER);
  return n == 1 && c == 'x' ? NULL : (void *)1;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GDB_TARGET_NO_SPIN 1
#endif
#endif
#if defined(GDB_TARGET_STATIC) || defined(__SANITIZE_THREAD__)
#define GDB_TARGET_NO_SPIN 1
#endif
#ifdef GDB_TARGET_NO_SPIN
volatile int gdb_target_spins = 0;
#else
volatile int gdb_target_spins = 1;
#endif

static volatile int spin_stop;

__attribute__((noinline)) static void *spin_until_stopped(void *arg) {
  volatile unsigned long x = 0;
  while (!spin_stop)
    x++;
  return NULL;
}

/* gdb stops here.  The empty asm keeps the call from being optimised out. */
__attribute__((noinline)) void gdb_target_stop(void);
void gdb_target_stop(void) { __asm__ volatile("" ::: "memory"); }

static void *stopper(void *arg) {
  if (weft_sem_wait(&ids_stored) < 0)
    return (void *)1;
  gdb_target_stop();
  return NULL;
}

int main(void) {
  static const char *const names[NT] = {"park-chan", "park-mutex",
                                         "park-sleep", "park-read",
                                         "gdb-spin", "gdb-stop"};
  static weft_fn const fns[NT] = {park_on_chan, park_on_mutex,
                                  park_on_sleep, park_on_read,
                                  spin_until_stopped, stopper};
  weft_gthread t[NT];
  int rc;

  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("gdb_target: socketpair");
    return 1;
  }
  if ((rc = weft_init(&(weft_config){.workers = 1})) < 0)
    die("weft_init", rc);
  if ((rc = weft_chan_open(&ch, sizeof(long), 0)) < 0)
    die("weft_chan_open", rc);
  if ((rc = weft_sem_init(&ready, 0)) < 0 ||
      (rc = weft_sem_init(&ids_stored, 0)) < 0)
    die("weft_sem_init", rc);
  if ((rc = weft_mutex_lock(&mu)) < 0)
    die("weft_mutex_lock", rc);

  for (int i = 0; i < NT; i++) {
#ifdef GDB_TARGET_NO_SPIN
    if (i == T_SPIN)
      continue;
#endif
    if (i == T_STOP)
      for (int j = 0; j < T_SPIN; j++)
        if ((rc = weft_sem_wait(&ready)) < 0)
          die("weft_sem_wait", rc);
    rc = weft_spawn(&t[i], &(weft_gthread_attr){.name = names[i]}, fns[i],
                    NULL);
    if (rc < 0)
      die("weft_spawn", rc);
    gdb_target_ids[i] = t[i].id;
  }
  if ((rc = weft_sem_post(&ids_stored)) < 0)
    die("weft_sem_post", rc);

  /* Wait until gdb-stop has returned from the breakpoint, then wake the
   * others. */
  void *res;
  if ((rc = weft_join(t[T_STOP], &res)) < 0)
    die("weft_join", rc);
  spin_stop = 1;
#ifndef GDB_TARGET_NO_SPIN
  if ((rc = weft_join(t[T_SPIN], &res)) < 0)
    die("weft_join", rc);
#endif
  long v = 42;
  if ((rc = weft_chan_send(ch, &v)) < 0)
    die("weft_chan_send", rc);
  if ((rc = weft_mutex_unlock(&mu)) < 0)
    die("weft_mutex_unlock", rc);
  if ((rc = weft_cancel(t[T_SLEEP])) < 0 && rc != -ESRCH)
    die("weft_cancel", rc);
  if (write(sv[1], "x", 1) != 1) {
    perror("gdb_target: write");
    return 1;
  }
  for (int i = 0; i < T_SPIN; i++) {
    if ((rc = weft_join(t[i], &res)) < 0)
      die("weft_join", rc);
    if (res)
      die(names[i], -EIO);
  }
  weft_chan_free(ch);
  weft_sem_destroy(&ready);
  weft_sem_destroy(&ids_stored);
  close(sv[1]);
  weft_close(sv[0]);
  if ((rc = weft_shutdown()) < 0)
    die("weft_shutdown", rc);
  puts("gdb_target: ok");
  return 0;
}
