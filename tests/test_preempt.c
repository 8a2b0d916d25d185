/*
 * test_preempt.c - preemption: a green thread past its time slice gives
 * its worker up, wherever it is (its own loop, libc, the allocator, a
 * pthread lock), and comes back with its registers, errno and locals;
 * non-preemptible regions hold it off until their end.
 *
 * Each test asserts what happened (who ran, in what order, what values
 * came back, how many preemptions were counted), with bounds on time that
 * are many slices wide.  Under ThreadSanitizer weft does not preempt
 * (weft.h); the tests that need it are skipped there.
 */
#include "helpers.h"

#include <time.h>

/* Where the pure loops put their sums, so that they are not optimised
 * away. */
static volatile uint64_t sink;

#define SKIP_WITHOUT_PREEMPTION()                                            \
  do {                                                                       \
    if (WEFT_TSAN)                                                           \
      cr_skip_test("no preemption under ThreadSanitizer");                   \
  } while (0)

static void start(int workers, int slice_us) {
  weft_config cfg = {.workers = workers, .slice_us = slice_us};
  int rc = weft_init(&cfg);
  cr_assert_eq(rc, 0, "weft_init: %s", weft_strerror(rc));
}

static uint64_t count(size_t field) {
  weft_worker_stats st[8];
  int n = weft_stats(st, 8);
  uint64_t sum = 0;
  for (int i = 0; i < n && i < 8; i++)
    sum += *(const uint64_t *)((const char *)&st[i] + field);
  return sum;
}
#define PREEMPTIONS() count(offsetof(weft_worker_stats, preemptions))
#define DEFERRED() count(offsetof(weft_worker_stats, preempt_deferred))

/* ------------------------------------------------------------------------ */
/* A spinner and a sleeper on one worker                                    */
/* ------------------------------------------------------------------------ */

struct duet {
  atomic_int done;      /* the sleeper finished its wakes */
  int64_t spin_cap;     /* the spinner stops by itself after this long */
  atomic_int capped;    /* ... and says so */
  int64_t worst;        /* the sleeper's latest wake, ns past its deadline */
  int wakes;
};

/* A pure loop: no call into weft, no system call. */
static void *spinner(void *arg) {
  struct duet *d = arg;
  int64_t end = weft_now() + d->spin_cap;
  while (!atomic_load_explicit(&d->done, memory_order_relaxed)) {
    for (int i = 0; i < 100000; i++)
      sink += (uint64_t)i;
    if (weft_now() >= end) {
      atomic_store(&d->capped, 1);
      break;
    }
  }
  return NULL;
}

static void *sleeper(void *arg) {
  struct duet *d = arg;
  for (int i = 0; i < 100; i++) {
    int64_t due = weft_now() + MS(1);
    weft_sleep(MS(1));
    int64_t late = weft_now() - due;
    if (late > d->worst)
      d->worst = late;
    d->wakes++;
  }
  atomic_store(&d->done, 1);
  return NULL;
}

static void duet_run(struct duet *d) {
  weft_gthread s = h_spawn(sleeper, d);
  weft_gthread p = h_spawn(spinner, d);
  h_join(s);
  h_join(p);
}

Test(preempt, a_sleeper_wakes_on_time_beside_a_spinner, .fini = h_stop,
     .timeout = 60) {
  SKIP_WITHOUT_PREEMPTION();
  start(1, 10000);
  struct duet d = {.spin_cap = MS(30000)};
  duet_run(&d);
  cr_assert_eq(d.wakes, 100);
  /* The sleeper finished while the spinner was still spinning. */
  cr_assert_eq(atomic_load(&d.capped), 0, "the spinner ran out its cap");
  /* Each wake within a generous multiple of the 10 ms slice. */
  cr_assert_lt(d.worst, MS(500), "a wake was %lld ms late",
               (long long)(d.worst / 1000000));
  cr_assert_geq(PREEMPTIONS(), 50);
}

/* The same with preemption off: the sleeper waits for the spinner's
 * whole run. */
