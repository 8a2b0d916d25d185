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
 *  - Misuse is an error, never undefined behaviour.  A NULL pointer where
 *    an object, a function or a buffer of n > 0 bytes is required gives
 *    -EINVAL (weft_getaddrinfo: EAI_SYSTEM with errno EINVAL), before the
 *    call waits or changes anything; calls that return a size return 0 for
 *    NULL and calls that return a bool false.  Pointers documented as "may
 *    be NULL" are optional.  A lock used by a thread that does not hold it
 *    gives -EPERM, a relock by its holder -EDEADLK.
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
 * thread-local in a register across such a call.
 *  - errno: weft saves and restores errno for each green thread at every
 *    switch, and this header redefines the errno macro (after <errno.h>)
 *    so that its address is looked up afresh after every call, never kept
 *    in a register across one: C libraries declare __errno_location
 *    "const", which lets a compiler at -O1 and above keep the first
 *    worker's errno across a switch.  So errno read right after a call is
 *    the green thread's own, at any optimisation level, in every file that
 *    includes weft.h (include it before code that reads errno).  The cost
 *    is one call where errno is read or written, nothing elsewhere.
 *  - Other thread-locals: use the green-thread locals below (weft_local_*),
 *    which always follow the green thread, or pin the green thread to its
 *    worker (weft_gthread_attr.pinned, weft_pin) so that it never moves.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include <errno.h>

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

/* The calling kernel thread's errno, looked up afresh: declared pure, not
 * const, so a compiler may reuse the address between two reads with no
 * call in between, but never across a call (which may switch workers).
 * errno is redefined to use it (see above). */
#if defined(__GNUC__)
WEFT_EXTERN int *weft_errno_location(void) __attribute__((pure));
#else
WEFT_EXTERN int *weft_errno_location(void);
#endif
#undef errno
#define errno (*weft_errno_location())

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

/* Durations in nanoseconds, for weft_deadline and weft_sleep:
 * weft_deadline(weft_sec(30)), weft_sleep(weft_ms(5)).  They saturate at
 * INT64_MAX (WEFT_FOREVER) and INT64_MIN instead of overflowing. */
static inline int64_t weft__ns_scale(int64_t v, int64_t unit) {
  if (v > INT64_MAX / unit)
    return INT64_MAX;
  if (v < INT64_MIN / unit)
    return INT64_MIN;
  return v * unit;
}
static inline int64_t weft_us(int64_t us) { return weft__ns_scale(us, 1000); }
static inline int64_t weft_ms(int64_t ms) {
  return weft__ns_scale(ms, 1000000);
}
static inline int64_t weft_sec(int64_t s) {
  return weft__ns_scale(s, 1000000000);
}

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
  /* Most kernel threads of the blocking-call pool (weft_blocking); 0 means
   * 64.  Threads are started on demand and exit after 10 s idle. */
  int blocking_threads;
  /* Report a green thread that holds its worker this many ms without
   * switching and could not be preempted ("weft: green thread 17 "conn-3"
   * ran 52 ms without yielding on worker 1"): one in a non-preemptible
   * region, one blocked in a system call, or any, when preemption is off.
   * 0 means the WEFT_HOG_MS environment variable if set, else 100;
   * negative (or WEFT_HOG_MS=0) turns the check off. */
  int hog_ms;
  /* Bytes of guard below each green-thread stack, rounded up to pages
   * (at least one); 0 means the WEFT_GUARD_SIZE environment variable if
   * set (bytes, or with a K, M or G suffix), else 1 MiB.  At most 1 GiB.
   * A stack overflow whose frame is at most this large always hits the
   * guard and is reported; a larger frame is caught only in code built
   * with -fstack-clash-protection (which weft.pc's Cflags give where the
   * compiler has it): such code touches every page of a frame as it grows,
   * so a one-page guard catches it too, and suits very many threads.
   * The guard is address space, not memory (it counts against ulimit -v),
   * plus kernel page tables: on Linux 6.13+ the guard is a kernel guard
   * region (MADV_GUARD_INSTALL), one page-table entry per guard page;
   * elsewhere it is PROT_NONE, and stacks 1 MiB apart each need page
   * tables of their own.  Either way a 1 MiB guard costs about 2.1 KiB of
   * page tables per stack (VmPTE: 208 MiB for 100,000 green threads),
   * against 0.13 KiB with one page. */
  size_t guard_size;
  /* The time slice, in microseconds: a green thread that has run this
   * long without switching, while other work waits for its worker, is
   * preempted (see "Preemption" below).  0 means the WEFT_SLICE_US
   * environment variable if set, else 10000 (10 ms); negative (or
   * WEFT_SLICE_US=0) turns preemption off.  At least 1000. */
  int slice_us;
} weft_config;

