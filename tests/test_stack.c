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
 *  - absurd stack sizes are refused with -EINVAL;
 *  - the guard is 1 MiB by default, else weft_config.guard_size or
 *    WEFT_GUARD_SIZE rounded up to pages (the field wins over the
 *    variable); absurd guard sizes are refused with -EINVAL;
 *  - after weft_shutdown() and weft_init() with another guard size, every
 *    new green thread (spawned from a kernel thread, from a green thread,
 *    default or other stack size) gets a stack with the new guard, never a
 *    cached one made with the old guard;
 *  - a fault at the lowest byte, the middle or the highest byte of a
 *    (1 MiB) guard is reported as the thread's overflow;
 *  - stacks mapped in batches (a green thread spawning 150 at once), with
 *    kernel guard regions or PROT_NONE guards: every one has its whole
 *    guard unreadable and its usable part readable, and each counts as
 *    mapped in weft_stats.
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
  cr_expect_eq(info.guard_size, 1024 * KIB, "default guard of %zu bytes",
               info.guard_size);

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

/* Anywhere in the guard, even its lowest byte a whole guard (1 MiB) below
 * the stack, is the thread's own guard: a fault there is reported as its
 * overflow.  where: 0 lowest byte, 1 middle, 2 highest byte. */
static int touch_where;

static void *guard_spot_toucher(void *arg) {
  (void)arg;
  weft_stack_info info;
  if (weft_stack_info_get(weft_self(), &info) != 0)
    _exit(6);
  fprintf(stderr, "id=%llu\n", (unsigned long long)weft_id());
  size_t off = touch_where == 0   ? 0
               : touch_where == 1 ? info.guard_size / 2
                                  : info.guard_size - 1;
  *(volatile char *)((char *)info.guard_lo + off) = 1;
  return NULL;
}

static void expect_guard_spot_reported(int where) {
  struct crash c = {0, 0, "spot-toucher", guard_spot_toucher};
  struct h_child ch;
  touch_where = where;
  h_fork_capture(crash_child, &c, &ch);
  cr_expect(WIFSIGNALED(ch.status) && WTERMSIG(ch.status) == SIGABRT,
            "the child %s, expected SIGABRT; stderr:\n%s",
            describe(ch.status), ch.err);
  char want[160];
  snprintf(want, sizeof want,
           "weft: green thread %llu \"spot-toucher\" overflowed its 64 KiB "
           "stack", printed_id(ch.err));
  cr_expect(strstr(ch.err, want) != NULL, "stderr lacks '%s'; stderr:\n%s",
            want, ch.err);
}

Test(stack_crash, guard_bottom_is_reported_as_overflow, .timeout = 40,
     .disabled = SANITIZED) {
  expect_guard_spot_reported(0);
}

Test(stack_crash, guard_middle_is_reported_as_overflow, .timeout = 40,
     .disabled = SANITIZED) {
  expect_guard_spot_reported(1);
}

Test(stack_crash, guard_top_is_reported_as_overflow, .timeout = 40,
     .disabled = SANITIZED) {
  expect_guard_spot_reported(2);
}

/* ------------------------------------------------------------------------ */
/* Guard sizes                                                              */
/* ------------------------------------------------------------------------ */

/* The guard of a green thread spawned now (with attr's stack size). */
static size_t guard_now(size_t stack_size) {
  weft_gthread_attr attr = {.stack_size = stack_size};
  weft_gthread t;
  weft_stack_info info;
  cr_assert_eq(weft_spawn(&t, &attr, nothing, NULL), 0);
  cr_assert_eq(weft_stack_info_get(t, &info), 0);
  cr_expect_eq((char *)info.guard_lo + info.guard_size,
               (char *)info.stack_lo);
  weft_join(t, NULL);
  return info.guard_size;
}

