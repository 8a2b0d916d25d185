/*
 * shm_helpers.h - a small supervisor for the shared-heap and process
 * channel tests (test_shm.c, test_pchan.c); the functions are in
 * tests/shm_helpers.c (tests/libcheck_shm.la).
 *
 * A test never maps the shared region in Criterion's own process: it runs
 * a supervisor in a forked child (sh_run), which calls weft_shm_setup,
 * forks worker processes that attach to their slots (sh_spawn) and reaps
 * them (sh_wait).  Nothing there may call Criterion's assertions, so the
 * supervisor and the workers record failures with TCHECK's recorder,
 * which sh_run moves to a page mapped MAP_SHARED before the first fork
 * (SH_CHECK and SH_CHECK_EQ are TCHECK's), and the test asserts on it
 * afterwards.  Data a test wants back goes
 * in pages from sh_map, shared the same way.
 */
#ifndef TESTS_SHM_HELPERS_H
#define TESTS_SHM_HELPERS_H

#include "helpers.h"

#include <sys/mman.h>
#include <sys/prctl.h>

#include "shm_test.h"

/* Memory shared by the test, its supervisor and the workers. */
void *sh_map(size_t size);

/* Checks in the supervisor and the workers: TCHECK's recorder, shared
 * across their forks by sh_run. */
#define SH_CHECK(cond) TCHECK(cond)
#define SH_CHECK_EQ(x, y) TCHECK_EQ(x, y)

typedef int (*sh_worker_fn)(int index, void *arg);

/* Supervisor: forks a worker for slot index that attaches to its
 * partition, runs fn and exits with its result. */
pid_t sh_spawn(int index, sh_worker_fn fn, void *arg);

/* Supervisor: reaps pid; returns its wait status. */
int sh_wait(pid_t pid);

/* Supervisor: reaps pid and checks that it exited with status 0. */
void sh_wait_ok(pid_t pid, const char *what);
/* Runs fn0 in worker 0 and fn1 in worker 1, both with arg, and waits for
 * both to exit 0 (named what0 and what1 if not). */
void sh_pair(sh_worker_fn fn0, const char *what0, sh_worker_fn fn1,
             const char *what1, void *arg);

/* Spins (yielding) until *flag reaches value, or fails after ~20 s. */
bool sh_await(atomic_int *flag, int value);

/* A worker that waits to be killed by its supervisor. */
_Noreturn void sh_hang(void);

/*
 * Runs fn(arg) as the supervisor in a forked child (stderr captured in
 * res, an alarm after `seconds`), then asserts that it exited normally.
 */
void sh_run(void (*fn)(void *), void *arg, struct h_child *res,
            unsigned seconds);

#endif /* TESTS_SHM_HELPERS_H */