/*
 * Starts the runtime: the worker threads, their run queues and stack caches.
 * cfg may be NULL for the defaults.  Call it from an ordinary thread (not a
 * green thread).  Returns -EALREADY if the runtime is already running,
 * -EINVAL for a bad configuration, -ENOMEM/-EAGAIN if resources ran out.
 * A child forked from a process that runs weft (by fork(), a PROCESS task
 * or weft_procs_run) starts with the runtime stopped and may call
 * weft_init again; it must not use the parent's weft objects (a lock may
 * be held by a thread that does not exist in the child).
 */
WEFT_EXTERN int weft_init(const weft_config *cfg);

/*
 * Stops the runtime: workers finish the green thread they are running at
 * its next switch and exit, and weft_shutdown() joins them.  Green threads
 * that are still alive are abandoned, never resumed, not even by a later
 * runtime (their memory stays mapped so that nothing that points into it
 * becomes invalid).  Join what must finish before calling it.  What holds
 * for an abandoned thread, from any thread, during and after the shutdown
 * and after a new weft_init(): waking it (posting a semaphore it waits on,
 * unlocking a mutex, a channel send, closing an fd it waits on) is safe
 * and does nothing to it (a value handed to it, such as a channel element
 * or a semaphore count, goes with it); weft_join(), weft_detach() and
 * weft_cancel() return -ESRCH, and a kernel thread blocked in weft_join()
 * on it returns -ESRCH.  weft_spawn() from another thread that races the
 * shutdown returns 0 (the thread runs, or is abandoned) or -EPERM.  After
 * it returns, weft_init() may be called again.  Returns -EPERM when called
 * from a green thread and -ESRCH when the runtime is not running.
 */
WEFT_EXTERN int weft_shutdown(void);

/* True between weft_init() and weft_shutdown(). */
WEFT_EXTERN bool weft_running(void);

/* Number of worker threads of the running runtime (0 if not running). */
WEFT_EXTERN int weft_workers(void);

/* Index of the worker the caller is running on, or -1 if the caller is not
 * a weft worker.  Only a hint: a green thread may move at any switch,
 * unless it is pinned. */
WEFT_EXTERN int weft_worker_index(void);

/*
 * Pins the calling green thread to the worker it runs on (pinned true), or
 * lets it move again (false).  A pinned thread is never stolen or resumed
 * elsewhere, so C thread-locals (a library's per-thread cache, a
 * thread-local errno of another library) stay its own across calls that
 * block or yield.  The price: it waits for its worker even when another is
 * idle, and a wake from another worker reaches it within 16 of its
 * worker's switches, or at once if that worker is idle.  Returns the
 * worker's index when pinning, 0 when unpinning, -EPERM outside a green
 * thread.  weft_gthread_attr.pinned pins a thread from its start.
 */
WEFT_EXTERN int weft_pin(bool pinned);

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
  /* true: runs only on the worker it first runs on (see weft_pin). */
  bool pinned;
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
 * already joined, or is not a valid handle, -ESRCH when t was abandoned by
 * weft_shutdown (also while the caller waits: a kernel thread blocked in
 * weft_join returns -ESRCH when the runtime stops under it).
 */
WEFT_EXTERN int weft_join(weft_gthread t, void **result);
/* The same with a deadline: -ETIMEDOUT when it passes first, -EAGAIN with
 * WEFT_NOWAIT when t has not finished; t can then be joined again. */
WEFT_EXTERN int weft_join_until(weft_gthread t, void **result,
                                int64_t deadline);
/* Joins t if it has finished, else returns -EBUSY at once (as
 * pthread_tryjoin_np). */
WEFT_EXTERN int weft_tryjoin(weft_gthread t, void **result);

/* Lets t free its resources when it finishes; -EINVAL as for weft_join,
 * -ESRCH when t was abandoned by weft_shutdown. */
WEFT_EXTERN int weft_detach(weft_gthread t);

/* Lets other green threads on this worker run.  From a thread that is not a
 * green thread it calls sched_yield().  Always returns 0. */
WEFT_EXTERN int weft_yield(void);

/*
 * Preemption.  A green thread that has run for its time slice
 * (weft_config.slice_us, 10 ms by default) without switching, while other
 * green threads, due timers or ready descriptors wait for its worker, is
 * preempted: the worker goes on with the others, and the thread resumes
 * later, perhaps on another worker, with every register (vector, x87 and
 * flags included), its signal mask and its errno as they were.
 *
 * A preempted thread keeps its kernel thread while it waits, and the
 * worker goes on with a spare kernel thread (kernel threads beyond the
 * workers are at most 4 per worker, plus 16; past that, preemptions wait
 * for one to come back).  So a thread may be stopped anywhere in its
 * own code or in a library's, even inside libc or the allocator or
 * holding a pthread mutex: the thread-locals, caches and locks of its
 * kernel thread stay its own, and nothing else runs on that kernel thread
 * until it resumes.  A worker whose kernel thread waits for such a lock
 * (a futex) while other work is queued is handed over the same way.
 *
 * Never preempted: a thread inside weft (in a call, a switch, or code
 * weft called back), in a non-preemptible region (below), or in a system
 * call other than a futex wait, which the hog monitor reports instead
 * (weft_config.hog_ms).  A request made there is counted as deferred and
 * made once the thread is out (the monitor asks again every half
 * slice, and weft_preempt_enable yields).  Preemption is not available
 * in a program linked statically with libweft, nor under
 * ThreadSanitizer; weft_stats() then counts no preemptions.
 *
 * weft preempts with SIGURG, sent to one thread; a handler the program
 * installed before weft_init still gets the SIGURGs weft did not send.
 * Only a running thread (or one waiting on a futex) is signalled, so a
 * slow system call is interrupted only if it starts in that instant, and
 * only one that SA_RESTART cannot restart (nanosleep, poll, epoll_wait;
 * see signal(7)) may then fail with EINTR, as under any signal.
 */

