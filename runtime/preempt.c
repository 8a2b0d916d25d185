/*
 * preempt.c - preemption: a green thread that has run its time slice is
 * stopped by a signal, and its worker goes on without it.
 *
 * The mechanism (kernel-thread switching, as in Iwasaki et al., PPoPP
 * 2021).  The monitor (monitor.c) sees a worker whose green thread has
 * not switched for a slice while other work waits for it, and sends
 * SIGURG to the kernel thread running it (weft__preempt_ask).  The handler
 * runs on that thread (K1), on its signal stack.  If the thread may be
 * stopped where it is (below), the handler
 *   1. makes the thread's saved context a stub (sched.c, resume_stub),
 *      built on the thread's own stack below the interrupted frame's red
 *      zone, and queues the thread on the global queue (a pinned one on
 *      its worker's yield queue);
 *   2. hands the worker to a spare kernel thread (K2), which runs the
 *      scheduler loop for it from then on;
 *   3. waits, inside the handler, until a worker is handed back to it.
 * The interrupted state stays where the kernel put it: in K1's signal
 * frame.  When some worker, on some kernel thread K3, picks the thread
 * again, it switches into the stub, which finishes the switch it came
 * from (the post-switch action) and goes back to K3's scheduler context;
 * that hands K3's worker, whose running thread is now ours, to K1, and
 * K3 becomes a spare.  K1 takes the worker and returns from the handler:
 * sigreturn restores every register (vector, x87 and flags included), the
 * signal mask and the red zone, and the thread goes on, perhaps on
 * another worker, but on its own kernel thread.
 *
 * Why this and not a switch inside the handler (signal-yield).  A thread
 * stopped inside libc or the allocator may hold its kernel thread's
 * state: a lock whose owner is the kernel thread (stdio's), a per-thread
 * cache (jemalloc's tcache), errno, the address of a thread-local that
 * the compiler keeps in a register at -O2.  Switching another green
 * thread onto that kernel thread in the middle of it breaks all of them;
 * no narrower rule covers code weft cannot see.  Here nothing else ever
 * runs on K1 while the thread is stopped, so every one of them stays
 * right, and the price, a kernel-thread wake per preemption and per
 * resume, is paid once per slice by a thread that used a whole slice.
 * A kernel thread waiting for such a lock (a futex) while its worker has
 * other work is handed over the same way (the monitor asks for it), so a
 * lock held by a stopped thread cannot stall the thread that needs it.
 *
 * Where a thread is never stopped: inside weft (a run-queue lock, a
 * switch, a wait's transition, a worker pointer in a register), which is
 * any point whose program counter, or any return address between it and
 * the top of its stack, is in libweft's code (but for the entry code's,
 * WEFT_ENTRY_TEXT, which is always there); in a non-preemptible region
 * (weft_preempt_disable); with too little stack below it for the stub.
 * The one case the rule misses: a signal handler of the program that
 * interrupted weft code on a green thread's stack and then runs for a
 * whole slice (its PC is the program's, and the program's code is not
 * scanned); a handler should be short anyway.
 *
 * Such a request is counted as deferred; the monitor asks again half a
 * slice later, and weft_preempt_enable yields at the region's
 * end.  The rule needs libweft's code apart from the program's, so a
 * program linked statically with libweft is not preempted.  Under
 * ThreadSanitizer signals are delivered at its own points, not where the
 * thread was, so preemption is off there.
 *
 * The pool.  Spares are started by the monitor, never in the handler
 * (weft__preempt_stock); a handler that finds none defers.  Kernel
 * threads beyond the workers are bounded (4 per worker, plus 16): each
 * stopped thread keeps one until it resumes, and past the bound
 * preemptions are deferred until one does.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "preempt.h"
#include "sched.h"

#if WEFT_VALGRIND
#include <valgrind/memcheck.h>
#endif

#define DEFAULT_SLICE_US 10000
#define MIN_SLICE_US 1000
/* Stack the stub needs below the interrupted frame (the post-switch
 * action and a netpoll; the sanitizers' frames are larger). */
#if WEFT_ASAN
#define STUB_ROOM (32 << 10)
#else
#define STUB_ROOM (8 << 10)
#endif
/* How far up a stack the handler looks for weft's return addresses
 * before it gives up (and defers). */
#define SCAN_MAX (1 << 20)

