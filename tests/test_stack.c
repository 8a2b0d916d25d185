/*
 * test_stack.c - green-thread stacks: guard pages, crash reports, sizes.
 *
 * Invariants checked:
 *  - a green thread that recurses without bound hits its guard and the
 *    process aborts with a message that names the thread and its stack size:
 *    `weft: green thread <id> "<name>" overflowed its <N> KiB stack`, for
 *    the default size, a per-thread size and a configured default;
 *  - a NULL-pointer write in a green thread kills the process with SIGSEGV
 *    and the report names the thread;
 *  - weft_stack_info_get(): the guard lies directly below the usable part,
 *    the usable part is at least what was asked for, holds the thread's own
 *    locals and can really be used, and touching the guard kills;
 *  - absurd stack sizes are refused with -EINVAL.
 *
 * The crash tests fork: the child sends its stderr through a pipe and the
 * parent checks how the child died and what it said.  Under AddressSanitizer
 * this program asks ASan to leave SIGSEGV to weft (handle_segv=0, unless
 * ASAN_OPTIONS says otherwise); under ThreadSanitizer they are skipped.
 */
#include "helpers.h"

#include <limits.h>
#include <sys/mman.h>

#define KIB ((size_t)1024)
#define SANITIZED WEFT_TSAN

#if WEFT_ASAN
/* Read by ASan at startup; ASAN_OPTIONS overrides it flag by flag. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "handle_segv=0:detect_leaks=0:detect_stack_use_after_return=0";
}
#endif

/* ------------------------------------------------------------------------ */
/* Recursion                                                                */
/* ------------------------------------------------------------------------ */

/* Never reached: dive() recurses until the stack runs out. */
static volatile unsigned long dive_limit = ULONG_MAX;

/* Recurses; the work after the call keeps it from becoming a loop. */
__attribute__((noinline)) static unsigned long dive(unsigned long depth) {
  volatile char pad[256];
  pad[depth % sizeof pad] = (char)depth;
  if (depth == dive_limit)
    return 0;
  return dive(depth + 1) + pad[(depth * 7) % sizeof pad];
}

/* Recurses until the frame is below limit: uses the stack down to there. */
__attribute__((noinline)) static unsigned long dive_to(char *limit,
                                                      unsigned long depth) {
  volatile char pad[256];
  pad[depth % sizeof pad] = (char)depth;
  if ((char *)pad < limit)
    return pad[depth % sizeof pad];
  return dive_to(limit, depth + 1) + pad[(depth * 3) % sizeof pad];
}

static void *diver(void *arg) {
  (void)arg;
  fprintf(stderr, "id=%llu\n", (unsigned long long)weft_id());
  return (void *)dive(0);
}

/* A write through a NULL struct pointer to its field at offset 16.  The
 * address is computed as an integer so that UBSan's null-pointer check
 * (which would exit first) leaves it to the hardware fault. */
static volatile uintptr_t null_base = 0;