Test(preempt, without_preemption_the_spinner_starves_the_sleeper,
     .fini = h_stop, .timeout = 60) {
  start(1, -1);
  struct duet d = {.spin_cap = MS(300)};
  duet_run(&d);
  cr_assert_eq(d.wakes, 100);
  cr_assert_eq(atomic_load(&d.capped), 1);
  cr_assert_geq(d.worst, MS(250), "worst wake %lld ms late",
                (long long)(d.worst / 1000000));
  cr_assert_eq(PREEMPTIONS(), 0);
}

/* A thread preempted again and again runs its slice each time, not a
 * slice and a tick: the monitor, which ticks every half slice, times a
 * preempted thread's next slice from its resume, not from the first tick
 * that sees it run again.  Each wake of a sleeper (1 ms sleeps) beside
 * it then comes about a slice after the last (the slice less the 1 ms),
 * where it came a slice and a half after when every resume fell just
 * after a tick (29 ms with this 20 ms slice).  The median of the wakes,
 * with bounds a quarter of a slice wide: a loaded machine makes a wake
 * later, never earlier. */
#define REPEAT_SLICE_MS 20
#define REPEAT_WAKES 15

struct repeat {
  atomic_int done;
  int64_t late[REPEAT_WAKES];
};

static void *repeat_spinner(void *arg) {
  struct repeat *r = arg;
  int64_t end = weft_now() + MS(30000);
  while (!atomic_load_explicit(&r->done, memory_order_relaxed) &&
         weft_now() < end)
    for (int i = 0; i < 100000; i++)
      sink += (uint64_t)i;
  return NULL;
}

static void *repeat_sleeper(void *arg) {
  struct repeat *r = arg;
  for (int i = 0; i < REPEAT_WAKES; i++) {
    int64_t due = weft_now() + MS(1);
    weft_sleep(MS(1));
    r->late[i] = weft_now() - due;
  }
  atomic_store(&r->done, 1);
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

Test(preempt, a_thread_preempted_again_and_again_runs_its_slice,
     .fini = h_stop, .timeout = 60) {
  SKIP_WITHOUT_PREEMPTION();
  start(1, REPEAT_SLICE_MS * 1000);
  struct repeat r = {0};
  weft_gthread s = h_spawn(repeat_sleeper, &r);
  weft_gthread p = h_spawn(repeat_spinner, &r);
  h_join(s);
  h_join(p);
  qsort(r.late, REPEAT_WAKES, sizeof r.late[0], cmp_i64);
  int64_t median = r.late[REPEAT_WAKES / 2];
  cr_assert_geq(PREEMPTIONS(), REPEAT_WAKES - 1);
  cr_assert_lt(median, MS(REPEAT_SLICE_MS) * 5 / 4,
               "the median wake came %.1f ms late: the spinner ran more than "
               "its %d ms slice between them",
               (double)median / 1e6, REPEAT_SLICE_MS);
  cr_assert_geq(median, MS(REPEAT_SLICE_MS) * 3 / 4,
                "the median wake came %.1f ms late: the spinner ran less "
                "than its %d ms slice",
                (double)median / 1e6, REPEAT_SLICE_MS);
}

/* ------------------------------------------------------------------------ */
/* Inside libc and the allocator                                            */
/* ------------------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* malloc, free, snprintf and qsort in a loop; a checksum of all of it. */
static uint64_t libc_work(uint64_t seed, int rounds) {
  uint64_t sum = 0, rng = seed;
  char buf[128];
  for (int r = 0; r < rounds; r++) {
    size_t n = 16 + h_rand(&rng) % 2000;
    uint32_t *v = malloc(n * sizeof *v);
    char *extra = malloc(1 + h_rand(&rng) % 70000);
    if (!v || !extra)
      return 0;
    extra[0] = (char)r;
    for (size_t i = 0; i < n; i++)
      v[i] = (uint32_t)h_rand(&rng);
    qsort(v, n, sizeof *v, cmp_u32);
    int len = snprintf(buf, sizeof buf, "%u/%u/%zu/%.3f", v[0], v[n - 1], n,
                       (double)v[n / 2] / 7.0);
    for (int i = 0; i < len; i++)
      sum = sum * 131 + (unsigned char)buf[i];
    sum += (unsigned char)extra[0];
    free(extra);
    free(v);
  }
  return sum;
}

#define LIBC_ROUNDS 3000

static void *libc_thread(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  uint64_t *out = malloc(sizeof *out);
  *out = libc_work(seed, LIBC_ROUNDS);
  return out;
}

Test(preempt, inside_libc_and_the_allocator, .fini = h_stop, .timeout = 120) {
  SKIP_WITHOUT_PREEMPTION();
  uint64_t want[4];
  for (int i = 0; i < 4; i++)
    want[i] = libc_work((uint64_t)i + 1, LIBC_ROUNDS);
  start(1, 1000);
  uint64_t got[4];
  for (int pass = 0; pass < 3; pass++) {
    weft_gthread t[4];
    for (int i = 0; i < 4; i++)
      t[i] = h_spawn(libc_thread, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 4; i++) {
      uint64_t *r = h_join(t[i]);
      got[i] = *r;
      free(r);
    }
    for (int i = 0; i < 4; i++)
      cr_assert_eq(got[i], want[i], "thread %d's checksum", i);
  }
  uint64_t n = PREEMPTIONS();
  cr_assert_geq(n, 100, "only %llu preemptions", (unsigned long long)n);
}

/* ------------------------------------------------------------------------ */
/* A pthread mutex held by a preempted thread                               */
/* ------------------------------------------------------------------------ */

static pthread_mutex_t mx = PTHREAD_MUTEX_INITIALIZER;
static atomic_int order;

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *holder(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mx);
  /* Six slices holding the lock, mostly in a pure loop (a thread inside
   * weft, say in weft_now, is not preempted). */
  int64_t end = mono_ns() + MS(60);
  while (mono_ns() < end)
    for (int i = 0; i < 10000; i++)
      sink += (uint64_t)i;
  atomic_store(&order, 1);
  pthread_mutex_unlock(&mx);
  return NULL;
}

