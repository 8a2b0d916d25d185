/*
 * proc.h - worker processes (proc.c): what the rest of the runtime needs
 * to know about the worker slot of the calling process.
 */
#ifndef WEFT_PROC_H
#define WEFT_PROC_H

/*
 * In a child forked from a worker process that is not itself a worker (a
 * process task): forgets the worker slot, so that weft_procs_index(),
 * weft_procs_draining() and weft_procs_listen_fd() answer as outside a
 * worker.  (The shared heap's fork handler, for its part, keeps the child
 * out of the slot's partition, which only the worker itself may touch.)
 */
void weft__procs_child_detach(void);

#endif /* WEFT_PROC_H */
