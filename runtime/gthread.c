/*
 * gthread.c - green thread lifecycle: spawn, run, exit, join, detach,
 * identity, sleep.
 *
 * Join protocol.  g->lk guards done/joined/detached/joiner.  The exiting
 * thread does not mark itself done: its post-switch action does, once the
 * thread is off its stack, because whoever sees `done` may free that stack
 * at once.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gthread.h"
#include "sched.h"
#include "stack.h"
#include "wait.h"

#if WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif

struct weft__g *weft__g_of_stack(void *base, size_t size) {
  uintptr_t top = (uintptr_t)base + weft__stack_guard_size() + size;
  return (struct weft__g *)((top - sizeof(struct weft__g)) &
                            ~(uintptr_t)(WEFT_CACHELINE - 1));
}

/* The id of the thread g describes, or 0 once it is freed.  Handles are
 * checked against it without g->lk (a stale handle's descriptor may be
 * freed or reused at any moment); g_free and spawn store it atomically. */
static inline uint64_t g_id(struct weft__g *g) {
  return __atomic_load_n(&g->id, __ATOMIC_RELAXED);
}

/* Zeroes the descriptor up to its name (and the name's first bytes) with
 * 16-byte stores.  A memset of this size compiles to REP STOSQ, whose
 * start-up cost is a large part of a spawn + join (spawn_join.green;
 * bench/README.md); the asm statement hides the zero, so the compiler
 * cannot turn the loop back into one. */
static inline void g_zero(struct weft__g *g) {
  _Static_assert(WEFT_CACHELINE % 16 == 0, "descriptor alignment");
  _Static_assert(offsetof(struct weft__g, name) + 16 <=
                     sizeof(struct weft__g),
                 "the last store stays inside the descriptor");
#if WEFT_TSAN
  /* The id is read racily through stale handles (g_id): store it alone,
   * atomically, so that TSan sees no plain write to it. */
  size_t id_at = offsetof(struct weft__g, id), id_end = id_at + sizeof g->id;
  memset(g, 0, id_at);
  __atomic_store_n(&g->id, 0, __ATOMIC_RELAXED);
  memset((char *)g + id_end, 0,
         (offsetof(struct weft__g, name) + 15) / 16 * 16 - id_end);
#else
  typedef long long v2 __attribute__((vector_size(16)));
  v2 *p = __builtin_assume_aligned(g, 16), z = {0, 0};
  __asm__("" : "+x"(z));
#pragma GCC unroll 16
  for (size_t i = 0; i < (offsetof(struct weft__g, name) + 15) / 16; i++)
    p[i] = z;
#endif
}

/*
 * A thread that is not a worker (main spawning and joining, a server's own
 * threads) keeps a small stack cache of its own, as each worker does, so
 * that a spawn + join from it takes no lock on the global stack pool.  The
 * cache holds stacks of one size, the default of the runtime it was filled
 * under; it is emptied into the pools when the default changes and when the
 * thread exits.
 */
struct foreign_cache {
  size_t size;  /* usable size of the stacks it holds */
  size_t guard; /* and their guard */
  bool keyed;  /* its exit destructor is registered */
  struct weft__stack_cache c;
};
static __thread struct foreign_cache fcache;
static pthread_key_t fcache_key;
static pthread_once_t fcache_once = PTHREAD_ONCE_INIT;

static void fcache_empty(struct foreign_cache *fc) {
  while (fc->c.n)
    weft__stack_free(NULL, fc->c.items[--fc->c.n], fc->size, fc->guard);
}

static void fcache_exit(void *p) { fcache_empty(p); }

static void fcache_key_make(void) {
  if (pthread_key_create(&fcache_key, fcache_exit) != 0)
    fcache_key = (pthread_key_t)-1;
}

/* The calling plain thread's cache for stacks of the given size and
 * guard, or NULL (not the runtime's default, or no way to empty it at
 * thread exit). */
