/*
 * overflow.c - what happens when a green thread runs off the end of its
 * stack.
 *
 * A green thread's stack is small (64 KiB by default) and fixed: it does
 * not grow.  Below it lies a guard: memory that faults when touched.  A
 * thread that recurses without end walks its stack pointer down into the
 * guard; the fault goes to the runtime's SIGSEGV handler (which runs on a
 * separate signal stack, since this one is used up), which finds the fault
 * address in that thread's guard, names the thread and aborts:
 *
 *   weft: green thread 1 "deep-dive" overflowed its 64 KiB stack
 *
 * Without the guard the thread would silently overwrite whatever lies
 * below its stack: another thread's stack, or the runtime's data.
 *
 * This program is expected to die with SIGABRT (exit status 134 in a
 * shell).
 */
#include <stdio.h>
#include <stdlib.h>

#include "weft.h"

#define FRAME 512 /* bytes of locals per call */

static __attribute__((noinline)) unsigned long dive(unsigned depth) {
  volatile char frame[FRAME]; /* volatile: the frame cannot be optimised */

  /* Never true within 64 KiB; it only tells the compiler the recursion
   * has an end. */
  if (depth > 1000000)
    return 0;
  frame[0] = (char)depth;
  frame[FRAME - 1] = 1;
  if (depth % 16 == 0)
    printf("  depth %4u: stack pointer near %p\n", depth, (void *)frame);
  /* Not a tail call: the addition after the return keeps every frame. */
  return dive(depth + 1) + (unsigned long)frame[FRAME - 1];
}

static void *deep(void *arg) {
  weft_stack_info si;

  (void)arg;
  if (weft_stack_info_get(weft_self(), &si) == 0)
    printf("green thread %llu \"%s\": stack %p..%p (%zu KiB), "
           "guard %p..%p below it\n",
           (unsigned long long)weft_id(), weft_name(), si.stack_lo,
           (void *)((char *)si.stack_lo + si.stack_size),
           si.stack_size / 1024, si.guard_lo,
           (void *)((char *)si.guard_lo + si.guard_size));
  return (void *)dive(0);
}

int main(void) {
  weft_gthread_attr attr = {.name = "deep-dive"};
  weft_gthread t;
  int rc;

  /* abort() does not flush stdio: make every line reach the terminal or
   * pipe as it is printed. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  if ((rc = weft_init(NULL)) < 0) {
    fprintf(stderr, "overflow: weft_init: %s\n", weft_strerror(rc));
    return 1;
  }
  printf("A green thread named \"deep-dive\" will now call itself without "
         "end,\n%d bytes of stack per call, until it reaches the guard "
         "below its stack.\n",
         FRAME);
  printf("Expected: the runtime prints\n"
         "  weft: green thread N \"deep-dive\" overflowed its 64 KiB stack\n"
         "and aborts the process (SIGABRT).  That is the end of this "
         "demo.\n\n");
  if ((rc = weft_spawn(&t, &attr, deep, NULL)) < 0) {
    fprintf(stderr, "overflow: weft_spawn: %s\n", weft_strerror(rc));
    return 1;
  }
  weft_join(t, NULL);
  printf("the thread returned: the overflow was not caught\n");
  return 1;
}
