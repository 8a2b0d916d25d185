/*
 * shm.h - the shared-memory wing: the region shared between worker
 * processes, its layout, and the calls the supervisor (proc.c), the object
 * heap and process channels share.  Its files, one mechanism each:
 *
 *   shm.c          the region: setup, slots and their generations (attach,
 *                  retire, reclaim), the supervisor area, doorbells, pid
 *                  locks
 *   shm_arena.c    a worker's jemalloc arena and its extent hooks
 *   shm_cache.c    the per-thread cache (front cache, tcache), live counts
 *   shm_mailbox.c  the remote-free mailbox, both sides
 *   shm_heap.c     the object header and the public calls weft_shm_alloc,
 *                  weft_shm_free, weft_shm_owner, weft_shm_ref_*
 *   shm_chan.c     process channels (weft_pchan_*)
 *
 * shm_internal.h holds what the object heap's files share beyond this
 * header; shm_test.h what the tests reach.
 *
 * Layout of the region (mapped MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE
 * by the supervisor before it forks, so it is at the same address in every
 * worker):
 *
 *   [ struct weft__shm_hdr | supervisor area (channels) | part 0 | part 1 ...]
 *
 * Every field of the header that more than one process touches is atomic;
 * waits across processes use shared (non-private) futexes.  Locks that
 * several processes take (the area lock, a channel's lock) hold the pid of
 * their holder, so that a process that died holding one can be detected
 * and the lock taken over (weft__shm_lock): every critical section under
 * such a lock commits with a single store, so a holder killed in the
 * middle leaves the protected data consistent.
 */
#ifndef WEFT_SHM_H
#define WEFT_SHM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Hidden, as their definitions are (libweft is built with
 * -fvisibility=hidden, which leaves declarations alone): the wing's files
 * then reach weft__shm_self and the other globals directly, not through
 * the GOT, on their fast paths. */
#pragma GCC visibility push(hidden)

#define WEFT__SHM_MAX_PARTS 64
#define WEFT__SHM_MAGIC 0x7765667473686d31ULL /* "weftshm1" */
#define WEFT__SHM_MAILBOX 4096 /* remote frees in flight; a power of two */
#define WEFT__SHM_AREA_SIZE ((size_t)64 << 20) /* supervisor area */
#define WEFT__SHM_PART_MIN ((size_t)1 << 20)   /* smallest partition */
#define WEFT__SHM_SIZE_MAX ((size_t)1 << 46)   /* 64 TiB of address space */

struct weft__shm_slot {
  _Atomic int32_t pid;    /* the worker process owning the slot, 0: none */
  /* The slot's doorbell: an eventfd made with the region, before any
   * fork, so every process of the pool holds it under this number; the
   * slot's worker waits on it in its netpoller, any process rings it
   * (shm_chan.c).  -1 if it could not be made. */
  int32_t doorbell;
  _Atomic uint32_t alive; /* 1 from attach until the supervisor reclaims */
  _Atomic uint64_t gen;   /* starts at 1, bumped when the partition is
                           * reclaimed */
  /* Bytes of the partition handed to jemalloc so far (the owner's bump
   * pointer, moved by its extent hooks); reset by a reclaim. */
  _Atomic size_t used;
  /* Published by the owner in weft__shm_live() (shm_test.h): its live
   * objects and their requested bytes, and how many remote frees it has
   * completed.  On a line of their own: the owner writes remote_frees at
   * every drain, and the fields above are read by every process that
   * frees one of the owner's objects (sharing a line, each drain would
   * steal it from them and each of their frees steal it back). */
  _Atomic int64_t live_objs __attribute__((aligned(64)));
  _Atomic int64_t live_bytes;
  _Atomic uint64_t remote_frees;
  /* The remote-free mailbox: other processes push, the owner pops
   * (shm_mailbox.c).  All-zero memory is an empty ring. */
  _Atomic uint64_t mb_head __attribute__((aligned(64)));
  _Atomic uint64_t mb_tail __attribute__((aligned(64)));
  _Atomic uint64_t mb[WEFT__SHM_MAILBOX] __attribute__((aligned(64)));
};

struct weft__shm_hdr {
  uint64_t magic;
  size_t size; /* whole region */
  int nparts;
  size_t part_size;
  char *parts; /* partition i at parts + i * part_size */
  /* Supervisor area: a bump allocator for process channels, under a pid
   * lock (weft__shm_lock). */
  _Atomic uint32_t area_lock;
  size_t area_off, area_size; /* area at (char *)hdr + area_off */
  size_t area_used;
  struct weft__shm_slot slots[WEFT__SHM_MAX_PARTS];
};

/* The region, or NULL; set by weft_shm_setup in the supervisor and
 * inherited by its workers. */
extern struct weft__shm_hdr *weft__shm;
/* The slot of the calling process, or -1 (supervisor, or no pool, or a
 * process forked by a worker: only the worker itself may use its arena). */
extern int weft__shm_self;

/* The region (shm.c). */

/* In a freshly forked worker, before it runs user code: takes slot index
 * (records pid, alive) and creates its jemalloc arena over its partition.
 * Returns 0 or -errno. */
int weft__shm_attach(int index);
/* In the supervisor, after reaping the worker of slot index: discards the
 * partition's pages (MADV_REMOVE), resets its bump pointer and mailbox,
 * bumps its generation, marks it dead. */
void weft__shm_reclaim(int index);
/* In the supervisor, after reaping a worker that exited normally: marks
 * the slot dead (for dead-peer checks) but keeps its partition, so the
 * objects it handed to others stay valid until the slot is reclaimed. */
void weft__shm_retire(int index);
/* Allocates from the supervisor area (process channels), zeroed, 64-byte
 * aligned.  NULL when full. */
void *weft__shm_area_alloc(size_t size);
/* Rings the doorbell of slot index (one eventfd write; errors ignored). */
void weft__shm_ring(int index);
/* True if the worker in slot index is alive with generation gen. */
bool weft__shm_slot_alive(int index, uint64_t gen);
/* The generation of the calling worker's slot (0 outside workers). */
uint64_t weft__shm_self_gen(void);

/* The calling process's pid, cached (refreshed in a forked child). */
int32_t weft__shm_pid(void);
/* A lock word shared between processes, holding its holder's pid (0 when
 * free).  A waiter that finds the holder dead takes the lock over. */
void weft__shm_lock(_Atomic uint32_t *l);
void weft__shm_unlock(_Atomic uint32_t *l);

/* The object heap's mailbox (shm_mailbox.c). */

/* In a worker: frees what other processes queued to the caller's
 * mailbox.  Cheap when the mailbox is empty; a no-op
 * outside workers.  Blocking calls (the waits of process channels) call
 * it so that a process blocked on a channel never holds up the processes
 * that free its objects. */
void weft__shm_drain(void);

#pragma GCC visibility pop

/* Process channels (shm_chan.c). */
/* In a worker attaching to its slot: what its channels' wakes need
 * (registration for the asymmetric fence). */
void weft__shm_chan_attach(void);

#endif /* WEFT_SHM_H */
