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

#endif /* WEFT_MONITOR_H */
