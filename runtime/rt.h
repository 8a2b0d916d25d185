/*
 * rt.h - the runtime's lifecycle (rt.c): what its parts need from it, and
 * what it needs from them in a forked child.
 *
 * Fork.  A child forked from a process that used weft (a worker process,
 * a PROCESS task, system(), popen(), or the application's own fork) runs
 * only the forking thread: weft's other threads (workers, the monitor,
 * the blocking pool, the task reaper, the netpoller's poller) are gone,
 * and any lock they held stays held.  One child handler, in rt.c, resets
 * every part, each with the verb below, in this order (the layer order:
 * the scheduler's state first, then what sits on it).  A part that makes
 * state a child must not inherit calls weft__fork_watch() first; it
 * registers the handler once per process, and children inherit the
 * registration.
 */
#ifndef WEFT_RT_H
#define WEFT_RT_H

/* Registers the child handler (once; cheap after the first call). */
void weft__fork_watch(void);

/* The parts' resets, in the order the handler calls them.  None may
 * allocate or take a lock another thread could have held. */
void weft__stack_fork_child(void);    /* forget the pools (stack.c) */
void weft__monitor_fork_child(void);  /* forget the monitor thread */
void weft__netpoll_fork_child(void);  /* the parent's epoll and waiters */
void weft__blocking_fork_child(void); /* the pool's threads are gone */
void weft__task_fork_child(void);     /* the reaper and record pool */
void weft__shm_fork_child(void);      /* not the parent's slot or pid (shm.c) */
void weft__shm_chan_fork_child(void); /* the doorbell's room (shm_chan.c) */
void weft__proc_fork_child(void);     /* not a worker of the pool */

#endif /* WEFT_RT_H */
