/*
 * stack.c - guarded stacks, the per-worker cache and the global pools
 * (see stack.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "stack.h"
#include "util.h"

#if WEFT_VALGRIND
#include <valgrind/valgrind.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Size classes: powers of two from WEFT__STACK_MIN to WEFT__STACK_MAX. */
#define MIN_SHIFT 14
#define NCLASSES (30 - MIN_SHIFT + 1)
/* A class's pool keeps up to POOL_WARM stacks as they are; past that,
 * TRIM of them give their pages back in one pass.  madvise is costly
 * (a TLB shootdown on every CPU running the process), so the trimmed
 * stacks are sorted and neighbours released with one call per run. */
#define POOL_WARM 4096
#define TRIM 1024
#define BATCH (WEFT__STACK_CACHE / 2)

struct vec {
  void **v;
  size_t n, cap;
};

struct pool {
  weft__spin lk;
  struct vec warm; /* pages resident (most recently freed) */
  struct vec cold; /* pages given back: touching them faults in zeros */
};

/* The pools of the stacks made with one guard size.  A set is made the
 * first time weft_init() uses its guard size and is never freed (stacks of
 * an earlier runtime may still be freed into it), so the list only grows,
 * by one set per guard size the program ever asked for. */
struct pools {
  size_t guard;
  struct pools *next;
  struct pool by_class[NCLASSES];
};

static struct {
  size_t page;
  size_t deflt;
  int kernel_guard; /* -1 unknown, 0 mprotect, 1 MADV_GUARD_INSTALL */
  struct pools *cur;           /* for weft__stack_guard */
  struct pools *_Atomic all;   /* every set, newest first */
  _Atomic int warned;
} S = {.kernel_guard = -1};

/* The set for guard size guard (it exists: a stack is only made once the
 * set for its guard is). */
static struct pools *pools_of(size_t guard) {
  struct pools *ps = S.cur;
  if (WEFT_LIKELY(ps->guard == guard))
    return ps;
  for (ps = atomic_load_explicit(&S.all, memory_order_acquire); ps;
       ps = ps->next)
    if (ps->guard == guard)
      return ps;
  abort(); /* unreachable */
}

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

size_t weft__stack_guard;
bool weft__stack_kernel_guard(void) { return S.kernel_guard == 1; }

static bool probe_kernel_guard(void) {
  const char *e = getenv("WEFT_GUARD");
  if (e && strcmp(e, "mprotect") == 0)
    return false; /* forced, to exercise the fallback */
#if WEFT_VALGRIND
  if (RUNNING_ON_VALGRIND)
    return false; /* valgrind does not model guard regions */
#endif
  void *p = mmap(NULL, 2 * S.page, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return false;
  bool ok = madvise(p, S.page, MADV_GUARD_INSTALL) == 0;
  munmap(p, 2 * S.page);
  return ok;
}

/* The guard size from WEFT_GUARD_SIZE: bytes, or with a K, M or G
 * suffix.  0 if unset; SIZE_MAX (refused later) if it is not a size. */
static size_t guard_from_env(void) {
  const char *e = getenv("WEFT_GUARD_SIZE");
  if (!e || !*e)
    return 0;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(e, &end, 10);
  unsigned shift = 0;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  }
  if (errno || end == e || *end || *e == '-' || v == 0 ||
      v > (WEFT__GUARD_MAX >> shift)) {
    fprintf(stderr,
            "weft: WEFT_GUARD_SIZE=%s is not a size from 1 byte to 1 GiB "
            "(bytes, or with a K, M or G suffix)\n",
            e);
    return SIZE_MAX;
  }
  return (size_t)v << shift;
}

