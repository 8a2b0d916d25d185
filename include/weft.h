/*
 * weft.h - the public API of weft, a runtime that runs work as green threads
 * (M:N over a pool of kernel worker threads), as 1:1 kernel threads, and as
 * forked worker processes.
 *
 * Conventions, once for the whole header:
 *  - Calls that can fail return 0 (or a non-negative value) on success and a
 *    negative errno on failure (-EINVAL, -ENOMEM, -EPIPE for a closed
 *    channel, -ETIMEDOUT, -EAGAIN for "would block", ...).
 *    weft_strerror() names them.
 *  - Deadlines are absolute CLOCK_MONOTONIC times in nanoseconds, as returned
 *    by weft_now().  WEFT_FOREVER never expires; WEFT_NOWAIT means "try once
 *    and return -EAGAIN if the call would block".  weft_deadline(ns) turns a
 *    relative timeout into a deadline.
 *  - Every blocking primitive (mutex, condition variable, semaphore,
 *    waitgroup, once, channels, select, sleep, join) works from green threads
 *    (the green thread parks, its worker runs others) and from ordinary
 *    kernel threads that are not weft workers (they sleep on a futex).
 *    Primitives may be shared between the two kinds of threads.
 *
 * Thread-local storage caveat: a green thread may resume on a different
 * worker (kernel thread) after any call that can block or yield.  C
 * thread-locals (__thread, _Thread_local, pthread_getspecific) therefore do
 * not follow a green thread, and a compiler may keep the address of a
 * thread-local in a register across such a call.  weft saves and restores
 * errno for each green thread at every switch, so errno read right after a
 * call is the green thread's own; for anything else, use the green-thread
 * locals below (weft_local_*), which always follow the green thread.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors and time                                                          */
/* ------------------------------------------------------------------------ */

/* A short English description of a weft return code (0 or -errno). */
WEFT_EXTERN const char *weft_strerror(int err);

#define WEFT_FOREVER INT64_MAX
#define WEFT_NOWAIT ((int64_t)0)

/* Monotonic clock, in nanoseconds. */
WEFT_EXTERN int64_t weft_now(void);
/* weft_now() + ns, saturating; ns <= 0 gives a deadline that has passed. */
WEFT_EXTERN int64_t weft_deadline(int64_t ns);

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

typedef struct weft_config {
  /* Worker kernel threads; 0 means the WEFT_WORKERS environment variable if
   * set, else the number of online CPUs.  At most 1024. */
  int workers;
  /* Default usable stack size of a green thread in bytes; 0 means 64 KiB.
   * Rounded up to a power of two, between 16 KiB and 1 GiB. */
  size_t stack_size;
} weft_config;

/*
 * Starts the runtime: the worker threads, their run queues and stack caches.
 * cfg may be NULL for the defaults.  Call it from an ordinary thread (not a
 * green thread).  Returns -EALREADY if the runtime is already running,
 * -EINVAL for a bad configuration, -ENOMEM/-EAGAIN if resources ran out.
 */
WEFT_EXTERN int weft_init(const weft_config *cfg);

/*
 * Stops the runtime: workers finish the green thread they are running at
 * its next switch and exit, and weft_shutdown() joins them.  Green threads
 * that are still alive are abandoned, never resumed (their memory stays
 * mapped so that nothing that points into it becomes invalid).  Join what
 * must finish before calling it.  After it returns, weft_init() may be
 * called again.  Returns -EPERM when called from a green thread and
 * -ESRCH when the runtime is not running.
 */
WEFT_EXTERN int weft_shutdown(void);

/* True between weft_init() and weft_shutdown(). */
WEFT_EXTERN bool weft_running(void);

/* Number of worker threads of the running runtime (0 if not running). */
WEFT_EXTERN int weft_workers(void);

/* Index of the worker the caller is running on, or -1 if the caller is not
 * a weft worker.  Only a hint: a green thread may move at any switch. */
