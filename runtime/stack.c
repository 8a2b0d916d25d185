/*
 * stack.c - guarded stacks, the per-worker cache and the global pools
 * (see stack.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "stack.h"
#include "util.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Size classes: powers of two from WEFT__STACK_MIN to WEFT__STACK_MAX. */
#define MIN_SHIFT 14
#define NCLASSES (30 - MIN_SHIFT + 1)
/* Stacks kept as they are in a class's pool; beyond, pages go back. */
#define POOL_WARM 1024
#define BATCH (WEFT__STACK_CACHE / 2)

struct pool {
  weft__spin lk;
  void **items;
  size_t n, cap;
  size_t nwarm; /* items[0..nwarm) are warm, the rest cold */
};

static struct {
  size_t page;
  size_t deflt;
  int kernel_guard; /* -1 unknown, 0 mprotect, 1 MADV_GUARD_INSTALL */
  struct pool pools[NCLASSES];
  _Atomic int warned;
} S = {.kernel_guard = -1};

static int class_of(size_t size) {
  return __builtin_ctzl(size) - MIN_SHIFT;
}

size_t weft__stack_round(size_t size) {
  if (size == 0)
    return S.deflt ? S.deflt : WEFT__STACK_DEFAULT;
  if (size > WEFT__STACK_MAX)
    return 0;
  if (size < WEFT__STACK_MIN)
    return 0;
  size_t r = WEFT__STACK_MIN;
  while (r < size)
    r <<= 1;
  return r;
}

size_t weft__stack_guard_size(void) { return S.page; }
bool weft__stack_kernel_guard(void) { return S.kernel_guard == 1; }

static bool probe_kernel_guard(void) {
  const char *e = getenv("WEFT_GUARD");
  if (e && strcmp(e, "mprotect") == 0)
    return false; /* forced, to exercise the fallback */
  void *p = mmap(NULL, 2 * S.page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return false;
  bool ok = madvise(p, S.page, MADV_GUARD_INSTALL) == 0;
  munmap(p, 2 * S.page);
  return ok;
}

int weft__stack_setup(size_t default_size) {
  if (!S.page)
    S.page = (size_t)sysconf(_SC_PAGESIZE);
  if (S.kernel_guard < 0)
    S.kernel_guard = probe_kernel_guard();
  size_t d = default_size ? default_size : WEFT__STACK_DEFAULT;
  size_t r = WEFT__STACK_MIN;
  while (r < d)
    r <<= 1;
  if (d > WEFT__STACK_MAX)
    return -EINVAL;
  S.deflt = r;
  return 0;
}

static void warn_limit(int err) {
  int zero = 0;
  if (!atomic_compare_exchange_strong(&S.warned, &zero, 1))
    return;
  long max = -1;
  FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
  if (f) {
    if (fscanf(f, "%ld", &max) != 1)
      max = -1;
    fclose(f);
  }
  if (S.kernel_guard == 1)
    fprintf(stderr,
            "weft: cannot map a green-thread stack: %s.  The kernel refused "
            "more memory or mappings (vm.max_map_count is %ld, "
            "vm.overcommit_memory may forbid it); free some green threads, "
            "use smaller stacks, or raise the limits.\n",
            strerror(-err), max);
  else
    fprintf(stderr,
            "weft: cannot map a guarded green-thread stack: %s.  Without "
            "MADV_GUARD_INSTALL (Linux 6.13+) each guarded stack costs two "
            "kernel mappings, and the process has reached vm.max_map_count "
            "(%ld), about %ld stacks.  Raise it (sysctl -w "
            "vm.max_map_count=N), run on Linux 6.13 or later, or run fewer "
            "green threads at once.\n",
            strerror(-err), max, max > 0 ? max / 2 : -1);
}

static void *map_new(size_t size, int *err) {
  size_t len = S.page + size;
  char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1,
                 0);
  if (p == MAP_FAILED) {
    *err = errno == EAGAIN ? -EAGAIN : -ENOMEM;
    warn_limit(*err);
    return NULL;
  }
  int r = S.kernel_guard == 1 ? madvise(p, S.page, MADV_GUARD_INSTALL)
                              : mprotect(p, S.page, PROT_NONE);
  if (r != 0) {
    *err = errno == EAGAIN ? -EAGAIN : -ENOMEM;
    munmap(p, len);
    warn_limit(*err);
    return NULL;
  }
  return p;
}

