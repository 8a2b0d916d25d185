/*
 * weft_testing.h - what weft offers tests and not programs: fault
 * injection.  It is installed beside weft.h, whose conventions it follows
 * (0 or -errno; see there).
 */
#ifndef WEFT_TESTING_H
#define WEFT_TESTING_H

#include <weft.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Makes chosen calls inside weft fail, so that tests can check that every
 * public call that hits one returns a clean error and leaks nothing.
 * spec: comma-separated site[:skip[:count]]: let skip calls at the site
 * through, then fail count of them (default 1; 0: all later ones).  Sites:
 * "mmap" (stacks, the shared heap: -ENOMEM), "pthread_create" (workers,
 * kernel-thread tasks, the blocking pool: -EAGAIN), "fork" (process tasks,
 * worker processes: -EAGAIN), "epoll_ctl" (netpoller registration:
 * -ENOMEM), "alloc" (weft's own allocations: -ENOMEM).  Two sites make
 * nothing fail but widen a race window, as a loaded machine would:
 * "poll_stall" (a worker about to go idle stops for 1 ms right after it
 * has made the green threads of ready fds runnable, while other workers
 * may take them) and "pchan_stall" (a green thread about to sleep on a
 * process channel stops its worker for 5 ms after it has counted itself
 * as a sleeper and found the channel not ready, before it parks).  NULL
 * or "" turns it off.  The WEFT_FAIL environment variable sets a spec at
 * startup, without this header.
 *
 * Returns 0.
 *
 * Errors:
 *  -EINVAL  spec is malformed (nothing changes then).
 */
WEFT_EXTERN int weft_fail_inject(const char *spec);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_TESTING_H */