WEFT_EXTERN int weft_worker_index(void);

/* ------------------------------------------------------------------------ */
/* Green threads                                                            */
/* ------------------------------------------------------------------------ */

/* A handle to a green thread; copyable.  A zeroed handle refers to none. */
typedef struct weft_gthread {
  void *p;
  uint64_t id;
} weft_gthread;

#define WEFT_NAME_MAX 32 /* bytes, including the terminating NUL */

typedef struct weft_gthread_attr {
  size_t stack_size; /* 0: the runtime's default (weft_config.stack_size) */
  const char *name;  /* copied, truncated to WEFT_NAME_MAX - 1; may be NULL */
  bool detached;     /* true: resources freed at exit, cannot be joined */
} weft_gthread_attr;

typedef void *(*weft_fn)(void *arg);

/*
 * Creates a green thread running fn(arg).  attr may be NULL.  t may be NULL
 * only for a detached thread.  From a green thread, the new thread runs at
 * once on the caller's worker and the caller continues when it blocks,
 * yields or exits (or sooner, on another worker that steals it).  From any
 * other thread it is queued and a worker is woken.
 * Errors: -EPERM if the runtime is not running, -EINVAL for a bad stack size
 * or a NULL fn or t, -ENOMEM/-EAGAIN when no stack can be mapped (the
 * message on stderr names the limit that was hit).
 */
WEFT_EXTERN int weft_spawn(weft_gthread *t, const weft_gthread_attr *attr,
                           weft_fn fn, void *arg);

/*
 * Waits for t to finish and stores its result in *result (if not NULL),
 * then frees it.  Works from green threads and from other threads.
 * Errors: -EDEADLK when t is the caller, -EINVAL when t is detached, was
 * already joined, or is not a valid handle.
 */
WEFT_EXTERN int weft_join(weft_gthread t, void **result);

/* Lets t free its resources when it finishes; -EINVAL as for weft_join. */
WEFT_EXTERN int weft_detach(weft_gthread t);

/* Lets other green threads on this worker run.  From a thread that is not a
 * green thread it calls sched_yield().  Always returns 0. */
WEFT_EXTERN int weft_yield(void);

/* Ends the calling green thread with a result for weft_join().  Does not
 * return, except with -EPERM when the caller is not a green thread. */
WEFT_EXTERN int weft_exit(void *result);

/* The calling green thread (a zeroed handle outside green threads). */
WEFT_EXTERN weft_gthread weft_self(void);
/* Its id (ids start at 1 and are never reused; 0 outside green threads). */
WEFT_EXTERN uint64_t weft_id(void);
/* Its name ("" if it has none; NULL outside green threads). */
WEFT_EXTERN const char *weft_name(void);
/* Renames the calling green thread; -EPERM outside green threads. */
WEFT_EXTERN int weft_set_name(const char *name);
/* True when called from a green thread. */
WEFT_EXTERN bool weft_in_gthread(void);

/* Where a green thread's stack lives: the guard below it (PROT_NONE or a
 * kernel guard region) and the usable part, whose top holds the thread's
 * descriptor.  -EINVAL for an invalid handle. */
typedef struct weft_stack_info {
  void *guard_lo;
  size_t guard_size;
  void *stack_lo;
  size_t stack_size;
  bool kernel_guard; /* true: MADV_GUARD_INSTALL, no extra mapping */
} weft_stack_info;
WEFT_EXTERN int weft_stack_info_get(weft_gthread t, weft_stack_info *info);

/* Sleeps; green threads park, other threads call nanosleep.  Returns 0. */
WEFT_EXTERN int weft_sleep(int64_t ns);
WEFT_EXTERN int weft_sleep_until(int64_t deadline);

/* ------------------------------------------------------------------------ */
/* Green-thread-local storage                                               */
/* ------------------------------------------------------------------------ */

#define WEFT_LOCAL_MAX 128

typedef struct weft_local_key {
  unsigned index;
} weft_local_key;

