/*
 * stack.h - guarded green-thread stacks and their caches.
 *
 * A stack is a guard below, the usable part above it, and the green
 * thread's descriptor at the top of the usable part.  A worker maps the
 * stacks of its cache in batches of up to 32 neighbours, one mmap each
 * (stack.c, map_stacks); other stacks are mapped one at a time.  Where the
 * kernel has MADV_GUARD_INSTALL (Linux 6.13+) the guard is installed inside
 * the mapping, so a guarded stack costs no extra kernel mapping (VMA) and
 * neighbouring stacks merge into one; elsewhere the guard is mprotect'ed
 * PROT_NONE, which splits the mapping and costs two VMAs per stack.
 *
 * The guard is 1 MiB by default (weft_config.guard_size, WEFT_GUARD_SIZE).
 * Without -fstack-clash-protection a function moves the stack pointer over
 * its whole frame at once and then writes the frame's lowest bytes first:
 * a frame of F bytes that overflows first writes at or above stack_lo - F,
 * so only a guard of at least F bytes is sure to catch it; a smaller guard
 * lets it land in the stack mapped below, on that thread's descriptor.
 * With the flag every page is touched as the frame grows, and one page
 * catches any frame.  What a 1 MiB guard costs: address space (it counts
 * against ulimit -v), never memory, and page tables.  A page-table page
 * (4 KiB) maps 2 MiB; kernel guard regions are entries (markers) in those
 * pages, and with PROT_NONE guards the few touched pages of stacks spaced
 * 1 MiB apart need a page-table page about every second stack, so either
 * way a stack costs about 4 KiB * (guard + size) / 2 MiB of kernel memory
 * (VmPTE).  Measured with parked 64 KiB green threads: 2.13 KiB per stack
 * with a 1 MiB guard, kernel guard regions or PROT_NONE alike (10,000
 * stacks: 20.8 MiB; 100,000: 208 MiB), against 0.13 KiB with one page
 * (1.3 and 13 MiB).  With kernel guard regions, mapping a new stack also
 * takes longer (its 256 markers are written: about 3 times the system
 * time); a stack from the cache costs the same as with any guard.
 *
 * Stacks are never unmapped: freed stacks go to the worker's cache, then to
 * a global pool per guard size and size class, and past a limit their pages
 * are given back with MADV_DONTNEED.  Because the mapping stays, a stale
 * green-thread handle can always be checked safely (its descriptor reads
 * back a different id).  A stack is only ever reused with the guard it was
 * made with: the guard size may change from one weft_init() to the next,
 * and each size has its own pools.
 */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT__STACK_MIN ((size_t)16 << 10)
#define WEFT__STACK_MAX ((size_t)1 << 30)
#define WEFT__STACK_DEFAULT ((size_t)64 << 10)
#define WEFT__STACK_CACHE 64 /* per worker, default size class only */
#define WEFT__GUARD_DEFAULT ((size_t)1 << 20)
#define WEFT__GUARD_MAX ((size_t)1 << 30)

struct weft__stack_cache {
  unsigned n;
  unsigned batch; /* stacks the next mapping makes (stack.c) */
  void *items[WEFT__STACK_CACHE];
  uint64_t hits, maps;
};

/* The registry of every stack mapping (base, usable size, guard size), read
 * by the gdb extension: the descriptor is at the top of base + guard + size
 * (weft__g_of_stack). */
struct weft__stack_rec {
  char *base;
  size_t size;
  size_t guard;
};
extern struct weft__stack_rec *weft__stack_all;
extern size_t weft__stack_nall;

/* Process-wide setup, at each weft_init(): page size, guard flavour,
 * default size, guard size (0: WEFT_GUARD_SIZE, else
 * WEFT__GUARD_DEFAULT).  -EINVAL for an absurd size, -ENOMEM. */
int weft__stack_setup(size_t default_size, size_t guard_size);
/* Rounds size up to its class (a power of two); 0 means the default.
 * Returns the usable size or 0 for an absurd size. */
size_t weft__stack_round(size_t size);
/* The guard below each stack made from now on (set by weft__stack_setup);
 * a green thread keeps the one its stack was made with in g->guard. */
extern size_t weft__stack_guard;
static inline size_t weft__stack_guard_size(void) { return weft__stack_guard; }
bool weft__stack_kernel_guard(void);

/* Returns the base of a mapping whose usable part is
 * [base + guard, base + guard + size), with the current guard
 * (weft__stack_guard), or NULL with *err = -ENOMEM/-EAGAIN.  size must come
 * from weft__stack_round.  c may be NULL (not a worker). */
void *weft__stack_alloc(struct weft__stack_cache *c, size_t size, int *err);
/* guard: the one the stack was made with. */
void weft__stack_free(struct weft__stack_cache *c, void *base, size_t size,
                      size_t guard);
/* Moves a worker's cached stacks to the global pool. */
void weft__stack_cache_drain(struct weft__stack_cache *c);

#endif /* WEFT_STACK_H */
