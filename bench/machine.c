/*
 * machine.c - two costs of the machine itself, which bound many of the
 * other figures: creating a kernel thread or a process, and every first
 * touch of a fresh stack, are made of them.
 *
 *   machine.syscall  ns per getppid() system call (the cheapest round trip
 *                    into the kernel)
 *   machine.fault    ns per first touch of a page of fresh anonymous memory
 *                    (a minor page fault: allocate, zero and map a 4 KiB
 *                    page); 16 MiB are touched, then unmapped
 *
 * On a virtual machine the fault can cost ten times what it does on bare
 * metal: the REPORT quotes this figure beside the ones it explains.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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

int main(int argc, char **argv) {
  struct bench_opts o;
  double sc[BENCH_MAX_REPS], pf[BENCH_MAX_REPS];
  long n;
  char note[64];

  bench_init(&o, argc, argv, "the cost of a system call and a page fault", 60);
  n = o.quick ? 100000 : 500000;
  for (int r = 0; r < o.reps; r++) {
    sc[r] = syscall_ns(n);
    pf[r] = fault_ns();
  }
  bench_table(&o, "The machine");
  snprintf(note, sizeof(note), "%ld getppid() calls", n);
  bench_row(&o, "machine.syscall", sc, o.reps, "ns", note);
  bench_row(&o, "machine.fault", pf, o.reps, "ns",
            "first touch of an anonymous 4 KiB page, 16 MiB");
  return 0;
}
