/*
 * ctx.h - the context-switch contract shared by both back ends.
 *
 * A context is the saved state of a suspended flow of control: for the
 * assembly back end, the stack pointer at which the callee-saved registers
 * were pushed; for the ucontext back end, a pointer to a record on the
 * suspended stack.  Only what the SysV x86-64 ABI says a callee must
 * preserve is saved (rbx, rbp, r12-r15, rsp, the MXCSR control bits and the
 * x87 control word).  The signal mask is not part of the contract: the
 * ucontext back end saves it anyway (that is what makes it slow).
 *
 * weft__ctx_switch_*(from, to, arg) saves the caller's context in *from,
 * resumes `to`, and returns, when something switches back to the caller,
 * the arg that switch passed.  The first switch into a context made by
 * weft__ctx_make_*() calls entry(arg, data) on the new stack; entry must
 * never return (the trampoline traps if it does).  The assembly back end
 * also lets an entry made with weft__ctx_make_ret_asm() return a context
 * to resume, in place of a last switch (see the .S file).
 *
 * weft__ctx_jump_*() is the same switch for two sides known to differ
 * (into a context that never ran, out of one that finished, to and from a
 * scheduler loop): the assembly version leaves by an indirect jump instead
 * of RET, which would mispredict there (see the .S file); for ucontext it
 * is the plain switch.
 *
 * Both back ends are always compiled in, so that the bench can compare them
 * in one binary; configure picks the one the runtime uses (WEFT_CTX_ASM).
 */
#ifndef WEFT_CTX_H
#define WEFT_CTX_H

#include <stddef.h>

typedef void *weft__ctx;
typedef void (*weft__ctx_entry)(void *arg, void *data);

/* What an entry that returns resumes: to, which gets arg. */
struct weft__ctx_resume {
  weft__ctx to;
  void *arg;
};
typedef struct weft__ctx_resume (*weft__ctx_entry_ret)(void *arg, void *data);

/* The usable stack is [lo, hi); hi must be 16-byte aligned. */
weft__ctx weft__ctx_make_asm(void *lo, void *hi, weft__ctx_entry entry,
                             void *data);
void *weft__ctx_switch_asm(weft__ctx *from, weft__ctx to, void *arg);
void *weft__ctx_jump_asm(weft__ctx *from, weft__ctx to, void *arg);
weft__ctx weft__ctx_make_ret_asm(void *lo, void *hi, weft__ctx_entry_ret entry,
                                 void *data);

weft__ctx weft__ctx_make_uc(void *lo, void *hi, weft__ctx_entry entry,
                            void *data);
void *weft__ctx_switch_uc(weft__ctx *from, weft__ctx to, void *arg);

/*
 * Sets the calling kernel thread's floating-point status flags to what a
 * new context starts with (the x86-64 switch's comment says why: only the
 * inexact flag), leaving the control bits alone.  Called by each kernel
 * thread of the scheduler before its first switch, so that its scheduler
 * context agrees with the green threads it switches to.
 */
static inline void weft__ctx_fp_settle(void) {
#if WEFT_CTX_ASM && defined(__x86_64__)
  unsigned mxcsr;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  mxcsr = (mxcsr & ~0x3fu) | 0x20u; /* status flags: inexact only */
  __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
#endif
}

#if WEFT_CTX_ASM
#define weft__ctx_make weft__ctx_make_asm
#define weft__ctx_switch weft__ctx_switch_asm
#define weft__ctx_jump weft__ctx_jump_asm
#else
#define weft__ctx_make weft__ctx_make_uc
#define weft__ctx_switch weft__ctx_switch_uc
#define weft__ctx_jump weft__ctx_switch_uc
#endif

#endif /* WEFT_CTX_H */