static struct {
  int64_t slice_ns;             /* 0: off */
  uintptr_t text_lo, text_len;  /* libweft's code */
  uintptr_t main_lo, main_len;  /* the program's (its first segment) */
  bool text_known, is_static;
  struct sigaction old;         /* the SIGURG action before ours */
  weft__spin lk;                /* the spare stack */
  struct weft__kt *spares;
  _Atomic int nspare; /* written under lk */
  _Atomic uint32_t stopping;
} pre;

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_err;

int64_t weft__preempt_slice(void) { return pre.slice_ns; }

/* ------------------------------------------------------------------ */
/* Where libweft's code is                                            */
/* ------------------------------------------------------------------ */

/* Finds libweft's code, and the program's (the first object listed). */
static int find_text(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size;
  int *index = arg;
  /* A static function's address is its own: an exported one's can be
   * the program's PLT entry (a program built without -pie). */
  uintptr_t self = (uintptr_t)&find_text;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    if (*index == 0 && !pre.main_len) {
      pre.main_lo = lo;
      pre.main_len = ph->p_memsz;
    }
    if (self - lo < ph->p_memsz) {
      pre.text_lo = lo;
      pre.text_len = ph->p_memsz;
      pre.text_known = true;
      pre.is_static = *index == 0; /* the program itself */
      return 1;
    }
  }
  ++*index;
  return 0;
}

static inline bool in_weft(uintptr_t pc) {
  return pc - pre.text_lo < pre.text_len;
}

/* The entry code's section (WEFT_ENTRY_TEXT, util.h). */
extern const char __start_weft_entry_text[], __stop_weft_entry_text[]
    __attribute__((visibility("hidden")));

static inline bool in_entry(uintptr_t pc) {
  return pc - (uintptr_t)__start_weft_entry_text <
         (uintptr_t)(__stop_weft_entry_text - __start_weft_entry_text);
}

static inline bool in_main(uintptr_t pc) {
  return pc - pre.main_lo < pre.main_len;
}

/* ------------------------------------------------------------------ */
/* The handler                                                        */
/* ------------------------------------------------------------------ */

/* Whether g, interrupted at pc with stack pointer sp, is in its own code.
 * In the program's code it is: weft calls the program only as the
 * thread's function (and destructors of locals, inside a non-preemptible
 * region).  In a library's (libc, the allocator), the library may have
 * been called by weft: it is, if no word between sp and the top of g's
 * stack is an address in weft's code, other than the entry code's
 * (WEFT_ENTRY_TEXT): that is above the thread's function, or dead.  The
 * scan is complete, so it never misses a live weft frame; it may take a
 * dead one (left in a slot a frame did not write) for live, and defer for
 * nothing: the monitor asks again half a slice later.  Reads g's stack,
 * whose frames ASan would see as out of bounds. */
WEFT_NO_ASAN static bool in_own_code(const struct weft__g *g, uintptr_t pc,
                                     uintptr_t sp) {
  if (in_weft(pc))
    return false;
  uintptr_t lo = (uintptr_t)(g->base + g->guard), top = (uintptr_t)g;
  if (sp < lo || sp >= top)
    return false; /* on another stack: a coroutine library's, say */
  if (in_main(pc))
    return true;
  if (top - sp > SCAN_MAX)
    return false;
  for (const uintptr_t *p = (const uintptr_t *)(sp & ~(uintptr_t)7);
       (uintptr_t)p < top; p++) {
    uintptr_t v = *p;
    if (in_weft(v) && !in_entry(v))
      return false;
  }
  return true;
}

static struct weft__kt *spare_take(void) {
  weft__spin_lock(&pre.lk);
  struct weft__kt *kt = pre.spares;
  if (kt) {
    pre.spares = kt->spare_next;
    st_relaxed(&pre.nspare, ld_relaxed(&pre.nspare) - 1);
  }
  weft__spin_unlock(&pre.lk);
  return kt;
}

/*
 * A worker changes kernel thread at a preemption (to a spare) and at a
 * resume (to the thread's own), and the one that hands it over goes to
 * sleep right after.  The kernel does not know that: it wakes the taker
 * on the CPU it last ran on, which is often the one another worker keeps
 * busy, and this CPU goes idle while the two share that one (measured: a
 * compute-bound run of 2 workers and 4 threads took 11% longer, and 2%
 * more CPU, than with preemption off).  So the taker is woken bound to
 * this CPU, and takes its own CPUs back once it runs (wait_hand): three
 * system calls, about 1.5 us.
 */