WEFT_NOINLINE static struct weft__stack_cache *fcache_get(size_t size,
                                                       size_t guard) {
  struct foreign_cache *fc = &fcache;
  if (WEFT_UNLIKELY(fc->size != size || fc->guard != guard)) {
    if (size != weft__rt.stack_default || guard != weft__stack_guard_size())
      return NULL;
    fcache_empty(fc);
    fc->size = size;
    fc->guard = guard;
  }
  if (WEFT_UNLIKELY(!fc->keyed)) {
    pthread_once(&fcache_once, fcache_key_make);
    if (fcache_key == (pthread_key_t)-1 ||
        pthread_setspecific(fcache_key, fc) != 0)
      return NULL;
    fc->keyed = true;
  }
  return &fc->c;
}

static inline void g_free(struct weft__g *g) {
  struct weft__worker *w = weft__worker_get();
  __atomic_store_n(&g->id, 0, __ATOMIC_RELAXED); /* read by tools */
  weft__tsan_free(g->tsan_fiber);
  g->tsan_fiber = NULL;
  weft__stack_free(w ? &w->stacks : fcache_get(g->size, g->guard), g->base,
                   g->size, g->guard);
}

static void post_exit(weft__post *p) {
  struct weft__g *g = p->g;
  weft__spin_lock(&g->lk);
  g->done = true;
  bool detached = g->detached;
  struct weft__waiter *joiner = g->joiner;
  /* Claimed under the lock: a joiner whose deadline passed takes the
   * lock to leave, and its waiter is gone after that. */
  bool wake = joiner && weft__waiter_claim(joiner, 0);
  weft__spin_unlock(&g->lk);
  if (detached)
    g_free(g);
  else if (wake)
    weft__waiter_wake(joiner);
}

/* What every exit does before the thread leaves: keep the result for
 * weft_join and run the destructors of its locals. */
static void g_finish(struct weft__g *g, void *result) {
  g->result = result;
  weft__deadline_exit(g);
  if (weft__locals_held(g))
    weft__locals_release(g);
}

static WEFT_NORETURN void g_exit(struct weft__g *g, void *result) {
  g_finish(g, result);
  weft__post post = {.fn = post_exit, .g = g};
  weft__exit_switch(&post);
}

/* What a new green thread does first: the post action of the switch that
 * started it, and a clean errno.  A thread spawned by a thread that is not
 * a worker counts as a spawn of the worker that starts it. */
static inline void g_start(struct weft__g *g, void *post) {
#if WEFT_ASAN
  weft__switch_arrived(); /* ASan's fiber bookkeeping; nothing otherwise */
#endif
  g->fresh = false;
  weft__post_run(post);
  if (WEFT_UNLIKELY(g->start_work)) {
    struct weft__worker *w = weft__worker_get();
    if (g->foreign) {
      weft__stat_inc(&w->st.spawns);
      weft__stat_inc(&w->st.foreign_spawns);
    }
    if (g->pin < 0)
      g->pin = w->index + 1; /* pinned where it first runs */
  }
  *weft__worker_get()->errnop = 0;
}

/* A new green thread's first code.  With the assembly switch (and no
 * sanitizer, whose fiber bookkeeping wants the switch call), it returns to
 * the trampoline where to resume, instead of switching out from within
 * its frames: see weft__ctx_make_ret_asm.  The exit's post action then
 * lives in the descriptor, since the frames it would live in are gone. */
#if WEFT_CTX_ASM && !WEFT_ASAN && !WEFT_TSAN
#define EXIT_BY_RETURN 1
WEFT_ENTRY_TEXT static struct weft__ctx_resume g_entry(void *post,
                                                     void *data) {
  struct weft__g *g = data;
  g_start(g, post);
  g_finish(g, g->fn(g->arg));
  g->exit_post.fn = post_exit;
  g->exit_post.g = g;
  return weft__exit_resume(&g->exit_post);
}
#else
#define EXIT_BY_RETURN 0
WEFT_ENTRY_TEXT static void g_entry(void *post, void *data) {
  struct weft__g *g = data;
  g_start(g, post);
  g_exit(g, g->fn(g->arg));
}
#endif

/* Ids are unique and never reused.  A worker takes them from the global
 * counter in blocks, so that a spawn costs no atomic RMW; ids of threads
 * spawned on different workers are therefore not in creation order. */
