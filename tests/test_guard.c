/*
 * test_guard.c - a large frame cannot jump the guard below a green
 * thread's stack.
 *
 * Built twice from this one source: tests/test_guard_scp with
 * -fstack-clash-protection (every page of a growing frame is probed, so the
 * first fault is at the top of the guard whatever the frame size) and
 * tests/test_guard_noscp with -fno-stack-clash-protection (a frame is
 * allocated with one stack-pointer move and its lowest bytes are written
 * first: a frame of F bytes first writes at about stack_lo - F, so only a
 * guard of at least F bytes catches it).
 *
 * Invariants checked, for frames of 4 KiB to 1 MiB (char buf[N], whose
 * lowest 32 KiB are written the way memset(buf, 1, 32 * 1024) does), with
 * the default guard, and with WEFT_GUARD=mprotect (the PROT_NONE fallback)
 * for a few sizes:
 *  - a green thread that recurses with such a frame until its 64 KiB stack
 *    runs out is reported as `weft: green thread <id> "<name>" overflowed
 *    its 64 KiB stack` and the process dies of SIGABRT or SIGSEGV, every
 *    time, while parked green threads are alive on the stacks mapped next
 *    to it (a frame that jumped the guard would land in one of them: their
 *    descriptors sit at the top of their stacks);
 *  - the fault the report gives lies in that thread's own guard (the first
 *    write below the stack did not land in a neighbour's stack);
 *  - the stack the thread ran on had a guard of at least the frame size
 *    (weft_stack_info_get), and, with WEFT_GUARD=mprotect, a PROT_NONE one.
 *
 * Each case runs in a forked child with a 10 s alarm: a frame that jumped
 * the guard shows up as a hang (the child dies of SIGALRM), a clean exit or
 * a report that does not name the thread's overflow.
 */
#include "helpers.h"

#include <limits.h>

#define KIB ((size_t)1024)

#if WEFT_ASAN
/* Read by ASan at startup; ASAN_OPTIONS overrides it flag by flag. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "handle_segv=0:detect_leaks=0:detect_stack_use_after_return=0";
}
#endif

/* Never reached: the frames recurse until the stack runs out. */
static volatile unsigned long frame_limit = ULONG_MAX;

/*
 * frame_K(depth): a frame with char buf[K KiB] whose lowest (up to) 32 KiB
 * are written, then a recursive call.  The empty asm statements take buf's
 * address and clobber memory, so the compiler can neither drop the array
 * nor the stores nor turn the recursion into a loop.
 */
#define FRAME(K)                                                             \
  __attribute__((noinline)) static unsigned long frame_##K(                  \
      unsigned long depth) {                                                 \
    char buf[(K) * KIB];                                                     \
    __asm__ volatile("" : : "r"(buf) : "memory");                            \
    memset(buf, 1, sizeof buf < 32 * KIB ? sizeof buf : 32 * KIB);           \
    __asm__ volatile("" : : "r"(buf) : "memory");                            \
    if (depth == frame_limit)                                                \
      return 0;                                                              \
    unsigned long r = frame_##K(depth + 1);                                  \
    __asm__ volatile("" : : "r"(buf) : "memory");                            \
    return r + (unsigned char)buf[depth % sizeof buf];                       \
  }

FRAME(4)
FRAME(8)
FRAME(12)
FRAME(16)
FRAME(32)
FRAME(60)
FRAME(64)
FRAME(68)
FRAME(100)
FRAME(128)
FRAME(200)
FRAME(256)
FRAME(400)
FRAME(512)
FRAME(768)
FRAME(1000)
FRAME(1024)

typedef unsigned long (*frame_fn)(unsigned long);

static const struct {
  unsigned kib;
  frame_fn fn;
} frames[] = {
    {4, frame_4},       {8, frame_8},       {12, frame_12},
    {16, frame_16},     {32, frame_32},     {60, frame_60},
    {64, frame_64},     {68, frame_68},     {100, frame_100},
    {128, frame_128},   {200, frame_200},   {256, frame_256},
    {400, frame_400},   {512, frame_512},   {768, frame_768},
    {1000, frame_1000}, {1024, frame_1024},
};
#define NFRAMES (sizeof frames / sizeof frames[0])

