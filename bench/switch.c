/*
 * switch.c - the raw cost of one context switch, for both back ends of
 * ctx.h: the hand-written assembly and the same contract over swapcontext.
 *
 * Two contexts ping-pong: the main stack switches to a coroutine, which
 * switches straight back.  A round trip is two one-way switches.  Both back
 * ends are linked into this program directly (not through libweft), so the
 * figure is the switch alone, with no scheduler around it.  The two are
 * measured alternately within one run (asm, ucontext, asm, ...) so that a
 * change in the machine's speed during the run affects both alike.
 *
 *   switch.asm       ns per one-way switch, assembly back end
 *   switch.ucontext  ns per one-way switch, swapcontext back end
 *   switch.speedup   ucontext / asm, median of the per-repetition ratios
 *   switch.asm.other_site
 *                    as switch.asm, but each side switches from a call site
 *                    of its own, so the return from every switch lands
 *                    where the CPU's return-stack predictor does not expect
 *   switch.boost     reference, not weft: ns per one-way switch with
 *                    Boost.Context's fcontext (jump_fcontext), the same
 *                    ping-pong; n/a when configure did not find the library
 *   switch.nofp      reference, not weft: the same ping-pong over a switch
 *                    that keeps no floating-point control state
 *                    (bench/ref/switch_nofp.S): what switch.asm and
 *                    switch.boost pay for the MXCSR and x87 control word
 *                    that the ABI makes callee-saved (bench/README.md,
 *                    "The raw switch": on the AMD EPYC of docs/report,
 *                    STMXCSR alone issues once every 4.2 ns)
 *
 * switch.boost is measured in the same runs, taking turns with the others
 * (asm, boost, ucontext, asm from other sites, ...), and with as many round
 * trips as switch.asm.  Both switches save and restore MXCSR and the x87
 * control word, and both contexts of each pair start with the flags
 * weft__ctx_fp_settle() leaves (make_fcontext copies the caller's MXCSR),
 * so neither pays for an LDMXCSR that changes MXCSR.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
/* This program names both back ends explicitly and never uses the
 * configured default, so it does not need config.h for it. */
#ifndef WEFT_CTX_ASM
#define WEFT_CTX_ASM 1
#endif
#include "ctx.h"

#define STACK_SIZE (64 * 1024)

#ifdef WEFT_BENCH_BOOST_CONTEXT
/*
 * Boost.Context's fcontext, declared here in C: boost/context/detail/
 * fcontext.hpp (1.74) declares these with extern "C", so no C++ is needed
 * to call them.  transfer_t, two pointers, is passed and returned in
 * registers (RDI:RSI, RAX:RDX) as the C++ struct is.
 */
typedef void *fcontext_t;
typedef struct {
  fcontext_t fctx;
  void *data;
} transfer_t;

transfer_t jump_fcontext(fcontext_t const to, void *vp);
fcontext_t make_fcontext(void *sp, size_t size, void (*fn)(transfer_t));
#endif

/* The reference switch without the floating-point control state
 * (bench/ref/switch_nofp.S). */
void *ref_nofp_switch(weft__ctx *from, weft__ctx to, void *arg);
void ref_nofp_start(void);

/*
 * A new context for ref_nofp_switch: the frame its first switch pops (R15,
 * R14, R13 = data, R12 = entry, RBX, RBP) and returns from, into
 * ref_nofp_start, above which the stack is 16-byte aligned for the call of
 * entry, as the ABI wants at a call.
 */
static weft__ctx ref_nofp_make(void *lo, void *hi, weft__ctx_entry entry,
                               void *data) {
  uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
  void **f = (void **)(top - 8 * sizeof(void *));

  if ((char *)f < (char *)lo)
    return NULL;
  f[0] = f[1] = NULL;           /* R15, R14 */
  f[2] = data;                  /* R13 */
  f[3] = (void *)(uintptr_t)entry; /* R12 */
  f[4] = f[5] = NULL;           /* RBX, RBP */
  f[6] = (void *)(uintptr_t)ref_nofp_start;
  f[7] = NULL; /* padding: ref_nofp_start runs with RSP = top */
  return f;
}