#define ID_BLOCK 256

static uint64_t new_id(struct weft__worker *w) {
  if (!w)
    return atomic_fetch_add_explicit(&weft__rt.next_id, 1,
                                     memory_order_relaxed);
  if (WEFT_UNLIKELY(w->id_next == w->id_end)) {
    w->id_next = atomic_fetch_add_explicit(&weft__rt.next_id, ID_BLOCK,
                                           memory_order_relaxed);
    w->id_end = w->id_next + ID_BLOCK;
  }
  return w->id_next++;
}

int weft_spawn(weft_gthread *t, const weft_gthread_attr *attr, weft_fn fn,
               void *arg) {
  if (WEFT_UNLIKELY(!weft__rt_running()))
    return -EPERM;
  bool detached = attr && attr->detached;
  if (!fn || (!t && !detached))
    return -EINVAL;
  size_t size = weft__rt.stack_default;
  if (attr && attr->stack_size && !(size = weft__stack_round(attr->stack_size)))
    return -EINVAL;

  struct weft__worker *w = weft__worker_get();
  size_t guard = weft__stack_guard_size();
  /* From a thread that is not a worker: inside weft__foreign_enter from
   * here to the queueing, so that the runtime it joins cannot be shut
   * down meanwhile (sched.h). */
  if (WEFT_UNLIKELY(!w) && !weft__foreign_enter())
    return -EPERM;
  int err = -ENOMEM;
  char *base = weft__stack_alloc(
      w ? &w->stacks : fcache_get(size, guard), size, &err);
  if (!base) {
    if (!w)
      weft__foreign_leave();
    return err;
  }
#if WEFT_ASAN
  /* A reused stack still carries the poison of its last owner's frames. */
  ASAN_UNPOISON_MEMORY_REGION(base + guard, size);
#endif
  struct weft__g *g = weft__g_of_stack(base, size);
  g_zero(g);
  g->name[0] = 0;
  if (attr && attr->name) {
    strncpy(g->name, attr->name, WEFT_NAME_MAX - 1);
    g->name[WEFT_NAME_MAX - 1] = 0;
  }
  __atomic_store_n(&g->id, new_id(w), __ATOMIC_RELAXED);
  g->base = base;
  g->size = size;
  g->guard = guard;
  g->fn = fn;
  g->arg = arg;
  g->detached = detached;
  if (attr && attr->pinned) /* g_zero left 0: not pinned */
    g->pin = -1, g->start_work = true;
#if EXIT_BY_RETURN
  g->ctx = weft__ctx_make_ret_asm(base + guard, g, g_entry, g);
#else
  g->ctx = weft__ctx_make(base + guard, g, g_entry, g);
#endif
  g->fresh = true;
  g->epoch = ld_relaxed(&weft__rt.epoch);
  g->tsan_fiber = weft__tsan_new();
  if (t) {
    t->p = g;
    t->id = g->id;
  }
  if (w && w->cur) {
    weft__stat_inc(&w->st.spawns);
    if (weft_debug && weft__rt.seed && (weft__rand(&w->rng) & 1))
      weft__ready(g);
    else
      weft__run_now(g); /* the child first; we go to runnext */
  } else if (w) {
    weft__ready(g);
  } else { /* entered above */
    g->foreign = g->start_work = true;
    weft__ready_entered(g);
    weft__foreign_leave();
  }
  return 0;
}

/* Kernel threads blocked in weft_join are listed, so that weft_shutdown
 * can end their wait when it abandons the thread they wait for.  The list
 * lock is taken after g->lk, never before it: shutdown claims the waiter
 * (not exclusive, so a CAS) without g->lk. */
static void kjoin_add(struct weft__kjoin *k) {
  weft__spin_lock(&weft__rt.kjoin_lk);
  k->prev = NULL;
  k->next = weft__rt.kjoins;
  if (k->next)
    k->next->prev = k;
  weft__rt.kjoins = k;
  weft__spin_unlock(&weft__rt.kjoin_lk);
}