void weft__preempt_hand(struct weft__kt *kt, struct weft__worker *w) {
  int cpu = sched_getcpu();
  kt->rebind = false;
  if (cpu >= 0 &&
      sched_getaffinity(kt->tid, sizeof kt->cpus, &kt->cpus) == 0 &&
      CPU_ISSET(cpu, &kt->cpus) && CPU_COUNT(&kt->cpus) > 1) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    kt->rebind = sched_setaffinity(kt->tid, sizeof one, &one) == 0;
  }
  atomic_store_explicit(&kt->handed, w, memory_order_release);
  atomic_fetch_add(&kt->hand, 1);
  weft__futex_wake(&kt->hand, 1);
}

/* Waits until a worker is handed to kt; NULL when the runtime stops. */
static struct weft__worker *wait_hand(struct weft__kt *kt) {
  for (;;) {
    uint32_t h = ld_acquire(&kt->hand);
    struct weft__worker *w =
        atomic_exchange_explicit(&kt->handed, NULL, memory_order_acquire);
    if (w) {
      if (kt->rebind) /* see weft__preempt_hand */
        sched_setaffinity(0, sizeof kt->cpus, &kt->cpus);
      return w;
    }
    if (ld_acquire(&pre.stopping))
      return NULL;
    weft__futex_wait(&kt->hand, h, WEFT_FOREVER);
  }
}

struct weft__worker *weft__preempt_idle(struct weft__kt *kt) {
  weft__spin_lock(&pre.lk);
  kt->spare_next = pre.spares;
  pre.spares = kt;
  st_relaxed(&pre.nspare, ld_relaxed(&pre.nspare) + 1);
  weft__spin_unlock(&pre.lk);
  return wait_hand(kt);
}

static void forward(int sig, siginfo_t *si, void *uc) {
  if (pre.old.sa_flags & SA_SIGINFO) {
    if (pre.old.sa_sigaction)
      pre.old.sa_sigaction(sig, si, uc);
  } else if (pre.old.sa_handler != SIG_DFL && pre.old.sa_handler != SIG_IGN &&
             pre.old.sa_handler) {
    pre.old.sa_handler(sig);
  }
  /* SIGURG's default action is to ignore it. */
}

/* g, running on w on this kernel thread kt, has been asked to stop.
 * Returns once it may go on (on a worker handed back, or at once when it
 * cannot be stopped here). */
static void preempt(struct weft__kt *kt, struct weft__worker *w,
                    struct weft__g *g, ucontext_t *uc) {
  if (g->nopreempt) {
    if (!g->preempt_pending) { /* made at weft_preempt_enable */
      g->preempt_pending = true;
      weft__stat_inc(&w->st.preempt_deferred);
    }
    return;
  }
  uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
  uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
  /* The stub's frame goes below the red zone of the interrupted one. */
  char *lo = g->base + g->guard;
  char *hi = (char *)((sp - 128) & ~(uintptr_t)15);
  struct weft__kt *k2;
  if (!in_own_code(g, pc, sp) || hi - lo < STUB_ROOM ||
      !(k2 = spare_take())) {
    weft__stat_inc(&w->st.preempt_deferred);
    return;
  }
  g->held_by = kt;
  kt->stub_lo = hi - STUB_ROOM;
  kt->stub_hi = hi;
#if WEFT_VALGRIND
  /* Below the thread's stack pointer: memcheck holds it unaddressable
   * until something runs there, as the stub will. */
  VALGRIND_MAKE_MEM_UNDEFINED(kt->stub_lo, STUB_ROOM);
#endif
  weft__stat_inc(&w->st.preemptions);
  weft__sched_preempted(w, g, lo, hi, kt);
  kt->w = NULL;
  weft__tls_w = NULL;
  weft__preempt_hand(k2, w);
  struct weft__worker *nw = wait_hand(kt);
  if (!nw)
    weft__sched_abandon_held(kt); /* the runtime stopped: never returns */
  g->held_by = NULL;
  weft__kt_take(kt, nw); /* its running thread is g (resume_stub) */
  weft__mark_run(nw, 0); /* its next slice starts now */
}

static void on_urg(int sig, siginfo_t *si, void *uc) {
  struct weft__kt *kt = weft__tls_kt;
  if (!kt || !atomic_exchange(&kt->ask, 0)) {
    forward(sig, si, uc); /* not a request of ours */
    return;
  }
  int saved = errno;
  struct weft__worker *w = weft__tls_w;
  struct weft__g *g = w ? w->cur : NULL;
  /* Still the thread the monitor saw, and not switched since. */
  if (g && w == kt->ask_w && w->kt == kt &&
      __atomic_load_n(&w->st.switches, __ATOMIC_RELAXED) == kt->ask_switches)
    preempt(kt, w, g, uc);
  errno = saved;
}

