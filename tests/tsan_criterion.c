/*
 * tsan_criterion.c - lets Criterion's test processes start under
 * ThreadSanitizer.  Linked into every Criterion program, as an object
 * rather than from tests/libcheck.la (see tests/Makefile.mk); it is empty
 * unless weft is configured with --enable-tsan.
 *
 * Criterion 2.4 keeps its bookkeeping in an arena that each test process
 * maps at the same address as the runner.  The runner picks that address
 * at random on a 16 MiB grid between 0x200000000000 and 0x7f0000000000,
 * checks with mincore() that nothing is mapped there, and maps the arena
 * with MAP_FIXED.  Under ThreadSanitizer on x86-64 almost all of that
 * range is TSan's shadow and metadata: mincore() finds it mapped, and
 * TSan's mmap refuses application mappings there, so Criterion aborts
 * ("Could not initialize inheritable arena").  The one part of the range
 * where TSan lets a program map memory starts at 0x7e8000000000; below
 * it, a TSan program has no memory of its own.
 *
 * So, in a TSan build, this file defines mincore and mmap/mmap64 for the
 * program (the executable's definitions come before libc's and before
 * TSan's interceptors, which are weak): mincore reports pages below that
 * window as unmapped, and a shared MAP_FIXED mapping
 * asked for there is placed in the window instead, without replacing
 * anything (MAP_FIXED_NOREPLACE).  Criterion uses the address it gets
 * back, and each test process maps the arena at that same address.
 * Everything else goes to TSan's mmap unchanged.
 */
#include "config.h"

#if WEFT_TSAN
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GRID ((uintptr_t)1 << 24)
#define CR_LO ((uintptr_t)0x200000000000)
#define WIN_LO ((uintptr_t)0x7e8000000000)
#define WIN_HI ((uintptr_t)0x7f0000000000)

/* ThreadSanitizer's own mmap. */
void *__interceptor_mmap(void *addr, size_t len, int prot, int flags, int fd,
                         off_t off);

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int mincore(void *addr, size_t len, unsigned char *vec);

static bool below_window(void *addr) {
  uintptr_t a = (uintptr_t)addr;
  return a >= CR_LO && a < WIN_LO;
}

int mincore(void *addr, size_t len, unsigned char *vec) {
  if (below_window(addr)) {
    errno = ENOMEM; /* "not mapped": the mapping will go to the window */
    return -1;
  }
  return (int)syscall(SYS_mincore, addr, len, vec);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  if (!(flags & MAP_FIXED) || !(flags & MAP_SHARED) || !below_window(addr))
    return __interceptor_mmap(addr, len, prot, flags, fd, off);
  static uintptr_t next = WIN_LO;
  int fl = (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE;
  for (; next < WIN_HI && len <= WIN_HI - next; next += GRID) {
    void *p = __interceptor_mmap((void *)next, len, prot, fl, fd, off);
    if (p == MAP_FAILED)
      continue;
    if ((uintptr_t)p != next) { /* a kernel without NOREPLACE: a hint */
      munmap(p, len);
      continue;
    }
    next += (len + GRID - 1) / GRID * GRID;
    return p;
  }
  errno = ENOMEM;
  return MAP_FAILED;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  return mmap(addr, len, prot, flags, fd, off);
}
#else
typedef int weft_tsan_criterion_is_empty;
#endif