/* Marks the running green thread non-preemptible until the matching
 * weft_preempt_enable (the calls nest: a thread can mark itself for its
 * whole life with one call).  A preemption asked for meanwhile is made at
 * the outermost enable, which then yields.  Both cost a few ns and make
 * no system call.  They return the depth after the call, or -EPERM
 * outside a green thread; enable returns -EINVAL without a disable. */
WEFT_EXTERN int weft_preempt_disable(void);
WEFT_EXTERN int weft_preempt_enable(void);

/* Ends the calling green thread with a result for weft_join().  Does not
 * return, except with -EPERM when the caller is not a green thread. */
WEFT_EXTERN int weft_exit(void *result);

/* The calling green thread (a zeroed handle outside green threads). */
WEFT_EXTERN weft_gthread weft_self(void);
/* Its id (ids start at 1 and are never reused, but threads spawned on
 * different workers do not get them in creation order; 0 outside green
 * threads). */
WEFT_EXTERN uint64_t weft_id(void);
/* Its name ("" if it has none; NULL outside green threads). */
WEFT_EXTERN const char *weft_name(void);
/* Renames the calling green thread (NULL clears the name); -EPERM outside
 * green threads. */
WEFT_EXTERN int weft_set_name(const char *name);
/* True when called from a green thread. */
WEFT_EXTERN bool weft_in_gthread(void);

/* Where a green thread's stack lives: the guard below it (PROT_NONE or a
 * kernel guard region; guard_size is weft_config.guard_size as it was when
 * the stack was made, 1 MiB by default) and the usable part, whose top
 * holds the thread's descriptor.  -EINVAL for an invalid handle. */
typedef struct weft_stack_info {
  void *guard_lo;
  size_t guard_size;
  void *stack_lo;
  size_t stack_size;
  bool kernel_guard; /* true: MADV_GUARD_INSTALL, no extra mapping */
} weft_stack_info;
WEFT_EXTERN int weft_stack_info_get(weft_gthread t, weft_stack_info *info);

/* Sleeps; green threads park, other threads call nanosleep.  Returns 0, or
 * -ECANCELED for a green thread canceled with weft_cancel().  Green threads
 * that went to sleep on the same worker wake in deadline order, equal
 * deadlines in the order they went to sleep; across workers there is no
 * order, but a busy worker's due timers are run by an idle one. */
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
/* All-zero memory is a valid unlocked mutex, condition variable, waitgroup,
 * once and read-write lock (the *_INIT macros are zero), so they can be
 * static.  A semaphore needs weft_sem_init().  None of them may be copied
 * after use. */

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

/* The mutex checks its owner, like pthreads' PTHREAD_MUTEX_ERRORCHECK.
 * The owner is the calling green thread (wherever it runs), or the calling
 * kernel thread if it is not a green thread. */
WEFT_EXTERN int weft_mutex_init(weft_mutex *m);
/* -EBUSY when locked or waited on. */
WEFT_EXTERN int weft_mutex_destroy(weft_mutex *m);
/* -EDEADLK when the caller holds it already. */
WEFT_EXTERN int weft_mutex_lock(weft_mutex *m);
/* -ETIMEDOUT at the deadline, -EAGAIN for WEFT_NOWAIT, -EDEADLK. */
WEFT_EXTERN int weft_mutex_lock_until(weft_mutex *m, int64_t deadline);
/* -EBUSY when held, also by the caller (as pthreads' trylock). */
WEFT_EXTERN int weft_mutex_trylock(weft_mutex *m);
/* -EPERM when the caller does not hold the mutex (another thread does, or
 * no one).  A waiter, if any, is handed the mutex directly (it becomes the
 * owner), so no waiter can be starved. */
WEFT_EXTERN int weft_mutex_unlock(weft_mutex *m);

WEFT_EXTERN int weft_cond_init(weft_cond *c);
WEFT_EXTERN int weft_cond_destroy(weft_cond *c); /* -EBUSY when waited on */
/* m must be held by the caller (-EPERM otherwise); it is held again on
 * return, also on -ETIMEDOUT. */
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
WEFT_EXTERN int weft_sem_value(weft_sem *s);    /* the count; -EINVAL */

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