static void *null_writer(void *arg) {
  (void)arg;
  fprintf(stderr, "id=%llu\n", (unsigned long long)weft_id());
  *(volatile int *)(null_base + 16) = 42;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Crash reports, through a forked child                                    */
/* ------------------------------------------------------------------------ */

struct crash {
  size_t cfg_stack;  /* weft_config.stack_size */
  size_t attr_stack; /* weft_gthread_attr.stack_size */
  const char *name;
  weft_fn fn;
};

static void crash_child(void *p) {
  struct crash *c = p;
  weft_config cfg = {.workers = 2, .stack_size = c->cfg_stack};
  if (weft_init(&cfg) != 0)
    _exit(3);
  weft_gthread_attr attr = {.stack_size = c->attr_stack, .name = c->name};
  weft_gthread t;
  if (weft_spawn(&t, &attr, c->fn, NULL) != 0)
    _exit(4);
  weft_join(t, NULL);
  _exit(5); /* the thread should have taken the process down */
}

static const char *describe(int status) {
  static char buf[64];
  if (WIFSIGNALED(status))
    snprintf(buf, sizeof buf, "killed by signal %d (%s)", WTERMSIG(status),
             strsignal(WTERMSIG(status)));
  else if (WIFEXITED(status))
    snprintf(buf, sizeof buf, "exited with %d", WEXITSTATUS(status));
  else
    snprintf(buf, sizeof buf, "status %#x", status);
  return buf;
}

/* The id the crashing thread printed before crashing, or 0. */
static unsigned long long printed_id(const char *err) {
  const char *p = strstr(err, "id=");
  return p ? strtoull(p + 3, NULL, 10) : 0;
}

static void expect_overflow(size_t cfg_stack, size_t attr_stack,
                            unsigned kib) {
  struct crash c = {cfg_stack, attr_stack, "deep-diver", diver};
  struct h_child ch;
  char want[160], want_full[200];

  h_fork_capture(crash_child, &c, &ch);
  cr_expect(WIFSIGNALED(ch.status) && WTERMSIG(ch.status) == SIGABRT,
            "the child %s, expected SIGABRT; stderr:\n%s",
            describe(ch.status), ch.err);
  snprintf(want, sizeof want, "\"deep-diver\" overflowed its %u KiB stack",
           kib);
  cr_expect(strstr(ch.err, want) != NULL,
            "stderr lacks '%s'; stderr:\n%s", want, ch.err);
  unsigned long long id = printed_id(ch.err);
  cr_expect_neq(id, 0, "the thread did not run; stderr:\n%s", ch.err);
  snprintf(want_full, sizeof want_full, "weft: green thread %llu %s", id,
           want);
  cr_expect(strstr(ch.err, want_full) != NULL,
            "stderr lacks '%s'; stderr:\n%s", want_full, ch.err);
}

Test(stack_crash, overflow_default_size_is_reported, .timeout = 40,
     .disabled = SANITIZED) {
  expect_overflow(0, 0, 64);
}

Test(stack_crash, overflow_attr_size_is_reported, .timeout = 40,
     .disabled = SANITIZED) {
  expect_overflow(0, 256 * KIB, 256);
}

Test(stack_crash, overflow_configured_default_is_reported, .timeout = 40,
     .disabled = SANITIZED) {
  expect_overflow(128 * KIB, 0, 128);
}

Test(stack_crash, null_write_names_thread, .timeout = 40,
     .disabled = SANITIZED) {
  struct crash c = {0, 0, "null-writer", null_writer};
  struct h_child ch;
  h_fork_capture(crash_child, &c, &ch);
  cr_expect(WIFSIGNALED(ch.status) && WTERMSIG(ch.status) == SIGSEGV,
            "the child %s, expected SIGSEGV; stderr:\n%s",
            describe(ch.status), ch.err);
  cr_expect(strstr(ch.err, "\"null-writer\"") != NULL,
            "the report does not name the thread; stderr:\n%s", ch.err);
  cr_expect(strstr(ch.err, "weft:") != NULL,
            "no weft: report on stderr; stderr:\n%s", ch.err);
  /* An ordinary fault is not a stack overflow. */
  cr_expect(strstr(ch.err, "overflowed") == NULL,
            "a NULL write was reported as an overflow; stderr:\n%s", ch.err);
}

/* The same deaths, as Criterion sees them. */
Test(stack_crash, overflow_aborts, .signal = SIGABRT, .timeout = 40,
     .disabled = SANITIZED) {
  h_no_core();
  h_start(2);
  weft_gthread_attr attr = {.name = "deep-diver"};
  weft_gthread t;
  cr_assert_eq(weft_spawn(&t, &attr, diver, NULL), 0);
  weft_join(t, NULL);
}

Test(stack_crash, null_write_segfaults, .signal = SIGSEGV, .timeout = 40,
     .disabled = SANITIZED) {
  h_no_core();
  h_start(2);
  weft_gthread_attr attr = {.name = "null-writer"};
  weft_gthread t;
  cr_assert_eq(weft_spawn(&t, &attr, null_writer, NULL), 0);
  weft_join(t, NULL);
}

/* ------------------------------------------------------------------------ */
/* Stack geometry                                                           */
/* ------------------------------------------------------------------------ */

TestSuite(stack, .init = h_start2, .fini = h_stop, .timeout = 30);

struct probe {
  weft_sem go;            /* posted by the test when it has looked */
  weft_stack_info own;    /* as the thread sees itself */
  int own_rc;
  uintptr_t local;        /* address of a local of the thread */
  size_t use;             /* bytes of stack to use, 0 for none */
  unsigned long used_ok;
};

static void *probe_fn(void *arg) {
  struct probe *p = arg;
  char here;
  p->local = (uintptr_t)&here;
  p->own_rc = weft_stack_info_get(weft_self(), &p->own);
  if (p->use) {
    volatile unsigned long sink = dive_to((char *)&here - p->use, 0);
    (void)sink;
    p->used_ok = 1; /* got back without a fault */
  }
  TCHECK_EQ(weft_sem_wait(&p->go), 0);
  return NULL;
}

static bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

static void geometry(size_t request) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t want = request ? request : 64 * KIB;
  struct probe p = {.use = want / 2};
  weft_gthread_attr attr = {.stack_size = request, .name = "probe"};
  weft_gthread t;
  weft_stack_info info;

  cr_assert_eq(weft_sem_init(&p.go, 0), 0);
  cr_assert_eq(weft_spawn(&t, &attr, probe_fn, &p), 0);
  int rc = weft_stack_info_get(t, &info);
  cr_assert_eq(rc, 0, "weft_stack_info_get: %s", weft_strerror(rc));

  uintptr_t guard_lo = (uintptr_t)info.guard_lo;
  uintptr_t lo = (uintptr_t)info.stack_lo;
  cr_expect_gt(info.guard_size, 0);
  cr_expect_eq(info.guard_size % page, 0, "guard of %zu bytes",
               info.guard_size);
  cr_expect_eq(guard_lo % page, 0);
  cr_expect_eq(guard_lo + info.guard_size, lo,
               "the guard [%#lx, +%zu) is not directly below the stack at "
               "%#lx",
               (unsigned long)guard_lo, info.guard_size, (unsigned long)lo);
  cr_expect_geq(info.stack_size, want, "asked for %zu, got %zu", want,
                info.stack_size);
  cr_expect(is_pow2(info.stack_size), "stack of %zu bytes", info.stack_size);
  cr_expect_leq(info.stack_size, 2 * want, "asked for %zu, got %zu", want,
                info.stack_size);
  cr_expect_leq(info.guard_size, info.stack_size);

  cr_assert_eq(weft_sem_post(&p.go), 0);
  h_join(t);
  EXPECT_NO_THREAD_FAILURES();
  cr_expect_eq(p.own_rc, 0);
  cr_expect_eq(p.own.stack_lo, info.stack_lo);
  cr_expect_eq(p.own.stack_size, info.stack_size);
  cr_expect_eq(p.own.guard_lo, info.guard_lo);
  cr_expect_eq(p.own.guard_size, info.guard_size);
  cr_expect_eq(p.own.kernel_guard, info.kernel_guard);
  cr_expect(p.local >= lo && p.local < lo + info.stack_size,
            "a local at %#lx is outside the stack [%#lx, +%zu)",
            (unsigned long)p.local, (unsigned long)lo, info.stack_size);
  cr_expect(p.used_ok, "could not use half of the stack");
  weft_sem_destroy(&p.go);
}