static void *contender(void *arg) {
  (void)arg;
  pthread_mutex_lock(&mx); /* blocks its kernel thread in a futex */
  int saw = atomic_load(&order);
  pthread_mutex_unlock(&mx);
  return (void *)(intptr_t)saw;
}

/* One worker: the holder is preempted with the lock held, and the
 * contender blocks the worker's kernel thread on it.  The worker is handed
 * on, so the holder resumes and lets go. */
Test(preempt, a_lock_held_by_a_preempted_thread_is_released,
     .fini = h_stop, .timeout = 60) {
  SKIP_WITHOUT_PREEMPTION();
  start(1, 10000);
  weft_gthread a = h_spawn(holder, NULL);
  weft_gthread b = h_spawn(contender, NULL);
  h_join(a);
  cr_assert_eq((intptr_t)h_join(b), 1, "the contender got the lock first");
  cr_assert_geq(PREEMPTIONS(), 2);
}

/* ------------------------------------------------------------------------ */
/* Registers                                                                */
/* ------------------------------------------------------------------------ */

/* Fills ymm0-15, x87's control word, MXCSR's rounding and the 128-byte
 * red zone below the stack pointer with values of its own, spins with
 * them in place (no memory, no call), and checks that every one came
 * back, and that the signal mask it set is still its own.  Returns the
 * number of rounds that did not. */
