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
 *
 * How this header is laid out.  Each call has a manual page (man
 * weft_spawn), made from the comments here by tools/weft-man.pl; weft(3) is
 * the overview.  So the comments follow a few rules:
 *  - A banner (a line of dashes, a title, a line of dashes) starts a
 *    section.  A comment right below a banner and followed by a blank line
 *    introduces the section, and is part of every page of the section.
 *  - The comment right above a declaration documents it, together with
 *    the declarations that follow it with no blank line or comment in
 *    between: a family of calls, which shares one page.
 *  - In that comment, a paragraph that starts with "Returns" says what the
 *    call returns, and one that starts with "Errors:" lists the errors, one
 *    "-ECODE  meaning" a line.  The first sentence sums the call up.
 *  - Each field of a structure has a comment of its own: what it means,
 *    its unit, its default and what 0 means.  Fields of opaque structures
 *    say "Opaque".
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

/* Marks the calls the library exports: it is built with
 * -fvisibility=hidden, and only what carries this is visible. */
#if defined(__GNUC__)
#define WEFT_EXTERN __attribute__((visibility("default")))
#else
#define WEFT_EXTERN
#endif

/* The version of this header, major.minor.patch; the same as the Version
 * of weft.pc (pkg-config --modversion weft). */
#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0

/*
 * The address of the calling kernel thread's errno, looked up afresh.
 * Programs do not call it: this header redefines errno as
 * (*weft_errno_location()), so that errno read right after a call that may
 * have switched workers is the calling green thread's own (see the top of
 * weft.h).  It is declared pure, not const, as the C library's
 * __errno_location is: a compiler may reuse the address between two reads
 * with no call in between, but never across a call.
 *
 * Returns the address of errno of the kernel thread the caller runs on.
 */
#if defined(__GNUC__)
WEFT_EXTERN int *weft_errno_location(void) __attribute__((pure));
#else
WEFT_EXTERN int *weft_errno_location(void);
#endif
/* errno, looked up afresh after every call (weft_errno_location). */
#undef errno
#define errno (*weft_errno_location())

/* ------------------------------------------------------------------------ */
/* Errors and time                                                          */
/* ------------------------------------------------------------------------ */

/*
 * Describes a weft return code in a short English sentence: 0 gives
 * "success", each negative errno that weft uses a message naming the cases
 * it is used for (-EINVAL: "invalid argument: a NULL pointer, a bad size,
 * flag or deadline, or a handle that is not (or no longer) valid"), and any
 * other negative errno strerror(-err)'s text.
 *
 * Returns a string that must not be freed or changed; "unknown weft error"
 * for a positive value.
 */
WEFT_EXTERN const char *weft_strerror(int err);

/* A deadline that never passes: the call waits as long as it takes. */
#define WEFT_FOREVER INT64_MAX
/* A deadline that means "do not wait": the call tries once and returns
 * -EAGAIN if it would block. */
#define WEFT_NOWAIT ((int64_t)0)

/*
 * Reads the monotonic clock (CLOCK_MONOTONIC), the clock of every deadline.
 *
 * Returns the time in nanoseconds.
 */
WEFT_EXTERN int64_t weft_now(void);
/*
 * Turns a relative timeout into a deadline: weft_now() + ns.  A sum that
 * would overflow gives WEFT_FOREVER; ns <= 0 gives a deadline that has
 * passed already (never WEFT_NOWAIT), so a call given it times out at
 * once, with -ETIMEDOUT.
 *
 * Returns the deadline, in nanoseconds of the monotonic clock.
 */
WEFT_EXTERN int64_t weft_deadline(int64_t ns);

/* Not part of the API: v * unit, saturating (for weft_us and the others). */
static inline int64_t weft__ns_scale(int64_t v, int64_t unit) {
  if (v > INT64_MAX / unit)
    return INT64_MAX;
  if (v < INT64_MIN / unit)
    return INT64_MIN;
  return v * unit;
}
/*
 * Converts a duration to nanoseconds, as weft_deadline() and
 * weft_sleep() take it: weft_us from microseconds, weft_ms from
 * milliseconds, weft_sec from seconds: weft_deadline(weft_sec(30)),
 * weft_sleep(weft_ms(5)).  They are inline, and saturate instead of
 * overflowing: a duration too long gives INT64_MAX (WEFT_FOREVER), one too
 * far below zero INT64_MIN.
 *
 * Returns the duration in nanoseconds.
 */
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

/*
 * The configuration of the runtime, for weft_init().  A zeroed structure
 * (or a NULL pointer) asks for every default; each field's 0 means its
 * default, which an environment variable may set (weft(3), ENVIRONMENT).
 */
typedef struct weft_config {
  /* The number of worker kernel threads, which run the green threads.
   * 0 means the WEFT_WORKERS environment variable if set (a number from 1
   * to 1024, else weft_init fails with -EINVAL), else the number of online
   * CPUs (at most 1024).  1 to 1024; a negative value or one above 1024
   * makes weft_init fail with -EINVAL. */
  int workers;
  /* The default usable stack size of a green thread, in bytes, for threads
   * spawned without a size of their own (weft_gthread_attr.stack_size).
   * 0 means 64 KiB.  A size from 16 KiB to 1 GiB is rounded up to the next
   * power of two (20000 bytes give 32 KiB).  A size below 16 KiB or above
   * 1 GiB is not rounded or clamped: weft_init fails with -EINVAL. */
  size_t stack_size;
  /* The most kernel threads the blocking-call pool (weft_blocking) runs at
   * once.  0 means 64; at most 4096 (a negative value or one above 4096
   * makes weft_init fail with -EINVAL).  The threads are started on demand
   * and each exits after 10 s without work. */
  int blocking_threads;
  /* The hog report threshold, in milliseconds: a green thread that holds
   * its worker this long without switching, and could not be preempted
   * (in a non-preemptible region, blocked in a system call, or any thread
   * when preemption is off), is reported on standard error:
   *   weft: green thread 17 "conn-3" ran 52 ms without yielding on worker 1
   * 0 means the WEFT_HOG_MS environment variable if it is set, else 100.
   * A negative value turns the reports off, as does WEFT_HOG_MS set to 0,
   * to a negative number or to something that is not a number. */
  int hog_ms;
  /* The size of the guard region below each green-thread stack, in bytes;
   * a stack overflow into it is reported before the program aborts.
   * Rounded up to whole pages (at least one).  0 means the WEFT_GUARD_SIZE
   * environment variable if set (bytes, or with a K, M or G suffix; a
   * value that is not a size from 1 byte to 1 GiB makes weft_init fail
   * with -EINVAL), else 1 MiB.  Above 1 GiB, weft_init fails with -EINVAL.
   * An overflow whose frame is at most this large always hits the guard; a
   * larger frame is caught only in code built with
   * -fstack-clash-protection (which weft.pc's Cflags give where the
   * compiler has it), for which one page is enough.  The guard costs
   * address space and page tables, not memory: see weft(3), STACK GUARDS.
   * WEFT_GUARD=mprotect in the environment makes it PROT_NONE pages even
   * where the kernel offers guard regions. */
  size_t guard_size;
  /* The time slice, in microseconds: a green thread that has run this
   * long without switching, while other work waits for its worker, is
   * preempted (weft(3), PREEMPTION).  0 means the WEFT_SLICE_US
   * environment variable if set, else 10000 (10 ms); WEFT_SLICE_US set to
   * 0 or a negative number turns preemption off, and set to something
   * that is not a number makes weft_init fail with -EINVAL.  A negative
   * value turns preemption off.  A positive value below 1000 makes
   * weft_init fail with -EINVAL. */
  int slice_us;
} weft_config;

