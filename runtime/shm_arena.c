/*
 * shm_arena.c - a worker's jemalloc arena over its partition of the
 * shared region.
 *
 * The supervisor maps one region before it forks (weft_shm_setup,
 * shm.c), so it sits at the same address in every worker.  Each worker,
 * after the fork, creates its own jemalloc arena (weft__shm_attach) whose
 * extent hooks (below) carve extents out of that worker's partition with
 * a bump pointer.  The facts about jemalloc across processes, measured on
 * this platform, that the design of the object heap answers, and how they
 * are met:
 *
 *  - An arena created before fork and used by two processes hands the same
 *    objects to both: arenas are created after fork, one per worker, and
 *    are only ever used by their own process (a process forked by a worker
 *    loses its slot in the fork handler, weft__shm_self = -1).
 *  - jemalloc's metadata holds mutexes with private futexes: the arena is
 *    created with experimental.arenas_create_ext and metadata_use_hooks =
 *    false, so metadata stays in the worker's private memory.
 *  - jemalloc has no cross-process free (its pointer-to-extent map is per
 *    process, and sdallocx of a foreign pointer silently corrupts the
 *    caller's cache): only the owner calls jemalloc's free.  Any other
 *    process pushes the pointer to the owner's mailbox (shm_mailbox.c),
 *    which the owner drains from its alloc and free calls (any call
 *    that finds it not empty: shm_heap.c) and in weft_shm_free(NULL);
 *    the waits of process channels drain too, so a blocked owner never
 *    stalls the processes freeing its objects.
 *  - MADV_FREE fails on shared memory and MADV_DONTNEED frees nothing
 *    there (and would break jemalloc's "purged means zeroed" assumption):
 *    purge_lazy opts out, and purge_forced and decommit use MADV_REMOVE,
 *    which really discards the pages for every process.
 *  - MALLOCX_ARENA alone may be served from the thread's ordinary cache
 *    and return a private pointer: every call names a cache of its own
 *    (MALLOCX_TCACHE of an explicit tcache), or none.
 */
#include "config.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "shm.h"
#include "shm_internal.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* Extent hooks over the calling worker's partition                         */
/* ------------------------------------------------------------------------ */

static void *hook_alloc(extent_hooks_t *eh, void *new_addr, size_t size,
                        size_t align, bool *zero, bool *commit, unsigned ind) {
  struct weft__shm_slot *s = weft__shm_me.slot;
  uintptr_t hi = weft__shm_me.lo + weft__shm_me.size, start;
  if (align < weft__shm_page_size)
    align = weft__shm_page_size;
  if (align & (align - 1))
    return NULL;
  /* Several threads of the worker may grow the arena at once. */
  size_t u = ld_relaxed(&s->used);
  for (;;) {
    uintptr_t top = weft__shm_me.lo + u;
    if (new_addr) {
      /* An extension in place: only the top of the partition can grow. */
      start = (uintptr_t)new_addr;
      if (start != top || (start & (align - 1)))
        return NULL;
    } else {
      start = (top + align - 1) & ~(uintptr_t)(align - 1);
    }
    if (start < top || start > hi || size > hi - start)
      return NULL;
    if (atomic_compare_exchange_weak_explicit(
            &s->used, &u, start + size - weft__shm_me.lo, memory_order_relaxed,
            memory_order_relaxed))
      break;
  }
  /* Memory above the bump pointer has never been handed out in this
   * generation of the partition, and a reclaim discarded (MADV_REMOVE)
   * everything below it, so it reads zero; it is always accessible. */
  *zero = true;
  *commit = true;
  return (void *)start;
}

/* Opt out: jemalloc keeps the extent and reuses it. */
static bool hook_dalloc(extent_hooks_t *eh, void *addr, size_t size,
                        bool committed, unsigned ind) {
  return true;
}

static void hook_destroy(extent_hooks_t *eh, void *addr, size_t size,
                         bool committed, unsigned ind) {
  madvise(addr, size, MADV_REMOVE);
}

/* The partition is always mapped read-write: committing is a no-op. */
static bool hook_commit(extent_hooks_t *eh, void *addr, size_t size, size_t off,
                        size_t len, unsigned ind) {
  return false;
}

/* Decommit and forced purge: jemalloc takes success to mean the pages read
 * zero afterwards (calloc then skips its memset), and MADV_REMOVE makes
 * that true for every process mapping the region. */
static bool hook_discard(extent_hooks_t *eh, void *addr, size_t size,
                         size_t off, size_t len, unsigned ind) {
  return madvise((char *)addr + off, len, MADV_REMOVE) != 0;
}

/* One mapping: any two adjacent extents can be split and merged. */
static bool hook_split(extent_hooks_t *eh, void *addr, size_t size,
                       size_t size_a, size_t size_b, bool committed,
                       unsigned ind) {
  return false;
}

static bool hook_merge(extent_hooks_t *eh, void *addr_a, size_t size_a,
                       void *addr_b, size_t size_b, bool committed,
                       unsigned ind) {
  return false;
}

static extent_hooks_t hooks = {
    .alloc = hook_alloc,
    .dalloc = hook_dalloc,
    .destroy = hook_destroy,
    .commit = hook_commit,
    .decommit = hook_discard,
    .purge_lazy = NULL, /* MADV_FREE fails on shared memory */
    .purge_forced = hook_discard,
    .split = hook_split,
    .merge = hook_merge,
};

/* ------------------------------------------------------------------------ */
/* The arena                                                                */
/* ------------------------------------------------------------------------ */

/* jemalloc 5.3's arena_config_t, which its public header does not export:
 * experimental.arenas_create_ext checks the size of what it is given. */
struct arena_config {
  extent_hooks_t *extent_hooks;
  bool metadata_use_hooks;
};

int weft__shm_arena_create(int index) {
  struct arena_config cfg = {.extent_hooks = &hooks,
                             .metadata_use_hooks = false};
  unsigned ind;
  size_t sz = sizeof ind;
  int rc =
      mallctl("experimental.arenas_create_ext", &ind, &sz, &cfg, sizeof cfg);
  if (rc) {
    weft__shm_say(
        "weft: shared heap: jemalloc cannot create the arena of worker %d "
        "(experimental.arenas_create_ext: %s)",
        index, strerror(rc));
    return rc == ENOENT ? -ENOSYS : -rc;
  }
  weft__shm_me.arena = ind;
  return 0;
}