/* Creates a key; dtor (may be NULL) runs on a non-NULL value when its green
 * thread exits.  -EAGAIN when all WEFT_LOCAL_MAX keys are in use. */
WEFT_EXTERN int weft_local_create(weft_local_key *key, void (*dtor)(void *));
/* Per green thread value; outside green threads, per kernel thread.
 * -EINVAL for a key that was not created, -ENOMEM. */
WEFT_EXTERN int weft_local_set(weft_local_key key, void *value);
WEFT_EXTERN void *weft_local_get(weft_local_key key);

/* ------------------------------------------------------------------------ */
/* Synchronisation                                                          */
/* ------------------------------------------------------------------------ */
/* All-zero memory is a valid unlocked mutex, condition variable, waitgroup
 * and once (the *_INIT macros are zero), so they can be static.  A semaphore
 * needs weft_sem_init().  None of them may be copied after use. */

typedef struct weft_mutex {
  uint64_t opaque[4];
} weft_mutex;
typedef struct weft_cond {
  uint64_t opaque[4];
} weft_cond;
typedef struct weft_sem {
  uint64_t opaque[4];
} weft_sem;
typedef struct weft_waitgroup {
  uint64_t opaque[4];
} weft_waitgroup;
typedef struct weft_once {
  uint64_t opaque[4];
} weft_once;

#define WEFT_MUTEX_INIT {{0}}
#define WEFT_COND_INIT {{0}}
#define WEFT_WAITGROUP_INIT {{0}}
#define WEFT_ONCE_INIT {{0}}

WEFT_EXTERN int weft_mutex_init(weft_mutex *m);
/* -EBUSY when locked or waited on. */
WEFT_EXTERN int weft_mutex_destroy(weft_mutex *m);
WEFT_EXTERN int weft_mutex_lock(weft_mutex *m);
/* -ETIMEDOUT at the deadline, -EAGAIN for WEFT_NOWAIT. */
WEFT_EXTERN int weft_mutex_lock_until(weft_mutex *m, int64_t deadline);
/* -EBUSY when held. */
WEFT_EXTERN int weft_mutex_trylock(weft_mutex *m);
/* -EPERM when the mutex is not locked.  A waiter, if any, is handed the
 * mutex directly, so no waiter can be starved. */
WEFT_EXTERN int weft_mutex_unlock(weft_mutex *m);

WEFT_EXTERN int weft_cond_init(weft_cond *c);
WEFT_EXTERN int weft_cond_destroy(weft_cond *c); /* -EBUSY when waited on */
/* m must be locked by the caller; it is locked again on return, also on
 * -ETIMEDOUT. */
WEFT_EXTERN int weft_cond_wait(weft_cond *c, weft_mutex *m);
WEFT_EXTERN int weft_cond_wait_until(weft_cond *c, weft_mutex *m,
                                     int64_t deadline);
WEFT_EXTERN int weft_cond_signal(weft_cond *c);
WEFT_EXTERN int weft_cond_broadcast(weft_cond *c);

/* -EINVAL if value > WEFT_SEM_MAX. */
#define WEFT_SEM_MAX ((unsigned)INT32_MAX)
WEFT_EXTERN int weft_sem_init(weft_sem *s, unsigned value);
WEFT_EXTERN int weft_sem_destroy(weft_sem *s); /* -EBUSY when waited on */
WEFT_EXTERN int weft_sem_wait(weft_sem *s);
WEFT_EXTERN int weft_sem_wait_until(weft_sem *s, int64_t deadline);
WEFT_EXTERN int weft_sem_trywait(weft_sem *s); /* -EAGAIN when zero */
WEFT_EXTERN int weft_sem_post(weft_sem *s);    /* -EOVERFLOW at the max */
WEFT_EXTERN int weft_sem_value(weft_sem *s);

WEFT_EXTERN int weft_waitgroup_init(weft_waitgroup *wg);
/* Adds delta (may be negative) to the counter; waiters wake at zero.
 * -EINVAL if the counter would go below zero (the counter is unchanged). */