/*
 * Starts the runtime: the worker threads, their run queues and stack
 * caches, and the monitor thread of preemption and hog reports.  cfg may be
 * NULL for the defaults.  Call it from an ordinary thread (not a green
 * thread); every field of cfg is described below.
 *
 * A child forked from a process that runs weft (by fork(), a PROCESS task
 * or weft_procs_run) starts with the runtime stopped and may call
 * weft_init again; it must not use the parent's weft objects (a lock may
 * be held by a thread that does not exist in the child).
 *
 * Returns 0 once every worker runs.
 *
 * Errors:
 *  -EALREADY  the runtime is already running.
 *  -EPERM     called from a green thread.
 *  -EINVAL    a field of cfg, or an environment variable that stands for
 *             one, is out of range (see the structure below).
 *  -ENOMEM, -EAGAIN  memory, address space or threads ran out.
 */
WEFT_EXTERN int weft_init(const weft_config *cfg);

/*
 * Stops the runtime: workers finish the green thread they are running at
 * its next switch and exit, and weft_shutdown() joins them.  Green threads
 * that are still alive are abandoned, never resumed, not even by a later
 * runtime (their memory stays mapped so that nothing that points into it
 * becomes invalid).  Join what must finish before calling it.
 *
 * What holds for an abandoned thread, from any thread, during and after
 * the shutdown and after a new weft_init(): waking it (posting a semaphore
 * it waits on, unlocking a mutex, a channel send, closing an fd it waits
 * on) is safe and does nothing to it (a value handed to it, such as a
 * channel element or a semaphore count, goes with it); weft_join(),
 * weft_detach() and weft_cancel() return -ESRCH, and a kernel thread
 * blocked in weft_join() on it returns -ESRCH.  weft_spawn() from another
 * thread that races the shutdown returns 0 (the thread runs, or is
 * abandoned) or -EPERM.  After it returns, weft_init() may be called again.
 * With WEFT_STATS set in the environment, it prints each worker's counters
 * (weft_stats()) to standard error once the workers have stopped.
 *
 * Returns 0 once every worker has exited.
 *
 * Errors:
 *  -EPERM  called from a green thread.
 *  -ESRCH  the runtime is not running.
 */
WEFT_EXTERN int weft_shutdown(void);

/*
 * Tells whether the runtime runs.
 *
 * Returns true between weft_init() and weft_shutdown(), else false.
 */
WEFT_EXTERN bool weft_running(void);

/*
 * Tells how many workers the running runtime has.
 *
 * Returns the number of worker threads, 0 if the runtime is not running.
 */
WEFT_EXTERN int weft_workers(void);

/*
 * Tells which worker the caller runs on.  Only a hint: a green thread may
 * move to another worker at any switch, unless it is pinned (weft_pin()).
 *
 * Returns the worker's index, 0 to weft_workers() - 1, or -1 if the caller
 * is not a weft worker.
 */
WEFT_EXTERN int weft_worker_index(void);

/*
 * Pins the calling green thread to the worker it runs on (pinned true), or
 * lets it move again (false).  A pinned thread is never stolen or resumed
 * elsewhere, so C thread-locals (a library's per-thread cache, a
 * thread-local errno of another library) stay its own across calls that
 * block or yield.  The price: it waits for its worker even when another is
 * idle, and a wake from another worker reaches it within 16 of its
 * worker's switches, or at once if that worker is idle.
 * weft_gthread_attr.pinned pins a thread from its start.
 *
 * Returns the worker's index when pinning, 0 when unpinning.
 *
 * Errors:
 *  -EPERM  the caller is not a green thread.
 */
WEFT_EXTERN int weft_pin(bool pinned);

/* ------------------------------------------------------------------------ */
/* Green threads                                                            */
/* ------------------------------------------------------------------------ */

/* A handle to a green thread, as weft_spawn() and weft_self() give it;
 * copyable.  A zeroed handle refers to none. */
typedef struct weft_gthread {
  void *p;     /* Opaque: the thread's descriptor. */
  uint64_t id; /* Opaque: the thread's id, which tells a reused descriptor. */
} weft_gthread;

/* The longest name of a green thread, in bytes, including the
 * terminating NUL. */
#define WEFT_NAME_MAX 32

/* The attributes of a new green thread, for weft_spawn().  A zeroed
 * structure (or a NULL pointer) asks for every default. */
typedef struct weft_gthread_attr {
  /* Usable stack size in bytes.  0 means the runtime's default
   * (weft_config.stack_size, 64 KiB unless set).  From 16 KiB to 1 GiB,
   * rounded up to the next power of two; a size below 16 KiB or above
   * 1 GiB makes weft_spawn fail with -EINVAL. */
  size_t stack_size;
  /* The thread's name, shown in reports and by the gdb extension; copied,
   * and cut to WEFT_NAME_MAX - 1 bytes.  NULL (the default) or "" for
   * none. */
  const char *name;
  /* true: the thread is detached from its start (its resources are freed
   * when it exits, and it cannot be joined).  false (the default): it must
   * be joined (weft_join) or detached (weft_detach). */
  bool detached;
  /* true: runs only on the worker it first runs on (see weft_pin). */
  bool pinned;
} weft_gthread_attr;

/* The function a green thread, a task or a blocking-pool call runs: it
 * takes the argument given with it and returns the result that
 * weft_join() (weft_task_wait(), weft_blocking()) hands back. */
typedef void *(*weft_fn)(void *arg);

/*
 * Creates a green thread running fn(arg).  attr may be NULL for the
 * defaults; t may be NULL only for a detached thread.  From a green thread,
 * the new thread runs at once on the caller's worker and the caller
 * continues when it blocks, yields or exits (or sooner, on another worker
 * that steals it).  From any other thread it is queued and a worker is
 * woken.  A debug build (--enable-debug) queues it instead half the time,
 * as it randomises its other scheduling choices, so that code which needs
 * one order shows it.
 *
 * Returns 0, with the new thread's handle in *t if t is not NULL.
 *
 * Errors:
 *  -EPERM   the runtime is not running.
 *  -EINVAL  a stack size out of range, a NULL fn, or a NULL t for a
 *           thread that is not detached.
 *  -ENOMEM, -EAGAIN  no stack could be mapped; a message on standard error
 *           names the limit that was hit.
 */
WEFT_EXTERN int weft_spawn(weft_gthread *t, const weft_gthread_attr *attr,
                           weft_fn fn, void *arg);

/*
 * Waits for green thread t to finish, stores its result in *result (if
 * result is not NULL), then frees it.  weft_join waits as long as it takes,
 * weft_join_until until a deadline, and weft_tryjoin not at all (as
 * pthread_tryjoin_np).  They work from green threads (which park) and from
 * other threads (which sleep).  After -ETIMEDOUT, -EAGAIN or -EBUSY the
 * thread has not finished and can be joined again.
 *
 * Returns 0 when t has finished and was freed.
 *
 * Errors:
 *  -EDEADLK    t is the caller.
 *  -EINVAL     t is detached, was joined already, or is not a valid handle.
 *  -ESRCH      t was abandoned by weft_shutdown(), also while the caller
 *              waits: a kernel thread blocked in weft_join returns -ESRCH
 *              when the runtime stops under it.
 *  -ETIMEDOUT  weft_join_until: the deadline passed first.
 *  -EAGAIN     weft_join_until with WEFT_NOWAIT: t has not finished.
 *  -EBUSY      weft_tryjoin: t has not finished.
 */
WEFT_EXTERN int weft_join(weft_gthread t, void **result);
WEFT_EXTERN int weft_join_until(weft_gthread t, void **result,
                                int64_t deadline);
WEFT_EXTERN int weft_tryjoin(weft_gthread t, void **result);

