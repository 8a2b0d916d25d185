/*
 * util.h - small pieces every runtime file uses: branch hints, atomics
 * shorthands, the internal spinlock, futex calls, and the runtime's own
 * assertions (Go's "throw": a broken invariant aborts with a message that
 * starts with "weft:" and names the green thread and worker).
 */
#ifndef WEFT_UTIL_H
#define WEFT_UTIL_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT_LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT_NOINLINE __attribute__((noinline))
#define WEFT_INLINE inline __attribute__((always_inline))
#define WEFT_NORETURN __attribute__((noreturn))
/* Code that runs on a green thread's stack only above its function's
 * frames, or when they are not running (its entry and trampolines, a
 * preempted thread's resume stub): a return address into it found on a
 * running thread's stack is the entry's own, or left over from before;
 * never a sign of weft's code being live.  preempt.c reads the section's
 * bounds. */
#define WEFT_ENTRY_TEXT __attribute__((section("weft_entry_text"), noinline))
/* A function ASan must not instrument (it reads other frames' memory). */
#define WEFT_NO_ASAN __attribute__((no_sanitize_address))
#define WEFT_CACHELINE 64
#define WEFT_ALIGNED_CL __attribute__((aligned(WEFT_CACHELINE)))

#ifndef WEFT_DEBUG
#define WEFT_DEBUG 0
#endif
/* Debug code is always compiled and type-checked, only skipped. */
static const bool weft_debug = WEFT_DEBUG;

#define ld_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define ld_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define st_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define st_release(p, v) atomic_store_explicit((p), (v), memory_order_release)

static inline void weft__cpu_relax(void) { __builtin_ia32_pause(); }

/* Statistics counters: each is written only by its own worker and read by
 * weft_stats() and the monitor from other threads.  Relaxed atomics under
 * ThreadSanitizer, so that it can check everything else; plain otherwise,
 * which on x86-64 is the same instruction. */
static inline void weft__stat_inc(uint64_t *n) {
#if defined(WEFT_TSAN) && WEFT_TSAN
  __atomic_store_n(n, __atomic_load_n(n, __ATOMIC_RELAXED) + 1,
                   __ATOMIC_RELAXED);
#else
  ++*n;
#endif
}

static inline void weft__stat_add(uint64_t *n, uint64_t k) {
#if defined(WEFT_TSAN) && WEFT_TSAN
  __atomic_store_n(n, __atomic_load_n(n, __ATOMIC_RELAXED) + k,
                   __ATOMIC_RELAXED);
#else
  *n += k;
#endif
}

static inline void weft__stat_set(uint64_t *n, uint64_t v) {
#if defined(WEFT_TSAN) && WEFT_TSAN
  __atomic_store_n(n, v, __ATOMIC_RELAXED);
#else
  *n = v;
#endif
}

/* A full barrier (StoreLoad included).  GCC refuses atomic_thread_fence
 * under ThreadSanitizer, which does not model fences; TSan builds use a
 * seq_cst RMW on a private word instead, a full barrier on x86-64 too. */
static inline void weft__fence(void) {
#if defined(WEFT_TSAN) && WEFT_TSAN
  static _Atomic int word;
  atomic_fetch_add(&word, 0);
#else
  atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Prints "weft: <message> (green thread ..., worker ...)" and aborts. */
WEFT_NORETURN void weft__throw(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

#define weft__assert(cond)                                                     \
  do {                                                                         \
    if (WEFT_UNLIKELY(!(cond)))                                                \
      weft__throw("assertion failed: %s at %s:%d", #cond, __FILE__, __LINE__); \
  } while (0)
#define weft__dassert(cond)                                                    \
  do {                                                                         \
    if (weft_debug)                                                            \
      weft__assert(cond);                                                      \
  } while (0)

/*
 * The internal spinlock: a test-and-test-and-set word for the short critical
 * sections of the run queues, channels and wait queues.  After a while of
 * spinning it yields the CPU, since its holder may be a preempted kernel
 * thread.
 */
typedef struct {
  _Atomic uint32_t v;
} weft__spin;

void weft__spin_lock_slow(weft__spin *l);

static inline void weft__spin_lock(weft__spin *l) {
  /* acquire, synchronizes with the release in weft__spin_unlock */
  if (WEFT_LIKELY(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)))
    return;
  weft__spin_lock_slow(l);
}
static inline bool weft__spin_trylock(weft__spin *l) {
  return !ld_relaxed(&l->v) &&
         !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}
static inline void weft__spin_unlock(weft__spin *l) { st_release(&l->v, 0); }
/* The same as a function of void *, to hand to a park as its unlock (the
 * scheduler recognises it and unlocks inline). */
void weft__unlock_spin(void *spin);
static inline bool weft__spin_held(weft__spin *l) { return ld_relaxed(&l->v); }

/* Futexes.  deadline: absolute, as everywhere (WEFT_FOREVER: none).
 * Returns 0 or -errno (-ETIMEDOUT once the deadline has passed). */
int weft__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t deadline);
void weft__futex_wake(_Atomic uint32_t *addr, int n);

/* errno through a call the compiler cannot see into, so that the address of
 * the current kernel thread's errno is never cached across a switch. */
int weft__errno_get(void);
void weft__errno_set(int e);

/* Names the calling kernel thread (15 characters at most), as ps -L, top
 * -H, perf and gdb show it: the runtime's threads say what they are. */
void weft__thread_name(const char *name);

int64_t weft__now(void);

/* Writes a string to stderr with write(2): usable in signal handlers. */
void weft__write_err(const char *s);
/* Formats an unsigned into buf (at least 21 bytes); returns buf. */
char *weft__utoa(uint64_t v, char *buf);
char *weft__xtoa(uint64_t v, char *buf);

/* A small fast PRNG (xorshift64*) for scheduling choices. */
static inline uint64_t weft__rand(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return x * 0x2545F4914F6CDD1DULL;
}

#endif /* WEFT_UTIL_H */
