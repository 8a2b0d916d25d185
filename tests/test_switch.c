/*
 * test_switch.c - the raw context-switch contract of runtime/ctx.h, for both
 * back ends (assembly and ucontext), without the scheduler.
 *
 * Invariants checked:
 *  - the arg of a switch is what the other side's switch returns, and the
 *    first switch into a new context passes it as entry(arg, data);
 *  - the callee-saved registers (rbx, rbp, r12-r15) of each side survive any
 *    number of round trips, whatever the other side left in them;
 *  - the MXCSR control bits and the x87 control word belong to a context:
 *    a rounding mode set in one does not leak into the other;
 *  - a new assembly context's whole MXCSR, flags too, is that of a
 *    scheduler's kernel thread after inexact arithmetic (so the switch's
 *    reload between them changes nothing);
 *  - code entered on a new stack runs on that stack, with the stack aligned
 *    as the ABI requires ((rsp + 8) % 16 == 0 at function entry);
 *  - contexts can switch directly to one another (a ring of many contexts);
 *  - an entry function that returns does not go on silently: the process
 *    dies by a signal.
 *
 * ThreadSanitizer must be told about every stack switch (the runtime does
 * that), so under it these raw switches are not run.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef WEFT_TSAN
#define WEFT_TSAN 0
#endif

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xmmintrin.h>

#include "ctx.h"

#define STACK_SIZE (64 * 1024)

TestSuite(switch, .disabled = WEFT_TSAN);

typedef weft__ctx (*make_fn)(void *lo, void *hi, weft__ctx_entry entry,
                             void *data);
typedef void *(*switch_fn)(weft__ctx *from, weft__ctx to, void *arg);

struct backend {
  const char *name;
  make_fn make;
  switch_fn sw;
};

static const struct backend asm_be = {"asm", weft__ctx_make_asm,
                                      weft__ctx_switch_asm};
static const struct backend uc_be = {"ucontext", weft__ctx_make_uc,
                                     weft__ctx_switch_uc};
/* The assembly switch that leaves by an indirect jump (ctx.h). */
static const struct backend jump_be = {"asm-jump", weft__ctx_make_asm,
                                       weft__ctx_jump_asm};

/* A 64 KiB stack with a PROT_NONE page below it, so that an overflow in a
 * test faults instead of corrupting memory. */
struct stack {
  void *map;
  size_t map_size;
  char *lo, *hi;
};