/*
 * A read-write lock: many readers or one writer.  All-zero memory is a
 * valid unlocked lock (WEFT_RWLOCK_INIT).  Writers are preferred: once a
 * writer waits, new readers queue behind it, so readers cannot starve it;
 * a writer's unlock admits every queued reader at once, so writers cannot
 * starve readers either.  Hence rdlock is not recursive: a thread that
 * holds a read lock and asks for another while a writer waits deadlocks
 * (undetected, as is a writer lock asked for while holding a read lock).
 * The writer is checked like a mutex's owner; readers are only counted.
 */
typedef struct weft_rwlock {
  uint64_t opaque[8];
} weft_rwlock;
#define WEFT_RWLOCK_INIT {{0}}

WEFT_EXTERN int weft_rwlock_init(weft_rwlock *l);
/* -EBUSY when held or waited on. */
WEFT_EXTERN int weft_rwlock_destroy(weft_rwlock *l);
/* -EDEADLK when the caller holds the write lock.  -EAGAIN when 2^30 - 1
 * readers are inside already. */
WEFT_EXTERN int weft_rwlock_rdlock(weft_rwlock *l);
/* Also -ETIMEDOUT at the deadline, -EAGAIN for WEFT_NOWAIT. */
WEFT_EXTERN int weft_rwlock_rdlock_until(weft_rwlock *l, int64_t deadline);
/* -EBUSY when a writer is inside or waits (also the caller). */
WEFT_EXTERN int weft_rwlock_tryrdlock(weft_rwlock *l);
/* -EDEADLK when the caller holds the write lock. */
WEFT_EXTERN int weft_rwlock_wrlock(weft_rwlock *l);
/* Also -ETIMEDOUT at the deadline, -EAGAIN for WEFT_NOWAIT. */
WEFT_EXTERN int weft_rwlock_wrlock_until(weft_rwlock *l, int64_t deadline);
/* -EBUSY when held or waited on (also by the caller). */
WEFT_EXTERN int weft_rwlock_trywrlock(weft_rwlock *l);
/* Releases the caller's write lock, or one read lock.  -EPERM when the
 * write lock is held by another thread, or when the lock is not held at
 * all (not read-locked and not write-locked).  Waiters are handed the lock
 * directly. */
WEFT_EXTERN int weft_rwlock_unlock(weft_rwlock *l);

/* ------------------------------------------------------------------------ */
/* Channels                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct weft_chan weft_chan;

/*
 * A channel of elements of elem_size bytes (1 to 65536), with capacity
 * elements of buffer (0: unbuffered; a send completes when a receiver takes
 * the element).  Returns -EINVAL (also for a capacity of 2^32 elements or
 * more, or a buffer over 1 TiB) or -ENOMEM.
 */
WEFT_EXTERN int weft_chan_open(weft_chan **ch, size_t elem_size,
                               size_t capacity);
/* Frees a channel; -EBUSY while threads are blocked on it. */
WEFT_EXTERN int weft_chan_free(weft_chan *ch);
/* Closes: blocked and later senders get -EPIPE; receivers drain what is
 * buffered, then get -EPIPE.  -EPIPE if already closed. */
WEFT_EXTERN int weft_chan_close(weft_chan *ch);

/* Copies elem_size bytes from/to elem.  -EPIPE when closed.  A green
 * thread that receives from an empty buffered channel first lets the other
 * green threads runnable on its worker run (often the producers), then
 * takes what they sent as a batch, and parks only if there is still
 * nothing: far fewer parks and wakes than one a message, for a little
 * latency. */
WEFT_EXTERN int weft_chan_send(weft_chan *ch, const void *elem);
WEFT_EXTERN int weft_chan_recv(weft_chan *ch, void *elem);
/* Also -ETIMEDOUT at the deadline, -EAGAIN for WEFT_NOWAIT. */
WEFT_EXTERN int weft_chan_send_until(weft_chan *ch, const void *elem,
                                     int64_t deadline);
WEFT_EXTERN int weft_chan_recv_until(weft_chan *ch, void *elem,
                                     int64_t deadline);
/* Buffered elements, and capacity; 0 for NULL. */
WEFT_EXTERN size_t weft_chan_len(weft_chan *ch);
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
/* Modes: one call shape, three ways to run a function                       */
/* ------------------------------------------------------------------------ */

typedef enum weft_mode {
  WEFT_MODE_GREEN = 1,   /* a green thread on the M:N scheduler */
  WEFT_MODE_KTHREAD = 2, /* a kernel thread of its own (pthread, 1:1) */
  WEFT_MODE_PROCESS = 3, /* a forked child process */
} weft_mode;

/* A running task; opaque, one per weft_task_start, then either waited
 * for once or detached once. */
typedef struct weft_task {
  uint64_t opaque[6];
} weft_task;

