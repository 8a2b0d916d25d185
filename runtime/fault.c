/*
 * fault.c - overflow and crash reports by green thread name (see fault.h),
 * and weft__throw.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault.h"
#include "stack.h"
#include "worker.h"

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define NFATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))
static struct sigaction old_actions[NFATAL];
static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_err;
static volatile sig_atomic_t reported;

static const char *signame(int sig) {
  switch (sig) {
  case SIGSEGV:
    return "SIGSEGV";
  case SIGBUS:
    return "SIGBUS";
  case SIGILL:
    return "SIGILL";
  case SIGFPE:
    return "SIGFPE";
  case SIGABRT:
    return "SIGABRT";
  default:
    return "a fatal signal";
  }
}

static int slot_of(int sig) {
  for (unsigned i = 0; i < NFATAL; i++)
    if (fatal_signals[i] == sig)
      return (int)i;
  return -1;
}

/* Async-signal-safe: write(2) and hand-made formatting only. */
static void report(struct weft__worker *w, struct weft__g *g, int sig,
                   void *addr, bool overflow) {
  char num[24], wnum[24];
  weft__write_err("weft: green thread ");
  weft__write_err(weft__utoa(g->id, num));
  weft__write_err(" \"");
  weft__write_err(g->name);
  if (overflow) {
    weft__write_err("\" overflowed its ");
    weft__write_err(weft__utoa(g->size / 1024, num));
    weft__write_err(" KiB stack\n");
    weft__write_err("weft: (fault at ");
    weft__write_err(weft__xtoa((uintptr_t)addr, num));
    weft__write_err(" in the guard below the stack, on worker ");
    weft__write_err(weft__utoa((uint64_t)w->index, wnum));
    weft__write_err("; spawn it with a larger weft_gthread_attr.stack_size)\n");
  } else {
    weft__write_err("\" crashed with ");
    weft__write_err(signame(sig));
    if (sig != SIGABRT) {
      weft__write_err(" at address ");
      weft__write_err(weft__xtoa((uintptr_t)addr, num));
    }
    weft__write_err(" on worker ");
    weft__write_err(weft__utoa((uint64_t)w->index, wnum));
    weft__write_err("\n");
  }
}

static void on_fatal(int sig, siginfo_t *si, void *uctx) {
  struct weft__worker *w = weft__tls_w;
  struct weft__g *g = w ? w->cur : NULL;
  int slot = slot_of(sig);

  if (g && !reported) {
    /* A fault on the current green thread's own guard is its overflow:
     * the guard it was spawned with (g->guard, 1 MiB by default, which a
     * frame up to that size cannot jump), or a little below it (a larger
     * frame built without -fstack-clash-protection can jump the guard;
     * that is still reported if it faults there).  Only the worker's
     * current thread can overflow: a fault is taken by the thread that
     * made it, on the stack it runs on. */
    char *addr = si->si_addr;
    char *guard_lo = g->base;
    char *guard_hi = g->base + g->guard;
    bool overflow = sig == SIGSEGV && addr < guard_hi &&
                    (uintptr_t)addr + (256 << 10) >= (uintptr_t)guard_lo;
    reported = 1;
    report(w, g, sig, addr, overflow);
    if (overflow)
      abort();
  }
  /* Not ours, or reported: hand it on. */
  if (slot >= 0) {
    struct sigaction *old = &old_actions[slot];
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
      old->sa_sigaction(sig, si, uctx);
      return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN &&
        old->sa_handler) {
      old->sa_handler(sig);
      return;
    }
  }
  signal(sig, SIG_DFL);
  if (sig == SIGABRT || si->si_code <= 0)
    raise(sig); /* delivered when we return */
  /* A hardware fault re-executes and now takes the default action. */
}

static void setup(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_fatal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (unsigned i = 0; i < NFATAL; i++) {
    if (sigaction(fatal_signals[i], &sa, &old_actions[i]) != 0) {
      setup_err = -errno;
      return;
    }
  }
}

int weft__fault_setup(void) {
  pthread_once(&setup_once, setup);
  return setup_err;
}

void weft__fault_thread_init(struct weft__kt *kt) {
  size_t size = 64 << 10;
  if (size < (size_t)SIGSTKSZ * 4)
    size = (size_t)SIGSTKSZ * 4;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    /* A spare kernel thread (preempt.c) has no worker yet. */
    if (kt->w)
      fprintf(stderr, "weft: worker %d has no signal stack (%s); a stack "
                      "overflow there will not be reported\n",
              kt->w->index, strerror(errno));
    else
      fprintf(stderr, "weft: a spare kernel thread has no signal stack (%s); "
                      "a stack overflow on it will not be reported\n",
              strerror(errno));
    return;
  }
  stack_t ss = {.ss_sp = p, .ss_size = size, .ss_flags = 0};
  if (sigaltstack(&ss, NULL) != 0) {
    munmap(p, size);
    return;
  }
  kt->altstack = p;
  kt->altstack_size = size;
}

void weft__fault_thread_fini(struct weft__kt *kt) {
  if (!kt->altstack)
    return;
  stack_t ss = {.ss_flags = SS_DISABLE};
  sigaltstack(&ss, NULL);
  munmap(kt->altstack, kt->altstack_size);
  kt->altstack = NULL;
}

void weft__throw(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  struct weft__worker *w = weft__tls_w;
  struct weft__g *g = w ? w->cur : NULL;
  if (g)
    fprintf(stderr, "weft: %s (green thread %llu \"%s\", worker %d)\n", msg,
            (unsigned long long)g->id, g->name, w->index);
  else if (w)
    fprintf(stderr, "weft: %s (scheduler of worker %d)\n", msg, w->index);
  else
    fprintf(stderr, "weft: %s (not a weft worker)\n", msg);
  reported = 1;
  abort();
}