static int avx_rounds(uint32_t seed, int rounds) {
  int bad = 0;
  uint32_t in[16][8] __attribute__((aligned(32)));
  uint32_t out[16][8] __attribute__((aligned(32)));
  uint64_t red[16];
  sigset_t mine, now;
  sigemptyset(&mine);
  sigaddset(&mine, SIGUSR2);
  if (seed & 1)
    sigaddset(&mine, SIGWINCH);
  pthread_sigmask(SIG_BLOCK, &mine, NULL);
  for (int r = 0; r < rounds; r++) {
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 8; j++)
        in[i][j] = seed * 2654435761u + (uint32_t)(r * 131 + i * 8 + j);
    unsigned mx_in = 0x1f80u | ((seed & 3u) << 13), mx_out;
    unsigned short cw_in = (unsigned short)(0x037fu & ~0x0c00u) |
                           (unsigned short)((seed & 3u) << 10),
                   cw_out;
    __asm__ volatile(
        "vmovdqa 0(%[in]), %%ymm0\n\t"
        "vmovdqa 32(%[in]), %%ymm1\n\t"
        "vmovdqa 64(%[in]), %%ymm2\n\t"
        "vmovdqa 96(%[in]), %%ymm3\n\t"
        "vmovdqa 128(%[in]), %%ymm4\n\t"
        "vmovdqa 160(%[in]), %%ymm5\n\t"
        "vmovdqa 192(%[in]), %%ymm6\n\t"
        "vmovdqa 224(%[in]), %%ymm7\n\t"
        "vmovdqa 256(%[in]), %%ymm8\n\t"
        "vmovdqa 288(%[in]), %%ymm9\n\t"
        "vmovdqa 320(%[in]), %%ymm10\n\t"
        "vmovdqa 352(%[in]), %%ymm11\n\t"
        "vmovdqa 384(%[in]), %%ymm12\n\t"
        "vmovdqa 416(%[in]), %%ymm13\n\t"
        "vmovdqa 448(%[in]), %%ymm14\n\t"
        "vmovdqa 480(%[in]), %%ymm15\n\t"
        "ldmxcsr %[mxi]\n\t"
        "fldcw %[cwi]\n\t"
        /* the red zone: 16 words below RSP, the seed's pattern */
        "mov %[pat], %%rax\n\t"
        "mov $16, %%ecx\n\t"
        "2: mov %%rax, -136(%%rsp,%%rcx,8)\n\t"
        "add %%rcx, %%rax\n\t"
        "dec %%ecx\n\t"
        "jnz 2b\n\t"
        "mov $200000, %%ecx\n\t"
        "1: dec %%ecx\n\t"
        "jnz 1b\n\t"
        "mov $16, %%ecx\n\t"
        "3: mov -136(%%rsp,%%rcx,8), %%rax\n\t"
        "mov %%rax, -8(%[red],%%rcx,8)\n\t"
        "dec %%ecx\n\t"
        "jnz 3b\n\t"
        "vmovdqa %%ymm0, 0(%[out])\n\t"
        "vmovdqa %%ymm1, 32(%[out])\n\t"
        "vmovdqa %%ymm2, 64(%[out])\n\t"
        "vmovdqa %%ymm3, 96(%[out])\n\t"
        "vmovdqa %%ymm4, 128(%[out])\n\t"
        "vmovdqa %%ymm5, 160(%[out])\n\t"
        "vmovdqa %%ymm6, 192(%[out])\n\t"
        "vmovdqa %%ymm7, 224(%[out])\n\t"
        "vmovdqa %%ymm8, 256(%[out])\n\t"
        "vmovdqa %%ymm9, 288(%[out])\n\t"
        "vmovdqa %%ymm10, 320(%[out])\n\t"
        "vmovdqa %%ymm11, 352(%[out])\n\t"
        "vmovdqa %%ymm12, 384(%[out])\n\t"
        "vmovdqa %%ymm13, 416(%[out])\n\t"
        "vmovdqa %%ymm14, 448(%[out])\n\t"
        "vmovdqa %%ymm15, 480(%[out])\n\t"
        "stmxcsr %[mxo]\n\t"
        "fnstcw %[cwo]\n\t"
        "vzeroupper\n\t"
        "ldmxcsr %[mxd]\n\t"
        "fldcw %[cwd]\n\t"
        : [mxo] "=m"(mx_out), [cwo] "=m"(cw_out)
        : [in] "r"(in), [out] "r"(out), [mxi] "m"(mx_in), [cwi] "m"(cw_in),
          [red] "r"(red), [pat] "r"((uint64_t)seed * 0x9E3779B97F4A7C15ull),
          [mxd] "m"((unsigned){0x1f80u}), [cwd] "m"((unsigned short){0x037fu})
        : "rax", "rcx", "memory", "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4",
          "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
          "xmm13", "xmm14", "xmm15");
    uint64_t want = (uint64_t)seed * 0x9E3779B97F4A7C15ull;
    for (int i = 16; i >= 1; i--) {
      if (red[i - 1] != want)
        bad++;
      want += (uint64_t)i;
    }
    pthread_sigmask(SIG_BLOCK, NULL, &now);
    if (memcmp(in, out, sizeof in) || mx_out != mx_in || cw_out != cw_in ||
        !sigismember(&now, SIGUSR2) ||
        sigismember(&now, SIGWINCH) != (int)(seed & 1))
      bad++;
  }
  pthread_sigmask(SIG_UNBLOCK, &mine, NULL);
  return bad;
}