/*
 * Detaches green thread t: nobody will join it, and it frees its
 * resources when it finishes (at once if it has finished).
 *
 * Returns 0.
 *
 * Errors:
 *  -EINVAL  t is detached or joined already, or is not a valid handle.
 *  -ESRCH   t was abandoned by weft_shutdown().
 */
WEFT_EXTERN int weft_detach(weft_gthread t);

/*
 * Lets the other green threads that are runnable on the caller's worker
 * run.  From a thread that is not a green thread it calls sched_yield().
 *
 * Returns 0, always.
 */
WEFT_EXTERN int weft_yield(void);

/*
 * Marks the running green thread non-preemptible until the matching
 * weft_preempt_enable.  The calls nest: the thread is preemptible again
 * when every disable has had its enable, and a thread can mark itself for
 * its whole life with one call.  A preemption asked for meanwhile is
 * counted as deferred (weft_stats()) and made at the outermost enable,
 * which then yields.  Both cost a few ns and make no system call.  When
 * and how green threads are preempted, and where they never are: weft(3),
 * PREEMPTION.
 *
 * Returns the depth after the call: 1 or more after a disable, 0 after the
 * outermost enable.
 *
 * Errors:
 *  -EPERM   the caller is not a green thread.
 *  -EINVAL  weft_preempt_enable without a weft_preempt_disable.
 */
WEFT_EXTERN int weft_preempt_disable(void);
WEFT_EXTERN int weft_preempt_enable(void);

/*
 * Ends the calling green thread with result, which weft_join() hands to
 * the thread that joins it.  Returning result from the thread's function
 * does the same.
 *
 * Returns only on failure.
 *
 * Errors:
 *  -EPERM  the caller is not a green thread.
 */
WEFT_EXTERN int weft_exit(void *result);

/*
 * Tell the calling green thread's identity: weft_self its handle,
 * weft_id its id, weft_name its name, and weft_in_gthread whether the
 * caller is a green thread at all; weft_set_name renames it (NULL clears
 * the name; a name is cut to WEFT_NAME_MAX - 1 bytes).  Ids start at 1 and
 * are never reused, but threads spawned on different workers do not get
 * them in creation order.
 *
 * Returns, outside a green thread: a zeroed handle (weft_self), 0
 * (weft_id), NULL (weft_name), false (weft_in_gthread).  weft_name's
 * string is "" for a thread without a name; it is the thread's own
 * buffer, which a rename changes, and is not to be used after the thread
 * ends.  weft_set_name returns 0.
 *
 * Errors:
 *  -EPERM  weft_set_name: the caller is not a green thread.
 */
WEFT_EXTERN weft_gthread weft_self(void);
WEFT_EXTERN uint64_t weft_id(void);
WEFT_EXTERN const char *weft_name(void);
WEFT_EXTERN int weft_set_name(const char *name);
WEFT_EXTERN bool weft_in_gthread(void);

/* Where a green thread's stack lives, as weft_stack_info_get() tells it:
 * from low to high addresses, the guard, then the usable stack, whose top
 * holds the thread's descriptor. */
typedef struct weft_stack_info {
  /* The lowest address of the guard region. */
  void *guard_lo;
  /* The guard's size in bytes: weft_config.guard_size as it was when the
   * stack was made (1 MiB by default), rounded up to pages. */
  size_t guard_size;
  /* The lowest address of the usable stack, right above the guard. */
  void *stack_lo;
  /* The usable stack's size in bytes, a power of two from 16 KiB. */
  size_t stack_size;
  /* true: the guard is a kernel guard region (MADV_GUARD_INSTALL, Linux
   * 6.13 and later), inside the stack's mapping; false: PROT_NONE pages,
   * a mapping of their own. */
  bool kernel_guard;
} weft_stack_info;
/*
 * Tells where green thread t's stack and its guard are: the guard below
 * the stack (PROT_NONE pages, or a kernel guard region) and the usable
 * part, whose top holds the thread's descriptor.
 *
 * Returns 0, with the answer in *info.
 *
 * Errors:
 *  -EINVAL  t is not a valid handle of a live thread, or info is NULL.
 */
WEFT_EXTERN int weft_stack_info_get(weft_gthread t, weft_stack_info *info);

/*
 * Sleeps for ns nanoseconds (weft_sleep) or until a deadline
 * (weft_sleep_until).  Green threads park, other threads call nanosleep.
 * Green threads that went to sleep on the same worker wake in deadline
 * order, equal deadlines in the order they went to sleep; across workers
 * there is no order, but a busy worker's due timers are run by an idle
 * one.  A green thread given a time that has passed yields once.
 *
 * Returns 0 once the time has come.
 *
 * Errors:
 *  -ECANCELED  the calling green thread was canceled with weft_cancel().
 */
WEFT_EXTERN int weft_sleep(int64_t ns);
WEFT_EXTERN int weft_sleep_until(int64_t deadline);

/* ------------------------------------------------------------------------ */
/* Green-thread-local storage                                               */
/* ------------------------------------------------------------------------ */

/* The most keys weft_local_create() hands out, in a process. */
#define WEFT_LOCAL_MAX 128

/* A key of green-thread-local values, made by weft_local_create(). */
typedef struct weft_local_key {
  unsigned index; /* Opaque: the key's slot plus 1; 0 in a key never made. */
} weft_local_key;

/*
 * Green-thread-local values: weft_local_create makes a key, and each green
 * thread has its own value for it, which weft_local_set stores and
 * weft_local_get reads (NULL until set).  Values follow their green thread
 * from worker to worker, unlike C thread-locals.  Outside green threads,
 * each kernel thread has its own values.  When a green thread exits, dtor
 * (may be NULL) runs on each of its non-NULL values.  Keys are never freed:
 * at most WEFT_LOCAL_MAX in a process.  The first 4 keys made cost nothing
 * per thread (their values live in the thread's descriptor, and a get is
 * one load); a thread that sets a value of a later key gets an array for
 * all of those (about 1 KiB), hence -ENOMEM.
 *
 * Returns 0 (weft_local_create, weft_local_set), or the caller's value
 * (weft_local_get: NULL if not set, or for a key that was not created).
 *
 * Errors:
 *  -EAGAIN  weft_local_create: all WEFT_LOCAL_MAX keys are in use.
 *  -EINVAL  weft_local_set: a key that was not created.
 *  -ENOMEM  weft_local_set: no memory for the thread's values (a key
 *           after the first 4).
 */
WEFT_EXTERN int weft_local_create(weft_local_key *key, void (*dtor)(void *));
WEFT_EXTERN int weft_local_set(weft_local_key key, void *value);
WEFT_EXTERN void *weft_local_get(weft_local_key key);

/* ------------------------------------------------------------------------ */
/* Synchronisation                                                          */
/* ------------------------------------------------------------------------ */
/* All-zero memory is a valid unlocked mutex, condition variable, waitgroup,
 * once and read-write lock (the *_INIT macros are zero), so they can be
 * static.  A semaphore needs weft_sem_init().  None of them may be copied
 * after use.  Each works from green threads, which park, and from other
 * threads, which sleep on a futex, and may be shared between the two. */

/* A mutex; see weft_mutex_lock(). */
typedef struct weft_mutex {
  uint64_t opaque[4]; /* Opaque: all zero when unlocked and unused. */
} weft_mutex;
/* A condition variable; see weft_cond_wait(). */
typedef struct weft_cond {
  uint64_t opaque[4]; /* Opaque: all zero when nobody waits. */
} weft_cond;
/* A counting semaphore; see weft_sem_wait(). */
typedef struct weft_sem {
  uint64_t opaque[4]; /* Opaque: set up by weft_sem_init(). */
} weft_sem;
/* A waitgroup: a counter that waiters wait to see at zero; see
 * weft_waitgroup_wait(). */
