/*
 * shm.c - the shared region between worker processes (shm.h draws its
 * layout): its setup in the supervisor (weft_shm_setup), a slot's
 * lifecycle (a worker attaches to it after the fork; the supervisor
 * retires it when the worker exits and reclaims its partition, bumping
 * its generation, when the worker died), the supervisor area that process
 * channels live in, the slots' doorbells, and the pid locks that several
 * processes take.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "inject.h"
#include "rt.h"
#include "shm.h"
#include "shm_internal.h"
#include "shm_test.h"
#include "util.h"
#include "weft.h"

struct weft__shm_hdr *weft__shm;
int weft__shm_self = -1;
const char *weft__shm_overcommit_file;

struct weft__shm_me weft__shm_me;
size_t weft__shm_page_size;
static pthread_mutex_t setup_lock = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static inline size_t round_up(size_t v, size_t a) {
  return (v + a - 1) & ~(a - 1);
}

void weft__shm_say(const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n > sizeof buf - 2)
    n = sizeof buf - 2;
  buf[n] = '\n';
  buf[n + 1] = '\0';
  weft__write_err(buf);
}

/* ------------------------------------------------------------------------ */
/* Pid cache, fork handling, pid locks                                      */
/* ------------------------------------------------------------------------ */

static _Atomic int32_t pid_cache;

/* In a child forked by any process that knows the region: the child is
 * not the worker (if its parent was one) and has another pid. */
void weft__shm_fork_child(void) {
  st_relaxed(&pid_cache, 0);
  weft__shm_self = -1;
}

int32_t weft__shm_pid(void) {
  int32_t p = ld_relaxed(&pid_cache);
  if (WEFT_LIKELY(p))
    return p;
  /* Register the handler before caching, so that every process with a
   * cached pid resets it in its children. */
  weft__fork_watch();
  p = (int32_t)getpid();
  st_relaxed(&pid_cache, p);
  return p;
}

static bool pid_dead(uint32_t pid) {
  if (pid == 0)
    return false;
  int e = weft__errno_get();
  bool dead = kill((pid_t)pid, 0) < 0 && weft__errno_get() == ESRCH;
  weft__errno_set(e);
  return dead;
}

static WEFT_NOINLINE void lock_slow(_Atomic uint32_t *l, uint32_t self) {
  unsigned spins = 0;
  int64_t next_check = 0;

  for (;;) {
    uint32_t v = ld_relaxed(l);
    if (v == 0) {
      /* acquire, synchronizes with the release in weft__shm_unlock */
      if (atomic_compare_exchange_weak_explicit(
              l, &v, self, memory_order_acquire, memory_order_relaxed))
        return;
      continue;
    }
    if (++spins < 128) {
      weft__cpu_relax();
      continue;
    }
    spins = 0;
    weft_yield();
    int64_t now = weft__now();
    if (now < next_check)
      continue;
    next_check = now + 10 * 1000000;
    /* The holder died inside its critical section, which commits with a
     * single store: what it protects is consistent, take the lock over. */
    if (pid_dead(v) &&
        atomic_compare_exchange_strong_explicit(
            l, &v, self, memory_order_acquire, memory_order_relaxed))
      return;
  }
}

void weft__shm_lock(_Atomic uint32_t *l) {
  uint32_t self = (uint32_t)weft__shm_pid();
  uint32_t v = 0;
  /* acquire, synchronizes with the release in weft__shm_unlock */
  if (WEFT_LIKELY(atomic_compare_exchange_strong_explicit(
          l, &v, self, memory_order_acquire, memory_order_relaxed)))
    return;
  lock_slow(l, self);
}

void weft__shm_unlock(_Atomic uint32_t *l) { st_release(l, 0); }

/* ------------------------------------------------------------------------ */
/* Setup, attach, reclaim (supervisor and worker lifecycle)                 */
/* ------------------------------------------------------------------------ */

/* vm.overcommit_memory, or -1 if it cannot be read. */
static int overcommit_mode(void) {
  const char *path = weft__shm_overcommit_file
                         ? weft__shm_overcommit_file
                         : "/proc/sys/vm/overcommit_memory";
  FILE *f = fopen(path, "re");
  if (!f)
    return -1;
  int mode = -1;
  if (fscanf(f, "%d", &mode) != 1)
    mode = -1;
  fclose(f);
  return mode;
}