/* Takes up to max stacks of class cls from its pool into out. */
static size_t pool_take(int cls, void **out, size_t max) {
  struct pool *pl = &S.pools[cls];
  if (!ld_relaxed(&pl->lk.v) && pl->n == 0)
    return 0;
  weft__spin_lock(&pl->lk);
  size_t k = 0;
  /* Warm ones first (most recently freed, pages still resident). */
  while (k < max && pl->nwarm > 0) {
    out[k++] = pl->items[--pl->nwarm];
    pl->items[pl->nwarm] = pl->items[--pl->n];
  }
  while (k < max && pl->n > 0)
    out[k++] = pl->items[--pl->n];
  weft__spin_unlock(&pl->lk);
  return k;
}

/* Requires pl->lk.  Makes room for n more items. */
static bool pool_reserve(struct pool *pl, size_t n) {
  if (pl->n + n <= pl->cap)
    return true;
  size_t cap = pl->cap ? pl->cap * 2 : 256;
  while (cap < pl->n + n)
    cap *= 2;
  void **items = realloc(pl->items, cap * sizeof(void *));
  if (!items)
    return false;
  pl->items = items;
  pl->cap = cap;
  return true;
}

static void pool_give(int cls, void **in, size_t n, size_t size) {
  struct pool *pl = &S.pools[cls];
  size_t i = 0;

  weft__spin_lock(&pl->lk);
  if (pool_reserve(pl, n)) {
    for (; i < n && pl->nwarm < POOL_WARM; i++) {
      /* Warm ones stay in front: move the first cold one to the end. */
      pl->items[pl->n++] = pl->items[pl->nwarm];
      pl->items[pl->nwarm++] = in[i];
    }
  }
  weft__spin_unlock(&pl->lk);
  if (i == n)
    return;
  /* The rest give their pages back before anyone can take them again.
   * The mappings stay: handles that point into them must stay readable. */
  for (size_t j = i; j < n; j++)
    madvise((char *)in[j] + S.page, size, MADV_DONTNEED);
  weft__spin_lock(&pl->lk);
  if (pool_reserve(pl, n - i))
    for (; i < n; i++)
      pl->items[pl->n++] = in[i];
  weft__spin_unlock(&pl->lk);
  /* If even that failed, the stacks are lost to reuse but harmless. */
}

void *weft__stack_alloc(struct weft__stack_cache *c, size_t size, int *err) {
  int cls = class_of(size);
  if (c && size == S.deflt) {
    if (WEFT_LIKELY(c->n > 0)) {
      c->hits++;
      return c->items[--c->n];
    }
    c->n = (unsigned)pool_take(cls, c->items, BATCH);
    if (c->n > 0) {
      c->hits++;
      return c->items[--c->n];
    }
  } else {
    void *p;
    if (pool_take(cls, &p, 1) == 1)
      return p;
  }
  if (c)
    c->maps++;
  return map_new(size, err);
}

void weft__stack_free(struct weft__stack_cache *c, void *base, size_t size) {
  if (c && size == S.deflt) {
    if (c->n == WEFT__STACK_CACHE) {
      c->n -= BATCH;
      pool_give(class_of(size), c->items + c->n, BATCH, size);
    }
    c->items[c->n++] = base;
    return;
  }
  pool_give(class_of(size), &base, 1, size);
}

void weft__stack_cache_drain(struct weft__stack_cache *c) {
  if (c->n)
    pool_give(class_of(S.deflt), c->items, c->n, S.deflt);
  c->n = 0;
}