typedef struct weft_waitgroup {
  uint64_t opaque[4]; /* Opaque: all zero for a counter at zero. */
} weft_waitgroup;
/* A once: runs a function once; see weft_once_call(). */
typedef struct weft_once {
  uint64_t opaque[4]; /* Opaque: all zero until the function has run. */
} weft_once;

/* Static initializers: an unlocked mutex, a condition variable nobody
 * waits on, a waitgroup at zero, a once that has not run.  All zero, as
 * weft_mutex_init() and the others make them. */
#define WEFT_MUTEX_INIT {{0}}
#define WEFT_COND_INIT {{0}}
#define WEFT_WAITGROUP_INIT {{0}}
#define WEFT_ONCE_INIT {{0}}

/*
 * A mutex that checks its owner, like pthreads' PTHREAD_MUTEX_ERRORCHECK.
 * The owner is the calling green thread (on whichever worker it runs), or
 * the calling kernel thread if it is not a green thread.
 * weft_mutex_init makes an unlocked mutex (as WEFT_MUTEX_INIT does),
 * weft_mutex_destroy checks that nobody holds or waits for it.
 * weft_mutex_lock waits as long as it takes, weft_mutex_lock_until until a
 * deadline, weft_mutex_trylock not at all.  weft_mutex_unlock hands the
 * mutex directly to the longest waiter, if any, which becomes the owner,
 * so no waiter can be starved.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EDEADLK    lock, lock_until: the caller holds the mutex already.
 *  -EBUSY      trylock: the mutex is held, also by the caller (as
 *              pthreads' trylock); destroy: it is held or waited on.
 *  -ETIMEDOUT  lock_until: the deadline passed first.
 *  -EAGAIN     lock_until with WEFT_NOWAIT: the mutex is held.
 *  -EPERM      unlock: the caller does not hold the mutex (another thread
 *              does, or no one).
 */
WEFT_EXTERN int weft_mutex_init(weft_mutex *m);
WEFT_EXTERN int weft_mutex_destroy(weft_mutex *m);
WEFT_EXTERN int weft_mutex_lock(weft_mutex *m);
WEFT_EXTERN int weft_mutex_lock_until(weft_mutex *m, int64_t deadline);
WEFT_EXTERN int weft_mutex_trylock(weft_mutex *m);
WEFT_EXTERN int weft_mutex_unlock(weft_mutex *m);

/*
 * A condition variable, used with a weft_mutex.  weft_cond_wait releases
 * m, which the caller must hold, waits until the condition variable is
 * signalled, and takes m again before it returns, also on -ETIMEDOUT.
 * weft_cond_wait_until waits until a deadline too; a deadline that has
 * passed (WEFT_NOWAIT too) gives -ETIMEDOUT at once, with m held.
 * weft_cond_signal wakes one waiter, weft_cond_broadcast every waiter.
 * weft_cond_init makes one nobody waits on (as WEFT_COND_INIT does), and
 * weft_cond_destroy checks that nobody waits.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EPERM      wait, wait_until: the caller does not hold m.
 *  -ETIMEDOUT  wait_until: the deadline passed first.
 *  -EBUSY      destroy: threads wait on it.
 */
WEFT_EXTERN int weft_cond_init(weft_cond *c);
WEFT_EXTERN int weft_cond_destroy(weft_cond *c);
WEFT_EXTERN int weft_cond_wait(weft_cond *c, weft_mutex *m);
WEFT_EXTERN int weft_cond_wait_until(weft_cond *c, weft_mutex *m,
                                     int64_t deadline);
WEFT_EXTERN int weft_cond_signal(weft_cond *c);
WEFT_EXTERN int weft_cond_broadcast(weft_cond *c);

/* The highest count of a semaphore. */
#define WEFT_SEM_MAX ((unsigned)INT32_MAX)
/*
 * A counting semaphore.  weft_sem_init sets its count to value (it needs
 * the call: zeroed memory is not a semaphore), weft_sem_destroy checks
 * that nobody waits.  weft_sem_wait takes one from the count, waiting while
 * it is zero, as long as it takes; weft_sem_wait_until until a deadline;
 * weft_sem_trywait not at all.  weft_sem_post adds one and wakes a waiter.
 * weft_sem_value reads the count.
 *
 * Returns 0 on success; weft_sem_value returns the count.
 *
 * Errors:
 *  -EINVAL     init: value is above WEFT_SEM_MAX.
 *  -EBUSY      destroy: threads wait on it.
 *  -ETIMEDOUT  wait_until: the deadline passed first.
 *  -EAGAIN     trywait, and wait_until with WEFT_NOWAIT: the count is 0.
 *  -EOVERFLOW  post: the count is at WEFT_SEM_MAX already.
 */
WEFT_EXTERN int weft_sem_init(weft_sem *s, unsigned value);
WEFT_EXTERN int weft_sem_destroy(weft_sem *s);
WEFT_EXTERN int weft_sem_wait(weft_sem *s);
WEFT_EXTERN int weft_sem_wait_until(weft_sem *s, int64_t deadline);
WEFT_EXTERN int weft_sem_trywait(weft_sem *s);
WEFT_EXTERN int weft_sem_post(weft_sem *s);
WEFT_EXTERN int weft_sem_value(weft_sem *s);

/*
 * A waitgroup: a counter, and waiters that wait for it to reach zero, to
 * wait for a batch of work.  weft_waitgroup_init sets it to zero (as
 * WEFT_WAITGROUP_INIT does).  weft_waitgroup_add adds delta (may be
 * negative) to the counter and wakes the waiters when it reaches zero;
 * weft_waitgroup_done adds -1.  weft_waitgroup_wait returns when the
 * counter is zero (at once if it is), waiting as long as it takes;
 * weft_waitgroup_wait_until until a deadline.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EINVAL     add, done: the counter would go below zero; it is left
 *              unchanged.
 *  -ETIMEDOUT  wait_until: the deadline passed first.
 *  -EAGAIN     wait_until with WEFT_NOWAIT: the counter is not zero.
 */
WEFT_EXTERN int weft_waitgroup_init(weft_waitgroup *wg);
WEFT_EXTERN int weft_waitgroup_add(weft_waitgroup *wg, int64_t delta);
WEFT_EXTERN int weft_waitgroup_done(weft_waitgroup *wg);
WEFT_EXTERN int weft_waitgroup_wait(weft_waitgroup *wg);
WEFT_EXTERN int weft_waitgroup_wait_until(weft_waitgroup *wg,
                                          int64_t deadline);

/*
 * Runs fn(arg) exactly once per weft_once, in the first caller; concurrent
 * callers wait until it has returned, and later ones return at once.
 *
 * Returns 0 once fn has run.
 *
 * Errors:
 *  -EINVAL  fn is NULL.
 */
WEFT_EXTERN int weft_once_call(weft_once *o, void (*fn)(void *), void *arg);

/* A read-write lock; see weft_rwlock_rdlock(). */
typedef struct weft_rwlock {
  uint64_t opaque[8]; /* Opaque: all zero when unlocked and unused. */
} weft_rwlock;
/* A static initializer: an unlocked read-write lock (all zero). */
#define WEFT_RWLOCK_INIT {{0}}