int weft_shm_setup(size_t size, int parts) {
  if (parts < 1 || parts > WEFT__SHM_MAX_PARTS || size == 0 ||
      size > WEFT__SHM_SIZE_MAX)
    return -EINVAL;
  pthread_mutex_lock(&setup_lock);
  if (weft__shm) {
    pthread_mutex_unlock(&setup_lock);
    return -EALREADY;
  }
  if (!weft__shm_page_size)
    weft__shm_page_size = (size_t)sysconf(_SC_PAGESIZE);
  size_t part = (size / (size_t)parts) & ~(weft__shm_page_size - 1);
  if (part < WEFT__SHM_PART_MIN) {
    pthread_mutex_unlock(&setup_lock);
    return -EINVAL;
  }
  size_t hdr_size = round_up(sizeof(struct weft__shm_hdr), weft__shm_page_size);
  size_t total = hdr_size + WEFT__SHM_AREA_SIZE + part * (size_t)parts;

  /* Under strict accounting MAP_NORESERVE is ignored and the whole
   * reservation is charged against the commit limit at once: a shared
   * heap sized as address space would eat the machine's commit budget. */
  if (overcommit_mode() == 2) {
    weft__shm_say(
        "weft: shared heap: vm.overcommit_memory=2 (strict accounting) "
        "ignores MAP_NORESERVE and would charge the whole %zu MiB "
        "reservation against the commit limit; refusing.  Set "
        "vm.overcommit_memory to 0 or 1, or run without a shared heap",
        total >> 20);
    pthread_mutex_unlock(&setup_lock);
    return -ENOMEM;
  }
  void *r = weft__mmap(NULL, total, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) {
    int e = weft__errno_get();
    weft__shm_say(
        "weft: shared heap: cannot reserve %zu MiB of address space (mmap: "
        "%s); check ulimit -v and vm.overcommit_memory",
        total >> 20, strerror(e));
    pthread_mutex_unlock(&setup_lock);
    return -ENOMEM;
  }
  struct weft__shm_hdr *h = r;
  h->size = total;
  h->nparts = parts;
  h->part_size = part;
  h->parts = (char *)r + hdr_size + WEFT__SHM_AREA_SIZE;
  h->area_off = hdr_size;
  h->area_size = WEFT__SHM_AREA_SIZE;
  h->area_used = 0;
  for (int i = 0; i < WEFT__SHM_MAX_PARTS; i++) {
    st_relaxed(&h->slots[i].gen, 1);
    /* Without a doorbell, green threads of that slot poll (shm_chan.c). */
    h->slots[i].doorbell =
        i < parts ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  }
  h->magic = WEFT__SHM_MAGIC;
  (void)weft__shm_pid(); /* registers the fork handler */
  /* release: a thread that sees weft__shm sees the header filled in */
  atomic_store_explicit((_Atomic(struct weft__shm_hdr *) *)&weft__shm, h,
                        memory_order_release);
  pthread_mutex_unlock(&setup_lock);
  return 0;
}

int weft__shm_attach(int index) {
  struct weft__shm_hdr *h = weft__shm;
  if (!h)
    return -EPERM;
  if (index < 0 || index >= h->nparts)
    return -EINVAL;
  if (weft__shm_self >= 0)
    return -EALREADY;
  struct weft__shm_slot *s = &h->slots[index];
  if (ld_acquire(&s->used) != 0) {
    weft__shm_say(
        "weft: shared heap: slot %d still holds its previous worker's "
        "partition; the supervisor must reclaim it before forking a "
        "replacement",
        index);
    return -EBUSY;
  }
  if (!weft__shm_page_size)
    weft__shm_page_size = (size_t)sysconf(_SC_PAGESIZE);
  weft__shm_me.slot = s;
  weft__shm_me.lo = (uintptr_t)h->parts + (uintptr_t)index * h->part_size;
  weft__shm_me.size = h->part_size;
  weft__shm_me.gen = ld_acquire(&s->gen);
  weft__shm_me.tag = TAG(index, weft__shm_me.gen);
  const char *env = getenv("WEFT_SHM_TCACHE");
  weft__shm_me.tcache = !(env && env[0] == '0');

  int rc = weft__shm_arena_create(index);
  if (rc)
    return rc;
  st_relaxed(&s->live_objs, 0);
  st_relaxed(&s->live_bytes, 0);
  st_relaxed(&s->remote_frees, 0);
  st_relaxed(&pid_cache, 0);
  st_release(&s->pid, weft__shm_pid());
  st_release(&s->alive, 1);
  weft__shm_self = index;
  weft__shm_chan_attach();
  return 0;
}