static void kjoin_remove(struct weft__kjoin *k) {
  weft__spin_lock(&weft__rt.kjoin_lk);
  if (k->prev)
    k->prev->next = k->next;
  else
    weft__rt.kjoins = k->next;
  if (k->next)
    k->next->prev = k->prev;
  weft__spin_unlock(&weft__rt.kjoin_lk);
}

void weft__join_abandon_all(void) {
  weft__spin_lock(&weft__rt.kjoin_lk);
  for (struct weft__kjoin *k = weft__rt.kjoins; k; k = k->next)
    if (weft__waiter_claim(k->w, WEFT__JOIN_ABANDONED))
      weft__waiter_wake(k->w);
  weft__spin_unlock(&weft__rt.kjoin_lk);
}

/* Waits for g to finish; requires g->lk, which it releases.  0 once g is
 * done, -ETIMEDOUT, or -ESRCH when g was abandoned meanwhile. */
WEFT_NOINLINE static int join_wait(struct weft__g *g, int64_t deadline) {
  struct weft__waiter wt;
  struct weft__kjoin kj = {.g = g, .w = &wt};
  weft__waiter_init(&wt);
  wt.reason = "join";
  /* Only the exit of g claims a green joiner without a deadline; a
   * deadline, or weft_shutdown for a kernel thread, may race it. */
  wt.exclusive = wt.g && deadline == WEFT_FOREVER;
  if (!wt.g) {
    kjoin_add(&kj);
    /* After the add: a shutdown that began before it is seen here, one
     * that begins after it finds us on the list. */
    if (!weft__g_current(g)) {
      weft__spin_unlock(&g->lk);
      kjoin_remove(&kj);
      return -ESRCH;
    }
  }
  g->joined = true;
  g->joiner = &wt;
  int sel = weft__waiter_park(&wt, weft__unlock_spin, &g->lk, deadline);
  if (!wt.g)
    kjoin_remove(&kj);
  if (sel == 0)
    return 0;
  /* A deadline, or an abandoned thread: the joiner leaves; the thread
   * may still be joined later (or never finish). */
  weft__spin_lock(&g->lk);
  if (g->joiner == &wt)
    g->joiner = NULL;
  g->joined = false;
  weft__spin_unlock(&g->lk);
  return sel == WEFT__WAIT_TIMEOUT ? -ETIMEDOUT : -ESRCH;
}

static WEFT_INLINE int join(weft_gthread t, void **result, int64_t deadline) {
  struct weft__g *g = t.p;
  if (!g || !t.id)
    return -EINVAL;
  if (g == weft__g_cur())
    return -EDEADLK;
  if (g_id(g) != t.id)
    return -EINVAL;
  weft__spin_lock(&g->lk);
  if (g_id(g) != t.id || g->detached || g->joined) {
    weft__spin_unlock(&g->lk);
    return -EINVAL;
  }
  if (!g->done) {
    int rc = 0;
    if (!weft__g_current(g))
      rc = -ESRCH; /* abandoned by weft_shutdown: it will never finish */
    else if (deadline == WEFT_NOWAIT || deadline <= weft__now())
      rc = deadline == WEFT_NOWAIT ? -EAGAIN : -ETIMEDOUT;
    if (rc) {
      weft__spin_unlock(&g->lk);
      return rc;
    }
    if ((rc = join_wait(g, deadline)))
      return rc;
  } else {
    g->joined = true;
    weft__spin_unlock(&g->lk);
  }
  if (result)
    *result = g->result;
  g_free(g);
  return 0;
}

int weft_join_until(weft_gthread t, void **result, int64_t deadline) {
  return join(t, result, deadline);
}

int weft_join(weft_gthread t, void **result) {
  return join(t, result, WEFT_FOREVER);
}

int weft_tryjoin(weft_gthread t, void **result) {
  int rc = weft_join_until(t, result, WEFT_NOWAIT);
  return rc == -EAGAIN ? -EBUSY : rc;
}