static size_t guard_with(size_t cfg_guard) {
  weft_config cfg = {.workers = 2, .guard_size = cfg_guard};
  int rc = weft_init(&cfg);
  cr_assert_eq(rc, 0, "guard_size %zu: %s", cfg_guard, weft_strerror(rc));
  size_t g = guard_now(0);
  cr_assert_eq(weft_shutdown(), 0);
  return g;
}

Test(stack_cfg, guard_sizes, .timeout = 30) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  unsetenv("WEFT_GUARD_SIZE");
  cr_expect_eq(guard_with(0), 1024 * KIB);
  cr_expect_eq(guard_with(1), page);
  cr_expect_eq(guard_with(page), page);
  cr_expect_eq(guard_with(page + 1), 2 * page);
  cr_expect_eq(guard_with(256 * KIB), 256 * KIB);
  cr_expect_eq(guard_with(4096 * KIB), 4096 * KIB);
  setenv("WEFT_GUARD_SIZE", "64k", 1);
  cr_expect_eq(guard_with(0), 64 * KIB);
  cr_expect_eq(guard_with(page), page, "the field wins over the variable");
  setenv("WEFT_GUARD_SIZE", "2M", 1);
  cr_expect_eq(guard_with(0), 2048 * KIB);
  setenv("WEFT_GUARD_SIZE", "12288", 1);
  cr_expect_eq(guard_with(0), 12 * KIB);
  unsetenv("WEFT_GUARD_SIZE");
}

Test(stack_cfg, absurd_guard_sizes_are_refused, .timeout = 30) {
  static const size_t bad[] = {SIZE_MAX, ((size_t)1 << 30) + 1,
                               (size_t)2 << 30};
  unsetenv("WEFT_GUARD_SIZE");
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    weft_config cfg = {.workers = 2, .guard_size = bad[i]};
    int rc = weft_init(&cfg);
    cr_expect_eq(rc, -EINVAL, "guard_size %zu: %s", bad[i],
                 weft_strerror(rc));
    if (rc == 0)
      weft_shutdown();
  }
  static const char *bad_env[] = {"abc", "-4096", "0", "2G", "12x", "1T"};
  for (size_t i = 0; i < sizeof bad_env / sizeof bad_env[0]; i++) {
    setenv("WEFT_GUARD_SIZE", bad_env[i], 1);
    weft_config cfg = {.workers = 2};
    int rc = weft_init(&cfg);
    cr_expect_eq(rc, -EINVAL, "WEFT_GUARD_SIZE=%s: %s", bad_env[i],
                 weft_strerror(rc));
    if (rc == 0)
      weft_shutdown();
  }
  unsetenv("WEFT_GUARD_SIZE");
  cr_expect_not(weft_running());
}

/* Spawns n threads with the given stack size from a green thread (so that
 * their stacks come from, and go back to, a worker's cache) and checks
 * that each has the guard want. */
struct respawn {
  size_t stack_size, want;
  int n, bad;
};

static void *guard_checker(void *arg) {
  struct respawn *r = arg;
  weft_stack_info info;
  if (weft_stack_info_get(weft_self(), &info) != 0 ||
      info.guard_size != r->want ||
      (char *)info.guard_lo + info.guard_size != (char *)info.stack_lo)
    return (void *)1;
  /* The whole usable part is there. */
  volatile char *lo = info.stack_lo;
  lo[0] = 1;
  return NULL;
}

static void *respawner(void *arg) {
  struct respawn *r = arg;
  weft_gthread t[64];
  weft_gthread_attr attr = {.stack_size = r->stack_size};
  for (int i = 0; i < r->n; i++)
    if (weft_spawn(&t[i], &attr, guard_checker, r) != 0)
      r->bad++;
  for (int i = 0; i < r->n; i++) {
    void *res = NULL;
    weft_join(t[i], &res);
    r->bad += res != NULL;
  }
  return NULL;
}