static frame_fn frame_of(unsigned kib) {
  for (size_t i = 0; i < NFRAMES; i++)
    if (frames[i].kib == kib)
      return frames[i].fn;
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* The child                                                                */
/* ------------------------------------------------------------------------ */

/* Green threads parked on the stacks mapped before and after the victim's
 * (mappings are made top down, so those after it lie below it). */
#define NEIGHBOURS 16

struct jump {
  unsigned kib;
  bool mprotect; /* WEFT_GUARD=mprotect */
};

static weft_sem hold_sem;

static void *holder(void *arg) {
  (void)arg;
  weft_sem_wait(&hold_sem);
  return NULL;
}

static void *victim(void *arg) {
  struct jump *j = arg;
  weft_stack_info si;
  if (weft_stack_info_get(weft_self(), &si) != 0)
    _exit(6);
  fprintf(stderr, "id=%llu guard=%zu kernel_guard=%d guard_lo=%#lx\n",
          (unsigned long long)weft_id(), si.guard_size, (int)si.kernel_guard,
          (unsigned long)(uintptr_t)si.guard_lo);
  return (void *)frame_of(j->kib)(0);
}

static void jump_child(void *p) {
  struct jump *j = p;
  alarm(10); /* a jumped guard may hang the child: end it sooner */
  if (j->mprotect)
    setenv("WEFT_GUARD", "mprotect", 1);
  weft_config cfg = {.workers = 2};
  if (weft_init(&cfg) != 0)
    _exit(3);
  if (weft_sem_init(&hold_sem, 0) != 0)
    _exit(3);
  weft_gthread_attr hattr = {.name = "neighbour"};
  weft_gthread h[2 * NEIGHBOURS];
  for (int i = 0; i < NEIGHBOURS; i++)
    if (weft_spawn(&h[i], &hattr, holder, NULL) != 0)
      _exit(4);
  weft_gthread_attr attr = {.name = "big-frame"};
  weft_gthread t;
  if (weft_spawn(&t, &attr, victim, j) != 0)
    _exit(4);
  for (int i = NEIGHBOURS; i < 2 * NEIGHBOURS; i++)
    if (weft_spawn(&h[i], &hattr, holder, NULL) != 0)
      _exit(4);
  weft_join(t, NULL);
  _exit(5); /* the thread should have taken the process down */
}

/* ------------------------------------------------------------------------ */
/* The parent                                                               */
/* ------------------------------------------------------------------------ */

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

static void expect_caught(unsigned kib, bool mprotect) {
  struct jump j = {kib, mprotect};
  struct h_child ch;
  h_fork_capture(jump_child, &j, &ch);

  bool died = WIFSIGNALED(ch.status) && (WTERMSIG(ch.status) == SIGABRT ||
                                         WTERMSIG(ch.status) == SIGSEGV);
  cr_expect(died, "%u KiB frame: the child %s, expected SIGABRT or SIGSEGV; "
            "stderr:\n%s", kib, describe(ch.status), ch.err);

  unsigned long long id = 0;
  size_t guard = 0;
  int kernel_guard = -1;
  unsigned long guard_lo = 0;
  const char *p = strstr(ch.err, "id=");
  cr_assert(p && sscanf(p, "id=%llu guard=%zu kernel_guard=%d guard_lo=%lx",
                        &id, &guard, &kernel_guard, &guard_lo) == 4,
            "%u KiB frame: the thread did not run; stderr:\n%s", kib, ch.err);
  char want[200];
  snprintf(want, sizeof want,
           "weft: green thread %llu \"big-frame\" overflowed its 64 KiB "
           "stack", id);
  cr_expect(strstr(ch.err, want) != NULL,
            "%u KiB frame: stderr lacks '%s'; stderr:\n%s", kib, want,
            ch.err);
  /* The first write below the stack faulted in its own guard, not in
   * a neighbour's stack (which the frame would have overwritten). */
  unsigned long at = 0;
  p = strstr(ch.err, "(fault at ");
  cr_expect(p && sscanf(p, "(fault at %lx", &at) == 1 && at >= guard_lo &&
                at < guard_lo + guard,
            "%u KiB frame: the fault is not in the guard [%#lx, +%zu); "
            "stderr:\n%s", kib, guard_lo, guard, ch.err);
  cr_expect(strstr(ch.err, "\"neighbour\"") == NULL,
            "%u KiB frame: a neighbour was blamed; stderr:\n%s", kib, ch.err);
  cr_expect_geq(guard, kib * KIB, "%u KiB frame: the guard is %zu bytes",
                kib, guard);
  if (mprotect)
    cr_expect_eq(kernel_guard, 0, "WEFT_GUARD=mprotect was not honoured");
}

/* One test per frame size, so that a miss names its size. */
#define CASE(K)                                                              \
  Test(guard_jump, frame_##K##k, .timeout = 60, .disabled = WEFT_TSAN) {     \
    expect_caught(K, false);                                                 \
  }

CASE(4)
CASE(8)
CASE(12)
CASE(16)
CASE(32)
CASE(60)
CASE(64)
CASE(68)
CASE(100)
CASE(128)
CASE(200)
CASE(256)
CASE(400)
CASE(512)
CASE(768)
CASE(1000)
CASE(1024)

/* The PROT_NONE fallback, for a few sizes. */
#define CASE_MPROTECT(K)                                                     \
  Test(guard_jump_mprotect, frame_##K##k, .timeout = 60,                     \
       .disabled = WEFT_TSAN) {                                              \
    expect_caught(K, true);                                                  \
  }

CASE_MPROTECT(8)
CASE_MPROTECT(100)
CASE_MPROTECT(400)
CASE_MPROTECT(1024)