static void *avx_thread(void *arg) {
  return (void *)(intptr_t)avx_rounds((uint32_t)(uintptr_t)arg, 3000);
}

Test(preempt, vector_and_x87_state_survive, .fini = h_stop, .timeout = 120) {
  SKIP_WITHOUT_PREEMPTION();
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx"))
    cr_skip_test("this CPU has no AVX");
  start(1, 1000);
  weft_gthread t[3];
  for (int i = 0; i < 3; i++)
    t[i] = h_spawn(avx_thread, (void *)(uintptr_t)(i + 1));
  for (int i = 0; i < 3; i++)
    cr_assert_eq((intptr_t)h_join(t[i]), 0, "thread %d lost registers", i);
  cr_assert_geq(PREEMPTIONS(), 20);
}

/* ------------------------------------------------------------------------ */
/* Non-preemptible regions                                                  */
/* ------------------------------------------------------------------------ */

static atomic_int other_ran;

static void *other(void *arg) {
  (void)arg;
  atomic_store(&other_ran, 1);
  return NULL;
}

struct region {
  int depth[4];
  int ran_inside, ran_after;
  uint64_t deferred;
};

static void *in_region(void *arg) {
  struct region *r = arg;
  r->depth[0] = weft_preempt_disable();
  r->depth[1] = weft_preempt_disable();
  r->depth[2] = weft_preempt_enable(); /* still inside: depth 1 */
  /* Spin until a preemption has been asked for and put off. */
  int64_t cap = weft_now() + MS(20000);
  while (DEFERRED() == 0 && weft_now() < cap)
    ;
  int64_t end = weft_now() + MS(30); /* and three slices more */
  while (weft_now() < end)
    ;
  r->deferred = DEFERRED();
  r->ran_inside = atomic_load(&other_ran);
  r->depth[3] = weft_preempt_enable(); /* yields to the other thread */
  r->ran_after = atomic_load(&other_ran);
  return NULL;
}

Test(preempt, a_region_defers_preemption_to_its_end, .fini = h_stop,
     .timeout = 60) {
  SKIP_WITHOUT_PREEMPTION();
  start(1, 10000);
  atomic_store(&other_ran, 0);
  struct region r = {{0}, 0, 0, 0};
  weft_gthread a = h_spawn(in_region, &r);
  weft_gthread b = h_spawn(other, NULL);
  h_join(a);
  h_join(b);
  cr_assert_eq(r.depth[0], 1);
  cr_assert_eq(r.depth[1], 2);
  cr_assert_eq(r.depth[2], 1);
  cr_assert_eq(r.depth[3], 0);
  cr_assert_geq(r.deferred, 1);
  cr_assert_eq(r.ran_inside, 0, "the other thread ran inside the region");
  cr_assert_eq(r.ran_after, 1, "the preemption did not happen at the end");
}

static void *misuse(void *arg) {
  (void)arg;
  return (void *)(intptr_t)weft_preempt_enable();
}

Test(preempt, regions_reject_misuse, .init = h_start1, .fini = h_stop) {
  cr_assert_eq(weft_preempt_disable(), -EPERM); /* not a green thread */
  cr_assert_eq(weft_preempt_enable(), -EPERM);
  cr_assert_eq((intptr_t)h_join(h_spawn(misuse, NULL)), -EINVAL);
}

/* A thread that exits inside a region leaves nothing behind for the next
 * thread on its stack. */