struct backend {
  const char *name;
  weft__ctx (*make)(void *lo, void *hi, weft__ctx_entry entry, void *data);
  void *(*sw)(weft__ctx *from, weft__ctx to, void *arg);
};

static const struct backend backends[3] = {
    {"switch.asm", weft__ctx_make_asm, weft__ctx_switch_asm},
    {"switch.ucontext", weft__ctx_make_uc, weft__ctx_switch_uc},
    {"switch.nofp", ref_nofp_make, ref_nofp_switch},
};

struct pingpong {
  const struct backend *b;
  weft__ctx main_ctx;
  weft__ctx co_ctx;
  bool same_site;
};

/*
 * Both sides run this loop, so each switch returns to the call site it was
 * entered from.  That is how the runtime switches (every switch between
 * green threads goes through one function), and it is what the CPU's
 * return-stack predictor gets right.
 */
static __attribute__((noinline)) void
bounce(struct pingpong *pp, weft__ctx *self, weft__ctx *other, long n) {
  for (long i = 0; i != n; i++)
    pp->b->sw(self, *other, NULL);
}

/*
 * The coroutine.  With same_site it answers from bounce's call site;
 * without, from a call site of its own, so every switch returns somewhere
 * other than where it was entered from.
 */
static void co_entry(void *arg, void *data) {
  struct pingpong *pp = data;

  (void)arg;
  if (pp->same_site)
    bounce(pp, &pp->co_ctx, &pp->main_ctx, -1);
  for (;;)
    pp->b->sw(&pp->co_ctx, pp->main_ctx, NULL);
}

/* ns per one-way switch over `rounds` round trips. */
static double measure(const struct backend *b, long rounds, bool same_site) {
  struct pingpong pp = {.b = b, .same_site = same_site};
  void *stack = aligned_alloc(64, STACK_SIZE);
  int64_t t0, t1;

  if (!stack) {
    perror("switch: aligned_alloc");
    exit(1);
  }
  pp.co_ctx = b->make(stack, (char *)stack + STACK_SIZE, co_entry, &pp);
  if (!pp.co_ctx) {
    fprintf(stderr, "switch: %s: cannot make a context\n", b->name);
    exit(1);
  }
  /* Warm up: the first switch starts the coroutine, the rest fill the
   * caches and the branch predictors. */
  bounce(&pp, &pp.main_ctx, &pp.co_ctx, 1000);
  t0 = bench_now();
  bounce(&pp, &pp.main_ctx, &pp.co_ctx, rounds);
  t1 = bench_now();
  /* The coroutine stays suspended on this stack; nothing resumes it. */
  free(stack);
  return (double)(t1 - t0) / (2.0 * (double)rounds);
}

#ifdef WEFT_BENCH_BOOST_CONTEXT
/*
 * The same ping-pong over fcontext.  A suspended fcontext is used once:
 * jump_fcontext returns the context of the side that jumped back, which
 * replaces the one jumped to.  jump is called through a pointer, as the
 * weft back ends are (pp->b->sw), so that both calls are the same kind:
 * an indirect call straight into the switch.  (In a position-independent
 * executable, gcc's default on Debian, the pointer is read from the GOT and
 * is the shared library's function itself, not a PLT stub in front of it.)
 */
struct fpingpong {
  transfer_t (*jump)(fcontext_t const to, void *vp);
  fcontext_t main_ctx; /* the main side, while it is suspended */
  fcontext_t co_ctx;   /* the coroutine, while it is suspended */
};

/* As bounce: both sides run this loop, so each switch returns to the call
 * site it was entered from.  other is where the other side is suspended. */
static __attribute__((noinline)) void fbounce(struct fpingpong *pp,
                                              fcontext_t *other, long n) {
  for (long i = 0; i != n; i++)
    *other = pp->jump(*other, pp).fctx;
}

/* The coroutine: the first jump brings the main side's context and pp. */
static void fco_entry(transfer_t t) {
  struct fpingpong *pp = t.data;

  pp->main_ctx = t.fctx;
  fbounce(pp, &pp->main_ctx, -1);
}