Test(stack, geometry_default) { geometry(0); }
Test(stack, geometry_100k) { geometry(100 * KIB); }
Test(stack, geometry_1m) { geometry(1024 * KIB); }
Test(stack, geometry_16k) { geometry(16 * KIB); }

Test(stack, info_of_invalid_handle) {
  weft_stack_info info;
  weft_gthread none = {0};
  cr_expect_eq(weft_stack_info_get(none, &info), -EINVAL);
}

static void *nothing(void *arg) { return arg; }

Test(stack, info_of_joined_handle) {
  weft_stack_info info;
  weft_gthread t = h_spawn(nothing, NULL);
  h_join(t);
  cr_expect_eq(weft_stack_info_get(t, &info), -EINVAL);
}

/* Many threads with different sizes alive at once: their stacks and guards
 * never overlap. */
static void *hold(void *arg) {
  weft_sem *go = arg;
  TCHECK_EQ(weft_sem_wait(go), 0);
  return NULL;
}

Test(stack, stacks_do_not_overlap) {
  enum { N = 48 };
  static const size_t sizes[] = {0, 16 * KIB, 32 * KIB, 128 * KIB, 256 * KIB};
  weft_sem go;
  weft_gthread t[N];
  weft_stack_info info[N];
  cr_assert_eq(weft_sem_init(&go, 0), 0);
  for (int i = 0; i < N; i++) {
    weft_gthread_attr attr = {.stack_size = sizes[i % 5]};
    cr_assert_eq(weft_spawn(&t[i], &attr, hold, &go), 0);
    cr_assert_eq(weft_stack_info_get(t[i], &info[i]), 0);
  }
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) {
      uintptr_t a0 = (uintptr_t)info[i].guard_lo;
      uintptr_t a1 = (uintptr_t)info[i].stack_lo + info[i].stack_size;
      uintptr_t b0 = (uintptr_t)info[j].guard_lo;
      uintptr_t b1 = (uintptr_t)info[j].stack_lo + info[j].stack_size;
      cr_expect(a1 <= b0 || b1 <= a0, "stacks %d and %d overlap", i, j);
    }
  for (int i = 0; i < N; i++)
    cr_assert_eq(weft_sem_post(&go), 0);
  for (int i = 0; i < N; i++)
    h_join(t[i]);
  EXPECT_NO_THREAD_FAILURES();
}