static struct stack stack_new(void) {
  struct stack s;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  s.map_size = STACK_SIZE + page;
  s.map = mmap(NULL, s.map_size, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  cr_assert(s.map != MAP_FAILED, "mmap: %s", strerror(errno));
  cr_assert_eq(mprotect(s.map, page, PROT_NONE), 0);
  s.lo = (char *)s.map + page;
  s.hi = s.lo + STACK_SIZE;
  return s;
}

static void stack_free(struct stack *s) { munmap(s->map, s->map_size); }

/* ------------------------------------------------------------------------ */
/* Ping-pong: values through the switch's arg and return                    */
/* ------------------------------------------------------------------------ */

struct pingpong {
  const struct backend *be;
  weft__ctx main, co;
  void *data_seen;
  void *first_arg;
  char *lo, *hi;
  int on_stack; /* a local of the context lies in [lo, hi) */
  long rounds;
};

static void pingpong_entry(void *arg, void *data) {
  struct pingpong *p = data;
  char here;
  p->data_seen = data;
  p->first_arg = arg;
  p->on_stack = &here >= p->lo && &here < p->hi;
  uintptr_t v = (uintptr_t)arg;
  for (;;) {
    p->rounds++;
    v = (uintptr_t)p->be->sw(&p->co, p->main, (void *)(v * 2 + 1));
  }
}

static void pingpong(const struct backend *be) {
  struct stack s = stack_new();
  struct pingpong p = {.be = be, .lo = s.lo, .hi = s.hi};
  p.co = be->make(s.lo, s.hi, pingpong_entry, &p);
  cr_assert_not_null(p.co, "%s: make returned NULL", be->name);

  for (uintptr_t i = 1; i <= 10000; i++) {
    uintptr_t r = (uintptr_t)be->sw(&p.main, p.co, (void *)i);
    cr_assert_eq(r, i * 2 + 1, "%s: round %lu returned %lu", be->name,
                 (unsigned long)i, (unsigned long)r);
  }
  cr_expect_eq(p.data_seen, &p, "%s: entry got the wrong data", be->name);
  cr_expect_eq((uintptr_t)p.first_arg, 1,
               "%s: entry got the wrong first arg", be->name);
  cr_expect(p.on_stack, "%s: the context did not run on its stack",
            be->name);
  cr_expect_eq(p.rounds, 10000);
  stack_free(&s);
}

Test(switch, pingpong_asm, .timeout = 10) { pingpong(&asm_be); }
Test(switch, pingpong_asm_jump, .timeout = 10) { pingpong(&jump_be); }
Test(switch, pingpong_ucontext, .timeout = 10) { pingpong(&uc_be); }

/* ------------------------------------------------------------------------ */
/* Callee-saved registers                                                   */
/* ------------------------------------------------------------------------ */

/*
 * void *probe_switch(weft__ctx *from, weft__ctx to, void *arg,
 *                    uint64_t out[6], switch_fn sw, uint64_t seed);
 *
 * Loads seed, seed+1, ... seed+5 into rbx, r12, r13, r14, r15, rbp, calls
 * sw(from, to, arg) and, once switched back to, stores what those registers
 * hold into out[0..5].  Its own caller's registers are saved around that.
 */
void *probe_switch(weft__ctx *from, weft__ctx to, void *arg, uint64_t *out,
                   switch_fn sw, uint64_t seed);
__asm__(".pushsection .text\n"
        ".p2align 4\n"
        ".type probe_switch, @function\n"
        "probe_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        /* 6 pushes after the return address: rsp % 16 == 8; 24 more makes
         * it 0, so (rsp + 8) % 16 == 0 at sw's entry. */
        "  subq $24, %rsp\n"
        "  movq %rcx, 0(%rsp)\n"
        "  movq %r9, %rbx\n"
        "  leaq 1(%r9), %r12\n"
        "  leaq 2(%r9), %r13\n"
        "  leaq 3(%r9), %r14\n"
        "  leaq 4(%r9), %r15\n"
        "  leaq 5(%r9), %rbp\n"
        "  callq *%r8\n"
        "  movq 0(%rsp), %rcx\n"
        "  movq %rbx, 0(%rcx)\n"
        "  movq %r12, 8(%rcx)\n"
        "  movq %r13, 16(%rcx)\n"
        "  movq %r14, 24(%rcx)\n"
        "  movq %r15, 32(%rcx)\n"
        "  movq %rbp, 40(%rcx)\n"
        "  addq $24, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  retq\n"
        ".size probe_switch, .-probe_switch\n"
        ".popsection\n");

struct regs {
  const struct backend *be;
  weft__ctx main, co;
  long bad;      /* mismatches seen on the context's side */
  long rounds;
};

static int count_bad(const uint64_t *out, uint64_t seed) {
  int bad = 0;
  for (int i = 0; i < 6; i++)
    bad += out[i] != seed + (uint64_t)i;
  return bad;
}

static void regs_entry(void *arg, void *data) {
  struct regs *r = data;
  uint64_t out[6];
  (void)arg;
  for (uint64_t round = 0;; round++) {
    uint64_t seed = 0xC0DE000000000000ull + round * 64;
    r->rounds++;
    probe_switch(&r->co, r->main, NULL, out, r->be->sw, seed);
    r->bad += count_bad(out, seed);
  }
}

static void regs(const struct backend *be) {
  struct stack s = stack_new();
  struct regs r = {.be = be};
  uint64_t out[6];
  r.co = be->make(s.lo, s.hi, regs_entry, &r);
  cr_assert_not_null(r.co);
  long bad = 0;
  for (uint64_t round = 0; round < 1000; round++) {
    uint64_t seed = 0xABBA000000000000ull + round * 64;
    probe_switch(&r.main, r.co, NULL, out, be->sw, seed);
    int b = count_bad(out, seed);
    if (b && !bad)
      cr_expect_fail("%s: round %lu: rbx=%#lx r12=%#lx r13=%#lx r14=%#lx "
                     "r15=%#lx rbp=%#lx, expected %#lx + 0..5",
                     be->name, (unsigned long)round, (unsigned long)out[0],
                     (unsigned long)out[1], (unsigned long)out[2],
                     (unsigned long)out[3], (unsigned long)out[4],
                     (unsigned long)out[5], (unsigned long)seed);
    bad += b;
  }
  cr_expect_eq(bad, 0, "%s: %ld callee-saved registers lost on the main side",
               be->name, bad);
  /* The context's last probe has not returned yet: 999 checked rounds. */
  cr_expect_eq(r.rounds, 1000);
  cr_expect_eq(r.bad, 0,
               "%s: %ld callee-saved registers lost on the context's side",
               be->name, r.bad);
  stack_free(&s);
}

Test(switch, callee_saved_asm, .timeout = 10) { regs(&asm_be); }
Test(switch, callee_saved_asm_jump, .timeout = 10) { regs(&jump_be); }
Test(switch, callee_saved_ucontext, .timeout = 10) { regs(&uc_be); }

/* ------------------------------------------------------------------------ */
/* Floating-point control state                                             */
/* ------------------------------------------------------------------------ */

#define MXCSR_CTRL 0xFFC0u /* masks, rounding, FTZ, DAZ; not the flags */
#define MXCSR_RC_ZERO 0x6000u
#define MXCSR_RC_UP 0x4000u
#define MXCSR_FTZ 0x8000u
#define FPUCW_MASK 0x1F3Fu
#define FPUCW_RC_DOWN 0x0400u
#define FPUCW_RC_UP 0x0800u
#define FPUCW_PC_53 0x0200u
#define FPUCW_PC_64 0x0300u

static unsigned mxcsr_get(void) {
  unsigned v;
  __asm__ volatile("stmxcsr %0" : "=m"(v));
  return v;
}
static void mxcsr_set(unsigned v) { __asm__ volatile("ldmxcsr %0" ::"m"(v)); }
static unsigned fpucw_get(void) {
  unsigned short v;
  __asm__ volatile("fnstcw %0" : "=m"(v));
  return v;
}
static void fpucw_set(unsigned v) {
  unsigned short s = (unsigned short)v;
  __asm__ volatile("fldcw %0" ::"m"(s));
}

/* The control state each side sets for itself. */
static unsigned main_mxcsr, main_fpucw, co_mxcsr, co_fpucw;

static double third_sse(void) {
  volatile double one = 1.0, three = 3.0;
  return one / three;
}
static long double third_x87(void) {
  volatile long double one = 1.0L, three = 3.0L;
  return one / three;
}

struct fpstate {
  const struct backend *be;
  weft__ctx main, co;
  long bad_mxcsr, bad_fpucw, rounds;
  double d;      /* 1/3 as computed on the context's side */
  long double ld;
};

static void fp_entry(void *arg, void *data) {
  struct fpstate *f = data;
  (void)arg;
  mxcsr_set(0x1F80u | co_mxcsr);
  fpucw_set(0x007Fu | co_fpucw);
  for (;;) {
    f->rounds++;
    f->bad_mxcsr += (mxcsr_get() & MXCSR_CTRL) != (co_mxcsr | 0x1F80u);
    f->bad_fpucw += (fpucw_get() & FPUCW_MASK) != (co_fpucw | 0x003Fu);
    f->d = third_sse();
    f->ld = third_x87();
    f->be->sw(&f->co, f->main, NULL);
  }
}

static void fp_control(const struct backend *be) {
  struct stack s = stack_new();
  struct fpstate f = {.be = be};
  fenv_t saved;
  fegetenv(&saved);

  /* Main: SSE rounds toward zero, x87 rounds up at 64 bits.
   * Context: SSE rounds up with flush-to-zero, x87 rounds down at 53 bits.
   * All exceptions stay masked (0x1F80 and 0x003F). */
  main_mxcsr = MXCSR_RC_ZERO;
  main_fpucw = FPUCW_RC_UP | FPUCW_PC_64;
  co_mxcsr = MXCSR_RC_UP | MXCSR_FTZ;
  co_fpucw = FPUCW_RC_DOWN | FPUCW_PC_53;
  mxcsr_set(0x1F80u | main_mxcsr);
  fpucw_set(0x007Fu | main_fpucw);

  f.co = be->make(s.lo, s.hi, fp_entry, &f);
  cr_assert_not_null(f.co);
  long bad_mxcsr = 0, bad_fpucw = 0, bad_values = 0;
  for (int i = 0; i < 100; i++) {
    be->sw(&f.main, f.co, NULL);
    bad_mxcsr += (mxcsr_get() & MXCSR_CTRL) != (main_mxcsr | 0x1F80u);
    bad_fpucw += (fpucw_get() & FPUCW_MASK) != (main_fpucw | 0x003Fu);
    /* Rounded up vs toward zero, rounded down vs up: never equal. */
    bad_values += !(f.d > third_sse()) || !(f.ld < third_x87());
  }
  unsigned mx = mxcsr_get(), cw = fpucw_get();
  fesetenv(&saved);

  cr_expect_eq(f.rounds, 100);
  cr_expect_eq(bad_mxcsr, 0, "%s: main's MXCSR changed (now %#x)", be->name,
               mx);
  cr_expect_eq(bad_fpucw, 0, "%s: main's x87 control word changed (now %#x)",
               be->name, cw);
  cr_expect_eq(f.bad_mxcsr, 0, "%s: the context's MXCSR was not kept",
               be->name);
  cr_expect_eq(f.bad_fpucw, 0,
               "%s: the context's x87 control word was not kept", be->name);
  cr_expect_eq(bad_values, 0,
               "%s: a computation was rounded with the other side's mode",
               be->name);
  stack_free(&s);
}

Test(switch, fp_control_asm, .timeout = 10) { fp_control(&asm_be); }
Test(switch, fp_control_asm_jump, .timeout = 10) { fp_control(&jump_be); }
Test(switch, fp_control_ucontext, .timeout = 10) { fp_control(&uc_be); }

/*
 * The whole MXCSR, status flags too, of a new assembly context agrees with
 * that of a kernel thread of the scheduler (weft__ctx_fp_settle) that has
 * done inexact arithmetic, as any thread soon has: the switch's LDMXCSR
 * then changes nothing, which is what keeps it cheap (the .S file says
 * why).  A new context that started with the flags clear cost 50 ns a
 * switch against such a thread on Intel cores.
 */
static unsigned fresh_mxcsr;

static void fresh_entry(void *arg, void *data) {
  struct fpstate *f = data;
  (void)arg;
  fresh_mxcsr = mxcsr_get();
  f->be->sw(&f->co, f->main, NULL);
}

Test(switch, new_context_mxcsr_agrees_with_a_settled_thread, .timeout = 10) {
  struct fpstate f = {.be = &asm_be};
  void *stack = malloc(STACK_SIZE);
  cr_assert_not_null(stack);
  unsigned saved = mxcsr_get();
  mxcsr_set(0x1F80u); /* default control bits, no flags */
  weft__ctx_fp_settle();
  volatile double x = third_sse(); /* inexact: sets PE, if not yet */
  (void)x;
  unsigned mine = mxcsr_get();
  f.co = asm_be.make(stack, (char *)stack + STACK_SIZE, fresh_entry, &f);
  asm_be.sw(&f.main, f.co, NULL);
  mxcsr_set(saved);
  cr_expect_eq(fresh_mxcsr, mine,
               "a new context's MXCSR is %#x, a settled thread's after "
               "arithmetic %#x",
               fresh_mxcsr, mine);
  free(stack);
}

/* fesetround() sets both units; each side keeps its own mode. */
struct feround {
  const struct backend *be;
  weft__ctx main, co;
  long bad;
};

static void feround_entry(void *arg, void *data) {
  struct feround *f = data;
  (void)arg;
  fesetround(FE_UPWARD);
  for (;;) {
    f->bad += fegetround() != FE_UPWARD;
    f->be->sw(&f->co, f->main, NULL);
  }
}

static void feround(const struct backend *be) {
  struct stack s = stack_new();
  struct feround f = {.be = be};
  fesetround(FE_DOWNWARD);
  f.co = be->make(s.lo, s.hi, feround_entry, &f);
  cr_assert_not_null(f.co);
  long bad = 0;
  for (int i = 0; i < 100; i++) {
    be->sw(&f.main, f.co, NULL);
    bad += fegetround() != FE_DOWNWARD;
  }
  fesetround(FE_TONEAREST);
  cr_expect_eq(bad, 0, "%s: main's rounding mode leaked", be->name);
  cr_expect_eq(f.bad, 0, "%s: the context's rounding mode leaked", be->name);
  stack_free(&s);
}

Test(switch, fesetround_asm, .timeout = 10) { feround(&asm_be); }
Test(switch, fesetround_asm_jump, .timeout = 10) { feround(&jump_be); }
Test(switch, fesetround_ucontext, .timeout = 10) { feround(&uc_be); }

/* ------------------------------------------------------------------------ */
/* Stack alignment at entry                                                 */
/* ------------------------------------------------------------------------ */

struct align {
  const struct backend *be;
  weft__ctx main, co;
  uintptr_t entry_frame, callee_frame, buf;
  float sum;
};

/* With a frame pointer, rbp = rsp at entry - 8, so a correctly aligned
 * entry gives rbp % 16 == 0. */
__attribute__((noinline)) static uintptr_t frame_of_callee(void) {
  return (uintptr_t)__builtin_frame_address(0);
}

static void align_entry(void *arg, void *data) {
  struct align *a = data;
  __attribute__((aligned(16))) float buf[4] = {1, 2, 3, 4};
  (void)arg;
  a->entry_frame = (uintptr_t)__builtin_frame_address(0);
  a->buf = (uintptr_t)buf;
  a->callee_frame = frame_of_callee();
  /* An aligned SSE load: faults if the stack is misaligned. */
  __m128 v = _mm_load_ps(buf);
  v = _mm_add_ps(v, v);
  _mm_store_ps(buf, v);
  a->sum = buf[0] + buf[1] + buf[2] + buf[3];
  for (;;)
    a->be->sw(&a->co, a->main, NULL);
}

static void alignment(const struct backend *be) {
  struct stack s = stack_new();
  struct align a = {.be = be};
  a.co = be->make(s.lo, s.hi, align_entry, &a);
  cr_assert_not_null(a.co);
  be->sw(&a.main, a.co, NULL);
  cr_expect_eq(a.entry_frame % 16, 0,
               "%s: entry's frame %#lx is not 16-byte aligned", be->name,
               (unsigned long)a.entry_frame);
  cr_expect_eq(a.callee_frame % 16, 0,
               "%s: a callee's frame %#lx is not 16-byte aligned", be->name,
               (unsigned long)a.callee_frame);
  cr_expect_eq(a.buf % 16, 0, "%s: aligned local at %#lx", be->name,
               (unsigned long)a.buf);
  cr_expect(a.entry_frame >= (uintptr_t)s.lo &&
                a.entry_frame < (uintptr_t)s.hi,
            "%s: entry did not run on the given stack", be->name);
  cr_expect(a.sum == 20.0f);
  stack_free(&s);
}

Test(switch, alignment_asm, .timeout = 10) { alignment(&asm_be); }
Test(switch, alignment_asm_jump, .timeout = 10) { alignment(&jump_be); }
Test(switch, alignment_ucontext, .timeout = 10) { alignment(&uc_be); }

/* ------------------------------------------------------------------------ */
/* Many contexts in a ring                                                  */
/* ------------------------------------------------------------------------ */

#define RING 64
#define RING_ROUNDS 200

struct ring;
struct ring_member {
  struct ring *ring;
  int index;
  long visits;
  long bad;
};

struct ring {
  const struct backend *be;
  weft__ctx main;
  weft__ctx ctx[RING];
  struct ring_member m[RING];
  long order_bad;
  int last; /* the member that ran last */
};

/* Member i expects the token visits*RING + i, passes token + 1 to member
 * i + 1, and the last member hands it back to main. */
static void ring_entry(void *arg, void *data) {
  struct ring_member *m = data;
  struct ring *r = m->ring;
  uintptr_t token = (uintptr_t)arg;
  for (;;) {
    if (token != (uintptr_t)(m->visits * RING + m->index))
      m->bad++;
    if (r->last != m->index - 1)
      r->order_bad++;
    r->last = m->index;
    m->visits++;
    weft__ctx next = m->index + 1 < RING ? r->ctx[m->index + 1] : r->main;
    token = (uintptr_t)r->be->sw(&r->ctx[m->index], next, (void *)(token + 1));
  }
}

static void ring(const struct backend *be) {
  struct stack s[RING];
  struct ring *r = calloc(1, sizeof *r);
  cr_assert_not_null(r);
  r->be = be;
  for (int i = 0; i < RING; i++) {
    s[i] = stack_new();
    r->m[i] = (struct ring_member){.ring = r, .index = i};
    r->ctx[i] = be->make(s[i].lo, s[i].hi, ring_entry, &r->m[i]);
    cr_assert_not_null(r->ctx[i]);
  }
  for (uintptr_t round = 0; round < RING_ROUNDS; round++) {
    r->last = -1;
    uintptr_t back = (uintptr_t)be->sw(&r->main, r->ctx[0],
                                       (void *)(round * RING));
    cr_assert_eq(back, round * RING + RING, "%s: round %lu came back with %lu",
                 be->name, (unsigned long)round, (unsigned long)back);
    cr_assert_eq(r->last, RING - 1);
  }
  long bad = 0;
  for (int i = 0; i < RING; i++) {
    cr_expect_eq(r->m[i].visits, RING_ROUNDS, "%s: member %d ran %ld times",
                 be->name, i, r->m[i].visits);
    bad += r->m[i].bad;
  }
  cr_expect_eq(bad, 0, "%s: %ld tokens arrived wrong", be->name, bad);
  cr_expect_eq(r->order_bad, 0, "%s: members ran out of order", be->name);
  for (int i = 0; i < RING; i++)
    stack_free(&s[i]);
  free(r);
}

Test(switch, ring_asm, .timeout = 10) { ring(&asm_be); }
Test(switch, ring_asm_jump, .timeout = 10) { ring(&jump_be); }
Test(switch, ring_ucontext, .timeout = 10) { ring(&uc_be); }

/* Both back ends in one process, each with its own contexts. */
Test(switch, both_backends_interleaved, .timeout = 10) {
  struct stack sa = stack_new(), su = stack_new();
  struct pingpong pa = {.be = &asm_be, .lo = sa.lo, .hi = sa.hi};
  struct pingpong pu = {.be = &uc_be, .lo = su.lo, .hi = su.hi};
  pa.co = asm_be.make(sa.lo, sa.hi, pingpong_entry, &pa);
  pu.co = uc_be.make(su.lo, su.hi, pingpong_entry, &pu);
  for (uintptr_t i = 1; i <= 1000; i++) {
    uintptr_t a = (uintptr_t)asm_be.sw(&pa.main, pa.co, (void *)i);
    uintptr_t u = (uintptr_t)uc_be.sw(&pu.main, pu.co, (void *)(i + 7));
    cr_assert_eq(a, i * 2 + 1);
    cr_assert_eq(u, (i + 7) * 2 + 1);
  }
  cr_expect(pa.on_stack && pu.on_stack);
  stack_free(&sa);
  stack_free(&su);
}

/* ------------------------------------------------------------------------ */
/* An entry function that returns                                           */
/* ------------------------------------------------------------------------ */

static void returning_entry(void *arg, void *data) {
  (void)arg;
  (void)data;
}

static void entry_returns(const struct backend *be) {
  fflush(NULL);
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    struct rlimit nocore = {0, 0};
    setrlimit(RLIMIT_CORE, &nocore);
    /* Keep the trap's report out of the test's output. */
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0)
      dup2(null, STDERR_FILENO);
    alarm(10);
    struct stack s = stack_new();
    weft__ctx self, co = be->make(s.lo, s.hi, returning_entry, NULL);
    be->sw(&self, co, NULL);
    _exit(0); /* reached only if control came back here */
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_expect(WIFSIGNALED(status),
            "%s: a returning entry went on (exit status %d)", be->name,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  if (WIFSIGNALED(status))
    cr_expect_neq(WTERMSIG(status), SIGALRM,
                  "%s: a returning entry hung instead of trapping", be->name);
}

Test(switch, entry_return_traps_asm, .timeout = 20) { entry_returns(&asm_be); }
Test(switch, entry_return_traps_asm_jump, .timeout = 20) {
  entry_returns(&jump_be);
}
Test(switch, entry_return_traps_ucontext, .timeout = 20) {
  entry_returns(&uc_be);
}
