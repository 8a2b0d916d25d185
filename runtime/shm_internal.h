/*
 * shm_internal.h - what the files of a worker's object heap share beyond
 * shm.h: the object header, the calling worker's own partition and arena,
 * the page size and messages.  The region is set up and attached in
 * shm.c, the arena is jemalloc's over the partition, and the public calls
 * are in shm_heap.c, which explains the header.  Process channels
 * (shm_chan.c) and the supervisor (proc.c) use shm.h only.
 */
#ifndef WEFT_SHM_INTERNAL_H
#define WEFT_SHM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

/* The object header (shm_heap.c). */
#define OBJ_LIVE 0x4556494cu   /* "LIVE" */
#define OBJ_FREE 0x45455246u   /* "FREE" */
#define OBJ_QUEUED 0x44455551u /* "QUED" */
#define OBJ_MAX ((size_t)1 << 30)
#define GEN_MASK ((UINT64_C(1) << 56) - 1)
#define TAG(slot, gen) ((uint64_t)(slot) << 56 | ((gen)&GEN_MASK))

struct weft__shm_obj {
  _Atomic uint32_t state;
  uint32_t size;
  uint64_t tag;
};
_Static_assert(sizeof(struct weft__shm_obj) == 16,
               "the object header keeps 16-byte alignment of what follows");

/* The calling worker's own partition and arena (private to the process),
 * filled in by weft__shm_attach (shm.c). */
struct weft__shm_me {
  struct weft__shm_slot *slot;
  uintptr_t lo;      /* partition base */
  size_t size;       /* partition size */
  uint64_t gen, tag; /* generation at attach, and the objects' tag */
  unsigned arena;
  bool tcache; /* one explicit tcache per thread (else none) */
};
extern struct weft__shm_me weft__shm_me;

/* The page size, once setup or attach has read it (shm.c). */
extern size_t weft__shm_page_size;

/* Writes a line to standard error (shm.c). */
void weft__shm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Creates the calling worker's arena over its partition and records it in
 * weft__shm_me (which weft__shm_attach has filled in up to there).  Returns
 * 0, or -errno after a message. */
int weft__shm_arena_create(int index);

#endif /* WEFT_SHM_INTERNAL_H */