/*
 * A read-write lock: many readers or one writer.  All-zero memory is a
 * valid unlocked lock (WEFT_RWLOCK_INIT, weft_rwlock_init).  Writers are
 * preferred: once a writer waits, new readers queue behind it, so readers
 * cannot starve it; a writer's unlock admits every queued reader at once,
 * so writers cannot starve readers either.  Hence rdlock is not recursive:
 * a thread that holds a read lock and asks for another while a writer
 * waits deadlocks (undetected, as is a writer lock asked for while holding
 * a read lock).  The writer is checked like a mutex's owner; readers are
 * only counted.
 *
 * weft_rwlock_rdlock and weft_rwlock_wrlock wait as long as it takes, the
 * _until calls until a deadline, the try calls not at all.
 * weft_rwlock_unlock releases the caller's write lock, or one read lock;
 * waiters are handed the lock directly.  weft_rwlock_destroy checks that
 * nobody holds or waits for it.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EDEADLK    rdlock, wrlock and their _until calls: the caller holds the
 *              write lock.
 *  -EAGAIN     rdlock, rdlock_until: 2^30 - 1 readers are inside already;
 *              the _until calls with WEFT_NOWAIT: the lock is not free.
 *  -ETIMEDOUT  the _until calls: the deadline passed first.
 *  -EBUSY      tryrdlock: a writer is inside or waits (also the caller);
 *              trywrlock: the lock is held or waited on (also by the
 *              caller); destroy: the lock is held or waited on.
 *  -EPERM      unlock: the write lock is held by another thread, or the
 *              lock is not held at all.
 */
WEFT_EXTERN int weft_rwlock_init(weft_rwlock *l);
WEFT_EXTERN int weft_rwlock_destroy(weft_rwlock *l);
WEFT_EXTERN int weft_rwlock_rdlock(weft_rwlock *l);
WEFT_EXTERN int weft_rwlock_rdlock_until(weft_rwlock *l, int64_t deadline);
WEFT_EXTERN int weft_rwlock_tryrdlock(weft_rwlock *l);
WEFT_EXTERN int weft_rwlock_wrlock(weft_rwlock *l);
WEFT_EXTERN int weft_rwlock_wrlock_until(weft_rwlock *l, int64_t deadline);
WEFT_EXTERN int weft_rwlock_trywrlock(weft_rwlock *l);
WEFT_EXTERN int weft_rwlock_unlock(weft_rwlock *l);

/* ------------------------------------------------------------------------ */
/* Channels                                                                 */
/* ------------------------------------------------------------------------ */

/* A channel between threads of one process; made by weft_chan_open(). */
typedef struct weft_chan weft_chan;

/*
 * Makes a channel between threads, or frees one: weft_chan_open makes a
 * channel of elements of elem_size bytes (1 to 65536), with a buffer of
 * capacity elements (0: unbuffered; a send then completes when a receiver
 * takes the element), and stores it in *ch.  weft_chan_free frees a
 * channel nobody is blocked on.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EINVAL  elem_size out of range, a capacity of 2^32 elements or more,
 *           or a buffer over 1 TiB.
 *  -ENOMEM  no memory for the channel or its buffer.
 *  -EBUSY   free: threads are blocked on the channel.
 */
WEFT_EXTERN int weft_chan_open(weft_chan **ch, size_t elem_size,
                               size_t capacity);
WEFT_EXTERN int weft_chan_free(weft_chan *ch);
/*
 * Closes a channel: senders blocked on it, and every later send, get
 * -EPIPE; receivers first drain what is buffered, then get -EPIPE.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EPIPE  the channel was closed already.
 */
WEFT_EXTERN int weft_chan_close(weft_chan *ch);

/*
 * Sends or receives one element: copies elem_size bytes from elem into the
 * channel, or from the channel into elem, in FIFO order, waiting while the
 * channel is full (send) or empty (receive).  weft_chan_send and
 * weft_chan_recv wait as long as it takes, the _until calls until a
 * deadline.  A green thread that receives from an empty buffered channel
 * first lets the other green threads runnable on its worker run (often the
 * producers), then takes what they sent as a batch, and parks only if
 * there is still nothing: far fewer parks and wakes than one a message,
 * for a little latency.
 *
 * Returns 0 once the element is sent or received.
 *
 * Errors:
 *  -EPIPE      the channel is closed (a receiver gets it once the buffer
 *              is drained).
 *  -ETIMEDOUT  the _until calls: the deadline passed first.
 *  -EAGAIN     the _until calls with WEFT_NOWAIT: the call would block.
 */
WEFT_EXTERN int weft_chan_send(weft_chan *ch, const void *elem);
WEFT_EXTERN int weft_chan_recv(weft_chan *ch, void *elem);
WEFT_EXTERN int weft_chan_send_until(weft_chan *ch, const void *elem,
                                     int64_t deadline);
WEFT_EXTERN int weft_chan_recv_until(weft_chan *ch, void *elem,
                                     int64_t deadline);
/*
 * Tells how many elements a channel holds in its buffer (weft_chan_len),
 * and how many it can hold (weft_chan_cap, the capacity it was opened
 * with).  The length may change as soon as it is read.
 *
 * Returns the count; 0 for a NULL channel.
 */
WEFT_EXTERN size_t weft_chan_len(weft_chan *ch);
WEFT_EXTERN size_t weft_chan_cap(weft_chan *ch);

/* The operation of a select case (weft_select_case.op). */
enum weft_select_op { WEFT_SEND = 1, WEFT_RECV = 2 };

/* One case of weft_select(): an operation on a channel. */
typedef struct weft_select_case {
  /* The channel to send on or receive from. */
  weft_chan *ch;
  /* WEFT_SEND or WEFT_RECV. */
  int op;
  /* For WEFT_SEND the element to send; for WEFT_RECV where to store the
   * element received (elem_size bytes). */
  void *elem;
  /* Set by weft_select() for the case that fired: 0, or -EPIPE when its
   * channel is closed.  Left as it was in the other cases. */
  int result;
} weft_select_case;

/*
 * Waits until one of the n cases (1 to 1024) can proceed, performs it and
 * stores its result in its result field.  When several are ready, one is
 * chosen at random.  A case on a closed channel fires with result -EPIPE.
 * With WEFT_NOWAIT it does not wait: -EAGAIN stands for the "default" case
 * of other languages' select.
 *
 * Returns the index of the case that fired.
 *
 * Errors:
 *  -ETIMEDOUT  the deadline passed before a case could proceed.
 *  -EAGAIN     WEFT_NOWAIT, and no case was ready.
 *  -EINVAL     n is 0 or above 1024, or a case has a NULL channel or
 *              element, or an op that is neither WEFT_SEND nor WEFT_RECV.
 *  -ENOMEM     no memory for the cases (more than 8).
 */
WEFT_EXTERN int weft_select(weft_select_case *cases, size_t n,
                            int64_t deadline);

/* ------------------------------------------------------------------------ */
/* Modes: one call shape, three ways to run a function                       */
/* ------------------------------------------------------------------------ */

/* How weft_task_start() runs a function. */
typedef enum weft_mode {
  WEFT_MODE_GREEN = 1,   /* a green thread on the M:N scheduler */
  WEFT_MODE_KTHREAD = 2, /* a kernel thread of its own (pthread, 1:1) */
  WEFT_MODE_PROCESS = 3, /* a forked child process */
} weft_mode;

/* A running task; opaque, one per weft_task_start, then either waited
 * for once or detached once. */
typedef struct weft_task {
  uint64_t opaque[6]; /* Opaque: the mode, the state and the handle. */
} weft_task;

