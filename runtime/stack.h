/*
 * stack.h - guarded green-thread stacks and their caches.
 *
 * One mapping per stack: a guard below, the usable part above it, and the
 * green thread's descriptor at the top of the usable part.  Where the kernel
 * has MADV_GUARD_INSTALL (Linux 6.13+) the guard is installed inside the
 * mapping, so a guarded stack costs no extra kernel mapping (VMA) and
 * neighbouring stacks merge into one; elsewhere the guard is mprotect'ed
 * PROT_NONE, which splits the mapping and costs two VMAs per stack.
 *
 * Stacks are never unmapped: freed stacks go to the worker's cache, then to
 * a global pool per size class, and past a limit their pages are given back
 * with MADV_DONTNEED.  Because the mapping stays, a stale green-thread handle
 * can always be checked safely (its descriptor reads back a different id).
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stdbool.h>
#include <stddef.h>

#define WEFT__STACK_MIN ((size_t)16 << 10)
#define WEFT__STACK_MAX ((size_t)1 << 30)
#define WEFT__STACK_DEFAULT ((size_t)64 << 10)
#define WEFT__STACK_CACHE 64 /* per worker, default size class only */

struct weft__stack_cache {
  unsigned n;
  void *items[WEFT__STACK_CACHE];
  uint64_t hits, maps;
};

/* The registry of every stack mapping (base, usable size), read by the gdb
 * extension. */
struct weft__stack_rec {
  char *base;
  size_t size;
};
extern struct weft__stack_rec *weft__stack_all;
extern size_t weft__stack_nall;

/* Process-wide setup: page size, guard flavour, default size. */
int weft__stack_setup(size_t default_size);
/* Rounds size up to its class (a power of two); 0 means the default.
 * Returns the usable size or 0 for an absurd size. */
size_t weft__stack_round(size_t size);
/* The guard below each stack: one page (set by weft__stack_setup). */
extern size_t weft__stack_guard;
static inline size_t weft__stack_guard_size(void) { return weft__stack_guard; }
bool weft__stack_kernel_guard(void);

/* Returns the base of a mapping whose usable part is
 * [base + guard, base + guard + size), or NULL with *err = -ENOMEM/-EAGAIN.
 * size must come from weft__stack_round.  c may be NULL (not a worker). */
void *weft__stack_alloc(struct weft__stack_cache *c, size_t size, int *err);
void weft__stack_free(struct weft__stack_cache *c, void *base, size_t size);
/* Moves a worker's cached stacks to the global pool. */
void weft__stack_cache_drain(struct weft__stack_cache *c);

/* After fork: forget the pools (another thread may have been updating
 * them); their stacks are leaked in the child. */
void weft__stack_fork_child_reset(void);

#endif /* WEFT_STACK_H */