int weft_detach(weft_gthread t) {
  struct weft__g *g = t.p;
  if (!g || !t.id || g_id(g) != t.id)
    return -EINVAL;
  weft__spin_lock(&g->lk);
  if (g_id(g) != t.id || g->detached || g->joined) {
    weft__spin_unlock(&g->lk);
    return -EINVAL;
  }
  if (g->done) {
    g->joined = true;
    weft__spin_unlock(&g->lk);
    g_free(g);
    return 0;
  }
  if (!weft__g_current(g)) { /* abandoned: it will never finish */
    weft__spin_unlock(&g->lk);
    return -ESRCH;
  }
  g->detached = true;
  weft__spin_unlock(&g->lk);
  return 0;
}

int weft_exit(void *result) {
  struct weft__g *g = weft__g_cur();
  if (!g)
    return -EPERM;
  g_exit(g, result);
}

weft_gthread weft_self(void) {
  struct weft__g *g = weft__g_cur();
  weft_gthread t = {0};
  if (g) {
    t.p = g;
    t.id = g->id;
  }
  return t;
}

uint64_t weft_id(void) {
  struct weft__g *g = weft__g_cur();
  return g ? g->id : 0;
}

const char *weft_name(void) {
  struct weft__g *g = weft__g_cur();
  return g ? g->name : NULL;
}

int weft_set_name(const char *name) {
  struct weft__g *g = weft__g_cur();
  if (!g)
    return -EPERM;
  if (!name)
    name = "";
  strncpy(g->name, name, WEFT_NAME_MAX - 1);
  g->name[WEFT_NAME_MAX - 1] = 0;
  return 0;
}

bool weft_in_gthread(void) { return weft__g_cur() != NULL; }

int weft_stack_info_get(weft_gthread t, weft_stack_info *info) {
  struct weft__g *g = t.p;
  if (!g || !t.id || !info || g_id(g) != t.id)
    return -EINVAL;
  size_t guard = g->guard;
  info->guard_lo = g->base;
  info->guard_size = guard;
  info->stack_lo = g->base + guard;
  info->stack_size = g->size;
  info->kernel_guard = weft__stack_kernel_guard();
  return 0;
}

int weft_sleep_until(int64_t deadline) {
  if (weft__g_cur()) {
    struct weft__waiter w;
    weft__waiter_init(&w);
    w.reason = "sleep";
    if (weft__cancel_arm(&w) < 0)
      return -ECANCELED;
    if (deadline <= weft__now()) {
      weft__cancel_disarm(&w);
      return weft_yield();
    }
    int sel = weft__waiter_park(&w, NULL, NULL, deadline);
    weft__cancel_disarm(&w);
    return sel == WEFT__WAIT_CANCEL ? -ECANCELED : 0;
  }
  if (deadline == WEFT_FOREVER)
    deadline = INT64_MAX - 1;
  struct timespec ts = {.tv_sec = deadline / 1000000000,
                        .tv_nsec = deadline % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
    ;
  return 0;
}

/* ------------------------------------------------------------------ */
/* Cancellation                                                       */
/* ------------------------------------------------------------------ */

int weft_cancel(weft_gthread t) {
  struct weft__g *g = t.p;
  if (!g || !t.id)
    return -EINVAL;
  if (g_id(g) != t.id)
    return -ESRCH;
  weft__spin_lock(&g->lk);
  /* Finished, or abandoned by weft_shutdown (never resumed, so there is
   * nothing to cancel). */
  if (g_id(g) != t.id || g->done || !weft__g_current(g)) {
    weft__spin_unlock(&g->lk);
    return -ESRCH;
  }
  /* Relaxed: io.c's canceled() reads it without lk, as a hint (a plain
   * store here would race with those reads); what orders it is lk, which
   * weft__cancel_arm takes to look at it before g parks. */
  __atomic_store_n(&g->canceled, true, __ATOMIC_RELAXED);
  /* The waiter lives in g's frame; g cannot leave its wait before it
   * takes lk to disarm, so the waiter is valid here. */
  if (g->cwait)
    weft__cancel_fire(g->cwait);
  weft__spin_unlock(&g->lk);
  return 0;
}

bool weft_canceled(void) {
  struct weft__g *g = weft__g_cur();
  return g && __atomic_load_n(&g->canceled, __ATOMIC_RELAXED);
}

int weft_sleep(int64_t ns) { return weft_sleep_until(weft_deadline(ns)); }