int weft__stack_setup(size_t default_size, size_t guard_size) {
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

  size_t g = guard_size ? guard_size : guard_from_env();
  if (!g)
    g = WEFT__GUARD_DEFAULT;
  if (g > WEFT__GUARD_MAX)
    return -EINVAL;
  g = (g + S.page - 1) & ~(S.page - 1); /* at least one page */

  struct pools *ps = atomic_load_explicit(&S.all, memory_order_acquire);
  while (ps && ps->guard != g)
    ps = ps->next;
  if (!ps) {
    /* weft_init() runs one at a time, so only stack frees (which only read
     * the list) can run alongside. */
    ps = calloc(1, sizeof(*ps));
    if (!ps)
      return -ENOMEM;
    ps->guard = g;
    ps->next = atomic_load_explicit(&S.all, memory_order_relaxed);
    atomic_store_explicit(&S.all, ps, memory_order_release);
  }
  S.cur = ps;
  weft__stack_guard = g;
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

/* Every stack ever mapped (stacks are never unmapped), for tools: the gdb
 * extension lists green threads by walking it.  Appended under a lock on
 * the rare path that maps a new stack; the array only grows. */
struct weft__stack_rec *weft__stack_all;
size_t weft__stack_nall;
static size_t stack_capall;
static weft__spin all_lk;

static void record(char *base, size_t size, size_t guard) {
  weft__spin_lock(&all_lk);
  if (weft__stack_nall == stack_capall) {
    size_t cap = stack_capall ? 2 * stack_capall : 1024;
    struct weft__stack_rec *v =
        realloc(weft__stack_all, cap * sizeof(*weft__stack_all));
    if (!v) { /* tools see fewer threads; weft itself does not care */
      weft__spin_unlock(&all_lk);
      return;
    }
    weft__stack_all = v;
    stack_capall = cap;
  }
  weft__stack_all[weft__stack_nall].base = base;
  weft__stack_all[weft__stack_nall].size = size;
  weft__stack_all[weft__stack_nall].guard = guard;
  weft__stack_nall++;
  weft__spin_unlock(&all_lk);
}

/* Our own process's pidfd for process_madvise(2), opened on first use;
 * -1 if not tried yet, -2 if it cannot be (or under valgrind, which does
 * not know the call). */
static _Atomic int self_pidfd = -1;

static int self_pidfd_get(void) {
  int fd = ld_relaxed(&self_pidfd);
#if WEFT_VALGRIND
  if (RUNNING_ON_VALGRIND)
    return -2;
#endif
  if (fd == -1) {
    long r = syscall(SYS_pidfd_open, getpid(), 0);
    int want = r >= 0 ? (int)r : -2, none = -1;
    if (!atomic_compare_exchange_strong(&self_pidfd, &none, want) && r >= 0)
      close((int)r); /* another thread opened one first */
    fd = ld_relaxed(&self_pidfd);
  }
  return fd;
}

/* Set once the kernel refused process_madvise(2) with that advice. */
static _Atomic bool refused_dontneed, refused_guard;

/* process_madvise(2) on our own process: the ranges of iov[0, n) fully
 * advised; 0 when the kernel refuses the call (then not tried again with
 * this advice: *refused). */
static size_t advise_vector(struct iovec *iov, size_t n, int advice,
                            _Atomic bool *refused) {
  int fd = ld_relaxed(refused) ? -2 : self_pidfd_get();
  if (fd < 0)
    return 0;
  long done = syscall(SYS_process_madvise, fd, iov, n, advice, 0);
  if (done < 0) {
    if (errno == EINVAL || errno == ENOSYS || errno == EPERM)
      st_relaxed(refused, true); /* this kernel will not: madvise */
    return 0;
  }
  /* Ranges fully advised (a short count stops inside one). */
  size_t k = 0;
  for (size_t left = (size_t)done; k < n && left >= iov[k].iov_len; k++)
    left -= iov[k].iov_len;
  return k;
}

/*
 * Maps n stacks of `size` bytes with the current guard as one mapping,
 * neighbours in address order, into out[0, n).  0 or -errno.
 *
 * Mapping a stack costs three trips into the kernel: mmap, the guard, and
 * the fault of its top page when the thread starts.  For a program that
 * starts very many threads those trips are most of a spawn, so a worker
 * maps stacks for its cache in batches (weft__stack_alloc): one mmap for
 * the batch, and the guards in one process_madvise call where the kernel
 * takes MADV_GUARD_INSTALL that way.  The top pages are left to fault when
 * their threads start: populated in advance (MADV_POPULATE_WRITE) they
 * would save 0.2 us a stack more, but hold memory for threads that may
 * never come.  Measured for 1,000,000 stacks of 64 KiB with a one-page
 * guard, the kernel's part alone: 2.1 us a stack one at a time, 1.6 us in
 * batches of 32.
 */
static int map_stacks(size_t size, void **out, size_t n) {
  size_t guard = weft__stack_guard, len = guard + size;
  char *p = weft__mmap(NULL, len * n, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                       -1, 0);
  if (p == MAP_FAILED)
    return errno == EAGAIN ? -EAGAIN : -ENOMEM;
  size_t done = 0;
  if (S.kernel_guard == 1 && n > 1) {
    struct iovec iov[WEFT__STACK_CACHE];
    for (size_t i = 0; i < n; i++)
      iov[i] = (struct iovec){p + i * len, guard};
    done = advise_vector(iov, n, MADV_GUARD_INSTALL, &refused_guard);
  }
  for (size_t i = done; i < n; i++) {
    int r = S.kernel_guard == 1
                ? madvise(p + i * len, guard, MADV_GUARD_INSTALL)
                : mprotect(p + i * len, guard, PROT_NONE);
    if (r != 0) {
      int err = errno == EAGAIN ? -EAGAIN : -ENOMEM;
      munmap(p, len * n);
      return err;
    }
  }
  for (size_t i = 0; i < n; i++) {
    char *base = p + i * len;
    record(base, size, guard);
#if WEFT_VALGRIND
    /* Stacks are never unmapped, so each is registered once, for good:
     * valgrind then knows a switch onto it is a stack switch, not a huge
     * stack-pointer move. */
    VALGRIND_STACK_REGISTER(base + guard, base + guard + size);
#endif
    out[i] = base;
  }
  return 0;
}

/* Takes up to max stacks of class cls with the current guard from their
 * pool into out. */
static size_t pool_take(int cls, void **out, size_t max) {
  struct pool *pl = &S.cur->by_class[cls];
  size_t k = 0;
  weft__spin_lock(&pl->lk);
  while (k < max && pl->warm.n > 0)
    out[k++] = pl->warm.v[--pl->warm.n];
  while (k < max && pl->cold.n > 0)
    out[k++] = pl->cold.v[--pl->cold.n];
  weft__spin_unlock(&pl->lk);
  return k;
}

static bool vec_reserve(struct vec *v, size_t n) {
  if (v->n + n <= v->cap)
    return true;
  size_t cap = v->cap ? v->cap * 2 : 256;
  while (cap < v->n + n)
    cap *= 2;
  void **p = realloc(v->v, cap * sizeof(void *));
  if (!p)
    return false;
  v->v = p;
  v->cap = cap;
  return true;
}

static int by_address(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
  return x < y ? -1 : x > y;
}

/*
 * Giving back the pages of many stacks whose guards are large.  A run of
 * neighbouring stacks spans the guards between them, and the kernel walks
 * every page of those (a guard region is a marker per page): with guards
 * much larger than the stacks that walk costs more than the rest.  One
 * madvise per stack's usable part costs a system call and a TLB flush on
 * every CPU running the process, each.  process_madvise(2) on our own
 * process takes up to IOV_MAX ranges in one call with one flush (Linux
 * 6.13 and later accept MADV_DONTNEED for the caller's own process); where
 * it refuses, fall back to a call per stack.
 */
static void release_apart(void **st, size_t n, size_t size, size_t guard) {
  struct iovec iov[TRIM];
  for (size_t i = 0; i < n;) {
    size_t m = n - i < TRIM ? n - i : TRIM;
    for (size_t k = 0; k < m; k++)
      iov[k] = (struct iovec){(char *)st[i + k] + guard, size};
    size_t k = advise_vector(iov, m, MADV_DONTNEED, &refused_dontneed);
    for (; k < m; k++)
      madvise(iov[k].iov_base, iov[k].iov_len, MADV_DONTNEED);
    i += m;
  }
}

/* Gives back the pages of n stacks of one size and guard: with guards
 * larger than the stacks, each usable part alone (release_apart); else one
 * madvise per run of neighbouring mappings.  Guards inside a run stay:
 * MADV_DONTNEED keeps guard markers, and PROT_NONE pages have nothing to
 * drop. */
static void release_pages(void **st, size_t n, size_t size, size_t guard) {
  size_t len = guard + size;
  if (guard > size) {
    release_apart(st, n, size, guard);
    return;
  }
  qsort(st, n, sizeof(void *), by_address);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && (char *)st[j - 1] + len == (char *)st[j])
      j++;
    char *lo = (char *)st[i] + guard;
    char *hi = (char *)st[j - 1] + len;
    madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
    i = j;
  }
}

