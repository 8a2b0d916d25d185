/*
 * shm_test.h - what the tests of the shared-memory wing reach beyond
 * shm.h (tests/shm_helpers.h includes it): a worker's live counts, a purge
 * of its arena, where setup reads vm.overcommit_memory, and how often a
 * blocked process-channel call checks its peers.  Nothing in weft calls
 * these.
 */
#ifndef WEFT_SHM_TEST_H
#define WEFT_SHM_TEST_H

#include <stdint.h>

#include "shm.h"

/* In a worker: its live objects and their requested bytes (summed over
 * its threads), also published in its slot.  -EPERM outside workers. */
int weft__shm_live(int64_t *objs, int64_t *bytes);
/* In a worker: flushes the calling thread's cache and purges the arena's
 * unused pages (MADV_REMOVE through the hooks).  For tests and for a
 * worker going idle.  -EPERM outside workers. */
int weft__shm_purge(void);

/* The file read for vm.overcommit_memory (NULL: the real
 * /proc/sys/vm/overcommit_memory). */
extern const char *weft__shm_overcommit_file;

/* The longest sleep of a blocked process-channel call between two checks
 * of its deadline and its peers (20 ms), in ns (shm_chan.c). */
extern int64_t weft__shm_chan_peer_check_ns;

#endif /* WEFT_SHM_TEST_H */