/*
 * Runs fn(arg) in the given mode.  GREEN needs the runtime running
 * (-EPERM otherwise).  KTHREAD starts a kernel thread that may use every
 * weft primitive (they work from any thread).  PROCESS forks the caller:
 * the child runs fn(arg) on its only thread, with weft not running in it
 * (it may call weft_init for its own), and exits; fn's result comes back as
 * a pointer-sized value, so it should be an integer or a pointer into the
 * shared heap.  The child gets a copy of the parent's memory at the fork:
 * changes it makes are its own.  weft reaps the child as soon as it exits,
 * whether or not anyone waits (a reaper thread, one per process, waits on
 * a pidfd per child): it never waits with waitpid(-1), so the program's
 * own children are left for the program to wait for; but a program that
 * reaps with waitpid(-1), or sets SIGCHLD to SIG_IGN, takes the status of
 * process tasks too (their wait then gives -ECHILD).  Each started task is
 * either waited for (weft_task_wait) or detached (weft_task_detach): one
 * that is neither keeps its record (KTHREAD: also the thread's stack).
 * Errors: -EINVAL, -ENOMEM, -EAGAIN.
 */
WEFT_EXTERN int weft_task_start(weft_task *t, weft_mode mode, weft_fn fn,
                                void *arg);
/*
 * Waits for the task and stores fn's result.  Parks a green thread, sleeps
 * a kernel thread.  A PROCESS task whose child died without returning
 * (a signal, or exit() inside fn) gives -ECHILD, and a line on stderr
 * naming the signal or status.  -EINVAL for a task already waited for or
 * detached (or never started), -EDEADLK for a green task waiting for
 * itself.  A PROCESS task's fn runs on the caller's stack (64 KiB by
 * default when the caller is a green thread).
 */
WEFT_EXTERN int weft_task_wait(weft_task *t, void **result);
/*
 * Detaches a started task: nobody will wait for it, and what it holds is
 * released when it ends (a green thread's stack, a kernel thread, the
 * task's record; a PROCESS task's child is reaped as always, so it leaves
 * no zombie).  Its result, and a child's exit status, are discarded.  Any
 * thread may detach it once weft_task_start has returned, also after the
 * task ended (it is released at once then) and, GREEN or KTHREAD, from
 * inside fn.  The handle is then free for another start; until one,
 * weft_task_pid still answers.
 * -EINVAL for NULL, a task never started, or one waited for or detached
 * already (and weft_task_wait gives -EINVAL for a detached task); -ESRCH
 * for a GREEN task abandoned by weft_shutdown (it stays as it was).
 */
WEFT_EXTERN int weft_task_detach(weft_task *t);
/*
 * The process id of a PROCESS task's child, for log lines and tools: from
 * the start on, also after weft_task_wait and weft_task_detach.  -EINVAL
 * for NULL, a task never started, or a GREEN or KTHREAD task.  Do not
 * signal the child by this number: the child is reaped as soon as it
 * exits, and its number may then be given to any new process.  Use
 * weft_task_pidfd for that.
 */
WEFT_EXTERN pid_t weft_task_pid(const weft_task *t);
/*
 * A new pidfd (close-on-exec) for a PROCESS task's child, owned by the
 * caller, who closes it.  It refers to that child and no other process for
 * as long as it is open: pidfd_send_signal(2) on it signals the child
 * (ESRCH once the child is gone, never a process that got its number), and
 * poll(2) or epoll report it readable once the child has exited.  Both
 * keep working after the task is waited for or detached, so a program can
 * take one, detach the task, and still signal the child and see it end.
 * Call it while the task is live: after the start, before
 * weft_task_wait or weft_task_detach (not at the same time as either).
 * -ESRCH when the child has exited and weft has reaped it already (it
 * does so at once): there is nothing left to signal or to watch.
 * -EINVAL for NULL, a task never started, waited for or detached, or a
 * GREEN or KTHREAD task; -EMFILE or -ENFILE when out of descriptors.
 */
WEFT_EXTERN int weft_task_pidfd(const weft_task *t);

/* ------------------------------------------------------------------------ */
/* I/O that parks green threads                                             */
/* ------------------------------------------------------------------------ */
/*
 * These calls work from any thread.  In a green thread, a call that would
 * block parks the green thread until the fd is ready (the netpoller, epoll
 * driven by the workers, wakes it) and its worker runs others meanwhile.
 * In a kernel thread that is not a worker, the call blocks in poll(2).
 *
 * An fd is taken over on its first use by any of them (or by
 * weft_fd_adopt): it is switched to O_NONBLOCK and registered with the
 * netpoller.  Close such an fd with weft_close(), which wakes every thread
 * blocked on it with -EBADF; if something else closes it, call
 * weft_fd_forget() first.  Fds returned by weft_accept() are non-blocking
 * and already taken over.
 *
 * deadline: absolute, as everywhere (WEFT_FOREVER, WEFT_NOWAIT).  When it
 * passes the call returns -ETIMEDOUT (-EAGAIN for WEFT_NOWAIT).  A green
 * thread canceled with weft_cancel() gets -ECANCELED.  Other failures are
 * the system call's, as -errno.  Writes to sockets use MSG_NOSIGNAL, and
 * weft_init() ignores SIGPIPE if it is at its default, so a peer that goes
 * away yields -EPIPE, never a dead process.
 *
 * Writes (weft_write, weft_writev, weft_send) send everything they were
 * given unless the deadline passes or an error occurs; then they return
 * the bytes sent so far if any (the next call reports the error), else
 * -errno.  Reads return as soon as some bytes are there, 0 at end of file.
 *
 * A green thread whose fds are always ready would never switch (a client
 * that keeps a socket full, a listener with a backlog), and the other
 * green threads on its worker would wait.  So after 64 calls in a row that
 * did not have to wait, one of them yields once before it returns, after
 * its data has moved: nothing is lost or reordered.  For the same reason
 * a write of more than 256 KiB goes to the kernel in slices of 256 KiB,
 * and a green thread yields between them: a 160 MB reply to a client that
 * reads as fast as it is sent does not hold the worker for the whole copy.
 */