/* ns per one-way switch over `rounds` round trips. */
static double fmeasure(long rounds) {
  struct fpingpong pp = {.jump = jump_fcontext};
  void *stack = aligned_alloc(64, STACK_SIZE);
  int64_t t0, t1;

  if (!stack) {
    perror("switch: aligned_alloc");
    exit(1);
  }
  /* make_fcontext takes the top of the stack (it grows down) and its size,
   * and copies the caller's MXCSR and x87 control word into the new
   * context, settled as weft's are. */
  pp.co_ctx = make_fcontext((char *)stack + STACK_SIZE, STACK_SIZE, fco_entry);
  if (!pp.co_ctx) {
    fprintf(stderr, "switch: switch.boost: cannot make a context\n");
    exit(1);
  }
  /* Warm up as measure() does. */
  fbounce(&pp, &pp.co_ctx, 1000);
  t0 = bench_now();
  fbounce(&pp, &pp.co_ctx, rounds);
  t1 = bench_now();
  /* The coroutine stays suspended on this stack; nothing resumes it. */
  free(stack);
  return (double)(t1 - t0) / (2.0 * (double)rounds);
}
#endif

int main(int argc, char **argv) {
  struct bench_opts o;
  double asm_ns[BENCH_MAX_REPS], uc_ns[BENCH_MAX_REPS];
  double asym_ns[BENCH_MAX_REPS], nofp_ns[BENCH_MAX_REPS];
#ifdef WEFT_BENCH_BOOST_CONTEXT
  double boost_ns[BENCH_MAX_REPS];
#endif
  double ratio[BENCH_MAX_REPS];
  long asm_rounds, uc_rounds;
  char note[128];

  bench_init(&o, argc, argv,
             "the raw context switch (asm vs ucontext, and Boost.Context)", 60);
  /* As every kernel thread of the scheduler does before its first
   * switch: its MXCSR flags then agree with a new context's, and the
   * switch's reload of MXCSR changes nothing (the .S file says why). */
  weft__ctx_fp_settle();
  asm_rounds = o.quick ? 2000000 : 10000000;
  uc_rounds = o.quick ? 50000 : 200000;
  for (int r = 0; r < o.reps; r++) {
    asm_ns[r] = measure(&backends[0], asm_rounds, true);
#ifdef WEFT_BENCH_BOOST_CONTEXT
    boost_ns[r] = fmeasure(asm_rounds);
#endif
    uc_ns[r] = measure(&backends[1], uc_rounds, true);
    nofp_ns[r] = measure(&backends[2], asm_rounds, true);
    asym_ns[r] = measure(&backends[0], asm_rounds, false);
    ratio[r] = uc_ns[r] / asm_ns[r];
  }
  bench_table(&o, "Raw context switch, one way (two contexts ping-pong)");
  snprintf(note, sizeof(note), "%ld round trips", asm_rounds);
  bench_row(&o, "switch.asm", NULL, asm_ns, o.reps, "ns", note);
  snprintf(note, sizeof(note), "%ld round trips; saves the signal mask",
           uc_rounds);
  bench_row(&o, "switch.ucontext", NULL, uc_ns, o.reps, "ns", note);
  bench_row(&o, "switch.speedup", NULL, ratio, o.reps, "x", "ucontext / asm");
  bench_row(&o, "switch.asm.other_site", NULL, asym_ns, o.reps, "ns",
            "asm, the two sides switching from different call sites");
  snprintf(note, sizeof(note),
           "reference, not weft: the same switch without MXCSR and the x87 "
           "control word, %ld round trips",
           asm_rounds);
  bench_row(&o, "switch.nofp", NULL, nofp_ns, o.reps, "ns", note);
#ifdef WEFT_BENCH_BOOST_CONTEXT
  snprintf(note, sizeof(note),
           "reference, not weft: Boost.Context jump_fcontext, %ld round "
           "trips",
           asm_rounds);
  bench_row(&o, "switch.boost", NULL, boost_ns, o.reps, "ns", note);
#else
  bench_na_row(&o, "switch.boost", "ns",
               "Boost.Context not found by configure (Debian: "
               "libboost-context-dev)");
#endif
  return 0;
}
