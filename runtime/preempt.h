/*
 * preempt.h - preemption (preempt.c): the signal that stops a green
 * thread past its time slice, and the spare kernel threads its worker
 * goes on with.  The monitor decides when to ask (monitor.c); the
 * scheduler queues the stopped thread and hands the worker back when the
 * thread is picked again (sched.c).
 */
#ifndef WEFT_PREEMPT_H
#define WEFT_PREEMPT_H

#include <stdbool.h>
#include <stdint.h>

#include "worker.h"

/* weft_init, before the workers start: reads the slice (weft_config,
 * WEFT_SLICE_US) and installs the handler.  0, or -EINVAL for a bad slice,
 * or -errno. */
int weft__preempt_setup(const weft_config *cfg);
/* The slice in ns; 0 when preemption is off or not available. */
int64_t weft__preempt_slice(void);
/* The monitor: asks kt, seen running w at switch count sw, to preempt its
 * green thread (sends the signal; one that cannot be sent is asked for
 * again at the next tick). */
void weft__preempt_ask(struct weft__kt *kt, struct weft__worker *w,
                       uint64_t sw);
/* The monitor, before it asks: keeps want spare kernel threads waiting,
 * within the bound; false when there is none and none can be started. */
bool weft__preempt_stock(int want);
/* A kernel thread with no worker (a spare): waits until one is handed to
 * it, and returns it; NULL when the runtime stops. */
struct weft__worker *weft__preempt_idle(struct weft__kt *kt);
/* Hands worker w to kt: a spare, at a preemption, or the kernel thread
 * that keeps w's running green thread, at its resume. */
void weft__preempt_hand(struct weft__kt *kt, struct weft__worker *w);
/* weft_shutdown, once the state is STOPPING: wakes the spares and the
 * kernel threads that keep preempted threads, so that they exit. */
void weft__preempt_stop(void);
/* In the child of a fork (rt.c): the spare kernel threads are gone, and
 * the lock of their stack may have been held by one of them. */
void weft__preempt_fork_child(void);

#endif /* WEFT_PREEMPT_H */
