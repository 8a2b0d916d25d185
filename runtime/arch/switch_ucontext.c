/*
 * switch_ucontext.c - the context-switch contract of ctx.h over
 * getcontext/makecontext/swapcontext.
 *
 * A suspended context is a pointer to a record on the suspended stack: the
 * ucontext_t that swapcontext filled in and a slot through which the next
 * switch into it passes its argument.  swapcontext also saves and restores
 * the signal mask with a system call on every switch; that, and the size of
 * the saved state, is what the bench measures against the assembly.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include "ctx.h"
#include "util.h"

struct uc_rec {
  ucontext_t uc;
  void *arg; /* written by the switch that resumes this record */
  weft__ctx_entry entry;
  void *data;
};

void *weft__ctx_switch_uc(weft__ctx *from, weft__ctx to, void *arg) {
  struct uc_rec self;
  struct uc_rec *dst = to;

  *from = &self;
  dst->arg = arg;
  if (swapcontext(&self.uc, &dst->uc) != 0) {
    fputs("weft: swapcontext failed\n", stderr);
    abort();
  }
  return self.arg;
}

/* In the entry code's section: it is on every green thread's stack, above
 * the thread's function (util.h, WEFT_ENTRY_TEXT). */
WEFT_ENTRY_TEXT static void uc_start(unsigned hi, unsigned lo) {
  struct uc_rec *r = (struct uc_rec *)(((uintptr_t)hi << 32) | lo);

  r->entry(r->arg, r->data);
  fputs("weft: a context's entry function returned\n", stderr);
  abort();
}

weft__ctx weft__ctx_make_uc(void *lo, void *hi, weft__ctx_entry entry,
                            void *data) {
  uintptr_t top = (uintptr_t)hi - sizeof(struct uc_rec);
  /* volatile: getcontext returns twice as far as the compiler knows */
  struct uc_rec *volatile r = (struct uc_rec *)(top & ~(uintptr_t)63);

  if (getcontext(&r->uc) != 0)
    return NULL;
  r->uc.uc_link = NULL;
  r->uc.uc_stack.ss_sp = lo;
  r->uc.uc_stack.ss_size = (size_t)((char *)r - (char *)lo);
  r->entry = entry;
  r->data = data;
  r->arg = NULL;
  makecontext(&r->uc, (void (*)(void))uc_start, 2,
              (unsigned)((uintptr_t)r >> 32), (unsigned)(uintptr_t)r);
  return r;
}