static void pool_give(struct pools *ps, int cls, void **in, size_t n,
                      size_t size) {
  struct pool *pl = &ps->by_class[cls];
  void *trim[TRIM];
  size_t ntrim = 0;

  weft__spin_lock(&pl->lk);
  if (!vec_reserve(&pl->warm, n)) {
    weft__spin_unlock(&pl->lk);
    /* Cannot remember them: give their pages back, keep the mappings
     * (handles that point into them must stay readable). */
    release_pages(in, n, size, ps->guard);
    return;
  }
  for (size_t i = 0; i < n; i++)
    pl->warm.v[pl->warm.n++] = in[i];
  if (pl->warm.n >= POOL_WARM + TRIM) {
    ntrim = TRIM;
    pl->warm.n -= TRIM;
    memcpy(trim, pl->warm.v + pl->warm.n, sizeof(trim));
  }
  weft__spin_unlock(&pl->lk);
  if (!ntrim)
    return;
  /* Released before anyone can take them again. */
  release_pages(trim, ntrim, size, ps->guard);
  weft__spin_lock(&pl->lk);
  if (vec_reserve(&pl->cold, ntrim)) {
    memcpy(pl->cold.v + pl->cold.n, trim, sizeof(trim));
    pl->cold.n += ntrim;
  }
  /* If even that failed, those stacks are lost to reuse but harmless. */
  weft__spin_unlock(&pl->lk);
}