WEFT_EXTERN int weft_waitgroup_add(weft_waitgroup *wg, int64_t delta);
WEFT_EXTERN int weft_waitgroup_done(weft_waitgroup *wg);
WEFT_EXTERN int weft_waitgroup_wait(weft_waitgroup *wg);
WEFT_EXTERN int weft_waitgroup_wait_until(weft_waitgroup *wg,
                                          int64_t deadline);

/* Runs fn(arg) exactly once per weft_once; concurrent callers wait until it
 * has returned.  -EINVAL for a NULL fn. */
WEFT_EXTERN int weft_once_call(weft_once *o, void (*fn)(void *), void *arg);

/* ------------------------------------------------------------------------ */
/* Channels                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct weft_chan weft_chan;

/*
 * A channel of elements of elem_size bytes (1 to 65536), with capacity
 * elements of buffer (0: unbuffered; a send completes when a receiver takes
 * the element).  Returns -EINVAL or -ENOMEM.
 */
WEFT_EXTERN int weft_chan_open(weft_chan **ch, size_t elem_size,
                               size_t capacity);
/* Frees a channel; -EBUSY while threads are blocked on it. */
WEFT_EXTERN int weft_chan_free(weft_chan *ch);
/* Closes: blocked and later senders get -EPIPE; receivers drain what is
 * buffered, then get -EPIPE.  -EPIPE if already closed. */
WEFT_EXTERN int weft_chan_close(weft_chan *ch);

/* Copies elem_size bytes from/to elem.  -EPIPE when closed. */
WEFT_EXTERN int weft_chan_send(weft_chan *ch, const void *elem);
WEFT_EXTERN int weft_chan_recv(weft_chan *ch, void *elem);
/* Also -ETIMEDOUT at the deadline, -EAGAIN for WEFT_NOWAIT. */
WEFT_EXTERN int weft_chan_send_until(weft_chan *ch, const void *elem,
                                     int64_t deadline);
WEFT_EXTERN int weft_chan_recv_until(weft_chan *ch, void *elem,
                                     int64_t deadline);
WEFT_EXTERN size_t weft_chan_len(weft_chan *ch); /* buffered elements */
WEFT_EXTERN size_t weft_chan_cap(weft_chan *ch);

enum weft_select_op { WEFT_SEND = 1, WEFT_RECV = 2 };

typedef struct weft_select_case {
  weft_chan *ch;
  int op;     /* WEFT_SEND or WEFT_RECV */
  void *elem; /* the element to send, or where to store the one received */
  int result; /* set for the case that fired: 0, or -EPIPE (closed) */
} weft_select_case;

/*
 * Waits until one of the n cases (1 to 1024) can proceed, performs it and
 * returns its index.  When several are ready, one is chosen at random.  A
 * case on a closed channel fires with result -EPIPE.  Returns -ETIMEDOUT at
 * the deadline, -EAGAIN with WEFT_NOWAIT when none is ready (the "default"
 * case), -EINVAL for bad cases.
 */
WEFT_EXTERN int weft_select(weft_select_case *cases, size_t n,
                            int64_t deadline);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

typedef struct weft_worker_stats {
  uint64_t switches;   /* green thread switches */
  uint64_t spawns;     /* green threads created */
  uint64_t steals;     /* green threads stolen from other workers */
  uint64_t parks;      /* times the worker went to sleep */
  uint64_t wakes;      /* green threads made runnable */
  uint64_t runq_hwm;   /* run queue high-water mark */
  uint64_t stack_hits; /* stacks taken from the worker's cache */
  uint64_t stack_maps; /* stacks newly mapped */
} weft_worker_stats;

/* Fills stats[0 .. min(n, workers)) and returns the number of workers,
 * or -ESRCH when the runtime is not running. */
WEFT_EXTERN int weft_stats(weft_worker_stats *stats, int n);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