/*
 * Runs fn(arg) in the given mode, and fills *t, the task, for
 * weft_task_wait() or weft_task_detach().
 *
 * GREEN spawns a green thread (as weft_spawn() does), and needs the
 * runtime running.
 *
 * KTHREAD starts a kernel thread of its own that may use every weft
 * primitive (they work from any thread).
 *
 * PROCESS forks the caller: the child runs fn(arg) on its only thread, with
 * weft not running in it (it may call weft_init for its own), and exits;
 * fn's result comes back as a pointer-sized value, so it should be an
 * integer or a pointer into the shared heap.  The child gets a copy of the
 * parent's memory at the fork: changes it makes are its own.  weft reaps
 * the child as soon as it exits, whether or not anyone waits (a reaper
 * thread, one per process, waits on a pidfd per child): it never waits with
 * waitpid(-1), so the program's own children are left for the program to
 * wait for; but a program that reaps with waitpid(-1), or sets SIGCHLD to
 * SIG_IGN, takes the status of process tasks too (their wait then gives
 * -ECHILD).
 *
 * From a green thread, KTHREAD and PROCESS tasks start on the caller's
 * kernel thread, which is its worker's: pthread_create(), or fork() then
 * pidfd_open() and epoll_ctl(), run there, and the worker runs no other
 * green thread until they return: the time of a thread start, or of a
 * fork, which grows with the memory the process has mapped (its page
 * tables are copied); the first PROCESS task of a process also starts the
 * reaper thread.  A program that starts many such tasks while its workers
 * must not stall can start them from a kernel thread instead (one of its
 * own, or through weft_blocking()).  A GREEN start is weft_spawn(), which
 * does not block the worker.
 *
 * Each started task is either waited for (weft_task_wait) or detached
 * (weft_task_detach): one that is neither keeps its record (KTHREAD: also
 * the thread's stack).
 *
 * Returns 0 once the task is started.
 *
 * Errors:
 *  -EINVAL  t or fn is NULL, or mode is not a weft_mode.
 *  -EPERM   GREEN: the runtime is not running.
 *  -ENOMEM, -EAGAIN  memory, threads, processes or descriptors ran out.
 */
WEFT_EXTERN int weft_task_start(weft_task *t, weft_mode mode, weft_fn fn,
                                void *arg);
/*
 * Waits for the task to finish and stores fn's result in *result (if
 * result is not NULL).  Whatever the mode, a green thread that waits parks
 * (its worker runs other green threads meanwhile) and a kernel thread
 * sleeps on a futex; for a KTHREAD task the waiter then joins the thread,
 * which has nothing left to do but return.  A PROCESS task's fn runs on the
 * caller's stack (64 KiB by default when the caller is a green thread).
 *
 * Returns 0 once the task has finished.
 *
 * Errors:
 *  -ECHILD   a PROCESS task whose child died without returning (a signal,
 *            or exit() inside fn), with a line on standard error naming
 *            the signal or status.
 *  -EINVAL   the task was waited for or detached already, or never
 *            started.
 *  -EDEADLK  a GREEN task waits for itself.
 *  -ESRCH    a GREEN task abandoned by weft_shutdown().
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
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EINVAL  t is NULL, or a task never started, or one waited for or
 *           detached already (and weft_task_wait gives -EINVAL for a
 *           detached task).
 *  -ESRCH   a GREEN task abandoned by weft_shutdown(); it stays as it was.
 */
WEFT_EXTERN int weft_task_detach(weft_task *t);
/*
 * Tells the process id of a PROCESS task's child, for log lines and tools:
 * from the start on, also after weft_task_wait and weft_task_detach.  Do
 * not signal the child by this number: the child is reaped as soon as it
 * exits, and its number may then be given to any new process.  Use
 * weft_task_pidfd() for that.
 *
 * Returns the child's pid.
 *
 * Errors:
 *  -EINVAL  t is NULL, a task never started, or a GREEN or KTHREAD task.
 */
WEFT_EXTERN pid_t weft_task_pid(const weft_task *t);
/*
 * Opens a new pidfd (close-on-exec) for a PROCESS task's child, owned by
 * the caller, who closes it.  It refers to that child and no other process
 * for as long as it is open: pidfd_send_signal(2) on it signals the child
 * (ESRCH once the child is gone, never a process that got its number), and
 * poll(2) or epoll report it readable once the child has exited.  Both
 * keep working after the task is waited for or detached, so a program can
 * take one, detach the task, and still signal the child and see it end.
 * Call it while the task is live: after the start, before weft_task_wait
 * or weft_task_detach (not at the same time as either).
 *
 * Returns the pidfd.
 *
 * Errors:
 *  -ESRCH   the child has exited and weft has reaped it already (it does so
 *           at once): there is nothing left to signal or to watch.
 *  -EINVAL  t is NULL, a task never started, waited for or detached, or a
 *           GREEN or KTHREAD task.
 *  -EMFILE, -ENFILE  out of descriptors.
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
 * A green thread whose fds are always ready would never switch (a client
 * that keeps a socket full, a listener with a backlog), and the other
 * green threads on its worker would wait.  So after 64 calls in a row that
 * did not have to wait, one of them yields once before it returns, after
 * its data has moved: nothing is lost or reordered.
 */

/*
 * Takes an fd over, or lets it go.  weft_fd_adopt takes fd over now
 * rather than at its first use: switches it to O_NONBLOCK and registers it
 * with the netpoller.  weft_fd_forget unregisters fd without closing it,
 * before something other than weft_close() closes it or before it is
 * handed to code that expects it as it was (it stays non-blocking); for
 * an fd that was never taken over it does nothing.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EBADF  adopt: fd is not open; forget: fd is negative.
 */
WEFT_EXTERN int weft_fd_adopt(int fd);
WEFT_EXTERN int weft_fd_forget(int fd);
/*
 * Closes fd, and wakes every thread blocked on it with -EBADF.  It works
 * even from a canceled green thread.  A close(2) interrupted by a signal is
 * not retried, as Linux has released the fd already, and counts as a
 * success.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EBADF  fd is negative or not open.
 *  -EIO    and the other errors of close(2).
 */
WEFT_EXTERN int weft_close(int fd);
/*
 * Reads and writes with a deadline, without blocking the worker: as
 * read(2), write(2), readv(2), writev(2), recv(2) and send(2) do, but a
 * call that would block waits as the section below says.  flags are
 * recv's and send's (MSG_PEEK, ...); sends to sockets always add
 * MSG_NOSIGNAL.
 *
 * Reads return as soon as some bytes are there, 0 at end of file.  Writes
 * (weft_write, weft_writev, weft_send) send everything they were given
 * unless the deadline passes or an error occurs; then they return the
 * bytes sent so far if any (the next call reports the error), else -errno.
 * A write of more than 256 KiB goes to the kernel in slices of 256 KiB, and
 * a green thread yields between them: a 160 MB reply to a client that
 * reads as fast as it is sent does not hold the worker for the whole copy.
 *
 * Returns the number of bytes read or written.
 *
 * Errors:
 *  -ETIMEDOUT  the deadline passed first.
 *  -EAGAIN     WEFT_NOWAIT, and the call would block.
 *  -ECANCELED  the calling green thread was canceled (weft_cancel()).
 *  -EBADF      fd is not open, or was closed by weft_close() meanwhile.
 *  -EPIPE      writes: the peer closed the connection.
 *  -EINVAL     a NULL buffer with n > 0, or a bad iovec count.
 */
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
/*
 * Accepts a connection on listening socket fd, as accept4(2) does, waiting
 * for one until the deadline.  flags are accept4's (SOCK_CLOEXEC); the new
 * fd is always non-blocking, and already taken over.  addr and addrlen may
 * be NULL.
 *
 * Returns the new connection's fd.
 *
 * Errors:
 *  -EMFILE, -ENFILE  out of fds: the caller should back off (weft_sleep())
 *              and keep serving.
 *  -ETIMEDOUT  the deadline passed first.
 *  -EAGAIN     WEFT_NOWAIT, and no connection is waiting.
 *  -ECANCELED  the calling green thread was canceled (weft_cancel()).
 *  -EINVAL     flags other than SOCK_CLOEXEC and SOCK_NONBLOCK, or addr
 *              without addrlen.
 */
WEFT_EXTERN int weft_accept(int fd, struct sockaddr *addr,
                            socklen_t *addrlen, int flags, int64_t deadline);