void *weft__stack_alloc(struct weft__stack_cache *c, size_t size, int *err) {
  int cls = class_of(size);
  void *p;
  if (c && size == S.deflt) {
    if (WEFT_LIKELY(c->n > 0)) {
      weft__stat_inc(&c->hits); /* read by weft_stats */
      return c->items[--c->n];
    }
    c->n = (unsigned)pool_take(cls, c->items, BATCH);
    if (c->n > 0) {
      weft__stat_inc(&c->hits); /* read by weft_stats */
      return c->items[--c->n];
    }
    /* A batch for the cache (map_stacks), twice as large as the last, up
     * to BATCH: a program that starts a few threads maps a few stacks. */
    unsigned n = c->batch ? c->batch : 1;
    int rc = map_stacks(size, c->items, n);
    if (rc < 0 && n > 1) /* perhaps only the address space for one left */
      rc = map_stacks(size, c->items, n = 1);
    if (rc < 0) {
      *err = rc;
      warn_limit(rc);
      return NULL;
    }
    c->batch = n < BATCH ? 2 * n : BATCH;
    c->n = n;
    weft__stat_add(&c->maps, n);
    return c->items[--c->n];
  }
  if (pool_take(cls, &p, 1) == 1)
    return p;
  int rc = map_stacks(size, &p, 1);
  if (rc < 0) {
    *err = rc;
    warn_limit(rc);
    return NULL;
  }
  if (c)
    weft__stat_inc(&c->maps);
  return p;
}

void weft__stack_free(struct weft__stack_cache *c, void *base, size_t size,
                      size_t guard) {
  /* A worker's cache holds stacks of the current guard only. */
  if (c && size == S.deflt && guard == weft__stack_guard) {
    if (c->n == WEFT__STACK_CACHE) {
      c->n -= BATCH;
      pool_give(S.cur, class_of(size), c->items + c->n, BATCH, size);
    }
    c->items[c->n++] = base;
    return;
  }
  pool_give(pools_of(guard), class_of(size), &base, 1, size);
}

void weft__stack_cache_drain(struct weft__stack_cache *c) {
  if (c->n)
    pool_give(S.cur, class_of(S.deflt), c->items, c->n, S.deflt);
  c->n = 0;
}

/* After fork (rt.h): forget the pools (another thread may have been
 * updating them); their stacks are leaked in the child. */
void weft__stack_fork_child(void) {
  atomic_store(&all_lk.v, 0);
  /* The parent's pidfd names the parent: open ours when needed. */
  int fd = ld_relaxed(&self_pidfd);
  if (fd >= 0)
    close(fd);
  st_relaxed(&self_pidfd, -1);
  for (struct pools *ps = atomic_load(&S.all); ps; ps = ps->next)
    memset(ps->by_class, 0, sizeof(ps->by_class));
}
