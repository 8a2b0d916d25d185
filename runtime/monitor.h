/*
 * monitor.h - the hog detector (monitor.c).
 */
#ifndef WEFT_MONITOR_H
#define WEFT_MONITOR_H

#include <stdatomic.h>
#include <stdint.h>

#include "weft.h"

/* Starts the monitor thread after the workers (unless turned off). */
int weft__monitor_start(const weft_config *cfg);
/* Stops it, before the workers stop. */
void weft__monitor_stop(void);

/* 1 while the monitor sleeps until a worker wakes (every worker has been
 * parked for a while): a runtime with nothing to do has no timer firing.
 * A worker that leaves its park calls weft__monitor_kick. */
extern _Atomic uint32_t weft__monitor_asleep;
void weft__monitor_wake(void);
static inline void weft__monitor_kick(void) {
  if (atomic_load(&weft__monitor_asleep))
    weft__monitor_wake();
}

#endif /* WEFT_MONITOR_H */