/* ------------------------------------------------------------------ */
/* Setup, the monitor's side, shutdown                                */
/* ------------------------------------------------------------------ */

static void setup(void) {
  int index = 0;
  dl_iterate_phdr(find_text, &index);
  if (!pre.text_known || pre.is_static)
    return; /* no way to tell weft's code from the program's */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_urg;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGURG, &sa, &pre.old) != 0)
    setup_err = -errno;
}

int weft__preempt_setup(const weft_config *cfg) {
  long us = cfg && cfg->slice_us ? cfg->slice_us : 0;
  if (!us) {
    const char *e = getenv("WEFT_SLICE_US");
    char *end = NULL;
    us = e && *e ? strtol(e, &end, 10) : DEFAULT_SLICE_US;
    if (e && *e && *end) {
      fprintf(stderr, "weft: WEFT_SLICE_US=%s is not a number of "
                      "microseconds\n", e);
      return -EINVAL;
    }
    if (us == 0)
      us = -1;
  }
  if (us > 0 && us < MIN_SLICE_US) {
    fprintf(stderr, "weft: a time slice of %ld us is below the least, %d "
                    "us\n", us, MIN_SLICE_US);
    return -EINVAL;
  }
  pre.slice_ns = 0;
  atomic_store(&pre.stopping, 0);
  pre.spares = NULL;
  st_relaxed(&pre.nspare, 0);
#if WEFT_TSAN
  return 0; /* see the file comment */
#endif
  if (us < 0)
    return 0;
  pthread_once(&setup_once, setup);
  if (setup_err)
    return setup_err;
  if (!pre.text_known || pre.is_static)
    return 0;
  pre.slice_ns = us * 1000LL;
  return 0;
}

bool weft__preempt_stock(int want) {
  int max_extra = 4 * weft__rt.nworkers + 16;
  weft__spin_lock(&weft__rt.kts_lk);
  int extra = weft__rt.nkts - weft__rt.nworkers;
  weft__spin_unlock(&weft__rt.kts_lk);
  int before = ld_relaxed(&pre.nspare), started = 0;
  for (; before + started < want && extra < max_extra; started++, extra++)
    if (weft__kt_start(NULL) != 0)
      break;
  /* A spare counts once it is on the spare stack: wait (a few ms at
   * most) for those just started to get there. */
  int goal = before + started;
  for (int i = 0; i < 500 && ld_relaxed(&pre.nspare) < goal; i++)
    usleep(10);
  return ld_relaxed(&pre.nspare) > 0;
}

void weft__preempt_ask(struct weft__kt *kt, struct weft__worker *w,
                       uint64_t sw) {
  kt->ask_w = w;
  kt->ask_switches = sw;
  st_release(&kt->ask, 1);
  syscall(SYS_tgkill, getpid(), kt->tid, SIGURG);
}

void weft__preempt_stop(void) {
  st_release(&pre.stopping, 1);
  weft__spin_lock(&weft__rt.kts_lk);
  for (struct weft__kt *kt = weft__rt.kts; kt; kt = kt->all_next) {
    atomic_fetch_add(&kt->hand, 1);
    weft__futex_wake(&kt->hand, 1);
  }
  weft__spin_unlock(&weft__rt.kts_lk);
}

/* ------------------------------------------------------------------ */
/* Non-preemptible regions                                            */
/* ------------------------------------------------------------------ */

void weft__preempt_fork_child(void) {
  atomic_store(&pre.lk.v, 0);
  pre.spares = NULL;
  st_relaxed(&pre.nspare, 0);
  atomic_store(&pre.stopping, 0);
}

int weft_preempt_disable(void) {
  struct weft__g *g = weft__g_cur();
  if (!g)
    return -EPERM;
  uint32_t d = ++g->nopreempt;
  atomic_signal_fence(memory_order_seq_cst); /* before the region */
  return (int)d;
}

int weft_preempt_enable(void) {
  struct weft__g *g = weft__g_cur();
  if (!g)
    return -EPERM;
  if (!g->nopreempt)
    return -EINVAL;
  atomic_signal_fence(memory_order_seq_cst); /* after the region */
  uint32_t d = --g->nopreempt;
  atomic_signal_fence(memory_order_seq_cst);
  if (d == 0 && g->preempt_pending) {
    g->preempt_pending = false;
    weft_yield();
  }
  return (int)d;
}
