/*
 * monitor.h - the hog detector (monitor.c).
 */
#ifndef WEFT_MONITOR_H
#define WEFT_MONITOR_H

#include "weft.h"

/* Starts the monitor thread after the workers (unless turned off). */
int weft__monitor_start(const weft_config *cfg);
/* Stops it, before the workers stop. */
void weft__monitor_stop(void);

/* 1 while the monitor sleeps until a worker wakes (every worker was
 * parked at its last tick): a runtime with nothing to do has no timer
 * firing.  A worker that leaves its park calls weft__monitor_kick. */
extern _Atomic uint32_t weft__monitor_asleep;
void weft__monitor_wake(void);
static inline void weft__monitor_kick(void) {
  if (__atomic_load_n(&weft__monitor_asleep, __ATOMIC_SEQ_CST))
    weft__monitor_wake();
}

#endif /* WEFT_MONITOR_H */