/*
 * Connects socket fd to addr, as connect(2) does, and waits for the
 * connection to complete or fail, until the deadline.
 *
 * Returns 0 once connected.
 *
 * Errors:
 *  -ECONNREFUSED  and the other errors of connect(2), also when the
 *              connection fails after it started.
 *  -ETIMEDOUT  the deadline passed first.
 *  -EINPROGRESS  WEFT_NOWAIT, and the connection has not completed; it
 *              goes on: wait for POLLOUT (weft_wait_fd()), then read
 *              SO_ERROR.
 *  -ECANCELED  the calling green thread was canceled (weft_cancel()).
 */
WEFT_EXTERN int weft_connect(int fd, const struct sockaddr *addr,
                             socklen_t addrlen, int64_t deadline);
/*
 * Waits until fd is ready for events (POLLIN, POLLOUT, or both), taking fd
 * over as the other calls do.
 *
 * Returns the ready events (POLLIN, POLLOUT, POLLHUP, POLLERR).
 *
 * Errors:
 *  -ETIMEDOUT  the deadline passed first.
 *  -EAGAIN     WEFT_NOWAIT, and fd is not ready.
 *  -ECANCELED  the calling green thread was canceled (weft_cancel()).
 *  -EINVAL     events holds neither POLLIN nor POLLOUT, or anything else.
 */
WEFT_EXTERN int weft_wait_fd(int fd, int events, int64_t deadline);

/*
 * Cancels a green thread's I/O and sleeps: weft_cancel cancels green
 * thread t, so that if it is blocked in one of the I/O calls, in
 * weft_sleep() or weft_sleep_until(), or on a process channel, it wakes
 * with -ECANCELED, and each such call it makes later returns -ECANCELED at
 * once.  Used to end connections at shutdown.  Locks, channels and joins
 * are not interrupted.  weft_canceled tells the calling green thread
 * whether it was canceled.
 *
 * Returns 0 (weft_cancel); true when the caller is a canceled green thread
 * (weft_canceled).
 *
 * Errors:
 *  -ESRCH   t has finished, or was abandoned by weft_shutdown().
 *  -EINVAL  t is not a valid handle.
 */
WEFT_EXTERN int weft_cancel(weft_gthread t);
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
 * From a thread that is not a green thread, fn simply runs on the caller
 * (whether the runtime runs or not).
 *
 * Returns 0 once fn has returned, with its result in *result (result may be
 * NULL).
 *
 * Errors:
 *  -EINVAL  fn is NULL.
 *  -ESRCH   the runtime is stopping.
 *  -EAGAIN  no pool thread could be started.
 */
WEFT_EXTERN int weft_blocking(weft_fn fn, void *arg, void **result);
/*
 * Runs open(2), pread(2), pwrite(2) or fsync(2) on the blocking pool
 * (weft_blocking()), so that file I/O does not stall the caller's worker.
 *
 * Returns what the system call returns: the fd (weft_open), the bytes read
 * or written, or 0 (weft_fsync).
 *
 * Errors:
 *  -EINVAL  a NULL path, or a NULL buffer with n > 0.
 *  -ESRCH, -EAGAIN  as for weft_blocking().
 *  -ENOENT  and the other errors of the system call, as -errno.
 */
WEFT_EXTERN int weft_open(const char *path, int flags, mode_t mode);
WEFT_EXTERN ssize_t weft_pread(int fd, void *buf, size_t n, off_t off);
WEFT_EXTERN ssize_t weft_pwrite(int fd, const void *buf, size_t n, off_t off);
WEFT_EXTERN int weft_fsync(int fd);
struct addrinfo;
/*
 * Runs getaddrinfo(3) on the blocking pool (weft_blocking()), so that a
 * name lookup does not stall the caller's worker.  Free *res with
 * freeaddrinfo(3).
 *
 * Returns getaddrinfo's result: 0, or an EAI_ code (gai_strerror(3) names
 * it).  A NULL res gives EAI_SYSTEM with errno EINVAL; a pool that could
 * not run the call gives EAI_SYSTEM (errno ESRCH or EAGAIN) or EAI_MEMORY.
 */
WEFT_EXTERN int weft_getaddrinfo(const char *node, const char *service,
                                 const struct addrinfo *hints,
                                 struct addrinfo **res);

/* ------------------------------------------------------------------------ */
/* Worker processes                                                          */
/* ------------------------------------------------------------------------ */

/* The pool of worker processes that weft_procs_run() supervises.  Unlike
 * the other configurations, a zeroed one is not valid: procs and worker
 * are required, and listen_fd 0 is the standard input, not "none". */
typedef struct weft_procs_config {
  /* The number of worker processes, 1 to 64 (else -EINVAL); each has a
   * slot, 0 to procs - 1.  No default: 0 is refused. */
  int procs;
  /* Runs in each worker process; its return value is the worker's exit
   * status.  It should return soon after weft_procs_draining() turns true.
   * index is the worker's slot, 0 to procs - 1, kept across restarts.
   * Required: NULL is refused with -EINVAL. */
  int (*worker)(int index, void *arg);
  /* The argument worker gets; may be NULL.  Each worker process has its
   * own copy of what it points to, as it was at the fork. */
  void *arg;
  /* Bytes of shared heap to map (weft_shm_setup()) and split between the
   * workers, at least 1 MiB per worker.  0: none, unless weft_shm_setup
   * was called before (then its heap is used, and must have at least
   * procs partitions). */
  size_t shm_size;
  /* A listening socket every worker inherits (weft_procs_listen_fd()), or
   * -1 for none.  0 is fd 0.  Below -1: -EINVAL; an fd that is not open:
   * -EBADF.  At the start of a drain it stops listening (shutdown(2)). */
  int listen_fd;
  /* Milliseconds between the SIGTERM that starts a drain and the SIGKILL
   * sent to workers still running.  0 means 10000 (10 s); negative is
   * refused with -EINVAL. */
  int drain_ms;
  /* The most times one slot's worker is restarted after failing.  0 means
   * no limit; -1 never restarts (for workers whose state cannot be resumed
   * by a fresh process); below -1 is refused with -EINVAL.  A slot past
   * its limit is given up, logged, and counts as failed. */
  int max_restarts;
} weft_procs_config;

/*
 * Becomes the supervisor of a pool of worker processes: maps the shared
 * heap (if any), forks cfg->procs workers, and waits.  A worker that dies
 * of a signal or exits non-zero is logged
 * ("weft: worker 2 (pid 1234) killed by SIGSEGV; restarting") and forked
 * again after a backoff (10 ms doubling to 1 s), with its shared-heap
 * partition reclaimed.
 *
 * SIGTERM and SIGINT are forwarded to the workers, which drain and exit;
 * after cfg->drain_ms the rest are killed.  At the start of a drain the
 * listening socket (listen_fd) stops listening (shutdown(2)), so that new
 * clients are refused at once instead of waiting for a worker that will
 * not accept them.  A worker drained by a signal the supervisor did not
 * send (SIGTERM to its pid alone) is started again, whatever it returned,
 * and logged ("weft: worker 1 (pid 1234) drained on a signal the
 * supervisor did not send; restarting"): the pool never shrinks in
 * silence.  Every child is reaped.  A worker that exits 0 keeps its
 * shared-heap partition (objects it handed out stay valid); one that fails
 * loses it.
 *
 * Call it before weft_init, since fork keeps only the calling thread.
 * Other threads of the supervisor must block SIGTERM, SIGINT and SIGCHLD.
 * Workers get SIGTERM if the supervisor dies.
 *
 * Returns 0 when every worker exited with status 0.
 *
 * Errors:
 *  -ECHILD  a worker failed: it was given up, or had to be killed at the
 *           end of a drain.
 *  -EINVAL  a bad configuration (see the structure below).
 *  -EBADF   listen_fd is not open.
 *  -EBUSY   weft's workers are running in this process, or it is called
 *           from a worker process, or while another pool runs.
 *  -ENOMEM  and other errors of the setup, as -errno.
 */