static void churn(size_t want) {
  static const size_t sizes[] = {0, 128 * KIB};
  for (int k = 0; k < 2; k++) {
    struct respawn r = {sizes[k], want, 64, 0};
    /* From a green thread (the worker's cache), then from main. */
    h_join(h_spawn(respawner, &r));
    respawner(&r);
    cr_expect_eq(r.bad, 0, "%d green threads with stack size %zu did not "
                 "get a %zu-byte guard", r.bad, sizes[k], want);
  }
}

/* Stacks are cached and never unmapped: a new runtime with another guard
 * must not hand out the old runtime's stacks. */
Test(stack_cfg, reinit_with_another_guard, .timeout = 30) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  static const size_t guards[] = {0, 1, 0, 64 << 10, 1};
  unsetenv("WEFT_GUARD_SIZE");
  for (size_t i = 0; i < sizeof guards / sizeof guards[0]; i++) {
    weft_config cfg = {.workers = 2, .guard_size = guards[i]};
    cr_assert_eq(weft_init(&cfg), 0);
    churn(guards[i] == 0 ? 1024 * KIB : guards[i] == 1 ? page : guards[i]);
    cr_assert_eq(weft_shutdown(), 0);
  }
}

/*
 * Stacks mapped in batches (stack.c, map_stacks): a worker that starts
 * many threads maps their stacks many at a time, in one mapping, with the
 * guards installed in one call.  Every stack of every batch has a guard of
 * its own, whole, and its usable part is usable.  Checked without a crash:
 * write(2) from an address the process cannot read fails with EFAULT.
 */
#define BATCHED 150

static weft_sem batch_go;

static void *batch_hold(void *arg) {
  (void)arg;
  weft_sem_wait(&batch_go);
  return NULL;
}

/* 0 if readable, 1 if not (EFAULT), 2 if write failed otherwise. */
static int unreadable(int fd, const char *p) {
  if (write(fd, p, 1) == 1)
    return 0;
  return errno == EFAULT ? 1 : 2;
}

struct batch_check {
  weft_gthread t[BATCHED];
  int bad;     /* stacks whose guard or usable part was not as it must be */
  uint64_t maps; /* stacks mapped while they were spawned */
};

static void *batch_spawner(void *arg) {
  struct batch_check *b = arg;
  weft_worker_stats st[2];
  int fd[2];
  uint64_t maps0 = 0, maps1 = 0;
  if (pipe(fd) != 0)
    _exit(20);
  for (int i = 0, n = weft_stats(st, 2); i < n && i < 2; i++)
    maps0 += st[i].stack_maps;
  for (int i = 0; i < BATCHED; i++)
    if (weft_spawn(&b->t[i], NULL, batch_hold, NULL) != 0)
      _exit(21);
  for (int i = 0, n = weft_stats(st, 2); i < n && i < 2; i++)
    maps1 += st[i].stack_maps;
  b->maps = maps1 - maps0;
  for (int i = 0; i < BATCHED; i++) {
    weft_stack_info in;
    char buf[1];
    if (weft_stack_info_get(b->t[i], &in) != 0)
      _exit(22);
    const char *g = in.guard_lo;
    int lo = unreadable(fd[1], g), mid = unreadable(fd[1], g + in.guard_size / 2),
        hi = unreadable(fd[1], g + in.guard_size - 1),
        use = unreadable(fd[1], in.stack_lo);
    if (lo != 1 || mid != 1 || hi != 1 || use != 0 ||
        g + in.guard_size != (char *)in.stack_lo) {
      fprintf(stderr,
              "stack %d [%p, %p): guard low %d middle %d high %d, usable %d "
              "(1: unreadable)\n",
              i, (void *)g, (void *)((char *)in.stack_lo + in.stack_size), lo,
              mid, hi, use);
      b->bad++;
    }
    while (use == 0 && read(fd[0], buf, 1) != 1)
      ;
  }
  for (int i = 0; i < BATCHED; i++)
    weft_sem_post(&batch_go);
  for (int i = 0; i < BATCHED; i++)
    weft_join(b->t[i], NULL);
  return NULL;
}