WEFT_EXTERN int weft_fd_adopt(int fd);  /* -EBADF if fd is not open */
WEFT_EXTERN int weft_fd_forget(int fd); /* unregisters, does not close */
/* Closes fd even from a canceled green thread; 0 or -errno (-EBADF). */
WEFT_EXTERN int weft_close(int fd);
WEFT_EXTERN ssize_t weft_read(int fd, void *buf, size_t n, int64_t deadline);
WEFT_EXTERN ssize_t weft_write(int fd, const void *buf, size_t n,
                               int64_t deadline);
struct iovec;
WEFT_EXTERN ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt,
                               int64_t deadline);
WEFT_EXTERN ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt,
                                int64_t deadline);
WEFT_EXTERN ssize_t weft_recv(int fd, void *buf, size_t n, int flags,
                              int64_t deadline);
WEFT_EXTERN ssize_t weft_send(int fd, const void *buf, size_t n, int flags,
                              int64_t deadline);
/* accept4(2): flags as accept4's (SOCK_CLOEXEC); the new fd is always
 * non-blocking.  Returns the fd.  -EMFILE/-ENFILE when out of fds: the
 * caller should back off (weft_sleep) and keep serving. */
WEFT_EXTERN int weft_accept(int fd, struct sockaddr *addr,
                            socklen_t *addrlen, int flags, int64_t deadline);
/* connect(2) that waits for the connection to complete (or fail). */
WEFT_EXTERN int weft_connect(int fd, const struct sockaddr *addr,
                             socklen_t addrlen, int64_t deadline);
/* Waits until fd is ready for events (POLLIN, POLLOUT); returns the ready
 * events (POLLIN, POLLOUT, POLLHUP, POLLERR), or -ETIMEDOUT. */
WEFT_EXTERN int weft_wait_fd(int fd, int events, int64_t deadline);

/*
 * Cancels green thread t: if it is blocked in one of the I/O calls above or
 * in weft_sleep*, it wakes with -ECANCELED, and each of those calls it makes
 * later returns -ECANCELED at once.  Used to end connections at shutdown.
 * -ESRCH if t has finished or was abandoned by weft_shutdown.
 */
WEFT_EXTERN int weft_cancel(weft_gthread t);
/* True when the calling green thread has been canceled. */
WEFT_EXTERN bool weft_canceled(void);

/* ------------------------------------------------------------------------ */
/* Blocking calls on a kernel-thread pool                                   */
/* ------------------------------------------------------------------------ */
/*
 * Runs fn(arg) on one of weft's blocking-pool kernel threads and waits for
 * it to return, so that a call that would block a worker (file I/O, name
 * lookups, a library that blocks) does not stall the other green threads
 * on that worker: the calling green thread parks meanwhile.  At most
 * weft_config.blocking_threads calls run at once; more wait their turn.
 * Returns 0 and fn's result in *result (may be NULL), -ESRCH if the runtime
 * is stopping, -EAGAIN if no thread could be started.  From a kernel thread
 * that is not a worker, fn simply runs on the caller (whether the runtime
 * runs or not) and the call returns 0.
 */
WEFT_EXTERN int weft_blocking(weft_fn fn, void *arg, void **result);
/* Common cases, on the pool: same results as the system calls, as -errno. */
WEFT_EXTERN int weft_open(const char *path, int flags, mode_t mode);
WEFT_EXTERN ssize_t weft_pread(int fd, void *buf, size_t n, off_t off);
WEFT_EXTERN ssize_t weft_pwrite(int fd, const void *buf, size_t n, off_t off);
WEFT_EXTERN int weft_fsync(int fd);
struct addrinfo;
/* getaddrinfo(3) on the pool; returns its result (0 or an EAI_ code). */
WEFT_EXTERN int weft_getaddrinfo(const char *node, const char *service,
                                 const struct addrinfo *hints,
                                 struct addrinfo **res);

/* ------------------------------------------------------------------------ */
/* Worker processes                                                          */
/* ------------------------------------------------------------------------ */