void weft__shm_reclaim(int index) {
  struct weft__shm_hdr *h = weft__shm;
  if (!h || index < 0 || index >= h->nparts)
    return;
  struct weft__shm_slot *s = &h->slots[index];
  st_release(&s->alive, 0);
  st_release(&s->pid, 0);
  /* seq_cst, before the pages go: a free that checks the generation after
   * this sees the object as stale instead of reading discarded memory. */
  atomic_fetch_add(&s->gen, 1);
  char *lo = h->parts + (size_t)index * h->part_size;
  if (!weft__shm_page_size)
    weft__shm_page_size = (size_t)sysconf(_SC_PAGESIZE);
  size_t used = round_up(ld_acquire(&s->used), weft__shm_page_size);
  if (used > h->part_size)
    used = h->part_size;
  if (used && madvise(lo, used, MADV_REMOVE) != 0) {
    /* The next owner's hooks promise zeroed memory: keep the promise. */
    weft__shm_say(
        "weft: shared heap: MADV_REMOVE of worker %d's partition failed "
        "(%s); zeroing it instead",
        index, strerror(weft__errno_get()));
    memset(lo, 0, used);
  }
  st_release(&s->used, 0);
  /* Empty the mailbox: entries still in flight carry the old generation
   * and are dropped by the next owner. */
  for (size_t i = 0; i < WEFT__SHM_MAILBOX; i++)
    atomic_exchange_explicit(&s->mb[i], 0, memory_order_relaxed);
  atomic_store(&s->mb_head, ld_acquire(&s->mb_tail));
  st_relaxed(&s->live_objs, 0);
  st_relaxed(&s->live_bytes, 0);
  st_relaxed(&s->remote_frees, 0);
}

void weft__shm_retire(int index) {
  struct weft__shm_hdr *h = weft__shm;
  if (!h || index < 0 || index >= h->nparts)
    return;
  struct weft__shm_slot *s = &h->slots[index];
  /* The partition and its generation stay: objects the worker handed out
   * remain readable, and frees of them are dropped (nobody drains the
   * mailbox any more) until the slot is reclaimed. */
  st_release(&s->alive, 0);
  st_release(&s->pid, 0);
}

void *weft__shm_area_alloc(size_t size) {
  struct weft__shm_hdr *h = weft__shm;
  if (!h || size == 0 || size > h->area_size)
    return NULL;
  size = round_up(size, WEFT_CACHELINE);
  weft__shm_lock(&h->area_lock);
  size_t used = h->area_used;
  if (size > h->area_size - used) {
    weft__shm_unlock(&h->area_lock);
    return NULL;
  }
  h->area_used = used + size; /* the one store that commits */
  weft__shm_unlock(&h->area_lock);
  /* Never handed out before, hence zero. */
  return (char *)h + h->area_off + used;
}

bool weft__shm_slot_alive(int index, uint64_t gen) {
  struct weft__shm_hdr *h = weft__shm;
  if (!h || index < 0 || index >= h->nparts)
    return false;
  struct weft__shm_slot *s = &h->slots[index];
  return ld_acquire(&s->alive) && ld_acquire(&s->gen) == gen;
}

uint64_t weft__shm_self_gen(void) {
  return weft__shm_self >= 0 ? weft__shm_me.gen : 0;
}

void weft__shm_ring(int index) {
  int fd = weft__shm->slots[index].doorbell;
  if (fd < 0)
    return;
  uint64_t one = 1;
  int e = weft__errno_get();
  ssize_t r = write(fd, &one, sizeof one); /* EAGAIN: rung plenty already */
  (void)r;
  weft__errno_set(e);
}