WEFT_EXTERN int weft_procs_run(const weft_procs_config *cfg);
/*
 * Tell a worker process about itself: weft_procs_index its slot,
 * weft_procs_draining whether the supervisor asked it to drain (it should
 * then finish its work and return from its function), and
 * weft_procs_listen_fd the listening socket it inherited.
 *
 * Returns, in a worker process: the slot (0 to procs - 1), true once a
 * drain was asked for, the socket or -1.  Elsewhere: -1, false, -1.
 */
WEFT_EXTERN int weft_procs_index(void);
WEFT_EXTERN bool weft_procs_draining(void);
WEFT_EXTERN int weft_procs_listen_fd(void);

/* ------------------------------------------------------------------------ */
/* Shared heap (between worker processes)                                    */
/* ------------------------------------------------------------------------ */
/*
 * One region mapped before fork at the same address in every worker, so a
 * pointer means the same object in all of them.  Each worker allocates from
 * its own jemalloc arena over its own partition.  Only the owner frees: a
 * free from another process is queued to the owner, which frees queued
 * objects at its next weft_shm_alloc or weft_shm_free (in any of its
 * threads), on weft_shm_free(NULL), and while it is blocked on a process
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

/*
 * Maps the shared region: size bytes (up to 64 TiB) split between parts
 * worker slots (1 to 64; each partition at least 1 MiB), plus a supervisor
 * area of 64 MiB for process channels.  Only address space is reserved
 * (MAP_NORESERVE): memory is used as objects are allocated.  Call it in
 * the supervisor before weft_procs_run (which calls it itself from
 * cfg->shm_size if it was not called).
 *
 * Returns 0 once the region is mapped.
 *
 * Errors:
 *  -EALREADY  the region is mapped already.
 *  -EINVAL    size or parts out of range, or partitions under 1 MiB.
 *  -ENOMEM    with a message naming the cause: the mapping failed, or
 *             vm.overcommit_memory is 2 (strict accounting ignores
 *             MAP_NORESERVE and would charge the whole reservation, so
 *             weft refuses).
 */
WEFT_EXTERN int weft_shm_setup(size_t size, int parts);

/*
 * Allocates size bytes (1 to 1 GiB) from the calling worker's partition,
 * and stores the object's address in *p.  The memory is not zeroed.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EPERM   the caller is not a worker process of a pool with a shared
 *           heap.
 *  -ENOMEM  the partition is full.
 *  -EINVAL  size is 0 or above 1 GiB.
 */
WEFT_EXTERN int weft_shm_alloc(size_t size, void **p);
/*
 * Frees a shared-heap object: at once in its owner, queued to the owner in
 * any other process (if the owner's queue is full, it waits until the
 * owner drains it).  weft_shm_free(NULL) only completes the frees other
 * processes queued to the caller.
 *
 * Returns 0 on success, and for NULL.
 *
 * Errors:
 *  -EINVAL  with a message: p is not a live shared-heap object (not from
 *           the region, not the start of an object, freed twice, or from a
 *           partition reclaimed since).
 */
WEFT_EXTERN int weft_shm_free(void *p);
/*
 * Tells which worker slot's partition holds p, an object or a pointer into
 * one.
 *
 * Returns the slot, 0 to 63.
 *
 * Errors:
 *  -EINVAL  p is not in a partition of the shared region.
 */
WEFT_EXTERN int weft_shm_owner(const void *p);
/*
 * Tells whether p points inside the shared region (objects and process
 * channels).
 *
 * Returns true if it does, false otherwise (also without a region).
 */
WEFT_EXTERN bool weft_shm_contains(const void *p);

/* A reference that can be checked for staleness after its owner died:
 * after a reclaim the address may hold an object of the slot's next
 * worker. */
typedef struct weft_shm_ref {
  /* The object referred to. */
  void *p;
  /* The generation of the owner's slot when the reference was taken; 0
   * for a pointer that is not a live shared-heap object. */
  uint64_t gen;
} weft_shm_ref;
/*
 * References to shared-heap objects that detect a reclaim:
 * weft_shm_ref_of takes a reference to live object p, and
 * weft_shm_ref_check tells whether the object is still the one referred
 * to.  Checking never
 * reads memory of a reclaimed partition.
 *
 * Returns the reference (weft_shm_ref_of; gen 0 if p is not a live
 * object), or 0 when the object is still the one referred to
 * (weft_shm_ref_check).
 *
 * Errors:
 *  -ESTALE  the owner's partition was reclaimed, or the object freed,
 *           since the reference was taken.
 *  -EINVAL  ref is not a shared-heap reference.
 */
WEFT_EXTERN weft_shm_ref weft_shm_ref_of(void *p);
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

/* A channel between processes, in the shared region; made by
 * weft_pchan_open(). */
typedef struct weft_pchan weft_pchan;

/*
 * Creates a channel between processes, in the shared region: capacity
 * elements (1 to 65536) of elem_size bytes (1 to 256), in the region's
 * supervisor area.  Call it after weft_shm_setup: in the supervisor before
 * weft_procs_run (every worker can use it), or in a worker (then only the
 * processes it hands the pointer to can).  A channel lives as long as the
 * region: there is no free.
 *
 * Returns 0, with the channel in *ch.
 *
 * Errors:
 *  -EPERM   there is no shared region.
 *  -EINVAL  elem_size or capacity out of range.
 *  -ENOMEM  the supervisor area is full.
 */
WEFT_EXTERN int weft_pchan_open(weft_pchan **ch, size_t elem_size,
                                size_t capacity);
/*
 * Sends or receives one element: copies elem_size bytes from elem into the
 * channel, or from the channel into elem, in FIFO order, waiting until the
 * deadline while the channel is full (send) or empty (receive).
 *
 * Returns 0 once the element is sent or received.
 *
 * Errors:
 *  -ETIMEDOUT    the deadline passed first.
 *  -EAGAIN       WEFT_NOWAIT, and the call would block.
 *  -EPIPE        the channel is closed (receivers first drain what is
 *                buffered).
 *  -ECONNRESET   every peer at the other end died (see the section below).
 *  -ECANCELED    the calling green thread was canceled (weft_cancel()).
 *  -EINVAL       ch is not a channel.
 *  -EPERM        there is no shared region.
 */
WEFT_EXTERN int weft_pchan_send(weft_pchan *ch, const void *elem,
                                int64_t deadline);
WEFT_EXTERN int weft_pchan_recv(weft_pchan *ch, void *elem, int64_t deadline);
/*
 * Closes a process channel: blocked and later senders get -EPIPE;
 * receivers drain what is buffered, then get -EPIPE.
 *
 * Returns 0 on success.
 *
 * Errors:
 *  -EPIPE  the channel was closed already.
 */
WEFT_EXTERN int weft_pchan_close(weft_pchan *ch);

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

/* The counters of one worker since weft_init(), as weft_stats() fills
 * them.  Each only grows. */
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

/*
 * Reads the counters of the running runtime's workers: fills
 * stats[0 .. min(n, workers)), one element per worker.  With n = 0 (stats
 * may then be NULL) it only counts the workers.  WEFT_STATS in the
 * environment prints them at weft_shutdown().
 *
 * Returns the number of workers.
 *
 * Errors:
 *  -ESRCH   the runtime is not running.
 *  -EINVAL  stats is NULL and n > 0, or n is negative.
 */
WEFT_EXTERN int weft_stats(weft_worker_stats *stats, int n);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_H */
