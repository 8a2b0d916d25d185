/*
 * machine.c - three costs of the machine itself, which bound many of the
 * other figures: creating a kernel thread or a process, and every first
 * touch of a fresh stack, are made of the first two; every message or lock
 * that two CPUs share pays the third.
 *
 *   machine.syscall  ns per getppid() system call (the cheapest round trip
 *                    into the kernel)
 *   machine.fault    ns per first touch of a page of fresh anonymous memory
 *                    (a minor page fault: allocate, zero and map a 4 KiB
 *                    page); 16 MiB are touched, then unmapped
 *   machine.line     ns for one cache line to move from one CPU to the
 *                    other: two processes pinned to the first two CPUs
 *                    take turns writing a counter in shared memory, and
 *                    each turn moves its line once
 *
 * On a virtual machine the fault can cost ten times what it does on bare
 * metal, and the line's trip depends on where the host placed the two
 * virtual CPUs (the same core complex or not): the REPORT quotes these
 * figures beside the ones they explain.
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define FAULT_BYTES ((size_t)16 << 20)

static double syscall_ns(long n) {
  int64_t t0 = bench_now();

  for (long i = 0; i < n; i++)
    bench_keep(syscall(SYS_getppid));
  return (double)(bench_now() - t0) / (double)n;
}

static double fault_ns(void) {
  long page = sysconf(_SC_PAGESIZE);
  char *p = mmap(NULL, FAULT_BYTES, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  int64_t t0;
  double ns;

  if (p == MAP_FAILED) {
    perror("bench: mmap");
    exit(1);
  }
  /* No transparent huge pages: one fault per 4 KiB page is the point. */
  madvise(p, FAULT_BYTES, MADV_NOHUGEPAGE);
  t0 = bench_now();
  for (size_t off = 0; off < FAULT_BYTES; off += (size_t)page)
    p[off] = 1;
  ns = (double)(bench_now() - t0) / (double)(FAULT_BYTES / (size_t)page);
  munmap(p, FAULT_BYTES);
  return ns;
}

static bool one_cpu;

/* Waiting for the other side: on one CPU it can only run if we step aside. */
static void relax(void) {
  if (one_cpu)
    sched_yield();
  else
    __builtin_ia32_pause();
}

/* Each side waits for the counter to reach its turn, then bumps it: one
 * line transfer a turn.  The parent gives up (and reports nothing) if the
 * child stops taking its turns. */
static double line_ns(long turns) {
  _Atomic long *ctr = bench_shared(4096);
  pid_t pid;
  int64_t t0, t1;
  int status;

  *ctr = 0;
  one_cpu = bench_ncpus() < 2;
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    perror("bench: fork");
    exit(1);
  }
  if (pid == 0) {
    bench_pin(1);
    for (long i = 1; i < turns; i += 2) {
      while (atomic_load_explicit(ctr, memory_order_acquire) != i)
        relax();
      atomic_store_explicit(ctr, i + 1, memory_order_release);
    }
    _exit(0);
  }
  bench_pin(0);
  t0 = bench_now();
  for (long i = 0; i < turns; i += 2) {
    for (long spins = 0;
         atomic_load_explicit(ctr, memory_order_acquire) != i; spins++) {
      relax();
      if ((spins & 0xfffff) == 0xfffff && waitpid(pid, &status, WNOHANG)) {
        fprintf(stderr, "bench: machine.line: the other side stopped\n");
        exit(1);
      }
    }
    atomic_store_explicit(ctr, i + 1, memory_order_release);
  }
  t1 = bench_now();
  waitpid(pid, &status, 0);
  munmap((void *)ctr, 4096);
  return (double)(t1 - t0) / (double)turns;
}

int main(int argc, char **argv) {
  struct bench_opts o;
  double sc[BENCH_MAX_REPS], pf[BENCH_MAX_REPS], ln[BENCH_MAX_REPS];
  long n, turns;
  char note[64];

  bench_init(&o, argc, argv, "the cost of a system call and a page fault", 60);
  n = o.quick ? 100000 : 500000;
  turns = o.quick ? 100000 : 400000;
  for (int r = 0; r < o.reps; r++) {
    sc[r] = syscall_ns(n);
    pf[r] = fault_ns();
    ln[r] = line_ns(turns);
  }
  bench_table(&o, "The machine");
  snprintf(note, sizeof(note), "%ld getppid() calls", n);
  bench_row(&o, "machine.syscall", NULL, sc, o.reps, "ns", note);
  bench_row(&o, "machine.fault", NULL, pf, o.reps, "ns",
            "first touch of an anonymous 4 KiB page, 16 MiB");
  snprintf(note, sizeof(note), "%ld turns, %s", turns,
           bench_ncpus() > 1 ? "first two CPUs" : "one CPU only");
  bench_row(&o, "machine.line", NULL, ln, o.reps, "ns", note);
  return 0;
}