/* Touching the guard itself (not through recursion) kills the process. */
static void *guard_toucher(void *arg) {
  (void)arg;
  weft_stack_info info;
  if (weft_stack_info_get(weft_self(), &info) != 0)
    _exit(6);
  fprintf(stderr, "touching %p\n", (void *)((char *)info.stack_lo - 1));
  *(volatile char *)((char *)info.stack_lo - 1) = 1;
  return NULL;
}

Test(stack_crash, guard_is_not_accessible, .timeout = 40,
     .disabled = SANITIZED) {
  struct crash c = {0, 0, "toucher", guard_toucher};
  struct h_child ch;
  h_fork_capture(crash_child, &c, &ch);
  cr_expect(WIFSIGNALED(ch.status) && (WTERMSIG(ch.status) == SIGSEGV ||
                                       WTERMSIG(ch.status) == SIGABRT),
            "writing to the guard: the child %s; stderr:\n%s",
            describe(ch.status), ch.err);
}

/* ------------------------------------------------------------------------ */
/* Absurd sizes                                                             */
/* ------------------------------------------------------------------------ */

Test(stack, absurd_attr_sizes_are_refused) {
  static const size_t bad[] = {1, SIZE_MAX, (size_t)2 << 30};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    weft_gthread_attr attr = {.stack_size = bad[i]};
    weft_gthread t = {0};
    int rc = weft_spawn(&t, &attr, nothing, NULL);
    cr_expect_eq(rc, -EINVAL, "stack_size %zu: %s", bad[i],
                 weft_strerror(rc));
    if (rc == 0)
      weft_join(t, NULL);
  }
  /* The runtime is still fine. */
  weft_gthread t = h_spawn(nothing, (void *)7);
  cr_expect_eq(h_join(t), (void *)7);
}

Test(stack_cfg, absurd_config_sizes_are_refused, .timeout = 30) {
  static const size_t bad[] = {SIZE_MAX, (size_t)2 << 30};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    weft_config cfg = {.workers = 2, .stack_size = bad[i]};
    int rc = weft_init(&cfg);
    cr_expect_eq(rc, -EINVAL, "config stack_size %zu: %s", bad[i],
                 weft_strerror(rc));
    if (rc == 0)
      weft_shutdown();
  }
  cr_expect_not(weft_running());
}
