/*
 * inject.c - fault injection (see inject.h): which calls fail.
 *
 * A spec is a comma-separated list of site:skip:count, e.g.
 * "mmap:0:1,fork:2:0": fail the first mmap, and every fork after the
 * first two (count 0 means forever).  Sites: mmap, pthread_create, fork,
 * epoll_ctl, alloc.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "inject.h"
#include "weft.h"
#include "weft_testing.h"

_Atomic bool weft__inject_armed;

static const char *const names[WEFT__F_NSITES] = {
    [WEFT__F_MMAP] = "mmap",           [WEFT__F_PTHREAD] = "pthread_create",
    [WEFT__F_FORK] = "fork",           [WEFT__F_EPOLL_CTL] = "epoll_ctl",
    [WEFT__F_ALLOC] = "alloc",         [WEFT__F_POLL_STALL] = "poll_stall",
    [WEFT__F_PCHAN_STALL] = "pchan_stall",
};

static struct rule {
  _Atomic long skip;  /* calls to let through first */
  _Atomic long count; /* then calls to fail; -1: forever */
  _Atomic bool on; /* a spec may change while other threads hit sites */
} rules[WEFT__F_NSITES];

bool weft__inject_hit(enum weft__site s) {
  struct rule *r = &rules[s];
  if (!ld_relaxed(&r->on))
    return false;
  if (atomic_fetch_sub(&r->skip, 1) > 0)
    return false;
  long c = ld_relaxed(&r->count);
  if (c < 0)
    return true;
  while (c > 0 && !atomic_compare_exchange_weak(&r->count, &c, c - 1))
    ;
  return c > 0;
}

int weft_fail_inject(const char *spec) {
  struct rule fresh[WEFT__F_NSITES];
  memset(fresh, 0, sizeof fresh);
  bool any = false;
  const char *p = spec ? spec : "";
  while (*p) {
    char name[32];
    long skip = 0, count = 1;
    int used = 0;
    size_t n = strcspn(p, ":,");
    if (n == 0 || n >= sizeof name)
      return -EINVAL;
    memcpy(name, p, n);
    name[n] = 0;
    p += n;
    if (*p == ':') {
      if (sscanf(p, ":%ld%n", &skip, &used) != 1 || skip < 0)
        return -EINVAL;
      p += used;
      if (*p == ':') {
        if (sscanf(p, ":%ld%n", &count, &used) != 1 || count < 0)
          return -EINVAL;
        p += used;
      }
    }
    if (*p == ',')
      p++;
    else if (*p)
      return -EINVAL;
    int s = 0;
    while (s < WEFT__F_NSITES && strcmp(names[s], name) != 0)
      s++;
    if (s == WEFT__F_NSITES)
      return -EINVAL;
    atomic_init(&fresh[s].on, true);
    atomic_init(&fresh[s].skip, skip);
    atomic_init(&fresh[s].count, count ? count : -1);
    any = true;
  }
  st_relaxed(&weft__inject_armed, false);
  for (int s = 0; s < WEFT__F_NSITES; s++) {
    st_relaxed(&rules[s].on, ld_relaxed(&fresh[s].on));
    atomic_store(&rules[s].skip, ld_relaxed(&fresh[s].skip));
    atomic_store(&rules[s].count, ld_relaxed(&fresh[s].count));
  }
  atomic_store(&weft__inject_armed, any);
  return 0;
}

__attribute__((constructor)) static void inject_from_env(void) {
  const char *e = getenv("WEFT_FAIL");
  if (e && *e && weft_fail_inject(e) < 0)
    fprintf(stderr, "weft: WEFT_FAIL=\"%s\": bad spec (expected "
                    "site[:skip[:count]],... with sites mmap, pthread_create, "
                    "fork, epoll_ctl, alloc, poll_stall, pchan_stall)\n",
            e);
}