typedef struct weft_procs_config {
  int procs;  /* worker processes, 1 to 64 */
  /* Runs in each worker process; its return value is the worker's exit
   * status.  It should return soon after weft_procs_draining() turns true.
   * index is the worker's slot, 0 to procs - 1, kept across restarts. */
  int (*worker)(int index, void *arg);
  void *arg;
  size_t shm_size;    /* bytes of shared heap (0: none), split per worker */
  int listen_fd;      /* -1, or a listening socket every worker inherits */
  int drain_ms;       /* SIGTERM to SIGKILL grace period; 0: 10000 */
  int max_restarts;   /* per slot; 0: unlimited; -1: never restart */
} weft_procs_config;

/*
 * Becomes the supervisor of a pool of worker processes: maps the shared
 * heap (if any), forks cfg->procs workers, and waits.  A worker that dies
 * of a signal or exits non-zero is logged
 * ("weft: worker 2 (pid 1234) killed by SIGSEGV; restarting") and forked
 * again after a backoff (10 ms doubling to 1 s), with its shared-heap
 * partition reclaimed.
 * SIGTERM and SIGINT are forwarded to the workers, which drain and exit;
 * after cfg->drain_ms the rest are killed.  At the start of a drain the
 * listening socket (listen_fd) stops listening (shutdown(2)), so that new
 * clients are refused at once instead of waiting for a worker that will
 * not accept them.  A worker drained by a signal
 * the supervisor did not send (SIGTERM to its pid alone) is started again,
 * whatever it returned, and logged ("weft: worker 1 (pid 1234) drained on a
 * signal the supervisor did not send; restarting"): the pool never shrinks
 * in silence.  Every child is reaped.  Returns
 * 0 when all workers exited with status 0, -ECHILD if any failed (was
 * given up, or had to be killed at the end of a drain), or another -errno
 * (-EINVAL for a bad config, -EBADF for a listen_fd that is not open,
 * -EBUSY if weft's workers are running in this process (call it before
 * weft_init, since fork keeps only the calling thread), from a worker, or
 * while another pool runs).  Other threads of the supervisor must block
 * SIGTERM, SIGINT and SIGCHLD.  Workers get SIGTERM if the supervisor dies.
 * A worker that exits 0 keeps its shared-heap partition (objects it handed
 * out stay valid); one that fails loses it.
 */
WEFT_EXTERN int weft_procs_run(const weft_procs_config *cfg);
/* In a worker process: its slot index; -1 elsewhere. */
WEFT_EXTERN int weft_procs_index(void);
/* In a worker process: true once the supervisor asked it to drain. */
WEFT_EXTERN bool weft_procs_draining(void);
/* In a worker process: the inherited listening socket, or -1. */
WEFT_EXTERN int weft_procs_listen_fd(void);

/* ------------------------------------------------------------------------ */
/* Shared heap (between worker processes)                                    */
/* ------------------------------------------------------------------------ */
/*
 * One region mapped before fork at the same address in every worker, so a
 * pointer means the same object in all of them.  Each worker allocates from
 * its own jemalloc arena over its own partition.  Only the owner frees: a
 * free from another process is queued to the owner, which frees queued
 * objects in batches: within 16 of its shared-heap calls (per thread), at
 * once on weft_shm_free(NULL), and while it is blocked on a process
 * channel.
 * When a worker dies its partition is reclaimed and its generation bumped,
 * so references taken before are detected as stale.
 *
 * Never pass a shared-heap pointer to free() or realloc(), nor a malloc()
 * pointer to weft_shm_free (it is refused).  The calls work from any green
 * or kernel thread of a worker; a process forked by a worker (system(),
 * popen(), a PROCESS task) is not a worker and may only free (queue).
 * Objects are 16-byte aligned.  Memory of a reclaimed partition reads
 * zero.  Detection of bad frees is best effort, as with any allocator: a
 * double free is caught until the memory is reused, and two frees of one
 * object that race each other from the owner and another process are
 * caught when the owner drains its queue (with a message).
 */

/* Maps the shared region: size bytes split between parts worker slots
 * (1 to 64; each partition at least 1 MiB), plus a supervisor area of
 * 64 MiB for process channels.  Only address space is reserved
 * (MAP_NORESERVE): memory is used as objects are allocated.  Call it in the
 * supervisor before weft_procs_run (which calls it itself from
 * cfg->shm_size if it was not called).  -EALREADY if mapped, -EINVAL,
 * -ENOMEM with a message naming the cause: the mapping failed, or
 * vm.overcommit_memory is 2 (strict accounting ignores MAP_NORESERVE and
 * would charge the whole reservation, so weft refuses). */
WEFT_EXTERN int weft_shm_setup(size_t size, int parts);

/* Allocates size bytes (1 to 1 GiB) from the calling worker's partition.
 * The memory is not zeroed.  -EPERM outside a worker process with a shared
 * heap, -ENOMEM when the partition is full, -EINVAL for a bad size. */