static void batch_child(void *arg) {
  static struct batch_check b;
  if (arg)
    setenv("WEFT_GUARD", "mprotect", 1);
  weft_config cfg = {.workers = 2, .guard_size = 64 * KIB};
  if (weft_init(&cfg) != 0 || weft_sem_init(&batch_go, 0) != 0)
    _exit(3);
  weft_gthread t;
  if (weft_spawn(&t, NULL, batch_spawner, &b) != 0)
    _exit(4);
  weft_join(t, NULL);
  weft_shutdown();
  if (b.maps < BATCHED - 1) {
    fprintf(stderr, "%llu stacks mapped for %d threads\n",
            (unsigned long long)b.maps, BATCHED);
    _exit(6);
  }
  _exit(b.bad ? 7 : 0);
}

static void expect_batches_guarded(bool mprotect_guard) {
  struct h_child ch;
  h_fork_capture(batch_child, mprotect_guard ? "mprotect" : NULL, &ch);
  cr_expect(WIFEXITED(ch.status) && WEXITSTATUS(ch.status) == 0,
            "%s guards: the child %s; stderr:\n%s",
            mprotect_guard ? "PROT_NONE" : "default", describe(ch.status),
            ch.err);
}

Test(stack_cfg, every_stack_of_a_batch_is_guarded, .timeout = 30) {
  expect_batches_guarded(false);
}

Test(stack_cfg, every_stack_of_a_batch_is_guarded_prot_none, .timeout = 30) {
  expect_batches_guarded(true);
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

/* ------------------------------------------------------------------------ */
/* Idle stacks give their pages back                                        */
/* ------------------------------------------------------------------------ */

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  if (f)
    fclose(f);
  return kib;
}

#define DIRTY (32 * 1024)
static weft_sem dirty_gate;
static atomic_int dirtied;

/* Dirties DIRTY bytes of its stack with a pattern of its own, checks it,
 * then waits at the gate. */
static void *dirty_and_wait(void *arg) {
  volatile unsigned char buf[DIRTY];
  unsigned char v = (unsigned char)(uintptr_t)arg;
  for (size_t i = 0; i < DIRTY; i += 512)
    buf[i] = v;
  for (size_t i = 0; i < DIRTY; i += 512)
    if (buf[i] != v)
      return (void *)1;
  atomic_fetch_add(&dirtied, 1);
  weft_sem_wait(&dirty_gate);
  return NULL;
}

/* More than the pools keep warm (4096 a size class) are freed at once: the
 * rest give their pages back (with large guards, each stack's usable part
 * alone), and the stacks still work when they are reused. */
Test(stack, idle_stacks_give_their_pages_back, .timeout = 60) {
  enum { N = 6144 };
  static weft_gthread t[N];
  cr_assert_eq(weft_sem_init(&dirty_gate, 0), 0);
  for (int round = 0; round < 2; round++) {
    atomic_store(&dirtied, 0);
    for (uintptr_t i = 0; i < N; i++)
      t[i] = h_spawn(dirty_and_wait, (void *)(i + 1));
    while (atomic_load(&dirtied) < N) /* every stack dirtied */
      usleep(1000);
    long before = rss_kib();
    for (int i = 0; i < N; i++)
      cr_assert_eq(weft_sem_post(&dirty_gate), 0);
    long bad = 0;
    for (int i = 0; i < N; i++)
      bad += (long)(intptr_t)h_join(t[i]);
    long after = rss_kib();
    cr_expect_eq(bad, 0, "%ld threads saw their own stack change", bad);
    cr_log_info("round %d: RSS %ld KiB with %d threads, %ld KiB after", round,
                before, N, after);
    /* At least the 1024 trimmed stacks' dirty pages are gone. */
    cr_expect_gt(before - after, 1024L * DIRTY / 1024 * 3 / 4,
                 "RSS fell only %ld KiB (from %ld)", before - after, before);
  }
}