static void *exit_inside(void *arg) {
  (void)arg;
  weft_preempt_disable();
  return NULL;
}

static void *depth_of_fresh(void *arg) {
  (void)arg;
  int d = weft_preempt_disable();
  weft_preempt_enable();
  return (void *)(intptr_t)d;
}

Test(preempt, a_region_ends_with_its_thread, .init = h_start1,
     .fini = h_stop) {
  for (int i = 0; i < 10; i++) {
    h_join(h_spawn(exit_inside, NULL));
    cr_assert_eq((intptr_t)h_join(h_spawn(depth_of_fresh, NULL)), 1);
  }
}

/* ------------------------------------------------------------------------ */
/* Migration: errno and locals                                              */
/* ------------------------------------------------------------------------ */

static weft_local_key lkey;
static atomic_int migrants_done;

struct migrant {
  int id;
  int moved;  /* times it saw its worker change */
  int bad;    /* times errno or its local was not its own */
};

static void *migrant(void *arg) {
  struct migrant *m = arg;
  int mine = 1000 + m->id;
  weft_local_set(lkey, (void *)(intptr_t)mine);
  errno = mine;
  int where = weft_worker_index();
  int64_t cap = weft_now() + MS(20000);
  while (weft_now() < cap && (m->moved < 3 || atomic_load(&migrants_done) < 3)) {
      for (int i = 0; i < 200000; i++)
      sink += (uint64_t)i;
    /* errno straight, at -O2: its address may be kept across the loop. */
    if (errno != mine || (intptr_t)weft_local_get(lkey) != mine)
      m->bad++;
    int now_at = weft_worker_index();
    if (now_at != where) {
      where = now_at;
      if (++m->moved == 3)
        atomic_fetch_add(&migrants_done, 1);
    }
  }
  return NULL;
}

Test(preempt, a_preempted_thread_moves_with_its_errno_and_locals,
     .fini = h_stop, .timeout = 120) {
  SKIP_WITHOUT_PREEMPTION();
  start(2, 1000);
  cr_assert_eq(weft_local_create(&lkey, NULL), 0);
  atomic_store(&migrants_done, 0);
  struct migrant m[3];
  weft_gthread t[3];
  for (int i = 0; i < 3; i++) {
    m[i] = (struct migrant){.id = i};
    t[i] = h_spawn(migrant, &m[i]);
  }
  for (int i = 0; i < 3; i++)
    h_join(t[i]);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(m[i].bad, 0, "thread %d lost its errno or local", i);
    cr_assert_geq(m[i].moved, 3, "thread %d moved %d times", i, m[i].moved);
  }
}

/* ------------------------------------------------------------------------ */
/* Shutdown and configuration                                               */
/* ------------------------------------------------------------------------ */

/* Two threads that spin until the runtime stops, on one worker: at
 * shutdown one of them is preempted and queued, and is abandoned; its
 * kernel thread must still exit. */
static void *spin_until_stop(void *arg) {
  (void)arg;
  while (weft_running())
    ;
  return NULL;
}

Test(preempt, shutdown_abandons_a_preempted_thread, .timeout = 60) {
  SKIP_WITHOUT_PREEMPTION();
  start(1, 1000);
  weft_gthread a = h_spawn(spin_until_stop, NULL);
  weft_gthread b = h_spawn(spin_until_stop, NULL);
  (void)a, (void)b;
  while (PREEMPTIONS() < 4)
    usleep(1000);
  cr_assert_eq(weft_shutdown(), 0);
}

Test(preempt, a_bad_slice_is_refused) {
  weft_config cfg = {.workers = 1, .slice_us = 999};
  cr_assert_eq(weft_init(&cfg), -EINVAL);
  setenv("WEFT_SLICE_US", "ten", 1);
  cfg.slice_us = 0;
  cr_assert_eq(weft_init(&cfg), -EINVAL);
  setenv("WEFT_SLICE_US", "0", 1); /* off */
  cr_assert_eq(weft_init(&cfg), 0);
  weft_shutdown();
  unsetenv("WEFT_SLICE_US");
}