WEFT_EXTERN int weft_shm_alloc(size_t size, void **p);
/* Frees (owner) or queues to the owner (others; if the owner's queue is
 * full, waits until it drains).  -EINVAL with a message for a pointer that
 * is not a live shared-heap object: not from the region, not the start of
 * an object, freed twice, or from a partition reclaimed since.
 * weft_shm_free(NULL) only completes the frees other processes queued to
 * the caller, and returns 0. */
WEFT_EXTERN int weft_shm_free(void *p);
/* The worker slot whose partition holds p (an object or a pointer into
 * one), or -EINVAL. */
WEFT_EXTERN int weft_shm_owner(const void *p);
/* True if p is inside the shared region (objects and process channels). */
WEFT_EXTERN bool weft_shm_contains(const void *p);

/* A reference that can be checked for staleness after its owner died:
 * after a reclaim the address may hold an object of the slot's next
 * worker. */
typedef struct weft_shm_ref {
  void *p;
  uint64_t gen;
} weft_shm_ref;
/* The reference of a live object (gen 0 if p is not one). */
WEFT_EXTERN weft_shm_ref weft_shm_ref_of(void *p);
/* 0 if the object is still the one referred to, -ESTALE if its owner's
 * partition was reclaimed (or the object was freed) since, -EINVAL if it
 * is not a shared-heap reference.  It never reads memory of a reclaimed
 * partition. */
WEFT_EXTERN int weft_shm_ref_check(weft_shm_ref ref);

/* ------------------------------------------------------------------------ */
/* Channels between processes                                                */
/* ------------------------------------------------------------------------ */
/*
 * A channel in the shared region: a ring of fixed-size elements (small
 * values, or pointers into the shared heap).  A blocked call spins briefly
 * (yielding, from a green thread), then sleeps: a kernel thread on a shared
 * futex, a green thread of a worker process parked on its slot's doorbell
 * (an eventfd in its worker's netpoller, rung by whoever makes the channel
 * ready), so its worker runs other green threads meanwhile; elsewhere a
 * green thread polls in weft_sleep steps of up to 1 ms (counted as
 * pchan_naps in weft_stats).  A canceled green thread gets -ECANCELED.
 * A call blocked on a peer that died
 * returns -ECONNRESET instead of hanging: a receiver on an empty channel
 * whose every sender died, a sender on a full channel whose every receiver
 * died.  Senders and receivers are the worker slots that used the channel,
 * each with its generation (a restarted worker is a new peer); a worker
 * counts as dead once the supervisor has reaped it and reclaimed its slot;
 * a process that is not a worker (the supervisor) counts as a peer that
 * never dies.  Blocked calls notice a death within about 20 ms.
 */
typedef struct weft_pchan weft_pchan;

/* Creates a channel in the shared region's supervisor area, after
 * weft_shm_setup: in the supervisor before weft_procs_run (every worker can
 * use it), or in a worker (then only the processes it hands the pointer to
 * can).  A channel lives as long as the region: there is no free.
 * capacity 1 to 65536 elements of 1 to 256 bytes.  -EPERM without a
 * shared region, -EINVAL, -ENOMEM when the area is full. */
WEFT_EXTERN int weft_pchan_open(weft_pchan **ch, size_t elem_size,
                                size_t capacity);
/* Copy elem_size bytes in or out, in FIFO order.  -ETIMEDOUT at the
 * deadline, -EAGAIN with WEFT_NOWAIT, -EPIPE when closed (receivers first
 * drain what is buffered), -ECONNRESET (see above), -EINVAL for a pointer
 * that is not a channel, -EPERM without a shared region. */
WEFT_EXTERN int weft_pchan_send(weft_pchan *ch, const void *elem,
                                int64_t deadline);
WEFT_EXTERN int weft_pchan_recv(weft_pchan *ch, void *elem, int64_t deadline);
/* Closes: blocked and later senders get -EPIPE, receivers drain, then
 * -EPIPE.  -EPIPE if already closed. */
WEFT_EXTERN int weft_pchan_close(weft_pchan *ch);

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
  uint64_t polls;      /* epoll_wait calls that returned events */
  uint64_t io_waits;   /* green threads parked on the netpoller */
  uint64_t hogs;       /* green threads reported for not yielding */
  /* Of spawns: green threads spawned by threads that are not workers
   * (main, a plain pthread), counted by the worker that started them. */
  uint64_t foreign_spawns;
  /* Naps of green threads blocked on a process channel that could not
   * park on their slot's doorbell (outside a worker process of a pool
   * with a shared heap): each is a timed wake to look again. */
  uint64_t pchan_naps;
  /* Green threads preempted after their time slice on this worker. */
  uint64_t preemptions;
  /* Preemptions put off: asked for while the thread was inside weft, in a
   * non-preemptible region, or with no spare kernel thread; each made
   * later, at the first point where it was safe. */
  uint64_t preempt_deferred;
} weft_worker_stats;

/* Fills stats[0 .. min(n, workers)) and returns the number of workers,
 * or -ESRCH when the runtime is not running. */
WEFT_EXTERN int weft_stats(weft_worker_stats *stats, int n);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
